// The dashboard's small things a newcomer meets (headless Chromium against the real daemon):
// #/jobs/ID opens the job, the live dot is live on the New-job page, an invalid spec leaves no
// stale preview curve, every error of a rejected spec is marked inline, a job's charts say
// they are loading, and the checkpoints table keeps up with the header.
import {describe, it, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {launchBrowser} from './browserlib.mjs';
import {startDaemon, api, waitFor, heavyJob, tutorialJob} from './lib.mjs';

describe('dashboard, first hour', () => {
  let d, b, page;
  const errors = [];

  before(async () => {
    d = await startDaemon({args: ['--workers', '2']});
    b = await launchBrowser({viewport: {width: 1280, height: 800}});
    page = await b.firstPage();
    page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
  });

  after(async () => {
    if (b) await b.close();
    if (d) await d.stop();
    assert.deepEqual(errors, []);
  });

  it('#/jobs/ID opens the job page (#/job/ID)', async () => {
    const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({name: 'route-test'}));
    await page.goto(d.url + '/#/jobs/' + r.json.id);
    await page.waitForURL(new RegExp(`#/job/${r.json.id}$`));
    await page.waitForSelector(`#page-job[data-job-id="${r.json.id}"]`);
  });

  it('the live dot is on while the New-job page is open', async () => {
    await page.goto(d.url + '/#/new');
    await page.waitForSelector('#spec-editor');
    await page.waitForSelector('#live.on', {timeout: 10000});
  });

  it('an invalid spec leaves no stale preview curve', async () => {
    await page.goto(d.url + '/#/new');
    await page.waitForSelector('#spec-editor');
    await waitFor(() => page.evaluate(() => !!(window.__anneald.charts.preview && window.__anneald.preview)),
      {what: 'the first preview'});
    // a bad schedule: the preview API refuses it, and the old curve goes
    const bad = tutorialJob();
    bad.ds_config.scheduler.params.warmup_num_steps = -5;
    await page.fill('#spec-editor', JSON.stringify(bad, null, 2));
    await waitFor(() => page.evaluate(() => !window.__anneald.charts.preview && window.__anneald.preview === null &&
      document.querySelector('#chart-preview').dataset.empty === 'true'), {what: 'the preview to clear'});
    assert.match(await page.textContent('#preview-status'), /warmup_num_steps/);
    // not JSON at all: no curve either
    await page.fill('#spec-editor', JSON.stringify(tutorialJob(), null, 2));
    await waitFor(() => page.evaluate(() => !!window.__anneald.charts.preview), {what: 'a preview again'});
    await page.fill('#spec-editor', '{"steps": 10,');
    await waitFor(() => page.evaluate(() => !window.__anneald.charts.preview), {what: 'no preview for broken JSON'});
  });

  it('marks every error of a rejected spec inline', async () => {
    const bad = tutorialJob();
    bad.threads = 0;
    bad.ds_config.optimizer.params.lr = 'auto';
    bad.data.target = 'y';
    const want = await api(d.url, 'POST', '/v1/jobs', bad);
    assert.equal(want.status, 400);
    assert.ok(want.json.errors.length >= 2, want.text);
    await page.goto(d.url + '/#/new');
    await page.waitForSelector('#spec-editor');
    const text = JSON.stringify(bad, null, 2);
    await page.fill('#spec-editor', text);
    await page.click('#submit-job');
    await page.locator('[data-testid=field-error]').waitFor({state: 'visible'});
    const more = page.locator('[data-testid=field-error-more]');
    await waitFor(async () => (await more.count()) === want.json.errors.length - 1, {what: 'a bubble per error'});
    const fields = await more.evaluateAll((els) => els.map((e) => e.dataset.field));
    assert.deepEqual(fields, want.json.errors.slice(1).map((e) => e.field.replace(/\[(\d+)\]/g, '.$1')));
    // each stands at its key's line, and each is marked in the text
    for (const [i, e] of want.json.errors.slice(1).entries()) {
      const key = e.field.split(/[.[\]]/).filter(Boolean).at(-1);
      const line = text.split('\n').findIndex((l) => l.includes(`"${key}"`)) + 1;
      assert.equal(Number(await more.nth(i).getAttribute('data-line')), line, e.field);
    }
    assert.equal(await page.locator('.backdrop mark').count(), want.json.errors.length);
    assert.equal(await page.locator('.gutter .err').count(), want.json.errors.length);
    // typing clears them all
    await page.type('#spec-editor', ' ');
    assert.equal(await more.count(), 0);
  });

  it('a job page says its charts are loading until they are drawn', async () => {
    const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({name: 'loading', steps: 20000}));
    await waitFor(async () => (await api(d.url, 'GET', '/v1/jobs/' + r.json.id)).json.state === 'completed',
      {what: 'the job', timeoutMs: 60000});
    // hold the metrics answer back, as a 100M-step job's takes a while
    let release;
    const held = new Promise((res) => { release = res; });
    await page.route('**/metrics?*', async (route) => { await held; await route.continue(); });
    await page.goto(d.url + '/#/job/' + r.json.id);
    const loading = page.locator('[data-testid=chart-loading]');
    await loading.waitFor({state: 'visible'});
    await waitFor(async () => /Loading the metrics of 20,000 steps/.test(await loading.textContent()),
      {what: 'the loading message with the job\'s length'});
    release();
    await loading.waitFor({state: 'hidden'});
    await page.unroute('**/metrics?*');
  });

  it('the checkpoints table keeps up with the header', async () => {
    const r = await api(d.url, 'POST', '/v1/jobs', heavyJob({name: 'ckpt', checkpoint: {every_steps: 200, keep_last: 50}}));
    await page.goto(d.url + '/#/job/' + r.json.id);
    await page.waitForSelector('#page-job');
    // sample header and table on every frame for 4 s: the header's checkpoint is always a row
    const res = await page.evaluate(() => new Promise((resolve) => {
      let frames = 0, lag = 0, seen = new Set();
      const t0 = performance.now();
      const tick = () => {
        const head = document.querySelector('[data-testid=stat-ckpt]');
        const m = head && /step ([\d,]+)/.exec(head.textContent);
        if (m) {
          const step = m[1].replace(/,/g, '');
          seen.add(step);
          frames++;
          if (!document.querySelector(`#checkpoints tr[data-step="${step}"]`)) lag++;
        }
        if (performance.now() - t0 < 4000) requestAnimationFrame(tick); else resolve({frames, lag, seen: seen.size});
      };
      requestAnimationFrame(tick);
    }));
    assert.ok(res.seen >= 3, `checkpoints seen: ${res.seen}`);
    assert.equal(res.lag, 0, `frames where the header's checkpoint was not in the table: ${res.lag} of ${res.frames}`);
    await api(d.url, 'POST', `/v1/jobs/${r.json.id}/cancel`);
  });
});
