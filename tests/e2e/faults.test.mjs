// Fault tests (DESIGN.md, "Failure"): a full disk, a corrupt checkpoint, a job too large for
// the memory cap. Each ends with the job's weights and metrics compared bit for bit with an
// uninterrupted run of the same spec, and the store's integrity checked with the sqlite3 shell.
//
// The disk-full test puts the store on a small tmpfs of its own, so it needs root (mount(8));
// where mounting is not permitted it fails and says so rather than passing without testing.
import test from 'node:test';
import assert from 'node:assert/strict';
import {spawn, spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {startDaemon, api, waitFor, waitJob, tmpDir, removeDir, sleep, tutorialJob, SLOW} from './lib.mjs';

// Runs SQL through the sqlite3 shell; resolves to its trimmed output.
function sql(db, text) {
  const r = spawnSync('sqlite3', ['-batch', '-noheader', '-separator', '|', db, text], {encoding: 'utf8'});
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`sqlite3 ${db}: ${r.stderr}`);
  return r.stdout.trim();
}

async function getJob(url, id) {
  const r = await api(url, 'GET', `/v1/jobs/${id}`);
  assert.equal(r.status, 200, `GET job ${id}: ${r.text}`);
  return r.json;
}

// Waits for the job to reach one of `states` (an array); resolves to the job.
async function waitStates(url, id, states, timeoutMs = 120000) {
  return waitFor(async () => {
    const j = await getJob(url, id);
    return states.includes(j.state) && j;
  }, {timeoutMs, intervalMs: 25, what: `job ${id} ${states.join('/')}`});
}

// SIGTERM and the exit status; the daemon must stop cleanly.
async function stopClean(d) {
  const ex = await d.stop();
  assert.deepEqual(ex, {code: 0, signal: null}, `the daemon did not stop cleanly:\n${d.stderr().slice(-3000)}`);
}

// Asserts metrics CSV texts equal in every column but the wall-clock `time` (equal text is
// equal bits: the CSV prints the shortest form that reads back to the same double).
function assertSameMetrics(got, ref, steps, what) {
  const rows = (t) => t.trim().split('\n').map((l) => l.split(','));
  const g = rows(got), r = rows(ref);
  assert.deepEqual(g[0], r[0], `${what}: CSV header`);
  const skip = g[0].indexOf('time');
  assert.equal(g.length - 1, steps, `${what}: ${g.length - 1} metric rows, expected ${steps}`);
  for (let i = 1; i < g.length; i++) {
    assert.equal(Number(g[i][0]), i, `${what}: row ${i} is step ${g[i][0]}`);
    const a = g[i].filter((_, c) => c !== skip), b = r[i].filter((_, c) => c !== skip);
    assert.deepEqual(a, b, `${what}: step ${i} differs from the uninterrupted run`);
  }
}

// Runs `spec` to the end in a fresh daemon; resolves to {weights, csv}.
async function uninterrupted(spec) {
  const d = await startDaemon({args: ['--workers', '1']});
  try {
    const r = await api(d.url, 'POST', '/v1/jobs', spec);
    assert.equal(r.status, 201, r.text);
    const j = await waitStates(d.url, r.json.id, ['completed', 'failed', 'paused']);
    assert.equal(j.state, 'completed', `reference run: ${j.error}`);
    return {weights: (await api(d.url, 'GET', `/v1/jobs/${j.id}/weights`)).text,
            csv: (await api(d.url, 'GET', `/v1/jobs/${j.id}/metrics?format=csv`)).text};
  } finally {
    await stopClean(d);
  }
}

