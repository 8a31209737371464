// Sweeps in the dashboard (headless Chromium): the Sweeps page starts a sweep from its editor
// (a bad one shows the field at fault and starts nothing), the sweep's page fills in live as
// trials run: the trials table in the API's order, a metric curve per trial, a scatter per
// parameter, the best trial; Cancel and Delete work from there, and a retry of the trials that
// could not start.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {launchBrowser} from './browserlib.mjs';
import {api, heavyJob, regressionCsv, waitFor, withDaemon} from './lib.mjs';

const SHOTS = 'build/screenshots';

const SWEEP = {
  name: 'browser-sweep',
  base: {
    seed: 7, model: {type: 'mlp', inputs: 64, hidden: [16], outputs: 10}, loss: 'cross_entropy',
    data: {type: 'builtin', name: 'digits'}, steps: 450, validation: {fraction: 0.2, every_steps: 50},
    ds_config: {train_batch_size: 32, optimizer: {type: 'AdamW', params: {lr: 0.001, weight_decay: 0.01}}},
  },
  parameters: {'ds_config.optimizer.params.lr': {log_uniform: [1e-3, 1e-1]}, 'model.hidden[0]': [8, 16]},
  search: 'random', trials: 6, metric: 'val_loss', max_concurrent: 2,
  early_stopping: {type: 'asha', min_steps: 50, reduction_factor: 3},
};

