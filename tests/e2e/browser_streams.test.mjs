// The dashboard's event streams and live data in headless Chromium against the real daemon: a
// stream the page has to open again itself resumes after the last event it had, what the
// pages read again when their stream comes back, jobs deleted under the Compare page, and
// charts in elapsed time over metrics rows without a time.
import {describe, it, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {launchBrowser} from './browserlib.mjs';
import {startDaemon, api, waitFor, waitJob, readEvents, tmpDir, removeDir, heavyJob, tutorialJob, sleep, SLOW} from './lib.mjs';

// Every EventSource the page makes, with the events it delivered: window.__streams.
function recordStreams() {
  const Real = window.EventSource;
  window.__streams = [];
  window.EventSource = class extends Real {
    constructor(url, opts) {
      super(url, opts);
      const rec = {url: String(url), events: []};
      window.__streams.push(rec);
      for (const name of ['state', 'progress', 'checkpoint', 'deleted', 'sweep']) {
        this.addEventListener(name, (ev) => rec.events.push({name, id: ev.lastEventId, data: JSON.parse(ev.data)}));
      }
    }
  };
}

// SSE frames of events as readEvents gives them.
function frames(events) {
  return events.map((e) => `event: ${e.event}\nid: ${e.id}\ndata: ${JSON.stringify(e.data)}\n\n`).join('');
}

describe('dashboard streams', () => {
  let d, b, page;
  const errors = [];
  const warnings = [];

  before(async () => {
    d = await startDaemon({args: ['--workers', '2']});
    b = await launchBrowser({viewport: {width: 1280, height: 800}});
    await b.ctx.addInitScript(recordStreams);
    page = await b.firstPage();
    page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'warning') warnings.push(m.text()); });
  });

  after(async () => {
    if (b) await b.close();
    if (d) await d.stop();
    assert.deepEqual(errors, []);
  });

  it('a stream the page opens again resumes after the last event it had', async () => {
    const r = await api(d.url, 'POST', '/v1/jobs', heavyJob({name: 'resume-stream'}));
    assert.equal(r.status, 201, r.text);
    const id = r.json.id;
    const j0 = await waitJob(d.url, id, (j) => j.state === 'running' && j.step > 0);
    // the stream's start as the daemon sends it now: the page gets this, and then the stream ends
    const first = await readEvents(d.url, `/v1/jobs/${id}/events`, {until: (evs) => evs.length >= 2});
    const lastId = first.at(-1).id;
    // meanwhile the job goes on (checkpoints every 500 steps) and is paused
    await waitJob(d.url, id, (j) => j.step >= j0.step + 1500);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${id}/pause`)).status, 200);
    await waitJob(d.url, id, (j) => j.state === 'paused');

    // The page's first stream is what was read above and ends; EventSource's own reconnect is
    // refused (503), so it gives up, and the page opens the stream again itself.
    let n = 0;
    const reopened = [];
    const route = async (rt) => {
      n++;
      if (n === 1) {
        await rt.fulfill({status: 200, headers: {'Content-Type': 'text/event-stream'},
                          body: 'retry: 100\n\n' + frames(first)});
      } else if (n === 2) {
        await rt.fulfill({status: 503, headers: {'Content-Type': 'application/json'},
                          body: '{"error":{"code":"unavailable","message":"busy"}}'});
      } else {
        reopened.push(rt.request().url());
        await rt.continue();
      }
    };
    await page.route(`**/v1/jobs/${id}/events*`, route);
    try {
      await page.goto(`${d.url}/#/job/${id}`);
      await waitFor(() => reopened.length > 0, {what: 'the page to open the stream again'});
      assert.equal(new URL(reopened[0]).searchParams.get('last_event_id'), lastId);
      // The daemon replays what the page missed: the checkpoints written after that event
      // (a fresh snapshot would have only the job's state and progress).
      const got = await waitFor(() => page.evaluate(() => {
        const s = window.__streams.at(-1);
        return s.url.includes('last_event_id') && s.events.some((e) => e.name === 'state') && s.events;
      }), {what: 'the reopened stream\'s events'});
      assert.ok(BigInt(got[0].id) > BigInt(lastId), `replayed from after ${lastId}: ${got[0].id}`);
      assert.ok(got.some((e) => e.name === 'checkpoint' && e.data.step > j0.step),
                'the checkpoints of the gap came: ' + JSON.stringify(got.map((e) => e.name)));
      await page.waitForFunction(() => document.querySelector('[data-testid=job-state]').textContent === 'paused');
      await page.waitForSelector('#live.on');
    } finally {
      await page.unroute(`**/v1/jobs/${id}/events*`, route);
      await api(d.url, 'POST', `/v1/jobs/${id}/cancel`);
    }
  });

  it('a job checkpointing many times a second: the table keeps what the server keeps, the epoch moves', async () => {
    // heavyJob checkpoints every 500 steps, several times a second, keeping the last 2
    const r = await api(d.url, 'POST', '/v1/jobs', heavyJob({name: 'many-ckpts', data: {type: 'synthetic', task: 'regression', samples: 256, features: 32}}));
    assert.equal(r.status, 201, r.text);
    const id = r.json.id;
    try {
      await waitJob(d.url, id, (j) => j.state === 'running' && j.step > 0);
      await page.goto(`${d.url}/#/job/${id}`);
      await page.waitForSelector('[data-testid=checkpoint-row]');
      const epochShown = async () => Number((await page.textContent('[data-testid=stat-epoch]')).replace(/,/g, ''));
      await page.waitForFunction(() => /\d/.test(document.querySelector('[data-testid=stat-epoch]').textContent));
      const epoch0 = await epochShown();
      await sleep(3000 * SLOW);
      // rows of checkpoints retention deleted go: at most the kept 2, plus the newest events'
      // rows the next list (a second away at most) has not yet replaced
      const rows = await page.$$eval('[data-testid=checkpoint-row]', (trs) => trs.length);
      const j = await waitJob(d.url, id, (x) => x.step > 0);
      const perSec = j.samples_per_sec / 64 / 500;   // checkpoints a second
      assert.ok(rows <= 2 + Math.ceil(perSec * 1.5) + 1, `${rows} checkpoint rows (${perSec.toFixed(1)} checkpoints a second)`);
      // the epoch follows the progress events (64 samples a step over 256: 4 steps an epoch)
      const epoch1 = await epochShown();
      assert.ok(epoch1 > epoch0, `epoch ${epoch0} -> ${epoch1}`);
    } finally {
      await api(d.url, 'POST', `/v1/jobs/${id}/cancel`);
    }
    await waitJob(d.url, id, (j) => j.state === 'cancelled');
    // deleted under the page: its checkpoints' Pin and Fork are disabled with the rest
    assert.equal((await api(d.url, 'DELETE', `/v1/jobs/${id}`)).status, 204);
    await page.waitForSelector('[data-testid=job-deleted]');
    const live = await page.$$eval('#checkpoints button', (bs) => bs.filter((b) => !b.disabled).length);
    assert.equal(live, 0);
    // a fork of it loads nothing and says why
    await page.goto(`${d.url}/#/new?fork=${id}&step=500`);
    await page.waitForSelector('[data-testid=source-error]:not([hidden])');
    assert.match(await page.textContent('[data-testid=source-error]'), new RegExp(`${id} cannot be forked: no job`));
    assert.equal(await page.isVisible('[data-testid=fork-note]'), false);
    // an unknown sweep: the message, and nothing to act on
    await page.goto(`${d.url}/#/sweep/s_999999`);
    await page.waitForSelector('#sweep-head .error');
    assert.equal(await page.isVisible('[data-testid=sweep-cancel]'), false);
    assert.equal(await page.isVisible('[data-testid=sweep-delete]'), false);
    assert.equal(await page.isVisible('[data-testid=sweep-trials]'), false);
  });

  it('the wall-clock axis shows where a job stopped: its rows carry their wall clock', async () => {
    const r = await api(d.url, 'POST', '/v1/jobs', heavyJob({name: 'gap'}));
    assert.equal(r.status, 201, r.text);
    const id = r.json.id;
    const before = await waitJob(d.url, id, (j) => j.state === 'running' && j.step > 100);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${id}/pause`)).status, 200);
    const paused = await waitJob(d.url, id, (j) => j.state === 'paused');
    await sleep(6500);   // a gap of 6.5 s of wall clock, none of training time
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${id}/resume`)).status, 200);
    await waitJob(d.url, id, (j) => j.state === 'running' && j.step > paused.step + 200);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${id}/cancel`)).status, 200);
    await waitJob(d.url, id, (j) => j.state === 'cancelled');
    // the API: one wall clock per row, whole seconds, around now
    const m = (await api(d.url, 'GET', `/v1/jobs/${id}/metrics?to=${before.step}`)).json;
    assert.equal(m.wall.length, m.step.length);
    const now = Date.now() / 1000;
    assert.ok(m.wall.every((w) => Number.isInteger(w) && w > now - 600 && w <= now + 1), JSON.stringify(m.wall.slice(0, 5)));
    // the page: in wall-clock x the rows after the resume sit 6 s or more after those before
    await page.goto(`${d.url}/#/jobs`);
    await page.evaluate(() => localStorage.setItem('anneald.xmode', 'wall'));
    await page.goto(`${d.url}/#/job/${id}`);
    await page.waitForFunction(() => window.__anneald.charts.loss && window.__anneald.charts.loss.data[0].length > 100);
    assert.equal(await page.$eval('#x-mode', (s) => s.value), 'wall');
    const gap = await page.evaluate(() => {
      const x = window.__anneald.charts.loss.data[0];
      let g = 0;
      for (let i = 1; i < x.length; i++) g = Math.max(g, x[i] - x[i - 1]);
      return g;
    });
    assert.ok(gap >= 2.5, `the largest step of the wall-clock axis: ${gap} s`);
    // the gap is one: the lines stop at it (a row of nulls in its middle), and the x axis spans it
    const span = await page.evaluate(() => {
      const d = window.__anneald.charts.loss.data;
      return {nulls: d[1].filter((v) => v === null).length, width: d[0][d[0].length - 1] - d[0][0]};
    });
    assert.ok(span.nulls >= 1, 'a break in the loss line');
    assert.ok(span.width >= 6, `the axis spans ${span.width} s`);
    // ...and drawn as one: the loss and lr lines have a gap there (they bridged it before)
    const drawn = await page.evaluate(() => ['loss', 'lr'].map((n) => {
      const u = window.__anneald.charts[n];
      return (u.series[1]._paths && u.series[1]._paths.gaps || []).length;
    }));
    assert.ok(drawn[0] >= 1 && drawn[1] >= 1, `gaps drawn in the loss and lr lines: ${drawn}`);
    // an ended job says when it ended and how long it took; the tab is named for it
    await page.waitForSelector('[data-testid=stat-finished]');
    assert.match(await page.textContent('[data-testid=stat-took]'), /\d/);
    assert.equal(await page.title(), 'gap · anneald');
    await page.evaluate(() => localStorage.removeItem('anneald.xmode'));
  });

  it('compare says a deleted job is gone and drops its curves', async () => {
    const ids = [];
    for (const name of ['cmp-a', 'cmp-b', 'cmp-c']) {
      const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({name, steps: 300}));
      assert.equal(r.status, 201, r.text);
      ids.push(r.json.id);
    }
    for (const id of ids) await waitJob(d.url, id, (j) => j.state === 'completed');
    const [a, b, c] = ids;
    // a stored comparison naming a job deleted since
    assert.equal((await api(d.url, 'DELETE', '/v1/jobs/' + c)).status, 204);
    await page.goto(`${d.url}/#/compare?ids=${a},${b},${c}`);
    const labels = () => page.evaluate(() => {
      const u = window.__anneald.charts.compareLoss;
      return u ? u.series.slice(1).map((s) => s.label.split(' ')[0]) : null;
    });
    await waitFor(async () => (await labels() || []).length === 2, {what: 'the two curves left'});
    assert.deepEqual(await labels(), [a, b]);
    await page.waitForSelector('#compare-gone:not([hidden])');
    assert.match(await page.textContent('#compare-gone'), new RegExp(`^${c}: no such job \\(it was deleted`));
    const badge = (id) => page.textContent(`label.pick:has([data-job-id="${id}"]) [data-testid=job-state]`);
    assert.equal(await badge(c), 'deleted');
    assert.equal(await page.isVisible('#compare-empty'), false);
    // and one deleted while the page shows it: its curve goes at once
    assert.equal((await api(d.url, 'DELETE', '/v1/jobs/' + b)).status, 204);
    await waitFor(async () => JSON.stringify(await labels()) === JSON.stringify([a]), {what: 'b\'s curve to go'});
    await waitFor(async () => /^.*: no such job \(they were deleted/.test(await page.textContent('#compare-gone')), {what: 'the note'});
    assert.equal(await badge(b), 'deleted');
    assert.equal(await page.isVisible('#compare-empty'), true, 'one job left: the page asks for two');
    assert.equal(await page.locator('.toast-item.error').count(), 0, 'no error shown');
  });

  it('elapsed-time charts place the rows that have no time between those that have', async () => {
    // A job that keeps only its newest steps may answer rows it dropped while the answer was
    // read with null in the later columns (docs/API.md): here the time of some rows is made null.
    // (steps of a few hundred µs each: a zoom by the mouse can pick a time to a few steps)
    const spec = heavyJob({steps: 3000, validation: {fraction: 0.2, every_steps: 100}});
    const ids = [];
    for (const name of ['untimed-a', 'untimed-b']) ids.push((await api(d.url, 'POST', '/v1/jobs', {...spec, name})).json.id);
    for (const id of ids) await waitJob(d.url, id, (j) => j.state === 'completed');
    const m = (await api(d.url, 'GET', `/v1/jobs/${ids[0]}/metrics`)).json;
    // (the middle row's too: where a search for a time looks first)
    const untimed = new Set([0, 5, 6, 7, m.step.indexOf(m.val_step[1]) - 1, m.step.length >> 1, m.step.length - 2]);
    const route = async (rt) => {
      const res = await rt.fetch();
      const j = await res.json();
      j.time = j.time.map((t, i) => (untimed.has(i) ? null : t));
      await rt.fulfill({response: res, json: j});
    };
    await page.route(/\/v1\/jobs\/[^/]+\/metrics/, route);
    try {
      const xs = (name) => page.evaluate((n) => {
        const u = window.__anneald.charts[n];
        return u ? u.data.map((a) => Array.from(a)) : null;
      }, name);
      const sane = (x) => x.length > 0 && x.every((v, i) => Number.isFinite(v) && (i === 0 || v >= x[i - 1]));
      await page.goto(`${d.url}/#/job/${ids[0]}`);
      await page.waitForFunction(() => window.__anneald.lastRenderMs != null);
      await page.selectOption('#x-mode', 'elapsed');
      const loss = await waitFor(async () => {
        const t = await xs('loss');
        return t && t[0][0] !== 1 && t;
      }, {what: 'the loss chart in elapsed time'});
      assert.ok(sane(loss[0]), 'x: ' + JSON.stringify(loss[0].slice(0, 12)));
      // every train loss is drawn: a row with a time at it, one without on the line through its
      // neighbours (a row before the first with a time: before that one)
      const rows = loss[0].map((x, i) => [x, loss[1][i]]).filter(([, v]) => v != null);
      assert.deepEqual(rows.map(([, v]) => v), m.loss);
      const near = (i, dir) => { while (untimed.has(i)) i += dir; return m.time[i] ?? dir * Infinity; };
      rows.forEach(([x], i) => {
        if (!untimed.has(i)) assert.equal(x, m.time[i], `step ${m.step[i]}`);
        else assert.ok(x >= near(i, -1) && x <= near(i, 1), `step ${m.step[i]} at ${x}`);
      });
      assert.equal(loss[2].filter((v) => v != null).length, m.val_step.length, 'every validation is drawn');
      const lr = await xs('lr');
      assert.ok(sane(lr[0]));
      assert.equal(lr[0].length, m.step.length);
      // a zoom in time up to the time of the row a quarter of the way asks for the steps up to it
      const q4 = m.step.length >> 2;
      const zoomed = page.waitForRequest(/\/metrics\?from=\d+&to=/);
      const box = await page.locator('#chart-loss .u-over').boundingBox();
      const px = await page.evaluate((t) => window.__anneald.charts.loss.valToPos(t, 'x'), m.time[q4]);
      await page.mouse.move(box.x + 1, box.y + box.height / 2);
      await page.mouse.down();
      await page.mouse.move(box.x + px, box.y + box.height / 2, {steps: 5});
      await page.mouse.up();
      const q = new URL((await zoomed).url()).searchParams;
      assert.ok(Number(q.get('from')) <= 20, 'the range starts at the first steps: ' + q);
      assert.ok(Math.abs(Number(q.get('to')) - m.step[q4]) < 50, q.toString());

      // Compare, in elapsed time: both jobs' curves, no untimed row
      await page.goto(`${d.url}/#/compare?ids=${ids.join(',')}`);
      await waitFor(async () => (await xs('compareLoss') || []).length === 3, {what: 'two curves'});
      await page.selectOption('#cmp-x-mode', 'elapsed');
      const cmp = await waitFor(async () => {
        const t = await xs('compareLoss');
        return t && t[0][0] !== 1 && t;
      }, {what: 'the compare chart in elapsed time'});
      assert.ok(sane(cmp[0]), 'x: ' + JSON.stringify(cmp[0].slice(0, 12)));
      for (const k of [1, 2]) assert.equal(cmp[k].filter((v) => v != null).length, m.step.length);
      assert.ok(sane((await xs('compareLr'))[0]));
    } finally {
      await page.unroute(/\/v1\/jobs\/[^/]+\/metrics/, route);
      await page.evaluate(() => localStorage.removeItem('anneald.xmode'));
    }
  });

  it('a job deleted while an action is out stays shown as deleted when the answer comes', async () => {
    const r = await api(d.url, 'POST', '/v1/jobs', heavyJob({name: 'deleted-under-pause'}));
    const id = r.json.id;
    await waitJob(d.url, id, (j) => j.state === 'running');
    let release = null;
    const pauseUrl = (u) => u.pathname === `/v1/jobs/${id}/pause`;
    const hold = async (rt) => {
      if (rt.request().method() !== 'POST') return rt.continue();
      await new Promise((res) => { release = res; });
      await rt.continue();
    };
    await page.route(pauseUrl, hold);
    try {
      await page.goto(`${d.url}/#/job/${id}`);
      await page.waitForSelector('#btn-pause:not([disabled])');
      await page.click('#btn-pause');
      await waitFor(() => release, {what: 'the pause request'});
      // elsewhere: cancelled and deleted while the page's pause waits
      assert.equal((await api(d.url, 'POST', `/v1/jobs/${id}/cancel`)).status, 200);
      assert.equal((await api(d.url, 'DELETE', `/v1/jobs/${id}`)).status, 204);
      await page.waitForSelector('[data-testid=job-deleted]');
      release(); // its answer (the job is gone) comes now
      await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=toast]')].some((t) => /^pause: /.test(t.textContent)));
      await new Promise((res) => setTimeout(res, 300));
      const enabled = await page.evaluate(() => ['pause', 'resume', 'cancel', 'delete', 'fork']
        .filter((n) => !document.querySelector('#btn-' + n).disabled));
      assert.deepEqual(enabled, [], 'no button acts on a deleted job');
      assert.equal(await page.textContent('[data-testid=job-state]'), 'deleted');
    } finally {
      await page.unroute(pauseUrl, hold);
    }
  });

  it('job buttons wait for the job, and for the answer of the action out', async () => {
    const r = await api(d.url, 'POST', '/v1/jobs', heavyJob({name: 'buttons'}));
    const id = r.json.id;
    await waitJob(d.url, id, (j) => j.state === 'running');
    const held = {job: null, pause: null};
    const hold = (name) => async (rt) => {
      if (rt.request().method() !== (name === 'job' ? 'GET' : 'POST')) return rt.continue();
      await new Promise((res) => { held[name] = res; });
      await rt.continue();
    };
    const jobUrl = (u) => u.pathname === `/v1/jobs/${id}`, pauseUrl = (u) => u.pathname === `/v1/jobs/${id}/pause`;
    const holdJob = hold('job'), holdPause = hold('pause');
    await page.route(jobUrl, holdJob);
    await page.route(pauseUrl, holdPause);
    const names = ['pause', 'resume', 'cancel', 'delete', 'fork'];
    const disabled = () => page.evaluate((ns) => ns.filter((n) => document.querySelector('#btn-' + n).disabled), names);
    try {
      await page.goto(`${d.url}/#/job/${id}`);
      await waitFor(() => held.job, {what: 'the page to ask for the job'});
      assert.deepEqual(await disabled(), names, 'nothing to act on before the job is read');
      held.job();
      await page.unroute(jobUrl, holdJob);
      await page.waitForSelector('#btn-pause:not([disabled])');
      // a double click on Pause sends one request; until its answer no button acts
      let paused = 0;
      page.on('request', (q) => { if (pauseUrl(new URL(q.url())) && q.method() === 'POST') paused++; });
      await page.dblclick('#btn-pause');
      await waitFor(() => held.pause, {what: 'the pause request'});
      assert.deepEqual((await disabled()).filter((n) => n !== 'fork'), ['pause', 'resume', 'cancel', 'delete']);
      await new Promise((res) => setTimeout(res, 300));
      assert.equal(paused, 1);
      held.pause();
      await page.waitForFunction(() => document.querySelector('[data-testid=job-state]').textContent === 'paused');
      await page.waitForSelector('#btn-resume:not([disabled])');
      assert.equal(await page.isDisabled('#btn-pause'), true);
      assert.equal(await page.isEnabled('#btn-cancel'), true);
      assert.equal(paused, 1);
    } finally {
      await page.unroute(jobUrl, holdJob);
      await page.unroute(pauseUrl, holdPause);
      await api(d.url, 'POST', `/v1/jobs/${id}/cancel`);
    }
    // leaving the page runs its whole clean-up (the router reports a clean-up that throws)
    const before = warnings.length;
    await page.goto(`${d.url}/#/jobs`);
    await page.waitForSelector('#page-jobs');
    assert.deepEqual(warnings.slice(before), []);
  });

  it('a 2xx answer cut short is an error, not a partial answer', async () => {
    await page.goto(`${d.url}/#/jobs`);
    await page.waitForSelector('#page-jobs');
    const cut = async (rt) => rt.fulfill({status: 200, headers: {'Content-Type': 'application/json'},
                                          body: '{"step": [1, 2, 3], "loss": [0.5, 0.4'});
    await page.route('**/v1/jobs/j_cut/metrics*', cut);
    try {
      const got = await page.evaluate(async () => {
        const {api, ApiError} = await import('/api.js');
        try { return {resolved: await api('GET', '/v1/jobs/j_cut/metrics')}; } catch (e) {
          return {rejected: e.name, api: e instanceof ApiError};
        }
      });
      assert.deepEqual(got, {rejected: 'SyntaxError', api: false});
    } finally {
      await page.unroute('**/v1/jobs/j_cut/metrics*', cut);
    }
  });
});