// A model of 110,401 parameters: a checkpoint (parameters + Adam's two moments) is 1.3 MB.
function ckptSpec(steps, every, over = {}) {
  return {
    name: 'faults', seed: 11,
    model: {type: 'mlp', inputs: 64, hidden: [300, 300], outputs: 1},
    loss: 'mse',
    data: {type: 'synthetic', task: 'regression', samples: 2048, features: 64, outputs: 1},
    steps,
    checkpoint: {every_steps: every, keep_last: 3},
    ds_config: {
      train_batch_size: 16,
      optimizer: {type: 'Adam', params: {lr: 0.001}},
      scheduler: {type: 'WarmupDecayLR',
                  params: {warmup_min_lr: 0, warmup_max_lr: 0.001, warmup_num_steps: 50,
                           total_num_steps: steps}},
    },
    ...over,
  };
}

// Mounts a tmpfs of `size` on a fresh directory. Throws with a clear message where mounting
// is not permitted: the test must not pass without having filled a disk.
function mountTmpfs(size) {
  const dir = tmpDir('anneald-tmpfs-');
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], {encoding: 'utf8'});
  if (r.error || r.status !== 0) {
    removeDir(dir);
    throw new Error(`the disk-full test needs a tmpfs of its own and could not mount one ` +
                    `(run it as root; mount said: ${(r.stderr || String(r.error)).trim()})`);
  }
  return {
    dir,
    unmount() {
      let u = spawnSync('umount', [dir], {encoding: 'utf8'});
      if (u.status !== 0) u = spawnSync('umount', ['-l', dir], {encoding: 'utf8'});
      removeDir(dir);
      return u.status === 0;
    },
  };
}

