// What every browser test script shares: playwright-core with Debian's Chromium, a run report with its steps,
// the page watchers (page errors, console errors, Content-Security-Policy violations, failed requests), and
// the API as the page's own session sees it. Each script prints its report as one JSON object.
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';

// playwright-core is an npm dependency of ohif-extension/ (one package.json, one lockfile for all JS).
export const { chromium } = createRequire(new URL('../../ohif-extension/package.json', import.meta.url))('playwright-core');

export function expect(condition, message) {
  if (!condition) throw new Error(message);
}
export const same = (a, b, what) => expect(JSON.stringify(a) === JSON.stringify(b),
  `${what}: screen ${JSON.stringify(a)} != API ${JSON.stringify(b)}`);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The API as the page's own session sees it (POSTs carry the page's CSRF token). */
export const getJson = (page, path) => page.evaluate((p) => fetch(p).then((r) => r.json()), path);
export const postJson = (page, path, body) => page.evaluate(async ([p, b]) => {
  const csrf = document.cookie.match(/csrftoken=([^;]+)/)[1];
  const r = await fetch(p, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrf }, body: JSON.stringify(b) });
  return { status: r.status, body: await r.json().catch(() => null) };
}, [path, body]);

/** A run: its report, named steps (timed, their details kept), screenshots into outDir, page watchers. */
export function run(outDir) {
  mkdirSync(outDir, { recursive: true });
  const report = { ok: false, steps: [], errors: [], failedRequests: [], csp: [] };
  let current = 'start';
  return {
    report,
    current: () => current,
    async step(name, fn) {
      current = name;
      const started = Date.now();
      const detail = await fn();
      report.steps.push({ name, seconds: (Date.now() - started) / 1000, ...(detail || {}) });
    },
    shot: (page, name) => page.screenshot({ path: `${outDir}/${name}.png` }),
    watch(page, who) {
      page.on('pageerror', (e) => report.errors.push(`${who} pageerror: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() !== 'error') return;
        report.errors.push(`${who} console: ${m.text().slice(0, 300)}`);
        // Our Content-Security-Policy must not block anything the viewer or the panel needs.
        if (/Content Security Policy/i.test(m.text())) report.csp.push(`${who}: ${m.text().slice(0, 300)}`);
      });
      page.on('response', (r) => { if (r.status() >= 400) report.failedRequests.push(`${who} ${r.status()} ${r.url()}`); });
    },
  };
}
