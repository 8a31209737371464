// What the daemon takes from rank 0 of a job of several ranks (jobs/rankrun.c): only what the
// rank program of its own build sends in order. A stand-in rank 0 (fake_rank0.mjs, run as the
// daemon's --mpirun) sends another build's start, rows out of order or beyond the run, an end
// that claims completion early and a checkpoint that is no training state: each fails the job
// with what happened, and nothing it sent is kept as the job's.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {api, startDaemon, waitJob, tmpDir, removeDir, writeFile, BIN} from './lib.mjs';
import {job, submit} from './mpilib.mjs';

const RANK = path.join(path.dirname(BIN), 'anneald-rank');
const skip = !fs.existsSync(RANK) && 'anneald-rank missing (the daemon refuses world_size 2 without it)';

const CASES = [
  ['old-build', /the rank program is of another build \(its protocol version 1, this daemon's 2\): install anneald-rank from the daemon's build/],
  ['other-build', /its protocol version 7, this daemon's 2/],
  ['rows-again', /rank 0 sent the metric row of step 2 after step 3 \(of 10\)/],
  ['rows-beyond', /rank 0 sent the metric row of step 11 after step 10 \(of 10\)/],
  ['completed-early', /rank 0 reported the job completed at step 1 of 10/],
  ['garbage-checkpoint', /rank 0 sent a checkpoint at step 2 that is not a training state of it/],
  ['fail-text', /model: bad\?byte\? here \uFFFD \u2713$/],
];

test('a rank 0 that sends what the rank program of this build never would fails its job, saying what it sent', {skip}, async () => {
  const dir = tmpDir('anneald-wire-');
  try {
    writeFile(dir, 'mpirun', `#!/bin/sh\nexec "${process.execPath}" "${path.resolve('tests/e2e/fake_rank0.mjs')}" "$@"\n`);
    fs.chmodSync(path.join(dir, 'mpirun'), 0o755);
    for (const [scenario, re] of CASES) {
      const d = await startDaemon({args: ['--mpirun', path.join(dir, 'mpirun')], env: {FAKE_RANK0: scenario}});
      try {
        const id = await submit(d.url, job(2, {steps: 10, max_restarts: 0}));
        const j = await waitJob(d.url, id, (x) => x.state === 'failed' || x.state === 'completed', 30000);
        assert.equal(j.state, 'failed', `${scenario}: ${JSON.stringify(j)}`);
        assert.match(j.error, re, scenario);
        const cks = (await api(d.url, 'GET', `/v1/jobs/${id}/checkpoints`)).json.checkpoints;
        assert.deepEqual(cks.filter((c) => c.step > 0), [], `${scenario}: a checkpoint was kept`);
      } finally {
        await d.stop();
      }
    }
  } finally {
    removeDir(dir);
  }
});
