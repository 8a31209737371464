// The gpt model on text data through the service: a job on inline text and on the builtin
// tinyshakespeare submits, trains, records loss and lr, shows its vocabulary; a daemon killed
// with SIGKILL mid-run finishes with weights byte-identical to an uninterrupted run; bad
// specs are 400s naming the field, and nothing is stored for them.
import test from 'node:test';
import assert from 'node:assert/strict';
import {startDaemon, withDaemon, api, waitJob, waitFor, tmpDir, removeDir, SLOW} from './lib.mjs';

const TEXT = 'to be or not to be, that is the question: whether tis nobler in the mind to suffer ' +
             'the slings and arrows of outrageous fortune, or to take arms against a sea of troubles';

function gptJob(over = {}) {
  return {
    name: 'tiny-gpt', seed: 3,
    model: {type: 'gpt', block_size: 8, n_layer: 2, n_head: 2, n_embd: 16, ...(over.model || {})},
    data: over.data || {type: 'text', text: TEXT},
    steps: over.steps || 30,
    validation: {fraction: 0.2, every_steps: 10},
    checkpoint: over.checkpoint || {every_steps: 10},
    ds_config: {train_batch_size: 4, gradient_clipping: 1.0,
                optimizer: {type: 'AdamW', params: {lr: 0.003, weight_decay: 0.1}},
                scheduler: {type: 'WarmupCosineLR', params: {total_num_steps: over.steps || 30,
                                                             warmup_num_steps: 5}}},
  };
}

test('a gpt job on inline text trains, records loss and lr, and shows its vocabulary', async () => {
  await withDaemon({}, async (d) => {
    const r = await api(d.url, 'POST', '/v1/jobs', gptJob());
    assert.equal(r.status, 201, r.text);
    const distinct = [...new Set([...TEXT])].sort();
    const voc = r.json.spec.data.vocabulary;
    assert.equal(voc.tokenizer, 'char');
    assert.equal(voc.size, distinct.length);
    assert.deepEqual(voc.tokens, distinct);
    assert.equal(r.json.spec.model.vocab_size, distinct.length);
    assert.equal(r.json.spec.loss, 'cross_entropy');
    const job = await waitJob(d.url, r.json.id, (j) => j.state === 'completed');
    assert.equal(job.step, 30);
    const m = (await api(d.url, 'GET', `/v1/jobs/${job.id}/metrics`)).json;
    assert.equal(m.step.length, 30);
    assert.ok(m.loss[0] > 2.5 && m.loss[0] < 3.5, `first loss ${m.loss[0]} near ln(${distinct.length})`);
    assert.ok(m.loss[29] < m.loss[0], 'the loss falls');
    const vl = m.val_loss.filter((x) => x !== null);
    assert.equal(vl.length, 3);
    const w = JSON.parse((await api(d.url, 'GET', `/v1/jobs/${job.id}/weights`)).text);
    assert.equal(w.tensors[0].name, 'transformer.wte.weight');
    assert.deepEqual(w.tensors[0].shape, [distinct.length, 16]);
  });
});

test('byte tokenizer: vocabulary 256 without a token list', async () => {
  await withDaemon({}, async (d) => {
    const r = await api(d.url, 'POST', '/v1/jobs', gptJob({data: {type: 'text', text: TEXT, tokenizer: 'byte'}, steps: 5}));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.spec.model.vocab_size, 256);
    assert.equal(r.json.spec.data.vocabulary.size, 256);
    await waitJob(d.url, r.json.id, (j) => j.state === 'completed');
  });
});

const BAD = [
  ['heads not dividing the width', {model: {n_head: 3}}, 'model.n_head', /divide/],
  ['vocabulary size mismatch', {model: {vocab_size: 10}}, 'model.vocab_size', /vocabulary/],
  ['unknown tokenizer', {data: {type: 'text', text: TEXT, tokenizer: 'bpe'}}, 'data.tokenizer', /char/],
  ['text shorter than one window', {data: {type: 'text', text: 'abc'}}, 'data.text', /at least/],
  ['empty text', {data: {type: 'text', text: ''}}, 'data.text', /non-empty/],
  ['text and dataset both', {data: {type: 'text', text: TEXT, dataset: 'x'}}, 'data.dataset', /not both/],
  ['table data for a gpt', {data: {type: 'builtin', name: 'iris'}}, 'data.type', /text/],
  ['dropout', {model: {dropout: 0.1}}, 'model.dropout', /0/],
  ['a vocabulary that is not the text\'s', {data: {type: 'text', text: TEXT, vocabulary: {tokenizer: 'char', size: 2, tokens: ['a', 'b']}}}, 'data.vocabulary', /differs/],
  ['unknown sampling', {data: {type: 'text', text: TEXT, sampling: 'sometimes'}}, 'data.sampling', /random/],
  ['init of a wrong shape', {model: {init: {'transformer.wpe.weight': [[1, 2]]}}}, 'model.init.transformer.wpe.weight', /rows/],
  ['init of an unknown tensor', {model: {init: {'lm_head.weight': []}}}, 'model.init.lm_head.weight', /unknown/],
  ['block_size 0', {model: {block_size: 0}}, 'model.block_size', /./],
];

