// The store over a job's life: compact metric rows, space given back after a delete, and a
// SIGTERM that never waits on housekeeping. Sizes come from GET /healthz's "store" object.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, waitFor, waitJob, tutorialJob, withDaemon, SLOW } from './lib.mjs';

const STEPS = 300000;

test('a tutorial job stores each step in under 16 bytes, and DELETE gives the space back', async () => {
  await withDaemon({args: ['--workers', '1']}, async (d) => {
    const h0 = (await api(d.url, 'GET', '/healthz')).json;
    for (const k of ['bytes', 'free_pages', 'free_bytes', 'wal_bytes']) {
      assert.equal(typeof h0.store[k], 'number', `healthz store.${k}: ${JSON.stringify(h0)}`);
    }
    const job = (await api(d.url, 'POST', '/v1/jobs', tutorialJob({
      steps: STEPS, checkpoint: {every_steps: 100000, keep_last: 1}}))).json;
    await waitJob(d.url, job.id, (j) => j.state === 'completed', 120000 * SLOW);
    // Passive checkpoints move the WAL into the file within a few seconds.
    let grown = 0;
    await waitFor(async () => {
      const h = (await api(d.url, 'GET', '/healthz')).json;
      grown = h.store.bytes - h0.store.bytes;
      return grown > STEPS * 10;
    }, {timeoutMs: 20000 * SLOW, what: 'the metrics in the main file'});
    // Old format: about 26 bytes a step; compressed blocks with SQLite's pages: about 15.
    assert.ok(grown / STEPS < 16, `store grew ${grown} bytes for ${STEPS} steps (${(grown / STEPS).toFixed(2)} B/step)`);
    // Every step is there, with the warm-up's first lr.
    const m = (await api(d.url, 'GET', `/v1/jobs/${job.id}/metrics?from=1&to=3`)).json;
    assert.deepEqual(m.step, [1, 2, 3]);
    assert.equal(m.lr[0][0], 0.001);
    // Downsampled, the chart still starts at step 1 with the warm-up's 0.001 and ends at the end.
    const ds = (await api(d.url, 'GET', `/v1/jobs/${job.id}/metrics?max_points=2000`)).json;
    assert.ok(ds.step.length <= 2000 && ds.step.length > 1000, `${ds.step.length} points`);
    assert.equal(ds.step[0], 1);
    assert.equal(ds.lr[0][0], 0.001);
    assert.equal(ds.step.at(-1), STEPS);
    assert.ok(ds.lr[0].slice(0, 200).some((x) => x > 0.0099), 'the warm-up reaches 0.01 within the first points');
    const whole = (await api(d.url, 'GET', `/v1/jobs/${job.id}/metrics?format=csv&from=${STEPS - 9}`)).text;
    assert.equal(whole.trim().split('\n').length, 11);

    const p = await api(d.url, 'GET', '/metrics');
    assert.match(p.text, /^anneald_store_free_pages \d+$/m);
    assert.match(p.text, /^anneald_store_wal_bytes \d+$/m);

    assert.equal((await api(d.url, 'DELETE', `/v1/jobs/${job.id}`)).status, 204);
    // The housekeeping thread hands the pages back in slices, without a restart.
    await waitFor(async () => {
      const h = (await api(d.url, 'GET', '/healthz')).json;
      return h.store.free_pages === 0 && h.store.bytes < h0.store.bytes + 262144;
    }, {timeoutMs: 30000 * SLOW, what: 'the deleted job\'s pages given back'});
    const t0 = Date.now();
    const ex = await d.stop();
    assert.equal(ex.code, 0);
    assert.ok(Date.now() - t0 < 5000 * SLOW, `SIGTERM took ${Date.now() - t0} ms`);
  });
});
