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
