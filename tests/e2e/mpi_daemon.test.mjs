// End-to-end tests of jobs of several ranks run by the daemon itself (jobs/rankrun.c): a
// world_size 2 job submitted over HTTP runs under mpirun to `completed` with metrics and
// weights identical to the same job at world_size 1; a paused and resumed job, a job whose
// rank is killed with SIGKILL and one whose rank is stopped with SIGSTOP (the stall watchdog)
// all finish identical to an uninterrupted run; the job object shows world_size and each
// rank's step time. A small gpt at world_size 2 equals world_size 1 too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { api, withDaemon, startDaemon, waitJob, waitFor, tmpDir, removeDir } from './lib.mjs';
import {LONG, job, ranksOf, reference, result, skip, submit} from './mpilib.mjs';

test('a world_size 2 job runs under mpirun to completed, identical to world_size 1', {skip}, async () => {
  await withDaemon({}, async (d) => {
    const ref = await reference(d.url);
    assert.equal(ref.step.length, 60);
    const id = await submit(d.url, job(2));
    const j = await waitJob(d.url, id, (x) => x.state === 'completed', 90000);
    assert.equal(j.world_size, 2);
    assert.equal(j.step, 60);
    assert.equal(j.last_checkpoint_step, 60);
    assert.equal(j.rank_step_ms, null); // only while it runs
    assert.deepEqual(await result(d.url, id), ref);
    // ...and a different seed differs: the comparison can fail
    const other = await submit(d.url, job(2, {seed: 12}));
    await waitJob(d.url, other, (x) => x.state === 'completed', 90000);
    assert.notDeepEqual((await result(d.url, other)).loss, ref.loss);
    assert.match(d.log(), /job j_\d+: started \S*mpirun -np 2/);
    if (process.getuid && process.getuid() === 0) assert.match(d.log(), /OMPI_ALLOW_RUN_AS_ROOT=1/);
  });
});

// every_steps 1 over 4000 steps of a job that trains thousands of steps a second: the ranks'
// checkpoints are spaced by the token bucket of a one-process job (at most 10 at once, then
// one per 20 ms), not one a step; the job still finishes identical and checkpointed.
test('a world_size 2 job\'s checkpoints are spaced as a one-process job\'s', {skip}, async () => {
  await withDaemon({}, async (d) => {
    const count = async () => Number(/^anneald_checkpoints_total (\d+)$/m.exec(
      await (await fetch(`${d.url}/metrics`)).text())[1]);
    const over = {steps: 4000, checkpoint: {every_steps: 1, keep_last: 2}};
    const ref = await reference(d.url, over);
    const before = await count();
    const id = await submit(d.url, job(2, over));
    const t0 = Date.now();
    const j = await waitJob(d.url, id, (x) => x.state === 'completed', 90000);
    const secs = (Date.now() - t0) / 1000;
    const made = (await count()) - before;
    assert.equal(j.last_checkpoint_step, 4000);
    assert.deepEqual(await result(d.url, id), ref);
    // the bucket allows 10 plus one per 20 ms of the run (and the final one)
    assert.ok(made <= 12 + secs / 0.02, `${made} checkpoints in ${secs} s`);
    assert.ok(made < 4000, `${made} checkpoints: one a step`);
    // each checkpoint's loss is its step's metric, to the bit (both printed exactly)
    const m = (await api(d.url, 'GET', `/v1/jobs/${id}/metrics`)).json;
    const cks = (await api(d.url, 'GET', `/v1/jobs/${id}/checkpoints`)).json.checkpoints;
    assert.ok(cks.length >= 1);
    for (const c of cks) assert.equal(c.loss, m.loss[m.step.indexOf(c.step)], `checkpoint at step ${c.step}`);
  });
});

// An LR finder's sweep ends itself where the loss diverges, before its total: at world_size 2
// it ends there too, completed, with the steps of world_size 1.
test('an LR finder sweep of two ranks ends at its divergence as one of one rank does', {skip}, async () => {
  await withDaemon({}, async (d) => {
    const iris = (W) => ({name: `finder-w${W}`, seed: 3, steps: 500, world_size: W,
      model: {type: 'mlp', inputs: 4, hidden: [16], outputs: 3}, loss: 'cross_entropy',
      data: {type: 'builtin', name: 'iris'},
      ds_config: {train_batch_size: 16, train_micro_batch_size_per_gpu: 8,
        optimizer: {type: 'AdamW', params: {lr: 0.001}}}});
    const ends = [];
    for (const W of [1, 2]) {
      const c = await api(d.url, 'POST', '/v1/lr_finder', {job: iris(W), steps: 200});
      assert.equal(c.status, 201, c.text);
      const j = await waitJob(d.url, c.json.id, (x) => x.state === 'completed' || x.state === 'failed', 90000);
      assert.equal(j.state, 'completed', JSON.stringify(j));
      ends.push(j.step);
    }
    assert.ok(ends[0] < 200, `the sweep diverged before its end (step ${ends[0]})`);
    assert.equal(ends[1], ends[0]);
  });
});

