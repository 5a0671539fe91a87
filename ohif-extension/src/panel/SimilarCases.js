// Cases whose images embed closest to this study, with their reports (retrieval, not diagnosis). They come
// from the bundle's own training cases, or from the site's signed reports once it builds that bank
// (backend/training/site_index.py); the heading says which, so phantom reports never pass for real ones.
import { html } from '../vendor.js';

function sourceOf(source, synthetic) {
  if (source && source.startsWith('site')) return `this site's signed reports (${source.replace(/^site: /, '')})`;
  return synthetic ? "the model's training cases (synthetic phantoms)" : "the model's training cases";
}

export function SimilarCases({ cases, source, synthetic }) {
  if (!cases.length) return null;
  return html`<section>
    <h4>Similar cases</h4>
    <p class="sa-muted" data-testid="similar-source">From ${sourceOf(source, synthetic)}; a different patient each.</p>
    <ul class="sa-similar" data-testid="similar-cases">
      ${cases.map((c) => html`<li key=${c.case_id}><details>
        <summary>${c.case_id} <span class="sa-muted">similarity ${c.score.toFixed(2)}</span></summary>
        <pre>${c.report}</pre>
      </details></li>`)}
    </ul>
  </section>`;
}
