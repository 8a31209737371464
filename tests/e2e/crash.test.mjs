// Crash tests: kill -9 the daemon at random moments while it trains, restart it each time,
// and check that nothing was lost or corrupted (DESIGN.md, "State and determinism", "Failure").
//
// Scenario 1 runs one job through CRASH_KILLS kill/restart cycles (default 24). Each cycle picks
// a way to time its kill from a seeded PRNG, so a failure can be replayed with CRASH_SEED:
//   startup     right after the daemon serves: the restart recovery (requeue, restore, rewind)
//   steps       a uniform delay of 0..400 ms: mostly in the middle of training steps
//   checkpoint  just before or after the step of a periodic checkpoint, to land in its commit
//   metrics     one metric-flush interval after a metric batch was seen committed, to land
//               on the next batch's commit
// After every kill the store is read as the crash left it (read-only, so the next start does
// the WAL recovery itself) and the window the kill landed in is classified from what is
// observable: metrics flushed up to a checkpoint step whose checkpoint is missing means the
// kill came during the checkpoint (serialise + commit); for kills aimed at a timed metric
// batch, whether that batch is on disk says if the kill came just after or just before (or
// during) its commit.
// At the end: PRAGMA integrity_check is ok, the job completed, its weights are byte-identical to
// the same spec run without interruption in a fresh daemon, and its metrics have one row per
// step 1..N whose loss, lr and grad_norm equal the uninterrupted run's bit for bit.
//
// Scenario 2 kills the daemon while two jobs train on two workers and a third is paused: the
// paused job stays paused across restarts, the two others continue and end like an
// uninterrupted run.
//
// Environment: CRASH_KILLS (kills in scenario 1), CRASH_SEED (PRNG seed), CRASH_REPORT (file
// that receives the summary, e.g. build/crash-test.txt), ANNEALD_BIN (the daemon).
import test from 'node:test';
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {startDaemon, api, waitFor, tmpDir, tutorialJob, SANITIZED, assertSameMetrics,
        prng} from './lib.mjs';

const KILLS = Math.max(1, parseInt(process.env.CRASH_KILLS || '24', 10));
const SEED = process.env.CRASH_SEED ? parseInt(process.env.CRASH_SEED, 10) >>> 0
                                    : (Math.random() * 2 ** 32) >>> 0;

// The checkpoint interval of scenario 1, and the daemon's metric flush interval
// (jobs/workers.c METRIC_FLUSH_S): the kill timing aims at both.
const EVERY = 50;
const FLUSH_MS = 250;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Runs SQL through the sqlite3 command-line shell. readOnly opens the file read-only, so the
// shell neither checkpoints nor removes the WAL the crash left behind.
function sql(db, text, {readOnly = true} = {}) {
  const target = readOnly ? `file:${db}?mode=ro` : db;
  const r = spawnSync('sqlite3', ['-batch', '-noheader', '-separator', '|', target, text],
                      {encoding: 'utf8'});
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`sqlite3 ${db}: ${r.stderr}`);
  return r.stdout.trim();
}

// What the store holds for a job: metric rows (count, first, last step, and how many metric
// blocks break the run 1, 2, … by a gap, an overlap or a row count that does not fit their
// step range), the latest checkpoint step and the state name.
const STATES = ['queued', 'running', 'paused', 'completed', 'failed', 'cancelled'];
function storeView(db, id) {
  const q = `SELECT (SELECT ifnull(sum(nrows),0) FROM metric_blocks WHERE job=j.num),` +
            ` (SELECT ifnull(min(first_step),0) FROM metric_blocks WHERE job=j.num),` +
            ` (SELECT ifnull(max(last_step),0) FROM metric_blocks WHERE job=j.num),` +
            ` (SELECT count(*) FROM (SELECT first_step f, last_step l, nrows n,` +
            `   lag(last_step) OVER (ORDER BY first_step) p FROM metric_blocks WHERE job=j.num)` +
            `   WHERE n != l - f + 1 OR f != ifnull(p, 0) + 1),` +
            ` (SELECT ifnull(max(step),0) FROM checkpoints WHERE job=j.num),` +
            ` j.state FROM jobs j WHERE j.id='${id}';`;
  const [count, first, last, broken, ckpt, state] = sql(db, q).split('|').map(Number);
  return {count, first, last, broken, ckpt, state: STATES[state]};
}

