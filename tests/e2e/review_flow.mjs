// The radiologist review flow in a real browser, then an annotator being refused. Every check compares what is
// on screen with what the API says. Driven by tests/e2e/test_review_flow.py; prints one JSON object on stdout,
// exits 0 only if every step passed.
//
// env: BASE_URL, STUDY_UID, RADIOLOGIST / ANNOTATOR ("user:password"), OUT_DIR (screenshots), CHROMIUM
import { chromium, expect, getJson, postJson, run, same } from './browser.mjs';

const BASE = process.env.BASE_URL.replace(/\/$/, '');
const UID = process.env.STUDY_UID;
const OUT = process.env.OUT_DIR || 'test-artifacts/e2e';
const [RAD_USER, RAD_PASS] = process.env.RADIOLOGIST.split(':');
const [ANN_USER, ANN_PASS] = process.env.ANNOTATOR.split(':');
const VIEWER_TIMEOUT = 180_000; // first paint of OHIF with software WebGL on 2 shared cores

const { report, step, shot, watch: watchPage, current } = run(OUT);
report.stateRequests = [];

function watch(page, who) {
  watchPage(page, who);
  page.on('request', (r) => { if (r.url().includes('/report/state')) report.stateRequests.push(`${who} ${Date.now()}`); });
}

async function login(page, user, password) {
  await page.goto(`${BASE}/`);
  await page.waitForURL(/\/login/);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
}

const reportApi = (page) => getJson(page, `/api/studies/${UID}/report`);

async function notice(page) {
  // OHIF's "investigational use only" notice, shown until this user has confirmed it once.
  const confirm = page.getByRole('button', { name: 'Confirm and hide' });
  return confirm.waitFor({ timeout: 20_000 }).then(() => confirm.click()).then(() => true).catch(() => false);
}

