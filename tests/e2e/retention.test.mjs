// End-to-end tests of retention. Checkpoints: keep_best by a metric beside keep_last (checked
// against the rule from the job's recorded metrics), pins through the API, and the spec's
// errors. Metrics: metrics.full_resolution_steps keeps every step of the newest N only and the
// summary pyramid for the rest (a smaller store, charts that still start at step 1), also
// across a kill -9 and the resume after it. The race of retention with a resume that reads a checkpoint is in
// tests/unit/test_store_keep.c (two connections on two threads).
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {api, heavyJob, removeDir, SLOW, startDaemon, tmpDir, tutorialJob, waitFor, waitJob,
  withDaemon} from './lib.mjs';

const ONE = {args: ['--workers', '1']};

async function submit(url, spec) {
  const r = await api(url, 'POST', '/v1/jobs', spec);
  assert.equal(r.status, 201, r.text);
  return r.json;
}

const ckpts = async (url, id) => (await api(url, 'GET', `/v1/jobs/${id}/checkpoints`)).json.checkpoints;

// The steps retention must keep: the keep_last newest of `made`, and the k best by value(step)
// (ties: the newer), where value is undefined for a step without one.
function expected(made, keepLast, k, value, max) {
  const newest = made.slice(-keepLast);
  const scored = made.filter((s) => value(s) !== undefined && value(s) !== null)
    .sort((a, b) => (max ? value(b) - value(a) : value(a) - value(b)) || b - a);
  return [...new Set([...newest, ...scored.slice(0, k)])].sort((a, b) => a - b);
}

test('keep_best by loss (mode max) keeps the checkpoint the rule picks from the recorded losses, and the newest', async () => {
  await withDaemon(ONE, async (d) => {
    const j = await submit(d.url, tutorialJob({name: 'best-loss', steps: 200,
      checkpoint: {every_steps: 20, keep_last: 1, keep_best: {metric: 'loss', mode: 'max'}}}));
    assert.deepEqual(j.spec.checkpoint.keep_best, {metric: 'loss', mode: 'max', k: 1});
    await waitJob(d.url, j.id, (x) => x.state === 'completed');
    const m = (await api(d.url, 'GET', `/v1/jobs/${j.id}/metrics`)).json;
    const loss = new Map(m.step.map((s, i) => [s, m.loss[i]]));
    const made = Array.from({length: 10}, (_, i) => (i + 1) * 20);
    const want = expected(made, 1, 1, (s) => loss.get(s), true);
    assert.equal(want.length, 2, 'the best is not the newest');
    const got = await ckpts(d.url, j.id);
    assert.deepEqual(got.map((c) => c.step), want);
    assert.deepEqual(got.map((c) => c.best), [true, false]);
    assert.deepEqual(got.map((c) => c.pinned), [false, false]);
  });
});

test('keep_best by val_loss: the value of a checkpoint is its latest validation; k of them are kept', async () => {
  await withDaemon(ONE, async (d) => {
    const j = await submit(d.url, tutorialJob({name: 'best-val', steps: 200,
      validation: {fraction: 0.2, every_steps: 30},
      ds_config: {train_batch_size: 8, optimizer: {type: 'SGD', params: {lr: 0.3}}},
      checkpoint: {every_steps: 20, keep_last: 2, keep_best: {metric: 'val_loss', k: 2}}}));
    assert.deepEqual(j.spec.checkpoint.keep_best, {metric: 'val_loss', mode: 'min', k: 2});
    await waitJob(d.url, j.id, (x) => x.state === 'completed');
    const m = (await api(d.url, 'GET', `/v1/jobs/${j.id}/metrics`)).json;
    assert.ok(m.val_step.length >= 5);
    const valAt = (s) => {
      let v;
      m.val_step.forEach((vs, i) => { if (vs <= s) v = m.val_loss[i]; });
      return v;
    };
    const made = Array.from({length: 10}, (_, i) => (i + 1) * 20);
    const want = expected(made, 2, 2, valAt, false);
    const got = await ckpts(d.url, j.id);
    assert.deepEqual(got.map((c) => c.step), want);
    const best = expected(made, 0, 2, valAt, false);
    for (const c of got) assert.equal(c.best, best.includes(c.step), `step ${c.step}`);
  });
});

