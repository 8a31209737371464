// End-to-end tests of where SIGINT and SIGTERM are taken. oneDNN 2.x's JIT matrix kernels
// point the stack pointer into the heap while they run, so a signal handled on a thread inside
// one writes its frame over heap memory and the process aborts later in free(). The offline
// trainer therefore keeps the stop signals blocked while it trains and takes them between
// steps; the daemon takes them on its loop thread only, every other thread blocking them.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {spawn, spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {BIN, SLOW, api, removeDir, startDaemon, tmpDir, tutorialJob, waitFor, waitJob,
  withDaemon} from './lib.mjs';

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

function sql(db, text) {
  const r = spawnSync('sqlite3', ['-batch', '-noheader', db, text], {encoding: 'utf8'});
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`sqlite3 ${db}: ${r.stderr}`);
  return r.stdout.trim();
}

// The daemon on `db` as `cmd` runs it (spawn's arguments before the daemon's own), without
// waiting for it to listen: {child, exited, out(), err()}; exited resolves to {code, signal},
// or null when it has not exited within 15 s (it is then killed).
function runDaemon(db, cmd = [BIN]) {
  const child = spawn(cmd[0], [...cmd.slice(1), '--listen', '127.0.0.1:0', '--db', db, '--workers', '1'],
    {stdio: ['ignore', 'pipe', 'pipe']});
  let out = '', err = '';
  child.stdout.on('data', (c) => { out += c; });
  child.stderr.on('data', (c) => { err += c; });
  let timer;
  const exited = new Promise((r) => {
    timer = setTimeout(() => { child.kill('SIGKILL'); r(null); }, 15000 * SLOW);
    child.on('exit', (code, signal) => { clearTimeout(timer); r({code, signal}); });
  });
  return {child, exited, out: () => out, err: () => err};
}

// A store with a job that completed 300 steps, at schema 5 (before the summary pyramid, which
// its migration builds from the metric rows): a start has a migration to do. The job's id.
async function storeToMigrate(dir, db) {
  const d = await startDaemon({dir, args: ['--db', db, '--workers', '1']});
  const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 300}));
  assert.equal(r.status, 201, r.text);
  await waitJob(d.url, r.json.id, (j) => j.state === 'completed');
  assert.deepEqual(await d.stop(), {code: 0, signal: null});
  sql(db, 'DROP TABLE metric_pyramid; PRAGMA user_version=5;');
  return r.json.id;
}

// The store after a start that was stopped: its lock is free, and a daemon opens it, migrates
// it and serves the job as it was.
async function storeServes(dir, db, id) {
  assert.equal(sql(db, 'PRAGMA integrity_check;'), 'ok');
  const d = await startDaemon({dir, args: ['--db', db, '--workers', '1']});
  try {
    const j = await api(d.url, 'GET', `/v1/jobs/${id}`);
    assert.equal(j.json.state, 'completed', j.text);
    const m = await api(d.url, 'GET', `/v1/jobs/${id}/metrics?max_points=40`);
    assert.equal(m.status, 200, m.text);
    assert.equal(m.json.step.at(-1), 300);
  } finally {
    assert.deepEqual(await d.stop(), {code: 0, signal: null}, d.stderr().slice(-3000));
  }
  assert.ok(Number(sql(db, 'PRAGMA user_version;')) > 5);
}

// The daemon's start-up (the lock, opening and migrating the store, loading its jobs) may take
// seconds on a large store. Here it waits to migrate: another process (the sqlite3 shell) holds
// the store's write lock, for as long as SQLite's busy timeout (5 s) would let it wait. A stop
// signal then ends it at once, saying so, with the status of a stop while serving; the
// migration is not half done, and the store's lock is free.
for (const sig of ['SIGTERM', 'SIGINT']) {
  test(`${sig} while the daemon waits to migrate its store ends the start at once: exit 0, a log line, the store as it was`, async () => {
    const dir = tmpDir('anneald-signals-start-');
    const db = path.join(dir, 'anneald.db');
    let holder = null, run = null;
    try {
      const id = await storeToMigrate(dir, db);
      holder = spawn('sqlite3', ['-batch', db], {stdio: ['pipe', 'pipe', 'inherit']});
      let held = '';
      holder.stdout.on('data', (c) => { held += c; });
      holder.stdin.write("BEGIN IMMEDIATE;\nSELECT 'locked';\n");
      await waitFor(() => held.includes('locked'), {what: 'the write lock'});
      run = runDaemon(db);
      // Its pid in the store's lock file: it holds the lock and opens the store.
      const lockPid = () => { try { return fs.readFileSync(`${db}.lock`, 'utf8').trim(); } catch { return ''; } };
      await waitFor(() => lockPid() === String(run.child.pid), {intervalMs: 5, what: 'the store lock'});
      // and waits for the write lock: its main thread sleeps in SQLite's busy handler
      // (/proc/PID/syscall: clock_nanosleep, 230, or nanosleep, 35, on x86-64), not a fixed time
      const syscall = () => { try { return fs.readFileSync(`/proc/${run.child.pid}/syscall`, 'utf8'); } catch { return ''; } };
      await waitFor(() => /^(230|35) /.test(syscall()), {intervalMs: 5, what: () => `the busy wait (syscall ${syscall()})`});
      const sent = Date.now();
      run.child.kill(sig);
      const ex = await run.exited;
      const took = Date.now() - sent;
      assert.deepEqual(ex, {code: 0, signal: null}, run.err());
      // the whole process's stop, against the 5 s busy timeout it must not wait out
      console.log(`# ${sig} during the busy wait to exit: ${took} ms`);
      assert.ok(took < 2000 * SLOW, `stopped after ${took} ms, not at once`);
      assert.match(run.err(), new RegExp(`anneald info: ${sig} during start-up: stopped before serving; ` +
        'the store keeps what was committed \\(a migration or recovery cut short is done again at the next start\\)\\n$'));
      assert.equal(run.out(), '', 'it never listened');
      holder.stdin.end('ROLLBACK;\n');
      await new Promise((r) => holder.on('exit', r));
      assert.equal(sql(db, 'PRAGMA user_version;'), '5', 'nothing of the migration was written');
      await storeServes(dir, db, id);
    } finally {
      if (holder && holder.exitCode === null) holder.kill();
      if (run && run.child.exitCode === null) run.child.kill('SIGKILL');
      removeDir(dir);
    }
  });
}

// The earliest a stop can come: pending before the daemon runs its first instruction (blocked
// and raised before the exec, which keeps it pending, as for the trainer above).
test('a SIGTERM pending when the daemon starts ends its start-up: exit 0, never listening', async () => {
  const dir = tmpDir('anneald-signals-start-');
  const db = path.join(dir, 'anneald.db');
  try {
    const id = await storeToMigrate(dir, db);
    const perl = 'use POSIX; sigprocmask(SIG_BLOCK, POSIX::SigSet->new(SIGTERM)); kill "TERM", $$; exec @ARGV or die "exec: $!"';
    const run = runDaemon(db, ['perl', '-e', perl, BIN]);
    const ex = await run.exited;
    assert.deepEqual(ex, {code: 0, signal: null}, `${run.err()}${run.out()}`);
    assert.match(run.err(), /anneald info: SIGTERM during start-up: stopped before serving/);
    assert.equal(run.out(), '', 'it never listened');
    await storeServes(dir, db, id);
  } finally {
    removeDir(dir);
  }
});
