// Bounded and exact: numbers keep their bits through the store, data-set deletes leave
// finished jobs usable, jobs are never silently lost, /metrics counts what was committed.
import test from 'node:test';
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import {api, readEvents, regressionCsv, waitJob, waitFor, withDaemon, startDaemon, tutorialJob, heavyJob, tmpDir, removeDir, sleep, BIN, SANITIZED} from './lib.mjs';
import path from 'node:path';

// The daemon's path for a shell that execs it.
const BIN_PATH = () => path.resolve(BIN);

const ODD = 0.30000000000000004; // cJSON's own printer writes it as 0.3

test('the stored spec keeps every number bit for bit and the worker trains with it', async () => {
  await withDaemon({}, async (d) => {
    const spec = tutorialJob({
      steps: 20,
      ds_config: {
        train_batch_size: 8,
        optimizer: {type: 'Adam', params: {lr: ODD}},
        scheduler: {type: 'WarmupLR', params: {warmup_min_lr: ODD, warmup_max_lr: ODD, warmup_num_steps: 10}},
      },
    });
    const r = await api(d.url, 'POST', '/v1/jobs', spec);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.spec.ds_config.optimizer.params.lr, ODD);
    const job = await waitJob(d.url, r.json.id, (j) => j.state === 'completed');
    assert.equal(job.spec.ds_config.optimizer.params.lr, ODD);
    assert.equal(job.spec.ds_config.scheduler.params.warmup_max_lr, ODD);
    assert.equal(job.spec.param_groups.length, 0);
    const m = await api(d.url, 'GET', `/v1/jobs/${r.json.id}/metrics?from=1&to=3`);
    assert.equal(m.status, 200, m.text);
    assert.deepEqual(m.json.lr[0], [ODD, ODD, ODD]);
  });
});

test('a value that would fail later is refused at submit, naming the field', async () => {
  await withDaemon({}, async (d) => {
    const huge = 1.7976931348623157e308;
    const cases = [
      [{type: 'Adam', params: {lr: huge}}, 'ds_config.optimizer.params.lr'],
      [{type: 'SGD', params: {lr: 1e39}}, 'ds_config.optimizer.params.lr'],
    ];
    for (const [optimizer, field] of cases) {
      const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({
        ds_config: {train_batch_size: 8, optimizer},
      }));
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error.field, field);
      assert.match(r.json.error.message, /lr must be at most/);
    }
    const g = await api(d.url, 'POST', '/v1/jobs', tutorialJob({
      model: {type: 'mlp', inputs: 10, hidden: [4], outputs: 1},
      param_groups: [{match: ['*.bias'], lr: huge}],
    }));
    assert.equal(g.status, 400, g.text);
    assert.equal(g.json.error.field, 'param_groups[0].lr');
    const list = await api(d.url, 'GET', '/v1/jobs');
    assert.equal(list.json.jobs.length, 0, 'nothing stored');
    // The largest accepted lr reads back as itself.
    const ok = await api(d.url, 'POST', '/v1/jobs', tutorialJob({
      steps: 2,
      ds_config: {train_batch_size: 8, optimizer: {type: 'SGD', params: {lr: 3.4028234663852886e38}}},
    }));
    assert.equal(ok.status, 201, ok.text);
    assert.equal(ok.json.spec.ds_config.optimizer.params.lr, 3.4028234663852886e38);
  });
});

// A small regression CSV: y = 2a - b + noise-free, 64 rows.
function datasetJob(name, over = {}) {
  return tutorialJob({
    model: {type: 'linear', inputs: 2, outputs: 1},
    loss: 'mse',
    data: {type: 'dataset', name, target: 'y'},
    steps: 60,
    checkpoint: {every_steps: 20, keep_last: 3},
    ...over,
  });
}

