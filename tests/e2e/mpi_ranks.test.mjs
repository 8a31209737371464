// End-to-end tests of the rank program (build/anneald-rank, built with mpicc) under Open MPI on
// this machine: W = 1, 2 and 4 ranks give the weights and losses of the one-process trainer
// bit for bit; a checkpoint saved at one world size resumes at another and finishes
// identical; a rank killed with SIGKILL ends the whole run (non-zero exit, no weights), and a
// rerun from the last checkpoint finishes identical to the uninterrupted run; ZeRO stage 1
// slices the optimizer state and changes none of that. A small gpt (with dropout) gives the
// same bits at W = 1, 2 and 4 too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {spawn, spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, SANITIZED, tmpDir, removeDir, writeFile, sleep } from './lib.mjs';

const RANK = path.join(path.dirname(BIN), 'anneald-rank');
const have = spawnSync('sh', ['-c', 'command -v mpirun'], {encoding: 'utf8'}).status === 0 && fs.existsSync(RANK);
// Open MPI refuses root without these (tests and `make run` run as root in CI)
const ENV = {...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1',
  // Open MPI's hwloc run-time component can crash a starting orted while it shares the
  // topology through shared memory; nothing here binds processes, so it is left out.
  OMPI_MCA_rtc: '^hwloc'};
// Under `make check` the sanitized rank program's leak check skips what Open MPI keeps until
// exit (full stacks, so the suppressions can see its libraries behind the first frame).
if (SANITIZED) {
  ENV.ASAN_OPTIONS = `${process.env.ASAN_OPTIONS || ''}:fast_unwind_on_malloc=0`;
  ENV.LSAN_OPTIONS = `suppressions=${path.resolve('tests/e2e/lsan-openmpi.supp')}:fast_unwind_on_malloc=0`;
}
const MCA = ['--mca', 'btl', 'self,vader', '--oversubscribe'];

// Same global batch (train_batch_size 16) at every world size: gas = 4 / W.
const spec = (W, over = {}) => JSON.stringify({
  seed: 11, model: {type: 'mlp', inputs: 4, hidden: [16, 8], outputs: 3, activation: 'gelu'},
  loss: 'cross_entropy', data: {type: 'builtin', name: 'iris'}, steps: 24, world_size: W, ...over,
  ds_config: {train_micro_batch_size_per_gpu: 4, gradient_accumulation_steps: 4 / W, gradient_clipping: 0.3,
    optimizer: {type: 'AdamW', params: {lr: 0.02, weight_decay: 0.01}},
    scheduler: {type: 'WarmupLR', params: {warmup_min_lr: 0, warmup_max_lr: 0.02, warmup_num_steps: 5}}},
});

function ranks(W, dir, file, args) {
  const r = spawnSync('mpirun', ['-np', String(W), ...MCA, RANK, path.join(dir, file), ...args],
    {env: ENV, encoding: 'utf8', timeout: 120000});
  assert.equal(r.status, 0, `mpirun -np ${W}: ${r.stderr}`);
  return r;
}
const read = (dir, f) => fs.readFileSync(path.join(dir, f), 'utf8');
const tensors = (dir, f) => JSON.stringify(JSON.parse(read(dir, f)).tensors);

