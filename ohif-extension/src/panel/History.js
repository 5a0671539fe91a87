// The report's history (every immutable version: who, when, AI draft / edit / signed / addendum) with a
// word-level diff of any version against the AI draft or the version before it (GET .../report/diff, the
// server's diff), and the signed report with its addenda as one read-only document plus "Add addendum".
import { html, useState } from '../vendor.js';
import { api, reportUrl } from '../api.js';
import * as pending from './pending.js';

const KIND = { 'ai draft': 'AI draft', edit: 'Edit', signed: 'Signed', addendum: 'Addendum' };
const when = (iso) => (iso ? new Date(iso).toLocaleString() : '');

function DiffView({ diff }) {
  if (diff.error) return html`<p class="sa-error" data-testid="diff-error">${diff.error}</p>`;
  const w = diff.words;
  return html`<div class="sa-diff" data-testid="diff" data-from=${diff.from} data-to=${diff.to}>
    <p class="sa-muted">Version ${diff.from} → ${diff.to}: <span data-testid="diff-counts">${`${w.inserted} words added, ${w.deleted} removed`}</span>, similarity ${Math.round(diff.similarity * 100)}%</p>
    <pre class="sa-merge-text">${diff.ops.map((op, i) => (op.op === 'equal' ? op.text
      : op.op === 'insert' ? html`<ins key=${i}>${op.text}</ins>` : html`<del key=${i}>${op.text}</del>`))}</pre>
  </div>`;
}

export function History({ uid, report }) {
  const [diff, setDiff] = useState(null);
  const versions = report.versions || [];
  if (!versions.length) return null;
  const aiNumber = report.ai_draft?.number;
  const body = versions.filter((v) => v.source !== 'addendum');
  const show = async (from, to) => {
    const { ok, data } = await api(`${reportUrl(uid)}/diff?from=${from}&to=${to}`);
    setDiff(ok ? data : { error: data?.detail || 'Diff unavailable' });
  };
  return html`<section data-testid="history">
    <details open=${versions.length > 1}>
      <summary><h4 class="sa-inline">History <span class="sa-muted">${versions.length} version${versions.length > 1 ? 's' : ''}</span></h4></summary>
      <ol class="sa-history">
        ${versions.map((v) => {
          const previous = body.filter((p) => p.number < v.number && v.source !== 'addendum').pop();
          return html`<li key=${v.number} data-number=${v.number} data-kind=${v.kind}>
            <b>v${v.number}</b> <span class=${`sa-kind sa-kind-${v.kind.replace(' ', '-')}`}>${KIND[v.kind] || v.kind}</span>
            <span class="sa-muted"> ${v.author || (v.source === 'ai' ? 'model' : '')} · ${when(v.created_at)}</span>
            ${v.source !== 'addendum' && aiNumber != null && v.number !== aiNumber && html`<button type="button"
              class="sa-link" data-testid="diff-ai" onClick=${() => show(aiNumber, v.number)}>vs AI draft</button>`}
            ${v.source !== 'addendum' && previous && previous.number !== aiNumber && html`<button type="button"
              class="sa-link" data-testid="diff-previous" onClick=${() => show(previous.number, v.number)}>vs v${previous.number}</button>`}
          </li>`;
        })}
      </ol>
      ${diff && html`<${DiffView} diff=${diff} />`}
    </details>
  </section>`;
}

/** The signed report and its addenda, read-only, as one document; "Add addendum" for who may. */
export function SignedDocument({ uid, report, onChanged }) {
  // Text typed in this tab that a save could not store because the report was signed meanwhile: its lines
  // that the signed text lacks are what the reader may still want to add.
  const kept = pending.recall(uid);
  const signedLines = new Set((report.current?.text || '').split('\n').map((l) => l.trim()));
  const unsaved = kept ? kept.text.split('\n').filter((l) => l.trim() && !signedLines.has(l.trim())).join('\n') : '';
  const [text, setText] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const add = async () => {
    setBusy(true);
    setError('');
    const { ok, data } = await api(`${reportUrl(uid)}/addenda`, { method: 'POST', body: { text } });
    setBusy(false);
    if (!ok) return setError(data?.detail || 'The addendum was not saved');
    setText('');
    pending.forget(uid);
    onChanged?.();
  };
  return html`<section data-testid="signed-document">
    <h4>Report <span class="sa-muted">signed by ${report.signed_by}, ${when(report.signed_at)} (version ${report.signed_number})</span></h4>
    <div class="sa-document">
      <pre data-testid="signed-text">${report.current?.text || ''}</pre>
      ${(report.addenda || []).map((a) => html`<div class="sa-addendum" key=${a.number} data-testid="addendum">
        <b>ADDENDUM</b> <span class="sa-muted">${a.author || ''}, ${when(a.created_at)} (version ${a.number})</span>
        <pre>${a.text}</pre></div>`)}
    </div>
    ${unsaved && html`<div class="sa-conflict" data-testid="unsaved-after-signing">
      <p>These lines were typed in this tab but not saved before the report was signed:</p>
      <pre class="sa-merge-text">${unsaved}</pre>
      ${report.permissions?.addendum && html`<button type="button" onClick=${() => setText(unsaved)}>Use it as an addendum</button>`}
      <button type="button" onClick=${() => { pending.forget(uid); onChanged?.(); }}>Discard it</button>
    </div>`}
    ${report.permissions?.addendum && html`<div class="sa-add-addendum">
      <textarea class="sa-editor" rows="3" data-testid="addendum-text" placeholder="Addendum to the signed report"
        value=${text} onInput=${(e) => setText(e.target.value)}></textarea>
      ${error && html`<p class="sa-error">${error}</p>`}
      <button type="button" data-testid="add-addendum" disabled=${busy || !text.trim()} onClick=${add}>Add addendum</button>
    </div>`}
  </section>`;
}
