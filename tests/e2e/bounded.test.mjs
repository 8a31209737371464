// Bounded and exact: numbers keep their bits through the store, data-set deletes leave
// finished jobs usable, jobs are never silently lost, /metrics counts what was committed.
import test from 'node:test';
import assert from 'node:assert/strict';
import {api, waitJob, withDaemon, startDaemon, tutorialJob, tmpDir, removeDir, sleep} from './lib.mjs';

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
function regressionCsv(rows = 64) {
  let s = 'a,b,y\n';
  for (let i = 0; i < rows; i++) {
    const a = (i % 7) / 7, b = (i % 5) / 5;
    s += `${a},${b},${2 * a - b}\n`;
  }
  return s;
}

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

test('a worker without a store takes no job and /healthz says so; a full queue answers 503', async () => {
  const dir = tmpDir();
  try {
    const d = await startDaemon({dir, args: ['--workers', '2', '--max-queued', '2'], env: {ANNEALD_FAULT: 'worker-store'}});
    let ids = [];
    try {
      const h = await api(d.url, 'GET', '/healthz');
      assert.equal(h.status, 503, h.text);
      assert.equal(h.json.status, 'degraded');
      assert.equal(h.json.workers_down, 2);
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