// One worker, busy with a job that never ends: every other job stays queued (and none
// completes, which would make the jobs list read itself again).
describe('dashboard over a daemon restart, and with many jobs', () => {
  let d, b, page, dir, port;
  const errors = [];

  before(async () => {
    dir = tmpDir();
    d = await startDaemon({dir, args: ['--workers', '1']});
    port = new URL(d.url).port;
    b = await launchBrowser({viewport: {width: 1280, height: 800}});
    page = await b.firstPage();
    page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
  });

  after(async () => {
    if (b) await b.close();
    if (d) await d.stop();
    if (dir) removeDir(dir);
    assert.deepEqual(errors, []);
  });

  // Restarts the daemon on the same store and port, with the page's event stream held off
  // until `meanwhile` (run against the new daemon) is done: what it changes comes to the page
  // in no event, only when the page reads its data again.
  async function restart(meanwhile) {
    const block = (rt) => rt.abort();
    await page.route('**/v1/events*', block);
    await d.stop();
    d = await startDaemon({dir, args: ['--workers', '1', '--listen', '127.0.0.1:' + port]});
    await meanwhile();
    await page.unroute('**/v1/events*', block);
  }

  it('the sweeps and jobs lists read their data again when their stream comes back', async () => {
    const busy = await api(d.url, 'POST', '/v1/jobs', heavyJob({name: 'busy'}));
    await waitJob(d.url, busy.json.id, (j) => j.state === 'running');
    const doomed = (await api(d.url, 'POST', '/v1/jobs', heavyJob({name: 'doomed'}))).json.id;
    await api(d.url, 'POST', `/v1/jobs/${doomed}/cancel`);
    const sweep = await api(d.url, 'POST', '/v1/sweeps', {
      name: 'queued-sweep', base: tutorialJob({steps: 200}), trials: 2, max_concurrent: 1, metric: 'loss',
      parameters: {'ds_config.optimizer.params.lr': [0.01, 0.001]}});
    assert.equal(sweep.status, 201, sweep.text);
    const sid = sweep.json.id;

    await page.goto(`${d.url}/#/sweeps`);
    const badge = `tr[data-sweep-id="${sid}"] [data-testid=sweep-state]`;
    await page.waitForSelector(badge);
    const was = await page.textContent(badge);
    assert.notEqual(was, 'cancelled');
    await page.waitForSelector('#live.on');
    assert.equal(await page.isVisible('[data-testid=offline]'), false);
    await restart(async () => {
      assert.equal((await api(d.url, 'POST', `/v1/sweeps/${sid}/cancel`)).status, 200);
      // the stream is held off: after 3 s the page says the daemon is away
      await page.waitForSelector('[data-testid=offline]', {state: 'visible', timeout: 15000 * SLOW});
    });
    // and says no more once a stream is back
    await page.waitForSelector('[data-testid=offline]', {state: 'hidden', timeout: 30000 * SLOW});
    await page.waitForFunction((sel) => document.querySelector(sel).textContent === 'cancelled', badge,
                               {timeout: 30000 * SLOW});

    await page.goto(`${d.url}/#/jobs`);
    const row = `tr[data-job-id="${doomed}"]`;
    await page.waitForSelector(row);
    await page.waitForSelector('#live.on');
    await restart(async () => {
      assert.equal((await api(d.url, 'DELETE', '/v1/jobs/' + doomed)).status, 204);
    });
    await page.waitForSelector(row, {state: 'detached', timeout: 30000 * SLOW});
  });

  // Each page of rows reads up to 1000 jobs again: seconds on a loaded machine.
  const ROWS_MS = 45000 * SLOW;

  it('the jobs list shows more than the API gives at once (1000 jobs)', async () => {
    // the worker busy (as the test before left it), so that the jobs stay queued. After the
    // restart the busy job may still be queued on its way back to the worker: wait for it
    // rather than submit a second one, which would queue behind it.
    const listed = (await api(d.url, 'GET', '/v1/jobs?limit=1000')).json.jobs;
    let busy = listed.find((j) => j.name === 'busy' && (j.state === 'running' || j.state === 'queued'));
    if (!busy) busy = (await api(d.url, 'POST', '/v1/jobs', heavyJob({name: 'busy'}))).json;
    await waitJob(d.url, busy.id, (j) => j.state === 'running');
    const have = (await api(d.url, 'GET', '/v1/jobs?limit=1')).json.total;
    for (let i = have; i < 1105; i++) {
      const r = await api(d.url, 'POST', '/v1/jobs', heavyJob({name: 'many-' + i}));
      assert.equal(r.status, 201, r.text);
    }
    const all = [];
    for (let off = 0; off < 1105; off += 1000) all.push(...(await api(d.url, 'GET', `/v1/jobs?limit=1000&offset=${off}`)).json.jobs);
    assert.equal(all.length, 1105);
    const asked = [];
    page.on('request', (q) => { if (/\/v1\/jobs\?/.test(q.url())) asked.push(new URL(q.url()).searchParams); });
    await page.goto(`${d.url}/#/jobs`);
    const rows = () => page.$$eval('tr[data-job-id]', (trs) => trs.map((tr) => tr.dataset.jobId));
    await waitFor(async () => (await rows()).length === 100, {what: 'the first 100 jobs', timeoutMs: ROWS_MS});
    for (let k = 2; k <= 11; k++) {
      await page.click('#jobs-more');
      await waitFor(async () => (await rows()).length === 100 * k, {what: `${100 * k} rows`, timeoutMs: ROWS_MS});
    }
    assert.deepEqual(await rows(), all.slice(0, 1100).map((j) => j.id), 'the newest 1100, in order');
    assert.ok(asked.every((q) => Number(q.get('limit')) <= 1000), 'no page over the API\'s limit');
    assert.equal(await page.isVisible('#jobs-more'), true, 'five more to show');
    await page.click('#jobs-more');
    await waitFor(async () => (await rows()).length === 1105, {what: 'every job', timeoutMs: ROWS_MS});
    assert.equal(await page.isVisible('#jobs-more'), false);
  });
});

