// Worklist page: rows from GET /api/worklist, paged and sorted on the server. Filters, quick filters,
// sorting and the page live in the query string (a reload or a shared link shows the same rows).
// Refreshed every 10 s while the tab is visible.
const me = JSON.parse(document.getElementById('me').textContent);
const form = document.getElementById('filters');
const body = document.querySelector('#worklist tbody');
const pager = document.getElementById('pager');
const pageSize = document.getElementById('page-size');
const COLUMNS = 10;
// Quick filters: each sets query parameters of its own and clears the others'.
const QUICK = { '': {}, mine: { mine: '1' }, unread: { unread: '1' }, draft: { status: 'draft ready' } };

// The view's state, from the URL first.
const state = { quick: '', ordering: '-received', offset: 0, limit: 50 };
const query = new URLSearchParams(location.search);
for (const [k, v] of query) if (form.elements[k] && form.elements[k].type !== 'checkbox') form.elements[k].value = v;
// Radiologists do not see unsupported studies (not a spine MRI) unless they ask; admins, who retry jobs, do.
form.elements.show_unsupported.checked = query.has('show_unsupported') ? query.get('show_unsupported') === '1' : me.can_retry;
state.quick = Object.keys(QUICK).find((k) => k && Object.entries(QUICK[k]).every(([p, v]) => query.get(p) === v)) || '';
if (state.quick === 'draft') form.elements.status.value = '';
state.ordering = query.get('ordering') || state.ordering;
state.offset = Math.max(0, parseInt(query.get('offset') || '0', 10) || 0);
state.limit = parseInt(query.get('limit') || '50', 10) || 50;
pageSize.value = String(state.limit);

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : '';
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text ?? '';
  if (className) td.className = className;
  return td;
}

function messageRow(text, className) {
  const tr = document.createElement('tr');
  const td = cell(text, className);
  td.colSpan = COLUMNS;
  tr.append(td);
  return tr;
}

async function retry(study, button) {
  button.disabled = true;
  const response = await fetch(`/api/studies/${encodeURIComponent(study.study_instance_uid)}/jobs`, {
    method: 'POST', credentials: 'same-origin', headers: { 'X-CSRFToken': csrfToken(), Accept: 'application/json' },
  });
  const data = await response.json().catch(() => ({}));
  button.textContent = response.ok ? 'Queued' : (data.detail || `Retry refused (${response.status})`);
  if (response.ok) load();
}

function row(study) {
  const tr = document.createElement('tr');
  tr.dataset.uid = study.study_instance_uid;
  tr.dataset.status = study.status || '';
  const model = study.model_version;
  const status = cell(study.status_label || study.status, 'status status-' + (study.status || '').replace(/\s+/g, '-'));
  status.dataset.status = study.status || '';
  if (study.qa_review) { // the peer review of this read (shown to its reader and to QA reviewers)
    const qa = document.createElement('span');
    qa.className = 'qa-marker';
    qa.dataset.testid = 'qa-marker';
    qa.textContent = study.qa_review;
    status.append(document.createElement('br'), qa);
  }
  tr.append(
    cell(`${study.patient_name || ''} (${study.patient_id || ''})`),
    cell(study.study_date),
    cell(study.study_description),
    status,
    cell(study.reason, 'reason'),
    cell(study.priority_label, 'priority priority-' + (study.priority ?? 'none')),
    cell(study.reader),
    cell(study.received_at ? new Date(study.received_at).toLocaleString() : ''),
    cell(model ? `${model.name} ${model.version}${model.synthetic_training ? ' (synthetic)' : ''}` : ''),
  );
  const td = document.createElement('td');
  td.className = 'actions';
  if (me.can_review) {
    // Our OHIF mode; the report panel loads this study's report from /api/studies/<uid>/report.
    const open = document.createElement('a');
    open.className = 'button open';
    open.href = `/viewer/spineagent?StudyInstanceUIDs=${encodeURIComponent(study.study_instance_uid)}`;
    open.textContent = 'Open';
    td.append(open);
  }
  if (me.can_retry && study.status === 'failed') {
    const again = document.createElement('button');
    again.type = 'button';
    again.className = 'retry';
    again.textContent = 'Retry analysis';
    again.addEventListener('click', () => retry(study, again));
    td.append(again);
  }
  tr.append(td);
  return tr;
}

function params() {
  const p = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (v && k !== 'show_unsupported') p.set(k, v);
  for (const [k, v] of Object.entries(QUICK[state.quick])) p.set(k, v);
  if (!form.elements.show_unsupported.checked) p.set('hide', 'unsupported');
  if (state.ordering !== '-received') p.set('ordering', state.ordering);
  if (state.offset) p.set('offset', String(state.offset));
  p.set('limit', String(state.limit));
  return p;
}

