// End-to-end tests of how the offline commands fail: a directory given as a file, output that
// cannot be written (a full disk, a closed stdout), a --save that fails without losing the
// state it replaces, and flags that are wrong, missing or repeated.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {spawn, spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {BIN, tmpDir, tutorialJob} from './lib.mjs';

const dir = tmpDir('anneald-clierr-');
process.on('exit', () => fs.rmSync(dir, {recursive: true, force: true}));

function write(name, content) {
  const p = path.join(dir, name);
  fs.writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

function run(args, opts = {}) {
  const r = spawnSync(BIN, args, {encoding: 'utf8', maxBuffer: 256 << 20, ...opts});
  if (r.error) throw r.error;
  return {code: r.status, signal: r.signal, out: r.stdout, err: r.stderr};
}

const tut = () => write('tut.json', tutorialJob());

test('a directory given as an input file is named as a directory', () => {
  const p = tut();
  for (const args of [['check', dir], ['preview', dir], ['train', dir], ['lr-find', dir],
                      ['train', p, '--resume', dir], ['check', '-']]) {
    const r = run(args, args.at(-1) === '-' ? {stdio: [fs.openSync(dir, 'r'), 'pipe', 'pipe']} : {});
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.err, /^error: cannot read .*: Is a directory$/m, args.join(' '));
  }
});

const TEXT = 'to be, or not to be, that is the question: whether tis nobler in the mind to suffer\n'.repeat(4);
const gptJob = (steps = 4) => ({
  name: 'tiny-gpt', seed: 3,
  model: {type: 'gpt', block_size: 8, n_layer: 1, n_head: 2, n_embd: 8},
  data: {type: 'text', text: TEXT}, steps,
  ds_config: {train_batch_size: 4, optimizer: {type: 'AdamW', params: {lr: 0.003}}},
});

// Every command that prints to stdout, run with stdout on /dev/full and with stdout closed:
// exit 1 and the reason on stderr, never a silent 0.
test('output that cannot be written to stdout fails with its reason (/dev/full, closed stdout)', () => {
  const p = tut();
  const gpt = write('gpt.json', gptJob()), state = path.join(dir, 'gpt.state');
  const tr = run(['train', gpt, '--save', state]);
  assert.equal(tr.code, 0, tr.err);
  const cases = [
    ['check', p], ['check', '--help'], ['preview', p], ['preview', '--help'],
    ['train', p, '--steps', '3'], ['train', '--help'],
    ['generate', gpt, '--resume', state, '--prompt', 'to', '--max-tokens', '5'], ['generate', '--help'],
    ['lr-find', p, '--steps', '20'], ['lr-find', p, '--job'], ['lr-find', '--help'],
    ['--help'], ['--version'],
  ];
  const full = fs.openSync('/dev/full', 'w');
  try {
    for (const args of cases) {
      const r = run(args, {stdio: ['ignore', full, 'pipe']});
      assert.equal(r.code, 1, `${args.join(' ')} > /dev/full: exit ${r.code}: ${r.err}`);
      assert.match(r.err, /^error: cannot write .* to stdout: No space left on device$/m, args.join(' '));
      const c = spawnSync('sh', ['-c', 'exec "$0" "$@" >&-', BIN, ...args], {encoding: 'utf8'});
      assert.equal(c.status, 1, `${args.join(' ')} >&-: exit ${c.status}: ${c.stderr}`);
      assert.match(c.stderr, /^error: cannot write .* to stdout: Bad file descriptor$/m, args.join(' '));
    }
  } finally {
    fs.closeSync(full);
  }
  // with stdout closed, a file the command opens does not take its place
  const csv = path.join(dir, 'closed.csv');
  const c = spawnSync('sh', ['-c', 'exec "$0" "$@" >&-', BIN, 'train', p, '--steps', '2', '--metrics-csv', csv],
                      {encoding: 'utf8'});
  assert.equal(c.status, 1, c.stderr);
  assert.match(fs.readFileSync(csv, 'utf8'), /^step,loss,lr0,grad_norm,time\n1,.*\n2,.*\n$/);
});

