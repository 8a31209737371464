// End-to-end tests of the offline command line (API.md, Command line): `anneald check`,
// `anneald preview` and `anneald train`, run as the real binary with temp files and stdin.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {spawn, spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {BIN, api, startDaemon, tmpDir, tutorialJob} from './lib.mjs';

const SANITIZED = !!process.env.ANNEALD_SANITIZED;

// The example of JOBSPEC.md (DeepSpeed's scheduler tutorial), with overrides.
const tutorial = tutorialJob;

const ONECYCLE = {
  train_batch_size: 8,
  optimizer: {type: 'Adam', params: {lr: 0.1}},
  scheduler: {type: 'OneCycle', params: {cycle_min_lr: 0.01, cycle_max_lr: 0.1, cycle_first_step_size: 20,
                                         cycle_min_mom: 0.8, cycle_max_mom: 0.9}},
};

const COSINE = {
  train_batch_size: 8,
  optimizer: {type: 'Adam', params: {lr: 0.1}},
  scheduler: {type: 'WarmupCosineLR', params: {total_num_steps: 40, warmup_num_steps: 10}},
};

const dir = tmpDir('anneald-cli-');
process.on('exit', () => fs.rmSync(dir, {recursive: true, force: true}));

function write(name, content) {
  const p = path.join(dir, name);
  fs.writeFileSync(p, typeof content === 'string' || content instanceof Uint8Array ? content : JSON.stringify(content));
  return p;
}

// Runs the binary to completion: {code, out, err}.
function run(args, input) {
  const r = spawnSync(BIN, args, {input, encoding: 'utf8', maxBuffer: 256 << 20});
  if (r.error) throw r.error;
  return {code: r.status, out: r.stdout, err: r.stderr};
}

function ok(args, input) {
  const r = run(args, input);
  assert.equal(r.code, 0, `anneald ${args.join(' ')} exited ${r.code}: ${r.err}`);
  return r;
}

function parseCsv(text) {
  const lines = text.trimEnd().split('\n');
  return {header: lines[0].split(','), rows: lines.slice(1).map((l) => l.split(','))};
}

// ---- check ----

test('check accepts the tutorial job and prints it with defaults and warnings', () => {
  const p = write('tutorial-fp16.json', tutorial({ds_config: {...tutorial().ds_config, fp16: {enabled: true}}}));
  const r = ok(['check', p]);
  const o = JSON.parse(r.out);
  assert.equal(o.spec.name, 'warmup-demo');
  assert.equal(o.spec.seed, 42);
  assert.equal(o.spec.steps, 1000);
  assert.equal(o.spec.threads, 1);
  assert.equal(o.spec.data.shuffle, true);
  assert.equal(o.spec.checkpoint.every_steps, 100);
  assert.equal(o.spec.checkpoint.keep_last, 3);
  assert.equal(o.spec.checkpoint.every_seconds, 60);
  assert.equal(o.spec.ds_config.train_micro_batch_size_per_gpu, 8);
  assert.equal(o.spec.ds_config.gradient_accumulation_steps, 1);
  assert.equal(o.spec.ds_config.gradient_clipping, 1);
  assert.ok(o.warnings.some((w) => w.includes('ds_config.fp16')), JSON.stringify(o.warnings));
  assert.match(r.err, /warning: .*ds_config\.fp16/);

  const plain = ok(['check', write('tutorial.json', tutorial())]);
  assert.deepEqual(JSON.parse(plain.out).warnings, []);
  // stdin gives the same answer as the file
  assert.equal(ok(['check', '-'], fs.readFileSync(p, 'utf8')).out, r.out);
});

// check prints the spec the daemon would store, so its numbers read back to the same bits:
// cJSON's own printer would write 0.30000000000000004 as 0.3.
test('check prints every number of the spec exactly, as the daemon stores it', async () => {
  const spec = tutorial({ds_config: {...tutorial().ds_config, optimizer: {type: 'Adam', params: {lr: 0.30000000000000004, eps: 1.0000000000000002e-8}}},
                         data: {...tutorial().data, noise: 0.1 + 0.2}});
  const text = JSON.stringify(spec);
  const out = ok(['check', '-'], text).out;
  assert.match(out, /"lr": 0\.30000000000000004,/);
  const o = JSON.parse(out);
  assert.equal(o.spec.ds_config.optimizer.params.lr, 0.30000000000000004);
  assert.equal(o.spec.ds_config.optimizer.params.eps, 1.0000000000000002e-8);
  assert.equal(o.spec.data.noise, 0.1 + 0.2);
  const d = await startDaemon();
  try {
    const r = await api(d.url, 'POST', '/v1/jobs', text, {'Content-Type': 'application/json'});
    assert.equal(r.status, 201, r.text);
    await api(d.url, 'POST', `/v1/jobs/${r.json.id}/cancel`);
    assert.deepEqual(o.spec, r.json.spec);
  } finally {
    await d.stop();
  }
});

