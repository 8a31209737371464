// End-to-end tests of where SIGINT and SIGTERM are taken. oneDNN 2.x's JIT matrix kernels
// point the stack pointer into the heap while they run, so a signal handled on a thread inside
// one writes its frame over heap memory and the process aborts later in free(). The offline
// trainer therefore keeps the stop signals blocked while it trains and takes them between
// steps; the daemon takes them on its loop thread only, every other thread blocking them.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {BIN, SLOW, api, tmpDir, waitJob, withDaemon} from './lib.mjs';

const dir = tmpDir('anneald-signals-');
process.on('exit', () => fs.rmSync(dir, {recursive: true, force: true}));

// Each step is a few milliseconds of 1024-wide matrix products: a signal sent at a random
// moment almost always lands inside one.
const bigJob = (over = {}) => ({
  name: 'big', seed: 1,
  model: {type: 'mlp', inputs: 32, hidden: [1024, 1024], outputs: 1},
  data: {type: 'synthetic', task: 'regression', samples: 256, features: 32},
  steps: 100000000,
  ds_config: {train_batch_size: 8, optimizer: {type: 'Adam', params: {lr: 0.0001}}},
  ...over,
});

const SIGINT_BIT = 1n << 1n, SIGTERM_BIT = 1n << 14n; // SigBlk bit n-1 for signal n
// SIGILL, SIGABRT, SIGBUS, SIGFPE, SIGSEGV: a fault must still end the process with its report.
const FAULT_BITS = (1n << 3n) | (1n << 5n) | (1n << 6n) | (1n << 7n) | (1n << 10n);

// Every thread of `pid`: its id, name and the mask of the signals it blocks.
function threads(pid) {
  return fs.readdirSync(`/proc/${pid}/task`).map((tid) => {
    const status = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    return {
      tid: Number(tid),
      name: status.match(/^Name:\s*(.*)$/m)[1],
      blocked: BigInt('0x' + status.match(/^SigBlk:\s*([0-9a-f]+)$/m)[1]),
    };
  });
}
const blocksStops = (t) => (t.blocked & SIGINT_BIT) !== 0n && (t.blocked & SIGTERM_BIT) !== 0n;

function startTrain(spec, args = []) {
  const p = path.join(dir, `${spec.name}.json`);
  fs.writeFileSync(p, JSON.stringify(spec));
  const child = spawn(BIN, ['train', p, ...args], {stdio: ['ignore', 'pipe', 'pipe']});
  let err = '';
  child.stderr.on('data', (c) => { err += c; });
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({code, signal})));
  const until = async (re) => {
    const t0 = Date.now();
    while (!re.test(err) && Date.now() - t0 < 20000 * SLOW) await new Promise((r) => setTimeout(r, 2));
    assert.match(err, re);
  };
  return {child, exited, until, err: () => err};
}

test('Ctrl-C in the first steps of anneald train ends it cleanly, every time', async () => {
  // Before the stop signals were blocked during training, about half of these runs aborted
  // with "corrupted size vs. prev_size" (exit 134).
  for (let i = 0; i < 8; i++) {
    const run = startTrain(bigJob());
    await run.until(/step 1\//);
    run.child.kill('SIGINT');
    const {code, signal} = await run.exited;
    assert.equal(signal, null, `run ${i}: ${run.err()}`);
    assert.equal(code, 130, `run ${i}: ${run.err()}`);
    assert.match(run.err(), /^interrupted after step \d+ of 100000000\.$/m);
  }
});

test('anneald train blocks the stop signals on every thread while it trains, and SIGTERM still stops it', async () => {
  const run = startTrain(bigJob({name: 'two', threads: 2}));
  await run.until(/step \d+\//);
  const ts = threads(run.child.pid);
  assert.ok(ts.length >= 2, `OpenMP's second thread is running: ${JSON.stringify(ts.map((t) => t.name))}`);
  for (const t of ts) {
    assert.ok(blocksStops(t), `thread ${t.tid} (${t.name}) takes SIGINT or SIGTERM`);
    assert.equal(t.blocked & FAULT_BITS, 0n, `thread ${t.tid} (${t.name}) blocks a fault signal`);
  }
  run.child.kill('SIGTERM');
  const {code, signal} = await run.exited;
  assert.equal(signal, null, run.err());
  assert.equal(code, 130, run.err());
});

test('the daemon takes the stop signals on its loop thread only', async () => {
  await withDaemon({args: ['--workers', '2']}, async (d) => {
    const ids = [];
    for (const threadsN of [1, 2]) {
      const r = await api(d.url, 'POST', '/v1/jobs', bigJob({name: `big${threadsN}`, threads: threadsN}));
      assert.equal(r.status, 201, r.text);
      ids.push(r.json.id);
    }
    for (const id of ids) await waitJob(d.url, id, (j) => j.state === 'running' && j.step > 2);
    const ts = threads(d.proc.pid);
    // the loop thread, two workers, OpenMP's thread for the 2-thread job, writers, queues
    assert.ok(ts.length >= 6, JSON.stringify(ts.map((t) => t.name)));
    for (const t of ts) {
      if (t.tid === d.proc.pid)
        assert.ok((t.blocked & (SIGINT_BIT | SIGTERM_BIT)) === 0n, 'the loop thread takes them');
      else
        assert.ok(blocksStops(t), `thread ${t.tid} (${t.name}) takes SIGINT or SIGTERM`);
      assert.equal(t.blocked & FAULT_BITS, 0n, `thread ${t.tid} (${t.name}) blocks a fault signal`);
    }
  });
});

// A stop signal that is already pending when the trainer starts (sent while it loaded, or
// here: blocked and raised before the exec, which keeps it pending) comes during start-up:
// the trainer ends at once with exit 130 and says so, before anything is written.
// perl (perl-base, in every Debian) makes the pending signal; node cannot block one.
test('a Ctrl-C pending when anneald train starts ends it in start-up, writing nothing', async () => {
  const spec = path.join(dir, 'pending.json');
  fs.writeFileSync(spec, JSON.stringify({...bigJob({name: 'pending', steps: 5})}));
  const save = path.join(dir, 'pending.state');
  const perl = 'use POSIX; sigprocmask(SIG_BLOCK, POSIX::SigSet->new(SIGINT)); kill "INT", $$; exec @ARGV or die "exec: $!"';
  const child = spawn('perl', ['-e', perl, BIN, 'train', spec, '--save', save], {stdio: ['ignore', 'pipe', 'pipe']});
  let out = '', err = '';
  child.stdout.on('data', (c) => { out += c; });
  child.stderr.on('data', (c) => { err += c; });
  const {code, signal} = await new Promise((r) => child.on('exit', (c, s) => r({code: c, signal: s})));
  assert.equal(signal, null, err);
  assert.equal(code, 130, err);
  assert.equal(err, 'anneald train: interrupted by Ctrl-C (SIGINT) during start-up, before the first step: nothing was trained or written\n');
  assert.equal(out, '');
  assert.ok(!fs.existsSync(save), 'no state saved');
});
