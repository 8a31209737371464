// End-to-end checks of edge cases of the HTTP layer found in review: inputs the model cannot
// represent, transitions asked for at the same moment, and the answers API.md fixes (DELETE's
// empty 204, the 409s, paging's total).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, heavyJob, tutorialJob, waitJob, withDaemon } from './lib.mjs';

test('predict refuses numbers beyond float range instead of answering null', async () => {
  await withDaemon({}, async (d) => {
    const job = (await api(d.url, 'POST', '/v1/jobs', tutorialJob({ steps: 20 }))).json;
    await waitJob(d.url, job.id, (j) => j.state === 'completed');
    const row = (x) => [x, 1, 1, 1, 1, 1, 1, 1, 1, 1];
    const ok = await api(d.url, 'POST', `/v1/jobs/${job.id}/predict`, { inputs: [row(1), row(3e38)] });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.outputs.length, 2);
    for (const big of [1e39, -1e39, 1.7976931348623157e308]) {
      const r = await api(d.url, 'POST', `/v1/jobs/${job.id}/predict`, { inputs: [row(1), row(big)] });
      assert.equal(r.status, 400, `${big}: ${r.text}`);
      assert.equal(r.json.error.field, 'inputs[1][0]');
      assert.match(r.json.error.message, /float/);
    }
  });
});

test('pause and cancel at the same moment: the cancel wins and says so', async () => {
  await withDaemon({}, async (d) => {
    for (let round = 0; round < 3; round++) {
      const job = (await api(d.url, 'POST', '/v1/jobs', heavyJob())).json;
      await waitJob(d.url, job.id, (j) => j.state === 'running' && j.step > 10);
      const [p, c] = await Promise.all([
        api(d.url, 'POST', `/v1/jobs/${job.id}/pause`),
        api(d.url, 'POST', `/v1/jobs/${job.id}/cancel`),
      ]);
      // The pause may see the job paused or already cancelled (or find it cancelled: 409).
      assert.ok([200, 409].includes(p.status), p.text);
      assert.equal(c.status, 200, c.text);
      assert.equal(c.json.state, 'cancelled', `round ${round}: the cancel answered ${c.text.slice(0, 200)}`);
      const after = await api(d.url, 'GET', `/v1/jobs/${job.id}`);
      assert.equal(after.json.state, 'cancelled');
      // Finished now: it can be deleted at once, with an empty 204.
      const del = await api(d.url, 'DELETE', `/v1/jobs/${job.id}`);
      assert.equal(del.status, 204);
      assert.equal(del.text, '');
    }
    const list = await api(d.url, 'GET', '/v1/jobs?limit=1');
    assert.equal(list.json.total, 0);
    assert.deepEqual(list.json.jobs, []);
  });
});

test('a job that completed can be deleted the moment it is seen completed', async () => {
  await withDaemon({ args: ['--workers', '2'] }, async (d) => {
    for (let i = 0; i < 5; i++) {
      const job = (await api(d.url, 'POST', '/v1/jobs', tutorialJob({ steps: 50 + i }))).json;
      await waitJob(d.url, job.id, (j) => j.state === 'completed');
      const del = await api(d.url, 'DELETE', `/v1/jobs/${job.id}`);
      assert.equal(del.status, 204, del.text);
    }
  });
});

test('DELETE right after a job is seen completed deletes it, every time (no 409 while its worker lets go)', async () => {
  await withDaemon({ args: ['--workers', '2'] }, async (d) => {
    for (let i = 0; i < 40; i++) {
      const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({ steps: 300000, name: `quick-${i}` }));
      assert.equal(r.status, 201, r.text);
      await waitJob(d.url, r.json.id, (j) => j.state === 'completed');
      const del = await api(d.url, 'DELETE', `/v1/jobs/${r.json.id}`);
      assert.equal(del.status, 204, `delete ${i}: ${del.status} ${del.text}`);
      assert.equal((await api(d.url, 'GET', `/v1/jobs/${r.json.id}`)).status, 404);
    }
  });
});