const BAD_SPECS = [
  ['negative warmup', tutorial({ds_config: {...tutorial().ds_config, scheduler: {type: 'WarmupLR', params: {warmup_num_steps: -3}}}}),
    'ds_config.scheduler.params.warmup_num_steps'],
  ['no optimizer', tutorial({ds_config: {train_batch_size: 8}}), 'ds_config.optimizer'],
  ['unknown top-level key', {...tutorial(), modle: 1}, 'modle'],
  ['bad hidden width', tutorial({model: {type: 'mlp', inputs: 10, hidden: [8, -1], outputs: 1}}), 'model.hidden[1]'],
  ['steps of the wrong type', tutorial({steps: 'many'}), 'steps'],
  ['lr "auto"', tutorial({ds_config: {...tutorial().ds_config, optimizer: {type: 'Adam', params: {lr: 'auto'}}}}),
    'ds_config.optimizer.params.lr'],
  ['huge steps', tutorial({steps: 1e15}), 'steps'],
];

for (const [what, spec, field] of BAD_SPECS) {
  test(`check rejects a spec with ${what}, naming ${field} (file and stdin)`, () => {
    const p = write(`bad-${field.replace(/\W/g, '_')}.json`, spec);
    for (const r of [run(['check', p]), run(['check', '-'], JSON.stringify(spec))]) {
      assert.equal(r.code, 1, r.err);
      assert.equal(r.out, '');
      assert.ok(r.err.startsWith(`error: ${field}: `), r.err);
    }
    // train refuses the same spec with the same error
    const t = run(['train', p]);
    assert.equal(t.code, 1);
    assert.equal(t.err, run(['check', p]).err);
  });
}

test('check prints every independent error with its JSON path, one line each, and exits 1', () => {
  // Three errors in three independent sections: the name, the model and the optimizer.
  const spec = tutorial({name: 5, model: {type: 'linear', inputs: 0, outputs: 1}});
  spec.ds_config = {...spec.ds_config, optimizer: {type: 'Adam', params: {lr: 'x'}}};
  const p = write('three-errors.json', spec);
  for (const r of [run(['check', p]), run(['check', '-'], JSON.stringify(spec))]) {
    assert.equal(r.code, 1, r.err);
    assert.equal(r.out, '');
    const lines = r.err.trimEnd().split('\n');
    assert.deepEqual(lines.map((l) => l.split(': ')[1]), ['name', 'model.inputs', 'ds_config.optimizer.params.lr'], r.err);
    for (const l of lines) assert.match(l, /^error: [\w.\[\]]+: \S.*/);
    assert.match(lines[0], /string/);
    assert.match(lines[1], /got 0/);
  }
  // train refuses the spec with the same lines
  const t = run(['train', p]);
  assert.equal(t.code, 1);
  assert.equal(t.err, run(['check', p]).err);
  // Fixing one leaves the other two.
  const two = run(['check', '-'], JSON.stringify({...spec, name: 'ok'}));
  assert.equal(two.code, 1);
  assert.equal(two.err.trimEnd().split('\n').length, 2, two.err);
  assert.ok(two.err.startsWith('error: model.inputs: '), two.err);
});

test('check: a missing file, malformed JSON with line and column, a non-object, bad arguments', () => {
  const missing = run(['check', path.join(dir, 'no-such.json')]);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /cannot read .*no-such\.json: No such file/);

  const bad = write('malformed.json', '{\n  "model": {"type": "linear",},\n}');
  const m = run(['check', bad]);
  assert.equal(m.code, 1);
  assert.match(m.err, /malformed JSON at line 2, column \d+/);
  assert.match(run(['check', '-'], '{"steps": 1').err, /malformed JSON at line 1, column \d+/);
  assert.match(run(['check', '-'], '').err, /^error: standard input is empty: a JSON object was expected/);
  assert.match(run(['check', write('blank.json', ' \n')]).err, /^error: \S+blank\.json is empty/);
  assert.match(run(['check', write('cut.json', '{"steps": 1')]).err, /^error: \S+cut\.json: malformed JSON at line 1/);

  const arr = run(['check', '-'], '[1, 2]');
  assert.equal(arr.code, 1);
  assert.match(arr.err, /JSON object/);

  for (const args of [['check'], ['check', 'a.json', 'b.json'], ['check', '--frobnicate']]) {
    const r = run(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.err, /^anneald check: /);
    assert.match(r.err, /see anneald check --help/);
  }
});

