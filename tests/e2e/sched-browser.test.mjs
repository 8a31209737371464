// Scheduling and retention on the dashboard's job page (headless Chromium): the job's
// priority, tags and notes under its title (and after a PATCH), and the checkpoints table's
// pinned/best marks with the Pin button, whose pin the API then reports.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {launchBrowser} from './browserlib.mjs';
import {api, heavyJob, tutorialJob, waitFor, waitJob, withDaemon, SLOW} from './lib.mjs';

const SHOTS = 'build/screenshots';

test('the job page shows priority, tags, notes, pinned and best, and pins a checkpoint', async () => {
  const b = await launchBrowser({viewport: {width: 1280, height: 800}});
  const errors = [];
  try {
    await withDaemon({args: ['--workers', '1']}, async (d) => {
      const page = await b.firstPage();
      page.on('pageerror', (e) => errors.push(e.message));
      const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({
        name: 'labelled', priority: 7, tags: ['baseline', 'lr-test'], notes: 'warmup over 100 steps',
        steps: 200, checkpoint: {every_steps: 20, keep_last: 1, keep_best: {metric: 'loss', mode: 'max'}}}));
      assert.equal(r.status, 201, r.text);
      const id = r.json.id;
      await waitJob(d.url, id, (j) => j.state === 'completed');
      await page.goto(`${d.url}/#/job/${id}`);
      await page.waitForSelector('[data-testid="job-priority"]');
      assert.equal((await page.textContent('[data-testid="job-priority"]')).trim(), 'priority 7');
      assert.deepEqual(await page.$$eval('[data-testid="job-tag"]', (els) => els.map((e) => e.textContent)),
                       ['baseline', 'lr-test']);
      assert.equal(await page.textContent('[data-testid="job-notes"]'), 'warmup over 100 steps');

      // the checkpoints table: the best (highest loss, mode max) and the newest
      const list = (await api(d.url, 'GET', `/v1/jobs/${id}/checkpoints`)).json.checkpoints;
      assert.equal(list.length, 2);
      const rows = async () => page.$$eval('[data-testid="checkpoint-row"]', (trs) => trs.map((tr) => ({
        step: Number(tr.dataset.step),
        marks: tr.querySelector('[data-testid="checkpoint-marks"]').textContent,
        pin: tr.querySelector('[data-testid="pin-checkpoint"]').textContent})));
      await waitFor(async () => (await rows()).length === 2, {what: 'two checkpoint rows'});
      const want = list.slice().sort((a, b) => b.step - a.step)
        .map((c) => ({step: c.step, marks: (c.pinned ? 'pinned' : '') + (c.best ? 'best' : ''), pin: 'Pin'}));
      assert.deepEqual(await rows(), want);
      assert.ok(want.some((w) => w.marks === 'best'));

      // Pin the newest from the page: the API reports it pinned, the row says so
      const newest = want[0].step;
      await page.click(`tr[data-step="${newest}"] [data-testid="pin-checkpoint"]`);
      await waitFor(async () => {
        const row = (await rows()).find((x) => x.step === newest);
        return row && row.pin === 'Unpin' && row.marks.startsWith('pinned');
      }, {what: 'the pinned row'});
      const after = (await api(d.url, 'GET', `/v1/jobs/${id}/checkpoints`)).json.checkpoints;
      assert.equal(after.find((c) => c.step === newest).pinned, true);
      fs.mkdirSync(SHOTS, {recursive: true});
      await page.screenshot({path: path.join(SHOTS, 'job-sched.png')});
      // and unpin it again
      await page.click(`tr[data-step="${newest}"] [data-testid="pin-checkpoint"]`);
      await waitFor(async () => (await rows()).find((x) => x.step === newest)?.pin === 'Pin',
                    {what: 'the unpinned row'});
      assert.equal((await api(d.url, 'GET', `/v1/jobs/${id}/checkpoints`)).json.checkpoints
        .find((c) => c.step === newest).pinned, false);

      // a PATCH shows on the page once it loads the job again
      assert.equal((await api(d.url, 'PATCH', `/v1/jobs/${id}`, {priority: -2, tags: ['kept'], notes: ''})).status, 200);
      await page.reload();
      await page.waitForSelector('[data-testid="job-priority"]');
      assert.equal((await page.textContent('[data-testid="job-priority"]')).trim(), 'priority -2');
      assert.deepEqual(await page.$$eval('[data-testid="job-tag"]', (els) => els.map((e) => e.textContent)), ['kept']);
      assert.equal(await page.$('[data-testid="job-notes"]'), null);

      // a preempted job says so while it waits
      const low = (await api(d.url, 'POST', '/v1/jobs', heavyJob({name: 'low'}))).json;
      await waitJob(d.url, low.id, (j) => j.state === 'running' && j.step > 0);
      const high = (await api(d.url, 'POST', '/v1/jobs', heavyJob({name: 'high', priority: 10}))).json;
      await page.goto(`${d.url}/#/job/${low.id}`);
      await page.waitForSelector('[data-testid="job-preempted"]', {timeout: 15000});
      await api(d.url, 'POST', `/v1/jobs/${high.id}/cancel`, {});
      await api(d.url, 'POST', `/v1/jobs/${low.id}/cancel`, {});
    });
    assert.deepEqual(errors, []);
  } finally {
    await b.close();
  }
});