test('a pinned checkpoint survives retention until unpinned; bad pins are refused naming the field', async () => {
  await withDaemon(ONE, async (d) => {
    const j = await submit(d.url, heavyJob({name: 'pins', checkpoint: {every_steps: 200, keep_last: 1}}));
    // The newest checkpoint may be retired between the list and the pin: then the pin is a
    // 404 naming the step, and the next newest is tried.
    let first, p;
    await waitFor(async () => {
      first = (await ckpts(d.url, j.id)).at(-1);
      if (!first) return false;
      p = await api(d.url, 'POST', `/v1/jobs/${j.id}/checkpoints/${first.step}/pin`);
      if (p.status === 404) assert.equal(p.json.error.field, 'step');
      return p.status !== 404;
    }, {what: 'a checkpoint to pin'});
    assert.equal(p.status, 200, p.text);
    assert.equal(p.json.step, first.step);
    assert.equal(p.json.pinned, true);
    assert.equal(p.json.best, false);
    await waitFor(async () => (await ckpts(d.url, j.id)).some((c) => c.step >= first.step + 600),
                  {what: 'three more checkpoints'});
    let list = await ckpts(d.url, j.id);
    assert.equal(list[0].step, first.step, 'the pinned checkpoint is kept');
    assert.equal(list[0].pinned, true);
    assert.equal(list.length, 2, 'the pinned one and the newest');

    const bad = [
      ['abc', 400, 'step'], ['-1', 400, 'step'], ['1.5', 400, 'step'], ['99999999999999999999', 400, 'step'],
      [String(first.step + 1), 404, 'step'],
    ];
    for (const [step, status, field] of bad) {
      const r = await api(d.url, 'POST', `/v1/jobs/${j.id}/checkpoints/${step}/pin`);
      assert.equal(r.status, status, `${step}: ${r.text}`);
      assert.equal(r.json.error.field, field);
    }
    const nojob = await api(d.url, 'POST', `/v1/jobs/j_999999/checkpoints/${first.step}/pin`);
    assert.equal(nojob.status, 404);
    assert.equal(nojob.json.error.field, 'id');
    const body = await api(d.url, 'POST', `/v1/jobs/${j.id}/checkpoints/${first.step}/unpin`, {all: true});
    assert.equal(body.status, 400);
    assert.equal(body.json.error.field, 'body');
    const mal = await api(d.url, 'POST', `/v1/jobs/${j.id}/checkpoints/${first.step}/unpin`, '{', {'Content-Type': 'application/json'});
    assert.equal(mal.status, 400);
    assert.equal((await ckpts(d.url, j.id))[0].pinned, true, 'refused requests change nothing');

    const u = await api(d.url, 'POST', `/v1/jobs/${j.id}/checkpoints/${first.step}/unpin`, {});
    assert.equal(u.status, 200, u.text);
    assert.equal(u.json.pinned, false);
    await waitFor(async () => !(await ckpts(d.url, j.id)).some((c) => c.step === first.step),
                  {what: 'the unpinned checkpoint to be retired'});
    list = await ckpts(d.url, j.id);
    assert.equal(list.length, 1);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${j.id}/cancel`)).status, 200);
  });
});

test('checkpoint.keep_best errors name the key', async () => {
  await withDaemon(ONE, async (d) => {
    const bad = [
      [{keep_best: {metric: 'acc'}}, 'checkpoint.keep_best.metric'],
      [{keep_best: {}}, 'checkpoint.keep_best.metric'],
      [{keep_best: {metric: 'val_loss'}}, 'checkpoint.keep_best.metric'], // no validation
      [{keep_best: {metric: 'loss', mode: 'up'}}, 'checkpoint.keep_best.mode'],
      [{keep_best: {metric: 'loss', k: 0}}, 'checkpoint.keep_best.k'],
      [{keep_best: {metric: 'loss', k: 1001}}, 'checkpoint.keep_best.k'],
      [{keep_best: {metric: 'loss', n: 1}}, 'checkpoint.keep_best.n'],
      [{keep_best: 'loss'}, 'checkpoint.keep_best'],
    ];
    for (const [ck, field] of bad) {
      const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({checkpoint: ck}));
      assert.equal(r.status, 400, JSON.stringify(ck));
      assert.equal(r.json.error.field, field, `${JSON.stringify(ck)}: ${r.text}`);
    }
    const ok = await submit(d.url, tutorialJob({validation: {fraction: 0.1}, checkpoint: {keep_best: {metric: 'val_acc'}}}));
    assert.deepEqual(ok.spec.checkpoint.keep_best, {metric: 'val_acc', mode: 'max', k: 1});
  });
});

// ---- metrics.full_resolution_steps ---------------------------------------------------------

const RSTEPS = 300000;
const KEEP = 1000;

// Store growth of one tutorial job once its dropped pages are given back (WAL folded in).
async function grownBy(url, spec) {
  const h0 = (await api(url, 'GET', '/healthz')).json.store;
  const j = await submit(url, tutorialJob(spec));
  await waitJob(url, j.id, (x) => x.state === 'completed', 120000 * SLOW);
  // Passive checkpoints move the WAL into the file, and the housekeeping thread gives the
  // dropped blocks' pages back: settled when nothing is free and the size holds still.
  let grown = -1;
  await waitFor(async () => {
    const h = (await api(url, 'GET', '/healthz')).json.store;
    const prev = grown;
    grown = h.bytes - h0.bytes;
    return h.free_pages === 0 && grown === prev;
  }, {timeoutMs: 30000 * SLOW, intervalMs: 1500, what: 'the store settled'});
  return {job: j, grown};
}

test('metrics.full_resolution_steps: the newest steps every one, the pyramid for the rest, a far smaller store', async () => {
  await withDaemon(ONE, async (d) => {
    const ck = {every_steps: 20000, keep_last: 1};
    const r = await grownBy(d.url, {name: 'retained', steps: RSTEPS, checkpoint: ck,
      metrics: {full_resolution_steps: KEEP}});
    assert.deepEqual(r.job.spec.metrics, {full_resolution_steps: KEEP});
    const a = await grownBy(d.url, {name: 'every-row', steps: RSTEPS, checkpoint: ck});
    console.log(`# store growth for ${RSTEPS} steps: ${a.grown} bytes with every row, ${r.grown} with full_resolution_steps ${KEEP}`);
    assert.ok(a.grown > RSTEPS * 8, `every row: ${a.grown} bytes`);
    assert.ok(r.grown < a.grown / 5, `retained ${r.grown} bytes, every row ${a.grown}`);

    const id = r.job.id;
    // The newest KEEP steps, every one.
    const tail = (await api(d.url, 'GET', `/v1/jobs/${id}/metrics?from=${RSTEPS - KEEP + 1}`)).json;
    assert.deepEqual(tail.step, Array.from({length: KEEP}, (_, i) => RSTEPS - KEEP + 1 + i));
    const from = tail.full_resolution_from;
    assert.ok(Number.isInteger(from) && from > 1 && from <= RSTEPS - KEEP + 1, `full_resolution_from ${from}`);
    // Kept: the newest steps and those since the last checkpoint, within a few blocks.
    assert.ok(RSTEPS - from < KEEP + 20000 + 8192, `rows kept from step ${from}`);
    // Every step asked for: the summaries' points below the boundary, every row from it on.
    const all = (await api(d.url, 'GET', `/v1/jobs/${id}/metrics`)).json;
    assert.equal(all.full_resolution_from, from);
    assert.equal(all.step[0], 1);
    assert.equal(all.lr[0][0], 0.001);
    const below = all.step.filter((s) => s < from).length;
    assert.ok(below >= 2 * Math.floor(from / 2048) && below <= 4 * Math.ceil(from / 2048), `${below} points below ${from}`);
    assert.equal(all.step.length - below, RSTEPS - from + 1);
    assert.equal(all.step.at(-1), RSTEPS);
    for (let i = 1; i < all.step.length; i++) assert.ok(all.step[i] > all.step[i - 1]);
    // The same training (same seed): each point below the boundary is the other job's row.
    const ref = (await api(d.url, 'GET', `/v1/jobs/${a.job.id}/metrics?to=${from - 1}`)).json;
    assert.equal(ref.full_resolution_from, undefined);
    const refLoss = new Map(ref.step.map((s, i) => [s, ref.loss[i]]));
    for (let i = 0; i < below; i++) assert.equal(all.loss[i], refLoss.get(all.step[i]), `step ${all.step[i]}`);
    // A chart: at most max_points, from step 1 with the warm-up's first lr to the last step.
    const ds = (await api(d.url, 'GET', `/v1/jobs/${id}/metrics?max_points=2000`)).json;
    assert.ok(ds.step.length <= 2000 && ds.step.length > 200, `${ds.step.length} points`);
    assert.equal(ds.step[0], 1);
    assert.equal(ds.lr[0][0], 0.001);
    assert.equal(ds.step.at(-1), RSTEPS);
    assert.equal(ds.full_resolution_from, from);
    // The CSV marks summary lines; a job with every row exports as before.
    const csv = (await api(d.url, 'GET', `/v1/jobs/${id}/metrics?format=csv`)).text.trim().split('\n');
    assert.equal(csv[0], 'step,loss,lr0,grad_norm,time,resolution');
    assert.match(csv[1], /^1,.*,summary$/);
    assert.match(csv.at(-1), new RegExp(`^${RSTEPS},.*,full$`));
    assert.equal(csv.length - 1, all.step.length);
    const plain = (await api(d.url, 'GET', `/v1/jobs/${a.job.id}/metrics?format=csv&to=3`)).text;
    assert.match(plain, /^step,loss,lr0,grad_norm,time\n1,[^\n]*\n2,[^\n]*\n3,[^,\n]*,[^,\n]*,[^,\n]*,[^,\n]*\n$/);
  });
});

