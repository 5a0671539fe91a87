// The radiologist review flow in a real browser, then an annotator being refused.
// Driven by tests/e2e/test_review_flow.py; prints one JSON object on stdout, exits 0 only if every step passed.
//
// env: BASE_URL, STUDY_UID, RADIOLOGIST / ANNOTATOR ("user:password"), OUT_DIR (screenshots), CHROMIUM
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';

// playwright-core is an npm dependency of ohif-extension/ (one package.json, one lockfile for all JS).
const { chromium } = createRequire(new URL('../../ohif-extension/package.json', import.meta.url))('playwright-core');

const BASE = process.env.BASE_URL.replace(/\/$/, '');
const UID = process.env.STUDY_UID;
const OUT = process.env.OUT_DIR || 'test-artifacts/e2e';
const [RAD_USER, RAD_PASS] = process.env.RADIOLOGIST.split(':');
const [ANN_USER, ANN_PASS] = process.env.ANNOTATOR.split(':');
const VIEWER_TIMEOUT = 180_000; // first paint of OHIF with software WebGL on 2 shared cores

mkdirSync(OUT, { recursive: true });
const report = { ok: false, steps: [], errors: [], failedRequests: [], csp: [] };
let current = 'start';

async function step(name, fn) {
  current = name;
  const started = Date.now();
  const detail = await fn();
  report.steps.push({ name, seconds: (Date.now() - started) / 1000, ...(detail || {}) });
}
const shot = (page, name) => page.screenshot({ path: `${OUT}/${name}.png` });
function expect(condition, message) {
  if (!condition) throw new Error(message);
}