async function typeAtEnd(page, text) {
  await page.locator('[data-testid=report-text]').click();
  await page.keyboard.press('Control+End');
  await page.keyboard.type(text);
}
const savedLabel = (page) => page.locator('[data-testid=version-label]', { hasText: /Saved as version \d+/ });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1600, height: 960 } });
  const rad = await context.newPage();
  watch(rad, 'radiologist');
  const dialogs = [];
  rad.on('dialog', async (d) => { dialogs.push(d.type()); await d.accept(); });

  await step('login', async () => {
    await login(rad, RAD_USER, RAD_PASS);
    await shot(rad, '01-login');
    await rad.click('button[type=submit]');
    await rad.waitForURL(`${BASE}/`);
  });

  await step('worklist', async () => {
    const row = rad.locator(`tr[data-uid="${UID}"]`);
    await row.waitFor();
    const nav = await rad.locator('[data-testid=nav] a').evaluateAll((as) => as.map((a) => a.dataset.page));
    same(nav, ['worklist'], 'radiologist navigation');
    const api = await getJson(rad, '/api/worklist?hide=unsupported');
    const apiRow = api.results.find((r) => r.study_instance_uid === UID);
    same(await row.locator('td.status').textContent(), apiRow.status_label, 'worklist status');
    expect((await rad.locator('[data-testid=pager]').textContent()).includes(`of ${api.count} studies`), 'pager count');
    await shot(rad, '02-worklist');
    await row.locator('a.open').click();
    return { status: apiRow.status_label, nav };
  });

  let api;
  await step('viewer and panel', async () => {
    await rad.waitForURL(/\/viewer\/spineagent\?/);
    const shown = await notice(rad);
    expect(shown, 'the investigational-use notice was not shown on this user\'s first open');
    await rad.locator('[data-testid=report-panel]').waitFor({ timeout: VIEWER_TIMEOUT });
    await rad.locator('[data-testid=findings] li').first().waitFor({ timeout: 60_000 });
    // At least one model box drawn as an annotation on an image.
    await rad.waitForFunction(() => /^[1-9]\d*\//.test(document.querySelector('[data-testid=box-count]')?.textContent || ''),
      null, { timeout: VIEWER_TIMEOUT });
    api = await reportApi(rad);
    // The bundle's call per condition as the panel marks it (folded rows included), with its readable name.
    const calls = await rad.locator('button.sa-finding').evaluateAll((buttons) =>
      buttons.map((b) => [b.dataset.condition, b.dataset.status, b.textContent.trim().slice(0, 1)]));
    const names = await rad.locator('[data-testid=findings] button.sa-finding').evaluateAll((buttons) =>
      buttons.map((b) => [b.dataset.condition, b.children[1].textContent]));
    for (const [key, text] of names) expect(text.includes(api.condition_names[key]), `finding ${key} shows "${text}"`);
    // One number per finding, the API's, named as the API names it.
    const numbers = await rad.locator('[data-testid=findings] button.sa-finding').evaluateAll((bs) =>
      bs.map((b) => [b.dataset.condition, b.textContent.match(/\d+%/g)]));
    for (const [key, found] of numbers) {
      const p = api.result.conditions.find((c) => c.condition === key).probability;
      same(found, [`${Math.round(p * 100)}%`], `numbers shown for ${key}`);
    }
    same(await rad.locator('[data-testid=score-meaning]').textContent(), api.score.meaning, 'score meaning');
    same(await rad.locator('[data-testid=report-status]').textContent(), api.status_label, 'report status label');
    const synthetic = await rad.locator('[data-testid=synthetic-label]').count();
    // The region the model read, where it came from, and the levels in view: the API's, on screen.
    same(await rad.locator('[data-testid=region]').textContent(), api.result.region, 'region shown');
    const coverage = api.result.coverage || [];
    if (coverage.length) {
      same(await rad.locator('[data-testid=coverage]').textContent(), `${coverage[0]} to ${coverage[coverage.length - 1]}`,
        'levels in view shown');
    }
    const shownOrEmpty = async (testid) => {
      const el = rad.locator(`[data-testid=${testid}]`);
      return (await el.count()) ? el.textContent() : '';
    };
    same(await shownOrEmpty('levels-note'), api.result.levels_note || '', 'where the levels were counted');
    same(await shownOrEmpty('region-disagreement'), api.result.region_disagreement || '', 'region disagreement');
    // An absent call the bundle cannot rule out never reads as plain "not found".
    const notRuledOut = api.result.conditions.filter((c) => c.status === 'absent' && c.rule_out === false).map((c) => c.condition);
    const absentWords = await rad.locator('button.sa-finding[data-status=absent] .sa-call').evaluateAll((els) =>
      els.map((e) => [e.closest('button').dataset.condition, e.textContent.trim()]));
    for (const [key, words] of absentWords) if (notRuledOut.includes(key)) same(words, 'not ruled out', `call words of ${key}`);
    const boxes = await rad.locator('[data-testid=box-count]').textContent();
    const probabilities = (await rad.locator('[data-testid=findings] li b').allTextContents()).map((t) => parseFloat(t));
    expect(probabilities.every((p, i) => i === 0 || probabilities[i - 1] >= p), 'findings not sorted by probability');
    await rad.waitForTimeout(1500); // let the viewports finish painting for the screenshot
    await shot(rad, '03-viewer-panel');
    return { findings: names.length, synthetic_label: synthetic > 0, boxes, calls, region: api.result.region,
      not_ruled_out: notRuledOut.length };
  });

  await step('opens where the reading starts', async () => {
    // T1 | T2 sagittal side by side (site setting), from the index's sequence typing.
    const layout = await rad.evaluate(() => window.config.spineagent.layout);
    const wanted = layout.map((t) => api.series.find((s) => s.plane === 'sagittal' && s.sequence_type === t && s.modality === 'MR'))
      .filter(Boolean).map((s) => s.series_instance_uid);
    await rad.waitForFunction((n) => window.spineagent.services.viewportGridService.getState().viewports.size === n,
      wanted.length, { timeout: 60_000 });
    const hung = await rad.evaluate(() => {
      const s = window.spineagent.services;
      return [...s.viewportGridService.getState().viewports.keys()].map((id) => {
        const vp = s.cornerstoneViewportService.getCornerstoneViewport(id);
        const imageId = vp.getCurrentImageId();
        const meta = window.spineagent.libs.cornerstone.metaData.get('instance', imageId);
        return { series: meta.SeriesInstanceUID, sop: meta.SOPInstanceUID, index: vp.getCurrentImageIdIndex(), count: vp.getImageIds().length };
      });
    });
    // The top called finding's box or key slice in front, else every series on its middle slice.
    const top = [...api.result.conditions].sort((a, b) => b.probability - a.probability)
      .find((c) => ['present', 'possible'].includes(c.status));
    const target = top && ([...api.result.boxes].filter((b) => b.condition === top.condition).sort((a, b) => b.score - a.score)[0]
      || [...api.result.key_slices].filter((k) => k.condition === top.condition).sort((a, b) => b.score - a.score)[0]);
    const withTarget = target ? hung.findIndex((v) => v.series === target.series_instance_uid) : -1;
    if (target) wanted[wanted.length - 1] = wanted.includes(target.series_instance_uid) ? wanted[wanted.length - 1] : target.series_instance_uid;
    same(hung.map((v) => v.series), wanted, 'series hung left to right');
    hung.forEach((v, i) => {
      if (i === withTarget) same(v.sop, target.sop_instance_uid, 'the top finding\'s image in front');
      else same(v.index, v.count % 2 ? (v.count - 1) / 2 : v.count / 2, `viewport ${i} on the mid-sagittal slice`);
    });
    // Box labels on the image: readable condition name, level and the call, as the API has them.
    const labels = await rad.evaluate(() => window.spineagent.services.measurementService.getMeasurements()
      .map((m) => m.label).filter((l) => l && l.startsWith('AI: ')));
    expect(labels.length === api.result.boxes.length, `labels ${labels.length} != boxes ${api.result.boxes.length}`);
    for (const box of api.result.boxes) {
      const c = api.result.conditions.find((x) => x.condition === box.condition);
      const call = { present: 'present', possible: 'possible', absent: 'below threshold', not_assessed: 'not validated' }[c.status];
      const want = `AI: ${api.condition_names[box.condition]}${box.level ? ` ${box.level}` : ''} · ${call} · score ${Math.round(c.probability * 100)}%`;
      expect(labels.includes(want), `no box labelled "${want}" in ${JSON.stringify(labels)}`);
    }
    return { layout, hung, top: top?.condition || null, labels };
  });

  await step('sentences linked to findings', async () => {
    const linked = api.sentences.filter((s) => s.links.some((l) => l.box || l.key_slice));
    expect(linked.length > 0, 'the draft has no sentence linked to a finding with an image');
    const sentence = linked[0];
    const link = sentence.links[0];
    const target = link.box || link.key_slice;
    // The cursor moves into the sentence: its finding is highlighted and its image shown with the box.
    const editor = rad.locator('[data-testid=report-text]');
    await editor.evaluate((el, pos) => { el.focus(); el.setSelectionRange(pos, pos); }, sentence.start + 2);
    await rad.keyboard.press('ArrowRight');
    await rad.waitForFunction((sop) => window.spineagent.currentImage()?.sopInstanceUID === sop, target.sop_instance_uid, { timeout: 30_000 });
    const active = await rad.locator('.sa-backdrop .sa-sent-active').textContent();
    same(active, sentence.text, 'the sentence marked under the cursor');
    const findingRows = await rad.locator('li.sa-linked-finding button').evaluateAll((bs) => bs.map((b) => b.dataset.condition));
    same([...new Set(findingRows)], [...new Set(sentence.links.map((l) => l.condition))], 'findings highlighted for the sentence');
    const onImage = await rad.evaluate(() => window.spineagent.boxesOnCurrentImage());
    expect(!link.box || onImage > 0, 'the linked box is not on the image shown');
    await rad.waitForTimeout(1000);
    await shot(rad, '04-sentence-link');
    // Clicking a finding highlights its sentences (those the API links to it).
    const condition = link.condition;
    await rad.locator(`button.sa-finding[data-condition="${condition}"]`).first().click();
    const marked = await rad.locator('.sa-backdrop .sa-sent-finding').evaluateAll((els) => els.map((e) => Number(e.dataset.index)));
    same(marked, api.sentences.filter((s) => s.links.some((l) => l.condition === condition)).map((s) => s.index),
      `sentences highlighted for ${condition}`);
    const findingTarget = await rad.locator(`button.sa-finding[data-condition="${condition}"]`).first().getAttribute('data-target-sop');
    await rad.waitForFunction((sop) => window.spineagent.currentImage()?.sopInstanceUID === sop, findingTarget, { timeout: 30_000 });
    // Keyboard: Alt+N moves to the next finding that has somewhere to show.
    await rad.keyboard.press('Alt+N');
    await rad.locator('li.sa-active').waitFor({ timeout: 5_000 });
    return { sentence: sentence.text, links: sentence.links.map((l) => [l.condition, l.level]), marked, boxes_on_image: onImage };
  });

  await step('edit, autosave, Ctrl+S', async () => {
    await typeAtEnd(rad, '\nReviewed in SpineAgent (e2e).');
    await savedLabel(rad).waitFor({ timeout: 20_000 });
    const label = await rad.locator('[data-testid=version-label]').textContent();
    await shot(rad, '05-edited');
    await typeAtEnd(rad, ' Checked.');
    await rad.keyboard.press('Control+S');
    await rad.waitForFunction(() => document.querySelector('[data-testid=editor]')?.dataset.saveState === 'saved', null, { timeout: 5_000 });
    same((await reportApi(rad)).current.text.endsWith('Checked.'), true, 'Ctrl+S saved');
    return { label };
  });

  await step('no lost keystrokes', async () => {
    // Blur: clicking elsewhere saves at once (well within the 1.5 s debounce).
    await typeAtEnd(rad, ' Blurred.');
    await rad.locator('[data-testid=score-meaning]').click();
    await rad.waitForFunction(() => document.querySelector('[data-testid=editor]')?.dataset.saveState === 'saved', null, { timeout: 5_000 });
    same((await reportApi(rad)).current.text.endsWith('Blurred.'), true, 'saved on blur');
    // Switching OHIF's right-panel tab unmounts the panel: pending text is saved on the way out.
    await typeAtEnd(rad, ' Tab switch.');
    await rad.locator('[data-cy="panelMeasurement-btn"]').click();
    await rad.waitForFunction(async (uid) => (await fetch(`/api/studies/${uid}/report`).then((r) => r.json())).current.text.endsWith('Tab switch.'),
      UID, { timeout: 10_000, polling: 500 });
    await rad.locator('[data-cy="report-btn"]').click();
    await rad.locator('[data-testid=report-text]').waitFor();
    same((await rad.locator('[data-testid=report-text]').inputValue()).endsWith('Tab switch.'), true, 'text after the tab switch');
    // Reload right after typing: the browser asks before leaving, the text is saved (or kept and restored).
    await typeAtEnd(rad, ' Before reload.');
    const asked = dialogs.length;
    await rad.reload();
    expect(dialogs.length === asked + 1 && dialogs[asked] === 'beforeunload', `no leave-page prompt: ${dialogs}`);
    await rad.locator('[data-testid=report-text]').waitFor({ timeout: VIEWER_TIMEOUT });
    await rad.waitForFunction(() => document.querySelector('[data-testid=report-text]')?.value.endsWith('Before reload.'), null, { timeout: 20_000 });
    await rad.waitForFunction(() => document.querySelector('[data-testid=editor]')?.dataset.saveState === 'saved', null, { timeout: 20_000 });
    same((await reportApi(rad)).current.text.endsWith('Before reload.'), true, 'saved across the reload');
    // The connection drops during autosave: the panel says so, keeps the text, and saves once it is back.
    await context.setOffline(true);
    await typeAtEnd(rad, ' Offline.');
    await rad.locator('[data-testid=version-label]', { hasText: /no connection/ }).waitFor({ timeout: 20_000 });
    await shot(rad, '06-offline');
    await context.setOffline(false);
    await rad.waitForFunction(() => document.querySelector('[data-testid=editor]')?.dataset.saveState === 'saved', null, { timeout: 30_000 });
    same((await reportApi(rad)).current.text.endsWith('Offline.'), true, 'saved after the connection came back');
    return { prompts: dialogs };
  });

  await step('stale save: three-way merge', async () => {
    // Another tab saves on top of the version this editor is based on, changing the first line.
    const before = await reportApi(rad);
    const other = await postJson(rad, `/api/studies/${UID}/report/versions`,
      { text: `Other tab first line.\n${before.current.text}`, base_number: before.current.number });
    expect(other.status === 201, `other tab save: ${other.status}`);
    await typeAtEnd(rad, ' Mine.');
    await rad.locator('[data-testid=merge]').waitFor({ timeout: 20_000 });
    await rad.locator('[data-testid=merge]').scrollIntoViewIfNeeded();
    expect((await rad.locator('[data-testid=merge-theirs] ins').allTextContents()).join('').includes('Other tab first line.'), 'their change not marked');
    expect((await rad.locator('[data-testid=merge-mine] ins').allTextContents()).join('').includes('Mine.'), 'my change not marked');
    same(await rad.locator('[data-testid=merge-base]').textContent(), before.current.text, 'merge base');
    const merged = await rad.locator('[data-testid=merge-result]').inputValue();
    expect(merged.startsWith('Other tab first line.') && merged.endsWith('Mine.'), `both sides not merged: ${merged.slice(-80)}`);
    await shot(rad, '07-merge');
    await rad.locator('[data-testid=merge-save]').click();
    await savedLabel(rad).waitFor({ timeout: 20_000 });
    const after = await reportApi(rad);
    same(after.current.text, merged, 'the merged text saved');
    same(after.current.base_number, other.body.version.number, 'saved on top of their version');
  });

  await step('history and diff', async () => {
    const apiNow = await reportApi(rad);
    await rad.locator('[data-testid=history]').scrollIntoViewIfNeeded();
    const rows = await rad.locator('[data-testid=history] li').evaluateAll((lis) => lis.map((li) => [Number(li.dataset.number), li.dataset.kind]));
    same(rows, apiNow.versions.map((v) => [v.number, v.kind]), 'history rows');
    await rad.locator('[data-testid=history] li').last().locator('[data-testid=diff-ai]').click();
    await rad.locator('[data-testid=diff]').waitFor();
    const diff = await getJson(rad, `/api/studies/${UID}/report/diff?from=${apiNow.ai_draft.number}&to=${apiNow.current.number}`);
    same(await rad.locator('[data-testid=diff-counts]').textContent(), `${diff.words.inserted} words added, ${diff.words.deleted} removed`, 'diff counts');
    same((await rad.locator('[data-testid=diff] ins').allTextContents()).join(''), diff.ops.filter((o) => o.op === 'insert').map((o) => o.text).join(''), 'insertions marked');
    await rad.locator('[data-testid=diff]').scrollIntoViewIfNeeded();
    await shot(rad, '08-history');
    return { versions: rows.length, words: diff.words };
  });

  await step('radpeer and sign', async () => {
    await rad.locator('input[name=radpeer][value="2b"]').check();
    const sign = rad.getByRole('button', { name: 'Sign report' });
    expect(await sign.isDisabled(), 'Sign enabled without the comment 2b needs');
    await rad.fill('[data-testid=radpeer-comment]', 'Draft missed nothing significant; wording changed.');
    await rad.locator('input[name=radpeer][value="2a"]').check();
    expect(await sign.isEnabled(), 'Sign disabled with a valid score');
    await rad.locator('.sa-radpeer').scrollIntoViewIfNeeded();
    await shot(rad, '09-radpeer');
    await sign.click();
    await rad.locator('[data-testid=signed-document]').waitFor({ timeout: 20_000 });
    expect(await rad.locator('[data-testid=report-text]').count() === 0, 'an editable report is still shown after signing');
    const apiNow = await reportApi(rad);
    same(await rad.locator('[data-testid=signed-text]').textContent(), apiNow.current.text, 'signed text');
    return { signed: await rad.locator('[data-testid=signed]').textContent() };
  });

  await step('addenda', async () => {
    // One through the API (another client), one through the panel; after a reload both are in the document.
    const viaApi = await postJson(rad, `/api/studies/${UID}/report/addenda`, { text: 'Addendum via the API: outside films compared.' });
    expect(viaApi.status === 201, `addendum via the API: ${viaApi.status}`);
    await rad.fill('[data-testid=addendum-text]', 'Addendum in the panel: no change to the impression.');
    await rad.locator('[data-testid=add-addendum]').click();
    await rad.locator('[data-testid=addendum]').nth(1).waitFor({ timeout: 20_000 });
    await rad.reload();
    await notice(rad); // must not be shown again: counted below
    await rad.locator('[data-testid=signed-document]').waitFor({ timeout: VIEWER_TIMEOUT });
    const apiNow = await reportApi(rad);
    const shown = await rad.locator('[data-testid=addendum] pre').allTextContents();
    same(shown, apiNow.addenda.map((a) => a.text), 'addenda in the document');
    await rad.locator('[data-testid=signed-document]').scrollIntoViewIfNeeded();
    await shot(rad, '10-signed-addenda');
    return { addenda: shown.length };
  });

  await step('notice acknowledged once per user, back to the worklist', async () => {
    // A new browser (no storage) for the same user: the notice is not shown again.
    const fresh = await (await browser.newContext({ viewport: { width: 1600, height: 960 } })).newPage();
    watch(fresh, 'radiologist-2');
    await login(fresh, RAD_USER, RAD_PASS);
    await fresh.click('button[type=submit]');
    await fresh.waitForURL(`${BASE}/`);
    await fresh.goto(`${BASE}/viewer/spineagent?StudyInstanceUIDs=${UID}`);
    await fresh.locator('[data-testid=report-panel]').waitFor({ timeout: VIEWER_TIMEOUT });
    const again = await notice(fresh);
    expect(!again, 'the notice was shown again to a user who confirmed it');
    // The header's back control returns to our worklist (not OHIF's study list).
    await fresh.locator('[data-testid=back-to-worklist]').click();
    await fresh.waitForURL(`${BASE}/`);
    await fresh.locator(`tr[data-uid="${UID}"]`).waitFor();
    await fresh.close();
    return { notice_shown_again: again };
  });

  const ann = await (await browser.newContext({ viewport: { width: 1600, height: 960 } })).newPage();
  watch(ann, 'annotator');
  await step('annotator is refused', async () => {
    await login(ann, ANN_USER, ANN_PASS);
    await ann.click('button[type=submit]');
    await ann.locator(`tr[data-uid="${UID}"]`).waitFor();
    expect(await ann.locator('#read-only').count() === 1, 'no read-only notice for the annotator');
    expect(await ann.locator(`tr[data-uid="${UID}"] a.open`).count() === 0, 'annotator has an Open button');
    same(await ann.locator('[data-testid=nav] a').evaluateAll((as) => as.map((a) => a.dataset.page)), ['worklist', 'annotate'], 'annotator navigation');
    await shot(ann, '11-annotator-worklist');
    const api403 = await ann.evaluate((uid) => fetch(`/api/studies/${uid}/report`).then((r) => r.status), UID);
    expect(api403 === 403, `report API answered ${api403} to the annotator`);
    await ann.goto(`${BASE}/viewer/spineagent?StudyInstanceUIDs=${UID}`);
    await notice(ann);
    await ann.locator('[data-testid=refused]').waitFor({ timeout: VIEWER_TIMEOUT });
    await shot(ann, '12-annotator-refused');
    return { report_api: api403 };
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
report.stateRequests = report.stateRequests.length;
console.log(JSON.stringify(report, null, 2));
process.exit(report.ok ? 0 : 1);