// A model whose state takes a moment to write (about 13 MB).
const bigJob = () => ({
  name: 'big', seed: 1,
  model: {type: 'mlp', inputs: 32, hidden: [1024, 1024], outputs: 1},
  data: {type: 'synthetic', task: 'regression', samples: 256, features: 32},
  steps: 100000000,
  ds_config: {train_batch_size: 8, optimizer: {type: 'Adam', params: {lr: 0.0001}}},
});

test('a --save that fails keeps the state it would have replaced, and leaves no temporary file', () => {
  const p = write('big.json', bigJob()), state = path.join(dir, 'keep.state');
  const first = run(['train', p, '--steps', '2', '--save', state]);
  assert.equal(first.code, 0, first.err);
  const before = fs.readFileSync(state);
  assert.ok(before.length > 1 << 20);
  // The next save runs into a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored): its writes fail
  // with EFBIG part way, as on a full disk. The old state must come through whole.
  const limited = spawnSync('sh', ['-c', 'trap "" XFSZ; ulimit -f 1024; exec "$0" "$@"', BIN, 'train', p,
                                   '--steps', '2', '--resume', state, '--save', state], {encoding: 'utf8'});
  assert.equal(limited.status, 1, limited.stderr);
  assert.match(limited.stderr, /^error: cannot write .*keep\.state: File too large$/m);
  assert.ok(fs.readFileSync(state).equals(before), 'the old state is untouched');
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('keep.state')), ['keep.state']);
  // and it still resumes
  const next = run(['train', p, '--steps', '1', '--resume', state]);
  assert.equal(next.code, 0, next.err);
  assert.match(next.out, /^step 3 /m);
});

test('a second Ctrl-C while the state is saved does not cut the save short', async () => {
  const p = write('big2.json', bigJob()), state = path.join(dir, 'twice.state');
  const child = spawn(BIN, ['train', p, '--save', state], {stdio: ['ignore', 'pipe', 'pipe']});
  let err = '';
  child.stderr.on('data', (c) => { err += c; });
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({code, signal})));
  const until = async (re) => {
    const t0 = Date.now();
    while (!re.test(err) && Date.now() - t0 < 20000) await new Promise((r) => setTimeout(r, 5));
    assert.match(err, re);
  };
  await until(/step \d+\//);
  child.kill('SIGINT');
  await until(/^saving .*twice\.state/m);
  child.kill('SIGINT');
  child.kill('SIGTERM');
  const {code, signal} = await exited;
  assert.equal(signal, null, err);
  assert.equal(code, 130, err);
  assert.match(err, /state saved to .*twice\.state/);
  const next = run(['train', p, '--steps', '1', '--resume', state]);
  assert.equal(next.code, 0, next.err);
});

// A stop signal before the first step (docs/anneald.1: reading the spec, making the data set,
// building the model) ends train at once with exit 130 and a message, never by the signal's
// default action.
const STARTUP_STOP = (sig) => new RegExp(`^anneald train: interrupted by ${sig === 'SIGINT' ? 'Ctrl-C \\(SIGINT\\)' : 'SIGTERM'} during start-up, before the first step: nothing was trained or written\n$`, 'm');

async function exitOf(child) {
  return new Promise((r) => child.on('exit', (code, signal) => r({code, signal})));
}

test('a stop signal while train reads its spec ends it with exit 130 and says so', async () => {
  for (const sig of ['SIGTERM', 'SIGINT']) {
    // The spec comes on stdin and never ends: the trainer waits in read(0), which
    // /proc/PID/syscall shows (syscall 0 on descriptor 0), past its own exec of itself.
    const child = spawn(BIN, ['train', '-'], {stdio: ['pipe', 'pipe', 'pipe']});
    let err = '';
    child.stderr.on('data', (c) => { err += c; });
    const exited = exitOf(child);
    const t0 = Date.now();
    let sc = '';
    while (!/^0 0x0 /.test(sc) && Date.now() - t0 < 20000) {
      await new Promise((r) => setTimeout(r, 5));
      try { sc = fs.readFileSync(`/proc/${child.pid}/syscall`, 'utf8'); } catch { sc = ''; }
    }
    child.kill(sig);
    const {code, signal} = await exited;
    assert.match(sc, /^0 0x0 /, 'it was reading its spec');
    assert.equal(signal, null, `${sig}: ended by the signal, not by itself`);
    assert.equal(code, 130, err);
    assert.match(err, STARTUP_STOP(sig));
    assert.equal(err.split('\n').length, 2, err); // that line only
  }
});