test('W = 1, 2, 4 ranks: weights and losses bit-identical to the one-process trainer', {skip: !have && 'mpirun or anneald-rank missing'}, () => {
  const dir = tmpDir();
  try {
    for (const W of [1, 2, 4]) {
      writeFile(dir, `w${W}.json`, spec(W));
      const r = ranks(W, dir, `w${W}.json`, ['--weights-json', `${dir}/w${W}.out`, '--metrics-csv', `${dir}/m${W}.csv`]);
      // every rank's step time, computing and exchanging, reported by rank 0
      const per = [...r.stderr.matchAll(/rank (\d+): ([\d.]+) ms per step computing, ([\d.]+) ms exchanging/g)];
      assert.deepEqual(per.map((m) => Number(m[1])), W > 1 ? [...Array(W).keys()] : [], r.stderr);
      for (const m of per) assert.ok(Number(m[2]) + Number(m[3]) > 0, m[0]);
    }
    const t = spawnSync(BIN, ['train', `${dir}/w1.json`, '--weights-json', `${dir}/t.out`], {encoding: 'utf8'});
    assert.equal(t.status, 0, t.stderr);
    const ref = tensors(dir, 't.out');
    // the whole document is anneald train's (input_stats included), not only the tensors
    assert.deepEqual(Object.keys(JSON.parse(read(dir, 'w2.out'))).sort(), Object.keys(JSON.parse(read(dir, 't.out'))).sort());
    for (const W of [1, 2, 4]) {
      assert.equal(tensors(dir, `w${W}.out`), ref, `weights at W=${W}`);
      assert.equal(read(dir, `m${W}.csv`), read(dir, 'm1.csv'), `losses at W=${W}`);
    }
    assert.equal(read(dir, 'm1.csv').trim().split('\n').length, 25);
    // a different global batch gives different weights: the comparison can fail
    writeFile(dir, 'other.json', spec(2, {seed: 12}));
    ranks(2, dir, 'other.json', ['--weights-json', `${dir}/o.out`]);
    assert.notEqual(tensors(dir, 'o.out'), ref);
  } finally {
    removeDir(dir);
  }
});

test('a checkpoint of W = 2 resumes at W = 1 and one of W = 1 at W = 4, bit for bit', {skip: !have && 'mpirun or anneald-rank missing'}, () => {
  const dir = tmpDir();
  try {
    for (const W of [1, 2, 4]) writeFile(dir, `w${W}.json`, spec(W));
    ranks(1, dir, 'w1.json', ['--weights-json', `${dir}/full.out`]);
    ranks(2, dir, 'w2.json', ['--steps', '10', '--save', `${dir}/c2.blob`]);
    ranks(1, dir, 'w1.json', ['--resume', `${dir}/c2.blob`, '--weights-json', `${dir}/r1.out`]);
    assert.equal(tensors(dir, 'r1.out'), tensors(dir, 'full.out'));
    ranks(1, dir, 'w1.json', ['--steps', '7', '--save', `${dir}/c1.blob`]);
    ranks(4, dir, 'w4.json', ['--resume', `${dir}/c1.blob`, '--weights-json', `${dir}/r4.out`]);
    assert.equal(tensors(dir, 'r4.out'), tensors(dir, 'full.out'));
    // the step count of the resumed run continues from the checkpoint
    assert.equal(JSON.parse(read(dir, 'r4.out')).step, 24);
    // An output that cannot be written fails the run, saying why (the files are written by
    // util_write_atomic, whose whole-or-nothing replacement cli_errors.test.mjs checks).
    const run = (args) => spawnSync('mpirun', ['-np', '1', ...MCA, RANK, path.join(dir, 'w1.json'), ...args],
      {env: ENV, encoding: 'utf8', timeout: 120000});
    const noDir = run(['--weights-json', `${dir}/none/w.out`]);
    assert.notEqual(noDir.status, 0);
    assert.match(noDir.stderr, /--weights-json \S+: No such file or directory/);
    const full = run(['--save', '/dev/full']);
    assert.notEqual(full.status, 0);
    assert.match(full.stderr, /--save \/dev\/full: No space left on device/);
  } finally {
    removeDir(dir);
  }
});