test('deleting a data set leaves finished jobs their weights and predictions', async () => {
  await withDaemon({}, async (d) => {
    const up = await api(d.url, 'POST', '/v1/datasets?name=lin', regressionCsv(), {'Content-Type': 'text/csv'});
    assert.equal(up.status, 201, up.text);
    const r = await api(d.url, 'POST', '/v1/jobs', datasetJob('lin'));
    assert.equal(r.status, 201, r.text);
    const id = r.json.id;
    await waitJob(d.url, id, (j) => j.state === 'completed');
    const w0 = await api(d.url, 'GET', `/v1/jobs/${id}/weights`);
    assert.equal(w0.status, 200, w0.text);
    const p0 = await api(d.url, 'POST', `/v1/jobs/${id}/predict`, {inputs: [[0.5, 0.25], [0, 1]]});
    assert.equal(p0.status, 200, p0.text);

    // While a job that uses it waits or trains, the set stays.
    const busy = await api(d.url, 'POST', '/v1/jobs', datasetJob('lin', {steps: 100000000}));
    assert.equal(busy.status, 201, busy.text);
    const refused = await api(d.url, 'DELETE', '/v1/datasets/lin');
    assert.equal(refused.status, 409, refused.text);
    // the answer names the job to wait for or cancel
    assert.equal(refused.json.error.code, 'conflict');
    assert.equal(refused.json.error.field, 'id');
    assert.match(refused.json.error.message,
      new RegExp(`^data set lin is used by job ${busy.json.id}, which has not finished \\(it is (queued|running)\\)$`));
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${busy.json.id}/cancel`)).status, 200);
    await waitJob(d.url, busy.json.id, (j) => j.state === 'cancelled');

    const del = await api(d.url, 'DELETE', '/v1/datasets/lin');
    assert.equal(del.status, 204, del.text);
    const w1 = await api(d.url, 'GET', `/v1/jobs/${id}/weights`);
    assert.equal(w1.status, 200, w1.text);
    assert.deepEqual(w1.json, w0.json, 'the same weights as before the delete');
    const w20 = await api(d.url, 'GET', `/v1/jobs/${id}/weights?step=20`);
    assert.equal(w20.status, 200, w20.text);
    assert.equal(w20.json.step, 20);
    assert.notDeepEqual(w20.json.tensors, w1.json.tensors);
    const p1 = await api(d.url, 'POST', `/v1/jobs/${id}/predict`, {inputs: [[0.5, 0.25], [0, 1]]});
    assert.equal(p1.status, 200, p1.text);
    assert.deepEqual(p1.json, p0.json);
    const bad = await api(d.url, 'POST', `/v1/jobs/${id}/predict`, {inputs: [[0.5, 0.25, 1]]});
    assert.equal(bad.status, 400, bad.text);
    const none = await api(d.url, 'GET', `/v1/jobs/${id}/weights?step=7`);
    assert.equal(none.status, 404, none.text);
    assert.equal(none.json.error.field, 'step');

    // A new job on the deleted set names it.
    const fork = await api(d.url, 'POST', '/v1/jobs', datasetJob('lin', {resume_from: {job: id}}));
    assert.equal(fork.status, 422, fork.text);
    assert.match(fork.json.error.message, /lin/);
  });
});

test('a job resumed after its data set was deleted and uploaded again under the name does not train on the new data', async () => {
  await withDaemon({}, async (d) => {
    const up = await api(d.url, 'POST', '/v1/datasets?name=swap', regressionCsv(), {'Content-Type': 'text/csv'});
    assert.equal(up.status, 201, up.text);
    // max_runtime_s ends it failed, checkpointed, and resumable
    const r = await api(d.url, 'POST', '/v1/jobs', datasetJob('swap', {steps: 100000000, max_runtime_s: 0.2,
      checkpoint: {every_steps: 0, keep_last: 2}}));
    assert.equal(r.status, 201, r.text);
    const failed = await waitJob(d.url, r.json.id, (j) => j.state === 'failed' || j.state === 'completed');
    assert.equal(failed.state, 'failed');
    assert.ok(failed.last_checkpoint_step > 0, JSON.stringify(failed));
    assert.equal((await api(d.url, 'DELETE', '/v1/datasets/swap')).status, 204);
    const again = await api(d.url, 'POST', '/v1/datasets?name=swap', regressionCsv(32), {'Content-Type': 'text/csv'});
    assert.equal(again.status, 201, again.text);
    assert.notEqual(again.json.id, up.json.id);
    const res = await api(d.url, 'POST', `/v1/jobs/${r.json.id}/resume`);
    assert.equal(res.status, 200, res.text);
    const end = await waitFor(async () => {
      const j = (await api(d.url, 'GET', `/v1/jobs/${r.json.id}`)).json;
      return j.state === 'failed' && j.error !== failed.error ? j : null;
    }, {what: 'the resumed job to fail on its data'});
    assert.match(end.error, new RegExp(`data set 'swap' \\(${up.json.id}\\) has been deleted`));
    assert.match(end.error, /another one/);
    // No row past the checkpoint was trained on the new data.
    const m = await api(d.url, 'GET', `/v1/jobs/${r.json.id}/metrics?from=${failed.step + 1}`);
    assert.deepEqual(m.json.step, []);
  });
});

test('a worker without a store takes no job and /healthz says so; a full queue answers 503', async () => {
  const dir = tmpDir();
  try {
    const d = await startDaemon({dir, args: ['--workers', '2', '--max-queued', '2'], env: {ANNEALD_FAULT: 'worker-store'}});
    let ids = [];
    try {
      // The workers try their store as they start, just after the daemon listens.
      const h = await waitFor(async () => {
        const x = await api(d.url, 'GET', '/healthz');
        return x.json.workers_down === 2 && x;
      }, {what: 'both workers down'});
      assert.equal(h.status, 503, h.text);
      assert.equal(h.json.status, 'degraded');
      assert.match(h.json.problems.join(' '), /2 of 2 workers cannot open the store/);
      for (let i = 0; i < 2; i++) {
        const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 50}));
        assert.equal(r.status, 201, r.text);
        ids.push(r.json.id);
      }
      const full = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 50}));
      assert.equal(full.status, 503, full.text);
      assert.match(full.json.error.message, /queue is full/);
      await sleep(500);
      for (const id of ids) {
        const j = await api(d.url, 'GET', `/v1/jobs/${id}`);
        assert.equal(j.json.state, 'queued', 'kept waiting, not dropped');
      }
      const list = await api(d.url, 'GET', '/v1/jobs');
      assert.equal(list.json.jobs.length, 2, 'the refused job was not stored');
    } finally {
      const ex = await d.stop();
      assert.equal(ex.code, 0, d.stderr().slice(-2000));
    }
    // Without the fault the same store trains them.
    const d2 = await startDaemon({dir});
    try {
      const h = await api(d2.url, 'GET', '/healthz');
      assert.equal(h.status, 200, h.text);
      assert.equal(h.json.workers_down, 0);
      for (const id of ids) await waitJob(d2.url, id, (j) => j.state === 'completed');
    } finally {
      await d2.stop();
    }
  } finally {
    removeDir(dir);
  }
});

// GET /metrics, checked by promtool (Debian's prometheus package); resolves to {name: value}
// of the unlabelled samples.
async function exposition(url) {
  const r = await api(url, 'GET', '/metrics');
  assert.equal(r.status, 200);
  const p = spawnSync('promtool', ['check', 'metrics'], {input: r.text, encoding: 'utf8'});
  if (p.error) throw new Error(`promtool: ${p.error.message} (make deps installs prometheus)`);
  assert.equal(p.status, 0, `promtool check metrics: ${p.stdout}${p.stderr}\n${r.text}`);
  const out = {};
  for (const line of r.text.split('\n')) {
    const m = /^([a-z_]+) (\S+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

// Every sample of /metrics, labels included in the name: {'name{label="v"}': value}.
async function labeled(url) {
  const r = await api(url, 'GET', '/metrics');
  const out = {};
  for (const line of r.text.split('\n')) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

// What the store holds for the given jobs: steps, samples, checkpoints and their bytes.
async function committed(url, ids, batchOf) {
  const sum = {steps: 0, samples: 0, ckpts: 0, bytes: 0};
  for (const id of ids) {
    const j = (await api(url, 'GET', `/v1/jobs/${id}`)).json;
    const c = (await api(url, 'GET', `/v1/jobs/${id}/checkpoints`)).json.checkpoints;
    const rows = (await api(url, 'GET', `/v1/jobs/${id}/metrics?format=csv`)).text.trim().split('\n').length - 1;
    assert.equal(rows, j.step, `job ${id}: one metric row per step`);
    sum.steps += j.step;
    sum.samples += j.step * batchOf[id];
    sum.ckpts += c.length;
    sum.bytes += c.reduce((a, x) => a + x.bytes, 0);
  }
  return sum;
}

test('/metrics counters equal what the store committed, through pause, resume and restart', async () => {
  const dir = tmpDir();
  try {
    const d = await startDaemon({dir, args: ['--workers', '2']});
    const batchOf = {};
    const ids = [];
    try {
      const submit = async (spec) => {
        const r = await api(d.url, 'POST', '/v1/jobs', spec);
        assert.equal(r.status, 201, r.text);
        batchOf[r.json.id] = spec.ds_config.train_batch_size;
        ids.push(r.json.id);
        return r.json.id;
      };
      await submit(tutorialJob({steps: 5000, checkpoint: {every_steps: 1000, keep_last: 1000}}));
      await submit(tutorialJob({steps: 777, checkpoint: {every_steps: 100, keep_last: 1000}}));
      const h = await submit(heavyJob({steps: 4000, checkpoint: {every_steps: 700, keep_last: 1000}}));
      await waitJob(d.url, h, (j) => j.state === 'running' && j.step > 10);
      const p = await api(d.url, 'POST', `/v1/jobs/${h}/pause`);
      assert.equal(p.status, 200, p.text);
      await waitJob(d.url, h, (j) => j.state === 'paused');
      const mid = await exposition(d.url);
      const midStore = await committed(d.url, [h], batchOf);
      assert.ok(mid.anneald_steps_trained_total >= midStore.steps);
      assert.equal((await api(d.url, 'POST', `/v1/jobs/${h}/resume`)).status, 200);
      for (const id of ids) await waitJob(d.url, id, (j) => j.state === 'completed', 120000);
      const m = await exposition(d.url);
      const st = await committed(d.url, ids, batchOf);
      assert.equal(st.steps, 5000 + 777 + 4000);
      assert.equal(m.anneald_steps_trained_total, st.steps);
      assert.equal(m.anneald_samples_trained_total, st.samples);
      assert.equal(m.anneald_checkpoints_total, st.ckpts);
      assert.equal(m.anneald_checkpoint_bytes_total, st.bytes);
    } finally {
      await d.stop();
    }
    // Counters start again at 0 after a restart, then count the new work only.
    const d2 = await startDaemon({dir});
    try {
      const z = await exposition(d2.url);
      assert.equal(z.anneald_steps_trained_total, 0);
      assert.equal(z.anneald_checkpoints_total, 0);
      const r = await api(d2.url, 'POST', '/v1/jobs', tutorialJob({steps: 321, checkpoint: {every_steps: 100, keep_last: 1000}}));
      assert.equal(r.status, 201, r.text);
      await waitJob(d2.url, r.json.id, (j) => j.state === 'completed');
      const m = await exposition(d2.url);
      const st = await committed(d2.url, [r.json.id], {[r.json.id]: 8});
      assert.equal(m.anneald_steps_trained_total, 321);
      assert.equal(m.anneald_samples_trained_total, st.samples);
      assert.equal(m.anneald_checkpoints_total, st.ckpts);
      assert.equal(m.anneald_checkpoint_bytes_total, st.bytes);
    } finally {
      await d2.stop();
    }
  } finally {
    removeDir(dir);
  }
});

// Peak resident memory of a process so far, in bytes.
function hwm(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
}

function rss(pid) {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
}

// Resolves once each of the daemon's n workers has started: its store writer thread is there
// (started after the worker opened its store) and the worker sleeps in wait for a job.
async function workersIdle(pid, n) {
  const threads = () => fs.readdirSync(`/proc/${pid}/task`).map((tid) => {
    const st = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    return {comm: st.slice(st.indexOf('(') + 1, st.lastIndexOf(')')), state: st[st.lastIndexOf(')') + 2]};
  });
  await waitFor(() => {
    const t = threads();
    const workers = t.filter((x) => /^worker-\d+$/.test(x.comm));
    return t.filter((x) => x.comm === 'store-writer').length === n && workers.length === n &&
      workers.every((x) => x.state === 'S');
  }, {what: () => `${n} idle workers: ${JSON.stringify(threads())}`});
}

test('an idle worker costs little memory, and a worker gives its batches back after a job', async () => {
  // Each worker's queue and rows take ~34 MB of address space. They used to be cleared, so
  // resident, as each worker started: 16 idle workers held over half a gigabyte.
  const one = await startDaemon({args: ['--workers', '1']});
  let base;
  try {
    await workersIdle(one.proc.pid, 1);
    base = rss(one.proc.pid);
  } finally {
    await one.stop();
  }
  await withDaemon({args: ['--workers', '16']}, async (d) => {
    await workersIdle(d.proc.pid, 16);
    const idle = rss(d.proc.pid);
    // a fast job fills all 64 batches of its worker's queue (~30 MB); afterwards they are
    // given back: what stays is its store connection's cache and the like
    const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 1000000, checkpoint: {every_steps: 1000000}}));
    assert.equal(r.status, 201, r.text);
    await waitJob(d.url, r.json.id, (j) => j.state === 'completed', 120000);
    assert.ok(idle - base < 60e6, `16 idle workers: ${idle} bytes resident; 1 idle worker: ${base}`);
    // (AddressSanitizer keeps freed memory in quarantine: the second half is not its to judge)
    // The job reads completed as soon as its state is stored; its worker gives the batches
    // back a moment later, as it lets go of the run.
    if (!SANITIZED) {
      let now = rss(d.proc.pid);
      for (let i = 0; i < 40 && now - idle >= 12e6; i++) {
        await sleep(50);
        now = rss(d.proc.pid);
      }
      assert.ok(now - idle < 12e6, `after a job: ${now} bytes resident; before it: ${idle}`);
    }
  });
});

// A finished job with a 5.2M-parameter model (plain SGD: the checkpoint holds the weights only).
const WIDE = {inputs: 512, hidden: [2048, 2048], outputs: 1};
const WIDE_PARAMS = 512 * 2048 + 2048 + 2048 * 2048 + 2048 + 2048 + 1;
async function wideJob(url) {
  const r = await api(url, 'POST', '/v1/jobs', tutorialJob({
    name: 'wide', model: {type: 'mlp', ...WIDE},
    data: {type: 'synthetic', task: 'regression', samples: 64, features: 512},
    steps: 2, checkpoint: {every_steps: 1, keep_last: 2},
    ds_config: {train_batch_size: 8, optimizer: {type: 'SGD', params: {lr: 0.001}}},
  }));
  assert.equal(r.status, 201, r.text);
  await waitJob(url, r.json.id, (j) => j.state === 'completed', 120000);
  return r.json.id;
}

test('weights stream in constant memory, a whole body parses and matches the model size', async () => {
  await withDaemon({}, async (d) => {
    const id = await wideJob(d.url);
    const before = hwm(d.proc.pid);
    const res = await fetch(`${d.url}/v1/jobs/${id}/weights`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('transfer-encoding'), 'chunked');
    const text = await res.text();
    const w = JSON.parse(text);
    assert.equal(w.step, 2);
    const n = w.tensors.reduce((a, t) => a + t.data.flat().length, 0);
    assert.equal(n, WIDE_PARAMS);
    const grew = hwm(d.proc.pid) - before;
    // Building the body in memory cost ~134 B a parameter; streamed, the peak grows by the
    // model and the checkpoint read (about 12 B a parameter), well under the body's size.
    assert.ok(text.length > 10 * WIDE_PARAMS, `body ${text.length} B`);
    assert.ok(grew < 24 * WIDE_PARAMS, `peak RSS grew ${grew} B for ${WIDE_PARAMS} parameters`);
    // A second read comes from the model cache, bit for bit the same.
    const again = await (await fetch(`${d.url}/v1/jobs/${id}/weights`)).text();
    assert.equal(again, text);
  });
});

test('SIGTERM ends an in-flight stream visibly truncated, within the stop deadline', async () => {
  await withDaemon({}, async (d) => {
    const id = await wideJob(d.url);
    const u = new URL(`${d.url}/v1/jobs/${id}/weights`);
    const outcome = new Promise((resolve, reject) => {
      const req = http.get(u, (res) => {
        assert.equal(res.statusCode, 200);
        let bytes = 0;
        let paused = false;
        res.on('data', (c) => {
          bytes += c.length;
          if (!paused) { // stall after the first chunk, so the stream is mid-way at SIGTERM
            paused = true;
            res.pause();
            d.proc.kill('SIGTERM');
            setTimeout(() => res.resume(), 1500);
          }
        });
        res.on('end', () => resolve({complete: res.complete, bytes}));
        res.on('error', () => resolve({complete: false, bytes, error: true}));
        res.on('aborted', () => resolve({complete: false, bytes, error: true}));
      });
      req.on('error', reject);
    });
    const t0 = Date.now();
    const r = await outcome;
    const ex = await d.exited;
    assert.equal(ex.code, 0, d.stderr().slice(-2000));
    assert.equal(r.complete, false, `the body must not look whole (${r.bytes} bytes read)`);
    assert.ok(r.bytes < 10 * WIDE_PARAMS, `only part of it arrived (${r.bytes} bytes)`);
    console.log(`# request to exit with the stream stalled at SIGTERM: ${Date.now() - t0} ms`);
    assert.ok(Date.now() - t0 < 15000, 'the daemon stopped within its deadline');
  });
});