// The store's invariants that hold at every instant, crash or not.
function checkStore(db, id, where) {
  const qc = sql(db, 'PRAGMA quick_check;');
  assert.equal(qc, 'ok', `${where}: quick_check says ${qc}`);
  const v = storeView(db, id);
  if (v.count > 0) {
    assert.equal(v.first, 1, `${where}: metrics start at step ${v.first}, not 1`);
    assert.equal(v.count, v.last, `${where}: ${v.count} metric rows for steps 1..${v.last} (gaps or duplicates)`);
    assert.equal(v.broken, 0, `${where}: ${v.broken} metric blocks overlap or leave gaps`);
  }
  assert.ok(v.ckpt <= v.last || v.ckpt === 0,
            `${where}: checkpoint at step ${v.ckpt} but metrics only up to ${v.last}`);
  return v;
}

async function getJob(url, id) {
  const r = await api(url, 'GET', `/v1/jobs/${id}`);
  assert.equal(r.status, 200, `GET job ${id}: ${r.text}`);
  return r.json;
}

async function waitState(url, id, state, timeoutMs) {
  return waitFor(async () => {
    const j = await getJob(url, id);
    if (j.state === 'failed') throw new Error(`job ${id} failed: ${j.error}`);
    return j.state === state && j;
  }, {timeoutMs, intervalMs: 50, what: `job ${id} ${state}`});
}

// Starts the daemon on an existing store (whose directory outlives the daemon).
async function start(db, workers) {
  return startDaemon({dir: path.dirname(db), args: ['--db', db, '--workers', String(workers)]});
}

// SIGTERM, then the exit status ({code, signal}); SIGKILL if it takes over 20 s. Unlike
// lib's stop() it leaves no timer behind, which would hold the test file open; kill9() on the
// exited daemon still runs lib's checks (sanitizer report) and clean-up.
async function stop(d) {
  if (d.running()) {
    d.proc.kill('SIGTERM');
    let timer;
    const late = new Promise((r) => { timer = setTimeout(() => r(null), 20000); });
    await Promise.race([d.exited, late]);
    clearTimeout(timer);
  }
  return d.kill9();
}

// A job heavy enough that a checkpoint (parameters + Adam's two moments, 3.3 MB) takes
// measurable time, with a checkpoint every EVERY steps and a decaying schedule so every step's
// lr differs.
function heavySpec(steps, {seed = 7, hidden = [512, 512], name = 'crash'} = {}) {
  return {
    name, seed,
    model: {type: 'mlp', inputs: 32, hidden, outputs: 1, activation: 'tanh'},
    loss: 'mse',
    data: {type: 'synthetic', task: 'regression', samples: 4096, features: 32, outputs: 1},
    steps,
    checkpoint: {every_steps: EVERY, keep_last: 2},
    ds_config: {
      train_batch_size: 32,
      optimizer: {type: 'Adam', params: {lr: 0.001}},
      scheduler: {type: 'WarmupDecayLR',
                  params: {warmup_min_lr: 0, warmup_max_lr: 0.001, warmup_num_steps: 100,
                           total_num_steps: steps}},
    },
  };
}

// Runs spec in a fresh daemon without interruption; resolves to {weights, csv, ms}.
async function uninterrupted(specs, workers) {
  const d = await startDaemon({args: ['--workers', String(workers)]});
  try {
    const t0 = Date.now();
    const ids = [];
    for (const s of specs) {
      const r = await api(d.url, 'POST', '/v1/jobs', s);
      assert.equal(r.status, 201, r.text);
      ids.push(r.json.id);
    }
    const out = [];
    for (const id of ids) {
      await waitState(d.url, id, 'completed', 600000);
      out.push({weights: (await api(d.url, 'GET', `/v1/jobs/${id}/weights`)).text,
                csv: (await api(d.url, 'GET', `/v1/jobs/${id}/metrics?format=csv`)).text});
    }
    out.ms = Date.now() - t0;
    const ex = await stop(d);
    assert.equal(ex.code, 0, `reference daemon exit ${JSON.stringify(ex)}:\n${d.log()}`);
    return out;
  } finally {
    await d.kill9();
  }
}

