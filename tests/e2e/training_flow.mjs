// The admin's training screens in a real browser: log in, snapshot a dataset version, start a retraining run,
// follow its progress and log until it finishes, read the comparison and the gate, override with a reason.
// Driven by tests/e2e/test_training_flow.py; prints one JSON object on stdout, exits 0 only if every step passed.
//
// env: BASE_URL, ADMIN ("user:password"), OUT_DIR (screenshots), CHROMIUM
import { chromium, expect, getJson, run, same } from './browser.mjs';

const BASE = process.env.BASE_URL.replace(/\/$/, '');
const [USER, PASS] = process.env.ADMIN.split(':');
const r = run(process.env.OUT_DIR || 'test-artifacts/e2e-training');
const { report } = r;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 1500, height: 1000 } })).newPage();
  r.watch(page, 'admin');
  report.navigations = [];
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) report.navigations.push(f.url().replace(BASE, '')); });

  await r.step('login', async () => {
    await page.goto(`${BASE}/training/`);
    await page.waitForURL(/\/login/);
    await page.fill('input[name=username]', USER);
    await page.fill('input[name=password]', PASS);
    await Promise.all([page.waitForURL((u) => u.pathname === '/training/'), page.click('button[type=submit]')]);
    const verified = Number(await page.locator('#verified').innerText());
    expect(verified > 0, `verified labels: ${verified}`);
    await r.shot(page, '01-training');
    return { verified };
  });

  let datasetId;
  await r.step('snapshot', async () => {
    // A bad name first: the API's 400 is shown on the page, nothing is created.
    await page.fill('#dataset-form input[name=name]', 'browser');
    await page.fill('#dataset-form input[name="ratios.train"]', '0.5');
    await page.fill('#dataset-form input[name="ratios.val"]', '0.1');
    await page.fill('#dataset-form input[name="ratios.test"]', '0.4');
    await page.fill('#dataset-form input[name="filters.decided_from"]', '2030-01-02');
    await page.fill('#dataset-form input[name="filters.decided_to"]', '2030-01-01');
    await page.click('#dataset-form button[type=submit]');
    const error = page.locator('#dataset-form .error');
    await error.waitFor({ state: 'visible' });
    const refused = await error.innerText();
    expect(/decided_from must be before/.test(refused), `error shown: ${refused}`);
    expect((await getJson(page, '/api/training/datasets/')).count === 0, 'a refused snapshot wrote something');
    await page.fill('#dataset-form input[name="filters.decided_from"]', '');
    await page.fill('#dataset-form input[name="filters.decided_to"]', '');
    await Promise.all([page.waitForURL(/\/training\/datasets\/\d+$/), page.click('#dataset-form button[type=submit]')]);
    datasetId = Number(page.url().split('/').pop());
    const api = await getJson(page, `/api/training/datasets/${datasetId}/`);
    const screen = {};
    for (const split of ['train', 'val', 'test']) {
      const cells = await page.locator(`#splits tr[data-split=${split}] td.num`).allInnerTexts();
      screen[split] = { items: Number(cells[0]), patients: Number(cells[1]) };
    }
    const splits = Object.fromEntries(['train', 'val', 'test'].map((s) => [s, api.counts.splits[s]]));
    same(screen, splits, 'split summary');
    same([api.ratios.train, api.ratios.val, api.ratios.test], [0.5, 0.1, 0.4], 'ratios sent by the form');
    await r.shot(page, '02-dataset');
    return { refused, dataset: datasetId, splits: screen };
  });

  let runId;
  await r.step('start run and follow it', async () => {
    await page.fill('#run-form input[name="options.steps"]', '150');
    await page.fill('#run-form input[name="options.n_boot"]', '20');
    await Promise.all([page.waitForURL(/\/training\/runs\/\d+$/), page.click('#run-form button[type=submit]')]);
    runId = Number(page.url().split('/').pop());
    const seen = new Set();
    const started = Date.now();
    while (Date.now() - started < 240000) {
      const status = await page.locator('#run-status').innerText().catch(() => '');
      seen.add(status);
      if (await page.locator('#comparison').count()) break;
      if (status === 'failed') throw new Error(await page.locator('#run-error').innerText());
      await page.waitForTimeout(300);
    }
    expect(await page.locator('#comparison').count() === 1, `no comparison after 240 s; statuses seen ${[...seen]}`);
    const api = await getJson(page, `/api/training/runs/${runId}/`);
    expect(api.status === 'succeeded', `run ${api.status}`);
    const log = await page.locator('#run-log').innerText();
    same(log.trim(), api.log.trim(), 'run log');
    expect(/training diagnosis heads/.test(log) && /succeeded: candidate/.test(log), `log: ${log}`);
    await r.shot(page, '03-run-compared');
    return { run: runId, statuses_seen: [...seen], log_lines: log.trim().split('\n').length };
  });

  await r.step('comparison and gate', async () => {
    const gate = await getJson(page, `/api/training/runs/${runId}/gate`);
    const rows = await page.locator('#comparison tbody tr').count();
    expect(rows === gate.comparison.conditions.length, `${rows} rows on screen`);
    const passed = await page.locator('#gate').getAttribute('data-passed');
    same(passed === 'true', gate.gate.passed, 'gate verdict');
    const reasons = await page.locator('#gate li').allInnerTexts();
    same(reasons, gate.gate.reasons, 'gate reasons');
    return { passed: gate.gate.passed, reasons: reasons.length };
  });

  await r.step('promote with a written reason', async () => {
    await page.fill('#promote-form textarea[name=reason]', 'browser test: synthetic phantoms, reviewed');
    await page.click('#promote-form button[type=submit]');
    await page.locator('#decision').waitFor({ timeout: 20000 });
    const text = await page.locator('#decision').innerText();
    const api = await getJson(page, `/api/training/runs/${runId}/`);
    expect(api.decision && api.decision.decision === 'promoted' && api.candidate.state === 'active',
      `after promote: ${JSON.stringify(api.decision)} ${api.candidate.state}`);
    expect(text.includes('browser test: synthetic phantoms, reviewed'), `decision shown: ${text}`);
    await r.shot(page, '04-promoted');
    return { override: api.decision.gate.override };
  });

  await r.step('browsable API form', async () => {
    // DRF's raw-data form carries no CSRF field: its own scripts (static files) add the token. Unstyled and
    // "CSRF token missing" were one bug: /static/ not served.
    const [cspBefore, errorsBefore] = [report.csp.length, report.errors.length];
    await page.goto(`${BASE}/api/training/datasets/`);
    const styled = await page.evaluate(() => getComputedStyle(document.querySelector('.navbar')).position);
    await page.fill('#post-generic-content-form textarea', JSON.stringify({ name: 'browsable' }));
    const [response] = await Promise.all([
      page.waitForResponse((res) => res.url().endsWith('/api/training/datasets/') && res.request().method() === 'POST'),
      page.click('#post-generic-content-form button'),
    ]);
    expect(response.status() === 201, `browsable API POST answered ${response.status()}`);
    const names = (await getJson(page, '/api/training/datasets/?name=browsable')).results.map((d) => d.name);
    same(names, ['browsable'], 'dataset made through the browsable API');
    await r.shot(page, '05-browsable-api');
    // DRF's own templates and jQuery try an inline style and an inline event handler, which our CSP blocks
    // (cosmetic: the form works, as above). Kept apart from our own pages' reports, which must have none.
    await page.waitForTimeout(300);
    const drfCsp = report.csp.splice(cspBefore);
    report.errors.splice(errorsBefore, report.errors.length - errorsBefore,
      ...report.errors.slice(errorsBefore).filter((e) => !/Content Security Policy/.test(e)
        // DRF's pages name no icon: Chromium asks for /favicon.ico, which we do not serve
        && !(/status of 404/.test(e) && !report.failedRequests.some((f) => / 404 /.test(f)))));
    const kinds = [...new Set(drfCsp.map((c) => (c.match(/(Applying inline style|Executing inline event handler)/) || [c])[0]))];
    expect(kinds.every((k) => /^(Applying inline style|Executing inline event handler)$/.test(k)),
      `unexpected CSP reports on the browsable API: ${kinds}`);
    return { status: response.status(), navbar_position: styled, drf_csp: kinds };
  });

  // The one refused snapshot is the console's only error (Chromium logs every 4xx response).
  const unexpected = report.errors.filter((e) => !/status of 400 \(Bad Request\)/.test(e));
  expect(unexpected.length === 0 && report.errors.length === 1, report.errors.join('; '));
  report.ok = true;
} catch (err) {
  report.error = `${r.current()}: ${String(err && err.stack || err)}`;
} finally {
  await browser.close();
  console.log(JSON.stringify(report));
  process.exit(report.ok ? 0 : 1);
}
