// Power loss: what the store holds after the machine loses power at any moment.
//
// kill -9 (crash.test.mjs) never loses a write the daemon made, synced or not: the kernel's
// page cache survives it. Here the daemon runs a small workload (three tiny jobs with
// checkpoints, a pause and resume, a delete, a clean stop) with tests/powerloss/iolog.so
// preloaded, which logs every write, truncate and sync of the store's files. For many crash
// points of that log, tests/powerloss/replay.mjs builds the files a power loss there could
// leave (what was synced, plus none, all or a random subset of the unsynced writes, some torn
// at 512-byte sectors), and each is checked:
//   - PRAGMA integrity_check (the sqlite3 shell, on a copy) is ok;
//   - the daemon starts on it and /healthz answers 200;
//   - every job whose submit was answered 201 before the crash point is there, and every job
//     whose delete was answered 204 is not;
//   - a job whose end (completed, paused) was reported before the crash point, with no request
//     for it sent since, is still in that state;
//   - every checkpoint the daemon reported (SSE `checkpoint`) before the last sync of the WAL
//     that precedes the crash point is there or was retired by a newer one, and every
//     checkpoint the store lists reads back (GET weights?step=);
//   - the daemon's log has no warning or error, and every job, resumed where it was paused,
//     ends with the weights and metric rows of an uninterrupted run, bit for bit.
// Checkpoints and metrics are committed without a sync (docs/STORAGE.md, "Durability"): one
// reported but not yet covered by a sync may be taken back by a power loss; the summary says
// in how many states that happened.
//
// Environment: POWERLOSS_POINTS (crash points, default 100; three states each),
// POWERLOSS_SEED, POWERLOSS_REPORT (a file that receives the summary).
import test from 'node:test';
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {startDaemon, api, waitFor, tmpDir, removeDir, tutorialJob, assertSameMetrics, readEvents,
        prng, BIN, SANITIZED} from './lib.mjs';
import {readLog, logClock, walk, materialize, sectorsOf, OP} from '../powerloss/replay.mjs';

const SHIM = path.resolve(path.dirname(BIN), 'tests/powerloss/iolog.so');
const POINTS = Math.max(2, parseInt(process.env.POWERLOSS_POINTS || '100', 10));
const SEED = process.env.POWERLOSS_SEED ? parseInt(process.env.POWERLOSS_SEED, 10) >>> 0
                                        : (Math.random() * 2 ** 32) >>> 0;
const STATES = ['queued', 'running', 'paused', 'completed', 'failed', 'cancelled', 'stopped'];
const FINAL = new Set(['paused', 'completed']);

const SPECS = {
  a: tutorialJob({name: 'a', seed: 1, steps: 240, checkpoint: {every_steps: 40, keep_last: 2}}),
  b: tutorialJob({name: 'b', seed: 2, steps: 120, checkpoint: {every_steps: 40, keep_last: 2}}),
  c: tutorialJob({name: 'c', seed: 3, steps: 200, checkpoint: {every_steps: 50, keep_last: 3}}),
};

function sqlite(db, text) {
  const r = spawnSync('sqlite3', ['-batch', '-noheader', '-separator', '|', db, text], {encoding: 'utf8'});
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`sqlite3 ${db}: ${r.stderr}`);
  return r.stdout.trim().split('\n').filter(Boolean);
}

const getJob = async (url, id) => (await api(url, 'GET', `/v1/jobs/${id}`)).json;

// The uninterrupted runs: {name: {weights, csv}}.
async function references() {
  const d = await startDaemon({args: ['--workers', '2']});
  try {
    const out = {};
    for (const [name, spec] of Object.entries(SPECS)) {
      const r = await api(d.url, 'POST', '/v1/jobs', spec);
      assert.equal(r.status, 201, r.text);
      await waitFor(async () => (await getJob(d.url, r.json.id)).state === 'completed', {what: `reference ${name}`});
      out[name] = {weights: (await api(d.url, 'GET', `/v1/jobs/${r.json.id}/weights`)).text,
                   csv: (await api(d.url, 'GET', `/v1/jobs/${r.json.id}/metrics?format=csv`)).text};
    }
    return out;
  } finally {
    await d.stop();
  }
}

