// Condition predictions (most probable first; click to see the finding: its sentence in the report is
// highlighted and the viewer shows its box or key slice) and the boxes drawn on the images, with OHIF's own
// measurement of each box once it has mapped the annotation. One number per finding: the model's score,
// named for what it is (report.score: a raw score or a calibrated probability). The model's call on each
// finding and box (`call`) and each box's label come with the result (backend/reports/serializers.py).
import { html } from '../vendor.js';

const pct = (p) => `${Math.round(p * 100)}%`;

export function sortedFindings(result) {
  return [...(result?.conditions || [])].sort((a, b) => b.probability - a.probability);
}

const sameLevel = (a, b) => !a || !b || a === b;

/** Where a finding is best seen, box first (the reader sees what the model marked), then its key slice. */
export function targetFor(result, finding, level = finding?.level) {
  if (!result || !finding) return null;
  const of = (list) => list.filter((x) => x.condition === finding.condition && sameLevel(level, x.level))
    .sort((a, b) => b.score - a.score)[0] || null;
  return of(result.boxes || []) || of(result.key_slices || []);
}

const MARK = {
  present: ['●', 'called present'],
  possible: ['◐', 'possible (hedged band)'],
  absent: ['○', 'not found'],
  not_assessed: ['–', 'not assessed: the model failed held-out validation for this condition'],
};

// A level the model could not place is said so, never guessed (spinefm: level None + level_uncertain).
export const levelText = (x) => x?.level || (x?.level_uncertain ? 'level uncertain' : '');

/** An absent call only reassures where the bundle's held-out operating point can rule the condition out. */
const markOf = (f, call) => (call === 'absent' && f.rule_out === false
  ? ['○', 'not found at the operating point, but the model cannot rule it out (held-out sensitivity too low)']
  : MARK[call] || MARK.absent);

// Listed up front: findings called present or possible or over 50%, and always the three most
// probable (sorted list), so a reviewer sees the model's strongest signals even when it calls nothing.
const shown = (f, i) => ['present', 'possible'].includes(f.call) || f.probability >= 0.5 || i < 3;

function BoxRow({ box, viewer, names, onShow }) {
  const [x0, y0, x1, y1] = box.box;
  const measurement = viewer.measurementFor(box);
  const stats = measurement?.displayText?.primary?.join?.(', ');
  return html`<li>
    <button class="sa-link" onClick=${() => onShow(box)}>${names[box.condition] || box.condition} ${levelText(box)}</button>
    <span class="sa-muted"> ${Math.round(x1 - x0)}×${Math.round(y1 - y0)} px${stats ? ` · ${stats}` : ''}</span>
  </li>`;
}

export function Findings({ report, findings, active, highlighted, onJump, onShowBox, viewer, boxCount }) {
  const result = report.result;
  const names = report.condition_names || {};
  const calls = report.calls || {};
  const score = report.score || { name: 'model score', meaning: '' };
  const boxes = result.boxes || [];
  const findingRow = (f, i) => {
    const target = targetFor(result, f);
    const { call } = f;
    const [mark, meaning] = markOf(f, call);
    const level = levelText(f);
    const callWords = call === 'absent' && f.rule_out === false ? 'not ruled out' : (calls[call] || call);
    const classes = [i === active ? 'sa-active' : '', highlighted.has(f.condition) ? 'sa-linked-finding' : '']
      .filter(Boolean).join(' ');
    return html`<li key=${f.condition + (f.level || '')} class=${classes}>
      <button class="sa-finding" data-present=${String(f.present)} data-status=${call} data-condition=${f.condition}
          data-target-sop=${target?.sop_instance_uid || ''} data-level=${f.level || ''}
          title=${`${meaning}. ${target ? 'Click: show it on the image and in the report.' : 'No key slice or box for this finding.'}`}
          onClick=${() => onJump(i)}>
        <span class="sa-prob" style=${{ width: pct(f.probability) }}></span>
        <span><span title=${meaning}>${mark}</span> ${names[f.condition] || f.condition}${level ? ` ${level}` : ''}
          <i class="sa-muted sa-call" title=${f.level_note || ''}> ${callWords}</i></span>
        <b title=${score.meaning}>${pct(f.probability)}</b>
      </button>
    </li>`;
  };
  return html`<section>
    <h4>Findings <span class="sa-muted" title=${score.meaning} data-testid="score-kind">${score.name} per finding</span></h4>
    ${findings.length === 0 && html`<p class="sa-muted">The model reported no conditions.</p>`}
    <ol class="sa-findings" data-testid="findings">
      ${findings.map((f, i) => shown(f, i) && findingRow(f, i))}
    </ol>
    ${findings.some((f, i) => !shown(f, i)) && html`<details class="sa-absent"><summary class="sa-muted">
        ${findings.filter((f, i) => !shown(f, i)).length} more conditions, less probable</summary>
      <ol class="sa-findings">${findings.map((f, i) => !shown(f, i) && findingRow(f, i))}</ol>
    </details>`}
    <p class="sa-muted sa-score-note" data-testid="score-meaning">${score.meaning}</p>
    <h4>Boxes <span class="sa-muted" data-testid="box-count">${boxCount}/${boxes.length} on images</span></h4>
    <ul class="sa-boxes">${boxes.map((b) => html`<${BoxRow} key=${b.sop_instance_uid + b.condition} box=${b} viewer=${viewer}
      names=${names} onShow=${onShowBox} />`)}</ul>
  </section>`;
}