test('one state file for train and the ranks: each resumes the other\'s, bit for bit, and refuses another spec\'s', {skip: !have && 'mpirun or anneald-rank missing'}, () => {
  const dir = tmpDir();
  const train = (args) => spawnSync(BIN, ['train', ...args], {encoding: 'utf8'});
  try {
    writeFile(dir, 'w1.json', spec(1));
    writeFile(dir, 'w2.json', spec(2));
    writeFile(dir, 'lr.json', spec(2).replace('"lr":0.02', '"lr":0.03'));
    const full = train([`${dir}/w1.json`, '--weights-json', `${dir}/full.out`]);
    assert.equal(full.status, 0, full.stderr);
    // the ranks save, anneald train goes on (its spec says world_size 1, the same global batch)
    ranks(2, dir, 'w2.json', ['--steps', '9', '--save', `${dir}/r.bin`]);
    const t = train([`${dir}/w1.json`, '--resume', `${dir}/r.bin`, '--weights-json', `${dir}/t.out`]);
    assert.equal(t.status, 0, t.stderr);
    assert.equal(tensors(dir, 't.out'), tensors(dir, 'full.out'));
    // anneald train saves, the ranks go on
    assert.equal(train([`${dir}/w1.json`, '--steps', '13', '--save', `${dir}/t.bin`]).status, 0);
    ranks(2, dir, 'w2.json', ['--resume', `${dir}/t.bin`, '--weights-json', `${dir}/r.out`]);
    assert.equal(tensors(dir, 'r.out'), tensors(dir, 'full.out'));
    // a state saved by another spec is refused on both sides, naming what differs
    const other = train([`${dir}/lr.json`, '--resume', `${dir}/r.bin`]);
    assert.equal(other.status, 1);
    assert.match(other.stderr, /saved by another job spec: ds_config\.optimizer\.params\.lr is 0\.03 here, 0\.02 in the saved state/);
    const r = spawnSync('mpirun', ['-np', '2', ...MCA, RANK, path.join(dir, 'lr.json'), '--resume', `${dir}/t.bin`],
      {env: ENV, encoding: 'utf8', timeout: 120000});
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--resume \S+t\.bin: the state was saved by another job spec: ds_config\.optimizer\.params\.lr/);
  } finally {
    removeDir(dir);
  }
});

// ZeRO stage 1: each rank keeps the optimizer state of its slice of the parameters only. The
// weights, the losses and the checkpoint (consolidated on rank 0) are those of stage 0 and of
// one process bit for bit; a stage-1 checkpoint resumes at W = 1 and a W = 1 one at stage 1.
const zero = (W, over = {}) => {
  const o = JSON.parse(spec(W, over));
  o.ds_config.zero_optimization = {stage: 1};
  return JSON.stringify(o);
};
const slices = (stderr) => [...stderr.matchAll(/anneald-rank (\d+): ZeRO stage 1: optimizer state (\d+) of (\d+) bytes/g)]
  .map((m) => ({rank: Number(m[1]), mine: Number(m[2]), total: Number(m[3])}));

