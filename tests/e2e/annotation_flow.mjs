// The annotator's and the adjudicator's pages in a real browser, driven by the keyboard.
// Driven by tests/e2e/test_annotation_flow.py; prints one JSON object on stdout, exits 0 only if every step passed.
//
// SCENARIO=blind (default): the annotator verifies two tasks blind (nothing preset, no highlights, the API
// withholds the extraction), reveals the suggestions of the first after a complete first pass, corrects a row,
// submits and goes on to the next task, finishes the queue, reopens the first task read-only and is refused a
// duplicate; then the adjudicator sees the disagreeing rows and the annotators' comments, is refused a stale
// decision, and decides with the keyboard.
// SCENARIO=assisted: the toggles start at the extraction; a row the annotator changes is marked; the canal row
// shows its level (L4-L5) next to the evidence sentence; the annotator adds a second level (L3-L4) by keyboard,
// is refused an unknown one, decides it, submits, and the API returns both levels.
//
// env: BASE_URL, TASK_ID (first task), NEXT_TASK_ID, DISPUTED_TASK_ID, ANNOTATOR / ADJUDICATOR ("user:password"),
//      OUT_DIR (screenshots), CHROMIUM, SCENARIO
import { chromium, expect, getJson, postJson, run } from './browser.mjs';

const BASE = process.env.BASE_URL.replace(/\/$/, '');
const TASK = process.env.TASK_ID;
const NEXT = process.env.NEXT_TASK_ID;
const DISPUTED = process.env.DISPUTED_TASK_ID;
const SCENARIO = process.env.SCENARIO || 'blind';
const OUT = process.env.OUT_DIR || 'test-artifacts/e2e-annotation';
const r = run(OUT);
const { report } = r;
// Anchored: the login page's own URL (/login?next=/annotate/) ends the same way.
const QUEUE_URL = (url) => url.pathname === '/annotate/';
const TASK_URL = (id) => (url) => url.pathname === `/annotate/tasks/${id}`;

// The pages the docs show, whole (the legend and the buttons are below the fold).
const fullShot = (page, name) => page.screenshot({ path: `${OUT}/${name}.png`, fullPage: true });
const checked = (page) => page.$$eval('tr[data-condition]', (rows) => Object.fromEntries(rows
  .map((row) => [row.dataset.condition, row.querySelector('input:checked')?.value])
  .filter(([, v]) => v !== undefined)));
const rowsWith = (page, cls) => page.$$eval(`tr[data-condition].${cls}`, (rows) => rows.map((row) => row.dataset.condition));
const conditions = (page) => page.$$eval('tr[data-condition]', (rows) => rows.map((row) => row.dataset.condition));
const activeRow = (page) => page.$eval('tr.active', (row) => row.dataset.condition);

async function press(page, key, times = 1) {
  for (let i = 0; i < times; i += 1) await page.keyboard.press(key);
}

/** Keyboard only: move the active row to ``key`` with j/k (or the arrows), then press the choice key. */
async function decide(page, key, choice) {
  const keys = await conditions(page);
  const want = keys.indexOf(key);
  let at = keys.indexOf(await activeRow(page));
  while (at !== want) {
    await page.keyboard.press(at < want ? 'j' : 'k');
    at = keys.indexOf(await activeRow(page));
  }
  await page.keyboard.press(choice);
}

