// End-to-end tests of what a new user meets in the first hour: values that are absent read
// null, data references are checked at submit, every error of a spec comes in one answer,
// predict takes raw inputs, and the daemon's JSON answers end with a newline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, heavyJob, readEvents, waitJob, withDaemon } from './lib.mjs';

test('a running job without validation has val_loss/val_acc null (job object and first event)', async () => {
  await withDaemon({}, async (d) => {
    const { status, json } = await api(d.url, 'POST', '/v1/jobs', heavyJob());
    assert.equal(status, 201, JSON.stringify(json));
    const job = await waitJob(d.url, json.id, (j) => j.state === 'running' && j.step > 0);
    assert.equal(job.val_loss, null);
    assert.equal(job.val_acc, null);
    const evs = await readEvents(d.url, `/v1/jobs/${json.id}/events`,
      { until: (e) => e.some((x) => x.event === 'progress') });
    const p = evs.find((x) => x.event === 'progress');
    assert.ok(p, 'a progress event');
    assert.ok(!('val_loss' in p.data) || p.data.val_loss === null, JSON.stringify(p.data));
    assert.ok(!('val_acc' in p.data) || p.data.val_acc === null, JSON.stringify(p.data));
    await api(d.url, 'POST', `/v1/jobs/${json.id}/cancel`);
  });
});

test('JSON answers end with a newline, errors included', async () => {
  await withDaemon({}, async (d) => {
    for (const [m, p, body] of [['GET', '/healthz'], ['GET', '/v1/jobs'], ['GET', '/v1/jobs/j_999999'],
                                ['POST', '/v1/jobs', '{"model":']]) {
      const r = await api(d.url, m, p, body, body ? {'Content-Type': 'application/json'} : {});
      assert.ok(r.text.endsWith('}\n'), `${m} ${p}: ${JSON.stringify(r.text.slice(-20))}`);
      assert.equal(r.text.indexOf('\n'), r.text.length - 1, 'one line');
    }
  });
});

// A Hugging Face Trainer ZeRO-2 config, with "auto" wherever the Trainer fills a value in.
const HF_ZERO2 = {
  fp16: {enabled: 'auto', loss_scale: 0, initial_scale_power: 16},
  optimizer: {type: 'AdamW', params: {lr: 'auto', betas: 'auto', eps: 'auto', weight_decay: 'auto'}},
  scheduler: {type: 'WarmupLR', params: {warmup_min_lr: 'auto', warmup_max_lr: 'auto', warmup_num_steps: 'auto'}},
  zero_optimization: {stage: 2, allgather_partitions: true, overlap_comm: true, contiguous_gradients: true},
  gradient_accumulation_steps: 'auto', gradient_clipping: 'auto', steps_per_print: 2000,
  train_batch_size: 'auto', train_micro_batch_size_per_gpu: 'auto', wall_clock_breakdown: false,
};

const smallJob = (ds) => ({
  model: {type: 'linear', inputs: 4, outputs: 1},
  data: {type: 'synthetic', task: 'regression', samples: 64, features: 4},
  steps: 100, ds_config: ds,
});

test('every "auto" that cannot be worked out is in one answer, each saying what to give', async () => {
  await withDaemon({}, async (d) => {
    const r = await api(d.url, 'POST', '/v1/jobs', smallJob(HF_ZERO2));
    assert.equal(r.status, 400, r.text);
    const fields = r.json.errors.map((e) => e.field);
    assert.deepEqual(fields, ['ds_config.train_batch_size', 'ds_config.gradient_clipping',
      'ds_config.optimizer.params.lr', 'ds_config.optimizer.params.betas', 'ds_config.optimizer.params.eps',
      'ds_config.optimizer.params.weight_decay', 'ds_config.scheduler.params.warmup_num_steps']);
    assert.equal(r.json.error.field, 'ds_config.train_batch_size');
    const msg = Object.fromEntries(r.json.errors.map((e) => [e.field, e.message]));
    assert.match(msg['ds_config.optimizer.params.lr'], /learning_rate/);
    assert.match(msg['ds_config.optimizer.params.betas'], /\[0\.9, 0\.999\]/);
    assert.match(msg['ds_config.scheduler.params.warmup_num_steps'], /warmup_steps/);
    assert.match(msg['ds_config.gradient_clipping'], /max_grad_norm/);
    // with those numbers given, the same config is accepted; warmup_max_lr/min_lr are worked out
    const fixed = {...HF_ZERO2, train_batch_size: 8, gradient_clipping: 1.0,
      optimizer: {type: 'AdamW', params: {lr: 0.001, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0}},
      scheduler: {type: 'WarmupLR', params: {warmup_min_lr: 'auto', warmup_max_lr: 'auto', warmup_num_steps: 10}}};
    const ok = await api(d.url, 'POST', '/v1/jobs', smallJob(fixed));
    assert.equal(ok.status, 201, ok.text);
    assert.ok(ok.json.warnings.some((w) => w.startsWith('ds_config.zero_optimization.stage 2 runs as stage 1 here')), ok.text);
    assert.ok(ok.json.warnings.includes('ds_config.zero_optimization.overlap_comm is not used by this daemon (ignored)'), ok.text);
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.total, 1);
  });
});

