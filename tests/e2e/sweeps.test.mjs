// End-to-end tests of sweeps (/v1/sweeps): a random ASHA sweep on the digits MLP checked
// decision by decision against the rule and the recorded metrics, the same proposals on a
// second submission, cancel and delete, a restart in the middle, events, and bad input.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {api, heavyJob, readEvents, removeDir, startDaemon, tmpDir, waitFor, waitJob, withDaemon} from './lib.mjs';

const dir = tmpDir('anneald-sweeps-');
process.on('exit', () => removeDir(dir));
for (const sub of ['asha', 'grid', 'max', 'cancel', 'restart', 'bad', 'queue', 'rungpause', 'notstarted', 'resumed', 'cap']) fs.mkdirSync(`${dir}/${sub}`);

const DIGITS = {
  seed: 7,
  model: {type: 'mlp', inputs: 64, hidden: [32], outputs: 10},
  loss: 'cross_entropy', data: {type: 'builtin', name: 'digits'}, steps: 600,
  validation: {fraction: 0.2, every_steps: 50},
  checkpoint: {every_steps: 1000, keep_last: 2},
  ds_config: {train_batch_size: 32, optimizer: {type: 'AdamW', params: {lr: 0.001, weight_decay: 0.01}}},
};

// A regression (mse): it validates, but measures no accuracy.
const REGRESSION = {
  model: {type: 'linear', inputs: 2, outputs: 1}, data: {type: 'synthetic', task: 'regression', samples: 64, features: 2},
  steps: 10, validation: {fraction: 0.25, every_steps: 5},
  ds_config: {train_batch_size: 8, optimizer: {type: 'SGD', params: {lr: 0.1}}},
};

const ASHA_SWEEP = {
  name: 'digits-lr',
  base: DIGITS,
  parameters: {
    'ds_config.optimizer.params.lr': {log_uniform: [1e-4, 1e-1]},
    'ds_config.optimizer.params.weight_decay': [0, 0.01, 0.1],
  },
  search: 'random', trials: 12, metric: 'val_loss', mode: 'min', max_concurrent: 2,
  early_stopping: {type: 'asha', min_steps: 50, reduction_factor: 3},
};

// ASHA's rule (docs/EXPERIMENTS.md): rank among the earlier values at this rung, itself
// included, ties to the earlier ones, NaN last; goes on within ceil(count / eta).
function ashaContinues(earlier, value, eta, maximize) {
  const better = (a, b) => (Number.isNaN(b) ? !Number.isNaN(a) : !Number.isNaN(a) && (maximize ? a > b : a < b));
  let rank = 1;
  for (const e of earlier) if (!better(value, e)) rank++;
  return rank <= Math.ceil((earlier.length + 1) / eta);
}

const waitSweep = (url, id, pred, ms = 120000) => waitFor(async () => {
  const r = await api(url, 'GET', `/v1/sweeps/${id}`);
  return r.status === 200 && pred(r.json) ? r.json : null;
}, {timeoutMs: ms, intervalMs: 50, what: `sweep ${id}`});

