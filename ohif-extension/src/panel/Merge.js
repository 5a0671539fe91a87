// Someone saved a newer version while you typed: a three-way merge instead of choosing one side. Shows the
// version you edited (base), your text and theirs with their changes marked against the base; what changed
// on one side only is merged already, each place both changed is a conflict you settle (yours, theirs, or
// both); the merged text stays editable and is saved on top of their version.
import { html, useState } from '../vendor.js';
import { merge3, mergedText, wordMarks } from './merge3.js';

function Marked({ base, text, testid }) {
  return html`<pre class="sa-merge-text" data-testid=${testid}>${wordMarks(base, text).map((part, i) => (
    part.op === 'equal' ? part.text
      : part.op === 'insert' ? html`<ins key=${i}>${part.text}</ins>` : html`<del key=${i}>${part.text}</del>`))}</pre>`;
}

export function Merge({ conflict, onResolve, onTakeTheirs }) {
  const { base, mine, theirs } = conflict;
  const chunks = merge3(base, mine, theirs.text);
  const conflicts = chunks.filter((c) => c.kind === 'conflict');
  const [choices, setChoices] = useState(conflicts.map(() => 'both'));
  const [merged, setMerged] = useState(mergedText(chunks, choices));
  const choose = (n, choice) => {
    const next = choices.map((c, i) => (i === n ? choice : c));
    setChoices(next);
    setMerged(mergedText(chunks, next));
  };
  const who = theirs.author ? ` by ${theirs.author}` : '';
  return html`<div class="sa-conflict" data-testid="merge">
    <p><b>Version ${theirs.number}${who} was saved while you edited.</b> Nothing is lost: merge the two below.
      ${conflicts.length === 0 ? ' Your changes and theirs touch different lines and are merged already.'
        : ` ${conflicts.length} place${conflicts.length > 1 ? 's' : ''} changed on both sides: choose for each.`}</p>
    <details open><summary>Their changes: version ${theirs.number}${who}</summary>
      <${Marked} base=${base} text=${theirs.text} testid="merge-theirs" /></details>
    <details open><summary>Your changes</summary><${Marked} base=${base} text=${mine} testid="merge-mine" /></details>
    <details><summary>The version you edited (base)</summary>
      <pre class="sa-merge-text" data-testid="merge-base">${base}</pre></details>
    ${conflicts.map((c, n) => html`<div class="sa-merge-choice" key=${n} data-testid="merge-conflict">
      <span class="sa-muted">Both changed: </span>
      <code>${(c.mine.join(' ') || '(removed)').slice(0, 60)}</code> / <code>${(c.theirs.join(' ') || '(removed)').slice(0, 60)}</code>
      ${['mine', 'theirs', 'both'].map((choice) => html`<label key=${choice}><input type="radio" name=${`merge-${n}`}
        checked=${choices[n] === choice} onChange=${() => choose(n, choice)} /> ${{ mine: 'yours', theirs: 'theirs', both: 'both' }[choice]}</label>`)}
    </div>`)}
    <b>Merged (edit before saving if you like)</b>
    <textarea class="sa-editor" data-testid="merge-result" rows="10" value=${merged}
      onInput=${(e) => setMerged(e.target.value)}></textarea>
    <button type="button" data-testid="merge-save" onClick=${() => onResolve(merged, theirs)}>
      Save merged text as the next version</button>
    <button type="button" data-testid="merge-theirs-only" onClick=${() => onTakeTheirs(theirs)}>
      Use version ${theirs.number} and discard mine</button>
  </div>`;
}