// Waits until the job steps past `from` (the restart's rewind is done), then polls the
// committed metrics until a timed batch shows up; resolves to {at, last} (when it was seen and
// the last committed step) or null after timeoutMs.
async function nextBatch(url, id, from, timeoutMs) {
  const end = Date.now() + timeoutMs;
  if (!await untilStep(url, id, from + 1, timeoutMs)) return null;
  let base = null;
  while (Date.now() < end) {
    const r = await api(url, 'GET', `/v1/jobs/${id}/metrics?from=${from + 1}`).catch(() => null);
    const steps = r && r.status === 200 && r.json ? r.json.step : null;
    if (steps) {
      const last = steps.length ? steps[steps.length - 1] : from;
      if (base === null) base = last;
      else if (last > base && last % EVERY !== 0) return {at: Date.now(), last};
      // A batch ending on a checkpoint step is the flush before that checkpoint, which does not
      // move the flush timer: keep waiting for a timed one.
      if (last > base) base = last;
    }
    await sleep(1);
  }
  return null;
}

// Polls the live step until it reaches `step`; false after timeoutMs.
async function untilStep(url, id, step, timeoutMs) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const r = await api(url, 'GET', `/v1/jobs/${id}`).catch(() => null);
    if (r && r.status === 200 && (r.json.step >= step || r.json.state !== 'running')) return true;
    await sleep(1);
  }
  return false;
}

function report(t, lines) {
  const text = lines.join('\n') + '\n';
  for (const l of lines) t.diagnostic(l);
  if (process.env.CRASH_REPORT) {
    fs.mkdirSync(path.dirname(process.env.CRASH_REPORT), {recursive: true});
    fs.appendFileSync(process.env.CRASH_REPORT, text);
  }
}