// 100,000 rows to predict are a tree of over a million JSON items: reading them into the
// model's inputs and freeing the tree are work for a queue thread, not for the loop.
test('a prediction of 100,000 rows keeps the loop\'s longest turn under 50 ms', async () => {
  await withDaemon({args: ['--max-body-json', String(32 << 20)]}, async (d) => {
    const job = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 20}));
    assert.equal(job.status, 201, job.text);
    await waitJob(d.url, job.json.id, (j) => j.state === 'completed');
    const rows = 100000;
    const inputs = Array.from({length: rows}, (_, i) => Array.from({length: 10}, (_, k) => ((i * 31 + k * 7) % 1000) / 997));
    const before = await exposition(d.url);
    const p = await api(d.url, 'POST', `/v1/jobs/${job.json.id}/predict`, {inputs});
    assert.equal(p.status, 200, p.text.slice(0, 300));
    assert.equal(p.json.outputs.length, rows);
    // a bad value deep in the rows is still named
    inputs[rows - 1][9] = 'x';
    const bad = await api(d.url, 'POST', `/v1/jobs/${job.json.id}/predict`, {inputs});
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.field, `inputs[${rows - 1}][9]`);
    const m = await exposition(d.url);
    console.log(`# loop: longest turn ${m.anneald_loop_longest_turn_cpu_seconds} s CPU ` +
      `(${before.anneald_loop_longest_turn_cpu_seconds} s before the predictions)`);
    if (!SANITIZED) assert.ok(m.anneald_loop_longest_turn_cpu_seconds < 0.05,
      `longest loop turn ${m.anneald_loop_longest_turn_cpu_seconds} s of CPU (wall ${m.anneald_loop_longest_turn_seconds} s)`);
  });
});

