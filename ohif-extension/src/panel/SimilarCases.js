// Training cases whose images embed closest to this study, with their reports (retrieval, not diagnosis).
import { html } from '../vendor.js';

export function SimilarCases({ cases }) {
  if (!cases.length) return null;
  return html`<section>
    <h4>Similar cases</h4>
    <ul class="sa-similar" data-testid="similar-cases">
      ${cases.map((c) => html`<li key=${c.case_id}><details>
        <summary>${c.case_id} <span class="sa-muted">similarity ${c.score.toFixed(2)}</span></summary>
        <pre>${c.report}</pre>
      </details></li>`)}
    </ul>
  </section>`;
}
