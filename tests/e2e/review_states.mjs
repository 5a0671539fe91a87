// Honest states in a real browser: the worklist's failed and unsupported rows with their reasons (unsupported
// hidden by default), the panel of a failed and of an unsupported study (reason, no review controls, no
// polling, an explicit report without a draft), an admin's retry followed to the draft, and a report signed from
// a second tab while the first was typing. Every check compares the screen with the API.
// Driven by tests/e2e/test_review_states.py; prints one JSON object, exits 0 only if every step passed.
//
// env: BASE_URL, FAILED_UID, UNSUPPORTED_UID, RADIOLOGIST / ADMIN ("user:password"), OUT_DIR, CHROMIUM
import { chromium, expect, getJson, postJson, run, same, sleep } from './browser.mjs';

const BASE = process.env.BASE_URL.replace(/\/$/, '');
const FAILED = process.env.FAILED_UID;
const KNEE = process.env.UNSUPPORTED_UID;
const OUT = process.env.OUT_DIR || 'test-artifacts/e2e-states';
const [RAD_USER, RAD_PASS] = process.env.RADIOLOGIST.split(':');
const [ADMIN_USER, ADMIN_PASS] = process.env.ADMIN.split(':');
const VIEWER_TIMEOUT = 180_000;

const { report, step, shot, watch: watchPage, current } = run(OUT);
const stateRequests = [];
const reportFinals = []; // the `final` flag of every full report the panel loaded, in order

function watch(page, who) {
  watchPage(page, who);
  page.on('request', (r) => { if (r.url().includes('/report/state')) stateRequests.push(Date.now()); });
  page.on('response', async (r) => {
    if (r.request().method() === 'GET' && /\/api\/studies\/[^/]+\/report$/.test(new URL(r.url()).pathname)) {
      reportFinals.push(await r.json().then((d) => d.final).catch(() => null));
    }
  });
}

