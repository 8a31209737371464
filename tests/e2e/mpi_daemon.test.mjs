// End-to-end tests of jobs of several ranks run by the daemon itself (jobs/rankrun.c): a
// world_size 2 job submitted over HTTP runs under mpirun to `completed` with metrics and
// weights identical to the same job at world_size 1; a paused and resumed job, a job whose
// rank is killed with SIGKILL and one whose rank is stopped with SIGSTOP (the stall watchdog)
// all finish identical to an uninterrupted run; the job object shows world_size and each
// rank's step time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, api, withDaemon, waitJob, waitFor, sleep } from './lib.mjs';

const RANK = path.join(path.dirname(BIN), 'anneald-rank');
const have = spawnSync('sh', ['-c', 'command -v mpirun'], {encoding: 'utf8'}).status === 0 && fs.existsSync(RANK);
const skip = !have && 'mpirun or anneald-rank missing';

// Same global batch (train_batch_size 16) at every world size: gas = 4 / W.
const job = (W, over = {}) => ({
  name: `w${W}`, seed: 11,
  model: {type: 'mlp', inputs: 4, hidden: [16, 8], outputs: 3, activation: 'gelu'},
  loss: 'cross_entropy', data: {type: 'builtin', name: 'iris'}, steps: 60, world_size: W, ...over,
  ds_config: {train_micro_batch_size_per_gpu: 4, gradient_accumulation_steps: 4 / W, gradient_clipping: 0.3,
    optimizer: {type: 'AdamW', params: {lr: 0.02, weight_decay: 0.01}},
    scheduler: {type: 'WarmupLR', params: {warmup_min_lr: 0, warmup_max_lr: 0.02, warmup_num_steps: 5}},
    ...(over.ds_config || {})},
});

async function submit(url, spec) {
  const r = await api(url, 'POST', '/v1/jobs', spec);
  assert.equal(r.status, 201, r.text);
  return r.json.id;
}

// Loss, lr and grad_norm of every step (time differs from run to run) and the final weights.
async function result(url, id) {
  const m = (await api(url, 'GET', `/v1/jobs/${id}/metrics`)).json;
  const w = (await api(url, 'GET', `/v1/jobs/${id}/weights`)).json;
  return {step: m.step, loss: m.loss, lr: m.lr, grad_norm: m.grad_norm, weights: JSON.stringify(w.tensors), wstep: w.step};
}

async function reference(url, over = {}) {
  const id = await submit(url, job(1, over));
  await waitJob(url, id, (j) => j.state === 'completed', 60000);
  return result(url, id);
}

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