test(`kill -9 at random moments ${KILLS} times: the job ends as if never interrupted (seed ${SEED})`,
     {timeout: 60 * 60 * 1000}, async (t) => {
  const rand = prng(SEED);
  const t0 = Date.now();
  // Progress per cycle is roughly one checkpoint interval; the job is long enough that every
  // kill lands while it is still training.
  const steps = Math.max(1000, KILLS * (SANITIZED ? 40 : 100));
  const spec = heavySpec(steps);
  const dir = tmpDir('anneald-crash-');
  const db = path.join(dir, 'crash.db');
  const windows = {};
  const aims = {};
  let id = null;
  let resumedFrom = 0;          // the checkpoint step the current run restarted from
  let lostSteps = 0;
  let d = null;
  try {
    for (let k = 0; k < KILLS; k++) {
      const where = `seed ${SEED}, kill ${k + 1}`;
      d = await start(db, 1);
      if (id === null) {
        const r = await api(d.url, 'POST', '/v1/jobs', spec);
        assert.equal(r.status, 201, r.text);
        id = r.json.id;
      }
      const u = rand();
      let aim = u < 0.15 ? 'startup' : u < 0.45 ? 'steps' : u < 0.75 ? 'checkpoint' : 'metrics';
      // Should the job get near its end with kills left (a fast machine), the rest hit the
      // restart recovery, which makes no progress.
      if (resumedFrom > 0.75 * steps) aim = 'startup';
      aims[aim] = (aims[aim] || 0) + 1;
      let seenLast = -1;
      let live = null;
      if (aim === 'startup') {
        await sleep(Math.floor(rand() * 4));
      } else if (aim === 'steps') {
        await sleep(Math.floor(rand() * 400));
      } else if (aim === 'checkpoint') {
        // Up to 2 steps before a checkpoint step, then 0..11 ms: before, in and after its commit.
        const j = await getJob(d.url, id);
        const target = (Math.floor(Math.max(j.step, resumedFrom) / EVERY) + 1) * EVERY -
                       Math.floor(rand() * 3);
        await untilStep(d.url, id, target, 5000);
        await sleep(Math.floor(rand() * 12));
      } else {
        // The worker flushes metrics every FLUSH_MS, timed from the step before the commit
        // that the poll saw a millisecond or two later: aim from 12 ms early to 4 ms late.
        // The job is read before the wait here, so the request does not delay the kill.
        const b = await nextBatch(d.url, id, resumedFrom, 3000);
        live = await api(d.url, 'GET', `/v1/jobs/${id}`).catch(() => null);
        if (b) {
          seenLast = b.last;
          const at = b.at + FLUSH_MS - 12 + Math.floor(rand() * 17);
          await sleep(Math.max(0, at - Date.now()));
        }
      }
      if (aim !== 'startup' && aim !== 'metrics')
        live = await api(d.url, 'GET', `/v1/jobs/${id}`).catch(() => null);
      await d.kill9();
      assert.ok(!/ anneald (error|warn): |AddressSanitizer|runtime error/.test(d.log()), `${where}: daemon log:\n${d.log()}`);

      const v = checkStore(db, id, where);
      assert.ok(v.ckpt >= resumedFrom, `${where}: latest checkpoint went back from ${resumedFrom} to ${v.ckpt}`);
      assert.ok(['queued', 'running', 'completed'].includes(v.state), `${where}: state ${v.state}`);
      assert.notEqual(v.state, 'completed', `${where}: the job completed before the kills ran out; make it longer`);
      let win;
      const liveStep = live && live.status === 200 ? live.json.step : null;
      if (aim === 'startup' || liveStep === null || liveStep <= resumedFrom) win = 'startup/recovery';
      else if (v.last > v.ckpt && v.last % EVERY === 0) win = 'checkpoint';
      else if (v.last === v.ckpt && liveStep === v.ckpt) win = 'just after a checkpoint commit';
      // The timed batch after the one seen ends off the checkpoint steps (flushes before a
      // checkpoint end on one): on disk means the kill came just after its commit.
      else if (aim === 'metrics' && seenLast >= 0)
        win = v.last > seenLast && v.last % EVERY !== 0 ? 'just after a metric commit' : 'just before a metric commit';
      else win = 'steps';
      windows[win] = (windows[win] || 0) + 1;
      if (liveStep !== null) lostSteps += Math.max(0, liveStep - v.ckpt);
      if (process.env.CRASH_VERBOSE)
        t.diagnostic(`kill ${k + 1}: aim ${aim}, landed ${win}; live step ${liveStep}, ` +
                     `metrics to ${v.last}, checkpoint ${v.ckpt}, state ${v.state}`);
      resumedFrom = v.ckpt;
    }

    d = await start(db, 1);
    const done = await waitState(d.url, id, 'completed', 600000);
    assert.equal(done.step, steps);
    const weights = (await api(d.url, 'GET', `/v1/jobs/${id}/weights`)).text;
    const csv = (await api(d.url, 'GET', `/v1/jobs/${id}/metrics?format=csv`)).text;
    const ex = await stop(d);
    assert.equal(ex.code, 0, `exit after the last run ${JSON.stringify(ex)}:\n${d.log()}`);
    assert.equal(sql(db, 'PRAGMA integrity_check;', {readOnly: false}), 'ok');
    const crashedMs = Date.now() - t0;

    const refs = await uninterrupted([spec], 1);
    const ref = refs[0];
    assert.equal(JSON.parse(weights).step, steps);
    assert.ok(weights === ref.weights, `seed ${SEED}: weights differ from the uninterrupted run`);
    assertSameMetrics(csv, ref.csv, steps, `seed ${SEED}`);

    const fmt = (o) => Object.entries(o).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
    report(t, [
      `crash test: seed ${SEED}, ${KILLS} kills, job of ${steps} steps (checkpoint every ${EVERY})`,
      `  kill timing aimed at: ${fmt(aims)}`,
      `  kills landed in:      ${fmt(windows)}`,
      `  steps trained again after kills: ${lostSteps}`,
      `  time: ${(crashedMs / 1000).toFixed(1)} s with kills, ${(refs.ms / 1000).toFixed(1)} s uninterrupted`,
      `  result: integrity_check ok, completed, weights and ${steps} metric rows identical`,
    ]);
    fs.rmSync(dir, {recursive: true, force: true});
  } finally {
    if (d) await d.kill9();
  }
});

