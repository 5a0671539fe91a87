// Condition predictions (most probable first; click to jump to the key slice) and the boxes drawn on
// the images, with OHIF's own measurement of each box once it has mapped the annotation.
import { html } from '../vendor.js';

const pct = (p) => `${Math.round(p * 100)}%`;

export function sortedFindings(result) {
  return [...(result?.conditions || [])].sort((a, b) => b.probability - a.probability);
}

/** Where a finding is best seen: its best-scoring key slice, else its best box, else null. */
export function targetFor(result, finding) {
  if (!result || !finding) return null;
  const same = (x) => x.condition === finding.condition && (!finding.level || !x.level || x.level === finding.level);
  const best = (list) => list.filter(same).sort((a, b) => b.score - a.score)[0] || null;
  return best(result.key_slices || []) || best(result.boxes || []);
}

function BoxRow({ box, viewer }) {
  const [x0, y0, x1, y1] = box.box;
  const measurement = viewer.measurementFor(box);
  const stats = measurement?.displayText?.primary?.join?.(', ');
  return html`<li>
    <button class="sa-link" onClick=${() => viewer.jumpTo(box)}>${box.condition} ${box.level || ''}</button>
    <span class="sa-muted"> ${pct(box.score)} · ${Math.round(x1 - x0)}×${Math.round(y1 - y0)} px${stats ? ` · ${stats}` : ''}</span>
  </li>`;
}

// The bundle's call at its operating points; results written before them carry only `present`.
export const statusOf = (f) => f.status || (f.present ? 'present' : 'absent');
const MARK = {
  present: ['●', 'called present'],
  possible: ['◐', 'possible (hedged band)'],
  absent: ['○', 'not found'],
  not_assessed: ['–', 'not assessed: the model failed held-out validation for this condition'],
};

// Listed up front: findings called present or possible or over 50%, and always the three most
// probable (sorted list), so a reviewer sees the model's strongest signals even when it calls nothing.
const shown = (f, i) => ['present', 'possible'].includes(statusOf(f)) || f.probability >= 0.5 || i < 3;

export function Findings({ result, findings, active, onJump, viewer, boxCount }) {
  const boxes = result.boxes || [];
  const findingRow = (f, i) => {
    const target = targetFor(result, f);
    const [mark, meaning] = MARK[statusOf(f)] || MARK.absent;
    return html`<li key=${f.condition + (f.level || '')} class=${i === active ? 'sa-active' : ''}>
      <button class="sa-finding" data-present=${String(f.present)} data-status=${statusOf(f)} data-condition=${f.condition} disabled=${!target}
          data-target-sop=${target?.sop_instance_uid || ''}
          title=${target ? 'Show the key slice' : 'No key slice for this finding'} onClick=${() => onJump(i)}>
        <span class="sa-prob" style=${{ width: pct(f.probability) }}></span>
        <span><span title=${meaning}>${mark}</span> ${f.condition}${f.level ? ` ${f.level}` : ''}${
          statusOf(f) === 'not_assessed' ? html`<i class="sa-muted"> not validated</i>` : ''}</span>
        <b>${pct(f.probability)}</b>
      </button>
    </li>`;
  };
  return html`<section>
    <h4>Findings</h4>
    ${findings.length === 0 && html`<p class="sa-muted">The model reported no conditions.</p>`}
    <ol class="sa-findings" data-testid="findings">
      ${findings.map((f, i) => shown(f, i) && findingRow(f, i))}
    </ol>
    ${findings.some((f, i) => !shown(f, i)) && html`<details class="sa-absent"><summary class="sa-muted">
        ${findings.filter((f, i) => !shown(f, i)).length} more conditions, less probable</summary>
      <ol class="sa-findings">${findings.map((f, i) => !shown(f, i) && findingRow(f, i))}</ol>
    </details>`}
    <h4>Boxes <span class="sa-muted" data-testid="box-count">${boxCount}/${boxes.length} on images</span></h4>
    <ul class="sa-boxes">${boxes.map((b) => html`<${BoxRow} key=${b.sop_instance_uid + b.condition} box=${b} viewer=${viewer} />`)}</ul>
  </section>`;
}
