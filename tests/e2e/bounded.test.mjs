// Bounded and exact: numbers keep their bits through the store, data-set deletes leave
// finished jobs usable, jobs are never silently lost, /metrics counts what was committed.
import test from 'node:test';
import assert from 'node:assert/strict';
import {api, waitJob, withDaemon, tutorialJob} from './lib.mjs';

const ODD = 0.30000000000000004; // cJSON's own printer writes it as 0.3

test('the stored spec keeps every number bit for bit and the worker trains with it', async () => {
  await withDaemon({}, async (d) => {
    const spec = tutorialJob({
      steps: 20,
      ds_config: {
        train_batch_size: 8,
        optimizer: {type: 'Adam', params: {lr: ODD}},
        scheduler: {type: 'WarmupLR', params: {warmup_min_lr: ODD, warmup_max_lr: ODD, warmup_num_steps: 10}},
      },
    });
    const r = await api(d.url, 'POST', '/v1/jobs', spec);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.spec.ds_config.optimizer.params.lr, ODD);
    const job = await waitJob(d.url, r.json.id, (j) => j.state === 'completed');
    assert.equal(job.spec.ds_config.optimizer.params.lr, ODD);
    assert.equal(job.spec.ds_config.scheduler.params.warmup_max_lr, ODD);
    assert.equal(job.spec.param_groups.length, 0);
    const m = await api(d.url, 'GET', `/v1/jobs/${r.json.id}/metrics?from=1&to=3`);
    assert.equal(m.status, 200, m.text);
    assert.deepEqual(m.json.lr[0], [ODD, ODD, ODD]);
  });
});

test('a value that would fail later is refused at submit, naming the field', async () => {
  await withDaemon({}, async (d) => {
    const huge = 1.7976931348623157e308;
    const cases = [
      [{type: 'Adam', params: {lr: huge}}, 'ds_config.optimizer.params.lr'],
      [{type: 'SGD', params: {lr: 1e39}}, 'ds_config.optimizer.params.lr'],
    ];
    for (const [optimizer, field] of cases) {
      const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({
        ds_config: {train_batch_size: 8, optimizer},
      }));
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error.field, field);
      assert.match(r.json.error.message, /lr must be at most/);
    }
    const g = await api(d.url, 'POST', '/v1/jobs', tutorialJob({
      model: {type: 'mlp', inputs: 10, hidden: [4], outputs: 1},
      param_groups: [{match: ['*.bias'], lr: huge}],
    }));
    assert.equal(g.status, 400, g.text);
    assert.equal(g.json.error.field, 'param_groups[0].lr');
    const list = await api(d.url, 'GET', '/v1/jobs');
    assert.equal(list.json.jobs.length, 0, 'nothing stored');
    // The largest accepted lr reads back as itself.
    const ok = await api(d.url, 'POST', '/v1/jobs', tutorialJob({
      steps: 2,
      ds_config: {train_batch_size: 8, optimizer: {type: 'SGD', params: {lr: 3.4028234663852886e38}}},
    }));
    assert.equal(ok.status, 201, ok.text);
    assert.equal(ok.json.spec.ds_config.optimizer.params.lr, 3.4028234663852886e38);
  });
});