test('a random ASHA sweep on digits stops trials exactly as the rule says, and the same sweep proposes the same trials', async () => {
  await withDaemon({dir: `${dir}/asha`, args: ['--workers', '2']}, async (d) => {
    const events = readEvents(d.url, '/v1/events', {
      until: (ev) => ev.some((e) => e.event === 'sweep' && e.data.event === 'completed'), timeoutMs: 120000,
    });
    const c = await api(d.url, 'POST', '/v1/sweeps', ASHA_SWEEP);
    assert.equal(c.status, 201, c.text);
    const id = c.json.id;
    assert.match(id, /^s_\d{6}$/);
    assert.equal(c.json.trial_count, 12);
    assert.equal(c.json.trials.length, 12);
    const proposed = new Map(c.json.trials.map((t) => [t.trial, t.params]));
    for (const p of proposed.values()) {
      const lr = p['ds_config.optimizer.params.lr'];
      assert.ok(lr >= 1e-4 && lr < 1e-1, `lr ${lr}`);
      assert.ok([0, 0.01, 0.1].includes(p['ds_config.optimizer.params.weight_decay']));
    }

    const s = await waitSweep(d.url, id, (x) => x.state === 'completed');
    assert.equal(s.trials_started, 12);
    const eta = 3, rungs = [50, 150, 450];
    // Every decision, in the order taken, against the rule and the trial's recorded metric.
    const byTrial = new Map(s.trials.map((t) => [t.trial, t]));
    const seen = new Map();
    const valOf = new Map();
    for (const t of s.trials) {
      assert.deepEqual(t.params, proposed.get(t.trial), 'the trial ran with the parameters proposed');
      const job = (await api(d.url, 'GET', `/v1/jobs/${t.job}`)).json;
      assert.equal(job.sweep, id);
      assert.equal(job.trial, t.trial);
      assert.equal(job.spec.ds_config.optimizer.params.lr, t.params['ds_config.optimizer.params.lr']);
      const m = (await api(d.url, 'GET', `/v1/jobs/${t.job}/metrics`)).json;
      valOf.set(t.trial, m);
    }
    assert.deepEqual(s.rungs.map((g) => g.seq), s.rungs.map((_, i) => i + 1));
    for (const g of s.rungs) {
      assert.ok(rungs.includes(g.step), `rung ${g.step}`);
      const m = valOf.get(g.trial);
      const k = m.val_step.lastIndexOf(g.step);
      assert.ok(k >= 0, `trial ${g.trial} validated at rung ${g.step}`);
      assert.equal(g.value, m.val_loss[k], `trial ${g.trial}'s val_loss at ${g.step}`);
      const earlier = seen.get(g.step) || [];
      assert.equal(g.continues, ashaContinues(earlier, g.value, eta, false),
                   `decision ${g.seq}: trial ${g.trial} at ${g.step} (${g.value} among ${earlier})`);
      seen.set(g.step, [...earlier, g.value]);
    }
    let stopped = 0;
    for (const t of s.trials) {
      const mine = s.rungs.filter((g) => g.trial === t.trial);
      if (t.state === 'stopped') {
        stopped++;
        const last = mine[mine.length - 1];
        assert.equal(last.continues, false);
        assert.equal(t.stopped_at, last.step);
        assert.equal(t.step, last.step, 'a stopped trial ends at its rung');
        assert.ok(mine.slice(0, -1).every((g) => g.continues));
        assert.deepEqual(mine.map((g) => g.step), rungs.slice(0, mine.length));
      } else {
        assert.equal(t.state, 'completed');
        assert.equal(t.step, 600);
        assert.equal(t.stopped_at, null);
        assert.deepEqual(mine.map((g) => g.step), rungs);
        assert.ok(mine.every((g) => g.continues));
      }
    }
    assert.ok(stopped >= 4, `${stopped} trials stopped`); // the first at each rung always goes on
    // The leaderboard: completed first, best val_loss first; best is its head.
    const done = s.trials.filter((t) => t.state === 'completed');
    const sorted = [...done].sort((a, b) => a.metric - b.metric || a.trial - b.trial);
    assert.deepEqual(s.trials.slice(0, done.length).map((t) => t.trial), sorted.map((t) => t.trial));
    assert.equal(s.best.trial, sorted[0].trial);
    assert.deepEqual(s.best.params, proposed.get(sorted[0].trial));
    const bestJob = (await api(d.url, 'GET', `/v1/jobs/${s.best.job}`)).json;
    assert.equal(s.best.metric, bestJob.val_loss);

    const ev = (await events).filter((e) => e.event === 'sweep' && e.data.id === id);
    assert.equal(ev.filter((e) => e.data.event === 'trial_started').length, 12);
    assert.equal(ev.filter((e) => e.data.event === 'trial_stopped').length, stopped);
    assert.equal(ev[ev.length - 1].data.event, 'completed');

    // A stopped trial is resumable: it continues from its rung to the end.
    const st = s.trials.find((t) => t.state === 'stopped');
    const r = await api(d.url, 'POST', `/v1/jobs/${st.job}/resume`, {});
    assert.equal(r.status, 200, r.text);
    const fin = await waitJob(d.url, st.job, (j) => j.state === 'completed' || j.state === 'stopped');
    assert.ok(fin.step > st.step, `resumed from ${st.step} to ${fin.step}`);
    assert.equal(byTrial.get(st.trial).job, st.job);

    // The same sweep again: the same trials, in the same order.
    const c2 = await api(d.url, 'POST', '/v1/sweeps', ASHA_SWEEP);
    assert.equal(c2.status, 201);
    assert.notEqual(c2.json.id, id);
    assert.deepEqual(c2.json.trials.map((t) => [t.trial, t.params]), [...proposed.entries()]);
    await waitSweep(d.url, c2.json.id, (x) => x.state === 'completed');
    const list = await api(d.url, 'GET', '/v1/sweeps');
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.sweeps.map((x) => x.id), [c2.json.id, id]);
    assert.equal(list.json.sweeps[0].trials, undefined, 'the list leaves the trials out');
  });
});

