// `anneald train --save/--resume` over the features whose state a resume must carry: each job
// trained in pieces (--steps, then --resume from the saved state) must give the rows and the
// weights of the same job trained in one go, bit for bit (every column but time).
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {BIN, tmpDir} from './lib.mjs';

const dir = tmpDir('anneald-cli-resume-');
process.on('exit', () => fs.rmSync(dir, {recursive: true, force: true}));
const f = (n) => path.join(dir, n);

function ok(args) {
  const r = spawnSync(BIN, args, {encoding: 'utf8', maxBuffer: 256 << 20});
  if (r.error) throw r.error;
  assert.equal(r.status, 0, `anneald ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

// The CSV's lines without its time column.
function rows(file) {
  const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
  const ti = lines[0].split(',').indexOf('time');
  assert.ok(ti > 0, 'the CSV has a time column');
  return lines.map((l) => l.split(',').filter((_, i) => i !== ti).join(','));
}

const TEXT = 'First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n' +
  'First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n';

const JOBS = {
  'gpt fp16 that skips steps, dropout, random windows, accumulation, 2 threads': {
    seed: 3, steps: 60, threads: 2,
    model: {type: 'gpt', block_size: 8, n_layer: 2, n_head: 2, n_embd: 16, dropout: 0.1},
    loss: 'cross_entropy', data: {type: 'text', text: TEXT, sampling: 'random'},
    validation: {fraction: 0.2, every_steps: 7},
    ds_config: {train_micro_batch_size_per_gpu: 4, gradient_accumulation_steps: 2,
      optimizer: {type: 'AdamW', params: {lr: 0.003, weight_decay: 0.05}},
      scheduler: {type: 'MultiPhase', params: {phases: [
        {steps: 20, type: 'WarmupLR', params: {warmup_min_lr: 0, warmup_max_lr: 0.003, warmup_num_steps: 20}},
        {steps: 40, type: 'CosineAnnealingLR', params: {T_max: 40}}]}},
      fp16: {enabled: true, initial_scale_power: 24, loss_scale_window: 5, hysteresis: 2, consecutive_hysteresis: true},
      activation_checkpointing: {}},
  },
  'gpt bf16, byte tokens in order, Lion, OneCycleLR, clipping': {
    seed: 4, steps: 50,
    model: {type: 'gpt', block_size: 8, n_layer: 1, n_head: 2, n_embd: 16, bias: false, gelu: 'erf'},
    loss: 'cross_entropy', data: {type: 'text', text: TEXT, tokenizer: 'byte', shuffle: false},
    ds_config: {train_batch_size: 4, gradient_clipping: 0.5, bf16: {enabled: true},
      optimizer: {type: 'Lion', params: {lr: 0.001, weight_decay: 0.01}},
      scheduler: {type: 'OneCycleLR', params: {max_lr: 0.001, total_steps: 50}}},
  },
  'mlp with dropout and checkpointed activations, Lamb, ReduceLROnPlateau, param groups': {
    seed: 5, steps: 400,
    model: {type: 'mlp', inputs: 4, hidden: [16, 16], outputs: 3, activation: 'gelu', dropout: 0.2},
    loss: 'cross_entropy', data: {type: 'builtin', name: 'iris'},
    validation: {fraction: 0.2, every_steps: 10},
    param_groups: [{match: ['*.bias'], lr: 0.001, weight_decay: 0}],
    ds_config: {train_micro_batch_size_per_gpu: 4, gradient_accumulation_steps: 3,
      optimizer: {type: 'Lamb', params: {lr: 0.02, weight_decay: 0.01}},
      scheduler: {type: 'ReduceLROnPlateau', params: {patience: 0, factor: 0.5, cooldown: 1}},
      activation_checkpointing: {number_checkpoints: 1}},
  },
  'mlp of 82k parameters on 2 threads, SGD nesterov, CyclicLR cycling the momentum': {
    seed: 6, steps: 40, threads: 2,
    model: {type: 'mlp', inputs: 64, hidden: [256, 256], outputs: 10},
    loss: 'cross_entropy', data: {type: 'builtin', name: 'digits'},
    ds_config: {train_batch_size: 16,
      optimizer: {type: 'SGD', params: {lr: 0.05, momentum: 0.9, nesterov: true}},
      scheduler: {type: 'CyclicLR', params: {base_lr: 0.005, max_lr: 0.05, step_size_up: 7, mode: 'triangular2'}}},
  },
  'linear on inline rows, Adagrad with lr_decay, SequentialLR, no clipping': {
    seed: 7, steps: 90,
    model: {type: 'linear', inputs: 2, outputs: 1},
    data: {type: 'inline', x: [[0, 1], [1, 0], [1, 1], [2, 1], [0.5, -1], [-1, 2], [3, 0], [0, 0]],
      y: [[1], [2], [3], [5], [0], [0], [6], [0.1]]},
    ds_config: {train_batch_size: 3, gradient_clipping: 0,
      optimizer: {type: 'Adagrad', params: {lr: 0.1, lr_decay: 0.01, initial_accumulator_value: 0.1}},
      scheduler: {type: 'SequentialLR', params: {milestones: [30], schedulers: [
        {type: 'LinearLR', params: {start_factor: 0.2, total_iters: 30}},
        {type: 'StepLR', params: {step_size: 10, gamma: 0.7}}]}}},
  },
  'Adam (torch_adam, amsgrad) on synthetic spirals, ChainedScheduler': {
    seed: 8, steps: 120,
    model: {type: 'mlp', inputs: 2, hidden: [16], outputs: 3, activation: 'tanh'},
    loss: 'cross_entropy', data: {type: 'synthetic', task: 'classification', generator: 'spirals', samples: 300, classes: 3},
    ds_config: {train_batch_size: 16,
      optimizer: {type: 'AdamW', params: {lr: 0.01, torch_adam: true, amsgrad: true}},
      scheduler: {type: 'ChainedScheduler', params: {schedulers: [
        {type: 'ConstantLR', params: {factor: 0.5, total_iters: 3}},
        {type: 'ExponentialLR', params: {gamma: 0.99}}]}}},
  },
};

for (const [name, job] of Object.entries(JOBS)) {
  test(`train in pieces with --resume equals one run: ${name}`, () => {
    const key = Object.keys(JOBS).indexOf(name);
    const spec = f(`job${key}.json`);
    fs.writeFileSync(spec, JSON.stringify({name: `resume${key}`, ...job}));
    ok(['train', spec, '--metrics-csv', f(`whole${key}.csv`), '--weights-json', f(`whole${key}.json`)]);
    const whole = rows(f(`whole${key}.csv`));
    assert.equal(whole.length, job.steps + 1);
    // Pieces of uneven lengths, the first of one step, so a resume lands on many kinds of step.
    const csv = f(`pieces${key}.csv`), state = f(`s${key}.bin`);
    ok(['train', spec, '--steps', '1', '--save', state, '--metrics-csv', csv]);
    for (const n of [Math.ceil(job.steps / 3), 7, Math.ceil(job.steps / 4)])
      ok(['train', spec, '--resume', state, '--steps', String(n), '--save', state, '--metrics-csv', csv]);
    ok(['train', spec, '--resume', state, '--metrics-csv', csv, '--weights-json', f(`pieces${key}.json`)]);
    assert.deepEqual(rows(csv), whole);
    assert.equal(fs.readFileSync(f(`pieces${key}.json`), 'utf8'), fs.readFileSync(f(`whole${key}.json`), 'utf8'));
  });
}

test('the resume matrix reaches what it is meant to: skipped fp16 steps, a plateau\'s cut, a finder\'s stop', () => {
  // The fp16 job overflows at first (scale 2^24), so its resumes carry a scaler mid-flight.
  const fp16 = rows(f('whole0.csv'));
  const skipIdx = fp16[0].split(',').indexOf('skipped');
  assert.ok(fp16.slice(1).some((l) => l.split(',')[skipIdx] === '1'), 'some fp16 step was skipped');
  assert.ok(fp16.slice(1).some((l) => l.split(',')[skipIdx] === '0'), 'some fp16 step was taken');
  // ReduceLROnPlateau cut the lr at least once.
  const plateau = rows(f('whole2.csv')).slice(1).map((l) => l.split(',')[2]);
  assert.ok(new Set(plateau).size > 1, 'the plateau schedule changed the lr');

  // An lr finder's sweep (its watch of the smoothed loss is in the state) stops at the same step.
  const req = f('finder.json');
  fs.writeFileSync(req, JSON.stringify({job: JOBS['mlp with dropout and checkpointed activations, Lamb, ReduceLROnPlateau, param groups'],
    min_lr: 1e-5, max_lr: 100, steps: 400, stop_factor: 2}));
  const spec = f('finder-job.json');
  fs.writeFileSync(spec, ok(['lr-find', req, '--job']));
  ok(['train', spec, '--metrics-csv', f('fw.csv'), '--weights-json', f('fw.json')]);
  const whole = rows(f('fw.csv'));
  assert.ok(whole.length - 1 < 400, `the sweep stopped early (${whole.length - 1} steps)`);
  const state = f('fs.bin');
  ok(['train', spec, '--steps', String(Math.floor((whole.length - 1) / 2)), '--save', state, '--metrics-csv', f('fp.csv')]);
  ok(['train', spec, '--resume', state, '--metrics-csv', f('fp.csv'), '--weights-json', f('fp.json')]);
  assert.deepEqual(rows(f('fp.csv')), whole);
  assert.equal(fs.readFileSync(f('fp.json'), 'utf8'), fs.readFileSync(f('fw.json'), 'utf8'));
});