// lr-find --job writes a spec to keep and submit: laid out as check lays out the spec in its
// answer, not with cJSON's tabs.
test('lr-find --job prints its spec as check prints one: two-space indents, no tabs', () => {
  // every default filled in first, so that check changes nothing of the job but its layout
  // and its order
  const full = JSON.parse(ok(['check', write('lrf-tut.json', tutorial())]).out).spec;
  const job = ok(['lr-find', write('lrf-full.json', full), '--steps', '50', '--job']).out;
  assert.ok(!job.includes('\t'), 'no tab in the output');
  assert.match(job, /^\{\n  "name": "[^"]+",\n  "seed": 42,\n  "model": \{\n    "type": "linear",/);
  const checked = ok(['check', write('lrf-job.json', job)]).out.split('\n');
  const from = checked.indexOf('  "spec": {'), to = checked.indexOf('  },', from);
  assert.ok(from > 0 && to > from, checked.slice(0, 3).join('\n'));
  // the same lines, indented alike (check puts lr_finder among the keys in its own order)
  const spec = ['{', ...checked.slice(from + 1, to).map((l) => l.slice(2)), '}', ''].join('\n');
  assert.deepEqual(job.split('\n').sort(), spec.split('\n').sort());
});

// ---- preview ----

test('preview of the tutorial job: JSON shape and the tutorial learning rates', () => {
  const p = write('tutorial.json', tutorial());
  const r = ok(['preview', p]);
  assert.ok(r.out.endsWith('}\n'));
  const o = JSON.parse(r.out);
  assert.deepEqual(Object.keys(o), ['warnings', 'step', 'lr']);
  assert.deepEqual(o.warnings, []);
  assert.equal(o.step.length, 1000);
  assert.deepEqual(o.step.slice(0, 3), [1, 2, 3]);
  assert.equal(o.step[999], 1000);
  assert.equal(o.lr.length, 1);
  assert.equal(o.lr[0].length, 1000);
  assert.equal(o.lr[0][0], 0.001);
  assert.equal(o.lr[0][2], 0.0023546349804879152);
  assert.ok(Math.abs(o.lr[0][999] - 0.01) < 1e-15);
});

test('preview: OneCycle has momentum, one array per group', () => {
  const o = JSON.parse(ok(['preview', write('onecycle.json', ONECYCLE), '--steps', '60']).out);
  assert.deepEqual(Object.keys(o), ['warnings', 'step', 'lr', 'momentum']);
  assert.equal(o.momentum.length, 1);
  assert.equal(o.momentum[0].length, 60);
  assert.ok(o.momentum[0].every((m) => m >= 0.8 - 1e-12 && m <= 0.9 + 1e-12));
  assert.ok(Math.max(...o.lr[0]) > 0.09 && Math.min(...o.lr[0]) < 0.02);
  // lr up while momentum goes down
  assert.ok(o.lr[0][10] > o.lr[0][5] && o.momentum[0][10] < o.momentum[0][5]);
});

test('preview --format csv has the JSON numbers, text for text', () => {
  for (const [name, body] of [['tutorial.json', tutorial()], ['onecycle.json', ONECYCLE]]) {
    const p = write(name, body);
    const j = JSON.parse(ok(['preview', p, '--steps', '120']).out);
    const text = ok(['preview', p, '--steps', '120', '--format', 'csv']).out;
    const {header, rows} = parseCsv(text);
    const ng = j.lr.length, nm = j.momentum ? j.momentum.length : 0;
    assert.deepEqual(header, ['step', ...j.lr.map((_, g) => `lr${g}`), ...(j.momentum || []).map((_, g) => `momentum${g}`)]);
    assert.equal(rows.length, 120);
    rows.forEach((row, k) => {
      assert.equal(Number(row[0]), k + 1);
      for (let g = 0; g < ng; g++) assert.equal(Number(row[1 + g]), j.lr[g][k]);
      for (let g = 0; g < nm; g++) assert.equal(Number(row[1 + ng + g]), j.momentum[g][k]);
    });
    // the same digits as the JSON, not just the same values
    const jsonText = ok(['preview', p, '--steps', '120']).out;
    const lr0 = jsonText.slice(jsonText.indexOf('"lr":[[') + 7).split(']')[0].split(',');
    assert.deepEqual(rows.map((r) => r[1]), lr0);
  }
});

test('preview --steps: a given length, and bad values exit 2', () => {
  const p = write('tutorial.json', tutorial());
  assert.equal(JSON.parse(ok(['preview', p, '--steps', '7']).out).step.length, 7);
  assert.equal(JSON.parse(ok(['preview', p, '--steps', '1']).out).lr[0].length, 1);
  // a job in epochs or without steps previews 1000 steps unless told
  const noSteps = tutorial();
  delete noSteps.steps;
  assert.equal(JSON.parse(ok(['preview', '-'], JSON.stringify(noSteps)).out).step.length, 1000);
  for (const bad of ['0', '-5', '1000000001', 'ten', '1.5', '']) {
    const r = run(['preview', p, '--steps', bad]);
    assert.equal(r.code, 2, `--steps '${bad}'`);
    assert.match(r.err, /--steps expects/);
    assert.equal(r.out, '');
  }
  for (const args of [['preview'], ['preview', p, '--steps'], ['preview', p, '--format', 'xml'],
                      ['preview', p, '--param-group-lr', '-1'], ['preview', p, '--param-group-lr', 'fast'],
                      ['preview', p, '--bogus'], ['preview', p, p]]) {
    const r = run(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.err, /^anneald preview: .*\n\(see anneald preview --help\)/);
  }
  // --every 1 is every step, as without it (up to the 10,000,000 an answer holds); a larger
  // every that still leaves too many points is named by its flag
  const every1 = run(['preview', p, '--steps', '6000000', '--every', '1', '--format', 'csv']);
  assert.equal(every1.code, 0, every1.err);
  assert.equal(every1.out.trimEnd().split('\n').length, 6000001);
  const every2 = run(['preview', p, '--steps', '12000000', '--every', '2']);
  assert.equal(every2.code, 2);
  assert.match(every2.err, /^anneald preview: --every 2 keeps about 6000001 of the 12000000 steps, more than the 5000000 strided points/);
});

test('preview --param-group-lr gives one lr array per group, each scaled from its base lr', () => {
  const p = write('cosine.json', COSINE);
  const o = JSON.parse(ok(['preview', p, '--steps', '40', '--param-group-lr', '0.1', '--param-group-lr', '0.05']).out);
  assert.equal(o.lr.length, 2);
  assert.equal(o.lr[0].length, 40);
  // WarmupCosineLR multiplies each group's base lr by one ratio; halving a double is exact
  o.lr[0].forEach((v, k) => assert.equal(o.lr[1][k], v / 2, `step ${k + 1}`));
  assert.ok(o.lr[0].some((v) => v > 0.09));
  // without the flag there is one group at the optimizer's lr
  const one = JSON.parse(ok(['preview', p, '--steps', '40']).out);
  assert.deepEqual(one.lr, [o.lr[0]]);
  const csv = parseCsv(ok(['preview', p, '--steps', '40', '--param-group-lr', '0.1', '--param-group-lr', '0.05', '--format', 'csv']).out);
  assert.deepEqual(csv.header, ['step', 'lr0', 'lr1']);
  // the flag replaces a job spec's own groups
  const job = tutorial({ds_config: COSINE});
  const fromJob = JSON.parse(ok(['preview', '-', '--steps', '40', '--param-group-lr', '0.1', '--param-group-lr', '0.05'],
                                JSON.stringify(job)).out);
  assert.deepEqual(fromJob, o);
});

test('preview of a bare ds_config equals the preview of a job with that ds_config', () => {
  const bare = ok(['preview', write('bare.json', tutorial().ds_config), '--steps', '1000']).out;
  assert.equal(bare, ok(['preview', write('tutorial.json', tutorial())]).out);
  const viaStdin = ok(['preview', '-', '--steps', '1000'], JSON.stringify(tutorial().ds_config)).out;
  assert.equal(viaStdin, bare);
});

test('preview errors: bad configs exit 1 with their JSON path', () => {
  const cases = [
    [{optimizer: {type: 'Adam', params: {lr: 0.01}}, scheduler: {type: 'WarmupLR', params: {warmup_num_steps: -3}}},
      'scheduler.params.warmup_num_steps'],
    [{scheduler: {type: 'WarmupLR', params: {}}}, 'optimizer'],
    [tutorial({ds_config: {...tutorial().ds_config, scheduler: {type: 'NoSuchLR', params: {}}}}), 'ds_config.scheduler.type'],
    [{ds_config: tutorial().ds_config, steps: 20000000}, 'steps'],
    [{ds_config: tutorial().ds_config, steps: 2000000000, every: 1000}, 'steps'],
    [{ds_config: tutorial().ds_config, steps: 2000, every: 0}, 'every'],
    [{ds_config: tutorial().ds_config, steps: 2000, max_points: 1}, 'max_points'],
    [{ds_config: tutorial().ds_config, steps: 2000, max_points: 10, every: 3}, 'every'],
  ];
  for (const [body, field] of cases) {
    const r = run(['preview', '-'], JSON.stringify(body));
    assert.equal(r.code, 1, JSON.stringify(body));
    assert.equal(r.out, '');
    assert.ok(r.err.startsWith(`error: ${field}: `), r.err);
  }
  const m = run(['preview', '-'], '{"optimizer": {,}}');
  assert.equal(m.code, 1);
  assert.match(m.err, /malformed JSON at line 1, column \d+/);
  assert.match(run(['preview', path.join(dir, 'absent.json')]).err, /cannot read/);
});

test('preview equals POST /v1/schedules/preview byte for byte', async () => {
  const d = await startDaemon();
  try {
    const bodies = [
      tutorial(),
      {ds_config: ONECYCLE, steps: 300},
      {ds_config: COSINE, steps: 50, param_groups: [{lr: 0.1}, {lr: 0.05}, {lr: 0.003}]},
      {ds_config: {...tutorial().ds_config, scheduler: {type: 'WarmupDecayLR', params: {total_num_steps: 500, warmup_num_steps: 50}}}, steps: 2000},
    ];
    for (const body of bodies) {
      const res = await api(d.url, 'POST', '/v1/schedules/preview', body);
      assert.equal(res.status, 200, res.text);
      const cli = ok(['preview', '-'], JSON.stringify(body)).out;
      assert.equal(cli, res.text);
    }
    // the command-line groups are the body's param_groups
    const res = await api(d.url, 'POST', '/v1/schedules/preview', {ds_config: COSINE, steps: 50, param_groups: [{lr: 0.1}, {lr: 0.05}]});
    const cli = ok(['preview', write('cosine.json', COSINE), '--steps', '50', '--param-group-lr', '0.1', '--param-group-lr', '0.05']).out;
    assert.equal(cli, res.text);
  } finally {
    await d.stop();
    fs.rmSync(d.dir, {recursive: true, force: true});
  }
});

// Peak resident memory of a running child, read from /proc while it streams.
async function streamPreview(args, steps) {
  const child = spawn(BIN, args, {stdio: ['ignore', 'pipe', 'pipe']});
  let bytes = 0, tail = '', peakKb = 0, err = '';
  const sample = () => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) peakKb = Math.max(peakKb, Number(m[1]));
    } catch { /* exited between samples */ }
  };
  const timer = setInterval(sample, 20);
  child.stdout.on('data', (c) => { bytes += c.length; tail = (tail + c.toString('latin1')).slice(-200); sample(); });
  child.stderr.on('data', (c) => { err += c; });
  const code = await new Promise((r) => child.on('exit', r));
  clearInterval(timer);
  return {code, bytes, tail, peakKb, err, steps};
}

