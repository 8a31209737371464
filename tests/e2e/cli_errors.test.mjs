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