function freeBytes(dir) {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

function fileSize(p) {
  try { return fs.statSync(p).size; } catch { return 0; }
}

test('disk full: the job pauses with a message, nothing committed is lost, the daemon serves on, and the job resumes once space is back', async () => {
  const STEPS = 1200, EVERY = 100;
  const spec = ckptSpec(STEPS, EVERY);
  const ref = await uninterrupted(spec);

  // 32 MiB: once space is back, SQLite's WAL alone grows to about 16 MiB (1000 pages of
  // 16 KiB) before it checkpoints and starts over, beside the database file.
  const fsys = mountTmpfs('32m');
  let d;
  try {
    const db = path.join(fsys.dir, 'anneald.db');
    // --min-free-disk 0: this test is about a disk that does fill (the guard would pause the
    // job before, on a file system this small).
    d = await startDaemon({dir: fsys.dir, args: ['--db', db, '--workers', '1', '--min-free-disk', '0']});
    // Room for about two checkpoints of 1.3 MB and their metrics: the third cannot fit.
    const filler = path.join(fsys.dir, 'filler');
    const room = 3.4 * 1024 * 1024;
    const walBefore = fs.existsSync(`${db}-wal`) ? fileSize(`${db}-wal`) : 0;
    fs.writeFileSync(filler, Buffer.alloc(Math.max(0, freeBytes(fsys.dir) - room)));

    const r = await api(d.url, 'POST', '/v1/jobs', spec);
    assert.equal(r.status, 201, r.text);
    const id = r.json.id;
    const paused = await waitStates(d.url, id, ['paused', 'failed', 'completed']);
    assert.equal(paused.state, 'paused', `a full disk should pause the job, got ${paused.state}: ${paused.error}`);
    const m = /^disk full while writing (the checkpoint|metrics) at step (\d+): .*full/.exec(paused.error || '');
    assert.ok(m, `the job's error should say the disk is full and where: ${paused.error}`);
    const at = Number(m[2]);
    assert.ok(at > EVERY && at < STEPS, `the failing write at step ${at}`);
    assert.ok(paused.last_checkpoint_step >= EVERY && paused.last_checkpoint_step < at,
              `the checkpoints before the full disk are kept: last_checkpoint_step ${paused.last_checkpoint_step}, failure at ${at}`);
    assert.match(d.stderr(), new RegExp(`job ${id} paused: disk full`));
    const walFull = fileSize(`${db}-wal`);

    // Everything committed is still there and readable.
    const cks = (await api(d.url, 'GET', `/v1/jobs/${id}/checkpoints`)).json.checkpoints;
    assert.ok(cks.length >= 1 && cks.at(-1).step === paused.last_checkpoint_step,
              `checkpoints ${JSON.stringify(cks)}`);
    const w = await api(d.url, 'GET', `/v1/jobs/${id}/weights?step=${paused.last_checkpoint_step}`);
    assert.equal(w.status, 200, w.text);
    const met = await api(d.url, 'GET', `/v1/jobs/${id}/metrics?format=csv`);
    assert.equal(met.status, 200, met.text);
    const nrows = met.text.trim().split('\n').length - 1;
    assert.ok(nrows >= paused.last_checkpoint_step, `${nrows} metric rows survive, checkpoint at ${paused.last_checkpoint_step}`);

    // The daemon serves on with the disk still full. /healthz answers, degraded (503) when
    // the pause itself could not be recorded yet, naming that.
    const h = await api(d.url, 'GET', '/healthz');
    assert.ok(h.status === 200 || (h.status === 503 && h.json.status === 'degraded' &&
              h.json.problems.some((p) => /not recorded in the store yet/.test(p))), h.text);
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).status, 200);
    assert.equal((await api(d.url, 'GET', '/metrics')).status, 200);
    const late = await api(d.url, 'POST', '/v1/jobs/j_999999/resume');
    assert.equal(late.status, 404, late.text);

    // Space comes back: the job resumes from its last good checkpoint and ends like the
    // uninterrupted run.
    fs.rmSync(filler);
    // The pause the full disk refused is written again every second: a resume that comes
    // while one such write is failing is told to try again (503), as a client would.
    let res;
    await waitFor(async () => {
      res = await api(d.url, 'POST', `/v1/jobs/${id}/resume`);
      if (res.status === 503) assert.match(res.json.error.message, /not recorded that yet/);
      return res.status !== 503;
    }, {what: 'a resume the store takes'});
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.error, null, 'resuming clears the error');
    const done = await waitStates(d.url, id, ['completed', 'failed', 'paused']);
    assert.equal(done.state, 'completed', `after space came back: ${done.error}`);
    assert.equal(done.step, STEPS);
    assert.equal((await api(d.url, 'GET', `/v1/jobs/${id}/weights`)).text, ref.weights,
                 'weights after the full disk differ from the uninterrupted run');
    assertSameMetrics((await api(d.url, 'GET', `/v1/jobs/${id}/metrics?format=csv`)).text, ref.csv,
                      STEPS, 'metrics after the full disk');
    await stopClean(d);
    d = null;

    // SQLite's side: the WAL never outgrew the disk, a clean stop truncates it, and the file
    // is intact.
    // (it may hold what it held before the disk was filled, plus at most the room left)
    assert.ok(walFull > 0 && walFull <= walBefore + room + 64 * 1024,
              `WAL of ${walFull} bytes when the disk had 3.4 MiB free and the WAL ${walBefore} bytes`);
    assert.equal(fileSize(`${db}-wal`), 0, 'the WAL is truncated at a clean stop');
    assert.equal(sql(db, 'PRAGMA integrity_check;'), 'ok');
  } finally {
    if (d) await d.kill9().catch(() => {});
    assert.ok(fsys.unmount(), `could not unmount ${fsys.dir}`);
  }
});