// Runs the workload with the shim; returns what the clients were told, each with the log's
// clock when they were told it (`seq`) or when a request was sent (`sent`).
async function record(dir, logDir) {
  const db = path.join(dir, 'pl.db');
  const env = {LD_PRELOAD: SHIM, IOLOG_DB: db, IOLOG_DIR: logDir};
  if (SANITIZED) env.ASAN_OPTIONS = `${process.env.ASAN_OPTIONS || ''}:verify_asan_link_order=0`;
  const d = await startDaemon({dir, args: ['--db', db, '--workers', '2'], env});
  const told = {jobs: [], deletes: [], sent: [], finals: [], checkpoints: []};
  const clock = () => logClock(logDir);
  // Every event, with the clock when it came; the stream ends when the daemon stops.
  let opened, seen = 0;
  const open = new Promise((r) => { opened = r; });
  const stream = readEvents(d.url, '/v1/events', {timeoutMs: 10 * 60 * 1000, onOpen: () => opened(), until: (evs) => {
    for (; seen < evs.length; seen++) {
      const {event, data} = evs[seen];
      if (event === 'checkpoint') told.checkpoints.push({id: data.id, step: data.step, seq: clock()});
      if (event === 'state' && FINAL.has(data.state)) told.finals.push({id: data.id, state: data.state, seq: clock()});
    }
    return false;
  }});
  await open;
  try {
    const submit = async (name) => {
      const r = await api(d.url, 'POST', '/v1/jobs', SPECS[name]);
      assert.equal(r.status, 201, r.text);
      told.jobs.push({name, id: r.json.id, seq: clock()});
      return r.json.id;
    };
    const send = async (id, method, p) => {
      told.sent.push({id, method, sent: clock()});
      return api(d.url, method, p);
    };
    const until = (id, states) => waitFor(async () => states.includes((await getJob(d.url, id)).state),
                                          {what: `job ${id} ${states}`});
    const a = await submit('a');
    const c = await submit('c');
    const p = await send(c, 'POST', `/v1/jobs/${c}/pause`);
    assert.ok([200, 409].includes(p.status), p.text);
    await until(c, ['paused', 'completed']);
    const b = await submit('b');
    await until(b, ['completed']);
    const del = await send(b, 'DELETE', `/v1/jobs/${b}`);
    assert.equal(del.status, 204, del.text);
    told.deletes.push({id: b, seq: clock()});
    if ((await getJob(d.url, c)).state === 'paused') {
      const r = await send(c, 'POST', `/v1/jobs/${c}/resume`);
      assert.equal(r.status, 200, r.text);
    }
    await until(c, ['completed']);
    await until(a, ['completed']);
    // The events of the ends come a moment after the answers above.
    await waitFor(() => told.finals.filter((f) => f.state === 'completed').length >= 3, {what: 'three completions'});
  } catch (e) {
    await d.kill9();
    throw e;
  }
  const ex = await d.stop();
  await stream;
  assert.equal(ex.code, 0, `the recorded daemon exited with ${JSON.stringify(ex)}:\n${d.log()}`);
  return told;
}

// What a power loss at crash point k must keep, from what the clients were told before k.
function expectations(log, told, k) {
  const wal = log.files.findIndex((f) => f.endsWith('-wal'));
  let covered = -1; // the log's clock at the start of the last WAL sync before k
  for (let i = 0; i < k; i++)
    if (log.ops[i].op === OP.SYNC && log.ops[i].file === wal) covered = Math.max(covered, log.ops[i].cover);
  const deleted = new Set(told.deletes.filter((x) => x.seq <= k).map((x) => x.id));
  // A job whose delete was sent may be gone before the answer came.
  const deleting = new Set(told.sent.filter((x) => x.method === 'DELETE' && x.sent <= k).map((x) => x.id));
  const jobs = told.jobs.filter((j) => j.seq <= k && !deleting.has(j.id)).map((j) => j.id);
  const states = {};
  for (const f of told.finals) {
    if (f.seq > k) continue;
    const later = told.sent.some((s) => s.id === f.id && s.sent >= f.seq && s.sent <= k);
    states[f.id] = later ? undefined : f.state;
  }
  const synced = {}, reported = {};
  for (const c of told.checkpoints) {
    if (c.seq <= covered) synced[c.id] = Math.max(synced[c.id] || 0, c.step);
    if (c.seq <= k) reported[c.id] = Math.max(reported[c.id] || 0, c.step);
  }
  return {jobs, deleted: [...deleted], states, synced, reported};
}