test('grid search runs every combination once, max_concurrent at a time', async () => {
  await withDaemon({dir: `${dir}/grid`, args: ['--workers', '3']}, async (d) => {
    const body = {
      name: 'grid', base: {...DIGITS, steps: 100, validation: undefined},
      parameters: {'ds_config.optimizer.params.lr': [0.001, 0.01], 'model.hidden[0]': [8, 16, 32]},
      metric: 'loss', max_concurrent: 1,
    };
    delete body.base.validation;
    // A second grid sweep runs beside it; the stream of the first carries its events only.
    const other = await api(d.url, 'POST', '/v1/sweeps', {...body, name: 'other'});
    assert.equal(other.status, 201, other.text);
    const c = await api(d.url, 'POST', '/v1/sweeps', body);
    assert.equal(c.status, 201, c.text);
    const own = readEvents(d.url, `/v1/events?job=${c.json.id}`, {timeoutMs: 120000,
      until: (ev) => ev.some((e) => e.data.event === 'completed')});
    assert.equal(c.json.search, 'grid');
    assert.equal(c.json.trial_count, 6);
    const combos = c.json.trials.sort((a, b) => a.trial - b.trial).map((t) => t.params);
    assert.deepEqual(combos, [0.001, 0.01].flatMap((lr) => [8, 16, 32].map((h) => ({
      'ds_config.optimizer.params.lr': lr, 'model.hidden[0]': h}))));
    const s = await waitSweep(d.url, c.json.id, (x) => x.state === 'completed');
    // one at a time: each trial started after the previous one finished
    const jobs = [];
    for (const t of s.trials.sort((a, b) => a.trial - b.trial)) {
      const j = (await api(d.url, 'GET', `/v1/jobs/${t.job}`)).json;
      assert.equal(j.state, 'completed');
      assert.equal(j.spec.model.hidden[0], t.params['model.hidden[0]']);
      assert.equal(j.name, `grid #${t.trial}`);
      jobs.push(j);
    }
    for (let i = 1; i < jobs.length; i++) assert.ok(jobs[i].started_at >= jobs[i - 1].finished_at);
    assert.equal(s.best.metric, Math.min(...s.trials.map((t) => t.metric)));
    // a trial's job goes with its sweep: deleted alone, the sweep would run the trial again
    const del = await api(d.url, 'DELETE', `/v1/jobs/${jobs[0].id}`);
    assert.equal(del.status, 409, del.text);
    assert.match(del.json.error.message, new RegExp(`is trial 0 of sweep ${c.json.id}: delete the sweep`));
    assert.equal((await api(d.url, 'GET', `/v1/jobs/${jobs[0].id}`)).status, 200);
    const evs = await own;
    // The first trial may have started (even ended) before the stream opened.
    assert.deepEqual([...new Set(evs.map((e) => `${e.event} ${e.data.id}`))], [`sweep ${c.json.id}`]);
    assert.ok(evs.filter((e) => e.data.event === 'trial_started').length >= 5);
    assert.ok(evs.filter((e) => e.data.event === 'trial_ended').length >= 5);
    assert.equal(evs.at(-1).data.event, 'completed');
    for (const [q, status] of [['', 400], ['s_999999', 404], ['j_999999', 404], ['x'.repeat(100), 404]]) {
      const r = await api(d.url, 'GET', `/v1/events?job=${q}`);
      assert.equal(r.status, status, `job=${q}: ${r.text}`);
      assert.equal(r.json.error.field, 'job');
    }
  });
});

test('a metric to maximise (val_acc, mode max by default) ranks the largest first', async () => {
  await withDaemon({dir: `${dir}/max`, args: ['--workers', '2']}, async (d) => {
    const c = await api(d.url, 'POST', '/v1/sweeps', {
      name: 'acc', base: {...DIGITS, steps: 100}, metric: 'val_acc',
      parameters: {'ds_config.optimizer.params.lr': [0.0001, 0.003, 0.03]},
    });
    assert.equal(c.status, 201, c.text);
    assert.equal(c.json.mode, 'max');
    const s = await waitSweep(d.url, c.json.id, (x) => x.state === 'completed');
    const acc = s.trials.map((t) => t.metric);
    assert.deepEqual(acc, [...acc].sort((a, b) => b - a));
    assert.ok(acc[0] > acc[2], `${acc}`);
    assert.equal(s.best.metric, Math.max(...acc));
  });
});