test('a stop signal while train makes a large data set ends it at once, leaving no file', async () => {
  // 16,777,216 synthetic rows: seconds of start-up after the spec's warning is printed
  const p = write('slow-start.json', {
    name: 'slow-start', seed: 1, epochs: 1, loss: 'mse',
    model: {type: 'mlp', inputs: 4, hidden: [8], outputs: 1},
    data: {type: 'synthetic', task: 'regression', samples: 16777216, features: 4},
    ds_config: {train_batch_size: 64, optimizer: {type: 'Adam', params: {lr: 0.001}},
                scheduler: {type: 'WarmupCosineLR', params: {total_num_steps: 'auto', warmup_num_steps: 10}}},
  });
  const state = path.join(dir, 'slow.state'), csv = path.join(dir, 'slow.csv');
  const child = spawn(BIN, ['train', p, '--save', state, '--metrics-csv', csv], {stdio: ['ignore', 'pipe', 'pipe']});
  let err = '';
  child.stderr.on('data', (c) => { err += c; });
  const exited = exitOf(child);
  const t0 = Date.now();
  while (!/^warning: /m.test(err) && Date.now() - t0 < 20000) await new Promise((r) => setTimeout(r, 2));
  assert.match(err, /^warning: ds_config\.scheduler\.params\.total_num_steps/m);
  const sent = Date.now();
  child.kill('SIGTERM');
  const {code, signal} = await exited;
  const took = Date.now() - sent;
  assert.equal(signal, null, err);
  assert.equal(code, 130, err);
  assert.match(err, STARTUP_STOP('SIGTERM'));
  assert.doesNotMatch(err, /interrupted after step/);
  // at once: building these rows takes seconds (4.7 s for the whole start-up here)
  console.log(`# SIGTERM during start-up to exit: ${took} ms`);
  assert.ok(took < 2000, `it took ${took} ms to stop`);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('slow.')), [], 'no file written');
});

test('--save and --weights-json paths are checked before the first step, and nothing is left behind', () => {
  const p = tut();
  for (const flag of ['--save', '--weights-json']) {
    const r = run(['train', p, '--steps', '100000', flag, path.join(dir, 'no', 'such', 'dir', 'f')]);
    assert.equal(r.code, 1, flag);
    assert.match(r.err, /^error: cannot write .*no\/such\/dir\/f: No such file or directory\n$/, flag);
    const d = run(['train', p, '--steps', '100000', flag, dir]);
    assert.equal(d.code, 1, flag);
    assert.match(d.err, /^error: cannot write .*: Is a directory\n$/, flag);
  }
  // a run that fails before its end creates neither file
  const s = path.join(dir, 'never.state'), w = path.join(dir, 'never.json');
  const r = run(['train', p, '--save', s, '--weights-json', w, '--resume', path.join(dir, 'missing')]);
  assert.equal(r.code, 1);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('never.')), []);
});

test('write errors name their reason: --save, --weights-json, --metrics-csv on /dev/full', () => {
  const p = tut();
  for (const flag of ['--save', '--weights-json', '--metrics-csv']) {
    const r = run(['train', p, '--steps', '3', flag, '/dev/full']);
    assert.equal(r.code, 1, flag);
    assert.match(r.err, /^error: cannot write \/dev\/full: No space left on device$/m, flag);
  }
});

test('the last progress line gives the time left: 0s only when the run is over', () => {
  const part = run(['train', tut(), '--steps', '50']);
  assert.equal(part.code, 0, part.err);
  const last = part.err.trimEnd().split('\n').at(-1);
  assert.match(last, /^step 50\/1000 .* eta \S+$/);
  assert.doesNotMatch(last, /eta 0s$/, 'steps remain');
  const whole = run(['train', write('short.json', tutorialJob({steps: 60}))]);
  assert.equal(whole.code, 0, whole.err);
  assert.match(whole.err.trimEnd().split('\n').at(-1), /^step 60\/60 .* eta 0s$/);
});

