// End-to-end tests of the data checks made when a job is submitted (JOBSPEC.md, "Language
// models"): a text's validation split is refused at POST /v1/jobs and by `anneald check` when
// a part holds no window, as the job would fail at its start; an epochs run over text counts
// its training windows for total_steps and `anneald preview`; "auto" total_num_steps over an
// uploaded data set does not report a stand-in length as the job's.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {BIN, api, tmpDir, waitJob, withDaemon} from './lib.mjs';

// 84 characters: at block_size 8, ⌊83/8⌋ = 10 windows.
const HAMLET = 'To be, or not to be, that is the question: whether tis nobler in the mind to suffer.';

const COSINE = {type: 'WarmupCosineLR', params: {total_num_steps: 'auto', warmup_num_steps: 2}};

function gptJob(over = {}, data = {type: 'text', text: HAMLET}) {
  return {
    model: {type: 'gpt', block_size: 8, n_layer: 1, n_head: 1, n_embd: 8},
    data, steps: 10,
    checkpoint: {every_steps: 0, every_seconds: 0, keep_last: 1},
    ds_config: {train_batch_size: 2, optimizer: {type: 'AdamW', params: {lr: 0.001}}},
    ...over,
  };
}

const dir = tmpDir('anneald-specdata-');
process.on('exit', () => fs.rmSync(dir, {recursive: true, force: true}));

function run(args, spec) {
  const p = path.join(dir, 'spec.json');
  fs.writeFileSync(p, JSON.stringify(spec));
  const r = spawnSync(BIN, [...args, p], {encoding: 'utf8'});
  if (r.error) throw r.error;
  return {code: r.status, out: r.stdout, err: r.stderr};
}

test('a validation split that leaves a part without a window is refused, not failed later', async () => {
  // ⌊84·0.95⌋ = 79 tokens train, 5 validate: fewer than one window of 9
  const bad = gptJob({validation: {fraction: 0.05}});
  const c = run(['check'], bad);
  assert.equal(c.code, 1, c.out);
  assert.match(c.err, /validation\.fraction: validation\.fraction 0\.05 leaves 5 tokens for validation, fewer than one window of 9/);
  assert.equal(run(['check'], gptJob({validation: {fraction: 0.2}})).code, 0);
  await withDaemon({}, async (d) => {
    const r = await api(d.url, 'POST', '/v1/jobs', bad);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.field, 'validation.fraction');
    // an uploaded corpus: its token count is the upload's (code points, or bytes)
    const up = await api(d.url, 'POST', '/v1/datasets?name=hamlet', HAMLET, {'Content-Type': 'text/plain'});
    assert.equal(up.status, 201, up.text);
    const ds = await api(d.url, 'POST', '/v1/jobs', gptJob({validation: {fraction: 0.05}}, {type: 'text', dataset: 'hamlet'}));
    assert.equal(ds.status, 400, ds.text);
    assert.equal(ds.json.error.field, 'validation.fraction');
    const long = await api(d.url, 'POST', '/v1/jobs', gptJob({model: {type: 'gpt', block_size: 90, n_layer: 1, n_head: 1, n_embd: 8}},
                                                              {type: 'text', dataset: 'hamlet'}));
    assert.equal(long.status, 400, long.text);
    assert.equal(long.json.error.field, 'data.dataset');
    assert.match(long.json.error.message, /the text has 84 tokens; at least 91 are needed/);
  });
});

