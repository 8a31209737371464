// Space comes back: deleting a job with a lot of metrics answers at once, SIGTERM right after
// it exits 0 within 5 s (shutdown does no housekeeping), and after the restart the freed pages
// go back to the file system in slices, off the loop, until the file is within 10 % of the
// data that remains. /healthz and /metrics report the sizes.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {api, removeDir, startDaemon, tmpDir, tutorialJob, waitFor, waitJob, SLOW} from './lib.mjs';

const STEPS = 3000000 / SLOW; // ~26 bytes a step of metrics: ~80 MB (16 MB under sanitizers)

test('a deleted job\'s pages come back after a fast SIGTERM and a restart', async () => {
  const dir = tmpDir();
  try {
    let d = await startDaemon({dir});
    const keep = await api(d.url, 'POST', '/v1/jobs', tutorialJob({name: 'keep', steps: 2000}));
    const big = await api(d.url, 'POST', '/v1/jobs', tutorialJob({name: 'big', steps: STEPS,
                                                                  checkpoint: {every_steps: 1000000, keep_last: 1}}));
    assert.equal(big.status, 201, big.text);
    await waitJob(d.url, keep.json.id, (j) => j.state === 'completed');
    await waitJob(d.url, big.json.id, (j) => j.state === 'completed', 240000);
    const full = await waitFor(async () => {
      const h = (await api(d.url, 'GET', '/healthz')).json;
      return h.store && h.store.bytes > STEPS * 15 ? h.store : null;
    }, {what: 'the store sizes in /healthz'});
    assert.ok(full.wal_bytes >= 0 && full.free_bytes >= 0);

    // while the daemon runs, a delete's pages come back by themselves, in slices
    const del1 = await api(d.url, 'DELETE', `/v1/jobs/${big.json.id}`);
    assert.equal(del1.status, 204, del1.text);
    const live = await waitFor(async () => {
      const h = (await api(d.url, 'GET', '/healthz')).json;
      // the sizes are read every second by the housekeeping thread: wait for a reading
      // after the delete that shows the pages given back
      return h.store.bytes < full.bytes / 4 &&
             h.store.free_bytes <= 0.1 * (h.store.bytes - h.store.free_bytes) ? h.store : null;
    }, {timeoutMs: 60000, intervalMs: 250, what: 'the deleted job\'s pages to come back'});
    assert.ok(live.bytes < full.bytes / 4, `store ${live.bytes} bytes, was ${full.bytes}`);
    assert.ok(fs.statSync(d.db).size < full.bytes / 4);

    // a second one, deleted and followed at once by SIGTERM
    const big2 = await api(d.url, 'POST', '/v1/jobs', tutorialJob({name: 'big2', steps: STEPS,
                                                                   checkpoint: {every_steps: 1000000, keep_last: 1}}));
    await waitJob(d.url, big2.json.id, (j) => j.state === 'completed', 240000);
    const del = await api(d.url, 'DELETE', `/v1/jobs/${big2.json.id}`);
    assert.equal(del.status, 204, del.text);
    const t0 = Date.now();
    d.proc.kill('SIGTERM');
    const ex = await d.exited;
    const took = Date.now() - t0;
    await d.stop();
    assert.equal(ex.code, 0, d.stderr().slice(-2000));
    assert.ok(took < 5000 * SLOW, `SIGTERM took ${took} ms`);

    // the restart gives the pages back in slices; the job kept is whole
    d = await startDaemon({dir});
    const back = await waitFor(async () => {
      const h = (await api(d.url, 'GET', '/healthz')).json;
      const onDisk = fs.statSync(d.db).size;
      return h.store && h.store.free_bytes <= 0.1 * (h.store.bytes - h.store.free_bytes) &&
             onDisk <= 1.1 * (h.store.bytes - h.store.free_bytes) + (1 << 20) ? {h: h.store, onDisk} : null;
    }, {timeoutMs: 60000, intervalMs: 250, what: 'the freed pages to come back'});
    assert.ok(back.onDisk < full.bytes / 4, `file ${back.onDisk} bytes, was ${full.bytes}`);
    const m = await api(d.url, 'GET', '/metrics');
    assert.match(m.text, /^anneald_store_free_bytes \d+$/m);
    assert.match(m.text, /^anneald_store_wal_bytes \d+$/m);
    const slices = Number(/^anneald_store_vacuum_slices_total (\d+)$/m.exec(m.text)[1]);
    assert.ok(slices >= 1, `${slices} slices`);
    const kept = await api(d.url, 'GET', `/v1/jobs/${keep.json.id}/metrics?from=1&to=2000`);
    assert.equal(kept.json.step.length, 2000);
    const ex2 = await d.stop();
    assert.equal(ex2.code, 0);
  } finally {
    removeDir(dir);
  }
});