test('pause and resume of a world_size 2 job: bit for bit; the running job shows each rank\'s step time', {skip}, async () => {
  await withDaemon({}, async (d) => {
    const ref = await reference(d.url, LONG);
    const id = await submit(d.url, job(2, LONG));
    const run = await waitJob(d.url, id, (x) => x.state === 'running' && Array.isArray(x.rank_step_ms) && x.step > 0, 60000);
    assert.equal(run.world_size, 2);
    assert.equal(run.rank_step_ms.length, 2);
    for (const ms of run.rank_step_ms) assert.ok(ms > 0, JSON.stringify(run.rank_step_ms));
    const prom = (await api(d.url, 'GET', '/metrics')).text;
    assert.match(prom, new RegExp(`anneald_job_world_size\\{job="${id}"\\} 2`));
    assert.match(prom, new RegExp(`anneald_job_rank_step_ms\\{job="${id}",rank="1"\\} [\\d.e+-]+`));
    const p = await api(d.url, 'POST', `/v1/jobs/${id}/pause`);
    assert.ok(p.status === 200 || p.status === 202, p.text);
    const paused = await waitJob(d.url, id, (x) => x.state === 'paused', 60000);
    assert.ok(paused.step > 0 && paused.step < 20000, `paused at ${paused.step}`);
    assert.equal(paused.last_checkpoint_step, paused.step); // the pause checkpointed
    await waitFor(() => ranksOf(d.proc.pid).length === 0, {what: 'the ranks to exit'});
    const r = await api(d.url, 'POST', `/v1/jobs/${id}/resume`);
    assert.ok(r.status === 200 || r.status === 202, r.text);
    await waitJob(d.url, id, (x) => x.state === 'completed', 90000);
    assert.deepEqual(await result(d.url, id), ref);
    // a cancel ends the ranks without a checkpoint
    const c = await submit(d.url, job(2, LONG));
    await waitJob(d.url, c, (x) => x.state === 'running' && x.step > 0, 60000);
    await api(d.url, 'POST', `/v1/jobs/${c}/cancel`);
    await waitJob(d.url, c, (x) => x.state === 'cancelled', 60000);
    await waitFor(() => ranksOf(d.proc.pid).length === 0, {what: 'the ranks to exit'});
  });
});

test('kill -9 of one rank: the job goes back to the queue and finishes identical to an uninterrupted run', {skip}, async () => {
  await withDaemon({}, async (d) => {
    const ref = await reference(d.url, LONG);
    const id = await submit(d.url, job(2, LONG));
    await waitJob(d.url, id, (x) => x.state === 'running' && x.last_checkpoint_step >= 2000, 60000);
    const pids = await waitFor(() => { const p = ranksOf(d.proc.pid); return p.length === 2 && p; }, {what: 'two ranks'});
    process.kill(pids[1], 'SIGKILL');
    // The store says completed a moment before the manager lets go of the run that finished,
    // whose restart count the job shows until then.
    const j = await waitJob(d.url, id, (x) => x.state === 'completed' && x.restarts === 0, 120000);
    assert.equal(j.restarts, 0); // the run that finished is a new one; its count is in the log
    assert.match(d.log(), new RegExp(`job ${id}: a rank died .*back to the queue`));
    assert.match(d.log(), new RegExp(`job ${id} queued for restart 1`));
    assert.deepEqual(await result(d.url, id), ref);
  });
});

test('SIGSTOP of one rank: the stall watchdog ends the ranks and the job restarts from its checkpoint', {skip}, async () => {
  await withDaemon({}, async (d) => {
    const ref = await reference(d.url, LONG);
    const id = await submit(d.url, job(2, {...LONG, stall_timeout_s: 1.5, max_restarts: 2}));
    await waitJob(d.url, id, (x) => x.state === 'running' && x.last_checkpoint_step >= 2000, 60000);
    const pids = await waitFor(() => { const p = ranksOf(d.proc.pid); return p.length === 2 && p; }, {what: 'two ranks'});
    process.kill(pids[0], 'SIGSTOP');
    await waitFor(() => /made no step for/.test(d.log()), {timeoutMs: 30000, what: 'the watchdog'});
    await waitFor(() => { const p = ranksOf(d.proc.pid); return !p.includes(pids[0]); }, {what: 'the stopped rank to be ended'});
    await waitJob(d.url, id, (x) => x.state === 'completed', 120000);
    assert.match(d.log(), new RegExp(`job ${id} queued for restart 1 of 2`));
    assert.deepEqual(await result(d.url, id), ref);
  });
});