test('bad gpt and text specs: 400 naming the field, nothing stored', async () => {
  await withDaemon({}, async (d) => {
    for (const [what, over, field, re] of BAD) {
      const r = await api(d.url, 'POST', '/v1/jobs', gptJob(over));
      assert.equal(r.status, 400, `${what}: ${r.text}`);
      const fields = [r.json.error.field, ...(r.json.errors || []).map((e) => e.field)];
      assert.ok(fields.includes(field), `${what}: fields ${JSON.stringify(fields)}, expected ${field}`);
      const msg = (r.json.errors || [r.json.error]).find((e) => e.field === field).message;
      assert.match(msg, re, what);
    }
    const mse = await api(d.url, 'POST', '/v1/jobs', {...gptJob(), loss: 'mse'});
    assert.equal(mse.status, 400);
    assert.equal(mse.json.error.field, 'loss');
    const mlp = await api(d.url, 'POST', '/v1/jobs', {...gptJob(), model: {type: 'mlp', inputs: 4, hidden: [8], outputs: 3}});
    assert.equal(mlp.status, 400);
    assert.equal(mlp.json.error.field, 'data.type');
    const list = await api(d.url, 'GET', '/v1/jobs');
    assert.equal(list.json.total, 0);
  });
});

// The small tinyshakespeare run of the kill test: ~1 s of training per 100 steps here.
const STEPS = 240;
const SHAKE = gptJob({data: {type: 'builtin', name: 'tinyshakespeare', sampling: 'random'},
                      model: {block_size: 16, n_embd: 32}, steps: STEPS,
                      checkpoint: {every_steps: 20}});

async function uninterrupted(spec) {
  return withDaemon({}, async (d) => {
    const r = await api(d.url, 'POST', '/v1/jobs', spec);
    assert.equal(r.status, 201, r.text);
    await waitJob(d.url, r.json.id, (j) => j.state === 'completed', 120000);
    return {weights: (await api(d.url, 'GET', `/v1/jobs/${r.json.id}/weights`)).text,
            metrics: (await api(d.url, 'GET', `/v1/jobs/${r.json.id}/metrics?format=csv`)).text};
  });
}

test('kill -9 mid-run: the finished gpt weights are byte-identical to an uninterrupted run', async () => {
  const ref = await uninterrupted(SHAKE);
  const dir = tmpDir();
  try {
    let d = await startDaemon({dir});
    const r = await api(d.url, 'POST', '/v1/jobs', SHAKE);
    assert.equal(r.status, 201, r.text);
    const id = r.json.id;
    assert.equal(r.json.spec.data.vocabulary.size, 65);
    // Past the first checkpoints, well before the end.
    await waitFor(async () => {
      const j = (await api(d.url, 'GET', `/v1/jobs/${id}`)).json;
      return j.last_checkpoint_step >= 40 && j.step < STEPS - 40 ? j : null;
    }, {timeoutMs: 60000, intervalMs: 10, what: 'a checkpoint mid-run'});
    await d.kill9();
    d = await startDaemon({dir});
    try {
      const job = await waitJob(d.url, id, (j) => j.state === 'completed', 120000 * SLOW);
      assert.equal(job.step, STEPS);
      const w = (await api(d.url, 'GET', `/v1/jobs/${id}/weights`)).text;
      assert.equal(w, ref.weights, 'weights after the kill differ from the uninterrupted run');
      const csv = (await api(d.url, 'GET', `/v1/jobs/${id}/metrics?format=csv`)).text;
      const cols = (t) => t.trim().split('\n').map((l) => l.split(',').slice(0, 3).join(','));
      assert.deepEqual(cols(csv), cols(ref.metrics), 'step, loss and lr of every step');
    } finally {
      await d.stop();
    }
  } finally {
    removeDir(dir);
  }
});