// A body of a few fields (pause, PATCH…) has no business being a megabyte: it is refused as
// it arrives, not parsed and freed on the loop. A finder request may carry a job with a
// megabyte of inline data: it is read into its job spec on a queue thread.
test('small-bodied routes refuse 1 MB bodies at once; 1 MB lr_finder and preview requests are read off the loop', async () => {
  await withDaemon({args: ['--max-body-json', String(4 << 20)]}, async (d) => {
    const job = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 10}));
    assert.equal(job.status, 201, job.text);
    const id = job.json.id;
    // just over the limit: a body refused before it is read closes the connection, and a
    // client still sending a large one can lose the answer to the reset
    const junk = JSON.stringify({x: Array(40000).fill(0)});
    assert.ok(junk.length > 65536 && junk.length < 100000);
    const J = {'Content-Type': 'application/json'};
    for (const [m, p] of [['POST', `/v1/jobs/${id}/pause`], ['POST', `/v1/jobs/${id}/cancel`], ['PATCH', `/v1/jobs/${id}`],
                          ['POST', `/v1/jobs/${id}/checkpoints/10/pin`], ['POST', '/v1/sweeps/s_000001/cancel']]) {
      const r = await api(d.url, m, p, junk, J);
      assert.equal(r.status, 413, `${m} ${p}: ${r.text}`);
      assert.match(r.json.error.message, /the body is \d+ bytes; this endpoint takes at most 65536/);
    }
    // a body of a few fields under the limit still works
    const notes = await api(d.url, 'PATCH', `/v1/jobs/${id}`, {notes: 'n'.repeat(4000)});
    assert.equal(notes.status, 200, notes.text);
    const rows = 24000;
    const x = Array.from({length: rows}, (_, i) => [((i * 7) % 97) / 97, ((i * 13) % 89) / 89, ((i * 3) % 83) / 83, (i % 79) / 79]);
    const y = x.map((r) => [r[0] - r[1] + r[2] * r[3]]);
    const before = await exposition(d.url);
    const f = await api(d.url, 'POST', '/v1/lr_finder', {
      job: tutorialJob({model: {type: 'linear', inputs: 4, outputs: 1}, loss: 'mse', data: {type: 'inline', x, y}}),
      steps: 50});
    assert.equal(f.status, 201, f.text.slice(0, 300));
    assert.equal(f.json.kind, 'lr_finder');
    // a spec in epochs previews its real length: the whole spec is read to count its rows
    const inEpochs = tutorialJob({model: {type: 'linear', inputs: 4, outputs: 1}, loss: 'mse', data: {type: 'inline', x, y},
                                  epochs: 3, max_points: 100});
    delete inEpochs.steps;
    const pv = await api(d.url, 'POST', '/v1/schedules/preview', inEpochs);
    assert.equal(pv.status, 200, pv.text.slice(0, 300));
    assert.equal(pv.json.step.at(-1), 3 * rows / 8);
    const bad = await api(d.url, 'POST', '/v1/lr_finder', {job: tutorialJob(), stepz: 50});
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.field, 'stepz');
    const m = await exposition(d.url);
    console.log(`# loop: longest turn ${m.anneald_loop_longest_turn_cpu_seconds} s CPU ` +
      `(${before.anneald_loop_longest_turn_cpu_seconds} s before the finder and the preview)`);
    if (!SANITIZED) assert.ok(m.anneald_loop_longest_turn_cpu_seconds < 0.02,
      `longest loop turn ${m.anneald_loop_longest_turn_cpu_seconds} s of CPU (wall ${m.anneald_loop_longest_turn_seconds} s)`);
  });
});