test('metrics.full_resolution_steps: a job killed -9, then paused, resumes from its checkpoints and its history stays whole', async () => {
  const dir = tmpDir('anneald-retain-');
  try {
    let d = await startDaemon({dir, args: ['--workers', '1']});
    const j = await submit(d.url, heavyJob({name: 'retained-heavy',
      checkpoint: {every_steps: 500, keep_last: 2}, metrics: {full_resolution_steps: 300}}));
    await waitFor(async () => ((await api(d.url, 'GET', `/v1/jobs/${j.id}/checkpoints`)).json.checkpoints.at(-1)?.step ?? 0) >= 5000,
                  {timeoutMs: 60000 * SLOW, what: 'a checkpoint past step 5000'});
    const before = (await api(d.url, 'GET', `/v1/jobs/${j.id}/metrics?max_points=200`)).json;
    assert.ok(before.full_resolution_from > 1, 'rows were dropped while it ran');
    await d.kill9();
    d = await startDaemon({dir, args: ['--workers', '1']});
    try {
      const ck = (await api(d.url, 'GET', `/v1/jobs/${j.id}/checkpoints`)).json.checkpoints.at(-1).step;
      await waitJob(d.url, j.id, (x) => x.state === 'running' && x.step >= ck + 1500, 60000 * SLOW);
      // A pause checkpoints where it stops; the resume goes on from there.
      assert.equal((await api(d.url, 'POST', `/v1/jobs/${j.id}/pause`)).status, 200);
      const paused = await waitJob(d.url, j.id, (x) => x.state === 'paused');
      assert.equal((await api(d.url, 'POST', `/v1/jobs/${j.id}/resume`)).status, 200);
      await waitJob(d.url, j.id, (x) => x.state === 'running' && x.step >= paused.step + 1500, 60000 * SLOW);
      assert.equal((await api(d.url, 'POST', `/v1/jobs/${j.id}/cancel`)).status, 200);
      await waitJob(d.url, j.id, (x) => x.state === 'cancelled');
      const all = (await api(d.url, 'GET', `/v1/jobs/${j.id}/metrics`)).json;
      const from = all.full_resolution_from;
      const latest = (await api(d.url, 'GET', `/v1/jobs/${j.id}/checkpoints`)).json.checkpoints.at(-1).step;
      assert.ok(from > ck - 4096, `rows dropped after the resume too: from ${from}, resumed at ${ck}`);
      assert.ok(from <= latest, `rows from ${from} cover the latest checkpoint ${latest}`);
      assert.equal(all.step[0], 1);
      assert.equal(all.lr[0][0], 0);
      const i0 = all.step.indexOf(from);
      assert.ok(i0 > 0, `the first kept row ${from} is in the answer`);
      // Every row from the boundary on, across the resume: no gap, no repeat.
      for (let i = i0 + 1; i < all.step.length; i++) assert.equal(all.step[i], all.step[i - 1] + 1);
      // Job time goes on across the resume (taken from the checkpoint's row): it never falls.
      for (let i = 1; i < all.step.length; i++) assert.ok(all.time[i] >= all.time[i - 1], `time at ${all.step[i]}`);
      const cut = before.step.findIndex((s) => s > ck);
      assert.ok(all.time.at(-1) > before.time[cut > 0 ? cut - 1 : 0]);
      const ds = (await api(d.url, 'GET', `/v1/jobs/${j.id}/metrics?max_points=200`)).json;
      assert.equal(ds.step[0], 1);
      assert.ok(ds.step.length <= 200);
    } finally {
      await d.stop();
    }
  } finally {
    removeDir(dir);
  }
});