test('a restart on a full disk: the running job shows queued, /healthz names the problem, and it trains once space is back', async () => {
  const STEPS = 1200, EVERY = 100;
  const spec = ckptSpec(STEPS, EVERY);
  const ref = await uninterrupted(spec);
  const fsys = mountTmpfs('32m');
  let d;
  try {
    const db = path.join(fsys.dir, 'anneald.db');
    const args = ['--db', db, '--workers', '1', '--min-free-disk', '0'];
    d = await startDaemon({dir: fsys.dir, args});
    const r = await api(d.url, 'POST', '/v1/jobs', spec);
    assert.equal(r.status, 201, r.text);
    const id = r.json.id;
    await waitJob(d.url, id, (j) => j.state === 'running' && j.last_checkpoint_step >= EVERY);
    await d.kill9();   // the store says running
    // no room left at all: the restart cannot write the job back to queued
    const filler = path.join(fsys.dir, 'filler');
    const fd = fs.openSync(filler, 'w');
    try {
      for (;;) fs.writeSync(fd, Buffer.alloc(64 * 1024));
    } catch (e) {
      assert.equal(e.code, 'ENOSPC');
    } finally {
      fs.closeSync(fd);
    }
    d = await startDaemon({dir: fsys.dir, args});
    await waitFor(() => /cannot queue them again/.test(d.stderr()), {what: 'the recovery to say it waits'});
    const j = (await api(d.url, 'GET', `/v1/jobs/${id}`)).json;
    assert.equal(j.state, 'queued', 'not running: no worker has it');
    const h = (await api(d.url, 'GET', '/healthz')).json;
    assert.equal(h.status, 'degraded');
    assert.deepEqual(h.jobs, {running: 0, queued: 1}, 'counted as what it is, not as the store has it');
    assert.ok(h.problems.some((p) => /state of 1 job\(s\) is not recorded in the store yet/.test(p)), JSON.stringify(h.problems));
    // a transition meanwhile waits (503), it is not refused as a conflict
    const pause = await api(d.url, 'POST', `/v1/jobs/${id}/pause`);
    assert.equal(pause.status, 503, pause.text);
    assert.match(pause.json.error.message, /not recorded that yet|disk is full/);
    // space comes back: queued in the store, trained, and the same as never interrupted
    fs.rmSync(filler);
    const done = await waitStates(d.url, id, ['completed', 'failed', 'paused']);
    assert.equal(done.state, 'completed', done.error);
    assert.equal((await api(d.url, 'GET', `/v1/jobs/${id}/weights`)).text, ref.weights);
    assert.equal((await api(d.url, 'GET', '/healthz')).json.status, 'ok');
    await stopClean(d);
    d = null;
  } finally {
    if (d) await d.kill9().catch(() => {});
    assert.ok(fsys.unmount(), `could not unmount ${fsys.dir}`);
  }
});

// Pauses job `id` once its checkpoints reach step `atLeast`; resolves to the paused job.
async function pauseAfter(url, id, atLeast) {
  await waitFor(async () => {
    const j = await getJob(url, id);
    assert.notEqual(j.state, 'completed', `job ${id} completed before the test could pause it`);
    return j.last_checkpoint_step >= atLeast;
  }, {timeoutMs: 60000, intervalMs: 10, what: `job ${id} checkpointed at step ${atLeast}`});
  const r = await api(url, 'POST', `/v1/jobs/${id}/pause`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.state, 'paused');
  return r.json;
}

// Checkpoint rows of a job, newest first: [{id, step, chunks}].
function checkpointsOf(db, job) {
  const out = sql(db, `SELECT c.id, c.step, c.chunks FROM checkpoints c JOIN jobs j ON c.job = j.num ` +
                      `WHERE j.id = '${job}' ORDER BY c.step DESC;`);
  return out ? out.split('\n').map((l) => { const [id, step, chunks] = l.split('|').map(Number); return {id, step, chunks}; }) : [];
}