test('a text corpus uploads as text/plain and trains a gpt job by name', async () => {
  await withDaemon({}, async (d) => {
    const up = await api(d.url, 'POST', '/v1/datasets?name=poems', TEXT, {'Content-Type': 'text/plain; charset=utf-8'});
    assert.equal(up.status, 201, up.text);
    assert.equal(up.json.kind, 'text');
    assert.equal(up.json.characters, [...TEXT].length);
    assert.equal(up.json.bytes, Buffer.byteLength(TEXT));
    const got = await api(d.url, 'GET', `/v1/datasets/${up.json.id}`);
    assert.equal(got.json.kind, 'text');
    const csv = await api(d.url, 'POST', '/v1/datasets?name=table', 'a,b\n1,2\n', {'Content-Type': 'text/csv'});
    assert.equal(csv.json.kind, 'csv');
    // Bad corpora: not UTF-8, NUL, too short; nothing stored.
    // (a body that is not UTF-8 is refused by the request guard, field "body", before it.)
    for (const [body, re, field] of [[new Uint8Array([0x61, 0xff, 0x62, 0x63]), /UTF-8/, 'body'],
                                     ['ab\u0000cd', /NUL/, 'body'], ['a', /at least/, 'text']]) {
      const r = await api(d.url, 'POST', '/v1/datasets?name=bad', body, {'Content-Type': 'text/plain'});
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error.field, field, r.text);
      assert.match(r.json.error.message, re);
    }
    assert.equal((await api(d.url, 'GET', '/v1/datasets')).json.datasets.length, 2);
    const job = await api(d.url, 'POST', '/v1/jobs', gptJob({data: {type: 'text', dataset: 'poems'}, steps: 12}));
    assert.equal(job.status, 201, job.text);
    const done = await waitJob(d.url, job.json.id, (j) => j.state === 'completed');
    assert.equal(done.step, 12);
    // A CSV table or a missing name is a 422 naming data.dataset.
    for (const name of ['table', 'nosuch']) {
      const r = await api(d.url, 'POST', '/v1/jobs', gptJob({data: {type: 'text', dataset: name}}));
      assert.equal(r.status, 422, r.text);
      assert.equal(r.json.error.field, 'data.dataset');
    }
    // The corpus is in use by the job's checkpoints' spec; a vocabulary mismatch is found at
    // training and fails the job naming model.vocab_size.
    const mm = await api(d.url, 'POST', '/v1/jobs', gptJob({data: {type: 'text', dataset: 'poems'}, model: {vocab_size: 7}}));
    assert.equal(mm.status, 201, mm.text);
    const failed = await waitJob(d.url, mm.json.id, (j) => j.state === 'failed' || j.state === 'completed')
      .catch((e) => ({state: 'failed', error: e.message}));
    assert.equal(failed.state, 'failed');
    assert.match(failed.error, /vocab_size/);
  });
});

