// End-to-end tests of what a new user meets in the first hour: values that are absent read
// null, data references are checked at submit, every error of a spec comes in one answer,
// predict takes raw inputs, and the daemon's JSON answers end with a newline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, heavyJob, readEvents, waitJob, withDaemon } from './lib.mjs';

test('a running job without validation has val_loss/val_acc null (job object and first event)', async () => {
  await withDaemon({}, async (d) => {
    const { status, json } = await api(d.url, 'POST', '/v1/jobs', heavyJob());
    assert.equal(status, 201, JSON.stringify(json));
    const job = await waitJob(d.url, json.id, (j) => j.state === 'running' && j.step > 0);
    assert.equal(job.val_loss, null);
    assert.equal(job.val_acc, null);
    const evs = await readEvents(d.url, `/v1/jobs/${json.id}/events`,
      { until: (e) => e.some((x) => x.event === 'progress') });
    const p = evs.find((x) => x.event === 'progress');
    assert.ok(p, 'a progress event');
    assert.ok(!('val_loss' in p.data) || p.data.val_loss === null, JSON.stringify(p.data));
    assert.ok(!('val_acc' in p.data) || p.data.val_acc === null, JSON.stringify(p.data));
    await api(d.url, 'POST', `/v1/jobs/${json.id}/cancel`);
  });
});

test('JSON answers end with a newline, errors included', async () => {
  await withDaemon({}, async (d) => {
    for (const [m, p, body] of [['GET', '/healthz'], ['GET', '/v1/jobs'], ['GET', '/v1/jobs/j_999999'],
                                ['POST', '/v1/jobs', '{"model":']]) {
      const r = await api(d.url, m, p, body, body ? {'Content-Type': 'application/json'} : {});
      assert.ok(r.text.endsWith('}\n'), `${m} ${p}: ${JSON.stringify(r.text.slice(-20))}`);
      assert.equal(r.text.indexOf('\n'), r.text.length - 1, 'one line');
    }
  });
});
