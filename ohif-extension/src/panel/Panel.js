// The report panel: job status, findings (jump + boxes), draft editor, RADPEER sign-off, similar cases.
// Loads GET /api/studies/<uid>/report and polls it until the draft is there and the job is done. A radiologist
// who may edit claims the report (POST .../claim, CSRF-protected); another reader's report offers a take-over.
import { html, useEffect, useRef, useState } from '../vendor.js';
import { api, reportUrl } from '../api.js';
import { Findings, sortedFindings, statusOf, targetFor } from './Findings.js';
import { Editor } from './Editor.js';
import { Signoff } from './Signoff.js';
import { SimilarCases } from './SimilarCases.js';

const POLL_MS = 3000;
const ACTIVE_JOB = new Set(['queued', 'running']);

function JobStatus({ job }) {
  if (!job) return html`<p class="sa-muted">No analysis job for this study.</p>`;
  const pct = Math.min(100, Math.round(job.progress || 0)); // InferenceJob.progress is 0-100
  return html`<div class="sa-job" data-testid="job-status">
    <span class=${`sa-pill sa-${job.status}`}>${job.status}</span>
    ${ACTIVE_JOB.has(job.status) && html` ${job.stage || ''} <progress max="100" value=${pct}></progress> ${pct}%`}
    ${job.error && html`<p class="sa-error">${job.error}</p>`}
  </div>`;
}

// A DICOM SR export that failed is the reader's business too (other PACS will not see the AI results).
function SRExport({ uid, report, onRetried }) {
  const sr = report.sr_export;
  const [message, setMessage] = useState('');
  if (!sr || sr.status !== 'failed') return null;
  const retry = async () => {
    const { ok, data } = await api(`/api/studies/${encodeURIComponent(uid)}/result/sr-export`, { method: 'POST' });
    setMessage(ok ? `SR export ${data.sr_status}` : (data?.detail || 'Retry refused'));
    onRetried();
  };
  return html`<div class="sa-error" data-testid="sr-export-failed">
    DICOM SR export failed: ${sr.error || 'unknown reason'}
    ${report.permissions?.retry_sr_export && html` <button type="button" onClick=${retry}>Retry export</button>`}
    ${message && html` <span class="sa-muted">${message}</span>`}
  </div>`;
}

function ModelLine({ report }) {
  const mv = report.model_version;
  const result = report.result || {};
  const synthetic = result.synthetic_training ?? mv?.synthetic_training;
  return html`<div class="sa-model">
    Model <b>${result.model_name || mv?.name || '?'} ${result.model_version || mv?.version || ''}</b>
    ${result.draft_backend && html`<div class="sa-drafter" data-testid="drafter" title=${result.draft_fallback || ''}>
      Draft by ${result.draft_backend}${result.draft_fallback ? ': ' + result.draft_fallback : ''}</div>`}
    ${synthetic && html`<div class="sa-synthetic" data-testid="synthetic-label">Trained on synthetic phantoms, not on patient data</div>`}
  </div>`;
}