test('a 10,000,000-step preview streams in constant memory', {timeout: 300000}, async () => {
  const steps = SANITIZED ? 2000000 : 10000000;
  const p = write('tutorial.json', tutorial());
  const csv = await streamPreview(['preview', p, '--steps', String(steps), '--format', 'csv'], steps);
  assert.equal(csv.code, 0, csv.err);
  assert.ok(csv.tail.endsWith(`\n${steps},0.010000000000000002\n`), csv.tail);
  // the text alone is over 20 bytes a step; a tree of it would be far larger still
  assert.ok(csv.bytes > steps * 20);
  assert.ok(csv.peakKb > 0 && csv.peakKb < (SANITIZED ? 400 : 64) * 1024, `peak RSS ${csv.peakKb} kB`);
  const json = await streamPreview(['preview', p, '--steps', String(steps)], steps);
  assert.equal(json.code, 0, json.err);
  assert.ok(json.tail.endsWith(',0.010000000000000002]]}\n'), json.tail);
  assert.ok(json.peakKb > 0 && json.peakKb < (SANITIZED ? 400 : 64) * 1024, `peak RSS ${json.peakKb} kB`);
});

// ---- train ----

// The parameters (float32) inside a --save file: the magic line, the spec line, then the blob
// (40-byte header; sections of a 16-byte header {u32 id, u32, u64 length}; section 3 holds the
// parameters).
function savedParams(file) {
  const buf = fs.readFileSync(file);
  let off = buf.indexOf(10);
  off = buf.indexOf(10, off + 1) + 1;
  const blob = buf.subarray(off);
  assert.equal(blob.subarray(0, 7).toString('latin1'), 'ANNEALD');
  let p = 40;
  while (p + 16 <= blob.length - 8) {
    const id = blob.readUInt32LE(p), len = Number(blob.readBigUInt64LE(p + 8));
    if (id === 3) {
      const out = [];
      for (let i = 0; i < len / 4; i++) out.push(blob.readFloatLE(p + 16 + 4 * i));
      return out;
    }
    p += 16 + len;
  }
  throw new Error('no parameter section');
}

