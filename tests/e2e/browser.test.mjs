// The dashboard in a real browser (headless Chromium through playwright-core) against the real
// daemon: submit a job through the New-job form, check the schedule preview against the API,
// watch the job live, pause and resume it, see a bad spec's error at its field, compare two
// jobs, open a 1,000,000-step job and time it, answer the token prompt. Screenshots of every
// page go to build/screenshots/.
import {describe, it, before, after} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {launchBrowser} from './browserlib.mjs';
import {startDaemon, api, waitFor, waitJob, tmpDir, removeDir, heavyJob} from './lib.mjs';

const SHOTS = 'build/screenshots';
const DESK = {width: 1280, height: 800};
const PHONE = {width: 390, height: 844};

// DeepSpeed's tutorial job (JOBSPEC.md), the New-job page's first example.
const TUTORIAL = {
  name: 'warmup-demo', seed: 42,
  model: {type: 'linear', inputs: 10, outputs: 1}, loss: 'mean',
  data: {type: 'synthetic', task: 'regression', samples: 4096, features: 10},
  steps: 1000, checkpoint: {every_steps: 100, keep_last: 3},
  ds_config: {train_batch_size: 8, optimizer: {type: 'Adam', params: {lr: 0.01}},
              scheduler: {type: 'WarmupLR', params: {warmup_min_lr: 0.001, warmup_max_lr: 0.01, warmup_num_steps: 100}}},
};

async function launch(viewport) {
  const b = await launchBrowser({viewport});
  const {ctx} = b;
  const errors = [];
  const watch = (page) => {
    page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push('console: ' + m.text()); });
  };
  ctx.on('page', watch);
  ctx.pages().forEach(watch);
  const page = await b.firstPage();
  return {ctx, page, errors, close: b.close};
}

// Chromium logs every 4xx answer of fetch() as a console error; the tests provoke some on
// purpose (a rejected spec: 400/422). Anything else is a real error of the page.
function unexpected(errors) {
  return errors.filter((e) => !/Failed to load resource: the server responded with a status of (400|409|422)/.test(e));
}

async function shot(page, name) {
  fs.mkdirSync(SHOTS, {recursive: true});
  await page.screenshot({path: path.join(SHOTS, name + '.png')});
}

// Series of a chart registered by the page: {labels, data} (data[0] is x).
function chartOf(page, name) {
  return page.evaluate((n) => {
    const u = window.__anneald && window.__anneald.charts[n];
    if (!u) return null;
    return {labels: u.series.map((s) => s.label), data: u.data.map((a) => Array.from(a || []))};
  }, name);
}

async function chartLen(page, name) {
  const c = await chartOf(page, name);
  return c && c.data[1] ? c.data[1].filter((v) => v != null).length : 0;
}

async function jobState(url, id) {
  const r = await api(url, 'GET', '/v1/jobs/' + id);
  return r.json && r.json.state;
}

async function setEditor(page, text) {
  await page.fill('#spec-editor', text);
}

