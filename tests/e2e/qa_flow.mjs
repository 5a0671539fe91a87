// The RADPEER peer review in a real browser: the QA reviewer logs in, opens the queue and a case, is refused a
// change without a reason, changes the score with one; then the reader sees the marker in their worklist.
// Driven by tests/e2e/test_qa_flow.py; prints one JSON object on stdout, exits 0 only if every step passed.
//
// env: BASE_URL, CASE_ID, STUDY_UID, REVIEWER and READER ("user:password"), OUT_DIR (screenshots), CHROMIUM
import { chromium, expect, run } from './browser.mjs';

const BASE = process.env.BASE_URL.replace(/\/$/, '');
const CASE = process.env.CASE_ID;
const UID = process.env.STUDY_UID;
const r = run(process.env.OUT_DIR || 'test-artifacts/e2e-qa');

async function login(context, who, path, landing) {
  const [user, pass] = who.split(':');
  const page = await context.newPage();
  r.watch(page, user);
  await page.goto(`${BASE}${path}`);
  await page.waitForURL(/\/login/);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', pass);
  await Promise.all([page.waitForURL(landing), page.click('button[type=submit]')]);
  return page;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const reviewer = await browser.newContext({ viewport: { width: 1500, height: 950 } });
  const page = await login(reviewer, process.env.REVIEWER, '/qa/', (url) => url.pathname === '/qa/');
  await r.step('queue', async () => {
    const rows = await page.locator('#qa-open tbody tr[data-case]').count();
    expect(rows === 1, `queue has ${rows} rows: ${(await page.locator('main').innerText()).slice(0, 400)}`);
    const score = await page.locator(`#qa-open tr[data-case="${CASE}"] td.score`).innerText();
    expect(score === '2b', `score shown ${score}`);
    expect(await page.locator('nav.pages a[data-page=qa].current').count() === 1, 'QA link not current in the nav');
    await r.shot(page, '01-queue');
    return { rows, score };
  });
  await r.step('case', async () => {
    await Promise.all([page.waitForURL((url) => url.pathname === `/qa/cases/${CASE}`), page.click('#qa-open a.button')]);
    const draft = await page.locator('#ai-draft').innerText();
    const final = await page.locator('#final-report').innerText();
    const images = await page.locator('#open-images').getAttribute('href');
    expect(draft.includes('L4-L5 herniation'), `AI draft ${draft}`);
    expect(final.includes('No herniation'), `signed text ${final}`);
    expect(images === `/viewer/spineagent?StudyInstanceUIDs=${encodeURIComponent(UID)}`, `images link ${images}`);
    await r.shot(page, '02-case');
    return { images };
  });
  await r.step('change without a reason is refused', async () => {
    await page.check('input[name=decision][value=change]');
    await page.selectOption('select[name=score]', '1');
    await Promise.all([page.waitForLoadState('load'), page.click('#submit-review')]);
    const message = await page.locator('#message').innerText();
    expect(/reason/.test(message), `message ${message}`);
    expect(await page.locator('select[name=score]').inputValue() === '1', 'the chosen score was not kept');
    return { message };
  });
  await r.step('change with a reason', async () => {
    await page.fill('textarea[name=reason]', 'no herniation on the sagittal T2 images');
    await Promise.all([page.waitForURL((url) => url.pathname === `/qa/cases/${CASE}`), page.click('#submit-review')]);
    await page.waitForSelector('#review-result');
    const result = await page.locator('#review-result').innerText();
    expect(result.startsWith('Changed to 1'), `result ${result}`);
    expect(await page.locator('#review-form').count() === 0, 'form still shown after the review');
    await r.shot(page, '03-reviewed');
    return { result };
  });
  await r.step('reader sees the marker', async () => {
    const reader = await browser.newContext({ viewport: { width: 1500, height: 950 } });
    const worklist = await login(reader, process.env.READER, '/', (url) => url.pathname === '/');
    const marker = worklist.locator(`#worklist tr[data-uid="${UID}"] .qa-marker`);
    await marker.waitFor({ timeout: 15000 });
    const text = await marker.innerText();
    expect(text === 'QA reviewed: changed to 1', `marker ${text}`);
    await r.shot(worklist, '04-worklist');
    return { marker: text };
  });
  // The page watchers: page errors, CSP violations; failed requests are only the deliberate 400 above.
  expect(r.report.csp.length === 0, r.report.csp.join('; '));
  const unexpected = r.report.failedRequests.filter((f) => !f.includes(` 400 ${BASE}/qa/cases/${CASE}`));
  expect(unexpected.length === 0, unexpected.join('; '));
  expect(r.report.errors.filter((e) => !/400 \(Bad Request\)/.test(e)).length === 0, r.report.errors.join('; '));
  r.report.ok = true;
} catch (err) {
  r.report.error = `${r.current()}: ${String(err && err.stack || err)}`;
} finally {
  await browser.close();
  console.log(JSON.stringify(r.report));
  process.exit(r.report.ok ? 0 : 1);
}
