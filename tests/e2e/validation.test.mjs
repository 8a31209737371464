// End-to-end tests of validation (JOBSPEC.md `validation`): the held-out loss and accuracy a job
// records every `every_steps` steps reach the metrics (JSON columns val_step/val_loss/val_acc and
// CSV columns val_loss/val_acc), the job object and SSE progress events; ReduceLROnPlateau cuts
// the lr on them; a kill -9 and restart leaves exactly one validation row per validation step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, heavyJob, readEvents, removeDir, startDaemon, tmpDir, waitJob, withDaemon,
} from './lib.mjs';

// A small classifier on the builtin iris set (4 features, 3 classes), validated every 10 steps.
function irisJob(over = {}) {
  return {
    name: 'iris-val', seed: 3,
    model: { type: 'mlp', inputs: 4, hidden: [8], outputs: 3 },
    loss: 'cross_entropy',
    data: { type: 'builtin', name: 'iris' },
    steps: 100,
    validation: { fraction: 0.2, every_steps: 10 },
    ds_config: { train_batch_size: 16, optimizer: { type: 'SGD', params: { lr: 0.1 } } },
    ...over,
  };
}

const range = (a, b, step) => Array.from({ length: Math.floor((b - a) / step) + 1 }, (_, i) => a + i * step);

const close = (a, b) => Math.abs(a - b) <= 1e-14 * Math.max(1, Math.abs(b));

// Parses the CSV export into its header and rows of cells.
function parseCsv(text) {
  const lines = text.trimEnd().split('\n');
  return { header: lines[0].split(','), rows: lines.slice(1).map((l) => l.split(',')) };
}