// Checks one rebuilt store; returns {takenBack} (reported checkpoints a power loss took back).
async function check(stateDir, exp, refs, names, where) {
  const db = path.join(stateDir, 'pl.db');
  const copy = path.join(stateDir, 'copy');
  fs.mkdirSync(copy, {recursive: true});
  for (const f of fs.readdirSync(stateDir)) if (f.startsWith('pl.db')) fs.copyFileSync(path.join(stateDir, f), path.join(copy, f));
  const ic = sqlite(path.join(copy, 'pl.db'), "PRAGMA integrity_check; SELECT count(*) FROM sqlite_master WHERE name='jobs';");
  assert.equal(ic[0], 'ok', `${where}: integrity_check: ${ic.join('\n')}`);
  // Before the first start's schema was committed there is no table yet.
  const rows = ic[1] === '0' ? [] : sqlite(path.join(copy, 'pl.db'),
    'SELECT id, state, (SELECT group_concat(step) FROM checkpoints WHERE job=jobs.num) FROM jobs;');
  const stored = {};
  for (const r of rows) {
    const [id, state, steps] = r.split('|');
    stored[id] = {state: STATES[Number(state)], ckpts: steps ? steps.split(',').map(Number) : []};
  }
  for (const id of exp.jobs) assert.ok(stored[id], `${where}: job ${id} was answered 201 and is gone`);
  for (const id of exp.deleted) assert.ok(!stored[id], `${where}: job ${id} was deleted (204) and is back`);
  let takenBack = 0;
  for (const [id, st] of Object.entries(stored)) {
    if (exp.states[id]) assert.equal(st.state, exp.states[id], `${where}: job ${id} was reported ${exp.states[id]}`);
    const newest = Math.max(0, ...st.ckpts);
    if (exp.synced[id]) assert.ok(newest >= exp.synced[id],
      `${where}: job ${id}'s checkpoint at step ${exp.synced[id]} was reported and synced, the newest left is ${newest}`);
    if (exp.reported[id] && newest < exp.reported[id]) takenBack++;
  }

  const d = await startDaemon({dir: stateDir, args: ['--db', db, '--workers', '2']});
  try {
    const h = await api(d.url, 'GET', '/healthz');
    assert.equal(h.status, 200, `${where}: /healthz ${h.text}`);
    const list = await api(d.url, 'GET', '/v1/jobs?limit=1000');
    assert.deepEqual(list.json.jobs.map((j) => j.id).sort(), Object.keys(stored).sort(), `${where}: the jobs listed`);
    for (const [id, st] of Object.entries(stored)) {
      for (const step of st.ckpts) {
        const w = await api(d.url, 'GET', `/v1/jobs/${id}/weights?step=${step}`);
        if (w.status === 200) {
          assert.equal(w.json.step, step, `${where}: job ${id} weights?step=${step}`);
          continue;
        }
        // The job went on training here and its retention retired that checkpoint.
        const now = (await api(d.url, 'GET', `/v1/jobs/${id}/checkpoints`)).json.checkpoints.map((c) => c.step);
        assert.ok(!now.includes(step) && Math.max(...now) > step,
                  `${where}: job ${id}'s checkpoint at step ${step} does not read back (${w.status} ${w.text})`);
      }
      if (st.state === 'paused') {
        const r = await api(d.url, 'POST', `/v1/jobs/${id}/resume`);
        assert.equal(r.status, 200, `${where}: resume ${id}: ${r.text}`);
      }
    }
    for (const id of Object.keys(stored)) {
      const j = await waitFor(async () => {
        const x = await getJob(d.url, id);
        if (x.state === 'failed') throw new Error(`${where}: job ${id} failed: ${x.error}`);
        return x.state === 'completed' && x;
      }, {what: `${where}: job ${id} completed`});
      const name = names[id];
      const weights = (await api(d.url, 'GET', `/v1/jobs/${id}/weights`)).text;
      assert.ok(weights === refs[name].weights, `${where}: job ${id} (${name}) ends with other weights than an uninterrupted run`);
      assertSameMetrics((await api(d.url, 'GET', `/v1/jobs/${id}/metrics?format=csv`)).text, refs[name].csv,
                        j.total_steps, `${where}: job ${id} (${name})`);
    }
    assert.ok(!/ anneald (error|warn): /.test(d.log()), `${where}: the daemon's log:\n${d.log()}`);
  } finally {
    await d.kill9();
  }
  return {takenBack};
}

