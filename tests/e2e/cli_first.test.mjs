// End-to-end tests of the command line as a newcomer meets it: each command's own --help,
// unknown flags named as such, previews of any length (thinned with --every / --max-points,
// also through the API), epochs-based previews of their real length, `anneald train` with a
// rate and ETA and a clean Ctrl-C, and `check` output indented with spaces.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {spawn, spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {BIN, api, tmpDir, tutorialJob, withDaemon} from './lib.mjs';

const dir = tmpDir('anneald-cli1-');
process.on('exit', () => fs.rmSync(dir, {recursive: true, force: true}));

function write(name, content) {
  const p = path.join(dir, name);
  fs.writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

function run(args, input) {
  const r = spawnSync(BIN, args, {input, encoding: 'utf8', maxBuffer: 256 << 20});
  if (r.error) throw r.error;
  return {code: r.status, out: r.stdout, err: r.stderr};
}

// The README's job: the tutorial with 20,000,000 steps.
const readmeJob = () => tutorialJob({steps: 20000000, checkpoint: {every_steps: 100000, keep_last: 3}});

test('each command has its own --help, and the global usage points to them', () => {
  const global = run(['--help']).out;
  assert.match(global, /anneald check\|preview\|train\|lr-find\|generate --help/);
  for (const [cmd, flags] of [['check', ['--max-job-memory']],
                              ['preview', ['--steps', '--every', '--max-points', '--param-group-lr', '--format']],
                              ['train', ['--steps', '--metrics-csv', '--weights-json', '--save', '--resume', 'Ctrl-C']],
                              ['lr-find', ['--min-lr', '--max-lr', '--steps', '--stop-factor', '--mode', '--csv', '--job']]]) {
    for (const h of ['--help', '-h']) {
      const r = run([cmd, h]);
      assert.equal(r.code, 0);
      assert.match(r.out, new RegExp(`^usage: anneald ${cmd} `));
      assert.notEqual(r.out, global);
      for (const f of flags) assert.ok(r.out.includes(f), `${cmd} --help explains ${f}`);
    }
  }
});

// The man page and --help read against the sources: every flag options.c accepts is in the man
// page's OPTIONS and in --help, and every command main.c runs is in both synopses with each
// flag of its own usage line (`anneald CMD --help`).
test('the man page and --help name every daemon flag, every command and its flags', () => {
  const man = fs.readFileSync('docs/anneald.1', 'utf8');
  const global = run(['--help']).out;
  const opts = fs.readFileSync('daemon/options.c', 'utf8');
  const known = /known\[\] = \{([^}]*)\}/.exec(opts)[1];
  const flags = [...known.matchAll(/"(--[a-z-]+)"/g)].map((m) => m[1]);
  assert.ok(flags.length >= 15 && flags.includes('--allow-host'), flags.join(' '));
  const manOptions = man.slice(man.indexOf('.SH OPTIONS'), man.indexOf('.SH COMMANDS'));
  const esc = (f) => f.replace(/-/g, '\\-');
  for (const f of flags) {
    assert.ok(manOptions.includes(`.BI ${esc(f)} `), `the man page's OPTIONS explain ${f}`);
    assert.ok(global.includes(`  ${f} `), `anneald --help explains ${f}`);
  }
  const main = fs.readFileSync('daemon/main.c', 'utf8');
  const cmds = [...main.matchAll(/strcmp\(argv\[1\], "([a-z-]+)"\) == 0\)\s*\n\s*return cli_/g)].map((m) => m[1]);
  assert.deepEqual(cmds.sort(), ['check', 'generate', 'lr-find', 'preview', 'train']);
  for (const cmd of cmds) {
    const own = [...new Set([...run([cmd, '--help']).out.split('\n\n')[0].matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]))]
      .filter((f) => f !== '--help');
    const at = global.indexOf(`       anneald ${cmd} `);
    assert.ok(at >= 0, `anneald --help shows ${cmd}`);
    const usage = global.slice(at).split(/\n(?=       (?:anneald|mpirun) |\n)/)[0];
    const mat = man.indexOf(`.B anneald ${esc(cmd)}\n`);
    assert.ok(mat >= 0, `the man page's SYNOPSIS shows ${cmd}`);
    const synopsis = man.slice(mat, man.indexOf('.br', mat));
    for (const f of own) {
      assert.ok(usage.includes(f), `anneald --help shows ${cmd} ${f}`);
      assert.ok(synopsis.includes(esc(f)), `the man page's SYNOPSIS shows ${cmd} ${f}`);
    }
  }
});

