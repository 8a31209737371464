// The systemd unit: it verifies cleanly and its hardening stays above a threshold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const bin = resolve(process.env.ANNEALD_BIN || 'build/anneald');

// The unit names the installed binary; point it at the one just built so verify can stat it.
function unitCopy() {
  const dir = mkdtempSync(join(tmpdir(), 'anneald-unit-'));
  const text = readFileSync('systemd/anneald.service', 'utf8')
    .replace(/^ExecStart=\S+/m, `ExecStart=${bin}`);
  const path = join(dir, 'anneald.service');
  writeFileSync(path, text);
  return path;
}

test('systemd-analyze verify prints nothing', () => {
  const r = spawnSync('systemd-analyze', ['verify', unitCopy()], { encoding: 'utf8' });
  assert.equal(r.stdout + r.stderr, '');
  assert.equal(r.status, 0);
});

test('systemd-analyze security rates the unit at 2.0 or better', () => {
  const r = spawnSync('systemd-analyze',
    ['security', '--offline=true', '--threshold=20', '--no-pager', unitCopy()],
    { encoding: 'utf8' });
  const m = /Overall exposure level for \S+: ([0-9.]+)/.exec(r.stdout);
  assert.ok(m, r.stdout + r.stderr);
  assert.ok(Number(m[1]) <= 2.0, `exposure ${m[1]}`);
  assert.equal(r.status, 0);
});

test('the unit runs the service as a notify daemon with a watchdog in its state directory', () => {
  const text = readFileSync('systemd/anneald.service', 'utf8');
  for (const line of ['Type=notify', 'DynamicUser=yes', 'StateDirectory=anneald',
    'ProtectSystem=strict', 'NoNewPrivileges=yes']) {
    assert.match(text, new RegExp(`^${line}$`, 'm'), line);
  }
  assert.match(text, /^WatchdogSec=\d+/m);
});

test('make install / uninstall honour PREFIX and DESTDIR and point the unit at the binary', () => {
  const dest = mkdtempSync(join(tmpdir(), 'anneald-install-'));
  // INSTALL_BIN names the binary under test by its absolute path, which no rule builds: make
  // installs it as it is and never rebuilds it here (a sanitizer build would be relinked
  // without its flags).
  const make = (target) => spawnSync('make', ['-s', target, `INSTALL_BIN=${bin}`, 'PREFIX=/opt/anneald',
    `DESTDIR=${dest}`, 'UNITDIR=/etc/systemd/system'], { encoding: 'utf8' });
  let r = make('install');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const installed = join(dest, 'opt/anneald/bin/anneald');
  assert.ok(statSync(installed).mode & 0o100, 'the binary is executable');
  const unit = readFileSync(join(dest, 'etc/systemd/system/anneald.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/opt\/anneald\/bin\/anneald /m);
  r = make('uninstall');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal(existsSync(installed), false);
  assert.equal(existsSync(join(dest, 'etc/systemd/system/anneald.service')), false);
  rmSync(dest, { recursive: true, force: true });
});
