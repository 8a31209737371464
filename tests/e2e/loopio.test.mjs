// The event loop never waits on the disk (DESIGN.md): with strace attached to the loop's
// thread (the daemon's main thread), a round of requests of every kind makes no file system
// call there — no statfs, no open, no read or write at an offset, no sync. The requests'
// store work runs on the request threads; the loop only moves bytes between sockets.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {spawn, spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {api, sleep, tmpDir, removeDir, tutorialJob, waitJob, withDaemon, SLOW} from './lib.mjs';

const DISK = ['statfs', 'fstatfs', 'openat', 'open', 'pread64', 'pwrite64', 'fsync', 'fdatasync',
              'newfstatat', 'stat', 'unlink', 'rename', 'ftruncate'];

test('the loop thread makes no file system call while it serves requests', async () => {
  const have = spawnSync('strace', ['-V'], {encoding: 'utf8'});
  assert.equal(have.status, 0, 'strace is needed (make deps installs it)');
  const dir = tmpDir('anneald-loopio-');
  try {
    await withDaemon({args: ['--min-free-disk', '1M', '--workers', '1']}, async (d) => {
      // a job with metrics and checkpoints to read, before the trace starts
      const job = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 200}));
      assert.equal(job.status, 201, job.text);
      await waitJob(d.url, job.json.id, (j) => j.state === 'completed');
      const out = path.join(dir, 'trace');
      // the loop's own calls (epoll, accept, socket reads) show that the trace is attached
      const st = spawn('strace', ['-qq', '-p', String(d.proc.pid), '-o', out,
                                  '-e', `trace=${[...DISK, 'epoll_wait', 'epoll_pwait', 'accept4'].join(',')}`],
                       {stdio: 'ignore'});
      await sleep(500 * SLOW);
      const id = job.json.id;
      const gets = ['/healthz', '/metrics', '/v1/jobs', `/v1/jobs/${id}`, `/v1/jobs/${id}/metrics?max_points=50`,
                    `/v1/jobs/${id}/metrics?format=csv`, `/v1/jobs/${id}/checkpoints`, `/v1/jobs/${id}/weights`,
                    `/v1/jobs/${id}/lr_finder`, '/v1/datasets', '/v1/sweeps', '/', '/app.js', '/v1/openapi.json',
                    '/v1/jobs/j_999999'];
      for (const p of gets) {
        const r = await api(d.url, 'GET', p);
        assert.ok(r.status === 200 || (p.endsWith('999999') && r.status === 404), `${p}: ${r.status}`);
      }
      const up = await api(d.url, 'POST', '/v1/datasets?name=t', 'a,b\n1,2\n3,4\n', {'Content-Type': 'text/csv'});
      assert.equal(up.status, 201, up.text);
      const next = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 50}));
      assert.equal(next.status, 201, next.text);
      await waitJob(d.url, next.json.id, (j) => j.state === 'completed');
      assert.equal((await api(d.url, 'DELETE', `/v1/jobs/${next.json.id}`)).status, 204);
      await sleep(300 * SLOW);
      st.kill('SIGINT');
      await new Promise((resolve) => st.on('exit', resolve));
      const lines = fs.readFileSync(out, 'utf8').split('\n').filter(Boolean);
      assert.ok(lines.some((l) => /^(epoll_p?wait|accept4)\(/.test(l)), `strace saw the loop: ${lines.slice(0, 5).join(' | ')}`);
      const disk = lines.filter((l) => DISK.some((c) => l.startsWith(c + '(')));
      assert.deepEqual(disk, [], 'file system calls on the loop thread');
    });
  } finally {
    removeDir(dir);
  }
});