test('the loop stays responsive under lists and event streams of large jobs: longest turn < 50 ms', async () => {
  await withDaemon({args: ['--max-body-json', '4194304', '--workers', '1']}, async (d) => {
    // Ten jobs of ~1 MB inline data each.
    const rows = 12000;
    const x = [], y = [];
    for (let i = 0; i < rows; i++) {
      const r = [];
      for (let k = 0; k < 8; k++) r.push(Number(((i * 7 + k * 13) % 97 / 97).toFixed(6)));
      x.push(r);
      y.push([r[0] - r[1]]);
    }
    const spec = tutorialJob({
      model: {type: 'linear', inputs: 8, outputs: 1}, loss: 'mse',
      data: {type: 'inline', x, y}, steps: 1, checkpoint: {every_steps: 1, keep_last: 1},
    });
    assert.ok(JSON.stringify(spec).length > 900000);
    const ids = await Promise.all(Array.from({length: 10}, async () => {
      const r = await api(d.url, 'POST', '/v1/jobs', spec);
      assert.equal(r.status, 201, r.text.slice(0, 300));
      return r.json.id;
    }));
    for (const id of ids) await waitJob(d.url, id, (j) => j.state === 'completed');

    let stop = false;
    const health = (async () => {
      let n = 0;
      while (!stop) {
        const h = await api(d.url, 'GET', '/healthz');
        assert.equal(h.status, 200);
        n++;
        await sleep(10);
      }
      return n;
    })();
    for (let round = 0; round < 2; round++) {
      // Each event stream opens with a snapshot of its job, whose spec is parsed to make it.
      const streams = Promise.all(ids.slice(0, 8).map((id) =>
        readEvents(d.url, `/v1/jobs/${id}/events`, {until: (evs) => evs.some((e) => e.event === 'state')})));
      const lists = await Promise.all(Array.from({length: 8}, () => api(d.url, 'GET', '/v1/jobs?limit=1000')));
      for (const l of lists) {
        assert.equal(l.status, 200);
        assert.equal(l.json.jobs.length, 10);
        assert.equal(l.json.jobs[0].spec.data.x.length, rows);
      }
      const snaps = await streams;
      snaps.forEach((evs, k) => {
        const st = evs.find((e) => e.event === 'state');
        assert.ok(st, `stream ${k} got its snapshot`);
        assert.equal(st.data.id, ids[k]);
        assert.equal(st.data.state, 'completed');
      });
    }
    stop = true;
    assert.ok(await health > 0, '/healthz answered while the lists were made');
    const m = await exposition(d.url);
    assert.ok(m.anneald_loop_turns_total > 0);
    assert.ok(m.anneald_loop_longest_turn_seconds > 0);
    console.log(`# loop: longest turn ${m.anneald_loop_longest_turn_cpu_seconds} s CPU, ` +
      `${m.anneald_loop_longest_turn_seconds} s wall, over ${m.anneald_loop_turns_total} turns`);
    // A bound on the loop's work, meaningful on the optimised build only (the sanitizers
    // make every turn several times slower).
    if (!SANITIZED) assert.ok(m.anneald_loop_longest_turn_cpu_seconds < 0.05,
      `longest loop turn ${m.anneald_loop_longest_turn_cpu_seconds} s of CPU (wall ${m.anneald_loop_longest_turn_seconds} s)`);
    const r = await api(d.url, 'GET', '/metrics');
    assert.match(r.text, /anneald_work_queue_depth\{queue="quick"\} \d+/);
    assert.match(r.text, /anneald_work_queue_depth\{queue="slow"\} \d+/);
  });
});