test(`kill -9 with two jobs training on two workers and one paused (seed ${SEED})`,
     {timeout: 30 * 60 * 1000}, async (t) => {
  const rand = prng(SEED ^ 0x9e3779b9);
  const kills = 3;
  const specs = {
    a: heavySpec(2500, {seed: 1, hidden: [256, 256], name: 'a'}),
    b: heavySpec(2000, {seed: 2, hidden: [256, 256], name: 'b'}),
    c: heavySpec(1500, {seed: 3, hidden: [256, 256], name: 'c'}),
  };
  const dir = tmpDir('anneald-crash2-');
  const db = path.join(dir, 'crash.db');
  const ids = {};
  let d = await start(db, 2);
  try {
    // c trains a little, then is paused (which checkpoints it); a and b take both workers.
    let r = await api(d.url, 'POST', '/v1/jobs', specs.c);
    assert.equal(r.status, 201, r.text);
    ids.c = r.json.id;
    await waitFor(async () => (await getJob(d.url, ids.c)).step >= 120, {timeoutMs: 60000, what: 'c at step 120'});
    r = await api(d.url, 'POST', `/v1/jobs/${ids.c}/pause`);
    assert.equal(r.status, 200, r.text);
    const paused = await waitState(d.url, ids.c, 'paused', 30000);
    assert.ok(paused.step >= 120 && paused.last_checkpoint_step === paused.step,
              `paused at step ${paused.step}, checkpoint ${paused.last_checkpoint_step}`);
    for (const k of ['a', 'b']) {
      r = await api(d.url, 'POST', '/v1/jobs', specs[k]);
      assert.equal(r.status, 201, r.text);
      ids[k] = r.json.id;
    }
    const ckpt = {a: 0, b: 0};
    for (let k = 0; k < kills; k++) {
      const where = `seed ${SEED}, two-worker kill ${k + 1}`;
      // Both jobs train (past their restored checkpoint), then a random moment later: kill.
      await waitFor(async () => {
        const [ja, jb] = [await getJob(d.url, ids.a), await getJob(d.url, ids.b)];
        return ja.state === 'running' && jb.state === 'running' && ja.step > ckpt.a + 20 && jb.step > ckpt.b + 20;
      }, {timeoutMs: 60000, intervalMs: 5, what: `${where}: a and b training`});
      await sleep(Math.floor(rand() * 300));
      await d.kill9();
      for (const j of ['a', 'b', 'c']) checkStore(db, ids[j], `${where}, job ${j}`);
      const va = storeView(db, ids.a), vb = storeView(db, ids.b), vc = storeView(db, ids.c);
      assert.equal(vc.state, 'paused', `${where}: c is ${vc.state} in the store`);
      assert.equal(vc.last, paused.step, `${where}: c's metrics moved to ${vc.last}`);
      assert.equal(vc.ckpt, paused.step, `${where}: c's checkpoint moved to ${vc.ckpt}`);
      assert.equal(va.state, 'running', `${where}: a is ${va.state} in the store`);
      assert.equal(vb.state, 'running', `${where}: b is ${vb.state} in the store`);
      assert.ok(va.ckpt >= ckpt.a && vb.ckpt >= ckpt.b, `${where}: a checkpoint went back`);
      ckpt.a = va.ckpt;
      ckpt.b = vb.ckpt;
      d = await start(db, 2);
      const jc = await getJob(d.url, ids.c);
      assert.equal(jc.state, 'paused', `${where}: c is ${jc.state} after the restart`);
      assert.equal(jc.step, paused.step, `${where}: c's step after the restart`);
    }
    // a and b go on by themselves and finish; c stays paused with both workers free.
    const done = {};
    for (const k of ['a', 'b']) {
      done[k] = await waitState(d.url, ids[k], 'completed', 600000);
      assert.equal(done[k].step, specs[k].steps);
    }
    await sleep(300);
    const jc = await getJob(d.url, ids.c);
    assert.equal(jc.state, 'paused', `seed ${SEED}: c is ${jc.state} once a and b are done`);
    assert.equal(jc.step, paused.step);
    r = await api(d.url, 'POST', `/v1/jobs/${ids.c}/resume`);
    assert.equal(r.status, 200, r.text);
    await waitState(d.url, ids.c, 'completed', 600000);
    const got = {};
    for (const k of ['a', 'b', 'c']) {
      got[k] = {weights: (await api(d.url, 'GET', `/v1/jobs/${ids[k]}/weights`)).text,
                csv: (await api(d.url, 'GET', `/v1/jobs/${ids[k]}/metrics?format=csv`)).text};
    }
    const ex = await stop(d);
    assert.equal(ex.code, 0, `exit ${JSON.stringify(ex)}:\n${d.log()}`);
    assert.equal(sql(db, 'PRAGMA integrity_check;', {readOnly: false}), 'ok');

    const refs = await uninterrupted([specs.a, specs.b, specs.c], 2);
    ['a', 'b', 'c'].forEach((k, i) => {
      assert.ok(got[k].weights === refs[i].weights, `seed ${SEED}: job ${k}'s weights differ from the uninterrupted run`);
      assertSameMetrics(got[k].csv, refs[i].csv, specs[k].steps, `seed ${SEED}, job ${k}`);
    });
    report(t, [`two workers, one job paused: ${kills} kills; the paused job stayed paused, ` +
               `the others completed; all three identical to uninterrupted runs`]);
    fs.rmSync(dir, {recursive: true, force: true});
  } finally {
    await d.kill9();
  }
});