export function Panel({ viewer }) {
  const uid = viewer.studyInstanceUID();
  const [report, setReport] = useState(null);
  const [refused, setRefused] = useState(null);
  const [active, setActive] = useState(-1); // index into the sorted findings (keyboard: next finding)
  const [boxCount, setBoxCount] = useState(0);
  const editor = useRef(null); // {flush(): Promise<number|null>} from the Editor

  // Load, then poll while the analysis is under way or the draft is not written yet.
  useEffect(() => {
    let stop = false;
    let timer;
    const load = async () => {
      let { ok, status, data } = await api(reportUrl(uid));
      if (ok && data.permissions?.claim) {
        await api(`${reportUrl(uid)}/claim`, { method: 'POST', body: {} });
        ({ ok, status, data } = await api(reportUrl(uid)));
      }
      if (stop) return;
      if (status === 401 || status === 403) return setRefused(data?.detail || 'Your role cannot open reports.');
      if (status === 404) return setRefused('This study is not in SpineAgent\'s index.');
      if (ok) setReport(data);
      const pending = !ok || !data.current || ACTIVE_JOB.has(data.job?.status);
      if (pending) timer = setTimeout(load, POLL_MS);
    };
    load();
    return () => { stop = true; clearTimeout(timer); };
  }, [uid]);

  // Draw the boxes once OHIF has the series' metadata; retry until every box is on its image.
  // Each box carries its condition's call (present / possible / absent / not validated), so its label can say so.
  const calls = new Map((report?.result?.conditions || []).map((c) => [c.condition, statusOf(c)]));
  const boxes = (report?.result?.boxes || []).map((b) => ({
    ...b, present: calls.get(b.condition) === 'present', status: calls.get(b.condition),
  }));
  useEffect(() => {
    if (!boxes.length) return undefined;
    let tries = 0;
    const timer = setInterval(() => {
      const count = viewer.drawBoxes(boxes);
      setBoxCount(count);
      if (count >= boxes.length || ++tries > 120) clearInterval(timer);
    }, 1000);
    return () => clearInterval(timer);
  }, [report?.result_id]);

  const findings = sortedFindings(report?.result).map((f) => ({ ...f, target: targetFor(report?.result, f) }));
  const jumpToFinding = (index) => {
    setActive(index);
    if (findings[index]?.target) viewer.jumpTo(findings[index].target);
  };

  // Shortcuts: Alt+N / Alt+P next / previous finding, Ctrl+S (Cmd+S) save now.
  const latest = useRef({});
  latest.current = { findings, active, jumpToFinding };
  useEffect(() => {
    const onKey = (event) => {
      const { findings: list, active: at, jumpToFinding: jump } = latest.current;
      const key = event.key.toLowerCase();
      if (event.altKey && (key === 'n' || key === 'p' || event.code === 'KeyN' || event.code === 'KeyP') && list.length) {
        event.preventDefault();
        event.stopPropagation();
        const step = (key === 'p' || event.code === 'KeyP') ? -1 : 1;
        // Next finding that has somewhere to show (a key slice or a box).
        for (let i = 1; i <= list.length; i++) {
          const next = (at + step * i + list.length * i) % list.length;
          if (list[next].target) return jump(next);
        }
      } else if ((event.ctrlKey || event.metaKey) && key === 's') {
        event.preventDefault();
        event.stopPropagation();
        editor.current?.flush();
      }
    };
    window.addEventListener('keydown', onKey, true);
    return () => window.removeEventListener('keydown', onKey, true);
  }, []);

  if (!uid) return html`<div class="sa-panel"><p>No study in the URL.</p></div>`;
  if (refused) return html`<div class="sa-panel" data-testid="refused"><h3>Report</h3><p class="sa-error">${refused}</p></div>`;
  if (!report) return html`<div class="sa-panel"><p>Loading report…</p></div>`;

  const reload = async () => {
    const { ok, data } = await api(reportUrl(uid));
    if (ok) setReport(data);
  };
  const takeOver = async () => {
    const { ok, data } = await api(`${reportUrl(uid)}/claim`, { method: 'POST', body: { take_over: true } });
    if (!ok) setRefused(data?.detail || 'Could not take the report over.');
    reload();
  };
  return html`<div class="sa-panel" data-testid="report-panel" data-status=${report.status}>
    <div class="sa-head">
      <span class="sa-pill" data-testid="report-status">${report.status}</span>
      ${report.reader && html`<span class="sa-muted"> reader ${report.reader}</span>`}
    </div>
    ${report.permissions?.take_over && html`<div class="sa-claimed" data-testid="claimed">
      <p>${report.reader} is reading this report. Editing and signing need a take-over, which is recorded.</p>
      <button type="button" data-testid="take-over" onClick=${takeOver}>Take over</button>
    </div>`}
    <${JobStatus} job=${report.job} />
    <${SRExport} uid=${uid} report=${report} onRetried=${reload} />
    ${report.result && html`<${ModelLine} report=${report} />`}
    ${report.result && html`<${Findings} result=${report.result} findings=${findings} active=${active}
        onJump=${jumpToFinding} viewer=${viewer} boxCount=${boxCount} />`}
    <${Editor} uid=${uid} report=${report} editorRef=${editor} onChanged=${reload} />
    <${Signoff} uid=${uid} report=${report} editor=${editor} onSigned=${reload} />
    ${report.result && html`<${SimilarCases} cases=${report.result.similar_cases || []} />`}
    <p class="sa-muted sa-keys">Keys: <kbd>Alt</kbd>+<kbd>N</kbd> / <kbd>Alt</kbd>+<kbd>P</kbd> next / previous finding,
      <kbd>Ctrl</kbd>+<kbd>S</kbd> save now.</p>
  </div>`;
}