test('ZeRO stage 1 at W = 2, 4: the optimizer state sliced, weights, losses and checkpoints bit-identical', {skip: !have && 'mpirun or anneald-rank missing'}, () => {
  const dir = tmpDir();
  try {
    writeFile(dir, 'w1.json', spec(1));
    ranks(1, dir, 'w1.json', ['--weights-json', `${dir}/w1.out`, '--metrics-csv', `${dir}/m1.csv`, '--save', `${dir}/c1.blob`]);
    for (const W of [2, 4]) {
      writeFile(dir, `z${W}.json`, zero(W));
      const r = ranks(W, dir, `z${W}.json`, ['--weights-json', `${dir}/z${W}.out`, '--metrics-csv', `${dir}/zm${W}.csv`,
        '--save', `${dir}/z${W}.blob`]);
      const s = slices(r.stderr);
      assert.equal(s.length, W, r.stderr);
      const total = s[0].total;
      assert.ok(total > 0);
      // every rank holds about 1/W of the state, and the slices add up to all of it
      for (const x of s) assert.ok(x.mine <= Math.ceil(total / W) + 64 && x.mine < total, JSON.stringify(x));
      assert.ok(Math.abs(s.reduce((a, x) => a + x.mine, 0) - total) <= 64 * W, JSON.stringify(s));
      assert.equal(tensors(dir, `z${W}.out`), tensors(dir, 'w1.out'), `weights at W=${W}`);
      assert.equal(read(dir, `zm${W}.csv`), read(dir, 'm1.csv'), `losses at W=${W}`);
      assert.ok(fs.readFileSync(path.join(dir, `z${W}.blob`)).equals(fs.readFileSync(path.join(dir, 'c1.blob'))),
        `the checkpoint of W=${W} at stage 1 is the one-process checkpoint`);
    }
    // resumes across: stage 1 at W = 4 → W = 1, and W = 1 → stage 1 at W = 2
    ranks(4, dir, 'z4.json', ['--steps', '9', '--save', `${dir}/h4.blob`]);
    ranks(1, dir, 'w1.json', ['--resume', `${dir}/h4.blob`, '--weights-json', `${dir}/r1.out`]);
    assert.equal(tensors(dir, 'r1.out'), tensors(dir, 'w1.out'));
    ranks(1, dir, 'w1.json', ['--steps', '7', '--save', `${dir}/h1.blob`]);
    ranks(2, dir, 'z2.json', ['--resume', `${dir}/h1.blob`, '--weights-json', `${dir}/r2.out`]);
    assert.equal(tensors(dir, 'r2.out'), tensors(dir, 'w1.out'));
    // Lamb (a norm over whole tensors) runs unsharded, says so, and still matches
    const lamb = (W, stage) => {
      const o = JSON.parse(spec(W));
      o.ds_config.optimizer = {type: 'Lamb', params: {lr: 0.01}};
      if (stage) o.ds_config.zero_optimization = {stage};
      return JSON.stringify(o);
    };
    writeFile(dir, 'l1.json', lamb(1, 0));
    writeFile(dir, 'l2.json', lamb(2, 1));
    ranks(1, dir, 'l1.json', ['--weights-json', `${dir}/l1.out`]);
    const r = ranks(2, dir, 'l2.json', ['--weights-json', `${dir}/l2.out`]);
    assert.match(r.stderr, /Lamb runs unsharded \(stage 0\)/);
    assert.equal(slices(r.stderr).length, 0);
    assert.equal(tensors(dir, 'l2.out'), tensors(dir, 'l1.out'));
  } finally {
    removeDir(dir);
  }
});

// A small gpt (2 layers, 32 wide, dropout, tinyshakespeare): the same global batch of 4
// micro-batches at every world size (gas = 4 / W). Each rank trains its micro-batches with
// their global index, so data and dropout masks are those of one process; the gradients are
// summed in the same tree; the losses and weights are those of `anneald train` bit for bit.
const gspec = (W, over = {}) => JSON.stringify({
  seed: 5, model: {type: 'gpt', block_size: 16, n_layer: 2, n_head: 2, n_embd: 32, dropout: 0.1},
  data: {type: 'builtin', name: 'tinyshakespeare'}, steps: 30, world_size: W,
  validation: {fraction: 0.1, every_steps: 10}, ...over,
  ds_config: {train_micro_batch_size_per_gpu: 2, gradient_accumulation_steps: 4 / W, gradient_clipping: 0.5,
    optimizer: {type: 'AdamW', params: {lr: 0.003, weight_decay: 0.1}}, ...(over.ds_config || {})},
});

