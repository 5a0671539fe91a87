// Task page: choose a value per row (mouse or keyboard), then send the labels to the annotations API
// (session cookie + CSRF token) and open the next task or the queue. Blind mode: "Reveal suggestions"
// posts the complete first pass and reloads; the server then renders the extraction (it never sent it before).
const config = JSON.parse(document.getElementById('task-config').textContent);
const form = document.getElementById('labels');
const message = document.getElementById('message');
const progress = document.getElementById('progress');
const revealButton = document.getElementById('reveal');
const rows = [...form.querySelectorAll('tr[data-condition]')];
const editable = config.state !== 'readonly';
// Keys 1/2/3 in the order of the columns: present, absent, uncertain.
const CHOICES = { 1: '1', 2: '0', 3: '-1' };
let active = 0;
let busy = false;

const valueOf = (row) => row.querySelector('input[type=radio]:checked')?.value;
const missing = () => rows.filter((row) => valueOf(row) === undefined);

function mark(row) {
  const value = valueOf(row);
  const suggested = row.dataset.suggested;
  const differs = value !== undefined && suggested !== '' && value !== suggested;
  // Assisted: the row no longer holds the preset suggestion. Revealed / read-only: it differs from it.
  row.classList.toggle('changed', config.state === 'assisted' && differs);
  row.classList.toggle('differs', config.state !== 'assisted' && config.state !== 'adjudicate' && differs);
  row.classList.toggle('undecided', value === undefined);
}

function update() {
  rows.forEach(mark);
  const left = missing().length;
  if (left === 0 && message.className === 'error' && message.dataset.incomplete) say('');
  if (progress) progress.textContent = `${rows.length - left} of ${rows.length} rows decided`;
  if (revealButton) revealButton.disabled = left > 0 || busy;
}

function setActive(i, focus = true) {
  active = Math.max(0, Math.min(rows.length - 1, i));
  rows.forEach((row, j) => row.classList.toggle('active', j === active));
  if (focus) {
    rows[active].focus({ preventScroll: true });
    rows[active].scrollIntoView({ block: 'nearest' });
  }
}

function choose(value) {
  const input = rows[active].querySelector(`input[value="${value}"]`);
  if (!input || input.disabled) return;
  input.checked = true;
  update();
  // On to the next undecided row (adjudication starts with only the disputed ones empty), else the next row.
  const next = rows.findIndex((row, j) => j > active && valueOf(row) === undefined);
  if (next >= 0) setActive(next);
  else if (active < rows.length - 1) setActive(active + 1);
}

function labels() {
  const out = {};
  for (const row of rows) {
    const value = valueOf(row);
    if (value !== undefined) out[row.dataset.condition] = Number(value);
  }
  return out;
}

function say(text, kind = '') {
  delete message.dataset.incomplete;
  message.className = kind;
  message.textContent = text;
}

async function post(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-CSRFToken': form.elements.csrfmiddlewaretoken.value },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || `HTTP ${response.status}`);
  return data;
}

function requireComplete(what) {
  const left = missing();
  if (left.length === 0) return true;
  const names = left.slice(0, 3).map((r) => r.dataset.name).join(', ');
  say(`Decide every row before you ${what}: ${names}${left.length > 3 ? ` and ${left.length - 3} more` : ''}.`, 'error');
  message.dataset.incomplete = '1';
  setActive(rows.indexOf(left[0]));
  return false;
}

function setBusy(value) {
  busy = value;
  for (const b of form.querySelectorAll('button')) b.disabled = value;
  update();
}

async function submit(next) {
  if (busy || !editable || !requireComplete('submit')) return;
  const body = { labels: labels() };
  if (config.state === 'adjudicate') body.revision = config.revision;
  else {
    body.mode = config.state === 'assisted' ? 'assisted' : 'blind';  // the mode this page was opened in
    if (form.elements.comment) body.comment = form.elements.comment.value;
  }
  setBusy(true);
  say('Saving…');
  try {
    const data = await post(config.submit_url, body);
    say(data.task_status === 'adjudication'
      ? 'Saved. Annotators disagree: the task goes to adjudication.' : 'Saved.', 'ok');
    location.href = next ? config.next_url : config.queue_url;
  } catch (err) {
    say(`Not saved: ${err.message}`, 'error');
    setBusy(false);
  }
}

async function reveal() {
  if (busy || config.state !== 'blind' || !requireComplete('reveal the suggestions')) return;
  setBusy(true);
  say('Keeping your first pass…');
  try {
    await post(config.reveal_url, { labels: labels() });
    location.reload();  // the server now renders the suggestions next to your first pass
  } catch (err) {
    say(`Not revealed: ${err.message}`, 'error');
    setBusy(false);
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  submit(event.submitter ? event.submitter.dataset.next === '1' : true);
});
form.addEventListener('change', (event) => {
  const row = event.target.closest('tr[data-condition]');
  if (row) setActive(rows.indexOf(row), false);
  update();
});
form.addEventListener('click', (event) => {
  const row = event.target.closest('tr[data-condition]');
  if (row && event.target.tagName !== 'INPUT') setActive(rows.indexOf(row));
});
revealButton?.addEventListener('click', reveal);

document.addEventListener('keydown', (event) => {
  const target = event.target;
  const typing = target.tagName === 'TEXTAREA' || (target.tagName === 'INPUT' && target.type !== 'radio');
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    submit(true);
    return;
  }
  if (typing) {
    if (event.key === 'Escape') { target.blur(); setActive(active); }
    return;
  }
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  let handled = true;
  if (key === 'j' || key === 'ArrowDown') setActive(active + 1);
  else if (key === 'k' || key === 'ArrowUp') setActive(active - 1);
  else if (editable && CHOICES[key] !== undefined) choose(CHOICES[key]);
  else if (editable && key === 'Enter' && !['BUTTON', 'A'].includes(target.tagName)) submit(true);
  else if (key === 'r' && config.state === 'blind') reveal();
  else if (key === 'c' && form.elements.comment) form.elements.comment.focus();
  else handled = false;
  if (handled) event.preventDefault();
});

update();
const firstUndecided = missing()[0];
setActive(firstUndecided ? rows.indexOf(firstUndecided) : 0, editable);
