// The builtin fashion-mnist data set (Debian's dataset-fashion-mnist, installed by make deps):
// an MLP trains on it with the official test split as validation; a missing file is a 400
// naming it at submission, a damaged one fails the job naming it; bad specs name their field.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import {withDaemon, api, waitJob, tmpDir, removeDir} from './lib.mjs';

const DIR = '/usr/share/datasets/fashion-mnist';
const FILES = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
               't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'];

const job = (over = {}) => ({
  name: 'fashion', seed: 1, steps: 300,
  model: {type: 'mlp', inputs: 784, hidden: [64], outputs: 10}, loss: 'cross_entropy',
  data: {type: 'builtin', name: 'fashion-mnist'},
  validation: {split: 'test', every_steps: 300},
  ds_config: {train_batch_size: 64, optimizer: {type: 'SGD', params: {lr: 0.05, momentum: 0.9}}},
  ...over,
});

test('an MLP on fashion-mnist validates on the 10,000 test images', async () => {
  await withDaemon({}, async (d) => {
    const r = await api(d.url, 'POST', '/v1/jobs', job());
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.json.spec.validation, {split: 'test', every_steps: 300});
    const j = await waitJob(d.url, r.json.id, (x) => x.state === 'completed', 120000);
    assert.ok(j.val_acc > 0.75 && j.val_acc < 1, `val_acc ${j.val_acc}`);
  });
});

test('bad fashion-mnist specs name their field', async () => {
  await withDaemon({}, async (d) => {
    const cases = [
      [job({model: {type: 'mlp', inputs: 100, hidden: [8], outputs: 10}}), 'model.inputs'],
      [job({model: {type: 'mlp', inputs: 784, hidden: [8], outputs: 3}}), 'model.outputs'],
      [job({validation: {split: 'test', fraction: 0.1}}), 'validation.split'],
      [job({validation: {split: 'train'}}), 'validation.split'],
      [job({data: {type: 'builtin', name: 'fashion-mnist', target: 'label'}}), 'data.target'],
      [{...job(), data: {type: 'builtin', name: 'iris'}, model: {type: 'mlp', inputs: 4, hidden: [8], outputs: 3}}, 'validation.split'],
    ];
    for (const [spec, field] of cases) {
      const r = await api(d.url, 'POST', '/v1/jobs', spec);
      assert.equal(r.status, 400, r.text);
      const fields = [r.json.error.field, ...(r.json.errors || []).map((e) => e.field)];
      assert.ok(fields.includes(field), `${JSON.stringify(fields)} has ${field}`);
    }
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.total, 0);
  });
});

test('a missing file is a 400 naming it; a damaged one fails the job naming it', async () => {
  const dir = tmpDir('anneald-fashion-');
  try {
    for (const f of FILES.slice(0, 3)) fs.copyFileSync(path.join(DIR, f), path.join(dir, f));
    await withDaemon({env: {ANNEALD_FASHION_MNIST_DIR: dir}}, async (d) => {
      const r = await api(d.url, 'POST', '/v1/jobs', job());
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error.field, 'data.name');
      assert.match(r.json.error.message, /t10k-labels-idx1-ubyte\.gz is missing/);
      assert.match(r.json.error.message, /dataset-fashion-mnist/);
      // a gzip stream cut in the middle
      const whole = fs.readFileSync(path.join(DIR, FILES[3]));
      fs.writeFileSync(path.join(dir, FILES[3]), whole.subarray(0, whole.length >> 1));
      const c = await api(d.url, 'POST', '/v1/jobs', job());
      assert.equal(c.status, 201, c.text);
      const j = await waitJob(d.url, c.json.id, (x) => x.state === 'failed', 60000);
      assert.match(j.error, /t10k-labels-idx1-ubyte\.gz is damaged/);
      // a whole gzip file whose IDX content is cut off
      const idx = zlib.gunzipSync(whole);
      fs.writeFileSync(path.join(dir, FILES[3]), zlib.gzipSync(idx.subarray(0, idx.length - 10)));
      const e = await api(d.url, 'POST', '/v1/jobs', job());
      const k = await waitJob(d.url, e.json.id, (x) => x.state === 'failed', 60000);
      assert.match(k.error, /t10k-labels-idx1-ubyte/);
    });
  } finally {
    removeDir(dir);
  }
});