test('corrupt checkpoints: the newest usable one is used, and none usable starts over from step 0', async () => {
  const STEPS = 4000, EVERY = 250;
  const spec = ckptSpec(STEPS, EVERY, {name: 'corrupt', checkpoint: {every_steps: EVERY, keep_last: 4}});
  const ref = await uninterrupted(spec);

  const dir = tmpDir();
  const db = path.join(dir, 'anneald.db');
  let d;
  try {
    d = await startDaemon({dir, args: ['--db', db, '--workers', '1']});
    const a = (await api(d.url, 'POST', '/v1/jobs', spec)).json.id;
    await pauseAfter(d.url, a, 3 * EVERY);
    const b = (await api(d.url, 'POST', '/v1/jobs', spec)).json.id;
    await pauseAfter(d.url, b, EVERY);
    await stopClean(d);
    d = null;

    // Job a: the newest checkpoint's bytes are changed (its checksum no longer matches) and
    // the next one's only chunk is gone (it no longer reads back); the third is fine.
    const ca = checkpointsOf(db, a);
    assert.ok(ca.length >= 3, `job ${a} has checkpoints ${JSON.stringify(ca)}`);
    // (|| makes text of blobs; the cast gives the same bytes back as a blob.)
    sql(db, `UPDATE checkpoint_chunks SET data = CAST(substr(data, 1, 4096) || X'DEADBEEF' || ` +
            `substr(data, 4101) AS BLOB) WHERE ckpt = ${ca[0].id} AND idx = 0;`);
    sql(db, `DELETE FROM checkpoint_chunks WHERE ckpt = ${ca[1].id};`);
    // Job b: every checkpoint is corrupt.
    const cb = checkpointsOf(db, b);
    assert.ok(cb.length >= 1, `job ${b} has checkpoints ${JSON.stringify(cb)}`);
    sql(db, `UPDATE checkpoint_chunks SET data = zeroblob(length(data)) WHERE ckpt IN ` +
            `(${cb.map((c) => c.id).join(',')});`);

    d = await startDaemon({dir, args: ['--db', db, '--workers', '1']});
    for (const id of [a, b]) {
      const r = await api(d.url, 'POST', `/v1/jobs/${id}/resume`);
      assert.equal(r.status, 200, r.text);
    }
    for (const id of [a, b]) {
      const j = await waitStates(d.url, id, ['completed', 'failed', 'paused']);
      assert.equal(j.state, 'completed', `job ${id}: ${j.error}`);
      assert.equal((await api(d.url, 'GET', `/v1/jobs/${id}/weights`)).text, ref.weights,
                   `job ${id}: weights differ from the uninterrupted run`);
      assertSameMetrics((await api(d.url, 'GET', `/v1/jobs/${id}/metrics?format=csv`)).text, ref.csv,
                        STEPS, `job ${id}`);
    }
    const log = d.stderr();
    assert.match(log, new RegExp(`job ${a}: the checkpoint at step ${ca[0].step} is unusable \\(checkpoint: checkpoint checksum mismatch[^)]*\\); trying the one before it`));
    assert.match(log, new RegExp(`job ${a}: the checkpoint at step ${ca[1].step} is unusable \\(checkpoint is incomplete[^)]*\\); trying the one before it`));
    assert.match(log, new RegExp(`job ${a}: resuming from the checkpoint at step ${ca[2].step} \\(2 newer ones were unusable\\)`));
    assert.match(log, new RegExp(`job ${b}: the checkpoint at step ${cb.at(-1).step} is unusable \\(.*\\); no older checkpoint: starting over from step 0`));
    await stopClean(d);
    d = null;
    assert.equal(sql(db, 'PRAGMA integrity_check;'), 'ok');
  } finally {
    if (d) await d.kill9().catch(() => {});
    removeDir(dir);
  }
});

// 6.3 M parameters: with Adam about 100 MiB (parameters, gradients, two moments).
function bigSpec(over = {}) {
  return {
    name: 'big', seed: 1,
    model: {type: 'mlp', inputs: 1024, hidden: [2048, 2048], outputs: 10},
    loss: 'mse',
    data: {type: 'synthetic', task: 'regression', samples: 256, features: 1024, outputs: 10},
    steps: 5,
    ds_config: {train_batch_size: 8, optimizer: {type: 'Adam', params: {lr: 0.001}}},
    ...over,
  };
}

const OVER_CAP = /^this job needs about (\d+(?:\.\d)?) MiB \((Adam state|parameters|gradients|activations|data) [^)]*\), over the 64 MiB cap \(--max-job-memory\)/;