test('typos in ds_config: did you mean, and the missing optimizer names the misspelt key', async () => {
  await withDaemon({}, async (d) => {
    const ds = {train_batch_size: 8, gradient_cliping: 0.5, optimizer: {type: 'Adam', params: {lr: 0.01}}};
    const r = await api(d.url, 'POST', '/v1/jobs', smallJob(ds));
    assert.equal(r.status, 201, r.text);
    assert.ok(r.json.warnings.includes('ds_config.gradient_cliping is not a DeepSpeed key: did you mean ' +
                                       'ds_config.gradient_clipping? (ignored)'), JSON.stringify(r.json.warnings));
    const o = await api(d.url, 'POST', '/v1/jobs', smallJob({train_batch_size: 8, optimiser: {type: 'Adam'}}));
    assert.equal(o.status, 400);
    assert.equal(o.json.error.field, 'ds_config.optimizer');
    assert.match(o.json.error.message, /ds_config has "optimiser": did you mean "optimizer"\?/);
  });
});

test('malformed JSON is reported at the offending byte', async () => {
  await withDaemon({}, async (d) => {
    for (const [body, col, what] of [
      ['{"name": "a",, "seed": 1}', 14, /unexpected ',': an object key must be a string in double quotes/],
      ["{'name': 'a'}", 2, /single quotes are not JSON/],
      ['{name: "a"}', 2, /unexpected 'n': an object key must be a string/],
      ['{"a": [1,,2]}', 10, /unexpected ','/],
      ['{"a": 1, }', 8, /trailing comma/],
    ]) {
      const r = await api(d.url, 'POST', '/v1/jobs', body, {'Content-Type': 'application/json'});
      assert.equal(r.status, 400, body);
      assert.match(r.json.error.message, new RegExp(`malformed JSON at line 1, column ${col}: `), body);
      assert.match(r.json.error.message, what, body);
    }
  });
});

test('data references are checked at submit: builtin and uploaded sets, every column listed', async () => {
  await withDaemon({}, async (d) => {
    const iris = (data) => ({model: {type: 'mlp', inputs: 4, hidden: [8], outputs: 3}, loss: 'cross_entropy',
      data: {type: 'builtin', name: 'iris', ...data},
      ds_config: {train_batch_size: 16, optimizer: {type: 'Adam', params: {lr: 0.01}}}});
    const r = await api(d.url, 'POST', '/v1/jobs', iris({target: 'class'}));
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.field, 'data.target');
    assert.equal(r.json.error.message, 'builtin iris has no column "class"; its columns are: sepal_length, ' +
      'sepal_width, petal_length, petal_width, species (without data.target the last column is the label)');
    assert.equal((await api(d.url, 'POST', '/v1/jobs', iris({target: 'species'}))).status, 201);
    // an uploaded set: target and features are checked against its columns, all bad names at once
    const csv = 'a,b,c,label\n' + Array.from({length: 20}, (_, i) => `${i},${i * 2},${i % 3},${i % 2}`).join('\n') + '\n';
    const up = await api(d.url, 'POST', '/v1/datasets?name=small', csv, {'Content-Type': 'text/csv'});
    assert.equal(up.status, 201, up.text);
    const job = (data) => ({model: {type: 'linear', inputs: 2, outputs: 1},
      data: {type: 'dataset', name: 'small', ...data},
      ds_config: {train_batch_size: 4, optimizer: {type: 'SGD', params: {lr: 0.01}}}});
    const bad = await api(d.url, 'POST', '/v1/jobs', job({target: 'y', features: ['a', 'bee']}));
    assert.equal(bad.status, 400, bad.text);
    assert.deepEqual(bad.json.errors.map((e) => e.field), ['data.target', 'data.features[1]']);
    assert.match(bad.json.errors[0].message, /no column "y"; its columns are: a, b, c, label/);
    assert.match(bad.json.errors[1].message, /no column "bee"/);
    assert.equal((await api(d.url, 'POST', '/v1/jobs', job({target: 'label', features: ['a', 'b']}))).status, 201);
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.total, 2);
  });
});