test('slow work cannot starve quick work: job reads are answered while every slow thread is busy', async () => {
  await withDaemon({}, async (d) => {
    const job = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 100}));
    assert.equal(job.status, 201, job.text);
    // Uploads of ~24 MB each (parsing and storing them is slow work): more of them than the
    // slow queue has threads, so that some wait in its queue.
    let csv = 'a,b,c,y\n';
    const line = '0.123456789,0.987654321,0.555555555,1.25\n';
    csv += line.repeat(Math.floor(24e6 / line.length));
    const slowDone = [];
    const slow = Array.from({length: 6}, (_, i) => upload(d.url, `starve${i}`, csv).then(async (r) => {
      slowDone.push(performance.now());
      return {status: r.status, text: await r.text()};
    }));
    // Wait until the slow queue is busy, then read the job over and over.
    await waitFor(async () => (await labeled(d.url))['anneald_work_queue_running{queue="slow"}'] > 0,
      {what: 'the slow queue at work', intervalMs: 5});
    const quickDone = [];
    for (let i = 0; i < 30; i++) {
      const g = await api(d.url, 'GET', `/v1/jobs/${job.json.id}`);
      assert.equal(g.status, 200);
      assert.equal(g.json.id, job.json.id);
      quickDone.push(performance.now());
    }
    const quickEnd = quickDone[quickDone.length - 1];
    const results = await Promise.all(slow);
    for (const r of results) assert.ok(r.status === 201 || r.status === 503, `upload: ${r.status} ${r.text.slice(0, 200)}`);
    assert.ok(results.some((r) => r.status === 201), 'some uploads were stored');
    const pending = slowDone.filter((t) => t > quickEnd).length;
    assert.ok(pending > 0, `every quick read was answered while slow work was still pending (${pending} uploads after them)`);
    const m = await labeled(d.url);
    assert.ok(m['anneald_work_queue_peak_depth{queue="slow"}'] >= 1, 'uploads waited in the slow queue');
  });
});

// An MLP with SGD of about 2.1M parameters: ~42 MiB charged (8 B a parameter steady, 12 for
// checkpoint copies), so two of them do not fit a 64 MiB budget together.
function bigJob(hidden, over = {}) {
  return tutorialJob({
    name: 'big', model: {type: 'mlp', inputs: 1024, hidden, outputs: 1},
    data: {type: 'synthetic', task: 'regression', samples: 64, features: 1024},
    steps: 100000000, checkpoint: {every_steps: 1000000, keep_last: 1},
    ds_config: {train_batch_size: 8, optimizer: {type: 'SGD', params: {lr: 1e-6}}},
    ...over,
  });
}

test('one memory budget: a job that does not fit waits queued with the reason, one that never fits is 422', async () => {
  await withDaemon({args: ['--max-memory', '64M', '--workers', '2']}, async (d) => {
    const never = await api(d.url, 'POST', '/v1/jobs', bigJob([4096, 1024]));
    assert.equal(never.status, 422, never.text);
    assert.equal(never.json.error.field, 'model');
    assert.match(never.json.error.message, /--max-memory/);
    assert.match(never.json.error.message, /parameters .*gradients/);
    const a = await api(d.url, 'POST', '/v1/jobs', bigJob([2048]));
    assert.equal(a.status, 201, a.text);
    await waitJob(d.url, a.json.id, (j) => j.state === 'running');
    const b = await api(d.url, 'POST', '/v1/jobs', bigJob([2048]));
    assert.equal(b.status, 201, b.text);
    const waiting = await waitJob(d.url, b.json.id, (j) => j.state === 'queued' && j.queue_reason);
    assert.match(waiting.queue_reason, /waiting for memory/);
    assert.match(waiting.queue_reason, /--max-memory/);
    // taken by the second worker, it is first in the queue, before one submitted after it
    assert.deepEqual([waiting.queue_position, waiting.queue_length], [1, 1]);
    const c = await api(d.url, 'POST', '/v1/jobs', bigJob([2048]));
    assert.deepEqual([c.json.queue_position, c.json.queue_length], [2, 2]);
    const bnow = (await api(d.url, 'GET', `/v1/jobs/${b.json.id}`)).json;
    assert.deepEqual([bnow.queue_position, bnow.queue_length], [1, 2]);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${c.json.id}/cancel`)).status, 200);
    const m = await exposition(d.url);
    assert.equal(m.anneald_memory_budget_bytes, 64 * 1024 * 1024);
    assert.ok(m.anneald_memory_reserved_bytes > 32 * 1024 * 1024);
    // A model load that does not fit next to the running job is a 503, not an OOM.
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${a.json.id}/cancel`)).status, 200);
    await waitJob(d.url, b.json.id, (j) => j.state === 'running');
    const again = (await api(d.url, 'GET', `/v1/jobs/${b.json.id}`)).json;
    assert.equal(again.queue_reason, undefined);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${b.json.id}/cancel`)).status, 200);
    await waitJob(d.url, b.json.id, (j) => j.state === 'cancelled');
    const after = await exposition(d.url);
    assert.equal(after.anneald_memory_reserved_bytes, 0, 'every reservation given back');
  });
});

test('one memory budget: a downsampled metrics answer is charged for its points, a 503 naming max_points when they do not fit', async () => {
  await withDaemon({args: ['--max-memory', '16M']}, async (d) => {
    const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 1000000, checkpoint: {every_steps: 0, keep_last: 1}}));
    assert.equal(r.status, 201, r.text);
    await waitJob(d.url, r.json.id, (j) => j.state === 'completed', 120000);
    // 400,000 points of one lr group: 400000 × 6 × 8 bytes = 18.3 MiB, over the whole budget.
    const big = await api(d.url, 'GET', `/v1/jobs/${r.json.id}/metrics?max_points=400000`);
    assert.equal(big.status, 503, big.text);
    assert.match(big.json.error.message, /--max-memory/);
    assert.match(big.json.error.message, /max_points/);
    assert.equal(big.json.error.field, 'max_points');
    const small = await api(d.url, 'GET', `/v1/jobs/${r.json.id}/metrics?max_points=100000`);
    assert.equal(small.status, 200);
    assert.ok(small.json.step.length > 1000 && small.json.step.length <= 100000, `${small.json.step.length} points`);
    assert.equal(small.json.step[0], 1);
    const m = await exposition(d.url);
    assert.equal(m.anneald_memory_reserved_bytes, 0, 'the answer gave its points back');
    assert.ok(m.anneald_memory_refused_total >= 1);
  });
});

// A request that sends its head and part of its body, and sends the rest when told: its
// answer's status line and body.
function slowBody(url, path, body) {
  const {hostname, port} = new URL(url);
  const sock = net.connect(Number(port), hostname);
  let got = '';
  sock.setEncoding('latin1');
  sock.on('data', (c) => { got += c; });
  const ended = new Promise((resolve) => { sock.on('close', () => resolve(got)); sock.on('error', () => resolve(got)); });
  const head = `POST ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/json\r\n` +
               `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  const half = body.length >> 1;
  sock.write(head + body.slice(0, half));
  return {
    finish: async () => { sock.write(body.slice(half)); return ended; },
  };
}

