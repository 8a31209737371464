// End-to-end tests of checkpoint retention: keep_best by a metric beside keep_last (checked
// against the rule from the job's recorded metrics), pins through the API, and the spec's
// errors. The race of retention with a resume that reads a checkpoint is in
// tests/unit/test_store_keep.c (two connections on two threads).
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {api, heavyJob, tutorialJob, waitFor, waitJob, withDaemon} from './lib.mjs';

const ONE = {args: ['--workers', '1']};

async function submit(url, spec) {
  const r = await api(url, 'POST', '/v1/jobs', spec);
  assert.equal(r.status, 201, r.text);
  return r.json;
}

const ckpts = async (url, id) => (await api(url, 'GET', `/v1/jobs/${id}/checkpoints`)).json.checkpoints;

// The steps retention must keep: the keep_last newest of `made`, and the k best by value(step)
// (ties: the newer), where value is undefined for a step without one.
function expected(made, keepLast, k, value, max) {
  const newest = made.slice(-keepLast);
  const scored = made.filter((s) => value(s) !== undefined && value(s) !== null)
    .sort((a, b) => (max ? value(b) - value(a) : value(a) - value(b)) || b - a);
  return [...new Set([...newest, ...scored.slice(0, k)])].sort((a, b) => a - b);
}

test('keep_best by loss (mode max) keeps the checkpoint the rule picks from the recorded losses, and the newest', async () => {
  await withDaemon(ONE, async (d) => {
    const j = await submit(d.url, tutorialJob({name: 'best-loss', steps: 200,
      checkpoint: {every_steps: 20, keep_last: 1, keep_best: {metric: 'loss', mode: 'max'}}}));
    assert.deepEqual(j.spec.checkpoint.keep_best, {metric: 'loss', mode: 'max', k: 1});
    await waitJob(d.url, j.id, (x) => x.state === 'completed');
    const m = (await api(d.url, 'GET', `/v1/jobs/${j.id}/metrics`)).json;
    const loss = new Map(m.step.map((s, i) => [s, m.loss[i]]));
    const made = Array.from({length: 10}, (_, i) => (i + 1) * 20);
    const want = expected(made, 1, 1, (s) => loss.get(s), true);
    assert.equal(want.length, 2, 'the best is not the newest');
    const got = await ckpts(d.url, j.id);
    assert.deepEqual(got.map((c) => c.step), want);
    assert.deepEqual(got.map((c) => c.best), [true, false]);
    assert.deepEqual(got.map((c) => c.pinned), [false, false]);
  });
});

test('keep_best by val_loss: the value of a checkpoint is its latest validation; k of them are kept', async () => {
  await withDaemon(ONE, async (d) => {
    const j = await submit(d.url, tutorialJob({name: 'best-val', steps: 200,
      validation: {fraction: 0.2, every_steps: 30},
      ds_config: {train_batch_size: 8, optimizer: {type: 'SGD', params: {lr: 0.3}}},
      checkpoint: {every_steps: 20, keep_last: 2, keep_best: {metric: 'val_loss', k: 2}}}));
    assert.deepEqual(j.spec.checkpoint.keep_best, {metric: 'val_loss', mode: 'min', k: 2});
    await waitJob(d.url, j.id, (x) => x.state === 'completed');
    const m = (await api(d.url, 'GET', `/v1/jobs/${j.id}/metrics`)).json;
    assert.ok(m.val_step.length >= 5);
    const valAt = (s) => {
      let v;
      m.val_step.forEach((vs, i) => { if (vs <= s) v = m.val_loss[i]; });
      return v;
    };
    const made = Array.from({length: 10}, (_, i) => (i + 1) * 20);
    const want = expected(made, 2, 2, valAt, false);
    const got = await ckpts(d.url, j.id);
    assert.deepEqual(got.map((c) => c.step), want);
    const best = expected(made, 0, 2, valAt, false);
    for (const c of got) assert.equal(c.best, best.includes(c.step), `step ${c.step}`);
  });
});

