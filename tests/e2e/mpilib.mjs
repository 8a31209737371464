// What the tests of multi-rank jobs run by the daemon share: whether Open MPI and the rank
// program are there, a small job at any world size with the same global batch, its result,
// and the rank processes of a daemon's job.
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {BIN, api, waitJob} from './lib.mjs';

export const RANK = path.join(path.dirname(BIN), 'anneald-rank');
const have = spawnSync('sh', ['-c', 'command -v mpirun'], {encoding: 'utf8'}).status === 0 && fs.existsSync(RANK);
export const skip = !have && 'mpirun or anneald-rank missing';

// Same global batch (train_batch_size 16) at every world size: gas = 4 / W.
export const job = (W, over = {}) => ({
  name: `w${W}`, seed: 11,
  model: {type: 'mlp', inputs: 4, hidden: [16, 8], outputs: 3, activation: 'gelu'},
  loss: 'cross_entropy', data: {type: 'builtin', name: 'iris'}, steps: 60, world_size: W, ...over,
  ds_config: {train_micro_batch_size_per_gpu: 4, gradient_accumulation_steps: 4 / W, gradient_clipping: 0.3,
    optimizer: {type: 'AdamW', params: {lr: 0.02, weight_decay: 0.01}},
    scheduler: {type: 'WarmupLR', params: {warmup_min_lr: 0, warmup_max_lr: 0.02, warmup_num_steps: 5}},
    ...(over.ds_config || {})},
});

export async function submit(url, spec) {
  const r = await api(url, 'POST', '/v1/jobs', spec);
  assert.equal(r.status, 201, r.text);
  return r.json.id;
}

// Loss, lr and grad_norm of every step (time differs from run to run) and the final weights.
export async function result(url, id) {
  const m = (await api(url, 'GET', `/v1/jobs/${id}/metrics`)).json;
  const w = (await api(url, 'GET', `/v1/jobs/${id}/weights`)).json;
  return {step: m.step, loss: m.loss, lr: m.lr, grad_norm: m.grad_norm, weights: JSON.stringify(w.tensors), wstep: w.step};
}

export async function reference(url, over = {}) {
  const id = await submit(url, job(1, over));
  await waitJob(url, id, (j) => j.state === 'completed', 60000);
  return result(url, id);
}

// The processes of a daemon's job: mpirun (a child of the daemon) and the ranks of its session.
export function ranksOf(daemonPid) {
  const ps = spawnSync('ps', ['-eo', 'pid=,ppid=,sid=,args='], {encoding: 'utf8'}).stdout.trim().split('\n')
    .map((l) => l.trim().split(/\s+/)).map(([pid, ppid, sid, ...args]) => ({pid: +pid, ppid: +ppid, sid: +sid, args: args.join(' ')}));
  const mpirun = ps.find((p) => p.ppid === daemonPid && /mpirun/.test(p.args));
  if (!mpirun) return [];
  return ps.filter((p) => p.sid === mpirun.pid && p.pid !== mpirun.pid && /anneald-rank --job/.test(p.args)).map((p) => p.pid);
}

// A run long enough to act on while it trains (several seconds at W = 2 on two cores): wider
// layers rather than more steps, so the comparisons stay 20,000 rows. With the small model the
// job ended in about a second, sometimes before a pause sent while it ran could take hold.
export const LONG = {steps: 20000, checkpoint: {every_steps: 2000, keep_last: 3},
  model: {type: 'mlp', inputs: 4, hidden: [128, 128], outputs: 3, activation: 'gelu'}};
