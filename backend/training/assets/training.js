// Training screens: forms post JSON to the training API (session cookie + CSRF token); the run page polls the
// run's status endpoint for progress and log, and reloads once the run has finished (the server renders the
// comparison and the gate).

function bodyOf(form) {
  // "ratios.train" -> {ratios: {train: ...}}; empty fields are left out (the API's defaults apply).
  const body = {};
  for (const el of form.elements) {
    if (!el.name || el.name === 'csrfmiddlewaretoken' || el.value === '') continue;
    const value = el.type === 'number' || el.name === 'dataset' || el.name === 'base_model'
      ? Number(el.value) : el.value;
    const path = el.name.split('.');
    let target = body;
    for (const key of path.slice(0, -1)) target = target[key] ??= {};
    target[path.at(-1)] = value;
  }
  return body;
}

async function submit(form, event) {
  event.preventDefault();
  // getAttribute, not form.dataset: a form's named controls shadow its properties (the run form has a
  // control named "dataset").
  const api = form.getAttribute('data-api');
  const next = form.getAttribute('data-next');
  const error = form.querySelector('.error');
  const button = form.querySelector('button[type=submit]');
  error.hidden = true;
  button.disabled = true;
  try {
    const response = await fetch(api, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRFToken': form.elements.csrfmiddlewaretoken.value },
      body: JSON.stringify(bodyOf(form)),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || `HTTP ${response.status}`);
    if (next === 'reload') location.reload();
    else location.href = next.replace('{id}', data.id);
  } catch (err) {
    error.textContent = `Refused: ${err.message}`;
    error.hidden = false;
    button.disabled = false;
  }
}

for (const form of document.querySelectorAll('form.api')) form.addEventListener('submit', (e) => submit(form, e));

const configNode = document.getElementById('run-config');
const progress = document.getElementById('progress');
if (configNode && progress && ['queued', 'running'].includes(progress.dataset.status)) {
  const config = JSON.parse(configNode.textContent);
  const show = (run) => {
    const status = document.getElementById('run-status');
    status.textContent = run.status;
    status.className = `status status-${run.status}`;
    document.getElementById('run-progress').value = run.progress;
    document.getElementById('run-percent').textContent = `${run.progress}%`;
    document.getElementById('run-stage').textContent = run.stage;
    if (run.log) document.getElementById('run-log').textContent = run.log;
    const error = document.getElementById('run-error');
    error.textContent = run.error;
    error.hidden = !run.error;
  };
  const poll = async () => {
    try {
      const response = await fetch(config.status_url, { credentials: 'same-origin' });
      if (response.ok) {
        const run = await response.json();
        show(run);
        if (!['queued', 'running'].includes(run.status)) { location.reload(); return; }
      }
    } catch (err) { /* the next poll tries again */ }
    setTimeout(poll, 1500);
  };
  setTimeout(poll, 1000);
}
