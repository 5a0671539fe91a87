// Task page: one row per condition x level ("study" when no level); choose a value per row (mouse or keyboard),
// add or remove a row's level, then send the per-level labels to the annotations API (session cookie + CSRF
// token) and open the next task or the queue. Blind mode: "Reveal suggestions" posts the complete first pass and
// reloads; the server then renders the extraction and its levels (it never sent them before).
const config = JSON.parse(document.getElementById('task-config').textContent);
const form = document.getElementById('labels');
const message = document.getElementById('message');
const progress = document.getElementById('progress');
const revealButton = document.getElementById('reveal');
const tbody = form.querySelector('#label-table tbody');
const addInput = document.getElementById('add-level');
const addFor = document.getElementById('add-level-for');
let rows = [...form.querySelectorAll('tr[data-condition]')];
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

const rowsOf = (key) => rows.filter((row) => row.dataset.condition === key);
const NAMES = { 1: 'present', 0: 'absent', '-1': 'uncertain' };

function update() {
  rows.forEach(mark);
  for (const row of rows) {
    const button = row.querySelector('.remove-level');
    if (button) button.hidden = rowsOf(row.dataset.condition).length < 2;
  }
  if (addFor && rows[active]) addFor.textContent = rows[active].dataset.name;
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

function levelLabels() {
  const out = {};
  for (const row of rows) {
    const value = valueOf(row);
    if (value !== undefined) (out[row.dataset.condition] ||= {})[row.dataset.level] = Number(value);
  }
  return out;
}


/** A new row for ``level`` of the active row's condition, undecided, placed cranio-caudally among its levels. */
function addLevel(level) {
  const source = rows[active];
  if (!editable || !source) return false;
  const key = source.dataset.condition;
  level = (level || '').trim();
  const known = config.known_levels.find((lv) => lv.toLowerCase() === level.toLowerCase());
  if (!known || (config.level_free.includes(key) && known !== 'study')) {
    say(`Unknown level "${level}": use study, a level such as L4-L5 or L3, or multilevel.`, 'error');
    return false;
  }
  const same = rowsOf(key);
  const existing = same.find((row) => row.dataset.level === known);
  if (existing) { setActive(rows.indexOf(existing)); return true; }
  const row = same[same.length - 1].cloneNode(true);
  row.dataset.level = known;
  row.classList.add('more-level');
  row.classList.remove('active', 'changed', 'differs');
  row.querySelector('.condition-name').textContent = '';
  row.querySelectorAll('.flag').forEach((f) => f.remove());
  row.querySelector('.level-tag').textContent = known;
  for (const input of row.querySelectorAll('input[type=radio]')) {
    input.name = `${key}@${known}`;
    input.checked = false;
    input.setAttribute('aria-label', `${row.dataset.name} at ${known} ${NAMES[input.value]}`);
  }
  const hint = levelSuggestion(key, known);
  row.dataset.suggested = hint === null ? '' : String(hint);
  const cell = (cls) => row.querySelector(`td.${cls}`);
  if (cell('suggested')) cell('suggested').textContent = hint === null ? '' : NAMES[hint];
  if (cell('evidence')) {
    cell('evidence').replaceChildren(...(config.level_evidence?.[key]?.[known] || []).map((e) => {
      const line = document.createElement('span');
      line.className = 'ev-line';
      const tag = document.createElement('span');
      tag.className = 'level-tag';
      tag.textContent = e.levels;
      line.append(tag, ` ${e.text}`);
      return line;
    }));
  }
  if (cell('first-pass')) cell('first-pass').textContent = NAMES[config.first_pass_levels?.[key]?.[known] ?? 0];
  if (cell('annotators')) {
    cell('annotators').textContent = config.annotator_levels
      .map((a) => `${a.annotator}: ${NAMES[a.level_labels[key]?.[known] ?? 0]}`).join(', ');
  }
  const model = row.querySelector('td.model');
  if (model) model.textContent = '';
  const after = same.filter((r) => config.known_levels.indexOf(r.dataset.level) < config.known_levels.indexOf(known));
  if (after.length) after[after.length - 1].after(row);
  else same[0].before(row);
  rows = [...form.querySelectorAll('tr[data-condition]')];
  nameFirst(key);
  say('');
  setActive(rows.indexOf(row));
  update();
  return true;
}

/** The condition's name on its first (cranio-caudal) row only. */
function nameFirst(key) {
  rowsOf(key).forEach((row, i) => {
    row.querySelector('.condition-name').textContent = i === 0 ? row.dataset.name : '';
    row.classList.toggle('more-level', i > 0);
  });
}

function levelSuggestion(key, level) {
  if (!config.suggested || config.suggested[key] === undefined) return null;
  const at = config.suggested_levels?.[key] || {};
  if (at[level] !== undefined) return at[level];
  return level === 'study' ? config.suggested[key] : 0;
}

function removeLevel(row) {
  if (!editable || !row || rowsOf(row.dataset.condition).length < 2) return;
  const key = row.dataset.condition;
  const index = rows.indexOf(row);
  const stay = index > 0 && rows[index - 1].dataset.condition === key ? rows[index - 1] : rows[index + 1];
  row.remove();
  rows = [...form.querySelectorAll('tr[data-condition]')];
  nameFirst(key);
  setActive(rows.indexOf(stay));  // the condition's neighbouring level
  update();
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
  const body = { level_labels: levelLabels() };
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
    await post(config.reveal_url, { level_labels: levelLabels() });
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
  if (row && event.target.classList.contains('remove-level')) { removeLevel(row); return; }
  if (row && event.target.tagName !== 'INPUT') setActive(rows.indexOf(row));
});
document.getElementById('add-level-button')?.addEventListener('click', () => {
  if (addInput.value.trim() === '') { addInput.focus(); return; }
  if (addLevel(addInput.value)) addInput.value = '';
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
    if (event.key === 'Enter' && target === addInput) {
      event.preventDefault();
      if (addLevel(addInput.value)) addInput.value = '';
    }
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
  else if (editable && key === 'l' && addInput) addInput.focus();
  else if (editable && key === 'x') removeLevel(rows[active]);
  else handled = false;
  if (handled) event.preventDefault();
});

update();
const firstUndecided = missing()[0];
setActive(firstUndecided ? rows.indexOf(firstUndecided) : 0, editable);