test('validation rows reach the metrics (JSON and CSV), the job object and the events', async () => {
  await withDaemon({}, async (d) => {
    const { status, json: created } = await api(d.url, 'POST', '/v1/jobs', irisJob());
    assert.equal(status, 201, JSON.stringify(created));
    assert.equal(created.val_loss, null);
    assert.equal(created.val_acc, null);
    const job = await waitJob(d.url, created.id, (j) => j.state === 'completed');
    const m = (await api(d.url, 'GET', `/v1/jobs/${created.id}/metrics`)).json;
    assert.equal(m.step.length, 100);
    assert.deepEqual(m.val_step, range(10, 100, 10));
    assert.equal(m.val_loss.length, 10);
    assert.equal(m.val_acc.length, 10);
    for (let i = 0; i < 10; i++) {
      assert.ok(Number.isFinite(m.val_loss[i]) && m.val_loss[i] > 0, `val_loss[${i}] = ${m.val_loss[i]}`);
      assert.ok(m.val_acc[i] >= 0 && m.val_acc[i] <= 1, `val_acc[${i}] = ${m.val_acc[i]}`);
    }
    // Training helps: the last validation beats the first.
    assert.ok(m.val_loss[9] < m.val_loss[0], `val_loss ${m.val_loss[0]} -> ${m.val_loss[9]}`);
    // The job object carries the latest validation.
    assert.equal(job.val_loss, m.val_loss[9]);
    assert.equal(job.val_acc, m.val_acc[9]);

    // from/to bound the validation rows too; max_points leaves them whole.
    const part = (await api(d.url, 'GET', `/v1/jobs/${created.id}/metrics?from=25&to=60`)).json;
    assert.deepEqual(part.val_step, [30, 40, 50, 60]);
    assert.deepEqual(part.val_loss, m.val_loss.slice(2, 6));
    assert.deepEqual(part.step, range(25, 60, 1));
    const few = (await api(d.url, 'GET', `/v1/jobs/${created.id}/metrics?max_points=10`)).json;
    assert.ok(few.step.length <= 10);
    assert.deepEqual(few.val_step, m.val_step);
    assert.deepEqual(few.val_acc, m.val_acc);

    // CSV: two more columns, filled on the validation steps only, equal to the JSON numbers.
    const csv = await api(d.url, 'GET', `/v1/jobs/${created.id}/metrics?format=csv`);
    assert.equal(csv.status, 200);
    const { header, rows } = parseCsv(csv.text);
    assert.deepEqual(header, ['step', 'loss', 'lr0', 'grad_norm', 'time', 'val_loss', 'val_acc']);
    assert.equal(rows.length, 100);
    for (const r of rows) {
      const step = Number(r[0]);
      const k = m.val_step.indexOf(step);
      if (k < 0) {
        assert.deepEqual(r.slice(5), ['', ''], `step ${step}`);
      } else {
        // cJSON prints 15 significant digits when they read back within an ulp or so; the CSV
        // prints the exact shortest form.
        assert.ok(close(Number(r[5]), m.val_loss[k]), `val_loss at step ${step}: ${r[5]} vs ${m.val_loss[k]}`);
        assert.ok(close(Number(r[6]), m.val_acc[k]), `val_acc at step ${step}: ${r[6]} vs ${m.val_acc[k]}`);
      }
    }

    // The events snapshot of a finished job has the latest validation in its progress.
    const ev = await readEvents(d.url, `/v1/jobs/${created.id}/events`,
      { until: (es) => es.some((e) => e.event === 'progress') });
    const p = ev.find((e) => e.event === 'progress');
    assert.ok(p, JSON.stringify(ev));
    assert.equal(p.data.val_loss, m.val_loss[9]);
    assert.equal(p.data.val_acc, m.val_acc[9]);

    // A job without validation: empty validation columns, null fields, the plain CSV header.
    const plain = (await api(d.url, 'POST', '/v1/jobs', irisJob({ validation: undefined, steps: 20 }))).json;
    const pj = await waitJob(d.url, plain.id, (j) => j.state === 'completed');
    assert.equal(pj.val_loss, null);
    assert.equal(pj.val_acc, null);
    const pm = (await api(d.url, 'GET', `/v1/jobs/${plain.id}/metrics`)).json;
    assert.equal(pm.step.length, 20);
    assert.deepEqual([pm.val_step, pm.val_loss, pm.val_acc], [[], [], []]);
    const pcsv = parseCsv((await api(d.url, 'GET', `/v1/jobs/${plain.id}/metrics?format=csv`)).text);
    assert.deepEqual(pcsv.header, ['step', 'loss', 'lr0', 'grad_norm', 'time']);
  });
});