test('check takes --max-job-memory before or after the file; a missing value or =VALUE is named', () => {
  const p = tut();
  const plain = run(['check', p]);
  assert.equal(plain.code, 0, plain.err);
  for (const args of [['check', '--max-job-memory', '1G', p], ['check', p, '--max-job-memory', '1G']]) {
    const r = run(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
    assert.equal(r.out, plain.out);
  }
  const tiny = run(['check', p, '--max-job-memory', '1K']);
  assert.equal(tiny.code, 1);
  assert.match(tiny.err, /over the 1\.0 KiB cap|over the .* cap \(--max-job-memory\)/);
  const missing = run(['check', p, '--max-job-memory']);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /^anneald check: --max-job-memory needs a value/);
  const eq = run(['check', p, '--max-job-memory=1G']);
  assert.equal(eq.code, 2);
  assert.match(eq.err, /^anneald check: unknown flag '--max-job-memory=1G' \(give the value after a space: --max-job-memory 1G\)/);
  const bad = run(['check', p, '--max-job-memory', 'lots']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--max-job-memory expects a size .* got 'lots'/);
  const two = run(['check', p, p]);
  assert.equal(two.code, 2);
  assert.match(two.err, /got more/);
});

test('train: outputs that share a file, overwrite the spec or say "-" are refused before training', () => {
  const p = tut();
  const f = (n) => path.join(dir, n);
  for (const [args, re] of [
    [['--save', f('same.out'), '--weights-json', f('same.out')], /--save and --weights-json both name \S+same\.out: each output needs a file of its own/],
    [['--save', f('m.out'), '--metrics-csv', path.join(dir, '.', 'm.out')], /--save and --metrics-csv both name/],
    [['--weights-json', p], /--weights-json \S+ names the job spec file: it would be overwritten/],
    [['--metrics-csv', '-'], /--metrics-csv writes a file, not standard output/],
  ]) {
    const before = fs.readFileSync(p, 'utf8');
    const r = run(['train', p, ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
    assert.match(r.err, /\(see anneald train --help\)/);
    assert.equal(fs.readFileSync(p, 'utf8'), before, 'the spec is untouched');
    for (const o of ['same.out', 'm.out', '-']) assert.equal(fs.existsSync(f(o)), false, o);
  }
  // --resume and --save naming one file is how a run goes on: allowed
  assert.equal(run(['train', p, '--steps', '3', '--save', f('go.bin')]).code, 0);
  assert.equal(run(['train', p, '--steps', '3', '--resume', f('go.bin'), '--save', f('go.bin')]).code, 0);
});

test('generate and lr-find: a bad flag value exits 2 naming the flag; a repeated flag replaces the earlier', () => {
  const p = tut();
  for (const [args, re] of [
    [['--steps', '0'], /^anneald lr-find: --steps must be .* got 0\n\(see anneald lr-find --help\)/],
    [['--mode', 'foo'], /^anneald lr-find: --mode must be one of exponential, linear/],
    [['--min-lr', '-1'], /^anneald lr-find: --min-lr must be /],
    [['--stop-factor', '0'], /^anneald lr-find: --stop-factor must be /],
    [['--stop-factor', '1e7'], /^anneald lr-find: --stop-factor must be a number in \(1, 1e\+06\]/],
    [['--job', '--csv', 'c.csv'], /^anneald lr-find: --csv goes with a run; --job prints/],
    [['--csv', '-'], /^anneald lr-find: --csv writes a file, not standard output/],
  ]) {
    const r = run(['lr-find', p, ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
  }
  // the same bad value in the file is the file's error: exit 1, named by its key
  const f = run(['lr-find', write('req.json', {job: tutorialJob(), steps: 0})]);
  assert.equal(f.code, 1);
  assert.match(f.err, /^error: steps: /);
  const twice = run(['lr-find', p, '--steps', '5', '--steps', '20', '--job']);
  assert.equal(twice.code, 0, twice.err);

  const gpt = write('gpt2.json', gptJob()), state = path.join(dir, 'gpt2.state');
  assert.equal(run(['train', gpt, '--save', state]).code, 0);
  const gen = (...a) => run(['generate', gpt, '--resume', state, ...a]);
  for (const [args, re] of [
    [['--max-tokens', '0'], /^anneald generate: --max-tokens must be .* got 0\n\(see anneald generate --help\)/],
    [['--temperature', '-1'], /^anneald generate: --temperature must be /],
    [['--top-k', '-2'], /^anneald generate: --top-k must be /],
    // above the model's vocabulary: known only once the model is read, still the flag's
    [['--top-k', '100000'], /^anneald generate: --top-k/],
    // decimal numbers only (strtod would read these)
    [['--max-tokens', '0x10'], /^anneald generate: --max-tokens expects a number/],
    [['--temperature', 'inf'], /^anneald generate: --temperature expects a number/],
  ]) {
    const r = gen(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
  }
  const once = gen('--prompt', 'to', '--max-tokens', '5', '--seed', '2');
  assert.equal(once.code, 0, once.err);
  const again = gen('--prompt', 'x', '--prompt', 'to', '--max-tokens', '9', '--max-tokens', '5', '--seed', '2');
  assert.equal(again.code, 0, again.err);
  assert.equal(again.out, once.out);
});

// The daemon and every offline command name an unknown --flag the same way, with the flag it
// is nearest to; a word where none belongs stays an unexpected argument.
test('an unknown --flag of an offline command is named as such, with the nearest flag', () => {
  const p = tut();
  for (const [args, re] of [
    [['train', p, '--stps', '3'], /^anneald train: unknown flag '--stps' \(did you mean '--steps'\?\)\n\(see anneald train --help\)\n$/],
    [['train', '--metric-csv', 'm.csv', p], /^anneald train: unknown flag '--metric-csv' \(did you mean '--metrics-csv'\?\)/],
    [['train', p, '--steps=3'], /^anneald train: unknown flag '--steps=3' \(give the value after a space: --steps 3\)/],
    [['preview', p, '--max-point', '3'], /^anneald preview: unknown flag '--max-point' \(did you mean '--max-points'\?\)/],
    [['check', p, '--hlep'], /^anneald check: unknown flag '--hlep' \(did you mean '--help'\?\)/],
    [['lr-find', p, '--jb'], /^anneald lr-find: unknown flag '--jb' \(did you mean '--job'\?\)/],
    [['generate', p, '--resume', 's', '--temprature', '1'], /^anneald generate: unknown flag '--temprature' \(did you mean '--temperature'\?\)/],
    [['train', p, '--frobnicate'], /^anneald train: unknown flag '--frobnicate'\n\(see anneald train --help\)\n$/],
    [['train', p, 'extra'], /^anneald train: unexpected argument 'extra'\n/],
    [['preview', p, 'extra'], /^anneald preview: unexpected argument 'extra'\n/],
    [['generate', p, 'extra'], /^anneald generate: unexpected argument 'extra'\n/],
    [['check', '-x'], /^anneald check: unexpected argument '-x'\n/],
    // a mistyped command is not taken for a daemon argument
    [['trian', p], /^anneald: unknown command 'trian' \(did you mean 'train'\?\); the commands are check, preview, train, lr-find, generate and rank/],
    [['frobnicate'], /^anneald: unknown command 'frobnicate'; the commands are/],
  ]) {
    const r = run(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re, args.join(' '));
    assert.equal(r.out, '');
  }
});

test('an LR finder sweep of a gpt job is refused naming lr_finder, by check, train and lr-find', () => {
  const bad = write('gpt-finder.json', {...gptJob(), lr_finder: {stop_factor: 4}});
  for (const cmd of ['check', 'train']) {
    const r = run([cmd, bad]);
    assert.notEqual(r.code, 0, `${cmd} accepted it`);
    assert.match(r.err, /lr_finder: the LR finder's sweep runs linear and mlp models/);
  }
  const lf = run(['lr-find', write('gpt-plain.json', gptJob())]);
  assert.notEqual(lf.code, 0, 'lr-find of a gpt job ran');
  assert.match(lf.err, /lr_finder/);
  // the same spec without the finder is a job
  assert.equal(run(['check', write('gpt-ok.json', gptJob())]).code, 0);
});