test('cancel stops the running trial and starts no more; delete removes the sweep and its jobs', async () => {
  await withDaemon({dir: `${dir}/cancel`, args: ['--workers', '2']}, async (d) => {
    const c = await api(d.url, 'POST', '/v1/sweeps', {
      name: 'long', base: heavyJob(), max_concurrent: 1, metric: 'loss',
      parameters: {'ds_config.optimizer.params.lr': [0.001, 0.002, 0.003]},
    });
    assert.equal(c.status, 201, c.text);
    const id = c.json.id;
    const s = await waitSweep(d.url, id, (x) => x.trials.some((t) => t.state === 'running'));
    const running = s.trials.find((t) => t.state === 'running');
    assert.equal(s.trials.filter((t) => t.job).length, 1, 'one trial at a time');
    const del = await api(d.url, 'DELETE', `/v1/sweeps/${id}`);
    assert.equal(del.status, 409, 'a running sweep cannot be deleted');
    assert.match(del.json.error.message, /cancel it first/);
    const x = await api(d.url, 'POST', `/v1/sweeps/${id}/cancel`, {});
    assert.equal(x.status, 200, x.text);
    assert.equal(x.json.state, 'cancelled');
    await waitJob(d.url, running.job, (j) => j.state === 'cancelled');
    const after = await waitSweep(d.url, id, (y) => y.trials.every((t) => t.state !== 'running'));
    assert.equal(after.trials.filter((t) => t.job).length, 1, 'no trial started after the cancel');
    // the trials it never started say they never will
    assert.deepEqual(after.trials.filter((t) => !t.job).map((t) => t.state), ['cancelled', 'cancelled']);
    assert.equal((await api(d.url, 'POST', `/v1/sweeps/${id}/cancel`, {})).status, 409);
    // Streams of the trial and of the sweep end with `deleted`, as a deleted job's do.
    const gone = (evs) => evs.some((e) => e.event === 'deleted');
    // both subscribed (their heads came) before the delete, rather than a fixed sleep
    let opened = 0, bothOpen;
    const open = new Promise((r) => { bothOpen = r; });
    const onOpen = () => { if (++opened === 2) bothOpen(); };
    const trialStream = readEvents(d.url, `/v1/jobs/${running.job}/events`, {until: gone, timeoutMs: 8000, onOpen});
    const sweepStream = readEvents(d.url, `/v1/events?job=${id}`, {until: gone, timeoutMs: 8000, onOpen});
    await open;
    const rm = await api(d.url, 'DELETE', `/v1/sweeps/${id}`);
    assert.equal(rm.status, 204);
    const [te, se] = await Promise.all([trialStream, sweepStream]);
    assert.ok(te.some((e) => e.event === 'deleted' && e.data.id === running.job), JSON.stringify(te.map((e) => e.event)));
    assert.ok(se.some((e) => e.event === 'deleted' && e.data.id === id), JSON.stringify(se.map((e) => e.event)));
    assert.equal((await api(d.url, 'GET', `/v1/sweeps/${id}`)).status, 404);
    assert.equal((await api(d.url, 'GET', `/v1/jobs/${running.job}`)).status, 404);
    assert.equal((await api(d.url, 'DELETE', `/v1/sweeps/${id}`)).status, 404);
  });
});