const flat = (a) => (Array.isArray(a) ? a.flatMap(flat) : [a]);

test('train writes one metrics row per step with the tutorial lrs, and the final loss and lr', () => {
  const p = write('tutorial.json', tutorial());
  const m = path.join(dir, 'm.csv');
  const r = ok(['train', p, '--metrics-csv', m]);
  const {header, rows} = parseCsv(fs.readFileSync(m, 'utf8'));
  assert.deepEqual(header, ['step', 'loss', 'lr0', 'grad_norm', 'time']);
  assert.equal(rows.length, 1000);
  assert.deepEqual(rows.map((row) => Number(row[0])), Array.from({length: 1000}, (_, k) => k + 1));
  const preview = JSON.parse(ok(['preview', p]).out);
  rows.forEach((row, k) => assert.equal(Number(row[2]), preview.lr[0][k], `lr of step ${k + 1}`));
  assert.equal(Number(rows[2][2]), 0.0023546349804879152);
  assert.ok(rows.every((row) => Number.isFinite(Number(row[1])) && Number(row[3]) >= 0));
  // time: seconds of training, growing
  assert.ok(rows.every((row, k) => Number(row[4]) >= 0 && (k === 0 || Number(row[4]) >= Number(rows[k - 1][4]))));
  // the summary line names the last step, its loss and its lr (all as in the table)
  const s = /^step (\d+) loss (\S+) lr (\S+)$/m.exec(r.out);
  assert.ok(s, r.out);
  assert.equal(Number(s[1]), 1000);
  assert.equal(Number(s[2]), Number(rows[999][1]));
  assert.equal(Number(s[3]), Number(rows[999][2]));
  // progress went to stderr (not a terminal here: plain lines)
  assert.match(r.err, /step 1000\/1000 loss/);
});

