// Faults of jobs of several ranks (jobs/rankrun.c): what a user sees when a rank dies for
// good, hangs while the job is cancelled or the daemon stops, when the job fails mid-run, or
// meets its metrics.max_bytes — in each case what the same job does at world_size 1, or what
// docs/API.md promises for several ranks.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {api, startDaemon, waitFor, waitJob, withDaemon, tmpDir, removeDir} from './lib.mjs';
import {LONG, job, ranksOf, skip, submit} from './mpilib.mjs';

const twoRanks = (d) => waitFor(() => { const p = ranksOf(d.proc.pid); return p.length === 2 && p; },
  {what: 'two ranks'});

test('a rank that dies with no restarts left fails the job saying a rank died', {skip}, async () => {
  await withDaemon({}, async (d) => {
    const id = await submit(d.url, job(2, {...LONG, max_restarts: 0}));
    await waitJob(d.url, id, (x) => x.state === 'running' && x.step > 0, 60000);
    process.kill((await twoRanks(d))[1], 'SIGKILL');
    const j = await waitJob(d.url, id, (x) => x.state === 'failed', 60000);
    assert.match(j.error, /a rank died/);
    assert.match(j.error, /max_restarts 0/);
    assert.doesNotMatch(j.error, /stall/);
    // mpirun's own words on one line, without Open MPI's rules of dashes
    assert.doesNotMatch(j.error, /---/);
    assert.doesNotMatch(j.error, /  /);
    // the log tells it once, as a warning, and does not promise a restart there is not
    assert.match(d.stderr(), /no restart left \(max_restarts\): it fails/);
    assert.equal((d.stderr().match(new RegExp(`job ${id} failed`, 'g')) || []).length, 1, d.stderr());
  });
});

test('a loss that is not finite on rank 1 fails the job at once with the one-process message', {skip}, async () => {
  await withDaemon({}, async (d) => {
    const spec = (W) => ({seed: 1, model: {type: 'linear', inputs: 2, outputs: 1, init: {'fc.weight': [[1, 1]], 'fc.bias': [0]}},
      loss: 'mse', data: {type: 'inline', x: [[1, 1], [2, 1], [3e38, 3e38], [1, 2]], y: [[1], [2], [3], [4]], shuffle: false},
      steps: 3, world_size: W, ds_config: {train_batch_size: 4, train_micro_batch_size_per_gpu: 2, gradient_clipping: 0,
        optimizer: {type: 'SGD', params: {lr: 0.0001}}}});
    const one = await waitJob(d.url, await submit(d.url, spec(1)), (x) => x.state === 'failed', 30000);
    const two = await waitJob(d.url, await submit(d.url, spec(2)), (x) => x.state === 'failed', 60000);
    assert.match(one.error, /loss is Inf at step 1 \(micro-batch 2 of 2\)/);
    assert.equal(two.error, one.error);
    assert.equal(two.restarts || 0, 0, 'not taken for a rank that died');
  });
});

test('cancel of a job whose rank hangs ends it at once, not after a stop timeout', {skip}, async () => {
  await withDaemon({}, async (d) => {
    const id = await submit(d.url, job(2, {...LONG, stall_timeout_s: 600}));
    await waitJob(d.url, id, (x) => x.state === 'running' && x.step > 0, 60000);
    const pids = await twoRanks(d);
    process.kill(pids[0], 'SIGSTOP');
    const c = await api(d.url, 'POST', `/v1/jobs/${id}/cancel`);
    assert.equal(c.status, 200, c.text);
    assert.equal(c.json.state, 'cancelled');
    // The ranks' stop timeout was 120 s; a cancel wants no checkpoint and waits for nothing.
    // The daemon's own time (Server-Timing: the cancel's wait for the run included) is held
    // to 30 s; the client's, which also counts this process, to half the 120 s it must not wait.
    assert.ok(c.serverMs < 30000, `the daemon answered the cancel after ${c.serverMs} ms`);
    assert.ok(c.clientMs < 60000, `cancel answered after ${c.clientMs.toFixed(0)} ms (the daemon's ${c.serverMs} ms)`);
    console.log(`# cancel answered: the daemon's ${c.serverMs} ms, the client's ${c.clientMs.toFixed(1)} ms`);
    await waitFor(() => ranksOf(d.proc.pid).length === 0, {what: 'the ranks to be ended'});
  });
});