async function login(page, who) {
  const [user, pass] = who.split(':');
  await page.goto(`${BASE}/annotate/`);
  await page.waitForURL(/\/login/);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', pass);
  await Promise.all([page.waitForURL(QUEUE_URL), page.click('button[type=submit]')]);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const ctx = await browser.newContext({ viewport: { width: 1500, height: 1000 } });
  const page = await ctx.newPage();
  r.watch(page, 'annotator');
  page.on('dialog', (d) => { report.errors.push(`dialog: ${d.message()}`); d.dismiss(); });

  await r.step('queue', async () => {
    await login(page, process.env.ANNOTATOR);
    const rows = await page.locator('#queue tbody tr[data-task]').count();
    expect(rows === (SCENARIO === 'blind' ? 2 : 1), `queue has ${rows} rows`);
    await r.shot(page, '01-queue');
    return { rows };
  });

  if (SCENARIO === 'assisted') {
    await r.step('assisted: preset, a changed row is marked', async () => {
      await Promise.all([page.waitForURL(TASK_URL(TASK)), page.click('#start')]);
      const preset = await checked(page);
      expect(preset.canal === '1' && preset.par === '-1', `preset ${JSON.stringify(preset)}`);
      expect(await page.getAttribute('#mode-banner', 'data-state') === 'assisted', 'not assisted');
      expect(await rowsWith(page, 'changed').then((c) => c.length) === 0, 'rows marked before any change');
      await decide(page, 'par', '1');
      const changed = await rowsWith(page, 'changed');
      expect(JSON.stringify(changed) === '["par"]', `changed rows ${changed}`);
      expect(await page.locator('tr.changed .mark-changed').isVisible(), 'the changed mark is not visible');
      await r.shot(page, '02-assisted-changed');
      return { preset_canal: preset.canal, changed };
    });

    await r.step('assisted: one condition at two levels, by keyboard', async () => {
      const levelsOf = (key) => page.$$eval(`tr[data-condition="${key}"]`, (rows) => rows.map((row) => row.dataset.level));
      expect(JSON.stringify(await levelsOf('canal')) === '["L4-L5"]', `canal levels ${await levelsOf('canal')}`);
      const evidence = await page.innerText('tr[data-condition="canal"] td.evidence');
      expect(/L4-L5/.test(evidence) && /canal stenosis at L4-L5/i.test(evidence), `canal evidence ${evidence}`);
      while (await activeRow(page) !== 'canal') await page.keyboard.press('k');
      await page.keyboard.press('l');
      await page.keyboard.type('L9-L9');
      await page.keyboard.press('Enter');
      const refusal = await page.innerText('#message');
      expect(/Unknown level/.test(refusal) && (await levelsOf('canal')).length === 1, `unknown level: ${refusal}`);
      await page.fill('#add-level', '');
      await page.keyboard.type('L5-S1');  // added, then removed again with X
      await page.keyboard.press('Enter');
      const added = await levelsOf('canal');
      await page.keyboard.press('x');
      const removed = await levelsOf('canal');
      expect(JSON.stringify(added) === '["L4-L5","L5-S1"]' && JSON.stringify(removed) === '["L4-L5"]',
        `add then remove: ${added} -> ${removed}`);
      await page.keyboard.press('l');
      await page.keyboard.type('l3-l4');
      await page.keyboard.press('Enter');
      const levels = await levelsOf('canal');
      expect(JSON.stringify(levels) === '["L3-L4","L4-L5"]', `canal levels after adding ${levels}`);
      const active = await page.$eval('tr.active', (row) => `${row.dataset.condition}@${row.dataset.level}`);
      expect(active === 'canal@L3-L4', `active row ${active}`);
      await page.keyboard.press('3');  // uncertain at L3-L4
      const progress = await page.innerText('#progress');
      await fullShot(page, '03-assisted-two-levels');
      const [request] = await Promise.all([
        page.waitForRequest((req) => req.method() === 'POST' && req.url().endsWith(`/tasks/${TASK}/annotations`)),
        page.waitForURL(QUEUE_URL), page.keyboard.press('Control+Enter')]);
      const sent = JSON.parse(request.postData()).level_labels;
      expect(JSON.stringify(sent.canal) === '{"L3-L4":-1,"L4-L5":1}' && !('labels' in JSON.parse(request.postData())),
        `the page sent canal ${JSON.stringify(sent.canal)}`);
      // The task reopens read-only with both levels, as the API stored them.
      await page.goto(`${BASE}/annotate/tasks/${TASK}`);
      const shown = await page.$$eval('tr[data-condition="canal"]', (rows) => Object.fromEntries(
        rows.map((row) => [row.dataset.level, row.querySelector('input:checked')?.value])));
      expect(JSON.stringify(shown) === '{"L3-L4":"-1","L4-L5":"1"}', `read-only canal ${JSON.stringify(shown)}`);
      return { levels, progress, api_canal: sent.canal, readonly_canal: shown, refusal };
    });
  } else {
    let keys;
    await r.step('blind: nothing preset, nothing highlighted, nothing sent', async () => {
      await Promise.all([page.waitForURL(TASK_URL(TASK)), page.click('#start')]);
      keys = await conditions(page);
      const detail = await getJson(page, `/api/annotations/tasks/${TASK}/`);
      expect(detail.extraction_hidden === true && detail.extractions.length === 0 && detail.preset === null
        && detail.suggested === null && detail.suggested_levels === null,
      `the API sent the extraction: ${JSON.stringify(detail).slice(0, 400)}`);
      // Nor its levels: every row is at "study" until the reveal, and the page's config holds none of them.
      const levels = await page.$$eval('tr[data-condition]', (rows) => [...new Set(rows.map((row) => row.dataset.level))]);
      const config = JSON.parse(await page.innerText('#task-config'));
      expect(JSON.stringify(levels) === '["study"]' && config.suggested_levels === null && config.level_evidence === null,
        `levels before the reveal ${levels}`);
      const state = await page.getAttribute('#mode-banner', 'data-state');
      const marks = await page.locator('#report mark').count();
      const scriptTags = await page.locator('#report script').count();
      const preset = await checked(page);
      expect(state === 'blind' && marks === 0 && scriptTags === 0, `state ${state}, ${marks} marks, ${scriptTags} scripts`);
      expect(Object.keys(preset).length === 0, `preset ${JSON.stringify(preset)}`);
      expect(await page.locator('#keys').isVisible(), 'no keyboard legend');
      expect(await page.isDisabled('#reveal'), 'reveal enabled before every row is decided');
      expect(await activeRow(page) === keys[0], 'the first row is not active');
      return { rows: keys.length, marks, legend: (await page.innerText('#keys')).replace(/\s+/g, ' ') };
    });

    await r.step('blind: a first pass by keyboard (reveal refused while rows are open)', async () => {
      await press(page, '2', 3);  // absent, absent, absent: each moves on to the next row
      await page.keyboard.press('r');  // incomplete: refused on the page, nothing posted
      const refusal = await page.innerText('#message');
      expect(/Decide every row/.test(refusal), `no refusal: ${refusal}`);
      expect(await activeRow(page) === keys[3], 'the first undecided row is not active after the refusal');
      await press(page, '2', keys.length - 3);
      await decide(page, 'canal', '1');
      await decide(page, 'par', '1');
      await decide(page, 'fracture', '3');  // unsure in the first pass
      await page.keyboard.press('ArrowUp');
      await page.keyboard.press('ArrowDown');
      const progress = await page.innerText('#progress');
      expect(progress === `${keys.length} of ${keys.length} rows decided`, progress);
      expect(!(await page.isDisabled('#reveal')), 'reveal still disabled');
      await fullShot(page, '02-blind-first-pass');
      return { progress, refusal };
    });

    let firstPass;
    await r.step('reveal: the suggestions after the first pass, differing rows marked', async () => {
      firstPass = await checked(page);
      await Promise.all([page.waitForSelector('#mode-banner[data-state=revealed]'), page.keyboard.press('r')]);
      const marks = await page.locator('#report mark.ev').count();
      const differs = await rowsWith(page, 'differs');
      const kept = await checked(page);
      expect(marks > 0, 'no highlighted evidence after the reveal');
      const evidence = await page.innerText('tr[data-condition="canal"] td.evidence');
      expect(/L4-L5/.test(evidence), `no level next to the canal evidence: ${evidence}`);
      expect(JSON.stringify(kept) === JSON.stringify(firstPass), 'the first pass was not kept');
      expect(JSON.stringify(differs.sort()) === '["fracture","par"]', `differing rows ${differs}`);
      expect(await page.locator('tr.differs .mark-differs').first().isVisible(), 'the differs mark is not visible');
      await fullShot(page, '03-revealed');
      return { marks, differs };
    });

    await r.step('submit and next (Ctrl+Enter) after correcting one row', async () => {
      await decide(page, 'fracture', '2');  // seen the suggestion: no fracture after all
      const differs = await rowsWith(page, 'differs');
      expect(JSON.stringify(differs) === '["par"]', `differing rows after the correction ${differs}`);
      await page.keyboard.press('c');
      await page.keyboard.type('pars defect clearly seen on the images');
      await page.keyboard.press('Escape');
      await Promise.all([page.waitForURL(TASK_URL(NEXT), { timeout: 10000 }), page.keyboard.press('Control+Enter')]);
      return { next: page.url().replace(BASE, '') };
    });

    await r.step('the next task, blind; Enter submits and the queue is finished', async () => {
      expect(await page.getAttribute('#mode-banner', 'data-state') === 'blind', 'the next task is not blind');
      expect(await page.locator('#report mark').count() === 0, 'highlights on a blind task');
      await press(page, '2', keys.length);
      await Promise.all([page.waitForURL(QUEUE_URL, { timeout: 10000 }), page.keyboard.press('Enter')]);
      const finished = await page.innerText('#queue-finished');
      await r.shot(page, '04-queue-finished');
      return { finished };
    });

    await r.step('the finished task reopens read-only; a duplicate is refused', async () => {
      await Promise.all([page.waitForURL(TASK_URL(TASK)),
        page.click(`#submitted tr[data-task="${TASK}"] a`)]);
      const state = await page.getAttribute('#mode-banner', 'data-state');
      const disabled = await page.locator('input[type=radio]:disabled').count();
      const mine = await checked(page);
      const submitButtons = await page.locator('#submit, #submit-next').count();
      expect(state === 'readonly' && disabled === 3 * keys.length && submitButtons === 0,
        `state ${state}, ${disabled} disabled radios, ${submitButtons} submit buttons`);
      expect(mine.par === '1' && mine.fracture === '0' && mine.canal === '1', `shown ${JSON.stringify(mine)}`);
      await fullShot(page, '05-readonly');
      const again = await postJson(page, `/api/annotations/tasks/${TASK}/annotations`, { labels: Object.fromEntries(
        Object.entries(mine).map(([k, v]) => [k, Number(v)])) });
      expect(again.status === 409, `duplicate answered ${again.status}`);
      const missing = await page.goto(`${BASE}/annotate/tasks/999999`);
      expect(missing.status() === 404 && await page.locator('[data-testid=task-missing]').count() === 1,
        'a task one may not open is not the plain 404 page');
      return { state, duplicate: again.body };
    });

    const admin = await (await browser.newContext({ viewport: { width: 1500, height: 1000 } })).newPage();
    r.watch(admin, 'adjudicator');
    await r.step('adjudication: disagreeing rows highlighted, comments shown', async () => {
      await login(admin, process.env.ADJUDICATOR);
      await Promise.all([admin.waitForURL(TASK_URL(DISPUTED)), admin.click('#start-adjudication')]);
      const disagree = (await rowsWith(admin, 'disagree')).sort();
      const comments = await admin.innerText('#comments');
      const count = await admin.innerText('#n-disagree');
      expect(JSON.stringify(disagree) === '["inflammation","par"]' && count === '2', `disagreeing rows ${disagree}`);
      expect(/negative for discitis/i.test(comments) && /no comment/.test(comments), `comments ${comments}`);
      expect(await activeRow(admin) === 'par', 'the first disputed row is not active');
      await fullShot(admin, '06-adjudicate');
      const stale = await postJson(admin, `/api/annotations/tasks/${DISPUTED}/adjudicate`,
        { labels: Object.fromEntries(keys.map((k) => [k, 0])), revision: 'not-what-you-saw' });
      expect(stale.status === 409 && stale.body.error === 'stale', `stale decision answered ${stale.status}`);
      return { disagree, stale: stale.body.error };
    });

    await r.step('adjudication: decided by keyboard, save and next', async () => {
      await admin.keyboard.press('3');  // par uncertain
      expect(await activeRow(admin) === 'inflammation', 'did not move on to the next disputed row');
      await admin.keyboard.press('2');  // inflammation absent: "Negative for discitis"
      await Promise.all([admin.waitForURL(QUEUE_URL, { timeout: 10000 }), admin.keyboard.press('Control+Enter')]);
      return { after: admin.url().replace(BASE, '') };
    });
  }
  const unexpected = report.failedRequests.filter((f) => !/ 409 | 404 .*\/annotate\/tasks\/999999/.test(f));
  expect(unexpected.length === 0, `failed requests: ${unexpected.join('; ')}`);
  expect(report.errors.filter((e) => !/status of 40[49]/.test(e)).length === 0, report.errors.join('; '));
  report.ok = true;
} catch (err) {
  report.error = `${r.current()}: ${String(err && err.stack || err)}`;
} finally {
  await browser.close();
  console.log(JSON.stringify(report));
  process.exit(report.ok ? 0 : 1);
}
