// End-to-end tests of POST /v1/sweeps/{id}/retry: trials that could not start (their data
// set was not uploaded yet) started again once it is, under max_concurrent, across a restart
// of the daemon; and what it refuses.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {api, readEvents, regressionCsv, removeDir, startDaemon, tmpDir, waitFor, withDaemon} from './lib.mjs';

const dir = tmpDir('anneald-sweepretry-');
process.on('exit', () => removeDir(dir));
for (const sub of ['upload', 'refused', 'restart', 'pending']) fs.mkdirSync(`${dir}/${sub}`);

// A regression on an uploaded table named `later`, uploaded only after the sweep is made.
const LATER = {type: 'dataset', name: 'later', target: 'y'};
const base = (over = {}) => ({
  seed: 3, model: {type: 'linear', inputs: 2, outputs: 1}, data: LATER, steps: 20,
  ds_config: {train_batch_size: 8, optimizer: {type: 'SGD', params: {lr: 0.1}}}, ...over,
});
const SWEEP = {name: 'later', base: base(), metric: 'loss', max_concurrent: 1,
  parameters: {'ds_config.optimizer.params.lr': [0.1, 0.05, 0.02]}};

const upload = async (url) => {
  const r = await api(url, 'POST', '/v1/datasets?name=later', regressionCsv(), {'Content-Type': 'text/csv'});
  assert.equal(r.status, 201, r.text);
};

const waitSweep = (url, id, pred, ms = 60000) => waitFor(async () => {
  const r = await api(url, 'GET', `/v1/sweeps/${id}`);
  return r.status === 200 && pred(r.json) ? r.json : null;
}, {timeoutMs: ms, intervalMs: 50, what: `sweep ${id}`});

const states = (s) => [...s.trials].sort((a, b) => a.trial - b.trial).map((t) => t.state);
const trial = (s, k) => s.trials.find((t) => t.trial === k);

// A sweep whose every trial could not start: completed, each trial not_started with why.
async function stranded(url) {
  const c = await api(url, 'POST', '/v1/sweeps', SWEEP);
  assert.equal(c.status, 201, c.text);
  const s = await waitSweep(url, c.json.id, (x) => x.state === 'completed');
  assert.deepEqual(states(s), ['not_started', 'not_started', 'not_started']);
  assert.match(trial(s, 0).error, /^data\.name: .*later/);
  return s;
}

test('a retry once the data set is uploaded starts the trials that could not start, and they complete', async () => {
  await withDaemon({dir: `${dir}/upload`, args: ['--workers', '1']}, async (d) => {
    const before = await stranded(d.url);
    const id = before.id;
    // retried before the upload: each fails again, its error replaced, the sweep completes again
    let r = await api(d.url, 'POST', `/v1/sweeps/${id}/retry`);
    assert.equal(r.status, 200, r.text);
    let s = await waitSweep(d.url, id, (x) => x.state === 'completed' && x.trials.every((t) => t.state === 'not_started'));
    assert.equal(s.trials_started, 0);
    assert.match(trial(s, 2).error, /later/);

    await upload(d.url);
    let opened;
    const open = new Promise((res) => { opened = res; });
    const events = readEvents(d.url, `/v1/events?job=${id}`, {timeoutMs: 60000, onOpen: opened,
      until: (ev) => ev.some((e) => e.data.event === 'completed')});
    events.catch(() => {});
    await Promise.race([open, events]);
    r = await api(d.url, 'POST', `/v1/sweeps/${id}/retry`, {});
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.id, id);
    assert.equal(r.json.state, 'running');
    assert.equal(r.json.finished_at, null);
    // not started yet when answered: pending, still saying why they last could not
    for (const t of r.json.trials.filter((x) => !x.job)) {
      assert.equal(t.state, 'pending', JSON.stringify(t));
      assert.match(t.error, /later/);
    }
    s = await waitSweep(d.url, id, (x) => x.state === 'completed' && x.trials.every((t) => t.state === 'completed'));
    assert.equal(s.trials_started, 3);
    for (const t of s.trials) {
      assert.equal(t.error, null);
      assert.match(t.job, /^j_\d{6}$/);
      assert.equal(t.step, 20);
    }
    assert.ok(s.finished_at);
    // the sweep runs again (`running`, as a resume reopens it), one trial at a time
    const ev = (await events).map((e) => `${e.data.event} ${e.data.trial ?? '-'} ${e.data.trials_active}`);
    assert.deepEqual(ev, ['running - 0', 'trial_started 0 1', 'trial_ended 0 0', 'trial_started 1 1',
      'trial_ended 1 0', 'trial_started 2 1', 'trial_ended 2 0', 'completed - 0']);
    // every trial started: nothing is left to retry
    r = await api(d.url, 'POST', `/v1/sweeps/${id}/retry`);
    assert.equal(r.status, 409, r.text);
    assert.equal(r.json.error.field, 'state');
    assert.match(r.json.error.message, new RegExp(`sweep ${id} has no trial that could not start`));
  });
});

