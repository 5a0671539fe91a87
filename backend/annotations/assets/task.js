// Task page: send the toggles to the annotations API (session cookie + CSRF token), then back to the queue.
const config = JSON.parse(document.getElementById('task-config').textContent);
const form = document.getElementById('labels');
const message = document.getElementById('message');

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const labels = {};
  for (const row of form.querySelectorAll('tr[data-condition]')) {
    const checked = row.querySelector('input[type=radio]:checked');
    if (checked) labels[row.dataset.condition] = Number(checked.value);
  }
  const body = { labels };
  if (form.elements.comment) body.comment = form.elements.comment.value;
  const button = document.getElementById('submit');
  if (button) button.disabled = true;
  message.className = '';
  message.textContent = 'Saving…';
  try {
    const response = await fetch(config.submit_url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json',
                 'X-CSRFToken': form.elements.csrfmiddlewaretoken.value },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || `HTTP ${response.status}`);
    message.className = 'ok';
    message.textContent = data.task_status === 'adjudication'
      ? 'Saved. Annotators disagree: the task goes to adjudication.' : 'Saved.';
    setTimeout(() => { location.href = config.queue_url; }, 600);
  } catch (err) {
    message.className = 'error';
    message.textContent = `Not saved: ${err.message}`;
    if (button) button.disabled = false;
  }
});