test('train --weights-json: tensors shaped as /weights, every float reads back to the same bits', () => {
  const p = write('tutorial.json', tutorial());
  const w = path.join(dir, 'w.json'), s = path.join(dir, 'w.state');
  ok(['train', p, '--steps', '137', '--weights-json', w, '--save', s]);
  const o = JSON.parse(fs.readFileSync(w, 'utf8'));
  assert.equal(o.step, 137);
  assert.deepEqual(o.tensors.map((t) => t.name), ['fc.weight', 'fc.bias']);
  assert.deepEqual(o.tensors.map((t) => t.shape), [[1, 10], [1]]);
  const values = o.tensors.flatMap((t) => flat(t.data));
  const bits = savedParams(s);
  assert.equal(values.length, 11);
  assert.equal(bits.length, 11);
  values.forEach((v, i) => assert.equal(Math.fround(v), bits[i], `element ${i}`));
});

test('train --steps 300 --save, then --resume, equals an uninterrupted run', () => {
  const p = write('tutorial.json', tutorial());
  const f = (n) => path.join(dir, n);
  ok(['train', p, '--metrics-csv', f('full.csv'), '--weights-json', f('full.json')]);
  const first = ok(['train', p, '--steps', '300', '--save', f('s.bin'), '--metrics-csv', f('a.csv'), '--weights-json', f('a.json')]);
  assert.match(first.out, /^step 300 loss /m);
  assert.equal(JSON.parse(fs.readFileSync(f('a.json'), 'utf8')).step, 300);
  const second = ok(['train', p, '--resume', f('s.bin'), '--metrics-csv', f('b.csv'), '--weights-json', f('b.json')]);
  assert.match(second.out, /^step 1000 loss /m);
  assert.equal(fs.readFileSync(f('b.json'), 'utf8'), fs.readFileSync(f('full.json'), 'utf8'));
  // every column but time (wall clock) is the same
  const noTime = (l) => l.split(',').slice(0, -1).join(',');
  const full = fs.readFileSync(f('full.csv'), 'utf8').trimEnd().split('\n').map(noTime);
  const a = fs.readFileSync(f('a.csv'), 'utf8').trimEnd().split('\n').map(noTime);
  const b = fs.readFileSync(f('b.csv'), 'utf8').trimEnd().split('\n').map(noTime);
  assert.equal(a.length, 301);
  assert.equal(b[0], full[0]);
  assert.match(b[1], /^301,/);
  assert.deepEqual([...a, ...b.slice(1)], full);
  // a state at the end of its run has nothing left to train
  const done = ok(['train', p, '--resume', f('s.bin'), '--save', f('end.bin')]);
  assert.match(done.out, /^step 1000 /m);
  const again = ok(['train', p, '--resume', f('end.bin'), '--metrics-csv', f('c.csv')]);
  assert.match(again.out, /nothing to train/);
  assert.equal(fs.readFileSync(f('c.csv'), 'utf8'), 'step,loss,lr0,grad_norm,time\n');
});

