// The report panel: what the study's analysis gave (or why it gave nothing), the findings linked to the draft's
// sentences and to the images, the editor, history and sign-off.
//
// Loads GET /api/studies/<uid>/report once, then, while the analysis may still change something, polls the
// small GET .../report/state (not audited, no text) and reloads the report only when that changed; polling
// stops once the server says the state is final. A radiologist who may edit claims the report (POST .../claim);
// another reader's report offers a take-over. Review controls (editor, RADPEER, Sign) appear only when there is
// something to review, or when the reader chooses to write a report without a draft.
import { html, useEffect, useRef, useState } from '../vendor.js';
import { api, reportUrl } from '../api.js';
import { setPanelHandlers } from '../commands.js';
import { Findings, sortedFindings, targetFor } from './Findings.js';
import { Editor } from './Editor.js';
import { History, SignedDocument } from './History.js';
import { Signoff } from './Signoff.js';
import { SimilarCases } from './SimilarCases.js';

const POLL_MS = 3000;
const ACTIVE_JOB = new Set(['queued', 'running']);

/** What changed for the panel between two polls (the report is reloaded when this differs). */
const fingerprint = (s) => JSON.stringify([s.state, s.status, s.current_number, s.version_count, s.result_id,
  s.job?.id, s.job?.status]);

function JobStatus({ job }) {
  if (!job) return null;
  const pct = Math.min(100, Math.round(job.progress || 0)); // InferenceJob.progress is 0-100
  return html`<div class="sa-job" data-testid="job-status" data-job-status=${job.status}>
    <span class=${`sa-pill sa-${job.status}`}>${job.status_label || job.status}</span>
    ${ACTIVE_JOB.has(job.status) && html` ${job.stage || ''} <progress max="100" value=${pct}></progress> ${pct}%`}
  </div>`;
}

/** No draft to review: the analysis runs, failed, found the study unsupported, or never ran. Says why, offers an
 * admin the retry and a radiologist an explicit start without a draft. */
function NoDraft({ report, onRetry, onScratch, retryMessage }) {
  const job = report.job;
  const canWrite = report.permissions?.edit;
  const canRetry = report.permissions?.retry_job;
  const text = {
    analysing: job?.status === 'succeeded' ? 'The analysis finished; the draft is being stored…'
      : 'The AI draft appears here when the analysis finishes.',
    failed: 'The analysis failed, so there is no AI draft.',
    unsupported: 'This study was not analysed: it is not a spine MRI SpineAgent can read.',
    not_analysed: 'This study has not been analysed, so there is no AI draft.',
  }[report.state];
  const testid = { failed: 'job-failed', unsupported: 'job-unsupported', not_analysed: 'not-analysed' }[report.state]
    || 'analysing';
  return html`<div class=${`sa-nodraft sa-nodraft-${report.state}`} data-testid=${testid}>
    <p>${text}</p>
    ${job?.error && report.state !== 'analysing' && html`<p class="sa-reason" data-testid="job-reason">
      <b>${report.state === 'unsupported' ? 'Reason' : 'Error'}:</b> ${job.error}</p>`}
    ${canRetry && report.state !== 'analysing' && html`<button type="button" data-testid="retry-job" onClick=${onRetry}>
      ${report.state === 'not_analysed' ? 'Analyse now' : 'Retry analysis'}</button>`}
    ${retryMessage && html`<span class="sa-muted" data-testid="retry-message"> ${retryMessage}</span>`}
    ${canWrite && report.state !== 'analysing' && html`<button type="button" data-testid="write-from-scratch"
      onClick=${onScratch}>Write a report without an AI draft</button>`}
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
    <${StudyScope} result=${result} />
  </div>`;
}

// Which region and levels the model read, where it got the region from, and a DICOM/image disagreement
// (spinefm.intake.decide_region): the reader checks these before trusting any level in the draft.
function StudyScope({ result }) {
  if (!result.region) return null;
  const source = { dicom: 'from the DICOM tags', image: 'from the images' }[result.region_source] || '';
  const coverage = result.coverage || [];
  const skipped = result.series_skipped || [];
  return html`<div class="sa-scope" data-testid="study-scope">
    <div>Region <b data-testid="region">${result.region}</b> <span class="sa-muted">${source}</span>
      ${coverage.length > 0 && html` · levels in view <b data-testid="coverage">${coverage[0]} to ${coverage[coverage.length - 1]}</b>`}</div>
    ${result.levels_note && html`<div class=${result.spine_check?.count_conflict ? 'sa-error' : 'sa-muted'} data-testid="levels-note">${result.levels_note}</div>`}
    ${result.region_disagreement && html`<div class="sa-error" data-testid="region-disagreement">${result.region_disagreement}</div>`}
    ${(result.series || []).length > 0 && html`<div class="sa-muted">Read: ${result.series.map((s) => s.label || s.sequence).join(', ')}</div>`}
    ${skipped.length > 0 && html`<div class="sa-error" data-testid="series-skipped">Not read: ${skipped.join('; ')}</div>`}
  </div>`;
}

