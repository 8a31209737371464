// End-to-end tests of `anneald lr-find`: the learning-rate finder run offline by the real
// binary on a builtin data set, its report, its CSV and its errors.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {BIN, api, removeDir, tmpDir, tutorialJob, waitJob, withDaemon} from './lib.mjs';

const dir = tmpDir('anneald-lrfind-');
process.on('exit', () => removeDir(dir));

const IRIS = {
  name: 'iris-finder', seed: 3, steps: 500,
  model: {type: 'mlp', inputs: 4, hidden: [16], outputs: 3},
  loss: 'cross_entropy', data: {type: 'builtin', name: 'iris'},
  ds_config: {train_batch_size: 16, optimizer: {type: 'AdamW', params: {lr: 0.001}}},
};

function write(name, obj) {
  const p = path.join(dir, name);
  fs.writeFileSync(p, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return p;
}

function run(args, input) {
  const r = spawnSync(BIN, ['lr-find', ...args], {input, encoding: 'utf8', maxBuffer: 64 << 20});
  if (r.error) throw r.error;
  return {code: r.status, out: r.stdout, err: r.stderr};
}

test('a sweep on iris stops at divergence and suggests rates inside the range it swept', () => {
  const csv = path.join(dir, 'sweep.csv');
  const r = run([write('iris.json', IRIS), '--steps', '200', '--csv', csv]);
  assert.equal(r.code, 0, r.err);
  const rep = JSON.parse(r.out);
  const n = rep.lr.length;
  assert.ok(n > 20 && n <= 200, `${n} steps`);
  assert.equal(rep.loss.length, n);
  assert.equal(rep.smoothed.length, n);
  assert.equal(rep.lr[0], 1e-7);                  // the default min_lr at step 1
  for (let i = 1; i < n; i++) assert.ok(rep.lr[i] > rep.lr[i - 1]);
  // up to 10 with AdamW, iris diverges well before the end: the finder stops it
  assert.equal(rep.stopped_early, true);
  assert.ok(n < 200);
  const s = rep.suggestions;
  for (const k of ['steepest', 'valley', 'minimum_div_10']) {
    assert.equal(typeof s[k], 'number', k);
    assert.ok(s[k] >= rep.lr[0] && s[k] <= rep.lr[n - 1], `${k} ${s[k]}`);
  }
  // the smoothed loss is a debiased EMA of the loss (beta 0.98): its first value is the loss
  assert.equal(rep.smoothed[0], rep.loss[0]);
  assert.match(r.err, /suggestions: steepest/);
  const rows = fs.readFileSync(csv, 'utf8').trim().split('\n');
  assert.equal(rows[0], 'step,lr,loss,smoothed');
  assert.equal(rows.length, n + 1);
  const last = rows[n].split(',').map(Number);
  assert.equal(last[0], n);
  assert.equal(last[1], rep.lr[n - 1]);
  // the numbers as the JSON writes them (the fewest digits that read back), not 17 digits
  assert.deepEqual(rows[1].split(',').map(Number), [1, rep.lr[0], rep.loss[0], rep.smoothed[0]]);
  assert.equal(rows[1].split(',')[1], '1e-07');
  const digits = (x) => x.split('e')[0].replace(/[-.]/g, '').replace(/^0+/, '').length;
  assert.ok(rows.slice(1).every((l) => l.split(',').every((x) => digits(x) <= 17)), 'at most 17 significant digits');
  // the steps the arrays cover, as the service's report has them
  assert.equal(rep.from, 1);
  assert.equal(rep.to, n);
  // a loss with a floor swept into divergence: its suggestions come without a caveat
  assert.deepEqual(rep.caveats, []);
  assert.doesNotMatch(r.err, /caveat/);
});

test('suggestions for a loss without a floor come with the caveat, in the report and on stderr', () => {
  const r = run([write('tutorial.json', tutorialJob({checkpoint: undefined})), '--steps', '200']);
  assert.equal(r.code, 0, r.err);
  const rep = JSON.parse(r.out);
  assert.equal(typeof rep.suggestions.valley, 'number');
  assert.deepEqual(rep.caveats.map((c) => c.code), ['unbounded']);
  assert.deepEqual(rep.caveats[0].affects, ['steepest', 'valley', 'minimum_div_10']);
  assert.match(rep.caveats[0].message, /the loss "mean" has no floor/);
  assert.match(r.err, /lr-find: caveat: the loss "mean" has no floor/);
});

test('a finder request file and the linear mode sweep exactly from min_lr to max_lr', () => {
  const r = run([write('req.json', {job: IRIS, min_lr: 1e-5, max_lr: 1e-3, steps: 25, mode: 'linear'})]);
  assert.equal(r.code, 0, r.err);
  const rep = JSON.parse(r.out);
  assert.equal(rep.lr.length, 25);                // 1e-3 does not diverge: every step runs
  assert.equal(rep.stopped_early, false);
  assert.equal(rep.lr[0], 1e-5);
  assert.ok(Math.abs(rep.lr[24] - 1e-3) < 1e-15);
  const d = rep.lr[1] - rep.lr[0];
  assert.ok(Math.abs((rep.lr[13] - rep.lr[12]) - d) < 1e-15, 'linear steps');
  // flags override the file's options; the job spec also comes on stdin
  const f = run(['-', '--steps', '6', '--max-lr', '1e-4'], JSON.stringify(IRIS));
  assert.equal(f.code, 0, f.err);
  assert.equal(JSON.parse(f.out).lr.length, 6);
});

// The --job spec, byte for byte: every number exact (gamma's and the step rate's last digits,
// 0.30000000000000004, which cJSON's own printer would round), laid out as check's.
test('lr-find --job prints the same bytes for the same job, every number exact', () => {
  const job = {...IRIS, ds_config: {...IRIS.ds_config,
    optimizer: {type: 'AdamW', params: {lr: 0.001, weight_decay: 0.30000000000000004}}}};
  const head = `{
  "name": "iris-finder",
  "seed": 3,
  "steps": 37,
  "model": {
    "type": "mlp",
    "inputs": 4,
    "hidden": [16],
    "outputs": 3
  },
  "loss": "cross_entropy",
  "data": {
    "type": "builtin",
    "name": "iris"
  },
  "ds_config": {
    "train_batch_size": 16,
    "optimizer": {
      "type": "AdamW",
      "params": {
        "lr": 3e-07,
        "weight_decay": 0.30000000000000004
      }
    },
`;
  const tail = `  "lr_finder": {
    "stop_factor": 4
  }
}
`;
  const scheds = {
    exponential: `    "scheduler": {
      "type": "ExponentialLR",
      "params": {
        "gamma": 1.5027552159129867
      }
    }
  },
`,
    linear: `    "scheduler": {
      "type": "LRRangeTest",
      "params": {
        "lr_range_test_min_lr": 3e-07,
        "lr_range_test_step_size": 36,
        "lr_range_test_step_rate": 2333332.3333333335,
        "lr_range_test_staircase": false
      }
    }
  },
`,
  };
  for (const [mode, sched] of Object.entries(scheds)) {
    const r = run([write(`exact-${mode}.json`, job), '--steps', '37', '--min-lr', '3e-7',
                   '--max-lr', '0.7', '--mode', mode, '--job']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, head + sched + tail, mode);
  }
});

test('bad requests and command lines say what is wrong', () => {
  const cases = [
    [[write('bad-range.json', {job: IRIS, min_lr: 1, max_lr: 0.5})], 1, /max_lr/],
    [[write('bad-job.json', {job: {...IRIS, model: {type: 'mlp', inputs: 4, hidden: [0], outputs: 3}}})], 1, /job\.model\.hidden\[0\]/],
    [[write('bad-key.json', {job: IRIS, max_lrr: 2})], 1, /did you mean 'max_lr'/],
    [[write('bad.json', '{"job": ')], 1, /malformed JSON/],
    [[path.join(dir, 'missing.json')], 1, /cannot read/],
    [[write('ok.json', IRIS), '--steps', 'many'], 2, /--steps needs a number/],
    [[write('ok2.json', IRIS), '--sweep', '3'], 2, /unknown flag '--sweep'/],
    [[write('ok3.json', IRIS), '--sweep'], 2, /unknown flag '--sweep'/], // last, without a value
    [[write('ok4.json', IRIS), '--steps'], 2, /--steps needs a value/],
    [[], 2, /needs a FILE/],
  ];
  for (const [args, code, re] of cases) {
    const r = run(args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
    assert.equal(r.out, '');
  }
  const h = run(['--help']);
  assert.equal(h.code, 0);
  assert.match(h.out, /--stop-factor/);
  assert.match(h.out, /--steps N .*5 to 100000/);
});

test('a sweep submitted to the service ends at its divergence and reads as lr-find\'s', async () => {
  const spec = run([write('iris-job.json', IRIS), '--steps', '200', '--job']);
  assert.equal(spec.code, 0, spec.err);
  const offline = JSON.parse(run([write('iris-200.json', IRIS), '--steps', '200']).out);
  await withDaemon({}, async (d) => {
    const c = await api(d.url, 'POST', '/v1/jobs', JSON.parse(spec.out));
    assert.equal(c.status, 201, c.text);
    const done = await waitJob(d.url, c.json.id, (j) => j.state === 'completed');
    const r = await api(d.url, 'GET', `/v1/jobs/${c.json.id}/lr_finder`);
    assert.equal(r.status, 200, r.text);
    const rep = r.json;
    // the service's sweep ends itself at the divergence, as lr-find's does: the same steps
    const n = offline.lr.length;
    assert.ok(n < 200);
    assert.equal(done.step, n);
    assert.equal(rep.lr.length, n);
    assert.equal(rep.from, 1);
    assert.equal(rep.to, n);
    assert.equal(rep.stopped_early, true);
    assert.equal(rep.diverged_at, n - 1);
    assert.deepEqual(rep.suggestions, offline.suggestions);
    assert.deepEqual(rep.lr, offline.lr);
    assert.deepEqual(rep.smoothed, offline.smoothed);
    // a range: only those steps are read
    const part = await api(d.url, 'GET', `/v1/jobs/${c.json.id}/lr_finder?from=11&to=60`);
    assert.equal(part.status, 200);
    assert.equal(part.json.lr.length, 50);
    assert.equal(part.json.lr[0], rep.lr[10]);
    assert.equal(part.json.from, 11);
    assert.equal(part.json.to, 60);
    // a range of three steps: too short for suggestions, each of them null
    const short = await api(d.url, 'GET', `/v1/jobs/${c.json.id}/lr_finder?from=1&to=3`);
    assert.deepEqual(short.json.suggestions, {steepest: null, valley: null, minimum_div_10: null});
    // past the last step: empty arrays, and from and to say so
    const past = await api(d.url, 'GET', `/v1/jobs/${c.json.id}/lr_finder?from=${n + 100}`);
    assert.equal(past.status, 200);
    assert.deepEqual([past.json.lr, past.json.from, past.json.to], [[], null, null]);
    // bad requests
    const bad = await api(d.url, 'GET', `/v1/jobs/${c.json.id}/lr_finder?from=20&to=10`);
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.field, 'to');
    const nan = await api(d.url, 'GET', `/v1/jobs/${c.json.id}/lr_finder?from=x`);
    assert.equal(nan.status, 400);
    assert.equal(nan.json.error.field, 'from');
    const none = await api(d.url, 'GET', '/v1/jobs/j_999999/lr_finder');
    assert.equal(none.status, 404);
  });
});

test('POST /v1/lr_finder makes the sweep a job of kind lr_finder, and refuses bad requests', async () => {
  const body = {job: IRIS, steps: 200};
  const offline = JSON.parse(run([write('iris-req.json', body)]).out);
  await withDaemon({}, async (d) => {
    const c = await api(d.url, 'POST', '/v1/lr_finder', body);
    assert.equal(c.status, 201, c.text);
    assert.equal(c.json.kind, 'lr_finder');
    assert.equal(c.json.total_steps, 200);
    assert.equal(c.json.spec.ds_config.scheduler.type, 'ExponentialLR');
    assert.equal(c.json.spec.ds_config.optimizer.params.lr, 1e-7);
    assert.deepEqual(c.json.spec.lr_finder, {stop_factor: 4});
    const done = await waitJob(d.url, c.json.id, (j) => j.state === 'completed');
    assert.equal(done.step, offline.lr.length);   // ended at the divergence, as offline
    const rep = (await api(d.url, 'GET', `/v1/jobs/${c.json.id}/lr_finder`)).json;
    assert.deepEqual(rep.suggestions, offline.suggestions);
    assert.equal(rep.stopped_early, true);
    // an ordinary job is of kind train
    const plain = await api(d.url, 'POST', '/v1/jobs', IRIS);
    assert.equal(plain.json.kind, 'train');
    await api(d.url, 'POST', `/v1/jobs/${plain.json.id}/cancel`, {});

    const before = (await api(d.url, 'GET', '/v1/jobs')).json.jobs.length;
    const bad = [
      [{job: IRIS, min_lr: 1, max_lr: 0.1}, 'max_lr'],
      [{job: IRIS, steps: 2}, 'steps'],
      [{job: IRIS, mode: 'cosine'}, 'mode'],
      [{min_lr: 1e-6}, 'job'],
      [{job: {...IRIS, loss: 'hinge'}}, 'job.loss'],
      [{job: IRIS, stop_factor: 0.5}, 'stop_factor'],
    ];
    for (const [b, field] of bad) {
      const r = await api(d.url, 'POST', '/v1/lr_finder', b);
      assert.equal(r.status, 400, `${JSON.stringify(b).slice(0, 80)}: ${r.text}`);
      assert.equal(r.json.error.field, field, r.text);
    }
    const mal = await api(d.url, 'POST', '/v1/lr_finder', '{"job": ', {'Content-Type': 'application/json'});
    assert.equal(mal.status, 400);
    const empty = await api(d.url, 'POST', '/v1/lr_finder', '', {'Content-Type': 'application/json'});
    assert.equal(empty.status, 400);
    const plainText = await api(d.url, 'POST', '/v1/lr_finder', JSON.stringify(body), {'Content-Type': 'text/plain'});
    assert.equal(plainText.status, 415);
    // nothing was created by any of them
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.jobs.length, before);
  });
});