test('memory cap: a job estimated over --max-job-memory is rejected at submit with the estimate; 0 lifts the cap', async () => {
  const d = await startDaemon({args: ['--max-job-memory', '64M', '--workers', '1']});
  try {
    const r = await api(d.url, 'POST', '/v1/jobs', bigSpec());
    assert.equal(r.status, 422, r.text);
    assert.equal(r.json.error.code, 'unprocessable');
    assert.equal(r.json.error.field, 'model');
    const m = OVER_CAP.exec(r.json.error.message);
    assert.ok(m, r.json.error.message);
    // 6,313,994 parameters x 4 bytes x (1 + 1 + 2) is 96.3 MiB before activations and data.
    assert.ok(Number(m[1]) >= 96 && Number(m[1]) < 110, `estimate ${m[1]} MiB`);
    assert.match(r.json.error.message, /Adam state 48 MiB, parameters 24 MiB, gradients 24 MiB/);
    // SGD keeps no state: the same model fits.
    const sgd = bigSpec({ds_config: {train_batch_size: 8, optimizer: {type: 'SGD', params: {lr: 0.001}}},
                         model: {type: 'mlp', inputs: 1024, hidden: [2048, 1024], outputs: 10}});
    const ok = await api(d.url, 'POST', '/v1/jobs', sgd);
    assert.equal(ok.status, 201, ok.text);
    const list = await api(d.url, 'GET', '/v1/jobs');
    assert.equal(list.json.total, 1, 'the rejected job left nothing behind');
    await waitStates(d.url, ok.json.id, ['completed']);
  } finally {
    await stopClean(d);
  }

  await (async () => {
    const free = await startDaemon({args: ['--max-job-memory', '0', '--workers', '1']});
    try {
      const r = await api(free.url, 'POST', '/v1/jobs', bigSpec());
      assert.equal(r.status, 201, r.text);
      await waitStates(free.url, r.json.id, ['completed']);
    } finally {
      await stopClean(free);
    }
  })();

  for (const bad of ['1.5G', '4X', '-1', '']) {
    const r = spawnSync(process.env.ANNEALD_BIN || 'build/anneald', ['--max-job-memory', bad, '--listen', '127.0.0.1:0'],
                        {encoding: 'utf8', timeout: 10000 * SLOW});
    assert.equal(r.status, 2, `--max-job-memory '${bad}': exit ${r.status}, ${r.stderr}`);
    assert.match(r.stderr, /--max-job-memory expects a size in bytes/);
  }
  // an upload limit above what the store keeps would take the body, then refuse it
  const big = spawnSync(process.env.ANNEALD_BIN || 'build/anneald', ['--max-body-dataset', '1G', '--listen', '127.0.0.1:0'],
                        {encoding: 'utf8', timeout: 10000 * SLOW});
  assert.equal(big.status, 2, big.stderr);
  assert.match(big.stderr, /--max-body-dataset 1G is more than the 268435456 bytes \(256M\) of the largest data set the store keeps/);
  const sz = spawnSync(process.env.ANNEALD_BIN || 'build/anneald', ['--max-body-dataset', '0', '--listen', '127.0.0.1:0'],
                       {encoding: 'utf8', timeout: 10000 * SLOW});
  assert.equal(sz.status, 2, sz.stderr);
  assert.match(sz.stderr, /--max-body-dataset expects a size in bytes \(>= 1\) with an optional K, M, G or T suffix/);
});

// Eight hidden layers of 256 with dropout over batches of 2048 rows: activations dominate
// (about 52 MiB of 59); one activation checkpoint per layer keeps 24 MiB of them.
function deepSpec(ckpt, hidden = 8) {
  const spec = {
    name: 'deep', seed: 2,
    model: {type: 'mlp', inputs: 16, hidden: Array(hidden).fill(256), outputs: 2, dropout: 0.1},
    loss: 'cross_entropy',
    data: {type: 'synthetic', task: 'classification', samples: 2048, features: 16, classes: 2},
    steps: 4,
    ds_config: {train_batch_size: 2048, optimizer: {type: 'Adam', params: {lr: 0.001}}},
  };
  if (ckpt) spec.ds_config.activation_checkpointing = ckpt;
  return spec;
}