test('train --resume refuses a state from another spec, and damaged files, clearly', () => {
  const f = (n) => path.join(dir, n);
  const p = write('tutorial.json', tutorial());
  ok(['train', p, '--steps', '20', '--save', f('r.bin')]);
  const others = [
    [tutorial({seed: 7}), /seed is 7 here, 42 in the saved state/],
    [tutorial({model: {type: 'linear', inputs: 10, outputs: 2}, data: {type: 'synthetic', task: 'regression', samples: 4096, features: 10, outputs: 2}}),
      /model\.outputs is 2 here, 1 in the saved state/],
    [tutorial({ds_config: {...tutorial().ds_config, optimizer: {type: 'SGD', params: {lr: 0.01}}}}), /ds_config\.optimizer\.type is "SGD" here, "Adam"/],
  ];
  for (const [spec, re] of others) {
    const r = run(['train', write('other.json', spec), '--resume', f('r.bin'), '--weights-json', f('o.json')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /another job spec/);
    assert.match(r.err, re);
    assert.equal(fs.existsSync(f('o.json')), false);
  }
  // a different name or checkpoint policy is the same run
  ok(['train', write('renamed.json', tutorial({name: 'other', checkpoint: {every_steps: 5}})), '--resume', f('r.bin'), '--steps', '1']);
  // a bare checkpoint blob of another model is refused by its own checks
  const blob = fs.readFileSync(f('r.bin'));
  const raw = blob.subarray(blob.indexOf(10, blob.indexOf(10) + 1) + 1);
  fs.writeFileSync(f('raw.bin'), raw);
  ok(['train', p, '--resume', f('raw.bin'), '--steps', '1']);
  const wrong = run(['train', write('other.json', others[1][0]), '--resume', f('raw.bin')]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.err, /another model/);
  // truncated, corrupted, foreign and missing files
  fs.writeFileSync(f('trunc.bin'), raw.subarray(0, raw.length - 9));
  assert.match(run(['train', p, '--resume', f('trunc.bin')]).err, /truncated/);
  const corrupt = Buffer.from(raw);
  corrupt[100] ^= 0x40;
  fs.writeFileSync(f('corrupt.bin'), corrupt);
  assert.match(run(['train', p, '--resume', f('corrupt.bin')]).err, /checksum/);
  fs.writeFileSync(f('foreign.bin'), 'PK\x03\x04 not a state at all, just some bytes that are long enough');
  assert.match(run(['train', p, '--resume', f('foreign.bin')]).err, /not an anneald checkpoint/);
  fs.writeFileSync(f('badline.bin'), 'anneald train state 1\n{"seed": 4');
  assert.match(run(['train', p, '--resume', f('badline.bin')]).err, /damaged/);
  const gone = run(['train', p, '--resume', f('absent.bin')]);
  assert.equal(gone.code, 1);
  assert.match(gone.err, /cannot read/);
});

test('train: bad flags exit 2, bad specs and unusable data exit 1', () => {
  const p = write('tutorial.json', tutorial());
  for (const args of [['train'], ['train', p, '--steps', '-1'], ['train', p, '--steps', 'x'], ['train', p, '--save'],
                      ['train', p, '--metrics-csv'], ['train', p, '--bogus'], ['train', p, p]]) {
    const r = run(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.err, /^anneald train: .*\n\(see anneald train --help\)/);
  }
  const ds = run(['train', write('ds.json', tutorial({data: {type: 'dataset', name: 'iris'}}))]);
  assert.equal(ds.code, 1);
  assert.match(ds.err, /^error: data\.type: /);
  const rf = run(['train', write('rf.json', tutorial({resume_from: {job: 'j_000001'}}))]);
  assert.equal(rf.code, 1);
  assert.match(rf.err, /resume_from/);
  const unwritable = run(['train', p, '--steps', '1', '--metrics-csv', path.join(dir, 'no', 'such', 'dir.csv')]);
  assert.equal(unwritable.code, 1);
  assert.match(unwritable.err, /cannot write/);
});

test('train reproduces the iris MLP reference (final loss within 1e-5 relative)', () => {
  const ref = JSON.parse(fs.readFileSync('tests/refdata/e2e/iris_mlp_4_16_3_sgd_momentum.float32.json', 'utf8'));
  const {x, labels, perm} = ref.data;
  const spec = {
    model: {type: 'mlp', inputs: 4, hidden: [16], outputs: 3, activation: 'relu',
            init: {'fc1.weight': ref.init.W1, 'fc1.bias': ref.init.b1, 'fc2.weight': ref.init.W2, 'fc2.bias': ref.init.b2}},
    loss: 'cross_entropy',
    data: {type: 'inline', x: perm.map((r) => x[r]), y: perm.map((r) => labels[r]), shuffle: false},
    steps: ref.steps,
    ds_config: {train_batch_size: ref.batch_size, gradient_clipping: 0,
                optimizer: {type: 'SGD', params: {lr: ref.optimizer.lr, momentum: ref.optimizer.momentum}}},
  };
  const f = (n) => path.join(dir, n);
  const r = ok(['train', write('iris.json', spec), '--metrics-csv', f('iris.csv'), '--weights-json', f('iris-w.json')]);
  const s = /^step (\d+) loss (\S+) lr (\S+)$/m.exec(r.out);
  assert.equal(Number(s[1]), 200);
  const want = ref.loss_per_step[199];
  const got = Number(s[2]);
  assert.ok(Math.abs(got - want) <= 1e-5 * Math.abs(want), `final loss ${got}, reference ${want}`);
  assert.equal(Number(s[3]), 0.05);
  const rows = parseCsv(fs.readFileSync(f('iris.csv'), 'utf8')).rows;
  assert.equal(rows.length, 200);
  rows.forEach((row, k) => {
    const w = ref.loss_per_step[k];
    assert.ok(Math.abs(Number(row[1]) - w) <= 1e-5 * Math.abs(w), `step ${k + 1}: ${row[1]} vs ${w}`);
  });
  const w = JSON.parse(fs.readFileSync(f('iris-w.json'), 'utf8'));
  const names = {'fc1.weight': 'W1', 'fc1.bias': 'b1', 'fc2.weight': 'W2', 'fc2.bias': 'b2'};
  for (const t of w.tensors) {
    const got2 = flat(t.data), want2 = flat(ref.final[names[t.name]]);
    assert.equal(got2.length, want2.length, t.name);
    got2.forEach((v, i) => assert.ok(Math.abs(v - want2[i]) <= 1e-5 * Math.max(Math.abs(want2[i]), 1e-2),
                                     `${t.name}[${i}] ${v} vs ${want2[i]}`));
  }
});

// OpenMP's waiting (daemon/main.c): the process runs itself again once with a short spin
// before idle threads sleep, keeps its own name, and leaves a policy the environment names
// as given.
test('the daemon runs with OMP_WAIT_POLICY=passive and GOMP_SPINCOUNT=1000 unless told otherwise', async () => {
  const environ = (pid) => fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  const plain = {...process.env};
  delete plain.OMP_WAIT_POLICY;
  delete plain.GOMP_SPINCOUNT;
  const cases = [
    [{}, ['OMP_WAIT_POLICY=passive', 'GOMP_SPINCOUNT=1000'], []],
    [{OMP_WAIT_POLICY: 'active'}, ['OMP_WAIT_POLICY=active'], ['GOMP_SPINCOUNT=1000']],
    [{GOMP_SPINCOUNT: '50'}, ['GOMP_SPINCOUNT=50'], ['OMP_WAIT_POLICY=passive']],
  ];
  for (const [env, has, hasNot] of cases) {
    const dir = tmpDir();
    const saved = {...process.env};
    try {
      for (const k of Object.keys(process.env)) delete process.env[k];
      Object.assign(process.env, plain);
      const d = await startDaemon({dir, env});
      try {
        const e = environ(d.proc.pid);
        for (const x of has) assert.ok(e.includes(x), `${x} in ${JSON.stringify(env)}`);
        for (const x of hasNot) assert.ok(!e.includes(x), `no ${x} in ${JSON.stringify(env)}`);
        assert.equal(fs.readFileSync(`/proc/${d.proc.pid}/comm`, 'utf8').trim(), 'anneald');
      } finally {
        await d.stop();
      }
    } finally {
      for (const k of Object.keys(process.env)) delete process.env[k];
      Object.assign(process.env, saved);
      fs.rmSync(dir, {recursive: true, force: true});
    }
  }
});

test('train --weights-json of a gpt job writes what GET /v1/jobs/{id}/weights does, number for number', async () => {
  const spec = {
    name: 'tiny-gpt', seed: 3, model: {type: 'gpt', block_size: 8, n_layer: 1, n_head: 2, n_embd: 8},
    data: {type: 'text', text: 'to be, or not to be, that is the question\n'.repeat(6)}, steps: 6,
    ds_config: {train_batch_size: 4, optimizer: {type: 'AdamW', params: {lr: 0.003}}},
  };
  const w = path.join(dir, 'gpt-w.json');
  ok(['train', write('gpt-w-spec.json', spec), '--weights-json', w]);
  const cli = JSON.parse(fs.readFileSync(w, 'utf8'));
  const d = await startDaemon();
  try {
    const r = await api(d.url, 'POST', '/v1/jobs', spec);
    assert.equal(r.status, 201, r.text);
    let job;
    for (let i = 0; i < 600 && (!job || job.state !== 'completed'); i++) {
      job = (await api(d.url, 'GET', `/v1/jobs/${r.json.id}`)).json;
      if (job.state === 'failed') throw new Error(job.error);
      await new Promise((res) => setTimeout(res, 50));
    }
    const served = await api(d.url, 'GET', `/v1/jobs/${r.json.id}/weights`);
    assert.equal(served.status, 200, served.text);
    assert.equal(cli.step, served.json.step);
    assert.deepEqual(cli.tensors, served.json.tensors);
  } finally {
    await d.stop();
  }
});