export function Panel({ viewer }) {
  const uid = viewer.studyInstanceUID();
  const [report, setReport] = useState(null);
  const [refused, setRefused] = useState(null);
  const [active, setActive] = useState(-1); // index into the sorted findings (keyboard: next finding)
  const [highlighted, setHighlighted] = useState(new Set()); // conditions whose sentences are highlighted
  const [boxCount, setBoxCount] = useState(0);
  const [scratch, setScratch] = useState(false);
  const [retryMessage, setRetryMessage] = useState('');
  const [polling, setPolling] = useState(0); // bumped to start polling again (after a retry)
  const editor = useRef(null); // {flush(): Promise<number|null>, state()} from the Editor
  const opened = useRef(false);

  const reload = async () => {
    const { ok, status, data } = await api(reportUrl(uid));
    if (status === 401 || status === 403) return setRefused(data?.detail || 'Your role cannot open reports.');
    if (status === 404) return setRefused('This study is not in SpineAgent\'s index.');
    if (ok) setReport(data);
    else if (status === 0) setRefused(data.detail);
    return ok ? data : null;
  };

  // Load (and claim), then poll the state while the server says it may still change.
  useEffect(() => {
    let stop = false;
    let timer;
    let seen = null;
    const poll = async () => {
      const { ok, data } = await api(`${reportUrl(uid)}/state`);
      if (stop) return;
      if (ok && fingerprint(data) !== seen) {
        seen = fingerprint(data);
        const fresh = await reload();
        if (fresh?.permissions?.claim && fresh.current) await claim();
      }
      if (!ok || !data.final) timer = setTimeout(poll, POLL_MS);
    };
    const claim = async () => {
      await api(`${reportUrl(uid)}/claim`, { method: 'POST', body: {} });
      await reload();
    };
    (async () => {
      const first = await reload();
      if (stop || !first) return;
      if (first.permissions?.claim && first.current) await claim(); // a reader claims a draft, not a failure
      seen = fingerprint({ ...first, current_number: first.current?.number ?? null,
        version_count: first.versions.length });
      if (!first.final) timer = setTimeout(poll, POLL_MS);
    })();
    return () => { stop = true; clearTimeout(timer); };
  }, [uid, polling]);

  // Boxes carry their label on the image (condition, level, call, the finding's one score) from the API.
  const result = report?.result;
  const boxes = result?.boxes || [];
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

  // Open where the reading starts: T1 | T2 sagittal side by side (site setting), each on its mid-sagittal
  // slice, the top called finding's key slice in front when there is one.
  const findings = sortedFindings(result).map((f) => ({ ...f, target: targetFor(result, f) }));
  useEffect(() => {
    if (!report || opened.current || report.state === 'analysing') return;
    opened.current = true;
    const top = findings.find((f) => ['present', 'possible'].includes(f.call) && f.target);
    viewer.openReading({ series: report.series || [], target: top?.target || null,
      layout: window.config?.spineagent?.layout });
  }, [report?.state, report?.result_id]);

  const show = (target) => { if (target) viewer.jumpTo(target); };
  const jumpToFinding = (index) => {
    setActive(index);
    const f = findings[index];
    if (!f) return;
    setHighlighted(new Set([f.condition]));
    show(f.target);
  };
  // The cursor entered a sentence of the report: its findings are highlighted and the first is shown.
  const onSentence = (sentence) => {
    const conditions = sentence.links.map((l) => l.condition);
    setHighlighted(new Set(conditions));
    if (!sentence.links.length) return setActive(-1);
    const link = sentence.links[0];
    const index = findings.findIndex((f) => f.condition === link.condition);
    setActive(index);
    const target = link.box || link.key_slice || (index >= 0 ? findings[index].target : null);
    show(target);
  };

  // Alt+N / Alt+P next / previous finding, Ctrl+S (Cmd+S) save now: OHIF commands bound to its hotkeys
  // (commands.js), acting on this panel while it is mounted.
  const latest = useRef({});
  latest.current = { findings, active, jumpToFinding };
  useEffect(() => setPanelHandlers({
    step(direction) {
      const { findings: list, active: at, jumpToFinding: jump } = latest.current;
      // Next finding that has somewhere to show (a key slice or a box).
      for (let i = 1; i <= list.length; i++) {
        const next = (at + direction * i + list.length * i) % list.length;
        if (list[next].target) return jump(next);
      }
      return undefined;
    },
    save: () => editor.current?.flush(),
  }), []);

  if (!uid) return html`<div class="sa-panel"><p>No study in the URL.</p></div>`;
  if (refused) return html`<div class="sa-panel" data-testid="refused"><h3>Report</h3><p class="sa-error">${refused}</p></div>`;
  if (!report) return html`<div class="sa-panel"><p>Loading report…</p></div>`;

  const takeOver = async () => {
    const { ok, data } = await api(`${reportUrl(uid)}/claim`, { method: 'POST', body: { take_over: true } });
    if (!ok) setRefused(data?.detail || 'Could not take the report over.');
    reload();
  };
  const retryJob = async () => {
    setRetryMessage('');
    const { ok, data } = await api(`/api/studies/${encodeURIComponent(uid)}/jobs`, { method: 'POST' });
    setRetryMessage(ok ? 'Queued: the panel updates when the analysis finishes.' : (data?.detail || 'Retry refused'));
    if (ok) { opened.current = false; setPolling((n) => n + 1); }
  };
  const hasText = Boolean(report.current);
  const writing = !report.locked && (hasText || scratch);
  return html`<div class="sa-panel" data-testid="report-panel" data-status=${report.status} data-state=${report.state}
      data-final=${String(report.final)}>
    <div class="sa-head">
      <span class=${`sa-pill sa-report-${report.status}`} data-testid="report-status">${report.status_label || report.status}</span>
      ${report.reader && html`<span class="sa-muted"> reader ${report.reader}</span>`}
      <${JobStatus} job=${report.job} />
    </div>
    ${report.permissions?.take_over && html`<div class="sa-claimed" data-testid="claimed">
      <p>${report.reader} is reading this report. Editing and signing need a take-over, which is recorded.</p>
      <button type="button" data-testid="take-over" onClick=${takeOver}>Take over</button>
    </div>`}
    ${!hasText && !report.locked && html`<${NoDraft} report=${report} onRetry=${retryJob} retryMessage=${retryMessage}
      onScratch=${() => setScratch(true)} />`}
    ${hasText && ['failed', 'unsupported'].includes(report.job?.status) && html`<p class="sa-note" data-testid="rerun-failed">
      The latest re-analysis ${report.job.status === 'failed' ? 'failed' : 'found the study unsupported'}: ${report.job.error}.
      The draft below is from the earlier analysis.</p>`}
    <${SRExport} uid=${uid} report=${report} onRetried=${reload} />
    ${result && html`<${ModelLine} report=${report} />`}
    ${result && html`<${Findings} report=${report} findings=${findings} active=${active} highlighted=${highlighted}
        onJump=${jumpToFinding} onShowBox=${show} viewer=${viewer} boxCount=${boxCount} />`}
    ${report.locked && html`<${SignedDocument} uid=${uid} report=${report} onChanged=${reload} />`}
    ${writing && html`<${Editor} key=${report.locked ? 'locked' : 'open'} uid=${uid} report=${report} editorRef=${editor}
        onChanged=${reload} onSentence=${onSentence} highlighted=${highlighted}
        canEdit=${Boolean(report.permissions?.edit)} fromScratch=${scratch && !hasText} />`}
    <${Signoff} uid=${uid} report=${report} editor=${editor} onSigned=${reload} hasText=${hasText} />
    <${History} uid=${uid} report=${report} />
    ${result && html`<${SimilarCases} cases=${result.similar_cases || []} source=${result.similar_source}
        synthetic=${result.synthetic_training} />`}
    <p class="sa-muted sa-keys">Keys: <kbd>Alt</kbd>+<kbd>N</kbd> / <kbd>Alt</kbd>+<kbd>P</kbd> next / previous finding,
      <kbd>Ctrl</kbd>+<kbd>S</kbd> save now. Click a sentence of the report to see its finding.</p>
  </div>`;
}