test('generate: text from a checkpoint, the same for the same seed, streamed as SSE, bad requests named', async () => {
  await withDaemon({}, async (d) => {
    const r = await api(d.url, 'POST', '/v1/jobs', gptJob({steps: 20}));
    assert.equal(r.status, 201, r.text);
    const id = r.json.id;
    await waitJob(d.url, id, (j) => j.state === 'completed');
    const gen = (body) => api(d.url, 'POST', `/v1/jobs/${id}/generate`, body);
    const a = await gen({prompt: 'to be', max_tokens: 40, temperature: 0.9, top_k: 10, seed: 7});
    assert.equal(a.status, 200, a.text);
    assert.equal(a.json.step, 20);
    assert.equal(a.json.tokens, 40);
    assert.equal([...a.json.text].length, 40);
    for (const ch of a.json.text) assert.ok(TEXT.includes(ch), `generated '${ch}' is in the vocabulary`);
    const again = await gen({prompt: 'to be', max_tokens: 40, temperature: 0.9, top_k: 10, seed: 7});
    assert.equal(again.json.text, a.json.text, 'same seed, same checkpoint: same text');
    const other = await gen({prompt: 'to be', max_tokens: 40, temperature: 0.9, top_k: 10, seed: 8});
    assert.notEqual(other.json.text, a.json.text, 'another seed draws other text');
    const g1 = await gen({prompt: 'to be', max_tokens: 30, temperature: 0, seed: 1});
    const g2 = await gen({prompt: 'to be', max_tokens: 30, temperature: 0, seed: 2});
    assert.equal(g1.json.text, g2.json.text, 'temperature 0 is greedy');
    const at10 = await gen({prompt: 'to', max_tokens: 20, temperature: 0, step: 10});
    assert.equal(at10.json.step, 10);
    // SSE: one token event per token, then done with the same text as the JSON answer.
    const res = await fetch(`${d.url}/v1/jobs/${id}/generate`, {method: 'POST',
      headers: {'Content-Type': 'application/json', Accept: 'text/event-stream'},
      body: JSON.stringify({prompt: 'to be', max_tokens: 40, temperature: 0.9, top_k: 10, seed: 7})});
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/event-stream/);
    const events = (await res.text()).trim().split('\n\n').map((b) => {
      const [ev, data] = b.split('\n');
      return {event: ev.replace('event: ', ''), data: JSON.parse(data.replace('data: ', ''))};
    });
    assert.equal(events.length, 41);
    assert.ok(events.slice(0, 40).every((e) => e.event === 'token'));
    assert.equal(events.slice(0, 40).map((e) => e.data.token).join(''), a.json.text);
    assert.equal(events[40].event, 'done');
    assert.deepEqual(events[40].data, a.json);
    // Bad requests.
    const bad = [
      [{prompt: 'to be {'}, 'prompt', /'\{'/],
      [{max_tokens: 5}, 'prompt', /prompt/],
      [{prompt: 'to', top_k: 1000}, 'top_k', /vocabulary/],
      [{prompt: 'to', temperature: -1}, 'temperature', /./],
      [{prompt: 'to', max_tokens: 0}, 'max_tokens', /./],
      [{prompt: 'to', tokens: 5}, 'tokens', /unknown|not/],
      [{prompt: 7}, 'prompt', /string/],
    ];
    for (const [body, field, re] of bad) {
      const b = await gen(body);
      assert.equal(b.status, 400, `${JSON.stringify(body)}: ${b.text}`);
      assert.equal(b.json.error.field, field, JSON.stringify(body));
      assert.match(b.json.error.message, re);
    }
    assert.equal((await gen({prompt: 'to', step: 11})).status, 404);
    assert.equal((await api(d.url, 'POST', '/v1/jobs/j_999999/generate', {prompt: 'a'})).status, 404);
    const mlp = await api(d.url, 'POST', '/v1/jobs', {model: {type: 'linear', inputs: 2, outputs: 1},
      data: {type: 'synthetic', task: 'regression', samples: 64, features: 2}, steps: 3,
      ds_config: {train_batch_size: 8, optimizer: {type: 'SGD', params: {lr: 0.1}}}});
    await waitJob(d.url, mlp.json.id, (j) => j.state === 'completed');
    const notgpt = await api(d.url, 'POST', `/v1/jobs/${mlp.json.id}/generate`, {prompt: 'a'});
    assert.equal(notgpt.status, 400);
    assert.equal(notgpt.json.error.field, 'model');
  });
});

test('anneald generate: offline text from a saved state, the same for the same seed', async () => {
  const {spawnSync} = await import('node:child_process');
  const path = await import('node:path');
  const fs = await import('node:fs');
  const {BIN} = await import('./lib.mjs');
  const dir = tmpDir();
  try {
    const job = path.join(dir, 'job.json'), state = path.join(dir, 'state.bin');
    fs.writeFileSync(job, JSON.stringify(gptJob({steps: 15})));
    const tr = spawnSync(BIN, ['train', job, '--save', state], {encoding: 'utf8'});
    assert.equal(tr.status, 0, tr.stderr);
    const run = (...a) => spawnSync(BIN, ['generate', job, '--resume', state, ...a], {encoding: 'utf8'});
    const a = run('--prompt', 'to be', '--max-tokens', '50', '--seed', '4', '--top-k', '5');
    assert.equal(a.status, 0, a.stderr);
    assert.ok(a.stdout.startsWith('to be'));
    assert.equal([...a.stdout.trimEnd()].length >= 50, true);
    const b = run('--prompt', 'to be', '--max-tokens', '50', '--seed', '4', '--top-k', '5');
    assert.equal(b.stdout, a.stdout);
    const bad = run('--prompt', 'to be {');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /prompt: .*'\{'/);
    const nores = spawnSync(BIN, ['generate', job, '--prompt', 'a'], {encoding: 'utf8'});
    assert.equal(nores.status, 2);
    // an uploaded corpus is the service's: offline it is refused naming data.dataset
    const up = path.join(dir, 'up.json');
    fs.writeFileSync(up, JSON.stringify(gptJob({data: {type: 'text', dataset: 'poems'}})));
    const off = spawnSync(BIN, ['train', up], {encoding: 'utf8'});
    assert.equal(off.status, 1);
    assert.match(off.stderr, /^error: data\.dataset: /);
  } finally {
    removeDir(dir);
  }
});

