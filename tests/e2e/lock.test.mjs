// One store, one daemon (DESIGN.md): a second anneald on the same store exits at once, non-zero,
// naming the first one's pid, and leaves the first one's jobs alone. The lock goes with the
// process, so after a clean stop or a kill -9 the next daemon starts normally. A port in use
// fails the start before the store is touched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, SLOW, api, heavyJob, removeDir, startDaemon, tmpDir, waitJob } from './lib.mjs';

// Runs a second daemon on `db` and resolves to {code, stderr, ms}.
function second(db) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const p = spawn(BIN, ['--listen', '127.0.0.1:0', '--db', db], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    let out = '';
    p.stderr.on('data', (c) => { err += c; });
    p.stdout.on('data', (c) => { out += c; });
    const timer = setTimeout(() => { p.kill('SIGKILL'); }, 10000 * SLOW);
    p.on('error', reject);
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr: err, stdout: out, ms: Date.now() - t0 });
    });
  });
}

test('a daemon reaching the same store through a hard or symbolic link is refused too', async () => {
  const dir = tmpDir();
  try {
    const a = await startDaemon({ dir, args: ['--workers', '1'] });
    try {
      const job = (await api(a.url, 'POST', '/v1/jobs', heavyJob())).json;
      await waitJob(a.url, job.id, (j) => j.state === 'running' && j.step > 0);
      const hard = path.join(dir, 'hard.db'), soft = path.join(dir, 'soft.db');
      fs.linkSync(a.db, hard);
      fs.symlinkSync(a.db, soft);
      for (const db of [hard, soft]) {
        const b = await second(db);
        assert.notEqual(b.code, 0, `${db}: the second daemon exited ${b.code}: ${b.stderr}`);
        assert.equal(b.signal, null, 'it exited by itself, not by the test timer');
        assert.match(b.stderr, /in use by another anneald, which opened it under another name/, b.stderr);
        assert.doesNotMatch(b.stdout, /listening/);
      }
      // the first daemon's job was never re-queued by another
      const j = (await api(a.url, 'GET', `/v1/jobs/${job.id}`)).json;
      assert.equal(j.state, 'running');
      assert.equal(j.restarts || 0, 0);
      await api(a.url, 'POST', `/v1/jobs/${job.id}/cancel`);
    } finally {
      await a.stop();
    }
    // the holder gone, the link opens as the store it is
    // (after a clean stop: no WAL left behind) the link opens as the store it is, with a
    // warning that its WAL is found by name
    const c = await startDaemon({ dir, args: ['--db', path.join(dir, 'hard.db')] });
    assert.equal((await api(c.url, 'GET', '/v1/jobs')).json.jobs.length, 1);
    assert.match(c.stderr(), /has 2 names \(hard links\): open it by this one only/);
    await c.stop();
  } finally {
    removeDir(dir);
  }
});

test('a second daemon on the same store refuses to start and names the holder', async () => {
  const dir = tmpDir();
  try {
    const a = await startDaemon({ dir, args: ['--workers', '1'] });
    try {
      const job = (await api(a.url, 'POST', '/v1/jobs', heavyJob())).json;
      const before = await waitJob(a.url, job.id, (j) => j.state === 'running' && j.step > 0);
      const b = await second(a.db);
      assert.notEqual(b.code, 0, `the second daemon exited ${b.code}: ${b.stderr}`);
      assert.equal(b.signal, null, 'it exited by itself, not by the test timer');
      assert.match(b.stderr, new RegExp(`pid ${a.proc.pid}\\b`), b.stderr);
      assert.match(b.stderr, /in use by another anneald/);
      assert.doesNotMatch(b.stdout, /listening/);
      // The first daemon's job kept running, was never re-queued, and kept advancing.
      const after = await waitJob(a.url, job.id, (j) => j.step > before.step);
      assert.equal(after.state, 'running');
      const events = (await api(a.url, 'GET', `/v1/jobs/${job.id}`)).json;
      assert.equal(events.state, 'running');
      await api(a.url, 'POST', `/v1/jobs/${job.id}/pause`);
      await waitJob(a.url, job.id, (j) => j.state === 'paused');
    } finally {
      await a.stop();
    }
    // Stopped cleanly: the next daemon takes the store.
    const c = await startDaemon({ dir });
    assert.equal((await api(c.url, 'GET', '/v1/jobs')).json.jobs.length, 1);
    await c.kill9();
    // Killed: the kernel dropped the lock with the process.
    const e = await startDaemon({ dir });
    assert.equal((await api(e.url, 'GET', '/healthz')).status, 200);
    await e.stop();
  } finally {
    removeDir(dir);
  }
});

test('a store whose lock file cannot be made is a clear error', async () => {
  const dir = tmpDir();
  try {
    const b = await second(path.join(dir, 'missing-dir', 'x.db'));
    assert.notEqual(b.code, 0);
    assert.match(b.stderr, /lock file .*missing-dir/);
  } finally {
    removeDir(dir);
  }
});

test('a port in use fails the start before anything is created: no store, no lock file', async () => {
  const d = await startDaemon({});
  const dir = tmpDir();
  try {
    const port = new URL(d.url).port;
    const db = path.join(dir, 'fresh.db');
    const r = await new Promise((resolve, reject) => {
      const p = spawn(BIN, ['--listen', `127.0.0.1:${port}`, '--db', db], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      p.stderr.on('data', (c) => { err += c; });
      p.on('error', reject);
      p.on('exit', (code) => resolve({ code, err }));
    });
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: Address already in use`));
    assert.deepEqual(fs.readdirSync(dir), [], 'nothing left behind');
  } finally {
    await d.stop();
    removeDir(dir);
  }
});