test('one memory budget: JSON bodies are charged as they arrive and for their parse; one that does not fit is a 503 (413 beyond the whole budget) and changes nothing', async () => {
  await withDaemon({args: ['--max-memory', '16M']}, async (d) => {
    // 400,000 small numbers: a 0.8 MB body whose parsed tree takes about 30 MiB, more than
    // the whole budget: 413, not "try again".
    const numbers = '{"name":"n","model":[' + Array(400000).fill('1').join(',') + ']}';
    const r = await fetch(d.url + '/v1/jobs', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: numbers});
    const e = await r.json();
    assert.equal(r.status, 413, JSON.stringify(e));
    assert.match(e.error.message, /parses into \(\d+(\.\d+)? MiB\) is more than all of the daemon's memory budget \(--max-memory\) \(16 MiB\) could hold/);
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.jobs.length, 0, 'no job was made');

    // Bodies of 1 MB (a long name: a small tree) held half sent: the buffers are charged at
    // their declared length, so the budget holds at most 16 of them; the rest are refused.
    const body = '{"name":"' + 'a'.repeat(1000000 - 11) + '"}';
    const held = [];
    for (let i = 0; i < 24; i++) held.push(slowBody(d.url, '/v1/jobs', body));
    const m = await waitFor(async () => {
      const x = await exposition(d.url);
      return x.anneald_memory_refused_total >= 24 - 16 && x;
    }, {what: 'the budget to refuse the bodies beyond it'});
    assert.ok(m.anneald_memory_reserved_bytes > 14 * 1024 * 1024 &&
              m.anneald_memory_reserved_bytes <= 16 * 1024 * 1024, `${m.anneald_memory_reserved_bytes} reserved`);
    const answers = await Promise.all(held.map((h) => h.finish()));
    const status = answers.map((a) => Number(/^HTTP\/1\.1 (\d+)/.exec(a)?.[1]));
    const refused = answers.filter((a, i) => status[i] === 503);
    assert.ok(refused.length >= 24 - 16, `statuses ${status}`);
    // Refused for the buffer, or (a body that fit while others were held) for its parse.
    assert.ok(refused.some((a) => /memory budget \(--max-memory\) cannot take this request's body \(977 KiB\)/.test(a)), refused[0]);
    assert.ok(refused.every((a) => /memory budget \(--max-memory\) cannot take (this request's body|what this request's JSON body parses into)/.test(a)), refused.join('\n'));
    // Those that fit reached the handler, which refused the name.
    assert.ok(status.every((s) => s === 503 || s === 400), `statuses ${status}`);
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.jobs.length, 0);

    // Everything given back: a job still goes in.
    await waitFor(async () => (await exposition(d.url)).anneald_memory_reserved_bytes === 0,
                  {what: 'the bodies\' reservations given back'});
    const ok = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 10}));
    assert.equal(ok.status, 201, ok.text);
  });
});

test('one memory budget: a budget filled by request bodies still takes control requests (their own reserve)', async () => {
  await withDaemon({args: ['--max-memory', '4M']}, async (d) => {
    // Four bodies held half sent, each buffer (declared length + 1) exactly 1 MiB: the
    // budget is full to the byte.
    const body = '{"name":"' + 'a'.repeat((1 << 20) - 1 - 11) + '"}';
    const held = [];
    for (let i = 0; i < 4; i++) held.push(slowBody(d.url, '/v1/jobs', body));
    await waitFor(async () => (await exposition(d.url)).anneald_memory_reserved_bytes === 4 * 1024 * 1024,
                  {what: 'the four buffers charged'});
    const full = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 10}));
    assert.equal(full.status, 503, full.text);
    assert.match(full.json.error.message, /--max-memory\) cannot take this request's body/);
    // Control requests still get their answer (here: no such job), not a 503.
    for (const path of ['/v1/jobs/j-nosuchjob/cancel', '/v1/jobs/j-nosuchjob/pause']) {
      const c = await api(d.url, 'POST', path, {});
      assert.equal(c.status, 404, `${path}: ${c.text}`);
    }
    // Each whole body still needs its parse charged: refused while the others are held.
    const answers = await Promise.all(held.map((h) => h.finish()));
    assert.ok(answers.every((a) => /^HTTP\/1\.1 (400|503)/.test(a)), answers.map((a) => a.slice(0, 40)).join('\n'));
    await waitFor(async () => (await exposition(d.url)).anneald_memory_reserved_bytes === 0,
                  {what: 'the bodies\' reservations given back'});
  });
});

test('disk: metrics.max_bytes pauses a job with a clear error before its metrics pass the cap', async () => {
  await withDaemon({}, async (d) => {
    for (const [metrics, field] of [[5, 'metrics'], [{max_bytes: -1}, 'metrics.max_bytes'],
      [{max_bytes: 'x'}, 'metrics.max_bytes'], [{max_bytes: 1.5}, 'metrics.max_bytes'],
      [{max_bytes: 2 ** 60}, 'metrics.max_bytes']]) {
      const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({metrics}));
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error.field, field);
    }
    // One lr group: 48 bytes a row; 4800 bytes hold 100 rows.
    const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 1000, metrics: {max_bytes: 4800}}));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.spec.metrics.max_bytes, 4800);
    const j = await waitJob(d.url, r.json.id, (x) => x.state === 'paused');
    assert.equal(j.step, 100);
    assert.match(j.error, /metrics\.max_bytes/);
    const rows = (await api(d.url, 'GET', `/v1/jobs/${r.json.id}/metrics?format=csv`)).text.trim().split('\n').length - 1;
    assert.equal(rows, 100);
    assert.ok(rows * 48 <= 4800);
    assert.equal(j.last_checkpoint_step, 100, 'checkpointed where it paused');
  });
});

