// The learning-rate finder in the dashboard (headless Chromium): "Find a learning rate" on the
// New-job page starts a sweep of the spec in the editor, the finder page follows it and draws
// loss against lr with the suggestions marked, and "Use this lr" opens the New-job form with
// the job's spec at that lr, which submits as a job training at exactly that rate.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {launchBrowser} from './browserlib.mjs';
import {api, tutorialJob, waitFor, waitJob, withDaemon} from './lib.mjs';

const SHOTS = 'build/screenshots';

const IRIS = {
  name: 'iris', seed: 3, steps: 500,
  model: {type: 'mlp', inputs: 4, hidden: [16], outputs: 3},
  loss: 'cross_entropy', data: {type: 'builtin', name: 'iris'},
  ds_config: {train_batch_size: 16, optimizer: {type: 'AdamW', params: {lr: 0.001}},
              scheduler: {type: 'WarmupLR', params: {warmup_num_steps: 10}}},
};

test('find → pick → submit in the browser', async () => {
  const b = await launchBrowser({viewport: {width: 1280, height: 800}});
  const errors = [];
  try {
    await withDaemon({}, async (d) => {
      const page = await b.firstPage();
      page.on('pageerror', (e) => errors.push(e.message));
      // find: the New-job page sends the spec in the editor as a sweep
      await page.goto(`${d.url}/#/new`);
      await page.waitForSelector('#spec-editor');
      await page.fill('#spec-editor', JSON.stringify(IRIS, null, 2));
      await page.click('#find-lr');
      await page.waitForFunction(() => /^#\/lrfinder\/j_/.test(location.hash));
      const id = decodeURIComponent((await page.evaluate(() => location.hash)).slice('#/lrfinder/'.length));
      const sweep = (await api(d.url, 'GET', `/v1/jobs/${id}`)).json;
      assert.equal(sweep.kind, 'lr_finder');
      assert.equal(sweep.spec.ds_config.scheduler.type, 'ExponentialLR');
      await waitJob(d.url, id, (j) => j.state === 'completed');
      const want = (await api(d.url, 'GET', `/v1/jobs/${id}/lr_finder`)).json;

      // the job page links to the same page
      await page.goto(`${d.url}/#/job/${id}`);
      await page.click('#btn-lrfinder');
      await page.waitForSelector('#page-lrfinder');
      const drawn = await waitFor(() => page.evaluate(() => {
        const u = window.__anneald.charts.lrfinder;
        return u && u.data[0].length ? {labels: u.series.map((s) => s.label), x: Array.from(u.data[0]),
                                        smoothed: Array.from(u.data[2]), data: u.data.slice(3).map((a) => Array.from(a))}
          : null;
      }), {what: 'the finder chart'});
      assert.deepEqual(drawn.labels.slice(1), ['loss', 'smoothed', 'steepest', 'valley', 'minimum_div_10']);
      // the sweep up to the divergence, and minimum/10, which lies between two of its steps
      const swept = want.lr.slice(0, want.diverged_at + 1);
      const min10 = want.suggestions.minimum_div_10;
      assert.ok(!swept.includes(min10) && min10 > swept[0] && min10 < swept.at(-1), String(min10));
      assert.deepEqual(drawn.x, [...swept, min10].sort((a, b) => a - b));
      // each suggestion is one mark, at its lr, on the smoothed curve
      const marks = drawn.data.map((a) => a.map((v, i) => [drawn.x[i], v]).filter(([, v]) => v != null));
      assert.deepEqual(marks.map((m) => m.length), [1, 1, 1]);
      for (const [k, name] of ['steepest', 'valley'].entries()) {
        const i = drawn.x.indexOf(want.suggestions[name]);
        assert.deepEqual(marks[k][0], [want.suggestions[name], drawn.smoothed[i]], name);
      }
      // minimum/10 has no loss of its own: its mark is between its neighbours' smoothed losses
      const i = drawn.x.indexOf(min10);
      assert.equal(marks[2][0][0], min10);
      assert.equal(drawn.smoothed[i], null);
      const [y0, y1] = [drawn.smoothed[i - 1], drawn.smoothed[i + 1]];
      assert.ok(marks[2][0][1] >= Math.min(y0, y1) && marks[2][0][1] <= Math.max(y0, y1),
                `${marks[2][0][1]} between ${y0} and ${y1}`);
      for (const k of ['steepest', 'valley', 'minimum_div_10']) {
        const t = await page.textContent(`[data-testid="lrf-${k}"] code`);
        assert.equal(Number(t).toPrecision(3), Number(want.suggestions[k]).toPrecision(3), k);
      }
      // a loss with a floor, swept smoothly: the suggestions come without a caveat
      assert.deepEqual(await page.evaluate(() => window.__anneald.lrfinderCaveats.map((c) => c.key)), []);
      assert.equal(await page.$('[data-testid^=lrf-caveat-]'), null);
      fs.mkdirSync(SHOTS, {recursive: true});
      await page.screenshot({path: path.join(SHOTS, 'lrfinder.png')});

      // pick the valley: the New-job form holds the spec at that lr without the sweep
      await page.click('#use-valley');
      await page.waitForSelector('#page-new');
      const spec = await waitFor(async () => {
        const text = await page.inputValue('#spec-editor');
        try { const s = JSON.parse(text); return s.name && s.name.startsWith('iris') ? s : null; } catch { return null; }
      }, {what: 'the prefilled spec'});
      assert.equal(spec.ds_config.optimizer.params.lr, want.suggestions.valley);
      assert.equal(spec.ds_config.scheduler, undefined);
      assert.equal(spec.steps, 100);
      assert.equal(spec.lr_finder, undefined);
      // the sweep's length and missing schedule are pointed out before a submit
      assert.match(await page.textContent('[data-testid=lr-note]'), /Its steps \(100\) are the sweep's/);
      await page.click('#submit-job');
      await page.waitForFunction(() => /^#\/job\/j_/.test(location.hash));
      const newId = decodeURIComponent((await page.evaluate(() => location.hash)).slice('#/job/'.length));
      assert.notEqual(newId, id);
      const job = await waitJob(d.url, newId, (j) => j.step >= 1);
      // the metric rows reach the store a little after the step: wait for step 1's
      const m = await waitFor(async () => {
        const r = await api(d.url, 'GET', `/v1/jobs/${newId}/metrics?from=1&to=1`);
        return r.json.step.length === 1 ? r : null;
      }, {what: 'step 1 of the new job in its metrics'});
      assert.equal(m.json.lr[0][0], want.suggestions.valley);   // it trains at exactly that lr
      assert.equal(job.spec.ds_config.optimizer.params.lr, want.suggestions.valley);
      await api(d.url, 'POST', `/v1/jobs/${newId}/cancel`, {});

      // An ordinary job still running is read as it is: the page does not wait for it to end,
      // asking for its whole analysis twice a second meanwhile.
      const long = await api(d.url, 'POST', '/v1/jobs', {...IRIS, name: 'long', steps: 100000000,
        ds_config: {...IRIS.ds_config, scheduler: undefined}});   // a constant lr: no sweep
      assert.equal(long.status, 201, long.text);
      await waitJob(d.url, long.json.id, (j) => j.state === 'running' && j.step > 20);
      let asked = 0;
      const count = (req) => { if (req.url().endsWith(`/v1/jobs/${long.json.id}/lr_finder`)) asked++; };
      page.on('request', count);
      await page.goto(`${d.url}/#/lrfinder/${long.json.id}`);
      await page.waitForSelector('#page-lrfinder');
      await waitFor(() => asked >= 1, {what: 'the analysis asked for'});
      await new Promise((r) => setTimeout(r, 2000));
      page.off('request', count);
      assert.equal(asked, 1, 'asked once, not polled');
      assert.doesNotMatch(await page.textContent('#page-lrfinder'), /sweeping: step/);
      // its lr never grows: said so, and nothing suggested
      await page.waitForFunction(() => /is not a learning-rate sweep/.test(document.querySelector('#lrfinder-status').textContent));
      assert.equal(await page.$('[data-testid^=use-]'), null);
      await api(d.url, 'POST', `/v1/jobs/${long.json.id}/cancel`, {});

      // a warm-up from 0 then a cosine decay: only the warm-up is read as a sweep, and the
      // suggestions come from it
      const warm = await api(d.url, 'POST', '/v1/jobs', {...IRIS, name: 'warm', steps: 300,
        ds_config: {...IRIS.ds_config, scheduler: {type: 'WarmupCosineLR', params: {total_num_steps: 300, warmup_num_steps: 100, warmup_min_ratio: 0}}}});
      assert.equal(warm.status, 201, warm.text);
      await waitJob(d.url, warm.json.id, (j) => j.state === 'completed');
      await page.goto(`${d.url}/#/lrfinder/${warm.json.id}`);
      await page.waitForFunction(() => /steps read \(steps \d+ to \d+: where the lr grows\)/.test(document.querySelector('#lrfinder-status').textContent));
      const rep = await page.evaluate(() => window.__anneald.lrfinder);
      assert.ok(rep.from >= 1 && rep.to <= 101 && rep.to - rep.from >= 50, `the warm-up: ${rep.from}..${rep.to}`);
      for (let i = 1; i < rep.lr.length; i++) assert.ok(rep.lr[i] > rep.lr[i - 1], 'every lr read grows');
    });
    assert.deepEqual(errors, []);
  } finally {
    await b.close();
  }
});

// A sweep slow enough to watch (an MLP 32-512-512-1 on batches of 256, for LRFIND_MAX_STEPS
// steps) whose loss never passes the stop factor: it runs until the test cancels it.
const SLOW_FINDER = {
  job: {name: 'slow-sweep', seed: 5, model: {type: 'mlp', inputs: 32, hidden: [512, 512], outputs: 1},
        data: {type: 'synthetic', task: 'regression', samples: 8192, features: 32}, steps: 10,
        ds_config: {train_batch_size: 256, optimizer: {type: 'Adam', params: {lr: 0.001}}}},
  min_lr: 1e-7, max_lr: 1e-4, steps: 100000, stop_factor: 1e6,
};

test('the finder page follows a running sweep over its event stream, and says it is connected', async () => {
  const b = await launchBrowser({viewport: {width: 1280, height: 800}});
  const errors = [];
  try {
    await withDaemon({}, async (d) => {
      const page = await b.firstPage();
      page.on('pageerror', (e) => errors.push(e.message));
      const r = await api(d.url, 'POST', '/v1/lr_finder', SLOW_FINDER);
      assert.equal(r.status, 201, r.text);
      const id = r.json.id;
      await waitJob(d.url, id, (j) => j.state === 'running' && j.step > 0);
      await page.goto(`${d.url}/#/lrfinder/${id}`);
      await page.waitForSelector('#page-lrfinder');
      // the stream is open: the indicator says so
      await page.waitForSelector('#live.on');
      assert.match(await page.getAttribute('#live', 'title'), /^live/);
      // the curve grows while the sweep runs, without a reload
      const points = () => page.evaluate(() => {
        const u = window.__anneald.charts.lrfinder;
        return u ? u.data[0].length : 0;
      });
      const first = await waitFor(async () => { const n = await points(); return n >= 20 ? n : null; },
                                  {what: 'the running sweep drawn'});
      await waitFor(async () => (await points()) > first + 50, {what: 'the curve growing'});
      assert.equal((await api(d.url, 'GET', `/v1/jobs/${id}`)).json.state, 'running');
      assert.match(await page.textContent('#lrfinder-status'), /^sweeping: step \d+ of 100000 \(running\)… [\d,]+ steps read/);
      assert.match(await page.textContent('#lrfinder-picks'), /So far: the sweep is still running/);
      // it ends (cancelled here): the page reads it once more and the "so far" goes
      await api(d.url, 'POST', `/v1/jobs/${id}/cancel`, {});
      await page.waitForFunction(() => /^[\d,]+ steps read/.test(document.querySelector('#lrfinder-status').textContent));
      assert.doesNotMatch(await page.textContent('#lrfinder-picks'), /So far/);
    });
    assert.deepEqual(errors, []);
  } finally {
    await b.close();
  }
});

test('suggestions are qualified by the report\'s caveats (a loss with no floor)', async () => {
  const b = await launchBrowser({viewport: {width: 1280, height: 800}});
  const errors = [];
  try {
    await withDaemon({}, async (d) => {
      const page = await b.firstPage();
      page.on('pageerror', (e) => errors.push(e.message));
      // the tutorial's loss `mean` falls without end: each suggestion is marked as no advice
      const r = await api(d.url, 'POST', '/v1/lr_finder', {job: tutorialJob({checkpoint: undefined}), steps: 200});
      assert.equal(r.status, 201, r.text);
      await waitJob(d.url, r.json.id, (j) => j.state === 'completed');
      await page.goto(`${d.url}/#/lrfinder/${r.json.id}`);
      await page.waitForSelector('[data-testid=caveat-unbounded]');
      assert.match(await page.textContent('[data-testid=caveat-unbounded]'), /The loss "mean" has no floor/);
      for (const k of ['steepest', 'valley', 'minimum_div_10'])
        assert.match(await page.textContent(`[data-testid=lrf-caveat-${k}]`), /no floor/, k);

      // the page lists what the service judged (the rules: test_lrfind_caveats)
      const rep = await api(d.url, 'GET', `/v1/jobs/${r.json.id}/lr_finder`);
      assert.deepEqual(rep.json.caveats.map((c) => c.code), ['unbounded']);
      assert.equal((await page.$$('[data-testid^=caveat-]')).length, 1);
    });
    assert.deepEqual(errors, []);
  } finally {
    await b.close();
  }
});