test('a queued job shows its place in the queue instead of empty charts, then its charts', async () => {
  const b = await launchBrowser({viewport: {width: 1280, height: 800}});
  const errors = [];
  try {
    await withDaemon({args: ['--workers', '1']}, async (d) => {
      const page = await b.firstPage();
      page.on('pageerror', (e) => errors.push(e.message));
      // the place is the daemon's (queue_position, queue_length): the page reads no list
      const lists = [];
      page.on('request', (q) => { if (/\/v1\/jobs\?/.test(q.url())) lists.push(q.url()); });
      // not preemptible: raising a queued job's priority below does not make it run
      const busy = (await api(d.url, 'POST', '/v1/jobs', heavyJob({preemptible: false}))).json.id;
      await waitJob(d.url, busy, (j) => j.state === 'running');
      // two behind it: the second waits behind the first (same priority, older)
      const first = (await api(d.url, 'POST', '/v1/jobs', heavyJob({name: 'first'}))).json.id;
      const second = (await api(d.url, 'POST', '/v1/jobs', tutorialJob({name: 'second', steps: 300}))).json.id;
      await page.goto(`${d.url}/#/job/${second}`);
      await page.waitForSelector('[data-testid=chart-waiting]:not([hidden])');
      assert.match(await page.textContent('#waiting-title'), /^Queued — no steps yet/);
      await page.waitForFunction(() => /position 2 of 2 in the queue/.test(document.querySelector('#waiting-detail').textContent));
      assert.equal(await page.isVisible('#charts-box'), false);
      // raised above the first, it is next: the place follows without a reload
      assert.equal((await api(d.url, 'PATCH', `/v1/jobs/${second}`, {priority: 5})).status, 200);
      await page.waitForFunction(() => /position 1 of 2 in the queue/.test(document.querySelector('#waiting-detail').textContent));
      // a thousand younger jobs behind it: the count follows
      for (let i = 0; i < 1000; i += 25)
        await Promise.all(Array.from({length: 25}, (_, k) =>
          api(d.url, 'POST', '/v1/jobs', tutorialJob({name: `later-${i + k}`, steps: 10}))
            .then((r) => assert.equal(r.status, 201, r.text))));
      await page.waitForFunction(() => /position 1 of 1002 in the queue/.test(document.querySelector('#waiting-detail').textContent),
                                 null, {timeout: 30000 * SLOW});
      // it runs (and ends): the charts take the box's place, with its steps
      await api(d.url, 'POST', `/v1/jobs/${busy}/cancel`, {});
      await waitJob(d.url, second, (j) => j.state === 'completed');
      await page.waitForSelector('#charts-box:not([hidden])');
      await waitFor(() => page.evaluate(() => {
        const u = window.__anneald.charts.loss;
        return u && u.data[0].length === 300;
      }), {what: 'the loss chart with the 300 steps'});
      assert.equal(await page.isVisible('[data-testid=chart-waiting]'), false);
      assert.deepEqual(lists, [], 'no list read for the place');
      await api(d.url, 'POST', `/v1/jobs/${first}/cancel`, {});
    });
    assert.deepEqual(errors, []);
  } finally {
    await b.close();
  }
});