test('live progress events of a validating job carry val_loss; regression has no accuracy', async () => {
  await withDaemon({}, async (d) => {
    const spec = heavyJob({ validation: { fraction: 0.1, every_steps: 50 } });
    const { json: created } = await api(d.url, 'POST', '/v1/jobs', spec);
    const ev = await readEvents(d.url, `/v1/jobs/${created.id}/events`,
      { until: (es) => es.some((e) => e.event === 'progress' && 'val_loss' in e.data), timeoutMs: 60000 });
    const p = ev.find((e) => e.event === 'progress' && 'val_loss' in e.data);
    assert.ok(p, `no progress event with val_loss in ${ev.length} events`);
    assert.ok(p.data.step >= 50, `step ${p.data.step}`);
    assert.ok(Number.isFinite(p.data.val_loss) && p.data.val_loss >= 0, JSON.stringify(p.data));
    assert.equal(p.data.val_acc, null);
    // Progress events before the first validation have no val_loss field at all.
    for (const e of ev) {
      if (e.event === 'progress' && e.data.step < 50) assert.ok(!('val_loss' in e.data), JSON.stringify(e.data));
    }
    const job = (await api(d.url, 'GET', `/v1/jobs/${created.id}`)).json;
    assert.ok(Number.isFinite(job.val_loss), JSON.stringify(job).slice(0, 400));
    assert.equal(job.val_acc, null);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${created.id}/cancel`)).status, 200);
  });
});

test('ReduceLROnPlateau cuts the lr after patience + 1 validations without improvement', async () => {
  // An absolute threshold of 100 makes every validation after the first "no improvement" (a
  // cross-entropy cannot fall by 100), so with patience 2 the lr halves after the validations
  // at steps 40 and 70: steps 1-40 train with 0.1, 41-70 with 0.05, 71-100 with 0.025.
  const spec = irisJob({
    name: 'plateau',
    ds_config: {
      train_batch_size: 16,
      optimizer: { type: 'SGD', params: { lr: 0.1 } },
      scheduler: { type: 'ReduceLROnPlateau',
                   params: { patience: 2, factor: 0.5, threshold: 100, threshold_mode: 'abs' } },
    },
  });
  await withDaemon({}, async (d) => {
    const { status, json: created } = await api(d.url, 'POST', '/v1/jobs', spec);
    assert.equal(status, 201, JSON.stringify(created));
    await waitJob(d.url, created.id, (j) => j.state === 'completed');
    const m = (await api(d.url, 'GET', `/v1/jobs/${created.id}/metrics`)).json;
    assert.deepEqual(m.val_step, range(10, 100, 10));
    const want = m.step.map((s) => (s <= 40 ? 0.1 : s <= 70 ? 0.05 : 0.025));
    assert.deepEqual(m.lr[0], want);
    // Without validation the same scheduler would never see a validation loss and never move:
    // the job is refused, naming the scheduler's type.
    const noval = await api(d.url, 'POST', '/v1/jobs', { ...spec, validation: undefined });
    assert.equal(noval.status, 400, JSON.stringify(noval.json));
    const fields = noval.json.errors.map((e) => e.field);
    assert.deepEqual(fields, ['ds_config.scheduler.type'], JSON.stringify(noval.json));
    assert.match(JSON.stringify(noval.json), /needs validation/);
  });
});

test('kill -9 mid-job: after the restart there is exactly one validation row per validation step', async () => {
  const spec = heavyJob({ steps: 3000, validation: { fraction: 0.1, every_steps: 100 },
                          checkpoint: { every_steps: 250, keep_last: 2 } });
  // The reference: the same job, never interrupted.
  const ref = await withDaemon({}, async (d) => {
    const { json: body } = await api(d.url, 'POST', '/v1/jobs', spec);
    await waitJob(d.url, body.id, (j) => j.state === 'completed', 120000);
    return (await api(d.url, 'GET', `/v1/jobs/${body.id}/metrics`)).json;
  });
  assert.deepEqual(ref.val_step, range(100, 3000, 100));
  const dir = tmpDir();
  try {
    let d = await startDaemon({ dir });
    const { json: body } = await api(d.url, 'POST', '/v1/jobs', spec);
    // Killed past a checkpoint and a validation that follows it, so the restart rewinds
    // validation rows the killed run had stored.
    await waitJob(d.url, body.id, (j) => j.state === 'running' && j.last_checkpoint_step >= 250 &&
                                         j.step >= j.last_checkpoint_step + 100);
    const before = (await api(d.url, 'GET', `/v1/jobs/${body.id}/metrics`)).json;
    await d.kill9();
    d = await startDaemon({ dir });
    const back = (await api(d.url, 'GET', `/v1/jobs/${body.id}`)).json;
    assert.ok(back.last_checkpoint_step < 3000, `checkpoint ${back.last_checkpoint_step}`);
    const job = await waitJob(d.url, body.id, (j) => j.state === 'completed', 120000);
    assert.equal(job.step, 3000);
    const m = (await api(d.url, 'GET', `/v1/jobs/${body.id}/metrics`)).json;
    assert.deepEqual(m.val_step, ref.val_step);
    assert.deepEqual(m.val_loss, ref.val_loss);
    assert.deepEqual(m.val_acc, ref.val_acc);
    assert.ok(before.val_step.length >= 1, 'the killed run had stored validation rows');
    assert.equal(job.val_loss, ref.val_loss[ref.val_loss.length - 1]);
    assert.equal((await d.stop()).code, 0);
  } finally {
    removeDir(dir);
  }
});