test('trials are jobs: while --max-queued jobs wait, the next trial stays pending', async () => {
  await withDaemon({dir: `${dir}/queue`, args: ['--workers', '1', '--max-queued', '1']}, async (d) => {
    const busy = await api(d.url, 'POST', '/v1/jobs', heavyJob());
    await waitJob(d.url, busy.json.id, (j) => j.state === 'running');
    const waiting = await api(d.url, 'POST', '/v1/jobs', heavyJob());
    assert.equal(waiting.status, 201, waiting.text);
    assert.equal((await api(d.url, 'POST', '/v1/jobs', heavyJob())).status, 503, 'the queue is full');
    const c = await api(d.url, 'POST', '/v1/sweeps', {
      name: 'q', base: heavyJob(), max_concurrent: 3, metric: 'loss',
      parameters: {seed: [1, 2, 3]},
    });
    assert.equal(c.status, 201, c.text);
    await new Promise((r) => setTimeout(r, 1000)); // pumps come and go: none may queue a trial
    let s = (await api(d.url, 'GET', `/v1/sweeps/${c.json.id}`)).json;
    assert.deepEqual(s.trials.map((t) => t.state), ['pending', 'pending', 'pending']);
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.total, 2);
    // room for one: one trial is queued, the others wait
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${waiting.json.id}/cancel`, {})).status, 200);
    s = await waitSweep(d.url, c.json.id, (x) => x.trials.some((t) => t.job));
    await new Promise((r) => setTimeout(r, 500));
    s = (await api(d.url, 'GET', `/v1/sweeps/${c.json.id}`)).json;
    assert.equal(s.trials.filter((t) => t.job).length, 1, JSON.stringify(s.trials));
    assert.equal((await api(d.url, 'POST', `/v1/sweeps/${c.json.id}/cancel`, {})).status, 200);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${busy.json.id}/cancel`, {})).status, 200);
  });
});

test('a sweep goes on after a restart where it was', async () => {
  const sdir = `${dir}/restart`;
  const body = {
    name: 'across', base: heavyJob({steps: 1500, checkpoint: {every_steps: 500, keep_last: 2}}),
    max_concurrent: 1, metric: 'loss', parameters: {'ds_config.optimizer.params.lr': [0.001, 0.002, 0.003]},
  };
  let id;
  let d = await startDaemon({dir: sdir, args: ['--workers', '1']});
  try {
    const c = await api(d.url, 'POST', '/v1/sweeps', body);
    assert.equal(c.status, 201, c.text);
    id = c.json.id;
    await waitSweep(d.url, id, (x) => x.trials.some((t) => t.state === 'running'));
  } finally {
    const ex = await d.stop();
    assert.equal(ex.code, 0);
  }
  d = await startDaemon({dir: sdir, args: ['--workers', '1']});
  try {
    const s = await waitSweep(d.url, id, (x) => x.state === 'completed');
    assert.equal(s.trials_started, 3);
    assert.ok(s.trials.every((t) => t.state === 'completed' && t.step === 1500), JSON.stringify(s.trials));
  } finally {
    await d.stop();
  }
});

test('a trial that could not start still says why after a restart', async () => {
  const sdir = `${dir}/notstarted`;
  const body = {
    name: 'nodata', base: {...DIGITS, validation: undefined, data: {type: 'dataset', name: 'nowhere', target: 'y'}},
    metric: 'loss', parameters: {'ds_config.optimizer.params.lr': [0.001, 0.002]},
  };
  delete body.base.validation;
  let d = await startDaemon({dir: sdir});
  let before;
  try {
    const c = await api(d.url, 'POST', '/v1/sweeps', body);
    assert.equal(c.status, 201, c.text);
    before = await waitSweep(d.url, c.json.id, (x) => x.state === 'completed');
    assert.deepEqual(before.trials.map((t) => t.state), ['not_started', 'not_started']);
    assert.match(before.trials[0].error, /^data\.name: .*nowhere/);
  } finally {
    assert.equal((await d.stop()).code, 0);
  }
  d = await startDaemon({dir: sdir});
  try {
    const s = (await api(d.url, 'GET', `/v1/sweeps/${before.id}`)).json;
    assert.equal(s.state, 'completed');
    assert.deepEqual(s.trials.map((t) => [t.trial, t.state, t.job, t.error]),
                     before.trials.map((t) => [t.trial, 'not_started', null, t.error]));
    assert.equal(s.trials_started, 0);
  } finally {
    await d.stop();
  }
});

