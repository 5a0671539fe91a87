// The annotator's verification page in a real browser: log in, queue, task, flip one toggle, submit.
// Driven by tests/e2e/test_annotation_flow.py; prints one JSON object on stdout, exits 0 only if every step passed.
//
// env: BASE_URL, TASK_ID, ANNOTATOR ("user:password"), OUT_DIR (screenshots), CHROMIUM
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';

const { chromium } = createRequire(new URL('../../ohif-extension/package.json', import.meta.url))('playwright-core');

const BASE = process.env.BASE_URL.replace(/\/$/, '');
const TASK = process.env.TASK_ID;
const OUT = process.env.OUT_DIR || 'test-artifacts/e2e-annotation';
const [USER, PASS] = process.env.ANNOTATOR.split(':');
mkdirSync(OUT, { recursive: true });
const report = { ok: false, steps: [], errors: [], csp: [] };
// Anchored: the login page's own URL (/login?next=/annotate/) ends the same way.
const QUEUE_URL = (url) => url.pathname === '/annotate/';

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 1500, height: 950 } })).newPage();
  page.on('pageerror', (e) => report.errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) report.csp.push(m.text().slice(0, 300));
  });
  page.on('dialog', (d) => { report.errors.push(`dialog: ${d.message()}`); d.dismiss(); });

  await page.goto(`${BASE}/annotate/`);
  await page.waitForURL(/\/login/);
  await page.fill('input[name=username]', USER);
  await page.fill('input[name=password]', PASS);
  await Promise.all([page.waitForURL(QUEUE_URL), page.click('button[type=submit]')]);
  const rows = await page.locator('#queue tbody tr[data-task]').count();
  expect(rows === 1, `queue has ${rows} rows: ${(await page.locator('main').innerText()).slice(0, 500)}`);
  await page.screenshot({ path: `${OUT}/01-queue.png` });
  report.steps.push({ name: 'queue', rows });

  await Promise.all([page.waitForURL((url) => url.pathname === `/annotate/tasks/${TASK}`), page.click('#queue a.button')]);
  const marks = await page.locator('#report mark.ev').count();
  const scriptTags = await page.locator('#report script').count();
  const canal = await page.locator('input[name=canal]:checked').getAttribute('value');
  expect(marks > 0, 'no highlighted evidence');
  expect(scriptTags === 0, 'report text was rendered as markup');
  expect(canal === '1', `canal preset to ${canal}`);
  report.steps.push({ name: 'task page', marks, canal_preset: canal });
  await page.screenshot({ path: `${OUT}/02-task.png`, fullPage: true });

  await page.check('input[name=par][value="1"]');  // the annotator decides the "possible" pars defect is present
  await page.fill('textarea[name=comment]', 'pars defect clearly seen on the images');
  await Promise.all([page.waitForURL(QUEUE_URL, { timeout: 10000 }), page.click('#submit')]);
  report.steps.push({ name: 'submitted', back_to_queue: true });
  expect(report.errors.length === 0, report.errors.join('; '));
  report.ok = true;
} catch (err) {
  report.error = String(err && err.stack || err);
} finally {
  await browser.close();
  console.log(JSON.stringify(report));
  process.exit(report.ok ? 0 : 1);
}