test('start a sweep from the dashboard and follow it to its best trial; cancel and delete', async () => {
  const b = await launchBrowser({viewport: {width: 1280, height: 900}});
  const errors = [];
  try {
    await withDaemon({args: ['--workers', '2']}, async (d) => {
      const page = await b.firstPage();
      page.on('pageerror', (e) => errors.push(e.message));
      // every curve is asked for thinned (a val_loss sweep's validation points come whole anyway)
      const metricsAsked = [];
      page.on('request', (req) => { if (/\/v1\/jobs\/[^/]+\/metrics/.test(req.url())) metricsAsked.push(req.url()); });
      await page.goto(`${d.url}/#/sweeps`);
      await page.waitForSelector('#sweep-editor');
      // shown once the (empty) list has been read: the editor comes first
      await page.waitForSelector('#sweeps-empty', {state: 'visible', timeout: 10000});
      // a bad sweep: the field at fault is shown and nothing starts
      await page.fill('#sweep-editor', JSON.stringify({...SWEEP, parameters: {'model.nope': [1]}}));
      await page.click('#sweep-submit');
      await page.waitForSelector('#sweep-error:not([hidden])');
      assert.match(await page.textContent('#sweep-error'), /^parameters\.model\.nope: /);
      assert.equal((await api(d.url, 'GET', '/v1/sweeps')).json.total, 0);

      await page.fill('#sweep-editor', JSON.stringify(SWEEP, null, 2));
      await page.click('#sweep-submit');
      await page.waitForFunction(() => /^#\/sweep\/s_/.test(location.hash));
      const id = decodeURIComponent((await page.evaluate(() => location.hash)).slice('#/sweep/'.length));
      const s = await waitFor(async () => {
        const r = (await api(d.url, 'GET', `/v1/sweeps/${id}`)).json;
        return r.state === 'completed' ? r : null;
      }, {timeoutMs: 60000, what: 'the sweep to complete'});

      // the page follows it live to the end: the table in the API's order, the best named
      await page.waitForFunction(() => window.__anneald.sweep && window.__anneald.sweep.state === 'completed');
      const rows = await page.$$eval('#sweep-trials tbody tr', (trs) => trs.map((tr) => Number(tr.dataset.trial)));
      assert.deepEqual(rows, s.trials.map((t) => t.trial));
      assert.match(await page.textContent('#sweep-best'), new RegExp(`Best: trial ${s.best.trial} \\(${s.best.job}\\)`));
      const stoppedCells = await page.$$eval('#sweep-trials tbody tr', (trs) => trs.map((tr) => tr.children[6].textContent));
      assert.deepEqual(stoppedCells, s.trials.map((t) => (t.stopped_at == null ? '' : String(t.stopped_at))));
      // a curve per trial: each trial's validation steps and values, as the metrics API has them
      const drawn = await waitFor(() => page.evaluate(() => {
        const u = window.__anneald.charts.sweepMetric;
        return u && u.series.length === 7 ? {labels: u.series.slice(1).map((x) => x.label),
                                             x: Array.from(u.data[0]), y: u.data.slice(1).map((a) => Array.from(a))} : null;
      }), {what: 'the metric chart'});
      assert.deepEqual(drawn.labels, s.trials.map((t) => `#${t.trial}`));
      assert.ok(metricsAsked.length > 0);
      for (const u of metricsAsked) assert.match(u, /[?&]max_points=\d+/, u);
      for (let k = 0; k < s.trials.length; k++) {
        const m = (await api(d.url, 'GET', `/v1/jobs/${s.trials[k].job}/metrics`)).json;
        const mine = drawn.x.map((x, i) => [x, drawn.y[k][i]]).filter(([, v]) => v != null);
        assert.deepEqual(mine, m.val_step.map((x, i) => [x, m.val_loss[i]]), `trial ${s.trials[k].trial}`);
      }
      // a scatter per parameter: every trial's value against its metric
      const scat = await page.evaluate(() => ['ds_config.optimizer.params.lr', 'model.hidden[0]'].map((k) => {
        const u = window.__anneald.charts['sweepScatter:' + k];
        return u && {n: u.data[1].filter((v) => v != null).length + u.data[2].filter((v) => v != null).length,
                     x: Array.from(u.data[0])};
      }));
      assert.equal(scat[0].n, 6);
      assert.equal(scat[1].n, 6);
      // the chart draws each x once, in order: trials sharing a value are a hair apart
      for (const c of scat) for (let i = 1; i < c.x.length; i++) assert.ok(c.x[i] > c.x[i - 1], `x ascending: ${c.x}`);
      assert.deepEqual([...new Set(scat[1].x.map((v) => +v.toPrecision(6)))].sort((a, b) => a - b), [8, 16].filter((v) => s.trials.some((t) => t.params['model.hidden[0]'] === v)));
      fs.mkdirSync(SHOTS, {recursive: true});
      await page.screenshot({path: `${SHOTS}/sweep.png`, fullPage: true});

      // the jobs list marks the trials, and can leave them out
      await page.goto(`${d.url}/#/jobs`);
      await page.waitForSelector('[data-testid=job-row]');
      const rowsShown = () => page.$$eval('[data-testid=job-row]', (r) => r.length);
      const trials = s.trials.filter((t) => t.job).length;
      assert.equal(await rowsShown(), trials, 'every job here is a trial');
      assert.match(await page.textContent(`tr[data-job-id="${s.trials.find((t) => t.job).job}"]`), new RegExp(`${id} trial \\d`));
      await page.check('#hide-trials');
      await page.waitForFunction(() => document.querySelectorAll('[data-testid=job-row]').length === 0);
      assert.match(await page.textContent('#jobs-count'), new RegExp(`\\(${trials} sweep trials? hidden\\)`));
      await page.uncheck('#hide-trials');
      await page.waitForFunction((n) => document.querySelectorAll('[data-testid=job-row]').length === n, trials);

      // the list shows it with its best value; a long sweep is cancelled and deleted from its page
      await page.click('[data-testid=nav-sweeps]');
      await page.waitForSelector(`#sweeps-table tr[data-sweep-id="${id}"]`);
      const long = (await api(d.url, 'POST', '/v1/sweeps', {name: 'long', base: heavyJob(), metric: 'loss', max_concurrent: 1,
                                                           parameters: {'ds_config.optimizer.params.lr': [0.001, 0.002]}})).json;
      await page.goto(`${d.url}/#/sweep/${long.id}`);
      await page.waitForFunction(() => window.__anneald.sweep && window.__anneald.sweep.trials.some((t) => t.state === 'running' && t.step > 0));
      // the running trial's steps follow its progress, without a reload
      const s0 = await page.evaluate(() => window.__anneald.sweep.trials.find((t) => t.state === 'running').step);
      await page.waitForFunction((x) => window.__anneald.sweep.trials.some((t) => t.state === 'running' && t.step > x), s0,
                                 {timeout: 15000});
      assert.equal(await page.isDisabled('#sweep-delete'), true);
      await page.click('#sweep-cancel');
      await page.waitForFunction(() => window.__anneald.sweep.state === 'cancelled' &&
                                       window.__anneald.sweep.trials.every((t) => t.state !== 'running'));
      page.once('dialog', (dlg) => dlg.accept());
      await page.click('#sweep-delete');
      await page.waitForFunction(() => location.hash === '#/sweeps');
      assert.equal((await api(d.url, 'GET', `/v1/sweeps/${long.id}`)).status, 404);
      // deleted elsewhere: the list drops it, and its open page says so and acts no more
      await page.waitForSelector(`#sweeps-table tr[data-sweep-id="${id}"]`);
      assert.equal((await api(d.url, 'DELETE', `/v1/sweeps/${id}`)).status, 204);
      await page.waitForSelector(`#sweeps-table tr[data-sweep-id="${id}"]`, {state: 'detached', timeout: 5000});
      const other = (await api(d.url, 'POST', '/v1/sweeps', {name: 'other', base: heavyJob(), metric: 'loss', max_concurrent: 1,
                                                            parameters: {'ds_config.optimizer.params.lr': [0.001]}})).json;
      await page.goto(`${d.url}/#/sweep/${other.id}`);
      await page.waitForFunction(() => window.__anneald.sweep && window.__anneald.sweep.trials.some((t) => t.state === 'running'));
      await api(d.url, 'POST', `/v1/sweeps/${other.id}/cancel`);
      await page.waitForFunction(() => window.__anneald.sweep.state === 'cancelled' &&
                                       window.__anneald.sweep.trials.every((t) => t.state !== 'running'));
      assert.equal((await api(d.url, 'DELETE', `/v1/sweeps/${other.id}`)).status, 204);
      await page.waitForSelector('[data-testid=sweep-deleted]', {timeout: 5000});
      assert.equal(await page.isDisabled('#sweep-delete'), true);
    });
  } finally {
    await b.close();
  }
  assert.deepEqual(errors, []);
});

test('a choice parameter\'s scatter names its ticks; the metric axes can be logarithmic', async () => {
  const b = await launchBrowser({viewport: {width: 1280, height: 900}});
  const errors = [];
  try {
    await withDaemon({args: ['--workers', '2']}, async (d) => {
      const page = await b.firstPage();
      page.on('pageerror', (e) => errors.push(e.message));
      const choices = ['SGD', 'Adam', 'AdamW'];
      const r = await api(d.url, 'POST', '/v1/sweeps', {name: 'optimizers', search: 'grid', metric: 'loss', max_concurrent: 2,
        base: {seed: 3, model: {type: 'linear', inputs: 4, outputs: 1}, loss: 'mse', steps: 60,
               data: {type: 'synthetic', task: 'regression', samples: 256, features: 4},
               ds_config: {train_batch_size: 16, optimizer: {type: 'Adam', params: {lr: 0.01}}}},
        parameters: {'ds_config.optimizer.type': choices, 'ds_config.optimizer.params.lr': [0.001, 0.01]}});
      assert.equal(r.status, 201, r.text);
      await waitFor(async () => (await api(d.url, 'GET', `/v1/sweeps/${r.json.id}`)).json.state === 'completed',
                    {timeoutMs: 60000, what: 'the sweep to complete'});
      await page.goto(`${d.url}/#/sweep/${r.json.id}`);
      const axis = (name) => page.evaluate((n) => {
        const u = window.__anneald.charts[n];
        if (!u || !u.axes[0]._values) return null;
        return {splits: Array.from(u.axes[0]._splits), ticks: Array.from(u.axes[0]._values),
                logY: u.scales.y.distr === 3, n: u.data[1].filter((v) => v != null).length};
      }, name);
      const opt = await waitFor(async () => { const a = await axis('sweepScatter:ds_config.optimizer.type'); return a && a.n === 6 ? a : null; },
                                {what: 'the optimizer scatter with every trial'});
      // a tick at each choice, named as the sweep lists them, and none between
      assert.deepEqual(opt.splits, [0, 1, 2]);
      assert.deepEqual(opt.ticks, choices);
      assert.equal(opt.logY, false);
      // the trials table names the choices as they are, without JSON's quotes
      const cells = await page.$$eval('tr[data-trial] td[data-param="ds_config.optimizer.type"]', (tds) => tds.map((td) => td.textContent));
      assert.deepEqual([...cells].sort(), ['Adam', 'Adam', 'AdamW', 'AdamW', 'SGD', 'SGD']);
      // the numeric parameter keeps its numbers
      const lr = await axis('sweepScatter:ds_config.optimizer.params.lr');
      assert.ok(lr.ticks.every((t) => /^[\d.e-]+$/.test(t)), lr.ticks.join(' '));

      // log y: the metric of every chart of the page on a log axis, kept across visits
      assert.equal((await axis('sweepMetric')).logY, false);
      await page.check('#sweep-log-y');
      await waitFor(async () => (await axis('sweepMetric')).logY, {what: 'the curves on a log y axis'});
      for (const k of ['ds_config.optimizer.type', 'ds_config.optimizer.params.lr'])
        assert.equal((await axis('sweepScatter:' + k)).logY, true, k);
      fs.mkdirSync(SHOTS, {recursive: true});
      await page.screenshot({path: `${SHOTS}/sweep-choices.png`, fullPage: true});
      await page.reload();
      await page.waitForSelector('#sweep-log-y');
      assert.equal(await page.isChecked('#sweep-log-y'), true);
      await waitFor(async () => { const a = await axis('sweepMetric'); return a && a.logY; }, {what: 'log y after a reload'});
    });
  } finally {
    await b.close();
  }
  assert.deepEqual(errors, []);
});

test('"Retry trials that could not start" shows only while some could not, and starts them', async () => {
  const b = await launchBrowser({viewport: {width: 1280, height: 900}});
  const errors = [];
  try {
    await withDaemon({}, async (d) => {
      const page = await b.firstPage();
      page.on('pageerror', (e) => errors.push(e.message));
      const r = await api(d.url, 'POST', '/v1/sweeps', {name: 'later', metric: 'loss', max_concurrent: 1,
        base: {seed: 3, model: {type: 'linear', inputs: 2, outputs: 1}, steps: 20,
               data: {type: 'dataset', name: 'later', target: 'y'},
               ds_config: {train_batch_size: 8, optimizer: {type: 'SGD', params: {lr: 0.1}}}},
        parameters: {'ds_config.optimizer.params.lr': [0.1, 0.05]}});
      assert.equal(r.status, 201, r.text);
      await page.goto(`${d.url}/#/sweep/${r.json.id}`);
      await page.waitForFunction(() => window.__anneald.sweep && window.__anneald.sweep.state === 'completed');
      await page.waitForSelector('#sweep-retry', {state: 'visible'});
      assert.equal((await api(d.url, 'POST', '/v1/datasets?name=later', regressionCsv(), {'Content-Type': 'text/csv'})).status, 201);
      await page.click('#sweep-retry');
      await page.waitForFunction(() => window.__anneald.sweep.state === 'completed' &&
                                       window.__anneald.sweep.trials.every((t) => t.state === 'completed'), null, {timeout: 30000});
      await page.waitForSelector('#sweep-retry', {state: 'hidden'});
    });
  } finally {
    await b.close();
  }
  assert.deepEqual(errors, []);
});