describe('dashboard', () => {
  let d, b, page;
  let bigId = null;   // the 1,000,000-step job, submitted first so it trains while the rest runs
  let liveId = null;
  let shortId = null;

  before(async () => {
    d = await startDaemon({args: ['--workers', '2']});
    const r = await api(d.url, 'POST', '/v1/jobs', {
      ...TUTORIAL, name: 'million', steps: 1000000, checkpoint: {every_steps: 100000}, loss: 'mse'});
    assert.equal(r.status, 201, r.text);
    bigId = r.json.id;
    b = await launch(DESK);
    page = b.page;
  });

  after(async () => {
    if (b) await b.close();
    if (d) await d.stop();
  });

  it('previews the schedule as the spec is typed, with the values the preview API gives', async () => {
    await page.goto(d.url + '/#/new');
    await page.waitForSelector('#spec-editor');
    const text = await page.inputValue('#spec-editor');
    assert.deepEqual(JSON.parse(text), TUTORIAL, 'the editor starts with the tutorial job');
    const check = async (spec) => {
      const want = await api(d.url, 'POST', '/v1/schedules/preview', {ds_config: spec.ds_config, steps: spec.steps});
      assert.equal(want.status, 200, want.text);
      const got = await waitFor(async () => {
        const c = await chartOf(page, 'preview');
        return c && c.data[0].length === want.json.step.length &&
          c.data[1][spec.steps - 1] === want.json.lr[0][spec.steps - 1] ? c : null;
      }, {what: 'the preview chart'});
      assert.deepEqual(got.data[0], want.json.step);
      assert.deepEqual(got.data[1], want.json.lr[0]);
    };
    await check(TUTORIAL);
    // Typing a new warmup length redraws the preview with the API's new values.
    const edited = structuredClone(TUTORIAL);
    edited.ds_config.scheduler.params.warmup_num_steps = 300;
    edited.ds_config.scheduler.params.warmup_type = 'linear';
    edited.steps = 600;
    await setEditor(page, JSON.stringify(edited, null, 2));
    await check(edited);
    await shot(page, 'new');
    // A spec in epochs previews its real length, counted on its data (iris: 120 training rows
    // of 150, batch 16: 8 steps an epoch), as the API does for the whole spec.
    const iris = {name: 'iris', model: {type: 'mlp', inputs: 4, hidden: [8], outputs: 3}, loss: 'cross_entropy',
                  data: {type: 'builtin', name: 'iris', target: 'species'}, epochs: 20,
                  validation: {fraction: 0.2, every_steps: 20},
                  ds_config: {train_batch_size: 16, optimizer: {type: 'SGD', params: {lr: 0.05}},
                              scheduler: {type: 'StepLR', params: {step_size: 50, gamma: 0.5}}}};
    const want = await api(d.url, 'POST', '/v1/schedules/preview', iris);
    assert.equal(want.status, 200, want.text);
    assert.notEqual(want.json.step.length, 1000);
    await setEditor(page, JSON.stringify(iris, null, 2));
    const got = await waitFor(async () => {
      const c = await chartOf(page, 'preview');
      return c && c.data[0].length === want.json.step.length ? c : null;
    }, {what: 'the preview of a spec in epochs'});
    assert.deepEqual(got.data[1], want.json.lr[0]);
    assert.match(await page.textContent('#preview-status'), /20 epochs of its data/);
    // A spec of 10^8 steps previews too: the daemon thins the schedule to what is drawn
    const long = {...edited, steps: 100000000};
    await setEditor(page, JSON.stringify(long, null, 2));
    await waitFor(async () => /^100,000,000 steps, drawn as [\d,]+ points/.test(await page.textContent('#preview-status')),
      {what: 'the preview of 10^8 steps'});
    const drawn = await chartOf(page, 'preview');
    assert.equal(drawn.data[0][0], 1);
    assert.equal(drawn.data[0].at(-1), 100000000);
    // A misspelt "scheduler" previews as the optimizer's flat lr: the page says why, and the
    // note goes once the key is spelt right.
    const typo = structuredClone(edited);
    typo.ds_config.schedular = typo.ds_config.scheduler;
    delete typo.ds_config.scheduler;
    await setEditor(page, JSON.stringify(typo, null, 2));
    await waitFor(async () => /ds_config\.schedular is not a DeepSpeed key: did you mean ds_config\.scheduler\?/
      .test(await page.textContent('#preview-warnings')), {what: 'the note on a misspelt scheduler'});
    await setEditor(page, JSON.stringify(edited, null, 2));
    await waitFor(async () => (await page.$$('#preview-warnings li')).length === 0,
      {what: 'no note once the key is spelt right'});
  });

  it('submits a job through the form and its charts grow live', async () => {
    await page.goto(d.url + '/#/new');
    await page.waitForSelector('#spec-editor');
    // A job of a few thousand steps per second that runs until the pause test cancels it.
    const spec = heavyJob({name: 'browser-live'});
    await setEditor(page, JSON.stringify(spec, null, 2));
    await page.click('#submit-job');
    await page.waitForURL(/#\/job\/j_/);
    liveId = decodeURIComponent(page.url().split('#/job/')[1]);
    assert.equal((await api(d.url, 'GET', '/v1/jobs/' + liveId)).json.name, 'browser-live');
    await waitFor(() => jobState(d.url, liveId).then((s) => s === 'running'), {what: 'the job to run', timeoutMs: 60000});
    const n1 = await waitFor(() => chartLen(page, 'loss'), {what: 'the loss chart to have points'});
    const x1 = (await chartOf(page, 'loss')).data[0].at(-1);
    const grown = await waitFor(async () => {
      const c = await chartOf(page, 'loss');
      return c.data[0].at(-1) > x1 && c;
    }, {what: 'the loss chart to grow', timeoutMs: 20000});
    assert.ok(grown.data[0].at(-1) > x1, `loss chart grew from step ${x1} (${n1} points)`);
    assert.ok(await chartLen(page, 'lr') > 0, 'the lr chart has points');
    await page.waitForFunction(() => document.querySelector('[data-testid=job-state]').textContent === 'running');
    await shot(page, 'job');
  });

  it('lists the job, newest first, with live progress', async () => {
    await page.goto(d.url + '/#/jobs');
    const row = page.locator(`tr[data-job-id="${liveId}"]`);
    await row.waitFor();
    const ids = await page.$$eval('tr[data-job-id]', (rows) => rows.map((r) => r.dataset.jobId));
    assert.equal(ids[0], liveId, 'the newest job is first');
    assert.ok(ids.includes(bigId));
    const steps = async () => Number((await row.locator('[data-testid=job-steps]').textContent()).split('/')[0].replace(/\D/g, ''));
    const s1 = await steps();
    await waitFor(async () => (await steps()) > s1, {what: 'the step count in the list to move', timeoutMs: 20000});
    // The state filter keeps only matching jobs.
    await page.selectOption('#state-filter', 'running');
    await waitFor(async () => {
      const states = await page.$$eval('tr[data-job-id]', (rows) => rows.map((r) => r.dataset.state));
      return states.length > 0 && states.every((s) => s === 'running');
    }, {what: 'the running filter'});
    await page.selectOption('#state-filter', '');
    await row.waitFor();
    await shot(page, 'jobs');
  });

  it('pause and resume buttons change the job state', async () => {
    await page.goto(d.url + '/#/job/' + liveId);
    await page.waitForSelector('#btn-pause:not([disabled])');
    await page.click('#btn-pause');
    await waitFor(() => jobState(d.url, liveId).then((s) => s === 'paused'), {what: 'paused'});
    await page.waitForFunction(() => document.querySelector('[data-testid=job-state]').textContent === 'paused');
    assert.equal(await page.isEnabled('#btn-resume'), true);
    await page.click('#btn-resume');
    await waitFor(() => jobState(d.url, liveId).then((s) => s === 'running' || s === 'queued'), {what: 'resumed'});
    await page.waitForFunction(() => /running|queued/.test(document.querySelector('[data-testid=job-state]').textContent));
    // Cancel cannot be undone: a double click only arms it, a second click later acts
    await page.dblclick('#btn-cancel');
    assert.equal(await page.textContent('#btn-cancel'), 'Really cancel?');
    await new Promise((r) => setTimeout(r, 800));
    assert.match(await jobState(d.url, liveId), /running|queued/);
    await page.click('#btn-cancel');
    await waitFor(() => jobState(d.url, liveId).then((s) => s === 'cancelled'), {what: 'cancelled'});
    assert.equal(await page.textContent('#btn-cancel'), 'Cancel');
    // and Delete likewise: a double click deletes nothing
    await page.waitForSelector('#btn-delete:not([disabled])');
    await page.dblclick('#btn-delete');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await jobState(d.url, liveId), 'cancelled');
  });

  it('a route that is not valid percent-encoding is read as written', async () => {
    const parts = await page.evaluate(async () => (await import('/util.js')).parseHash('#/job/100%?x=1').parts);
    assert.deepEqual(parts, ['job', '100%']);
    const ok = await page.evaluate(async () => (await import('/util.js')).parseHash('#/job/j%5F1').parts);
    assert.deepEqual(ok, ['job', 'j_1']);
  });

  it('no other page can frame the dashboard', async () => {
    for (const p of ['/', '/index.html', '/v1/jobs']) {
      const res = await fetch(d.url + p);
      assert.equal(res.headers.get('x-frame-options'), 'DENY', p);
      // (the rest of the policy: csp-browser.test.mjs)
      assert.match(res.headers.get('content-security-policy'), /(^|; )frame-ancestors 'none'(;|$)/, p);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', p);
    }
  });

  it('shows the server error of a bad spec at the field it names', async () => {
    const bad = structuredClone(TUTORIAL);
    bad.ds_config.scheduler.params.warmup_num_steps = -3;
    bad.threads = 0; // a second, independent error: the page lists it as well
    const want = await api(d.url, 'POST', '/v1/jobs', bad);
    assert.equal(want.json.errors.length, 2, want.text);
    assert.equal(want.status, 400, want.text);
    const field = want.json.error.field;
    assert.ok(field, 'the error names a field');
    await page.goto(d.url + '/#/new');
    await page.waitForSelector('#spec-editor');
    const text = JSON.stringify(bad, null, 2);
    await setEditor(page, text);
    await page.click('#submit-job');
    const bubble = page.locator('[data-testid=field-error]');
    await bubble.waitFor({state: 'visible'});
    assert.equal(await bubble.getAttribute('data-field'), field.replace(/\[(\d+)\]/g, '.$1'));
    assert.ok((await bubble.textContent()).includes(want.json.error.message));
    // The message stands at the line of the named key.
    const key = field.split(/[.[\]]/).filter(Boolean).at(-1);
    const line = text.split('\n').findIndex((l) => l.includes(`"${key}"`)) + 1;
    assert.equal(Number(await bubble.getAttribute('data-line')), line);
    assert.match(page.url(), /#\/new/, 'a rejected spec stays in the editor');
    const status = await page.locator('[data-testid=submit-status]').textContent();
    assert.ok(status.includes(want.json.errors[1].field), status);
    await shot(page, 'new-error');
  });

  it('compare overlays two jobs', async () => {
    const r = await api(d.url, 'POST', '/v1/jobs', {...TUTORIAL, name: 'short', steps: 3000});
    assert.equal(r.status, 201, r.text);
    shortId = r.json.id;
    await waitFor(() => jobState(d.url, shortId).then((s) => s === 'completed'), {what: 'the short job', timeoutMs: 60000});
    await page.goto(d.url + `/#/compare?ids=${liveId},${shortId}`);
    const c = await waitFor(async () => {
      const x = await chartOf(page, 'compareLoss');
      return x && x.labels.length === 3 && x.data[1].some((v) => v != null) && x.data[2].some((v) => v != null) && x;
    }, {what: 'two loss curves'});
    assert.ok(c.labels.some((l) => l.includes(liveId)));
    assert.ok(c.labels.some((l) => l.includes(shortId)));
    const lr = await chartOf(page, 'compareLr');
    assert.ok(lr.labels.some((l) => l.includes(liveId)) && lr.labels.some((l) => l.includes(shortId)));
    await shot(page, 'compare');
  });

  it('opens a job of 1,000,000 steps with both charts drawn', async () => {
    // The tutorial job trains its million steps in about a second; it was submitted first.
    await waitFor(() => jobState(d.url, bigId).then((s) => s === 'completed'), {timeoutMs: 90000, intervalMs: 200,
      what: 'the 1M-step job'});
    const job = (await api(d.url, 'GET', '/v1/jobs/' + bigId)).json;
    assert.equal(job.step, 1000000);
    await page.goto('about:blank');
    const t0 = Date.now();
    await page.goto(d.url + '/#/job/' + bigId);
    await page.waitForFunction(() => window.__anneald && window.__anneald.lastRenderMs != null, null, {timeout: 30000});
    const ms = Date.now() - t0;
    const inPage = await page.evaluate(() => window.__anneald.lastRenderMs);
    console.log(`BENCH dashboard_1M_open ${ms} ms`);
    console.log(`${job.step} steps recorded (${job.state}); first draw of both charts ${inPage.toFixed(0)} ms after the page mounted`);
    const loss = await chartOf(page, 'loss'), lr = await chartOf(page, 'lr');
    assert.ok(loss.data[1].filter((v) => v != null).length > 100, 'the loss chart has points');
    assert.ok(lr.data[1].filter((v) => v != null).length > 100, 'the lr chart has points');
    assert.ok(loss.data[0].at(-1) >= job.step * 0.9, 'the loss chart reaches the last steps');
    await shot(page, 'job-1M');
  });

  it('a zoom answered after its reset leaves the charts unzoomed', async () => {
    // on the 1M-step job's page: the zoom's fetch is held back until after the reset
    let held = 0;
    const slow = async (route) => {
      held++;
      await new Promise((r) => setTimeout(r, 800));
      await route.continue().catch(() => {});
    };
    await page.route(/\/metrics\?from=/, slow);
    try {
      const box = await page.locator('#chart-loss .u-over').boundingBox();
      await page.mouse.move(box.x + box.width * 0.3, box.y + box.height / 2);
      await page.mouse.down();
      await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2, {steps: 5});
      await page.mouse.up();
      await waitFor(() => held > 0, {what: 'the zoom\'s fetch'});
      await page.click('#reset-zoom');
      await new Promise((r) => setTimeout(r, 1500)); // the held answer has come meanwhile
    } finally {
      await page.unroute(/\/metrics\?from=/, slow);
    }
    assert.equal(await page.isDisabled('#reset-zoom'), true);
    assert.doesNotMatch(await page.textContent('#resolution'), /^zoomed/);
  });

  it('draws the point of a job of one step', async () => {
    const r = await api(d.url, 'POST', '/v1/jobs', {...TUTORIAL, name: 'one-step', steps: 1});
    assert.equal(r.status, 201, r.text);
    await waitFor(() => jobState(d.url, r.json.id).then((s) => s === 'completed'), {what: 'the 1-step job'});
    await page.goto(d.url + '/#/job/' + r.json.id);
    await page.waitForFunction(() => {
      const u = window.__anneald && window.__anneald.charts.loss;
      return u && u.data[1] && u.data[1].some((v) => v != null);
    }, null, {timeout: 15000});
    // uPlot draws a series' points when its points.show says so for the indexes in view
    const shown = await page.evaluate(() => ['loss', 'lr'].map((n) => {
      const u = window.__anneald.charts[n];
      return u.series[1].points.show(u, 1, 0, u.data[0].length - 1);
    }));
    assert.deepEqual(shown, [true, true]);
    // and a line of many steps keeps its points hidden
    await page.goto(d.url + '/#/job/' + bigId);
    await page.waitForFunction(() => {
      const u = window.__anneald && window.__anneald.charts.loss;
      return u && u.data[0] && u.data[0].length > 100;
    }, null, {timeout: 30000});
    assert.equal(await page.evaluate(() => {
      const u = window.__anneald.charts.loss;
      return u.series[1].points.show(u, 1, 0, u.data[0].length - 1);
    }), false);
  });

  it('a job deleted elsewhere: its open page says so and stops reconnecting', async () => {
    const errorsBefore = b.errors.length;
    const r = await api(d.url, 'POST', '/v1/jobs', {...TUTORIAL, name: 'to-delete', steps: 50});
    assert.equal(r.status, 201, r.text);
    await waitFor(() => jobState(d.url, r.json.id).then((s) => s === 'completed'), {what: 'the job'});
    await page.goto(d.url + '/#/job/' + r.json.id);
    await page.waitForSelector('#live.on');
    assert.equal((await api(d.url, 'DELETE', '/v1/jobs/' + r.json.id)).status, 204);
    await page.waitForSelector('[data-testid=job-deleted]', {timeout: 15000});
    assert.equal(await page.textContent('[data-testid=job-state]'), 'deleted');
    assert.equal(await page.isDisabled('button:has-text("Delete")'), true);
    let reopened = 0;
    const count = (req) => { if (req.url().includes(`/v1/jobs/${r.json.id}/events`)) reopened++; };
    page.on('request', count);
    await new Promise((res) => setTimeout(res, 3000)); // the old page retried every 2 s
    page.off('request', count);
    assert.equal(reopened, 0, 'the page stopped opening the stream of a deleted job');
    assert.equal(await page.$('#live.on'), null);
    // The 404s of the deleted job's stream and GET are this test's own doing: Chromium logs
    // them as console errors, which the last test checks for.
    const mine = b.errors.splice(errorsBefore);
    b.errors.push(...mine.filter((e) => !/status of 404/.test(e)));
  });

  it('a job deleted elsewhere leaves the jobs list at once', async () => {
    const r = await api(d.url, 'POST', '/v1/jobs', {...TUTORIAL, name: 'listed-then-deleted', steps: 50});
    assert.equal(r.status, 201, r.text);
    await waitFor(() => jobState(d.url, r.json.id).then((s) => s === 'completed'), {what: 'the job'});
    await page.goto(d.url + '/#/jobs');
    const row = `[data-testid=job-row][data-job-id="${r.json.id}"]`;
    await page.waitForSelector(row);
    await page.waitForSelector('#live.on');
    const before = await page.$$eval('[data-testid=job-row]', (rows) => rows.length);
    let listed = 0;
    const count = (req) => { if (req.url().includes('/v1/jobs?')) listed++; };
    page.on('request', count);
    assert.equal((await api(d.url, 'DELETE', '/v1/jobs/' + r.json.id)).status, 204);
    await page.waitForSelector(row, {state: 'detached', timeout: 5000});
    page.off('request', count);
    assert.equal(await page.$$eval('[data-testid=job-row]', (rows) => rows.length), before - 1);
    assert.equal(listed, 0, 'the row went with the event, without listing the jobs again');
  });

  it('looks right on a phone-width screen', async () => {
    const phone = await launch(PHONE);
    try {
      for (const [name, route] of [['jobs', '#/jobs'], ['job', '#/job/' + liveId], ['compare', `#/compare?ids=${liveId},${shortId}`],
                                   ['new', '#/new']]) {
        await phone.page.goto(d.url + '/' + route);
        await phone.page.waitForTimeout(800);
        // Nothing wider than the screen: no sideways scrolling.
        const w = await phone.page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(w <= PHONE.width, `${name} is ${w} px wide`);
        await shot(phone.page, 'phone-' + name);
      }
      assert.deepEqual(unexpected(phone.errors), []);
    } finally { await phone.close(); }
  });

  it('logs no console errors', () => {
    assert.deepEqual(unexpected(b.errors), []);
  });
});