// A full-resolution JSON answer reads the range once per column; rows dropped between two of
// those reads must leave nulls at their steps, never shift the later values onto other steps.
test('metrics.full_resolution_steps: a JSON answer read slowly while rows are dropped keeps each value at its step', async () => {
  await withDaemon(ONE, async (d) => {
    const j = await submit(d.url, tutorialJob({name: 'retained-fast', steps: 1000000000,
      checkpoint: {every_steps: 100000, keep_last: 1}, metrics: {full_resolution_steps: 200000}}));
    await waitJob(d.url, j.id, (x) => x.step >= 1500000, 60000 * SLOW);
    // Slowly: the job drops rows while the columns after "step" are read. The CSV, read at
    // once while the step column is being made, holds the rows the JSON answer started with.
    const res = await fetch(`${d.url}/v1/jobs/${j.id}/metrics`);
    const reader = res.body.getReader();
    const parts = [];
    const loss = new Map();
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      parts.push(Buffer.from(value));
      if (parts.length === 1) {
        const csv = (await api(d.url, 'GET', `/v1/jobs/${j.id}/metrics?format=csv`)).text.trim().split('\n');
        for (const line of csv.slice(1)) {
          const c = line.split(',');
          loss.set(Number(c[0]), [c[1] === '' ? null : Number(c[1]), Number(c[4])]);
        }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const all = JSON.parse(Buffer.concat(parts).toString('utf8'));
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${j.id}/cancel`)).status, 200);
    assert.equal(all.step.length, all.loss.length);
    assert.equal(all.step.length, all.time.length);
    let checked = 0, nulls = 0;
    // loss is read right after step, time last: the one most likely to meet dropped rows.
    for (let i = 0; i < all.step.length; i++) {
      if (!loss.has(all.step[i])) continue;
      const [l, t] = loss.get(all.step[i]);
      if (all.loss[i] !== null) assert.equal(all.loss[i], l, `loss at step ${all.step[i]}`);
      if (all.time[i] === null) { nulls++; continue; }
      assert.equal(all.time[i], t, `time at step ${all.step[i]}`);
      checked++;
    }
    console.log(`# ${all.step.length} steps, ${checked} values checked against the CSV, ${nulls} nulls for rows dropped meanwhile`);
    assert.ok(checked > 500, `${checked} values checked`);
    for (let i = 1; i < all.time.length; i++) {
      if (all.time[i] !== null && all.time[i - 1] !== null) assert.ok(all.time[i] >= all.time[i - 1]);
    }
  });
});

// The same when the job had dropped nothing yet as the answer opened. Rows from the latest
// checkpoint on stay, and this job checkpoints only when paused: an early pause keeps its
// whole history until the next pause lets all but the newest rows go at once. The answer is
// made far larger than what the socket buffers take ahead of a reader that stops after its
// first chunk, so most of it is made after that drop however slow the pause is under load.
test('metrics.full_resolution_steps: rows first dropped while a JSON answer streams leave nulls at their steps', async () => {
  await withDaemon(ONE, async (d) => {
    // Fast steps for a large history, but an early first pause: a job paused too late (a
    // first summary bucket would be dropped) is cancelled and another one tried.
    let j, p;
    for (let attempt = 0; ; attempt++) {
      j = await submit(d.url, heavyJob({name: 'retained-late', model: {type: 'mlp', inputs: 32, hidden: [64, 64], outputs: 1},
        checkpoint: {every_steps: 0, every_seconds: 0, keep_last: 1}, metrics: {full_resolution_steps: 1000}}));
      await waitJob(d.url, j.id, (x) => x.step >= 1, 60000 * SLOW);
      assert.equal((await api(d.url, 'POST', `/v1/jobs/${j.id}/pause`)).status, 200);
      p = await waitJob(d.url, j.id, (x) => x.state === 'paused', 30000 * SLOW);
      if (p.step < 2048) break;
      assert.ok(attempt < 5, `paused at step ${p.step}: a first summary bucket would be dropped`);
      assert.equal((await api(d.url, 'POST', `/v1/jobs/${j.id}/cancel`)).status, 200);
    }
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${j.id}/resume`)).status, 200);
    await waitJob(d.url, j.id, (x) => x.state === 'running' && x.step >= p.step + 50000, 120000 * SLOW);
    const loss = new Map();
    const csv = (await api(d.url, 'GET', `/v1/jobs/${j.id}/metrics?format=csv`)).text.trim().split('\n');
    const notFull = csv.slice(1).filter((l) => !l.endsWith(',full'));
    assert.deepEqual(notFull.slice(0, 3), [], 'nothing dropped before the answer opens');
    for (const line of csv.slice(1)) {
      const c = line.split(',');
      loss.set(Number(c[0]), [Number(c[1]), Number(c[4])]);
    }
    const res = await fetch(`${d.url}/v1/jobs/${j.id}/metrics`);
    const reader = res.body.getReader();
    const parts = [];
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      parts.push(Buffer.from(value));
      if (parts.length === 1) { // the pause's checkpoint drops every row but the newest
        assert.equal((await api(d.url, 'POST', `/v1/jobs/${j.id}/pause`)).status, 200);
        const q = await waitJob(d.url, j.id, (x) => x.state === 'paused', 30000 * SLOW);
        await waitFor(async () => {
          const m = (await api(d.url, 'GET', `/v1/jobs/${j.id}/metrics?from=1&to=10`)).json;
          return m.full_resolution_from > q.step - 10000;
        }, {timeoutMs: 30000 * SLOW, what: 'the paused job dropped its old rows'});
      }
    }
    const all = JSON.parse(Buffer.concat(parts).toString('utf8'));
    assert.equal(all.full_resolution_from, undefined); // nothing was dropped when it opened
    assert.equal(all.step.length, all.loss.length);
    assert.equal(all.step.length, all.time.length);
    let checked = 0, nulls = 0;
    // A column read before the pause has every value, one read after it nulls for the steps
    // the pause dropped; no value may sit at another step's place.
    for (let i = 0; i < all.step.length; i++) {
      if (all.time[i] === null) nulls++;
      if (!loss.has(all.step[i])) continue;
      const [l, t] = loss.get(all.step[i]);
      if (all.loss[i] !== null) assert.equal(all.loss[i], l, `loss at step ${all.step[i]}`);
      if (all.time[i] !== null) assert.equal(all.time[i], t, `time at step ${all.step[i]}`);
      checked++;
    }
    console.log(`# ${all.step.length} steps, ${checked} values checked against the CSV, ${nulls} nulls for rows dropped meanwhile`);
    assert.ok(nulls > all.step.length / 2, `${nulls} nulls: the pause dropped rows while the answer streamed`);
    assert.ok(checked > 30000, `${checked} values checked`);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${j.id}/cancel`)).status, 200);
  });
});

test('metrics.full_resolution_steps errors name the key', async () => {
  await withDaemon(ONE, async (d) => {
    for (const [metrics, field] of [[{full_resolution_steps: 0}, 'metrics.full_resolution_steps'],
      [{full_resolution_steps: -3}, 'metrics.full_resolution_steps'],
      [{full_resolution_steps: 1.5}, 'metrics.full_resolution_steps'],
      [{full_resolution_steps: '100'}, 'metrics.full_resolution_steps'],
      [{full_resolution_steps: 2 ** 60}, 'metrics.full_resolution_steps'],
      [{full_resolution: 100}, 'metrics.full_resolution'], [[100], 'metrics']]) {
      const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({metrics}));
      assert.equal(r.status, 400, JSON.stringify(metrics));
      assert.equal(r.json.error.field, field, `${JSON.stringify(metrics)}: ${r.text}`);
    }
  });
});