test('the README\'s "Train a small GPT": its job is valid, shows 65 characters, and answers as shown', async () => {
  const fs = await import('node:fs');
  const readme = fs.readFileSync('README.md', 'utf8');
  const text = /cat > shakespeare\.json <<'JSON'\n([\s\S]*?)\nJSON\n/.exec(readme)[1];
  const spec = JSON.parse(text);
  const shown = (line) => assert.ok(readme.includes(line), `the README shows: ${line}`);
  await withDaemon({}, async (d) => {
    const full = await api(d.url, 'POST', '/v1/jobs', spec);
    assert.equal(full.status, 201, full.text);
    assert.equal(full.json.spec.data.vocabulary.size, 65);
    assert.equal(full.json.spec.model.vocab_size, 65);
    await api(d.url, 'POST', `/v1/jobs/${full.json.id}/cancel`, {});
    // The same recipe, short: trains, then generates as the README's commands do.
    const short = structuredClone(spec);
    short.steps = 20;
    short.ds_config.scheduler.params.total_num_steps = 20;
    short.ds_config.scheduler.params.warmup_num_steps = 5;
    short.validation.every_steps = 10;
    short.checkpoint.every_steps = 10;
    const r = await api(d.url, 'POST', '/v1/jobs', short);
    assert.equal(r.status, 201, r.text);
    await waitJob(d.url, r.json.id, (j) => j.state === 'completed', 120000);
    const g = await api(d.url, 'POST', `/v1/jobs/${r.json.id}/generate`,
                        {prompt: 'ROMEO:', max_tokens: 200, temperature: 0.8, top_k: 40, seed: 1});
    assert.equal(g.status, 200, g.text);
    assert.equal(g.json.tokens, 200);
    assert.equal(g.json.step, 20);
    shown('# {"step":2000,"text":"…","tokens":200}');
    const bad = await api(d.url, 'POST', `/v1/jobs/${r.json.id}/generate`, {prompt: 'ROMEO{'});
    assert.equal(bad.status, 400);
    shown(`# ${bad.text}`);
  });
});

test('fp16: a running gpt job shows its loss scale and skipped steps; both numerics at once are a 400', async () => {
  await withDaemon({}, async (d) => {
    const both = gptJob();
    both.ds_config.fp16 = {enabled: true};
    both.ds_config.bf16 = {enabled: true};
    const r0 = await api(d.url, 'POST', '/v1/jobs', both);
    assert.equal(r0.status, 400);
    assert.equal(r0.json.error.field, 'ds_config.bf16');
    const spec = gptJob({steps: 100000});
    spec.ds_config.fp16 = {enabled: true, initial_scale_power: 30, loss_scale_window: 50};
    const r = await api(d.url, 'POST', '/v1/jobs', spec);
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.json.warnings, []);
    const j = await waitJob(d.url, r.json.id, (x) => x.state === 'running' && x.step > 40 && x.loss_scale != null);
    // 2^30 overflows half precision at first: steps were skipped and the scale came down
    assert.ok(j.skipped_steps >= 2, `skipped ${j.skipped_steps}`);
    assert.ok(j.loss_scale < 2 ** 30, `scale ${j.loss_scale}`);
    await api(d.url, 'POST', `/v1/jobs/${r.json.id}/cancel`, {});
    // a job without fp16 has neither field
    const plain = await api(d.url, 'POST', '/v1/jobs', gptJob({steps: 100000}));
    const p = await waitJob(d.url, plain.json.id, (x) => x.state === 'running' && x.step > 5);
    assert.equal(p.loss_scale, undefined);
    await api(d.url, 'POST', `/v1/jobs/${plain.json.id}/cancel`, {});
  });
});