async function loggedIn(user, password) {
  const page = await (await browser.newContext({ viewport: { width: 1600, height: 960 } })).newPage();
  watch(page, user);
  await page.goto(`${BASE}/login`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForURL(`${BASE}/`);
  return page;
}
async function openViewer(page, uid) {
  await page.goto(`${BASE}/viewer/spineagent?StudyInstanceUIDs=${uid}`);
  const confirm = page.getByRole('button', { name: 'Confirm and hide' });
  await confirm.waitFor({ timeout: 15_000 }).then(() => confirm.click()).catch(() => {});
  await page.locator('[data-testid=report-panel]').waitFor({ timeout: VIEWER_TIMEOUT });
}
const auditCount = async (admin, uid) => (await getJson(admin, `/api/audit/events/?target_type=report&target_id=${uid}&limit=1`)).count;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
});
try {
  const admin = await loggedIn(ADMIN_USER, ADMIN_PASS);
  const rad = await loggedIn(RAD_USER, RAD_PASS);

  await step('worklist: failed and unsupported apart, with reasons', async () => {
    const hidden = await getJson(rad, '/api/worklist?hide=unsupported');
    const all = await getJson(rad, '/api/worklist');
    const failedRow = all.results.find((r) => r.study_instance_uid === FAILED);
    const kneeRow = all.results.find((r) => r.study_instance_uid === KNEE);
    expect(failedRow.status === 'failed' && kneeRow.status === 'unsupported', `API statuses ${failedRow.status} ${kneeRow.status}`);
    await rad.locator(`tr[data-uid="${FAILED}"]`).waitFor();
    // Unsupported studies are hidden from the radiologist by default.
    expect(await rad.locator(`tr[data-uid="${KNEE}"]`).count() === 0, 'the unsupported study is shown by default');
    same(await rad.locator('#worklist tbody tr').count(), hidden.results.length, 'rows shown by default');
    same(await rad.locator(`tr[data-uid="${FAILED}"] td.status`).textContent(), failedRow.status_label, 'failed label');
    same(await rad.locator(`tr[data-uid="${FAILED}"] td.reason`).textContent(), failedRow.reason, 'failure reason');
    expect(await rad.locator(`tr[data-uid="${FAILED}"] button.retry`).count() === 0, 'a radiologist is offered the retry');
    await rad.locator('input[name=show_unsupported]').check();
    await rad.locator(`tr[data-uid="${KNEE}"]`).waitFor();
    same(await rad.locator(`tr[data-uid="${KNEE}"] td.status`).textContent(), kneeRow.status_label, 'unsupported label');
    same(await rad.locator(`tr[data-uid="${KNEE}"] td.reason`).textContent(), kneeRow.reason, 'unsupported reason');
    // Sorting by status on the server: the page's order is the API's.
    await rad.locator('button.sort[data-sort="status"]').click();
    await rad.waitForFunction(() => location.search.includes('ordering=status'));
    await rad.waitForFunction((n) => document.querySelectorAll('#worklist tbody tr[data-uid]').length === n, all.results.length);
    const sorted = await getJson(rad, '/api/worklist?ordering=status');
    same(await rad.locator('#worklist tbody tr[data-uid]').evaluateAll((trs) => trs.map((tr) => tr.dataset.uid)),
      sorted.results.map((r) => r.study_instance_uid), 'order by status');
    await shot(rad, '01-worklist-states');
    // Quick filter: unread.
    await rad.locator('[data-quick="unread"]').click();
    await rad.waitForFunction(() => location.search.includes('unread=1'));
    const unread = await getJson(rad, '/api/worklist?unread=1&ordering=status');
    await rad.waitForFunction((n) => document.querySelectorAll('#worklist tbody tr[data-uid]').length === n, unread.results.length);
    same(await rad.locator('#worklist tbody tr[data-uid]').evaluateAll((trs) => trs.map((tr) => tr.dataset.uid)),
      unread.results.map((r) => r.study_instance_uid), 'unread rows');
    // The admin sees unsupported rows by default and a retry on the failed one.
    await admin.locator(`tr[data-uid="${KNEE}"]`).waitFor();
    expect(await admin.locator(`tr[data-uid="${FAILED}"] button.retry`).count() === 1, 'no retry for the admin');
    return { failed_reason: failedRow.reason, unsupported_reason: kneeRow.reason };
  });

  await step('radiologist: failed study', async () => {
    await openViewer(rad, FAILED);
    await rad.locator('[data-testid=job-failed]').waitFor({ timeout: 60_000 });
    const api = await getJson(rad, `/api/studies/${FAILED}/report`);
    same(await rad.locator('[data-testid=job-reason]').textContent(), `Error: ${api.job.error}`, 'failure reason in the panel');
    same(await rad.locator('[data-testid=job-status]').textContent(), api.job.status_label, 'job status label');
    for (const hidden of ['report-text', 'radpeer', 'sign-unrated', 'retry-job']) {
      expect(await rad.locator(`[data-testid=${hidden}]`).count() === 0, `${hidden} offered for a failed analysis`);
    }
    expect(await rad.locator('[data-testid=write-from-scratch]').count() === 1, 'no way to write a report without a draft');
    // The state is final: the panel neither polls nor writes audit rows while it sits open.
    const requests = stateRequests.length;
    const rows = await auditCount(admin, FAILED);
    await sleep(10_000);
    await shot(rad, '02-panel-failed');
    const idle = { state_requests_while_open: stateRequests.length - requests, audit_rows_while_open: (await auditCount(admin, FAILED)) - rows };
    same((await getJson(rad, `/api/studies/${FAILED}/report`)).status, 'no_draft', 'opening a failure claims nothing');
    return idle;
  });

  await step('radiologist: unsupported study, a report without a draft', async () => {
    await openViewer(rad, KNEE);
    await rad.locator('[data-testid=job-unsupported]').waitFor({ timeout: 60_000 });
    const api = await getJson(rad, `/api/studies/${KNEE}/report`);
    same(await rad.locator('[data-testid=job-reason]').textContent(), `Reason: ${api.job.error}`, 'unsupported reason');
    expect(await rad.locator('[data-testid=report-text]').count() === 0, 'an editor before the reader chose to write');
    await shot(rad, '03-panel-unsupported');
    await rad.locator('[data-testid=write-from-scratch]').click();
    await rad.locator('[data-testid=report-text]').click();
    await rad.keyboard.type('FINDINGS: Knee MR sent to the spine worklist; reported by hand. No spine imaged.');
    await rad.locator('[data-testid=version-label]', { hasText: /Saved as version 1/ }).waitFor({ timeout: 20_000 });
    await rad.locator('[data-testid=sign-unrated]').waitFor();
    expect(await rad.locator('[data-testid=radpeer]').count() === 0, 'RADPEER offered without an AI draft');
    await rad.locator('[data-testid=sign-unrated] button.sa-sign').click();
    await rad.locator('[data-testid=signed-document]').waitFor({ timeout: 20_000 });
    const signed = await getJson(rad, `/api/studies/${KNEE}/report`);
    expect(signed.locked && signed.radpeer === null, 'not signed without RADPEER');
    same(await rad.locator('[data-testid=signed-text]').textContent(), signed.current.text, 'signed text');
  });

  await step('admin: retry the failed analysis', async () => {
    await openViewer(admin, FAILED);
    await admin.locator('[data-testid=retry-job]').waitFor();
    const loadsBefore = reportFinals.length; // the loads after the click: the panel's first one is the retry's
    await admin.locator('[data-testid=retry-job]').click();
    await admin.locator('[data-testid=retry-message]', { hasText: /Queued/ }).waitFor({ timeout: 20_000 });
    const started = stateRequests.length;
    // The panel follows the new job by polling the small state endpoint until the draft is there.
    await admin.locator('[data-testid=findings] li').first().waitFor({ timeout: 300_000 });
    await admin.waitForFunction(() => document.querySelector('[data-testid=report-panel]')?.dataset.final === 'true', null, { timeout: 60_000 });
    const polled = stateRequests.length - started;
    const api = await getJson(admin, `/api/studies/${FAILED}/report`);
    same(api.state, 'ready', 'state after the retry');
    same(await admin.locator('[data-testid=report-text]').inputValue(), api.current.text, 'the new draft in the panel');
    await shot(admin, '04-panel-after-retry');
    const after = stateRequests.length;
    await sleep(8_000);
    // A fast worker can finish before the panel's first load after the retry: then nothing is left to poll.
    const finalAtFirstLoad = reportFinals.slice(loadsBefore).find((f) => f !== null) === true;
    return { state_requests: polled, state_requests_after_final: stateRequests.length - after,
      final_at_first_load: finalAtFirstLoad };
  });

  await step('signed from a second tab while typing', async () => {
    await openViewer(rad, FAILED);
    await rad.locator('[data-testid=report-text]').waitFor({ timeout: 60_000 });
    await rad.locator('[data-testid=report-text]').click();
    await rad.keyboard.press('Control+End');
    await rad.keyboard.type('\nTyped while it was signed.');
    // The "second tab": the same reader signs the saved version through the API before the autosave fires.
    const api = await getJson(rad, `/api/studies/${FAILED}/report`);
    const sign = await postJson(rad, `/api/studies/${FAILED}/report/sign`, { number: api.current.number, radpeer_score: '1' });
    expect(sign.status === 200, `second-tab sign: ${sign.status}`);
    // The autosave meets 409 locked: the panel shows the signed report and keeps the typed text.
    await rad.locator('[data-testid=unsaved-after-signing]').waitFor({ timeout: 20_000 });
    expect((await rad.locator('[data-testid=unsaved-after-signing] pre').textContent()).includes('Typed while it was signed.'), 'typed text lost');
    await shot(rad, '05-signed-elsewhere');
    await rad.getByRole('button', { name: 'Use it as an addendum' }).click();
    await rad.locator('[data-testid=add-addendum]').click();
    await rad.locator('[data-testid=addendum]').first().waitFor({ timeout: 20_000 });
    const signed = await getJson(rad, `/api/studies/${FAILED}/report`);
    same(await rad.locator('[data-testid=addendum] pre').allTextContents(), signed.addenda.map((a) => a.text), 'addenda shown');
  });
  await step('a study UID that does not exist', async () => {
    const bogus = '1.2.826.0.1.3680043.10.999.404404';
    // A link to a study the index does not hold: our page says so and leads back, not OHIF's bare screen.
    const response = await rad.goto(`${BASE}/viewer/spineagent?StudyInstanceUIDs=${bogus}`);
    same(response.status(), 404, 'the page\'s status');
    const api = await rad.evaluate((uid) => fetch(`/api/studies/${uid}/report`).then((r) => r.status), bogus);
    same(api, 404, 'the API answer for an unknown study');
    expect((await rad.locator('[data-testid=study-not-found] .error').textContent()).includes(bogus), 'the UID is not named');
    await shot(rad, '06-study-not-found');
    await rad.getByRole('link', { name: 'Back to the worklist' }).click();
    await rad.waitForURL(`${BASE}/`);
    return { bogus };
  });
  report.ok = true;
} catch (error) {
  report.failed_step = current();
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