describe('dashboard with an access token', () => {
  let d, b, dir;
  const token = 'tok-' + Math.random().toString(36).slice(2);

  before(async () => {
    dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'token'), token + '\n');
    d = await startDaemon({args: ['--token-file', path.join(dir, 'token')]});
    b = await launch(DESK);
  });

  after(async () => {
    if (b) await b.close();
    if (d) await d.stop();
    removeDir(dir);
  });

  it('asks for the token on 401, keeps it, and then shows the jobs', async () => {
    const denied = await api(d.url, 'GET', '/v1/jobs');
    assert.equal(denied.status, 401);
    const made = await api(d.url, 'POST', '/v1/jobs', TUTORIAL, {Authorization: 'Bearer ' + token});
    assert.equal(made.status, 201, made.text);
    await b.page.goto(d.url + '/#/jobs');
    await b.page.waitForSelector('[data-testid=token-modal]');
    await b.page.fill('#token-input', token);
    await b.page.click('[data-testid=token-save]');
    await b.page.waitForSelector(`tr[data-job-id="${made.json.id}"]`);
    assert.equal(await b.page.evaluate(() => localStorage.getItem('anneald.token')), token);
    // The event stream takes the token as ?access_token= and goes live.
    await b.page.waitForSelector('#live.on', {timeout: 10000});
    // A reload remembers the token: no prompt.
    await b.page.reload();
    await b.page.waitForSelector(`tr[data-job-id="${made.json.id}"]`);
    assert.equal(await b.page.locator('[data-testid=token-modal]').count(), 0);
    await shot(b.page, 'jobs-token');
    assert.deepEqual(b.errors.filter((e) => !/status of 401/.test(e)), []);
  });

  it('the CSV button downloads the metrics through a link the browser streams to disk', async () => {
    const auth = {Authorization: 'Bearer ' + token};
    const made = await api(d.url, 'POST', '/v1/jobs', {...TUTORIAL, name: 'csv-link', steps: 300}, auth);
    assert.equal(made.status, 201, made.text);
    await waitJob(d.url, made.json.id, (j) => j.state === 'completed', 60000, auth);
    await b.page.goto(d.url + '/#/job/' + made.json.id);
    await b.page.waitForSelector('[data-testid=btn-csv]:not([disabled])');
    const [dl] = await Promise.all([b.page.waitForEvent('download'), b.page.click('[data-testid=btn-csv]')]);
    // the file comes from the API itself, not from a copy the page read into memory (blob:)
    assert.match(dl.url(), new RegExp(`/v1/jobs/${made.json.id}/metrics\\?format=csv&access_token=`));
    assert.equal(dl.suggestedFilename(), `${made.json.id}.csv`);
    const file = path.join(dir, 'dl.csv');
    await dl.saveAs(file);
    const want = await api(d.url, 'GET', `/v1/jobs/${made.json.id}/metrics?format=csv`, null, auth);
    assert.equal(fs.readFileSync(file, 'utf8'), want.text);
    assert.equal(want.text.trim().split('\n').length, 301);
  });

  it('where the browser refuses storage, the token is asked once and the job page works', async () => {
    const made = await api(d.url, 'POST', '/v1/jobs', {...TUTORIAL, name: 'no-storage', steps: 20},
                           {Authorization: 'Bearer ' + token});
    const nb = await launch(DESK);
    try {
      await nb.ctx.addInitScript(() => {
        Object.defineProperty(window, 'localStorage', {get() { throw new DOMException('blocked', 'SecurityError'); }});
      });
      const page = await nb.ctx.newPage();
      await page.goto(d.url + '/#/jobs');
      await page.waitForSelector('[data-testid=token-modal]');
      await page.fill('#token-input', token);
      await page.click('[data-testid=token-save]');
      await page.waitForSelector(`tr[data-job-id="${made.json.id}"]`);
      await page.goto(d.url + '/#/job/' + made.json.id); // a route change, not a reload
      await page.waitForSelector('#job-stats');
      await page.waitForFunction(() => document.querySelector('[data-testid=job-state]') &&
        document.querySelector('[data-testid=job-state]').textContent !== '');
      assert.equal(await page.locator('[data-testid=token-modal]').count(), 0, 'asked once');
      assert.deepEqual(nb.errors.filter((e) => !/status of 401/.test(e)), []);
    } finally {
      await nb.close();
    }
  });
});