function showControls(count) {
  for (const b of form.querySelectorAll('[data-quick]')) b.setAttribute('aria-pressed', String(b.dataset.quick === state.quick));
  for (const b of document.querySelectorAll('button.sort')) {
    const key = b.dataset.sort;
    const dir = state.ordering === key ? 'ascending' : state.ordering === `-${key}` ? 'descending' : 'none';
    b.closest('th').setAttribute('aria-sort', dir);
    b.dataset.dir = dir;
  }
  const last = Math.max(0, Math.floor((count - 1) / state.limit) * state.limit);
  document.querySelector('[data-page=first]').disabled = state.offset === 0;
  document.querySelector('[data-page=prev]').disabled = state.offset === 0;
  document.querySelector('[data-page=next]').disabled = state.offset >= last;
  document.querySelector('[data-page=last]').disabled = state.offset >= last;
  return last;
}

let lastOffset = 0;
async function load() {
  const p = params();
  const shown = new URLSearchParams(p);
  shown.delete('hide');
  if (form.elements.show_unsupported.checked !== me.can_retry) shown.set('show_unsupported', form.elements.show_unsupported.checked ? '1' : '0');
  if (shown.get('limit') === '50') shown.delete('limit');
  history.replaceState(null, '', shown.size ? `?${shown}` : location.pathname);
  // Roles without reports.view_worklist get the plain study index: no report status.
  const url = me.can_worklist ? `/api/worklist?${p}` : `/api/studies/?limit=${state.limit}&offset=${state.offset}`;
  const response = await fetch(url, { credentials: 'same-origin' });
  const data = await response.json().catch(() => ({}));
  body.replaceChildren();
  if (!response.ok) {
    body.append(messageRow(data.detail || `Worklist unavailable (${response.status})`, 'error'));
    return;
  }
  if (data.count > 0 && state.offset >= data.count) { // the list shrank under us: show its last page
    state.offset = Math.max(0, Math.floor((data.count - 1) / state.limit) * state.limit);
    return load();
  }
  body.append(...data.results.map(row));
  if (!data.results.length) body.append(messageRow('No studies.'));
  const first = data.results.length ? state.offset + 1 : 0;
  const pages = Math.max(1, Math.ceil(data.count / state.limit));
  pager.textContent = `${first}–${state.offset + data.results.length} of ${data.count} studies · page `
    + `${Math.floor(state.offset / state.limit) + 1} of ${pages}`;
  pager.dataset.count = String(data.count);
  lastOffset = showControls(data.count);
}

form.addEventListener('submit', (e) => { e.preventDefault(); state.offset = 0; load(); });
form.elements.show_unsupported.addEventListener('change', () => { state.offset = 0; load(); });
for (const b of form.querySelectorAll('[data-quick]')) {
  b.addEventListener('click', () => {
    state.quick = b.dataset.quick;
    if (state.quick === 'draft') form.elements.status.value = '';
    if (state.quick === '') for (const name of ['status', 'date_from', 'date_to', 'reader']) form.elements[name].value = '';
    state.offset = 0;
    load();
  });
}
for (const b of document.querySelectorAll('button.sort')) {
  b.addEventListener('click', () => {
    const key = b.dataset.sort;
    // First click: the useful direction (newest dates, highest priority, workflow order, A-Z); again: reverse.
    const first = ['date', 'received', 'priority'].includes(key) ? `-${key}` : key;
    state.ordering = state.ordering === first ? (first.startsWith('-') ? key : `-${key}`) : first;
    state.offset = 0;
    load();
  });
}
document.querySelector('[data-page=first]').addEventListener('click', () => { state.offset = 0; load(); });
document.querySelector('[data-page=prev]').addEventListener('click', () => { state.offset = Math.max(0, state.offset - state.limit); load(); });
document.querySelector('[data-page=next]').addEventListener('click', () => { state.offset += state.limit; load(); });
document.querySelector('[data-page=last]').addEventListener('click', () => { state.offset = lastOffset; load(); });
pageSize.addEventListener('change', () => { state.limit = parseInt(pageSize.value, 10); state.offset = 0; load(); });
load();
setInterval(() => { if (!document.hidden) load(); }, 10000);

// Admins: who may send studies by DICOM C-STORE, as Orthanc enforces it (GET /api/dicom/modalities).
async function showIntake() {
  const section = document.getElementById('intake');
  if (!section) return;
  const response = await fetch('/api/dicom/modalities', { credentials: 'same-origin' });
  const data = await response.json().catch(() => ({}));
  const text = document.createElement('p');
  if (!response.ok) {
    text.textContent = data.detail || `DICOM intake unavailable (${response.status})`;
  } else {
    const senders = data.modalities.filter((m) => m.may_store)
      .map((m) => `${m.ae_title}@${m.host}:${m.port}`).join(', ');
    text.textContent = `DICOM C-STORE to AE title ${data.ae_title} (port ${data.port}) is accepted from `
      + `${senders || 'no modality'}; every other sender is refused. `
      + 'The list is configuration: SPINEAGENT_DICOM_MODALITIES (docs/security.md).';
  }
  section.append(text);
}
showIntake();