test('a pinned checkpoint survives retention until unpinned; bad pins are refused naming the field', async () => {
  await withDaemon(ONE, async (d) => {
    const j = await submit(d.url, heavyJob({name: 'pins', checkpoint: {every_steps: 200, keep_last: 1}}));
    // The newest checkpoint may be retired between the list and the pin: then the pin is a
    // 404 naming the step, and the next newest is tried.
    let first, p;
    await waitFor(async () => {
      first = (await ckpts(d.url, j.id)).at(-1);
      if (!first) return false;
      p = await api(d.url, 'POST', `/v1/jobs/${j.id}/checkpoints/${first.step}/pin`);
      if (p.status === 404) assert.equal(p.json.error.field, 'step');
      return p.status !== 404;
    }, {what: 'a checkpoint to pin'});
    assert.equal(p.status, 200, p.text);
    assert.equal(p.json.step, first.step);
    assert.equal(p.json.pinned, true);
    assert.equal(p.json.best, false);
    await waitFor(async () => (await ckpts(d.url, j.id)).some((c) => c.step >= first.step + 600),
                  {what: 'three more checkpoints'});
    let list = await ckpts(d.url, j.id);
    assert.equal(list[0].step, first.step, 'the pinned checkpoint is kept');
    assert.equal(list[0].pinned, true);
    assert.equal(list.length, 2, 'the pinned one and the newest');

    const bad = [
      ['abc', 400, 'step'], ['-1', 400, 'step'], ['1.5', 400, 'step'], ['99999999999999999999', 400, 'step'],
      [String(first.step + 1), 404, 'step'],
    ];
    for (const [step, status, field] of bad) {
      const r = await api(d.url, 'POST', `/v1/jobs/${j.id}/checkpoints/${step}/pin`);
      assert.equal(r.status, status, `${step}: ${r.text}`);
      assert.equal(r.json.error.field, field);
    }
    const nojob = await api(d.url, 'POST', `/v1/jobs/j_999999/checkpoints/${first.step}/pin`);
    assert.equal(nojob.status, 404);
    assert.equal(nojob.json.error.field, 'id');
    const body = await api(d.url, 'POST', `/v1/jobs/${j.id}/checkpoints/${first.step}/unpin`, {all: true});
    assert.equal(body.status, 400);
    assert.equal(body.json.error.field, 'body');
    const mal = await api(d.url, 'POST', `/v1/jobs/${j.id}/checkpoints/${first.step}/unpin`, '{', {'Content-Type': 'application/json'});
    assert.equal(mal.status, 400);
    assert.equal((await ckpts(d.url, j.id))[0].pinned, true, 'refused requests change nothing');

    const u = await api(d.url, 'POST', `/v1/jobs/${j.id}/checkpoints/${first.step}/unpin`, {});
    assert.equal(u.status, 200, u.text);
    assert.equal(u.json.pinned, false);
    await waitFor(async () => !(await ckpts(d.url, j.id)).some((c) => c.step === first.step),
                  {what: 'the unpinned checkpoint to be retired'});
    list = await ckpts(d.url, j.id);
    assert.equal(list.length, 1);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${j.id}/cancel`)).status, 200);
  });
});

test('checkpoint.keep_best errors name the key', async () => {
  await withDaemon(ONE, async (d) => {
    const bad = [
      [{keep_best: {metric: 'acc'}}, 'checkpoint.keep_best.metric'],
      [{keep_best: {}}, 'checkpoint.keep_best.metric'],
      [{keep_best: {metric: 'val_loss'}}, 'checkpoint.keep_best.metric'], // no validation
      [{keep_best: {metric: 'loss', mode: 'up'}}, 'checkpoint.keep_best.mode'],
      [{keep_best: {metric: 'loss', k: 0}}, 'checkpoint.keep_best.k'],
      [{keep_best: {metric: 'loss', k: 1001}}, 'checkpoint.keep_best.k'],
      [{keep_best: {metric: 'loss', n: 1}}, 'checkpoint.keep_best.n'],
      [{keep_best: 'loss'}, 'checkpoint.keep_best'],
    ];
    for (const [ck, field] of bad) {
      const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({checkpoint: ck}));
      assert.equal(r.status, 400, JSON.stringify(ck));
      assert.equal(r.json.error.field, field, `${JSON.stringify(ck)}: ${r.text}`);
    }
    const ok = await submit(d.url, tutorialJob({validation: {fraction: 0.1}, checkpoint: {keep_best: {metric: 'val_acc'}}}));
    assert.deepEqual(ok.spec.checkpoint.keep_best, {metric: 'val_acc', mode: 'max', k: 1});
  });
});