test('an unknown global flag is named as unknown, not as missing its value', () => {
  const r = run(['--bogus']);
  assert.equal(r.code, 2);
  assert.match(r.err, /unknown flag '--bogus'/);
  assert.doesNotMatch(r.err, /needs a value/);
  const r2 = run(['--bogus=3']);
  assert.equal(r2.code, 2);
  assert.match(r2.err, /unknown flag '--bogus'/);
  const r3 = run(['--db']);
  assert.match(r3.err, /--db needs a value/);
});

test('check pretty-prints with spaces, not tabs', () => {
  const r = run(['check', write('t.json', tutorialJob())]);
  assert.equal(r.code, 0, r.err);
  assert.ok(!r.out.includes('\t'), 'no tab in the output');
  assert.match(r.out, /^\{\n  "spec": \{\n    "name": "warmup-demo",/);
  assert.deepEqual(JSON.parse(r.out).spec.steps, 1000);
});

test('preview of the README job: refused whole with a hint, thinned with --every / --max-points', () => {
  const p = write('readme.json', readmeJob());
  const whole = run(['preview', p]);
  assert.equal(whole.code, 1);
  assert.match(whole.err, /^error: steps: .*--max-points N.*--every N/);

  const every = run(['preview', p, '--every', '100000']);
  assert.equal(every.code, 0, every.err);
  const e = JSON.parse(every.out);
  assert.equal(e.step[0], 1);
  assert.equal(e.step.at(-1), 20000000);
  assert.ok(e.step.includes(100001), 'every 100000-th step');
  // the corners of the warmup are kept: steps 1 and 2 use 0.001, the lr rises from step 3 and
  // reaches 0.01 at step 102
  assert.deepEqual(e.step.slice(0, 4), [1, 2, 102, 100001]);
  assert.ok(Math.abs(e.lr[0][2] - 0.01) < 1e-15, `${e.lr[0][2]}`);
  assert.ok(e.lr[0][1] === 0.001);
  assert.ok(e.step.length <= 200 + 4, `${e.step.length} steps`);
  assert.equal(e.lr[0].length, e.step.length);
  assert.equal(e.lr[0][0], 0.001);
  assert.ok(Math.abs(e.lr[0].at(-1) - 0.01) < 1e-15);
  for (let i = 1; i < e.step.length; i++) assert.ok(e.step[i] > e.step[i - 1]);

  const mp = run(['preview', p, '--max-points', '500', '--format', 'csv']);
  assert.equal(mp.code, 0, mp.err);
  const rows = mp.out.trimEnd().split('\n');
  assert.equal(rows[0], 'step,lr0');
  assert.ok(rows.length - 1 <= 500 && rows.length - 1 >= 200, `${rows.length - 1} rows`);
  assert.equal(rows[1], '1,0.001');
  assert.match(rows.at(-1), /^20000000,0\.01(0000000000000002)?$/);

  const both = run(['preview', p, '--every', '10', '--max-points', '10']);
  assert.equal(both.code, 2);
});

test('thinning keeps every corner of a stepped schedule, and the full preview agrees', () => {
  const ds = {train_batch_size: 8, optimizer: {type: 'SGD', params: {lr: 1}},
              scheduler: {type: 'StepLR', params: {step_size: 300, gamma: 0.5}}};
  const full = JSON.parse(run(['preview', '-', '--steps', '1000'], JSON.stringify(ds)).out);
  const thin = JSON.parse(run(['preview', '-', '--steps', '1000', '--every', '250'], JSON.stringify(ds)).out);
  // steps 1, 251, 501, 751, 1000 and both sides of the drops after steps 300, 600, 900
  for (const s of [1, 251, 501, 751, 1000, 300, 301, 600, 601, 900, 901]) assert.ok(thin.step.includes(s), `step ${s}`);
  thin.step.forEach((s, i) => assert.equal(thin.lr[0][i], full.lr[0][s - 1], `lr of step ${s}`));
});

test('an epochs-based job previews its real length', () => {
  const iris = {model: {type: 'mlp', inputs: 4, hidden: [8], outputs: 3}, loss: 'cross_entropy',
                data: {type: 'builtin', name: 'iris'}, epochs: 10,
                ds_config: {train_batch_size: 16, optimizer: {type: 'SGD', params: {lr: 0.1}}}};
  const r = run(['preview', write('iris.json', iris)]);
  assert.equal(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out).step.length, Math.ceil(10 * 150 / 16));
  const v = run(['preview', write('irisv.json', {...iris, validation: {fraction: 0.2, every_steps: 10}})]);
  assert.equal(JSON.parse(v.out).step.length, Math.ceil(10 * 120 / 16));
});

test('POST /v1/schedules/preview takes max_points for a 100,000,000-step schedule', async () => {
  await withDaemon({}, async (d) => {
    const body = {ds_config: readmeJob().ds_config, steps: 100000000, max_points: 1000};
    const r = await api(d.url, 'POST', '/v1/schedules/preview', body);
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.ok(r.json.step.length <= 1000 && r.json.step.length > 400, `${r.json.step.length}`);
    assert.equal(r.json.step.at(-1), 100000000);
    const bad = await api(d.url, 'POST', '/v1/schedules/preview', {...body, max_points: 'many'});
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.field, 'max_points');
    const big = await api(d.url, 'POST', '/v1/schedules/preview', {ds_config: body.ds_config, steps: 20000000});
    assert.equal(big.status, 400);
    assert.equal(big.json.error.field, 'steps');
    assert.match(big.json.error.message, /max_points/);
  });
});