test('gpt at W = 1, 2, 4 ranks: weights and losses bit-identical to the one-process trainer; resumes across W', {skip: !have && 'mpirun or anneald-rank missing'}, () => {
  const dir = tmpDir();
  try {
    for (const W of [1, 2, 4]) {
      writeFile(dir, `g${W}.json`, gspec(W));
      ranks(W, dir, `g${W}.json`, ['--weights-json', `${dir}/g${W}.out`, '--metrics-csv', `${dir}/gm${W}.csv`]);
    }
    const t = spawnSync(BIN, ['train', `${dir}/g1.json`, '--weights-json', `${dir}/gt.out`], {encoding: 'utf8'});
    assert.equal(t.status, 0, t.stderr);
    const ref = tensors(dir, 'gt.out');
    assert.ok(JSON.parse(ref).some((x) => x.name.includes('attn')), 'the weights are a gpt\'s');
    for (const W of [1, 2, 4]) {
      assert.equal(tensors(dir, `g${W}.out`), ref, `gpt weights at W=${W}`);
      assert.equal(read(dir, `gm${W}.csv`), read(dir, 'gm1.csv'), `gpt losses at W=${W}`);
    }
    const rows = read(dir, 'gm1.csv').trim().split('\n');
    assert.equal(rows.length, 31);
    // the losses are those of a model that learns (a byte-level model starts near ln 65)
    assert.ok(Number(rows[30].split(',')[1]) < Number(rows[1].split(',')[1]), rows.join('\n'));
    // a checkpoint of W = 2 resumes at W = 1 to the same end
    ranks(2, dir, 'g2.json', ['--steps', '12', '--save', `${dir}/gc2.blob`]);
    ranks(1, dir, 'g1.json', ['--resume', `${dir}/gc2.blob`, '--weights-json', `${dir}/gr1.out`]);
    assert.equal(tensors(dir, 'gr1.out'), ref);
    // ZeRO stage 1 asked for: a gpt keeps the whole optimizer state on every rank, says so,
    // and the result is unchanged
    writeFile(dir, 'gz2.json', gspec(2, {ds_config: {zero_optimization: {stage: 1}}}));
    const z = ranks(2, dir, 'gz2.json', ['--weights-json', `${dir}/gz2.out`]);
    assert.match(z.stderr, /a gpt model keeps its whole optimizer state on every rank/);
    assert.equal(tensors(dir, 'gz2.out'), ref);
    // fp16: the metrics file has the loss scale and skipped flag of every step, the same at
    // W = 1 and 2 and the same as `anneald train` writes
    const fp16 = {ds_config: {fp16: {enabled: true, initial_scale_power: 24, loss_scale_window: 4}}};
    for (const W of [1, 2]) {
      writeFile(dir, `gf${W}.json`, gspec(W, fp16));
      ranks(W, dir, `gf${W}.json`, ['--metrics-csv', `${dir}/gfm${W}.csv`]);
    }
    const f1 = read(dir, 'gfm1.csv').trim().split('\n');
    assert.equal(f1[0], 'step,loss,lr0,grad_norm,val_loss,val_acc,loss_scale,skipped');
    assert.equal(read(dir, 'gfm2.csv'), read(dir, 'gfm1.csv'));
    const tf = spawnSync(BIN, ['train', `${dir}/gf1.json`, '--metrics-csv', `${dir}/gft.csv`], {encoding: 'utf8'});
    assert.equal(tf.status, 0, tf.stderr);
    const tail = (rows) => rows.slice(1).map((l) => l.split(',').slice(-2).map(Number).join(','));
    const ft = read(dir, 'gft.csv').trim().split('\n');
    assert.match(ft[0], /,loss_scale,skipped$/);
    assert.equal(f1[0], ft[0].replace(',time', '')); // anneald train's columns but time
    // and its rows, as text: every number in the same shortest exact form
    const at = ft[0].split(',').indexOf('time');
    assert.deepEqual(f1, ft.map((l) => l.split(',').filter((_, k) => k !== at).join(',')));
    assert.ok(f1.some((l) => l.split(',')[4] !== ''), 'some step validated');
    assert.deepEqual(tail(f1), tail(ft));
    assert.ok(f1.some((l) => l.endsWith(',1')), 'some step overflowed and was skipped');
    assert.ok(f1.some((l) => l.endsWith(',0')), 'some step was not');
    // another seed differs: the comparison can fail
    writeFile(dir, 'go.json', gspec(2, {seed: 6}));
    ranks(2, dir, 'go.json', ['--weights-json', `${dir}/go.out`]);
    assert.notEqual(tensors(dir, 'go.out'), ref);
  } finally {
    removeDir(dir);
  }
});