// A fork (resume_from without a step) starts from the source's latest checkpoint and keeps
// it as its own checkpoint at step 0: killed before its first periodic checkpoint while the
// source trains on (its retention dropping what the fork started from), it starts again from
// the same state, and its first steps come out as before the kill.
test('a fork killed before its first checkpoint starts again from what it forked', {timeout: 120000}, async () => {
  const dir = tmpDir('anneald-forkcrash-');
  const db = path.join(dir, 'fork.db');
  let d = await start(db, 2);
  try {
    const src = await api(d.url, 'POST', '/v1/jobs', tutorialJob({name: 'source', steps: 1000000000,
      checkpoint: {every_steps: 100000, keep_last: 2}}));
    assert.equal(src.status, 201, src.text);
    await waitFor(async () => (await api(d.url, 'GET', `/v1/jobs/${src.json.id}`)).json.last_checkpoint_step >= 200000,
      {what: 'the source to checkpoint'});
    const fork = await api(d.url, 'POST', '/v1/jobs', tutorialJob({name: 'fork', steps: 1000000000,
      resume_from: {job: src.json.id}, checkpoint: {every_steps: 0, every_seconds: 0}}));
    assert.equal(fork.status, 201, fork.text);
    await waitFor(async () => (await api(d.url, 'GET', `/v1/jobs/${fork.json.id}`)).json.step > 1000,
      {what: 'the fork to train'});
    const ck = await api(d.url, 'GET', `/v1/jobs/${fork.json.id}/checkpoints`);
    assert.deepEqual(ck.json.checkpoints.map((c) => c.step), [0]);
    const rows = async () => {
      const m = (await api(d.url, 'GET', `/v1/jobs/${fork.json.id}/metrics?from=1&to=5`)).json;
      return m.loss && m.loss.length === 5 ? m : null;
    };
    const first = await waitFor(rows, {what: 'the fork\'s first rows stored'});
    // the source moves on: its keep_last drops every checkpoint it had when the fork started
    const had = (await api(d.url, 'GET', `/v1/jobs/${src.json.id}/checkpoints`)).json.checkpoints.map((c) => c.step);
    await waitFor(async () => {
      const cs = (await api(d.url, 'GET', `/v1/jobs/${src.json.id}/checkpoints`)).json.checkpoints;
      return !cs.some((c) => had.includes(c.step));
    }, {what: 'the source to drop the checkpoints the fork could start from'});
    await d.kill9();
    d = await start(db, 2);
    const again = await waitFor(async () => {
      const j = (await api(d.url, 'GET', `/v1/jobs/${fork.json.id}`)).json;
      if (j.state === 'failed') throw new Error(`the fork failed: ${j.error}`);
      return j.state === 'running' && j.step > 10 ? j : null;
    }, {what: 'the fork to train again'});
    assert.equal(again.restarts ?? 0, 0);
    const redo = await waitFor(rows, {what: 'the fork\'s first rows stored again'});
    assert.deepEqual(redo.loss, first.loss);
    assert.deepEqual(redo.grad_norm, first.grad_norm);
    for (const id of [src.json.id, fork.json.id])
      await api(d.url, 'POST', `/v1/jobs/${id}/cancel`);
    await d.stop();
    fs.rmSync(dir, {recursive: true, force: true});
  } finally {
    await d.kill9();
  }
});