test('train shows its rate and ETA, and Ctrl-C stops cleanly: whole CSV, state saved, told where', async () => {
  const p = write('long.json', tutorialJob({steps: 1000000000, validation: {fraction: 0.1, every_steps: 1000}}));
  const csv = path.join(dir, 'long.csv'), state = path.join(dir, 'long.state');
  const child = spawn(BIN, ['train', p, '--metrics-csv', csv, '--save', state], {stdio: ['ignore', 'pipe', 'pipe']});
  let err = '', out = '';
  child.stderr.on('data', (c) => { err += c; });
  child.stdout.on('data', (c) => { out += c; });
  // wait for two progress lines (one a second when stderr is not a terminal)
  const t0 = Date.now();
  while ((err.match(/steps\/s/g) || []).length < 2 && Date.now() - t0 < 20000) await new Promise((r) => setTimeout(r, 100));
  child.kill('SIGINT'); // first, so that a failed check below leaves no trainer running
  // the last validation's loss beside the training loss (this job validates every 1000 steps)
  assert.match(err, /step \d+\/1000000000 loss \S+ val_loss \S+ lr \S+ \d+ steps\/s elapsed \S+ eta \S+/);
  const code = await new Promise((r) => child.on('exit', (c) => r(c)));
  assert.equal(code, 130, err);
  assert.match(err, /interrupted after step (\d+) of 1000000000/);
  const stepAt = Number(/interrupted after step (\d+)/.exec(err)[1]);
  assert.match(err, new RegExp(`state saved to ${state.replace(/[/.]/g, '\\$&')}; continue with: anneald train`));
  assert.match(err, /metrics up to it: /);
  const lines = fs.readFileSync(csv, 'utf8').split('\n');
  assert.equal(lines.at(-1), '', 'the CSV ends with a whole line');
  assert.equal(lines[0], 'step,loss,lr0,grad_norm,time,val_loss,val_acc');
  const body = lines.slice(1, -1);
  assert.equal(body.length, stepAt);
  assert.ok(body.every((l) => l.split(',').length === 7), 'every row whole');
  assert.ok(body.some((l) => /,[^,]+,$/.test(l)), 'validation rows carry val_loss (val_acc empty for regression)');
  assert.match(out, new RegExp(`^step ${stepAt} `, 'm'));
  // The command it prints continues the run with the same files: the CSV goes on from the
  // saved step, as one uninterrupted run's (time aside), and --steps stops it again.
  const cmd = /continue with: anneald (.*)$/m.exec(err)[1].split(' ');
  assert.deepEqual(cmd, ['train', p, '--resume', state, '--save', state, '--metrics-csv', csv]);
  const next = run([...cmd, '--steps', '5']);
  assert.equal(next.code, 0, next.err);
  assert.match(next.out, new RegExp(`^step ${stepAt + 5} `, 'm'));
  assert.match(next.err, new RegExp(`stopped after step ${stepAt + 5} of 1000000000`));
  assert.match(next.err, /continue with: anneald train .* --steps 5$/m);
  const full = path.join(dir, 'full.csv');
  assert.equal(run(['train', p, '--metrics-csv', full, '--steps', String(stepAt + 5)]).code, 0);
  const cols = (f) => fs.readFileSync(f, 'utf8').split('\n').map((l) => l.split(',').filter((_, k) => k !== 4).join(','));
  assert.deepEqual(cols(csv), cols(full));
  const times = fs.readFileSync(csv, 'utf8').split('\n').slice(1, -1).map((l) => Number(l.split(',')[4]));
  assert.ok(times.every((x, i) => i === 0 || x >= times[i - 1]), 'time counts on from the saved rows');
  // A file of another job's columns is refused, and left as it was.
  const other = path.join(dir, 'other.csv');
  fs.writeFileSync(other, 'step,loss,lr0,lr1,grad_norm,time\n1,2,3,4,5,6\n');
  const bad = run(['train', p, '--resume', state, '--metrics-csv', other, '--steps', '1']);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /--metrics-csv .*other\.csv: its columns \(step,loss,lr0,lr1,grad_norm,time\) are not this job's/);
  assert.equal(fs.readFileSync(other, 'utf8'), 'step,loss,lr0,lr1,grad_norm,time\n1,2,3,4,5,6\n');
  fs.writeFileSync(other, lines[0] + '\n1,2,3,4,5,,\nnot a row\n');
  const junk = run(['train', p, '--resume', state, '--metrics-csv', other, '--steps', '1']);
  assert.equal(junk.code, 1);
  assert.match(junk.err, /other\.csv: line 3 is not a metrics row/);
  assert.equal(fs.readFileSync(other, 'utf8'), lines[0] + '\n1,2,3,4,5,,\nnot a row\n');
  // a last row cut short (a write that failed) is dropped, not merged with the next one
  const cut = path.join(dir, 'cut.csv');
  fs.writeFileSync(cut, lines.slice(0, 3).join('\n') + '\n' + lines[3].slice(0, 9));
  const go = run(['train', p, '--resume', state, '--metrics-csv', cut, '--steps', '2']);
  assert.equal(go.code, 0, go.err);
  assert.match(go.err, /cut\.csv ends at step 2, before the resumed step/);
  const rows = fs.readFileSync(cut, 'utf8').trimEnd().split('\n');
  assert.deepEqual(rows.slice(0, 3), lines.slice(0, 3));
  assert.equal(rows.length, 5);
  assert.ok(rows.every((l) => l.split(',').length === 7), rows.join('\n'));
  assert.match(rows[3], new RegExp(`^${stepAt + 6},`));
});