test('kill -9 of one rank ends the run; a rerun from the checkpoint finishes identical', {skip: !have && 'mpirun or anneald-rank missing'}, async () => {
  const dir = tmpDir();
  try {
    // long enough to be killed in the middle
    const long = (W) => spec(W, {steps: 400000, model: {type: 'mlp', inputs: 4, hidden: [64, 64], outputs: 3, activation: 'gelu'}});
    writeFile(dir, 'l1.json', long(1));
    writeFile(dir, 'l2.json', long(2));
    ranks(2, dir, 'l2.json', ['--steps', '5', '--save', `${dir}/c.blob`]);
    const p = spawn('mpirun', ['-np', '2', ...MCA, RANK, `${dir}/l2.json`, '--resume', `${dir}/c.blob`,
      '--weights-json', `${dir}/never.out`], {env: ENV, stdio: ['ignore', 'ignore', 'pipe']});
    const exited = new Promise((res) => p.on('exit', (code, sig) => res({code, sig})));
    // find a rank process (a child of mpirun running anneald-rank) and kill it
    let victim = null;
    for (let i = 0; i < 200 && !victim; i++) {
      await sleep(50);
      const ps = spawnSync('pgrep', ['-P', String(p.pid), '-f', 'anneald-rank'], {encoding: 'utf8'});
      victim = ps.stdout.trim().split('\n').filter(Boolean)[0] || null;
    }
    assert.ok(victim, 'no rank process found');
    await sleep(300);
    process.kill(Number(victim), 'SIGKILL');
    const ex = await Promise.race([exited, sleep(20000).then(() => null)]);
    if (!ex) p.kill('SIGKILL');
    assert.ok(ex, 'mpirun did not end after a rank was killed');
    assert.notEqual(ex.code, 0);
    assert.equal(fs.existsSync(path.join(dir, 'never.out')), false);
    // the rerun from the checkpoint (at W = 1 this time, a few steps) equals the run without
    // the interruption
    ranks(1, dir, 'l1.json', ['--resume', `${dir}/c.blob`, '--steps', '6', '--weights-json', `${dir}/a.out`]);
    ranks(2, dir, 'l2.json', ['--steps', '11', '--weights-json', `${dir}/b.out`]);
    assert.equal(tensors(dir, 'a.out'), tensors(dir, 'b.out'));
  } finally {
    removeDir(dir);
  }
});

test('the rank program refuses a spec whose world_size is not the number of ranks, a bad spec and a missing file', {skip: !have && 'mpirun or anneald-rank missing'}, () => {
  const dir = tmpDir();
  try {
    writeFile(dir, 'w4.json', spec(4));
    const r = spawnSync('mpirun', ['-np', '2', ...MCA, RANK, `${dir}/w4.json`], {env: ENV, encoding: 'utf8', timeout: 60000});
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /world_size: the spec has world_size 4 but 2 ranks were started: start it with mpirun -n 4, or set "world_size": 2 in the spec/);
    // a bad spec is named with its field, an unreadable one with its path, and nothing runs
    writeFile(dir, 'bad.json', spec(2).replace('"world_size":2', '"world_size":0'));
    const b = spawnSync('mpirun', ['-np', '2', ...MCA, RANK, `${dir}/bad.json`, '--weights-json', `${dir}/x.out`],
      {env: ENV, encoding: 'utf8', timeout: 60000});
    assert.notEqual(b.status, 0);
    assert.match(b.stderr, /bad\.json: world_size: .*got 0/);
    assert.equal(fs.existsSync(path.join(dir, 'x.out')), false);
    const m = spawnSync('mpirun', ['-np', '1', ...MCA, RANK, `${dir}/missing.json`], {env: ENV, encoding: 'utf8', timeout: 60000});
    assert.notEqual(m.status, 0);
    assert.match(m.stderr, /cannot read .*missing\.json/);
  } finally {
    removeDir(dir);
  }
});

