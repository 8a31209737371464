// `make install` under a PREFIX: the binary, the unit (in PREFIX unless UNITDIR is given, its
// Documentation= pointing at files that are installed), the docs and the man page; and
// `make run` installs only what running needs.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join, resolve} from 'node:path';
import {BIN} from './lib.mjs';

const bin = resolve(BIN);

test('make install PREFIX=… puts the unit, docs and man page under PREFIX', () => {
  const dest = mkdtempSync(join(tmpdir(), 'anneald-prefix-'));
  const make = (target) => spawnSync('make', ['-s', target, `INSTALL_BIN=${bin}`, 'PREFIX=/home/u/opt',
    `DESTDIR=${dest}`], {encoding: 'utf8'});
  let r = make('install');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const root = join(dest, 'home/u/opt');
  const unitPath = join(root, 'lib/systemd/system/anneald.service');
  assert.ok(existsSync(unitPath), 'the unit is under PREFIX');
  assert.equal(existsSync(join(dest, 'lib/systemd/system/anneald.service')), false);
  const unit = readFileSync(unitPath, 'utf8');
  assert.match(unit, /^ExecStart=\/home\/u\/opt\/bin\/anneald /m);
  const doc = /^Documentation=(.*)$/m.exec(unit)[1].split(' ');
  assert.ok(doc.includes('man:anneald(1)'));
  const files = doc.filter((x) => x.startsWith('file://')).map((x) => x.slice(7));
  assert.ok(files.length >= 1);
  for (const f of files) assert.ok(existsSync(join(dest, f)), `${f} is installed`);
  for (const f of ['README.md', 'BENCHMARKS.md', 'docs/API.md', 'docs/JOBSPEC.md'])
    assert.ok(readFileSync(join(root, 'share/doc/anneald', f), 'utf8').length > 1000, f);
  // every local link of the installed README leads to an installed file
  const readme = readFileSync(join(root, 'share/doc/anneald/README.md'), 'utf8');
  const links = [...readme.matchAll(/\]\(([^)#:]+)(#[^)]*)?\)/g)].map((m) => m[1]);
  assert.ok(links.length >= 5, links.join(' '));
  for (const l of links) assert.ok(existsSync(join(root, 'share/doc/anneald', l)), `README links ${l}`);
  // The rank program of multi-rank jobs goes next to the daemon when this tree built it, and
  // the installed `anneald rank` finds it there.
  const rankBuilt = existsSync(join(dirname(bin), 'anneald-rank'));
  assert.equal(existsSync(join(root, 'bin/anneald-rank')), rankBuilt);
  if (rankBuilt) {
    const rr = spawnSync(join(root, 'bin/anneald'), ['rank'], {encoding: 'utf8'});
    assert.doesNotMatch(rr.stderr, /is not next to/, 'anneald rank finds the installed rank program');
  }
  const man = readFileSync(join(root, 'share/man/man1/anneald.1'), 'utf8');
  assert.match(man, /^\.TH ANNEALD 1/m);
  for (const w of ['check', 'preview', 'train', '\\-\\-every', '\\-\\-token\\-file']) assert.ok(man.includes(w), w);
  r = make('uninstall');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  for (const p of [unitPath, join(root, 'bin/anneald'), join(root, 'bin/anneald-rank'),
                   join(root, 'share/man/man1/anneald.1'),
                   join(root, 'share/doc/anneald/docs/API.md'),
                   join(root, 'share/doc/anneald')]) assert.equal(existsSync(p), false, p);
  rmSync(dest, {recursive: true, force: true});
});

test('make run installs what running needs; make test adds the test tools', () => {
  const dry = (target) => spawnSync('make', ['-n', target], {encoding: 'utf8'}).stdout;
  const run = dry('deps-run');
  for (const p of ['libuv1-dev', 'libmicrohttpd-dev', 'libdnnl-dev']) assert.ok(run.includes(p), p);
  for (const p of ['chromium', 'wrk', 'clang', 'libcmocka-dev']) assert.ok(!run.includes(p), `run needs no ${p}`);
  const all = dry('deps');
  for (const p of ['chromium', 'wrk', 'clang', 'libcmocka-dev', 'libuv1-dev']) assert.ok(all.includes(p), p);
  const mk = readFileSync('Makefile', 'utf8');
  assert.match(mk, /^run: deps-run$/m);
  // the README lists both sets
  const readme = readFileSync('README.md', 'utf8');
  for (const p of ['libuv1-dev', 'libcmocka-dev', 'chromium', 'wrk', 'clang', 'libclang-rt-14-dev', 'libdnnl-dev'])
    assert.ok(readme.includes(p), `README names ${p}`);
});
