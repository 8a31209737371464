// The dashboard's event streams and live data in headless Chromium against the real daemon: a
// stream the page has to open again itself resumes after the last event it had, what the
// pages read again when their stream comes back, and jobs deleted under the Compare page.
import {describe, it, before, after} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {chromium} from 'playwright-core';
import {startDaemon, api, waitFor, waitJob, readEvents, tmpDir, heavyJob, tutorialJob} from './lib.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
              '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'];

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
  let d, ctx, page, profile;
  const errors = [];

  before(async () => {
    d = await startDaemon({args: ['--workers', '2']});
    profile = tmpDir('anneald-chromium-');
    ctx = await chromium.launchPersistentContext(profile, {executablePath: CHROMIUM, headless: true, args: ARGS,
                                                           viewport: {width: 1280, height: 800}});
    await ctx.addInitScript(recordStreams);
    page = ctx.pages()[0] || await ctx.newPage();
    page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
  });

  after(async () => {
    if (ctx) await ctx.close();
    if (profile) fs.rmSync(profile, {recursive: true, force: true});
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
    assert.match(await page.textContent('#compare-gone'), new RegExp(`^${c} was deleted`));
    const badge = (id) => page.textContent(`label.pick:has([data-job-id="${id}"]) [data-testid=job-state]`);
    assert.equal(await badge(c), 'deleted');
    assert.equal(await page.isVisible('#compare-empty'), false);
    // and one deleted while the page shows it: its curve goes at once
    assert.equal((await api(d.url, 'DELETE', '/v1/jobs/' + b)).status, 204);
    await waitFor(async () => JSON.stringify(await labels()) === JSON.stringify([a]), {what: 'b\'s curve to go'});
    await waitFor(async () => /^.* were deleted/.test(await page.textContent('#compare-gone')), {what: 'the note'});
    assert.equal(await badge(b), 'deleted');
    assert.equal(await page.isVisible('#compare-empty'), true, 'one job left: the page asks for two');
    assert.equal(await page.locator('.toast-item.error').count(), 0, 'no error shown');
  });
});
