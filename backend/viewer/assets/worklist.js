// Worklist page: rows from GET /api/worklist, filters in the query string, refreshed every 10 s.
const me = JSON.parse(document.getElementById('me').textContent);
const form = document.getElementById('filters');
const body = document.querySelector('#worklist tbody');
const pager = document.getElementById('pager');

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text ?? '';
  return td;
}

function row(study) {
  const tr = document.createElement('tr');
  tr.dataset.uid = study.study_instance_uid;
  const model = study.model_version;
  tr.append(
    cell(`${study.patient_name || ''} (${study.patient_id || ''})`),
    cell(study.study_date),
    cell(study.study_description),
    cell(study.status),
    cell(study.reader),
    cell(model ? `${model.name} ${model.version}${model.synthetic_training ? ' (synthetic)' : ''}` : ''),
  );
  const td = document.createElement('td');
  tr.children[3].className = 'status status-' + (study.status || '').replace(/\s+/g, '-');
  if (me.can_review) {
    // Our OHIF mode; the report panel loads this study's report from /api/studies/<uid>/report.
    const open = document.createElement('a');
    open.className = 'button open';
    open.href = `/viewer/spineagent?StudyInstanceUIDs=${encodeURIComponent(study.study_instance_uid)}`;
    open.textContent = 'Open';
    td.append(open);
  }
  tr.append(td);
  return tr;
}

async function load() {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (v) params.set(k, v);
  history.replaceState(null, '', params.size ? `?${params}` : location.pathname);
  // Roles without reports.view_worklist get the plain study index: no report status.
  const url = me.can_worklist ? `/api/worklist?${params}` : '/api/studies/?limit=200';
  const response = await fetch(url, { credentials: 'same-origin' });
  const data = await response.json().catch(() => ({}));
  body.replaceChildren();
  if (!response.ok) {
    body.append(Object.assign(document.createElement('tr'), { innerHTML: '<td colspan="7" class="error"></td>' }));
    body.querySelector('td').textContent = data.detail || `Worklist unavailable (${response.status})`;
    return;
  }
  body.append(...data.results.map(row));
  if (!data.results.length) body.append(Object.assign(document.createElement('tr'), { innerHTML: '<td colspan="7">No studies.</td>' }));
  pager.textContent = `${data.results.length} of ${data.count} studies`;
}

for (const [k, v] of new URLSearchParams(location.search)) if (form.elements[k]) form.elements[k].value = v;
form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
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