test('a retry is refused for a sweep with nothing to retry, a cancelled sweep, an unknown id and a body', async () => {
  await withDaemon({dir: `${dir}/refused`}, async (d) => {
    await upload(d.url);
    const c = await api(d.url, 'POST', '/v1/sweeps', SWEEP);
    assert.equal(c.status, 201, c.text);
    await waitSweep(d.url, c.json.id, (x) => x.state === 'completed');
    let r = await api(d.url, 'POST', `/v1/sweeps/${c.json.id}/retry`);
    assert.equal(r.status, 409, r.text);
    assert.match(r.json.error.message, /no trial that could not start/);

    // cancelled: nothing of it starts any more
    const gone = await api(d.url, 'POST', '/v1/sweeps', {...SWEEP, base: base({data: {...LATER, name: 'nowhere'}}),
      max_concurrent: 1, parameters: {'ds_config.optimizer.params.lr': [0.1]}});
    assert.equal(gone.status, 201, gone.text);
    await waitSweep(d.url, gone.json.id, (x) => x.state === 'completed');
    const busy = await api(d.url, 'POST', '/v1/sweeps', {...SWEEP, base: base({steps: 100000000}),
      parameters: {'ds_config.optimizer.params.lr': [0.1, 0.2]}});
    assert.equal(busy.status, 201, busy.text);
    await waitSweep(d.url, busy.json.id, (x) => x.trials.some((t) => t.state === 'running'));
    assert.equal((await api(d.url, 'POST', `/v1/sweeps/${busy.json.id}/cancel`)).status, 200);
    r = await api(d.url, 'POST', `/v1/sweeps/${busy.json.id}/retry`);
    assert.equal(r.status, 409, r.text);
    assert.equal(r.json.error.field, 'state');
    assert.match(r.json.error.message, /cancelled/);

    r = await api(d.url, 'POST', '/v1/sweeps/s_999999/retry');
    assert.equal(r.status, 404, r.text);
    assert.equal(r.json.error.field, 'id');
    r = await api(d.url, 'POST', `/v1/sweeps/${gone.json.id}/retry`, {now: true});
    assert.equal(r.status, 400, r.text);
    assert.equal((await api(d.url, 'GET', `/v1/sweeps/${gone.json.id}`)).json.state, 'completed');
    // the stranded one can still be retried (its data set is still missing: it fails again)
    r = await api(d.url, 'POST', `/v1/sweeps/${gone.json.id}/retry`);
    assert.equal(r.status, 200, r.text);
  });
});

test('a sweep stranded before a restart is retried after it', async () => {
  const sdir = `${dir}/restart`;
  let d = await startDaemon({dir: sdir});
  let id;
  try {
    id = (await stranded(d.url)).id;
  } finally {
    assert.equal((await d.stop()).code, 0);
  }
  d = await startDaemon({dir: sdir});
  try {
    await upload(d.url);
    const r = await api(d.url, 'POST', `/v1/sweeps/${id}/retry`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.state, 'running');
    const s = await waitSweep(d.url, id, (x) => x.state === 'completed' && x.trials.every((t) => t.state === 'completed'));
    assert.equal(s.trials_started, 3);
    assert.ok(s.trials.every((t) => t.error === null && t.step === 20), JSON.stringify(s.trials));
  } finally {
    await d.stop();
  }
});

test('a retried trial waiting for a place keeps waiting across a restart, then starts', async () => {
  // Trial 0 (the data set not uploaded) could not start; trial 1 runs on and on, holding the
  // one place: retried, trial 0 waits for it, through a restart.
  const sdir = `${dir}/pending`;
  const body = {name: 'waits', base: base({steps: 100000000, checkpoint: {every_steps: 500, keep_last: 1}}),
    metric: 'loss', max_concurrent: 1,
    parameters: {data: [LATER, {type: 'synthetic', task: 'regression', samples: 256, features: 2}]}};
  let d = await startDaemon({dir: sdir, args: ['--workers', '1']});
  let id, runner;
  try {
    const c = await api(d.url, 'POST', '/v1/sweeps', body);
    assert.equal(c.status, 201, c.text);
    id = c.json.id;
    let s = await waitSweep(d.url, id, (x) => trial(x, 0).state === 'not_started' && trial(x, 1).state === 'running');
    runner = trial(s, 1).job;
    await upload(d.url);
    const r = await api(d.url, 'POST', `/v1/sweeps/${id}/retry`);
    assert.equal(r.status, 200, r.text);
    assert.equal(trial(r.json, 0).state, 'pending');
    await new Promise((res) => setTimeout(res, 300));
    s = (await api(d.url, 'GET', `/v1/sweeps/${id}`)).json;
    assert.equal(trial(s, 0).state, 'pending', 'no place for it while trial 1 runs');
    assert.equal(trial(s, 0).job, null);
  } finally {
    assert.equal((await d.stop()).code, 0);
  }
  d = await startDaemon({dir: sdir, args: ['--workers', '1']});
  try {
    let s = (await api(d.url, 'GET', `/v1/sweeps/${id}`)).json;
    assert.equal(s.state, 'running');
    assert.equal(trial(s, 0).state, 'pending', JSON.stringify(s.trials));
    assert.match(trial(s, 0).error, /later/, 'it says why it last could not start until it starts');
    // its place frees: it starts (its error gone), and trial 1 stays as it is
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${runner}/cancel`)).status, 200);
    s = await waitSweep(d.url, id, (x) => trial(x, 0).job && trial(x, 0).state === 'running');
    assert.equal(trial(s, 0).error, null);
    assert.equal(trial(s, 1).state, 'cancelled');
    assert.equal((await api(d.url, 'POST', `/v1/sweeps/${id}/cancel`)).status, 200);
  } finally {
    await d.stop();
  }
});