test('activation checkpointing: an mlp job over the cap without it fits with it, finishes with the same weights, and the refusal counts it', async () => {
  const ref = await uninterrupted(deepSpec(null));
  const d = await startDaemon({args: ['--max-job-memory', '40M', '--workers', '1']});
  try {
    // Without the block, and with one checkpoint (one segment: nothing saved): over the cap.
    for (const ckpt of [null, {number_checkpoints: 1}]) {
      const r = await api(d.url, 'POST', '/v1/jobs', deepSpec(ckpt));
      assert.equal(r.status, 422, r.text);
      assert.equal(r.json.error.field, 'model');
      assert.match(r.json.error.message, /^this job needs about 59 MiB \(activations 52 MiB, /);
      assert.doesNotMatch(r.json.error.message, /checkpointing/);
    }
    // One checkpoint per layer (the default): accepted, GPU keys warned, finished, and bit
    // for bit the weights and metrics of the run without it.
    const ok = await api(d.url, 'POST', '/v1/jobs', deepSpec({cpu_checkpointing: true}));
    assert.equal(ok.status, 201, ok.text);
    assert.ok(ok.json.warnings.some((w) => /activation_checkpointing\.cpu_checkpointing is for GPUs/.test(w)),
              JSON.stringify(ok.json.warnings));
    const j = await waitStates(d.url, ok.json.id, ['completed', 'failed']);
    assert.equal(j.state, 'completed', j.error);
    assert.equal((await api(d.url, 'GET', `/v1/jobs/${j.id}/weights`)).text, ref.weights);
    assertSameMetrics((await api(d.url, 'GET', `/v1/jobs/${j.id}/metrics?format=csv`)).text, ref.csv, 4,
                      'checkpointed run');
    // Twice as deep does not fit even so: the estimate says what checkpointing saves.
    const deep = await api(d.url, 'POST', '/v1/jobs', deepSpec({}, 16));
    assert.equal(deep.status, 422, deep.text);
    assert.match(deep.json.error.message, /; activation checkpointing saves \d+ MiB\), over the 40 MiB cap/);
    // Bad number_checkpoints: 400 naming it.
    for (const [n, re] of [[0, /from 1 to/], [10, /9 layers/], ['2', /integer/], [2.5, /integer/]]) {
      const r = await api(d.url, 'POST', '/v1/jobs', deepSpec({number_checkpoints: n}));
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error.field, 'ds_config.activation_checkpointing.number_checkpoints');
      assert.match(r.json.error.message, re);
    }
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.total, 1, 'refused jobs left nothing');
  } finally {
    await stopClean(d);
  }
});

test('anneald check applies a memory cap only when --max-job-memory is given', () => {
  const dir = tmpDir();
  try {
    const f = path.join(dir, 'big.json');
    fs.writeFileSync(f, JSON.stringify(bigSpec()));
    const bin = process.env.ANNEALD_BIN || 'build/anneald';
    const run = (...args) => spawnSync(bin, ['check', f, ...args], {encoding: 'utf8', timeout: 20000 * SLOW});
    const plain = run();
    assert.equal(plain.status, 0, plain.stderr);
    const capped = run('--max-job-memory', '64M');
    assert.equal(capped.status, 1, capped.stderr);
    assert.equal(capped.stdout, '');
    assert.match(capped.stderr, /^error: model: this job needs about \d+(\.\d)? MiB \(Adam state 48 MiB.*\), over the 64 MiB cap \(--max-job-memory\)\n$/);
    const roomy = run('--max-job-memory', '1G');
    assert.equal(roomy.status, 0, roomy.stderr);
    assert.equal(roomy.stdout, plain.stdout);
    const bad = run('--max-job-memory', 'lots');
    assert.equal(bad.status, 2, bad.stderr);
  } finally {
    removeDir(dir);
  }
});