test('a stopped trial resumed after a restart meets its later rungs; resumed to its end it is not stopped_at; the reopened sweep says running', async () => {
  // Rungs at 50 and 100 (η 2) of 200 steps, one trial at a time: trial 0 (a working lr) is
  // the first at each rung and goes on; trial 1 (an lr that hardly moves the loss) is behind
  // it at 50 and stopped there.
  const sdir = `${dir}/resumed`;
  const body = {
    name: 'resumed', base: {...DIGITS, steps: 200}, metric: 'loss', max_concurrent: 1,
    parameters: {'ds_config.optimizer.params.lr': [0.01, 1e-7]},
    early_stopping: {type: 'asha', min_steps: 50, reduction_factor: 2},
  };
  let d = await startDaemon({dir: sdir});
  let id, job;
  try {
    const c = await api(d.url, 'POST', '/v1/sweeps', body);
    assert.equal(c.status, 201, c.text);
    id = c.json.id;
    const s = await waitSweep(d.url, id, (x) => x.state === 'completed');
    const t1 = s.trials.find((t) => t.trial === 1);
    assert.equal(t1.state, 'stopped', JSON.stringify(s.trials));
    assert.equal(t1.stopped_at, 50);
    job = t1.job;
  } finally {
    assert.equal((await d.stop()).code, 0);
  }
  d = await startDaemon({dir: sdir});
  try {
    let opened;
    const open = new Promise((res) => { opened = res; });
    const events = readEvents(d.url, `/v1/events?job=${id}`, {timeoutMs: 60000, onOpen: opened,
      until: (ev) => ev.filter((e) => e.data.event === 'completed').length === 2});
    events.catch(() => {});
    await Promise.race([open, events]);
    // resumed after the restart: judged at rung 100 (behind trial 0 again), stopped there
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${job}/resume`)).status, 200);
    let s = await waitSweep(d.url, id, (x) => x.state === 'completed' &&
      x.trials.find((t) => t.trial === 1).state === 'stopped' && x.rungs.some((g) => g.trial === 1 && g.step === 100));
    let t1 = s.trials.find((t) => t.trial === 1);
    assert.equal(t1.step, 100);
    assert.equal(t1.stopped_at, 100);
    assert.deepEqual(s.rungs.filter((g) => g.trial === 1).map((g) => [g.step, g.continues]), [[50, false], [100, false]]);
    // resumed again: no rung is left, it completes, and is stopped at none
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${job}/resume`)).status, 200);
    s = await waitSweep(d.url, id, (x) => x.state === 'completed' && x.trials.find((t) => t.trial === 1).state === 'completed');
    t1 = s.trials.find((t) => t.trial === 1);
    assert.equal(t1.step, 200);
    assert.equal(t1.stopped_at, null);
    const ev = (await events).map((e) => `${e.data.event} ${e.data.trial ?? '-'} ${e.data.state}`);
    assert.deepEqual(ev, [
      'running - running', 'trial_resumed 1 running', 'trial_stopped 1 running', 'completed - completed',
      'running - running', 'trial_resumed 1 running', 'trial_ended 1 running', 'completed - completed',
    ]);
  } finally {
    await d.stop();
  }
});