test('SIGTERM of the daemon: the ranks checkpoint and exit, the job resumes at the next start and finishes identical', {skip}, async () => {
  const dir = tmpDir();
  try {
    let ref;
    await withDaemon({dir}, async (d) => { ref = await reference(d.url, LONG); });
    const d = await startDaemon({dir});
    const id = await submit(d.url, job(2, LONG));
    await waitJob(d.url, id, (x) => x.state === 'running' && x.step > 0, 60000);
    const pids = await waitFor(() => { const p = ranksOf(d.proc.pid); return p.length === 2 && p; }, {what: 'two ranks'});
    const ex = await d.stop();
    assert.equal(ex.code, 0, d.stderr().slice(-3000));
    // Gone, or a zombie waiting only to be reaped by its new parent: dead either way.
    const dead = (pid) => {
      try { process.kill(pid, 0); } catch (e) { return e.code === 'ESRCH'; }
      try { return / Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').pop().slice(0, 3)); } catch { return true; }
    };
    for (const pid of pids) assert.ok(dead(pid), `rank ${pid} outlived the daemon`);
    await withDaemon({dir}, async (d2) => {
      const q = (await api(d2.url, 'GET', `/v1/jobs/${id}`)).json;
      assert.ok(q.last_checkpoint_step > 0, JSON.stringify(q)); // checkpointed at the stop
      await waitJob(d2.url, id, (x) => x.state === 'completed', 120000);
      assert.deepEqual(await result(d2.url, id), ref);
    });
  } finally {
    removeDir(dir);
  }
});

test('world_size 4 on two cores (oversubscribed) equals world_size 1', {skip}, async () => {
  await withDaemon({}, async (d) => {
    const ref = await reference(d.url, {steps: 200});
    const id = await submit(d.url, job(4, {steps: 200, ds_config: {zero_optimization: {stage: 1}}}));
    const j = await waitJob(d.url, id, (x) => x.state === 'completed', 120000);
    assert.equal(j.world_size, 4);
    assert.deepEqual(await result(d.url, id), ref);
  });
});

test('a gpt job at world_size 2 runs under mpirun to completed, identical to world_size 1', {skip}, async () => {
  // 2 layers, 32 wide, dropout; the same global batch of 4 micro-batches (gas = 4 / W)
  const gpt = (W, seed = 5) => ({
    name: `gpt${W}`, seed, world_size: W, steps: 30,
    model: {type: 'gpt', block_size: 16, n_layer: 2, n_head: 2, n_embd: 32, dropout: 0.1},
    data: {type: 'builtin', name: 'tinyshakespeare'}, validation: {fraction: 0.1, every_steps: 10},
    checkpoint: {every_steps: 10},
    ds_config: {train_micro_batch_size_per_gpu: 2, gradient_accumulation_steps: 4 / W, gradient_clipping: 0.5,
      optimizer: {type: 'AdamW', params: {lr: 0.003, weight_decay: 0.1}}}});
  await withDaemon({}, async (d) => {
    const one = await submit(d.url, gpt(1));
    await waitJob(d.url, one, (x) => x.state === 'completed', 90000);
    const ref = await result(d.url, one);
    assert.equal(ref.step.length, 30);
    const two = await submit(d.url, gpt(2));
    const j = await waitJob(d.url, two, (x) => x.state === 'completed', 120000);
    assert.equal(j.world_size, 2);
    assert.equal(j.step, 30);
    assert.match(d.log(), new RegExp(`job ${two}: started \\S*mpirun -np 2`));
    assert.deepEqual(await result(d.url, two), ref);
    const other = await submit(d.url, gpt(2, 6));
    await waitJob(d.url, other, (x) => x.state === 'completed', 120000);
    assert.notDeepEqual((await result(d.url, other)).loss, ref.loss);
  });
});

// fp16 at world_size 2: rank 0 sends each step's loss scale and overflow with its row, so the
// job's loss-scale events (metrics "fp16", the CSV's loss_scale and skipped) are the ones the
// same job records at world_size 1 — also across a pause and resume, whose first step records
// an event only when its scale changed. (Rank 0 sent none of them once: the metrics of a fp16
// job of several ranks had no fp16 member at all.)
test('a fp16 gpt job at world_size 2 records the loss-scale events of world_size 1, across a pause too', {skip}, async () => {
  const fp16 = (W, steps) => ({
    name: `fp16-${W}`, seed: 7, world_size: W, steps,
    model: {type: 'gpt', block_size: 8, n_layer: 2, n_head: 2, n_embd: 16},
    data: {type: 'text', text: 'to be or not to be, that is the question: whether tis nobler in the mind to suffer'},
    checkpoint: {every_steps: 500},
    ds_config: {train_micro_batch_size_per_gpu: 2, gradient_accumulation_steps: 4 / W, gradient_clipping: 1.0,
      optimizer: {type: 'AdamW', params: {lr: 0.003, weight_decay: 0.1}},
      fp16: {enabled: true, initial_scale_power: 24, loss_scale_window: 4}}});
  const fp16Of = async (url, id) => {
    const m = (await api(url, 'GET', `/v1/jobs/${id}/metrics`)).json;
    const csv = (await api(url, 'GET', `/v1/jobs/${id}/metrics?format=csv`)).text.trimEnd().split('\n');
    return {fp16: m.fp16, loss: m.loss, csvHead: csv[0],
            csv: csv.slice(1).map((l) => l.split(',').slice(-2).join(','))};
  };
  await withDaemon({}, async (d) => {
    const one = await submit(d.url, fp16(1, 60));
    await waitJob(d.url, one, (x) => x.state === 'completed', 90000);
    const ref = await fp16Of(d.url, one);
    assert.ok(ref.fp16 && ref.fp16.skipped.length >= 2, JSON.stringify(ref.fp16));
    assert.match(ref.csvHead, /,loss_scale,skipped$/);
    const two = await submit(d.url, fp16(2, 60));
    await waitJob(d.url, two, (x) => x.state === 'completed', 120000);
    assert.deepEqual(await fp16Of(d.url, two), ref);

    // Paused and resumed while it trains: the same events as the run that never stopped.
    const LONGER = 16000; // several seconds at W = 2: the pause lands while it trains
    const lone = await submit(d.url, fp16(1, LONGER));
    await waitJob(d.url, lone, (x) => x.state === 'completed', 120000);
    const lref = await fp16Of(d.url, lone);
    const id = await submit(d.url, fp16(2, LONGER));
    await waitJob(d.url, id, (x) => x.state === 'running' && x.step > 0, 60000);
    await api(d.url, 'POST', `/v1/jobs/${id}/pause`);
    const paused = await waitJob(d.url, id, (x) => x.state === 'paused', 60000);
    assert.ok(paused.step > 0 && paused.step < LONGER, `paused at ${paused.step}`);
    await waitFor(() => ranksOf(d.proc.pid).length === 0, {what: 'the ranks to exit'});
    await api(d.url, 'POST', `/v1/jobs/${id}/resume`);
    await waitJob(d.url, id, (x) => x.state === 'completed', 120000);
    assert.deepEqual(await fp16Of(d.url, id), lref);
  });
});

test('max_runtime_s holds for a job of several ranks: checkpointed, then failed with max_runtime', {skip}, async () => {
  await withDaemon({}, async (d) => {
    const id = await submit(d.url, job(2, {steps: 2000000, max_runtime_s: 1.5}));
    const j = await waitJob(d.url, id, (x) => x.state === 'failed', 60000).catch(async () => (await api(d.url, 'GET', `/v1/jobs/${id}`)).json);
    assert.equal(j.state, 'failed', JSON.stringify(j));
    assert.match(j.error, /^max_runtime: the job trained for [\d.]+ s in total, its max_runtime_s is 1\.5/);
    assert.ok(j.last_checkpoint_step > 0 && j.last_checkpoint_step === j.step, JSON.stringify(j));
    await waitFor(() => ranksOf(d.proc.pid).length === 0, {what: 'the ranks to exit'});
  });
});

test('resume_from at world_size 2 starts from the other job\'s weights, as at world_size 1', {skip}, async () => {
  await withDaemon({}, async (d) => {
    const base = await submit(d.url, job(1, {steps: 40}));
    await waitJob(d.url, base, (x) => x.state === 'completed', 60000);
    const over = {steps: 30, resume_from: {job: base}, ds_config: {optimizer: {type: 'SGD', params: {lr: 0.05, momentum: 0.9}}}};
    const one = await submit(d.url, job(1, over));
    await waitJob(d.url, one, (x) => x.state === 'completed', 60000);
    const two = await submit(d.url, job(2, over));
    await waitJob(d.url, two, (x) => x.state === 'completed', 90000);
    const a = await result(d.url, one), b = await result(d.url, two);
    assert.deepEqual(b, a);
    // not the weights a fresh start gives
    const fresh = await submit(d.url, job(2, {...over, resume_from: undefined}));
    await waitJob(d.url, fresh, (x) => x.state === 'completed', 90000);
    assert.notDeepEqual((await result(d.url, fresh)).loss, a.loss);
  });
});