test('/metrics shows each running job\'s activation memory and what checkpointing saves of it', async () => {
  const d = await startDaemon({args: ['--workers', '2']});
  try {
    const saved = {};
    const ids = {};
    for (const [k, ckpt] of [['plain', null], ['ckpt', {}]]) {
      const spec = {...deepSpec(ckpt), name: k, steps: 1000000};
      const r = await api(d.url, 'POST', '/v1/jobs', spec);
      assert.equal(r.status, 201, r.text);
      ids[k] = r.json.id;
    }
    for (const k of Object.keys(ids)) await waitJob(d.url, ids[k], (j) => j.state === 'running' && j.step > 0);
    const text = (await api(d.url, 'GET', '/metrics')).text;
    for (const k of Object.keys(ids)) {
      const act = new RegExp(`^anneald_job_activation_bytes\\{job="${ids[k]}"\\} (\\d+)$`, 'm').exec(text);
      const sv = new RegExp(`^anneald_job_activation_saved_bytes\\{job="${ids[k]}"\\} (\\d+)$`, 'm').exec(text);
      assert.ok(act && sv, `${k}: ${text.split('\n').filter((l) => l.includes('activation')).join('\n')}`);
      saved[k] = {act: Number(act[1]), saved: Number(sv[1])};
    }
    // The same model: without checkpointing nothing is saved; with one checkpoint per layer
    // the activations kept plus those saved are what the plain job keeps (about 52 MiB).
    assert.equal(saved.plain.saved, 0);
    assert.ok(saved.ckpt.saved > 20 * 2 ** 20, JSON.stringify(saved));
    assert.equal(saved.ckpt.act + saved.ckpt.saved, saved.plain.act, JSON.stringify(saved));
    for (const id of Object.values(ids)) await api(d.url, 'POST', `/v1/jobs/${id}/cancel`);
  } finally {
    await d.stop();
  }
});

test('a resume whose state write ends after SIGTERM leaves the job queued, and the daemon still stops', async () => {
  const dir = tmpDir();
  let d = await startDaemon({dir, args: ['--workers', '1']});
  let holder = null;
  try {
    const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({name: 'late-resume', steps: 50000000}));
    assert.equal(r.status, 201, r.text);
    const id = r.json.id;
    await waitStates(d.url, id, ['running']);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${id}/pause`)).json.state, 'paused');
    // Another process holds the store's write lock: the resume's state write waits behind it.
    holder = spawn('sqlite3', ['-batch', d.db], {stdio: ['pipe', 'pipe', 'inherit']});
    let out = '';
    holder.stdout.on('data', (c) => { out += c; });
    holder.stdin.write("PRAGMA busy_timeout=10000;\nBEGIN IMMEDIATE;\nSELECT 'locked';\n");
    await waitFor(() => out.includes('locked'), {what: 'the write lock'});
    const resume = api(d.url, 'POST', `/v1/jobs/${id}/resume`).catch(() => null);
    await sleep(300);
    d.proc.kill('SIGTERM');
    await sleep(1500);
    holder.stdin.end('COMMIT;\n'); // the resume's write goes through, while the daemon drains
    let timer;
    const exit = await Promise.race([d.exited, new Promise((res) => { timer = setTimeout(() => res(null), 15000 * SLOW); })]);
    clearTimeout(timer);
    assert.ok(exit, 'the daemon did not stop within 15 s of SIGTERM');
    assert.deepEqual(exit, {code: 0, signal: null}, d.stderr().slice(-3000));
    await d.stop();
    await resume;
    // The resume went through in the store: after a restart the job is queued again and trains.
    d = await startDaemon({dir, args: ['--workers', '1']});
    assert.ok(['queued', 'running'].includes((await getJob(d.url, id)).state));
    await waitStates(d.url, id, ['running']);
    await stopClean(d);
  } finally {
    if (holder && holder.exitCode === null) holder.kill();
    if (d.running()) await d.kill9();
    removeDir(dir);
  }
});