test('a paused trial resumed holds max_concurrent; a pause and a failed job say so in the events', async () => {
  await withDaemon({dir: `${dir}/cap`, args: ['--workers', '2']}, async (d) => {
    const c = await api(d.url, 'POST', '/v1/sweeps', {
      name: 'cap', base: heavyJob(), max_concurrent: 1, metric: 'loss',
      parameters: {'ds_config.optimizer.params.lr': [0.001, 0.002]},
    });
    assert.equal(c.status, 201, c.text);
    const id = c.json.id;
    // the sweep says `cancelled` before its running trial's job is cancelled, which then ends it
    const events = readEvents(d.url, `/v1/events?job=${id}`, {timeoutMs: 60000,
      until: (ev) => ev.some((e, i) => e.data.event === 'trial_ended' && e.data.trial === 0 &&
                                       ev.slice(0, i).some((c) => c.data.event === 'cancelled'))});
    events.catch(() => {}); // a failed assertion stops the daemon under it: that one is the report
    let s = await waitSweep(d.url, id, (x) => x.trials[0].state === 'running' || x.trials[1].state === 'running');
    const first = s.trials.find((t) => t.state === 'running');
    assert.equal(first.trial, 0);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${first.job}/pause`)).status, 200);
    // its place went to trial 1: resuming trial 0 now would run two at once
    s = await waitSweep(d.url, id, (x) => x.trials.some((t) => t.trial === 1 && t.state === 'running'));
    const second = s.trials.find((t) => t.trial === 1);
    const r = await api(d.url, 'POST', `/v1/jobs/${first.job}/resume`);
    assert.equal(r.status, 409, r.text);
    assert.equal(r.json.error.field, 'state');
    assert.match(r.json.error.message, new RegExp(`trial 0 of sweep ${id}.*max_concurrent`));
    assert.equal((await api(d.url, 'GET', `/v1/jobs/${first.job}`)).json.state, 'paused');
    // once trial 1 ends, the place is free
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${second.job}/cancel`)).status, 200);
    await waitSweep(d.url, id, (x) => x.state === 'completed');
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${first.job}/resume`)).status, 200);
    s = await waitSweep(d.url, id, (x) => x.state === 'running' && x.trials.find((t) => t.trial === 0).state === 'running');
    assert.equal((await api(d.url, 'POST', `/v1/sweeps/${id}/cancel`)).status, 200);
    const ev = (await events).map((e) => `${e.data.event} ${e.data.trial ?? '-'}`);
    // (trial 0 may have started before the stream opened)
    assert.deepEqual(ev.slice(ev.indexOf('trial_paused 0')), ['trial_paused 0', 'trial_started 1', 'trial_ended 1',
      'completed -', 'running -', 'trial_resumed 0', 'cancelled -', 'trial_ended 0']);

    // a trial whose job fails (its loss diverges) is trial_failed, not trial_ended
    let feOpened;
    const feOpen = new Promise((res) => { feOpened = res; });
    const fe = readEvents(d.url, '/v1/events', {timeoutMs: 30000, onOpen: feOpened,
      until: (evs) => evs.some((e) => e.event === 'sweep' && e.data.id !== id && e.data.event === 'completed')});
    await Promise.race([feOpen, fe]);
    const f = await api(d.url, 'POST', '/v1/sweeps', {
      name: 'diverges', base: {...DIGITS, steps: 100, validation: undefined}, metric: 'loss',
      parameters: {'ds_config.optimizer.params.lr': [1e30]},
    });
    assert.equal(f.status, 201, f.text);
    const fs2 = await waitSweep(d.url, f.json.id, (x) => x.state === 'completed');
    assert.equal(fs2.trials[0].state, 'failed');
    const fev = (await fe).filter((e) => e.event === 'sweep' && e.data.id === f.json.id).map((e) => e.data.event);
    assert.deepEqual(fev, ['trial_started', 'trial_failed', 'completed']);
  });
});

test('a trial paused between its last validation and a rung is judged at the rung by that validation', async () => {
  // Validations at 1000 and 2000, the rung at 1500. The test hook holds the trial at step
  // 1200 (its name starts "hang-once-at-1200") until it is paused; the resumed run goes on
  // past it, and its rung must still see the validation of step 1000 (it used to see none).
  const base = {...DIGITS, steps: 2000, validation: {fraction: 0.1, every_steps: 1000}};
  const body = {name: 'hang-once-at-1200', base, parameters: {'ds_config.optimizer.params.lr': [0.001]},
    search: 'grid', metric: 'val_loss', mode: 'min', max_concurrent: 1,
    early_stopping: {type: 'asha', min_steps: 1500, reduction_factor: 3}};
  await withDaemon({dir: `${dir}/rungpause`, args: ['--workers', '1'], env: {ANNEALD_FAULT: 'hang'}}, async (d) => {
    const c = await api(d.url, 'POST', '/v1/sweeps', body);
    assert.equal(c.status, 201, c.text);
    const running = await waitSweep(d.url, c.json.id, (x) => x.trials[0].job);
    const job = running.trials[0].job;
    // The shown step lags the hold, so a pause may land a little before 1200: the resumed
    // run is then held at 1200 again, and paused again.
    let paused;
    for (let tries = 0; tries < 20; tries++) {
      await waitJob(d.url, job, (j) => j.state === 'running' && j.step > 1100);
      await new Promise((res) => setTimeout(res, 100));
      const p = await api(d.url, 'POST', `/v1/jobs/${job}/pause`);
      assert.equal(p.status, 200, p.text);
      paused = await waitJob(d.url, job, (j) => j.state === 'paused');
      assert.ok(paused.last_checkpoint_step > 1000 && paused.last_checkpoint_step <= 1200, JSON.stringify(paused));
      assert.equal((await api(d.url, 'POST', `/v1/jobs/${job}/resume`)).status, 200);
      if (paused.last_checkpoint_step === 1200)
        break;
    }
    assert.equal(paused.last_checkpoint_step, 1200);
    // (a sweep whose only trial is paused reads completed until the resume is recorded)
    const s = await waitSweep(d.url, c.json.id, (x) => x.state === 'completed' && x.trials[0].state === 'completed');
    const m = await api(d.url, 'GET', `/v1/jobs/${job}/metrics?from=1000&to=1000`);
    assert.deepEqual(m.json.val_step, [1000]);
    assert.equal(s.rungs.length, 1, JSON.stringify(s.rungs));
    assert.equal(s.rungs[0].step, 1500);
    assert.equal(s.rungs[0].value, m.json.val_loss[0], 'the rung\'s value is the validation of step 1000');
    assert.equal(s.trials[0].state, 'completed');
    assert.equal(s.trials[0].step, 2000);
  });
});

test('bad sweeps are refused naming the field, and nothing is stored', async () => {
  await withDaemon({dir: `${dir}/bad`, args: ['--max-body-json', '65536']}, async (d) => {
    const good = {base: {...DIGITS}, parameters: {'ds_config.optimizer.params.lr': [0.01, 0.1]}, metric: 'loss'};
    const cases = [
      ['{"base": ', 'body'],
      [{parameters: good.parameters}, 'base'],
      [{base: good.base}, 'parameters'],
      [{...good, base: {...DIGITS, model: {type: 'mlp', inputs: 64, hidden: [-1], outputs: 10}}}, 'base.model.hidden[0]'],
      [{...good, parameters: {'ds_config.optimizer.params.nope': [1, 2]}}, 'parameters.ds_config.optimizer.params.nope'],
      [{...good, parameters: {'ds_config.optimizer.params.lr': {log_uniform: [0, 1]}}}, 'parameters.ds_config.optimizer.params.lr.log_uniform'],
      [{...good, parameters: {'ds_config.optimizer.params.lr': {uniform: [0.2, 0.1]}}, search: 'random'}, 'parameters.ds_config.optimizer.params.lr.uniform'],
      [{...good, trials: 'many'}, 'trials'],
      [{...good, search: 'random', trials: 0}, 'trials'],
      [{...good, max_concurrent: 0}, 'max_concurrent'],
      [{...good, metric: 'accuracy'}, 'metric'],
      [{...good, metric: 'val_loss', base: {...DIGITS, validation: undefined}}, 'metric'],
      [{...good, early_stopping: {type: 'asha'}}, 'early_stopping.min_steps'],
      [{...good, early_stopping: {type: 'hyperband', min_steps: 10}}, 'early_stopping.type'],
      [{...good, colour: 'red'}, 'colour'],
      // a uniform draw on a setting that takes integers: refused now, not in every trial
      [{...good, parameters: {'model.hidden[0]': {uniform: [4, 16]}}, search: 'random'}, 'parameters.model.hidden[0]'],
      // a name its trials' names ("NAME #k") would carry past a job name's 127 bytes
      [{...good, name: 'n'.repeat(122)}, 'name'],
      // paths where one holds the other: a trial would set the value twice; the second named
      [{...good, parameters: {'ds_config.optimizer.params.lr': [0.01], 'ds_config.optimizer.params': [{lr: 0.1}]}},
       'parameters.ds_config.optimizer.params'],
      [{...good, parameters: {'model.hidden': [[8]], 'model.hidden[0]': [16]}}, 'parameters.model.hidden[0]'],
      // val_acc of a job that measures no accuracy (a regression) could never rank a trial
      [{...good, base: REGRESSION, metric: 'val_acc'}, 'metric'],
    ];
    for (const [body, field] of cases) {
      const b = typeof body === 'object' && body.base && body.base.validation === undefined
        ? {...body, base: Object.fromEntries(Object.entries(body.base).filter(([, v]) => v !== undefined))} : body;
      const r = typeof b === 'string'
        ? await api(d.url, 'POST', '/v1/sweeps', b, {'Content-Type': 'application/json'})
        : await api(d.url, 'POST', '/v1/sweeps', b);
      assert.equal(r.status, 400, `${field}: ${r.text}`);
      assert.equal(r.json.error.field, field, r.text);
      assert.ok(r.json.error.message.length > 10);
    }
    const big = {...good, name: 'x'.repeat(70000)};
    assert.equal((await api(d.url, 'POST', '/v1/sweeps', big)).status, 413);
    assert.equal((await api(d.url, 'POST', '/v1/sweeps', 'x=1', {'Content-Type': 'text/plain'})).status, 415);
    assert.equal((await api(d.url, 'GET', '/v1/sweeps/s_999999')).status, 404);
    assert.equal((await api(d.url, 'POST', '/v1/sweeps/s_999999/cancel', {})).status, 404);
    assert.equal((await api(d.url, 'DELETE', '/v1/sweeps/nope')).status, 404);
    const list = await api(d.url, 'GET', '/v1/sweeps');
    assert.deepEqual(list.json, {sweeps: [], total: 0});
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.total, 0);
  });
});