function watch(page, who) {
  page.on('pageerror', (e) => report.errors.push(`${who} pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    report.errors.push(`${who} console: ${m.text().slice(0, 300)}`);
    // Our Content-Security-Policy must not block anything the viewer or the panel needs.
    if (/Content Security Policy/i.test(m.text())) report.csp.push(`${who}: ${m.text().slice(0, 300)}`);
  });
  page.on('response', (r) => { if (r.status() >= 400) report.failedRequests.push(`${who} ${r.status()} ${r.url()}`); });
}

async function login(page, user, password) {
  await page.goto(`${BASE}/`);
  await page.waitForURL(/\/login/);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
}

async function openViewer(page) {
  // OHIF shows an "investigational use only" dialog on first load; confirm it when it appears.
  const confirm = page.getByRole('button', { name: 'Confirm and hide' });
  await confirm.waitFor({ timeout: VIEWER_TIMEOUT }).then(() => confirm.click()).catch(() => {});
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
});
try {
  const rad = await (await browser.newContext({ viewport: { width: 1600, height: 960 } })).newPage();
  watch(rad, 'radiologist');

  await step('login', async () => {
    await login(rad, RAD_USER, RAD_PASS);
    await shot(rad, '01-login');
    await rad.click('button[type=submit]');
    await rad.waitForURL(`${BASE}/`);
  });

  await step('worklist', async () => {
    const row = rad.locator(`tr[data-uid="${UID}"]`);
    await row.waitFor();
    const status = await row.locator('td.status').textContent();
    await shot(rad, '02-worklist');
    await row.locator('a.open').click();
    return { status };
  });

  await step('viewer and panel', async () => {
    await rad.waitForURL(/\/viewer\/spineagent\?/);
    await openViewer(rad);
    await rad.locator('[data-testid=report-panel]').waitFor({ timeout: VIEWER_TIMEOUT });
    await rad.locator('[data-testid=findings] li').first().waitFor({ timeout: 60_000 });
    // At least one model box drawn as an annotation on an image.
    await rad.waitForFunction(() => /^[1-9]\d*\//.test(document.querySelector('[data-testid=box-count]')?.textContent || ''),
      null, { timeout: VIEWER_TIMEOUT });
    const findings = await rad.locator('[data-testid=findings] li').allTextContents();
    // The bundle's call per condition as the panel marks it (folded rows included).
    const calls = await rad.locator('button.sa-finding').evaluateAll((buttons) =>
      buttons.map((b) => [b.dataset.condition, b.dataset.status, b.textContent.trim().slice(0, 1)]));
    const synthetic = await rad.locator('[data-testid=synthetic-label]').count();
    const boxes = await rad.locator('[data-testid=box-count]').textContent();
    const probabilities = (await rad.locator('[data-testid=findings] li b').allTextContents()).map((t) => parseFloat(t));
    expect(probabilities.every((p, i) => i === 0 || probabilities[i - 1] >= p), 'findings not sorted by probability');
    await rad.waitForTimeout(1500); // let the viewport finish painting for the screenshot
    await shot(rad, '03-viewer-panel');
    return { findings: findings.length, top: findings[0], synthetic_label: synthetic > 0, boxes, calls };
  });

  await step('jump to key slice', async () => {
    // The most probable finding that has a key slice (the phantom-trained model may call nothing present).
    const finding = rad.locator('[data-testid=findings] button:not([disabled])').first();
    const target = await finding.getAttribute('data-target-sop');
    await finding.click();
    await rad.waitForFunction((sop) => window.spineagent?.currentImage()?.sopInstanceUID === sop, target, { timeout: 60_000 });
    await rad.waitForFunction(() => window.spineagent.boxesOnCurrentImage() > 0, null, { timeout: 30_000 })
      .catch(() => {}); // a key slice may have no box of its own; recorded below
    const onImage = await rad.evaluate(() => window.spineagent.boxesOnCurrentImage());
    await rad.waitForTimeout(1500);
    await shot(rad, '04-key-slice');
    // Keyboard: Alt+N goes to the next finding.
    // OHIF lists our boxes among its measurements (area, statistics).
    const measurements = await rad.evaluate(() => window.spineagent.services.measurementService.getMeasurements()
      .map((m) => ({ label: m.label, tool: m.toolName, text: m.displayText })));
    expect(measurements.length > 0, 'no OHIF measurement for the boxes');
    // Keyboard: Alt+N moves to the next finding that has a key slice.
    await rad.keyboard.press('Alt+N');
    await rad.locator('li.sa-active').waitFor({ timeout: 5_000 });
    return { target, boxes_on_key_slice: onImage, measurements: measurements.slice(0, 3),
      labels: measurements.map((m) => m.label) };
  });

  await step('edit and autosave', async () => {
    const editor = rad.locator('[data-testid=report-text]');
    await editor.click();
    await rad.keyboard.press('Control+End');
    await rad.keyboard.type('\nADDENDUM (e2e): reviewed in SpineAgent.');
    await rad.locator('[data-testid=version-label]', { hasText: /Saved as version \d+/ }).waitFor({ timeout: 20_000 });
    const label = await rad.locator('[data-testid=version-label]').textContent();
    await shot(rad, '05-edited');
    // Ctrl+S saves at once, without waiting for the debounce.
    await rad.keyboard.type(' Checked.');
    await rad.keyboard.press('Control+S');
    await rad.locator('[data-testid=version-label]', { hasText: /Saved as version \d+/ }).waitFor({ timeout: 5_000 });
    return { label, after_ctrl_s: await rad.locator('[data-testid=version-label]').textContent() };
  });

  await step('stale version shows both texts', async () => {
    // Someone else (another tab) saves on top of the version this editor is based on.
    const other = await rad.evaluate(async (uid) => {
      const r = await fetch(`/api/studies/${uid}/report`).then((x) => x.json());
      const csrf = document.cookie.match(/csrftoken=([^;]+)/)[1];
      const res = await fetch(`/api/studies/${uid}/report/versions`, {
        method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrf },
        body: JSON.stringify({ text: r.current.text + '\nOther tab.', base_number: r.current.number }),
      });
      return res.status;
    }, UID);
    expect(other === 201, `other tab save: ${other}`);
    await rad.locator('[data-testid=report-text]').click();
    await rad.keyboard.press('Control+End');
    await rad.keyboard.type(' Mine.');
    const stale = rad.locator('[data-testid=stale]');
    await stale.waitFor({ timeout: 20_000 });
    await stale.scrollIntoViewIfNeeded();
    expect((await rad.locator('[data-testid=stale-theirs]').textContent()).includes('Other tab.'), 'other text not shown');
    expect((await rad.locator('[data-testid=stale-yours]').textContent()).includes('Mine.'), 'own text not shown');
    await shot(rad, '06-stale');
    await rad.getByRole('button', { name: /Keep mine/ }).click();
    await rad.locator('[data-testid=version-label]', { hasText: /Saved as version \d+/ }).waitFor({ timeout: 20_000 });
  });

  await step('radpeer and sign', async () => {
    await rad.locator('input[name=radpeer][value="2b"]').check();
    const sign = rad.getByRole('button', { name: 'Sign report' });
    expect(await sign.isDisabled(), 'Sign enabled without the comment 2b needs');
    await rad.fill('[data-testid=radpeer-comment]', 'Draft missed nothing significant; wording changed.');
    await rad.locator('input[name=radpeer][value="2a"]').check();
    expect(await sign.isEnabled(), 'Sign disabled with a valid score');
    await rad.locator('.sa-radpeer').scrollIntoViewIfNeeded();
    await shot(rad, '07-radpeer');
    await sign.click();
    await rad.locator('[data-testid=signed]').waitFor({ timeout: 20_000 });
    const readOnly = await rad.locator('[data-testid=report-text]').getAttribute('readonly');
    const signed = await rad.locator('[data-testid=signed]').textContent();
    expect(readOnly !== null, 'editor still writable after signing');
    await shot(rad, '08-signed');
    return { signed };
  });

  const ann = await (await browser.newContext({ viewport: { width: 1600, height: 960 } })).newPage();
  watch(ann, 'annotator');
  await step('annotator is refused', async () => {
    await login(ann, ANN_USER, ANN_PASS);
    await ann.click('button[type=submit]');
    await ann.locator(`tr[data-uid="${UID}"]`).waitFor();
    expect(await ann.locator('#read-only').count() === 1, 'no read-only notice for the annotator');
    expect(await ann.locator(`tr[data-uid="${UID}"] a.open`).count() === 0, 'annotator has an Open button');
    await shot(ann, '09-annotator-worklist');
    const api = await ann.evaluate((uid) => fetch(`/api/studies/${uid}/report`).then((r) => r.status), UID);
    expect(api === 403, `report API answered ${api} to the annotator`);
    await ann.goto(`${BASE}/viewer/spineagent?StudyInstanceUIDs=${UID}`);
    await openViewer(ann);
    await ann.locator('[data-testid=refused]').waitFor({ timeout: VIEWER_TIMEOUT });
    await shot(ann, '10-annotator-refused');
    return { report_api: api };
  });
  report.ok = true;
} catch (error) {
  report.failed_step = current;
  report.error = String(error?.stack || error).slice(0, 2000);
  for (const ctx of browser.contexts()) {
    for (const [i, p] of ctx.pages().entries()) await p.screenshot({ path: `${OUT}/failure-${i}.png` }).catch(() => {});
  }
} finally {
  await browser.close();
}
report.errors = report.errors.slice(0, 40);
report.failedRequests = report.failedRequests.slice(0, 40);
console.log(JSON.stringify(report, null, 2));
process.exit(report.ok ? 0 : 1);