test('disk: below --min-free-disk training pauses with a clear error and /healthz says so', async () => {
  await withDaemon({args: ['--min-free-disk', '1000T']}, async (d) => {
    const h = await api(d.url, 'GET', '/healthz');
    assert.equal(h.status, 503, h.text);
    assert.equal(h.json.status, 'degraded');
    assert.match(h.json.problems.join(' '), /--min-free-disk/);
    const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 100000}));
    assert.equal(r.status, 201, r.text);
    const j = await waitJob(d.url, r.json.id, (x) => x.state === 'paused');
    assert.match(j.error, /less than --min-free-disk/);
    assert.ok(j.step < 100000);
  });
  // Early warning: between the limit and twice it, /healthz stays ok and warns.
  const dir = tmpDir();
  try {
    const st = fs.statfsSync(dir);
    const free = st.bavail * st.bsize;
    await withDaemon({dir, args: ['--min-free-disk', String(Math.floor(free * 0.7))]}, async (d) => {
      const h = await api(d.url, 'GET', '/healthz');
      assert.equal(h.status, 200, h.text);
      assert.match(h.json.warnings.join(' '), /training pauses below/);
    });
  } finally {
    removeDir(dir);
  }
});

// Every answer is whole: a 2xx carries its full, parseable body; an error is 4xx/5xx JSON.
async function wholeAnswer(res, what) {
  const text = await res.text();
  const type = res.headers.get('content-type') || '';
  if (res.status < 300) {
    if (type.includes('json')) {
      const j = JSON.parse(text); // throws on a cut body
      assert.equal(j.error, undefined, `${what}: a 2xx with an error inside: ${text.slice(0, 300)}`);
    }
    return {status: res.status, text};
  }
  assert.ok(res.status >= 400 && res.status < 600, `${what}: status ${res.status}`);
  const j = JSON.parse(text);
  assert.ok(j.error && j.error.message, `${what}: ${text.slice(0, 300)}`);
  return {status: res.status, text, error: j.error.message};
}

// POSTs a CSV as curl does for a large body (Expect: 100-continue), so that an upload refused
// before its body is read gets its answer instead of a reset; resolves to a fetch-like object.
function upload(url, name, csv) {
  return new Promise((resolve, reject) => {
    const u = new URL(`${url}/v1/datasets?name=${name}`);
    const req = http.request(u, {method: 'POST', headers: {'Content-Type': 'text/csv',
      'Content-Length': Buffer.byteLength(csv), Expect: '100-continue'}});
    req.on('continue', () => req.end(csv));
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({status: res.statusCode, headers: {get: (k) => res.headers[k.toLowerCase()]},
        text: async () => body}));
    });
    req.on('error', reject);
  });
}

// AddressSanitizer reserves terabytes of address space for its shadow memory: under ulimit -v
// the sanitized daemon cannot start, so this test runs on the optimised build only.
test('under ulimit -v the daemon answers 4xx/5xx or queues with a reason, never dies', {skip: SANITIZED && 'ulimit -v and AddressSanitizer do not mix'}, async () => {
  const limitKb = 1000000; // ~977 MiB of address space; the default --max-memory follows it
  await withDaemon({bin: '/bin/sh', args: ['-c', `ulimit -v ${limitKb}; exec "$0" "$@"`, BIN_PATH()]}, async (d) => {
    const m0 = await exposition(d.url);
    assert.ok(m0.anneald_memory_budget_bytes > 0 && m0.anneald_memory_budget_bytes < limitKb * 1024,
      `budget ${m0.anneald_memory_budget_bytes} under the ${limitKb} KiB limit`);
    // A small finished job for weights and predict.
    const small = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 300}));
    assert.equal(small.status, 201, small.text);
    await waitJob(d.url, small.json.id, (j) => j.state === 'completed');
    // Two large jobs (16.8M parameters: ~335 MiB each with checkpoint copies): one runs, the
    // other waits for memory with the reason on it.
    const big = [];
    for (let i = 0; i < 2; i++) {
      const r = await api(d.url, 'POST', '/v1/jobs', bigJob([16384]));
      assert.equal(r.status, 201, r.text);
      big.push(r.json.id);
    }
    await waitJob(d.url, big[0], (j) => j.state === 'running');
    const second = await waitJob(d.url, big[1], (j) => j.state === 'queued' && j.queue_reason);
    assert.match(second.queue_reason, /waiting for memory/);
    // Then everything at once: uploads of ~40 MB, metrics, weights, predictions.
    let csv = 'a,b,c,y\n';
    const line = '0.123456789,0.987654321,0.555555555,1.25\n';
    csv += line.repeat(Math.floor(40e6 / line.length));
    const reqs = [];
    for (let i = 0; i < 4; i++) {
      reqs.push(upload(d.url, `up${i}`, csv).then((r) => wholeAnswer(r, `upload ${i}`)));
    }
    for (const q of ['', '?format=csv']) {
      reqs.push(fetch(`${d.url}/v1/jobs/${big[0]}/metrics${q}`).then((r) => wholeAnswer(r, `metrics${q}`)));
      reqs.push(fetch(`${d.url}/v1/jobs/${small.json.id}/metrics${q}`).then((r) => wholeAnswer(r, `metrics${q}`)));
    }
    for (let i = 0; i < 4; i++) {
      reqs.push(fetch(`${d.url}/v1/jobs/${small.json.id}/weights`).then((r) => wholeAnswer(r, 'weights')));
      reqs.push(fetch(`${d.url}/v1/jobs/${small.json.id}/predict`, {method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({inputs: Array.from({length: 5000}, () => Array(10).fill(0.5))})}).then((r) => wholeAnswer(r, 'predict')));
    }
    const answers = await Promise.all(reqs);
    const by = {};
    for (const a of answers) by[a.status] = (by[a.status] || 0) + 1;
    assert.ok(answers.some((a) => a.status === 200 || a.status === 201), JSON.stringify(by));
    console.log(`# under ulimit -v: answers by status ${JSON.stringify(by)}`);
    for (const a of answers.filter((x) => x.status >= 500)) assert.match(a.error, /memory|busy|try again/);
    assert.ok(d.running(), 'the daemon is alive');
    const h = await api(d.url, 'GET', '/healthz');
    assert.equal(h.status, 200, h.text);
    for (const id of big) assert.equal((await api(d.url, 'POST', `/v1/jobs/${id}/cancel`)).status, 200);
  });
});