test('predict takes raw inputs and standardises them as training did; /weights returns the statistics', async () => {
  const fs = await import('node:fs');
  const lines = fs.readFileSync(new URL('../../data/iris.csv', import.meta.url), 'utf8').trim().split('\n').slice(1);
  const rows = lines.map((l) => l.split(',').slice(0, 4).map(Number));
  const labels = lines.map((l) => Number(l.split(',')[4]));
  await withDaemon({}, async (d) => {
    const spec = {seed: 1, model: {type: 'mlp', inputs: 4, hidden: [16], outputs: 3}, loss: 'cross_entropy',
      data: {type: 'builtin', name: 'iris'}, steps: 400,
      ds_config: {train_batch_size: 16, optimizer: {type: 'Adam', params: {lr: 0.01}}}};
    const {json: job} = await api(d.url, 'POST', '/v1/jobs', spec);
    await waitJob(d.url, job.id, (j) => j.state === 'completed');
    const acc = (outs) => outs.filter((o, i) => o.indexOf(Math.max(...o)) === labels[i]).length / outs.length;
    const raw = await api(d.url, 'POST', `/v1/jobs/${job.id}/predict`, {inputs: rows});
    assert.equal(raw.status, 200, raw.text);
    assert.ok(acc(raw.json.outputs) > 0.9, `accuracy on raw rows ${acc(raw.json.outputs)}`);
    const w = await api(d.url, 'GET', `/v1/jobs/${job.id}/weights`);
    const st = w.json.input_stats;
    assert.equal(st.mean.length, 4);
    assert.equal(st.std.length, 4);
    // the statistics are the training rows' (all 150 here): mean and population std
    for (let k = 0; k < 4; k++) {
      const col = rows.map((r) => r[k]);
      const m = col.reduce((a, b) => a + b, 0) / col.length;
      assert.ok(Math.abs(st.mean[k] - m) < 1e-12, `mean ${k}`);
      const sd = Math.sqrt(col.reduce((a, b) => a + (b - m) ** 2, 0) / col.length);
      assert.ok(Math.abs(st.std[k] - sd) < 1e-12, `std ${k}`);
    }
    // the checkpoint carries them, so inference needs no data (test_infer checks the section)
    // standardising by hand with them and saying so gives the same outputs
    const z = rows.map((r) => r.map((v, k) => (v - st.mean[k]) / st.std[k]));
    const pre = await api(d.url, 'POST', `/v1/jobs/${job.id}/predict`, {inputs: z, normalized: true});
    assert.deepEqual(pre.json.outputs, raw.json.outputs);
    // raw rows declared standardised are what the old default did: far worse
    const wrong = await api(d.url, 'POST', `/v1/jobs/${job.id}/predict`, {inputs: rows, normalized: true});
    assert.ok(acc(wrong.json.outputs) < 0.8, `${acc(wrong.json.outputs)}`);
    for (const [body, field] of [[{inputs: rows, normalized: 'yes'}, 'normalized'], [{inputs: rows, normalise: true}, 'normalise']]) {
      const b = await api(d.url, 'POST', `/v1/jobs/${job.id}/predict`, body);
      assert.equal(b.status, 400);
      assert.equal(b.json.error.field, field);
    }
    // a job on synthetic data trains on its inputs as they are: no statistics
    const {json: lin} = await api(d.url, 'POST', '/v1/jobs', {model: {type: 'linear', inputs: 2, outputs: 1},
      data: {type: 'synthetic', task: 'regression', samples: 32, features: 2}, steps: 10,
      ds_config: {train_batch_size: 4, optimizer: {type: 'SGD', params: {lr: 0.01}}}});
    await waitJob(d.url, lin.id, (j) => j.state === 'completed');
    assert.equal((await api(d.url, 'GET', `/v1/jobs/${lin.id}/weights`)).json.input_stats, null);
  });
});

test('clients that leave an event stream leave no unstamped line in the log', async () => {
  const {startDaemon} = await import('./lib.mjs');
  const d = await startDaemon({});
  try {
    const {json} = await api(d.url, 'POST', '/v1/jobs', heavyJob());
    await waitJob(d.url, json.id, (j) => j.state === 'running' && j.step > 0);
    for (let k = 0; k < 6; k++) {
      await readEvents(d.url, `/v1/jobs/${json.id}/events`, {timeoutMs: 300});
      await readEvents(d.url, '/v1/events', {timeoutMs: 200});
    }
    await api(d.url, 'POST', `/v1/jobs/${json.id}/cancel`);
  } finally {
    await d.stop();
  }
  const lines = d.stderr().split('\n').filter((l) => l);
  assert.ok(lines.length > 0);
  for (const l of lines) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ anneald (error|warn|info|debug): /, l);
  // and nothing of it is a warning: a client leaving is routine
  assert.ok(!lines.some((l) => / anneald (error|warn): /.test(l)), lines.join('\n'));
});

test('the log tells each job\'s story at the default level: submitted, queued, running, paused, cancelled, deleted', async () => {
  await withDaemon({}, async (d) => {
    const r = await api(d.url, 'POST', '/v1/jobs', heavyJob({name: 'story'}));
    assert.equal(r.status, 201, r.text);
    const id = r.json.id;
    await waitJob(d.url, id, (j) => j.state === 'running');
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${id}/pause`, {})).status, 200);
    await waitJob(d.url, id, (j) => j.state === 'paused');
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${id}/cancel`, {})).status, 200);
    await waitJob(d.url, id, (j) => j.state === 'cancelled');
    assert.equal((await api(d.url, 'DELETE', `/v1/jobs/${id}`)).status, 204);
    const lines = d.log().split('\n').filter((l) => l.includes(`job ${id} `));
    const story = lines.map((l) => / anneald info: job \S+ (\S+)/.exec(l)?.[1]);
    assert.deepEqual(story.filter((s) => s !== 'state'), ['submitted:', 'queued', 'running', 'paused', 'cancelled', 'deleted'], lines.join('\n'));
    assert.match(lines[0], /job \S+ submitted: "story", 100000000 steps/);
  });
});