test('a failure of one rank\'s setup ends every rank with its message; a resumed run continues its metrics file', {skip: !have && 'mpirun or anneald-rank missing'}, () => {
  const dir = tmpDir();
  try {
    writeFile(dir, 'w2.json', spec(2));
    // rank 1 alone cannot read its --resume file (another host's file system, as it were):
    // every rank stops at once, and rank 1 says why (before, rank 0 waited in the exchange)
    ranks(2, dir, 'w2.json', ['--steps', '8', '--save', path.join(dir, 's.bin'), '--metrics-csv', path.join(dir, 'm.csv')]);
    writeFile(dir, 'wrap.sh', `#!/bin/sh\nif [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then\n  exec ${RANK} ${dir}/w2.json --resume ${dir}/gone.bin\nfi\nexec ${RANK} "$@"\n`);
    fs.chmodSync(path.join(dir, 'wrap.sh'), 0o755);
    const r = spawnSync('mpirun', ['-np', '2', ...MCA, path.join(dir, 'wrap.sh'), `${dir}/w2.json`, '--resume', `${dir}/s.bin`],
      {env: ENV, encoding: 'utf8', timeout: 60000});
    assert.notEqual(r.signal, 'SIGTERM', 'the ranks hung');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /anneald-rank 1: --resume \S*gone\.bin: No such file or directory/);
    // rank 0 alone cannot write the metrics file: no hang either
    const m = spawnSync('mpirun', ['-np', '2', ...MCA, RANK, `${dir}/w2.json`, '--metrics-csv', '/nonexistent/m.csv'],
      {env: ENV, encoding: 'utf8', timeout: 60000});
    assert.notEqual(m.signal, 'SIGTERM', 'the ranks hung');
    assert.notEqual(m.status, 0);
    assert.match(m.stderr, /cannot write \/nonexistent\/m\.csv/);
    // nor when rank 0 cannot write the weights or the state at the end (the others were
    // waiting in the gathering of step times)
    const w = spawnSync('mpirun', ['-np', '2', ...MCA, RANK, `${dir}/w2.json`, '--weights-json', '/nonexistent/w.json',
      '--save', '/nonexistent/s.bin'], {env: ENV, encoding: 'utf8', timeout: 60000});
    assert.notEqual(w.signal, 'SIGTERM', 'the ranks hung');
    assert.notEqual(w.status, 0);
    assert.match(w.stderr, /--weights-json \/nonexistent\/w\.json: No such file or directory/);
    assert.match(w.stderr, /--save \/nonexistent\/s\.bin: No such file or directory/);
    // the resumed run keeps the file's first 8 rows and adds the rest: the whole run's file
    assert.equal(read(dir, 'm.csv').trim().split('\n').length, 9);
    ranks(2, dir, 'w2.json', ['--resume', path.join(dir, 's.bin'), '--metrics-csv', path.join(dir, 'm.csv')]);
    ranks(2, dir, 'w2.json', ['--metrics-csv', path.join(dir, 'whole.csv')]);
    assert.equal(read(dir, 'm.csv'), read(dir, 'whole.csv'));
  } finally {
    removeDir(dir);
  }
});

// Two ranks on two "hosts": network namespaces joined by a veth pair, Open MPI's launcher
// reaching the second one through an rsh agent that enters its namespace, the ranks talking
// over TCP only (btl self,tcp). Needs root and a kernel that allows network namespaces.
const canNetns = () => process.getuid && process.getuid() === 0 &&
  spawnSync('ip', ['netns', 'add', `an_probe_${process.pid}`]).status === 0 &&
  spawnSync('ip', ['netns', 'del', `an_probe_${process.pid}`]).status === 0;