// n crash points: around every sync and every answer, the start and the end (as many of them
// as fit), and random ones.
function crashPoints(log, told, n, rand) {
  const want = new Set([0, log.ops.length]);
  log.ops.forEach((o, i) => { if (o.op === OP.SYNC) { want.add(i); want.add(i + 1); } });
  for (const x of [...told.jobs, ...told.deletes, ...told.finals, ...told.checkpoints]) want.add(Math.min(x.seq, log.ops.length));
  let pts = [...want];
  while (pts.length > n) pts.splice(Math.floor(rand() * pts.length), 1);
  // The rest anywhere: between syncs, with writes pending.
  for (let tries = 0; pts.length < n && tries < 100 * n; tries++) {
    const k = Math.floor(rand() * (log.ops.length + 1));
    if (!pts.includes(k)) pts.push(k);
  }
  pts = pts.sort((x, y) => x - y);
  return pts;
}

test(`power loss at ${POINTS} crash points of a small workload (seed ${SEED})`, {timeout: 10 * 60 * 1000}, async (t) => {
  assert.ok(fs.existsSync(SHIM), `${SHIM} is missing: make tests builds it`);
  const rand = prng(SEED);
  const dir = tmpDir('anneald-powerloss-');
  const logDir = path.join(dir, 'log');
  fs.mkdirSync(logDir);
  const t0 = Date.now();
  try {
    const refs = await references();
    const told = await record(dir, logDir);
    const log = readLog(logDir);
    const names = Object.fromEntries(told.jobs.map((j) => [j.id, j.name]));
    const points = crashPoints(log, told, POINTS, rand);
    const seen = new Set();
    const tally = {states: 0, distinct: 0, lost: 0, whole: 0, torn: 0, takenBack: 0};
    for (const [k, snap] of walk(log, points)) {
      for (const variant of ['none', 'all', 'random']) {
        const choose = variant === 'none' ? () => false : variant === 'all' ? () => true : (o) => {
          const u = rand();
          if (u < 1 / 3) return false;
          if (u < 2 / 3 || o.op !== OP.WRITE) return true;
          return new Set(sectorsOf(o).filter(() => rand() < 0.5));
        };
        const out = path.join(dir, 'state');
        removeDir(out);
        const n = materialize(log, snap, out, choose);
        tally.states++;
        const exp = expectations(log, told, k);
        const h = crypto.createHash('sha1').update(JSON.stringify(exp));
        for (const f of fs.readdirSync(out).sort()) h.update(f).update(fs.readFileSync(path.join(out, f)));
        const key = h.digest('hex');
        if (seen.has(key)) continue;
        seen.add(key);
        tally.distinct++;
        for (const x of ['lost', 'whole', 'torn']) tally[x] += n[x];
        const where = `seed ${SEED}, crash point ${k} of ${log.ops.length} (${variant}: ${JSON.stringify(n)})`;
        tally.takenBack += (await check(out, exp, refs, names, where)).takenBack;
      }
    }
    const syncs = log.ops.filter((o) => o.op === OP.SYNC).length;
    const lines = [
      `power loss: seed ${SEED}; ${log.ops.length} logged operations (${syncs} syncs) on ${log.files.length} files`,
      `  ${tally.states} states at ${points.length} crash points, ${tally.distinct} distinct ones checked`,
      `  unsynced changes in them: ${tally.lost} lost, ${tally.whole} kept, ${tally.torn} torn`,
      `  states where a reported but unsynced checkpoint was taken back: ${tally.takenBack}`,
      `  time: ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    ];
    for (const l of lines) t.diagnostic(l);
    if (process.env.POWERLOSS_REPORT) fs.appendFileSync(process.env.POWERLOSS_REPORT, lines.join('\n') + '\n');
    // Not a test that cannot fail: the log saw the store's syncs, and the states lost, kept
    // and tore unsynced writes.
    assert.ok(syncs > 0 && log.files.some((f) => f.endsWith('-wal')), `the log: ${log.files}, ${syncs} syncs`);
    assert.ok(tally.distinct >= Math.min(POINTS, 20), `only ${tally.distinct} distinct states`);
    assert.ok(tally.lost > 0 && tally.whole > 0 && tally.torn > 0, `unsynced changes: ${JSON.stringify(tally)}`);
    removeDir(dir);
  } catch (e) {
    t.diagnostic(`the log and states are kept in ${dir}`);
    throw e;
  }
});
