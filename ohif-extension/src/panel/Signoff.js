// RADPEER score of the AI draft against the final read, then Sign (locks the report). Offered only when there
// is a version to sign; a report written without an AI draft is signed without a score (nothing to rate).
// The scores, their meanings and which need a comment come with the report (backend/reports/radpeer.py).
import { html, useState } from '../vendor.js';
import { api, reportUrl } from '../api.js';

export function Signoff({ uid, report, editor, onSigned, hasText }) {
  const [score, setScore] = useState('');
  const [comment, setComment] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  if (report.locked) {
    return html`<section data-testid="signed"><h4>Signed</h4>
      <p>By ${report.signed_by} at ${new Date(report.signed_at).toLocaleString()}, version ${report.signed_number}.
        ${report.radpeer && html` RADPEER <b>${report.radpeer.score}</b>${report.radpeer.comment ? `: ${report.radpeer.comment}` : ''}`}</p>
    </section>`;
  }
  if (!report.permissions?.sign || !hasText) return null;
  const rated = Boolean(report.ai_draft);
  const choices = report.radpeer_choices || [];
  const needsComment = (value) => choices.some((c) => c.score === value && c.needs_comment);
  const commented = choices.filter((c) => c.needs_comment).map((c) => c.score).join(', ');

  const commentMissing = rated && needsComment(score) && !comment.trim();
  const sign = async () => {
    setBusy(true);
    setError('');
    const number = await editor.current?.flush(); // sign exactly what is on screen
    const state = editor.current?.state();
    if (number == null || state !== 'saved') {
      setBusy(false);
      return setError(state === 'stale' ? 'Resolve the newer version first.' : 'Nothing saved to sign yet.');
    }
    const { ok, data } = await api(`${reportUrl(uid)}/sign`, {
      method: 'POST', body: rated ? { number, radpeer_score: score, radpeer_comment: comment } : { number },
    });
    setBusy(false);
    if (!ok) return setError(data?.detail || 'Signing failed');
    onSigned?.();
  };

  if (!rated) {
    return html`<section class="sa-radpeer" data-testid="sign-unrated">
      <h4>Sign</h4>
      <p class="sa-muted">No AI draft to score: this report is signed without RADPEER.</p>
      ${error && html`<p class="sa-error" data-testid="sign-error">${error}</p>`}
      <button class="sa-sign" disabled=${busy} onClick=${sign}>Sign report</button>
    </section>`;
  }
  return html`<section class="sa-radpeer" data-testid="radpeer">
    <h4>RADPEER of the AI draft</h4>
    <div role="radiogroup" aria-label="RADPEER score">
      ${choices.map(({ score: value, meaning }) => html`<label key=${value} title=${meaning}>
        <input type="radio" name="radpeer" value=${value} checked=${score === value} onChange=${() => setScore(value)} />
        <b>${value}</b> <span class="sa-muted">${meaning}</span></label>`)}
    </div>
    <textarea data-testid="radpeer-comment" rows="2" placeholder=${needsComment(score) ? `Comment (required for ${commented})` : 'Comment (optional)'}
      value=${comment} onInput=${(e) => setComment(e.target.value)}></textarea>
    ${commentMissing && html`<p class="sa-error">A comment is required for ${score}.</p>`}
    ${error && html`<p class="sa-error" data-testid="sign-error">${error}</p>`}
    <button class="sa-sign" disabled=${!score || commentMissing || busy} onClick=${sign}>Sign report</button>
  </section>`;
}