test('an epochs run over text counts its training windows: total_steps, auto and preview', async () => {
  // 10 windows, 2 epochs, batches of 2: 10 steps; with validation 0.2, ⌊(67−1)/8⌋ = 8 windows
  const job = gptJob({steps: undefined, epochs: 2, ds_config: {...gptJob().ds_config, scheduler: COSINE}});
  const c = run(['check'], job);
  assert.equal(c.code, 0, c.err);
  assert.match(c.err, /"auto" resolved to 10 \(the job's steps\)/);
  const p = run(['preview'], job);
  assert.equal(p.code, 0, p.err);
  assert.equal(JSON.parse(p.out).step.length, 10);
  const pv = run(['preview'], {...job, validation: {fraction: 0.2}});
  assert.equal(pv.code, 0, pv.err);
  assert.equal(JSON.parse(pv.out).step.length, 8);
  await withDaemon({}, async (d) => {
    const r = await api(d.url, 'POST', '/v1/jobs', job);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.total_steps, 10);
    const done = await waitJob(d.url, r.json.id, (j) => j.state === 'completed' || j.state === 'failed');
    assert.equal(done.state, 'completed', JSON.stringify(done));
    assert.equal(done.step, 10);
    assert.equal(done.total_steps, 10);
    // an uploaded corpus: its windows from the upload's count of code points (92), or of
    // bytes (100) for the byte tokenizer
    await api(d.url, 'POST', '/v1/datasets?name=hamlet', HAMLET + '\u00e9'.repeat(8), {'Content-Type': 'text/plain'});
    const data = {type: 'text', dataset: 'hamlet'};
    const expect = [[{}, 11], [{validation: {fraction: 0.2}}, 9], [{data: {...data, tokenizer: 'byte'}}, 12]];
    for (const [over, steps] of expect) { // ⌊91/8⌋; ⌊(⌊92·0.8⌋ − 1)/8⌋; ⌊99/8⌋ windows
      const v = await api(d.url, 'POST', '/v1/jobs', {...job, data, ...over});
      assert.equal(v.status, 201, v.text);
      assert.equal(v.json.total_steps, steps, JSON.stringify(over));
    }
  });
});

test('"auto" total_num_steps over an uploaded CSV is reported as the real length, never a stand-in', async () => {
  await withDaemon({}, async (d) => {
    const rows = Array.from({length: 40}, (_, i) => `${i},${i % 3},${2 * i}`).join('\n');
    const up = await api(d.url, 'POST', '/v1/datasets?name=table', `a,b,y\n${rows}\n`, {'Content-Type': 'text/csv'});
    assert.equal(up.status, 201, up.text);
    const r = await api(d.url, 'POST', '/v1/jobs', {
      model: {type: 'linear', inputs: 2, outputs: 1},
      data: {type: 'dataset', name: 'table'}, epochs: 3,
      ds_config: {train_batch_size: 4, optimizer: {type: 'Adam', params: {lr: 0.01}}, scheduler: COSINE},
    });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.total_steps, 30);
    // the parse's stand-in warning is replaced by the one of the length the upload gives
    const ws = r.json.warnings.filter((x) => x.includes('total_num_steps'));
    assert.deepEqual(ws, ['ds_config.scheduler.params.total_num_steps: "auto" resolved to 30 (the job\'s steps)']);
    const again = await api(d.url, 'GET', `/v1/jobs/${r.json.id}`);
    assert.deepEqual(again.json.warnings, r.json.warnings);
  });
});

// The length of an epochs run over an uploaded data set is known only at submission: the
// checks the parse makes when it knows the rows are made there, naming the same fields.
test('an epochs run over an uploaded data set is held to the steps limit and to its OneCycleLR', async () => {
  await withDaemon({}, async (d) => {
    const rows = Array.from({length: 2000}, (_, i) => `${i % 7},${i % 3},${i % 5}`).join('\n');
    const up = await api(d.url, 'POST', '/v1/datasets?name=wide', `a,b,y\n${rows}\n`, {'Content-Type': 'text/csv'});
    assert.equal(up.status, 201, up.text);
    const job = (over) => ({model: {type: 'linear', inputs: 2, outputs: 1}, data: {type: 'dataset', name: 'wide'},
      ...over, ds_config: {train_batch_size: 1, optimizer: {type: 'SGD', params: {lr: 0.01}}, ...(over.ds_config || {})}});
    // 1,000,000 epochs of 2000 rows one at a time: 2e9 steps
    const big = await api(d.url, 'POST', '/v1/jobs', job({epochs: 1000000}));
    assert.equal(big.status, 400, big.text);
    assert.equal(big.json.error.field, 'epochs');
    assert.match(big.json.error.message, /2000000000 steps, more than the limit of 1000000000/);
    // 1 epoch of 2000 steps; a OneCycleLR of 100 steps would be stepped past its end
    const cyc = {type: 'OneCycleLR', params: {max_lr: 0.1, total_steps: 100}};
    const short = await api(d.url, 'POST', '/v1/jobs', job({epochs: 1, ds_config: {scheduler: cyc}}));
    assert.equal(short.status, 400, short.text);
    assert.match(short.json.error.field, /^ds_config\.scheduler/);
    assert.match(short.json.error.message, /total_steps/);
    const fits = await api(d.url, 'POST', '/v1/jobs', job({epochs: 1, ds_config: {scheduler: {...cyc, params: {...cyc.params, total_steps: 2000}}}}));
    assert.equal(fits.status, 201, fits.text);
    assert.equal(fits.json.total_steps, 2000);
  });
});