test('two ranks in two network namespaces over TCP give the one-process weights', {skip: (!have && 'mpirun or anneald-rank missing') || (!canNetns() && 'network namespaces not allowed here')}, () => {
  const dir = tmpDir();
  const tag = String(process.pid % 100000);
  const ns = [`an_a${tag}`, `an_b${tag}`];
  const ip = (...a) => spawnSync('ip', a, {encoding: 'utf8'});
  try {
    assert.equal(ip('netns', 'add', ns[0]).status, 0);
    assert.equal(ip('netns', 'add', ns[1]).status, 0);
    for (const c of [['link', 'add', `va${tag}`, 'type', 'veth', 'peer', 'name', `vb${tag}`],
      ['link', 'set', `va${tag}`, 'netns', ns[0]], ['link', 'set', `vb${tag}`, 'netns', ns[1]],
      ['-n', ns[0], 'addr', 'add', '10.77.0.1/24', 'dev', `va${tag}`],
      ['-n', ns[1], 'addr', 'add', '10.77.0.2/24', 'dev', `vb${tag}`],
      ['-n', ns[0], 'link', 'set', `va${tag}`, 'up'], ['-n', ns[1], 'link', 'set', `vb${tag}`, 'up'],
      ['-n', ns[0], 'link', 'set', 'lo', 'up'], ['-n', ns[1], 'link', 'set', 'lo', 'up']]) {
      const r = ip(...c);
      assert.equal(r.status, 0, `ip ${c.join(' ')}: ${r.stderr}`);
    }
    // host "h0" is namespace ns[0], "h1" ns[1]
    writeFile(dir, 'agent.sh', `#!/bin/sh\nwhile [ "\${1#-}" != "$1" ]; do shift; done\n` +
      `case "$1" in h0) n=${ns[0]} ;; h1) n=${ns[1]} ;; *) exit 1 ;; esac\nshift\n` +
      `exec ip netns exec "$n" sh -c "$*"\n`);
    fs.chmodSync(`${dir}/agent.sh`, 0o755);
    writeFile(dir, 'hosts', 'h0 slots=1\nh1 slots=1\n');
    const run = (...cmd) => spawnSync('ip', ['netns', 'exec', ns[0], 'mpirun', '-np', '2', '--hostfile', `${dir}/hosts`,
      '--mca', 'plm_rsh_agent', `${dir}/agent.sh`, '--mca', 'btl', 'self,tcp', '--mca', 'rtc', '^hwloc',
      '--mca', 'btl_tcp_if_include', '10.77.0.0/24', '--mca', 'oob_tcp_if_include', '10.77.0.0/24', ...cmd],
    {env: ENV, encoding: 'utf8', timeout: 120000});
    // each rank sees only its own namespace's address
    const where = run('sh', '-c', 'ip -o -4 addr show | grep -o "10\\.77\\.0\\.[0-9]*"');
    assert.equal(where.status, 0, where.stderr);
    assert.deepEqual(where.stdout.trim().split('\n').sort(), ['10.77.0.1', '10.77.0.2']);
    writeFile(dir, 'w1.json', spec(1));
    writeFile(dir, 'w2.json', spec(2));
    ranks(1, dir, 'w1.json', ['--weights-json', `${dir}/w1.out`, '--metrics-csv', `${dir}/m1.csv`]);
    const r = run(RANK, `${dir}/w2.json`, '--weights-json', `${dir}/n.out`, '--metrics-csv', `${dir}/n.csv`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(tensors(dir, 'n.out'), tensors(dir, 'w1.out'));
    assert.equal(read(dir, 'n.csv'), read(dir, 'm1.csv'));
  } finally {
    ip('netns', 'del', ns[0]);
    ip('netns', 'del', ns[1]);
    removeDir(dir);
  }
});

test('anneald rank runs the rank program next to the daemon, or says how to build it', {skip: !have && 'mpirun or anneald-rank missing'}, () => {
  const dir = tmpDir();
  try {
    writeFile(dir, 'w1.json', spec(1));
    writeFile(dir, 'w2.json', spec(2));
    ranks(1, dir, 'w1.json', ['--weights-json', `${dir}/w1.out`]);
    const r = spawnSync('mpirun', ['-np', '2', ...MCA, BIN, 'rank', `${dir}/w2.json`, '--weights-json', `${dir}/via.out`],
      {env: ENV, encoding: 'utf8', timeout: 60000});
    assert.equal(r.status, 0, r.stderr);
    assert.equal(tensors(dir, 'via.out'), tensors(dir, 'w1.out'));
    // a daemon binary without the rank program beside it
    fs.copyFileSync(BIN, `${dir}/anneald`);
    fs.chmodSync(`${dir}/anneald`, 0o755);
    const m = spawnSync(`${dir}/anneald`, ['rank', `${dir}/w1.json`], {encoding: 'utf8'});
    assert.equal(m.status, 1);
    assert.match(m.stderr, /anneald rank: the rank program anneald-rank is not next to .*: build it with `make rank`/);
  } finally {
    removeDir(dir);
  }
});