test('SIGTERM while a rank hangs: the daemon exits 0 within the unit\'s stop timeout, the job resumes', {skip}, async () => {
  const dir = tmpDir();
  try {
    const d = await startDaemon({dir});
    const id = await submit(d.url, job(2, {...LONG, stall_timeout_s: 600}));
    await waitJob(d.url, id, (x) => x.state === 'running' && x.last_checkpoint_step >= 2000, 60000);
    process.kill((await twoRanks(d))[0], 'SIGSTOP');
    const t0 = Date.now();
    d.proc.kill('SIGTERM');
    const timer = new Promise((r) => setTimeout(() => r(null), 30000));
    const ex = await Promise.race([d.exited, timer]);
    if (!ex) await d.kill9();
    assert.ok(ex, 'the daemon did not exit within 30 s (systemd would SIGKILL it)');
    assert.equal(ex.code, 0, d.stderr().slice(-2000));
    console.log(`# exited ${Date.now() - t0} ms after SIGTERM`);
    await withDaemon({dir}, async (d2) => {
      const j = await waitJob(d2.url, id, (x) => x.state === 'running' && x.step > 0, 60000);
      assert.ok(j.step >= 2000, `resumed from its checkpoint: ${JSON.stringify(j)}`);
      assert.equal((await api(d2.url, 'POST', `/v1/jobs/${id}/cancel`)).status, 200);
    });
  } finally {
    removeDir(dir);
  }
});

// The loss turns NaN at step 4 (an lr of 1e30 without clipping): the job fails there, and keeps
// the rows of the steps before, as at world_size 1.
test('a job of two ranks that fails keeps its rows up to the failing step, as at world_size 1', {skip}, async () => {
  await withDaemon({}, async (d) => {
    const over = {ds_config: {gradient_clipping: 0, optimizer: {type: 'SGD', params: {lr: 1e30}},
      scheduler: {type: 'WarmupLR', params: {warmup_min_lr: 1e30, warmup_max_lr: 1e30, warmup_num_steps: 1}}}};
    const out = [];
    for (const W of [1, 2]) {
      const id = await submit(d.url, job(W, over));
      const j = await waitJob(d.url, id, (x) => x.state === 'failed', 60000);
      const m = (await api(d.url, 'GET', `/v1/jobs/${id}/metrics`)).json;
      out.push({step: j.step, rows: m.step, loss: m.loss});
      assert.match(j.error, new RegExp(`^loss is NaN at step ${j.step + 1} `)); // micro-batches differ
    }
    assert.ok(out[0].rows.length > 0, JSON.stringify(out[0]));
    assert.deepEqual(out[1], out[0]);
  });
});

test('metrics.max_bytes pauses a job of two ranks at the step one rank pauses at', {skip}, async () => {
  await withDaemon({}, async (d) => {
    const over = {...LONG, metrics: {max_bytes: 100000}};
    const out = [];
    for (const W of [1, 2]) {
      const id = await submit(d.url, job(W, over));
      const j = await waitJob(d.url, id, (x) => x.state === 'paused', 90000);
      const rows = (await api(d.url, 'GET', `/v1/jobs/${id}/metrics?format=csv`)).text.trim().split('\n').length - 1;
      out.push({step: j.step, ckpt: j.last_checkpoint_step, rows, error: j.error});
    }
    assert.equal(out[0].step, Math.floor(100000 / 48)); // 48 bytes a row with one lr group
    assert.deepEqual(out[1], out[0]);
  });
});
