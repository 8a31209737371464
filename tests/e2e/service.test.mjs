// End-to-end tests of the service (API.md) against the real daemon: jobs run to completion,
// SSE streams with replay, pause/resume/cancel/delete, crash and SIGTERM recovery, bad
// requests, authentication and concurrent load.
//
// A job a test acts on mid-run is heavyJob() (lib.mjs): a few thousand steps per second and far
// more steps than the test waits for, so it is still running when the test looks; the test
// cancels it or checks that it goes on. The tutorial job trains millions of steps per second
// and is used where a test wants a job to finish.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import {
  BIN, SLOW, api, heavyJob, readEvents, removeDir, sleep, startDaemon, tmpDir, tutorialJob, waitFor, waitJob,
  withDaemon, writeFile,
} from './lib.mjs';

// Steps 1..n, each once and in order: what a job's metrics hold after n steps.
function assertOneRowPerStep(steps, n, what) {
  assert.equal(steps.length, n, `${what}: ${steps.length} rows for ${n} steps`);
  for (let i = 0; i < n; i++) {
    if (steps[i] !== i + 1) assert.fail(`${what}: row ${i} holds step ${steps[i]}, not ${i + 1}`);
  }
}

test('the tutorial job runs to completion with one metrics row per step', async () => {
  await withDaemon({}, async (d) => {
    const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob());
    assert.equal(r.status, 201);
    assert.match(r.json.id, /^j_\d+$/);
    assert.equal(r.json.state, 'queued');
    assert.equal(r.json.total_steps, 1000);
    assert.equal(r.json.spec.seed, 42);
    const job = await waitJob(d.url, r.json.id, (j) => j.state === 'completed');
    assert.equal(job.step, 1000);
    assert.equal(job.last_checkpoint_step, 1000);
    assert.equal(job.finished_at !== null, true);
    const m = await api(d.url, 'GET', `/v1/jobs/${job.id}/metrics`);
    assert.equal(m.status, 200);
    assert.equal(m.json.step.length, 1000);
    assert.deepEqual(m.json.step.slice(0, 3), [1, 2, 3]);
    assert.equal(new Set(m.json.step).size, 1000);
    assert.equal(m.json.lr[0][2], 0.0023546349804879152);
    // DeepSpeed's last warmup step and the ones after, to the last bit, in the JSON text too
    assert.deepEqual(m.json.lr[0].slice(100, 103), [0.009999999999999998, 0.010000000000000002, 0.010000000000000002]);
    assert.match(m.text, /,0\.009999999999999998,0\.010000000000000002,/);
    assert.equal(m.json.loss.length, 1000);
    // time: seconds since the job started, never going back.
    const tm = m.json.time;
    assert.equal(tm.length, 1000);
    assert.ok(tm[0] >= 0 && tm.at(-1) > 0 && tm.at(-1) < 60 * SLOW, `time from ${tm[0]} to ${tm.at(-1)}`);
    for (let i = 1; i < tm.length; i++) if (!(tm[i] >= tm[i - 1])) assert.fail(`time goes back at step ${i + 1}`);
    const csv = await api(d.url, 'GET', `/v1/jobs/${job.id}/metrics?format=csv`);
    assert.equal(csv.status, 200);
    assert.match(csv.headers.get('content-type'), /text\/csv/);
    const lines = csv.text.trim().split('\n');
    assert.match(lines[0], /^step,loss,lr/);
    assert.equal(lines.length, 1001);
    const ds = await api(d.url, 'GET', `/v1/jobs/${job.id}/metrics?max_points=100`);
    assert.ok(ds.json.step.length <= 100 && ds.json.step.length > 10);
    const cks = await api(d.url, 'GET', `/v1/jobs/${job.id}/checkpoints`);
    assert.deepEqual(cks.json.checkpoints.map((c) => c.step), [800, 900, 1000]);
    const w = await api(d.url, 'GET', `/v1/jobs/${job.id}/weights`);
    assert.equal(w.status, 200);
    assert.equal(w.json.step, 1000);
    assert.ok(w.json.tensors.length >= 1);
    const p = await api(d.url, 'POST', `/v1/jobs/${job.id}/predict`, { inputs: [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], new Array(10).fill(0)] });
    assert.equal(p.status, 200);
    assert.equal(p.json.outputs.length, 2);
    assert.equal(p.json.outputs[0].length, 1);
    const list = await api(d.url, 'GET', '/v1/jobs?state=completed');
    assert.equal(list.json.total, 1);
    assert.equal(list.json.jobs[0].id, job.id);
    const none = await api(d.url, 'GET', '/v1/jobs?state=running');
    assert.equal(none.json.total, 0);
    const pv = await api(d.url, 'POST', '/v1/schedules/preview', {ds_config: job.spec.ds_config, steps: 10});
    assert.equal(pv.status, 200);
    // Every JSON answer ends with a newline (docs/API.md), the streamed ones included.
    for (const [name, a] of [['metrics', m], ['downsampled metrics', ds], ['checkpoints', cks],
                             ['weights', w], ['predict', p], ['list', list], ['preview', pv]])
      assert.ok(a.text.endsWith('}\n'), `${name}: ...${JSON.stringify(a.text.slice(-20))}`);
  });
});

test('a fast job checkpointing every 100 steps: one metrics row per step, checkpoints kept, real samples_per_sec', async () => {
  await withDaemon({}, async (d) => {
    const steps = 200000;
    const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps}));
    assert.equal(r.status, 201, r.text);
    const job = await waitJob(d.url, r.json.id, (j) => j.state === 'completed', 120000);
    assert.equal(job.step, steps);
    assert.equal(job.last_checkpoint_step, steps);
    const csv = await api(d.url, 'GET', `/v1/jobs/${job.id}/metrics?format=csv`);
    assert.equal(csv.status, 200);
    const lines = csv.text.trim().split('\n');
    assert.match(lines[0], /^step,loss,lr0,grad_norm,time$/);
    const rows = lines.slice(1).map((l) => l.split(','));
    assertOneRowPerStep(rows.map((c) => Number(c[0])), steps, 'metrics');
    const runSecs = Number(rows.at(-1)[4]);
    assert.ok(runSecs > 0, `the last row's time is ${runSecs}`);
    // keep_last 3: the final state and two periodic checkpoints on multiples of every_steps.
    const cks = (await api(d.url, 'GET', `/v1/jobs/${job.id}/checkpoints`)).json.checkpoints.map((c) => c.step);
    assert.equal(cks.length, 3, `checkpoints ${cks}`);
    assert.equal(cks[2], steps);
    assert.ok(cks[0] < cks[1] && cks[1] < cks[2] && cks.every((s) => s % 100 === 0), `checkpoints ${cks}`);
    // 2,000 checkpoints were due; the daemon takes at most 50 a second after a burst of 10.
    const prom = (await api(d.url, 'GET', '/metrics')).text;
    const taken = Number(/^anneald_checkpoints_total (\d+)/m.exec(prom)[1]);
    assert.ok(taken >= 3 && taken <= 12 + Math.ceil(runSecs / 0.02), `${taken} checkpoints in ${runSecs} s`);
    // samples_per_sec is what the job achieved (8 samples a step over wall time), not one
    // step's compute rate.
    const real = steps * 8 / runSecs;
    assert.ok(job.samples_per_sec > real / 2 && job.samples_per_sec < real * 2,
              `samples_per_sec ${job.samples_per_sec}, real ${real}`);
  });
});

test('schedule preview answers what the job uses', async () => {
  await withDaemon({}, async (d) => {
    const body = { ds_config: tutorialJob().ds_config, steps: 5 };
    const r = await api(d.url, 'POST', '/v1/schedules/preview', body);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.step, [1, 2, 3, 4, 5]);
    assert.equal(r.json.lr[0][2], 0.0023546349804879152);
  });
});

test('SSE shows progress live, and a reconnect with Last-Event-ID gets what it missed', async () => {
  await withDaemon({}, async (d) => {
    const r = await api(d.url, 'POST', '/v1/jobs', heavyJob());
    const id = r.json.id;
    const first = await readEvents(d.url, `/v1/jobs/${id}/events`, {
      until: (ev) => ev.filter((e) => e.event === 'progress').length >= 3,
    });
    const prog = first.filter((e) => e.event === 'progress');
    assert.ok(prog.length >= 3, 'live progress events');
    for (const e of prog) {
      assert.equal(e.data.id, id);
      for (const k of ['step', 'loss', 'lr', 'samples_per_sec', 'eta_s']) assert.ok(k in e.data, k);
    }
    const steps = prog.map((e) => e.data.step);
    assert.ok(steps[steps.length - 1] > steps[0], 'steps advance');
    const ids = first.map((e) => BigInt(e.id));
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i] >= ids[i - 1]);
    const lastId = first[first.length - 1].id;
    await sleep(600); // events happen while we are away
    const again = await readEvents(d.url, `/v1/jobs/${id}/events`, {
      headers: { 'Last-Event-ID': lastId },
      until: (ev) => ev.length >= 3,
    });
    assert.ok(again.length >= 3);
    // Replay starts right after the id we had, with nothing we already saw.
    for (const e of again) assert.ok(BigInt(e.id) > BigInt(lastId));
    const gap = again.filter((e) => e.event === 'progress').map((e) => e.data.step);
    assert.ok(gap[0] > steps[steps.length - 1]);
    // The global stream carries the same job.
    const all = await readEvents(d.url, '/v1/events', { until: (ev) => ev.some((e) => e.event === 'progress') });
    assert.ok(all.some((e) => e.event === 'progress' && e.data.id === id));
    // Progress is coalesced: a fast job sends at most ~10 progress events per second.
    const t0 = Date.now();
    const burst = await readEvents(d.url, `/v1/jobs/${id}/events`, { timeoutMs: 1500 });
    const secs = (Date.now() - t0) / 1000;
    const n = burst.filter((e) => e.event === 'progress').length;
    assert.ok(n <= 12 * secs + 2, `${n} progress events in ${secs}s`);
    await api(d.url, 'POST', `/v1/jobs/${id}/cancel`);
  });
});

test('pause, resume, cancel, delete and the 409s of bad transitions', async () => {
  await withDaemon({}, async (d) => {
    const { json: job } = await api(d.url, 'POST', '/v1/jobs', heavyJob());
    // eta_s is in every job object: null until a worker has a pace for it
    assert.equal(job.eta_s, null);
    const running = await waitJob(d.url, job.id, (j) => j.state === 'running' && j.step > 100 && j.eta_s !== null);
    assert.ok(running.eta_s > 0, `eta_s ${running.eta_s}`);
    const p = await api(d.url, 'POST', `/v1/jobs/${job.id}/pause`);
    assert.equal(p.status, 200);
    assert.equal(p.json.state, 'paused');
    assert.equal(p.json.eta_s, null);
    assert.ok(p.json.step > 100);
    assert.equal(p.json.last_checkpoint_step, p.json.step, 'pausing checkpoints the step it stopped at');
    const cks = await api(d.url, 'GET', `/v1/jobs/${job.id}/checkpoints`);
    assert.equal(cks.json.checkpoints.at(-1).step, p.json.last_checkpoint_step);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${job.id}/pause`)).status, 409);
    assert.equal((await api(d.url, 'DELETE', `/v1/jobs/${job.id}`)).status, 409);
    const pausedAt = p.json.step;
    const r = await api(d.url, 'POST', `/v1/jobs/${job.id}/resume`);
    assert.equal(r.status, 200);
    assert.ok(['queued', 'running'].includes(r.json.state));
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${job.id}/resume`)).status, 409);
    await waitJob(d.url, job.id, (j) => j.state === 'running' && j.step > pausedAt + 50);
    const c = await api(d.url, 'POST', `/v1/jobs/${job.id}/cancel`);
    assert.equal(c.status, 200);
    assert.equal(c.json.state, 'cancelled');
    assert.equal(c.json.eta_s, null);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${job.id}/cancel`)).status, 409);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${job.id}/pause`)).status, 409);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${job.id}/resume`)).status, 409);
    const m = await api(d.url, 'GET', `/v1/jobs/${job.id}/metrics`);
    assert.equal(new Set(m.json.step).size, m.json.step.length, 'no step twice after pause/resume');
    // Watchers learn of the delete: the global stream gets `deleted`, the job's own stream
    // gets it last and ends.
    const isDel = (e) => e.event === 'deleted' && e.data.id === job.id;
    // Both streams are subscribed (their heads came) before the delete: no fixed sleep.
    let opened = 0, bothOpen;
    const open = new Promise((r) => { bothOpen = r; });
    const onOpen = () => { if (++opened === 2) bothOpen(); };
    const all = readEvents(d.url, '/v1/events', {until: (ev) => ev.some(isDel), onOpen});
    const own = readEvents(d.url, `/v1/jobs/${job.id}/events`, {onOpen});
    await open;
    const del = await api(d.url, 'DELETE', `/v1/jobs/${job.id}`);
    assert.equal(del.status, 204);
    assert.ok((await all).some(isDel), 'deleted on /v1/events');
    const mine = await own;
    assert.ok(isDel(mine.at(-1)), `the job's stream ends with deleted: ${mine.map((e) => e.event)}`);
    assert.equal(mine.ended, 'closed', 'and the daemon ends it then, not the reader\'s timeout');
    assert.equal((await api(d.url, 'GET', `/v1/jobs/${job.id}`)).status, 404);
    assert.equal((await api(d.url, 'GET', `/v1/jobs/${job.id}/metrics`)).status, 404);
    // A queued job can be paused and cancelled before any worker takes it.
    const one = await startDaemon({ dir: tmpDir(), args: ['--workers', '1'] });
    try {
      const a = await api(one.url, 'POST', '/v1/jobs', heavyJob());
      const b = await api(one.url, 'POST', '/v1/jobs', heavyJob());
      const pb = await api(one.url, 'POST', `/v1/jobs/${b.json.id}/pause`);
      assert.equal(pb.status, 200);
      assert.equal(pb.json.state, 'paused');
      const cb = await api(one.url, 'POST', `/v1/jobs/${b.json.id}/cancel`);
      assert.equal(cb.json.state, 'cancelled');
      await api(one.url, 'POST', `/v1/jobs/${a.json.id}/cancel`);
    } finally {
      await one.kill9();
    }
  });
});

test('kill -9 mid-job: after a restart the job continues by itself and ends as if never interrupted', async () => {
  // About 1 s of training (several under sanitizers): the kill lands mid-run.
  const spec = heavyJob({ steps: 3000, checkpoint: { every_steps: 250, keep_last: 2 } });
  // The reference: the same job, never interrupted.
  const ref = await withDaemon({}, async (d) => {
    const { json: body } = await api(d.url, 'POST', '/v1/jobs', spec);
    await waitJob(d.url, body.id, (j) => j.state === 'completed', 120000);
    return (await api(d.url, 'GET', `/v1/jobs/${body.id}/weights`)).json;
  });
  assert.equal(ref.step, 3000);
  const dir = tmpDir();
  try {
    let d = await startDaemon({ dir });
    const { json: body } = await api(d.url, 'POST', '/v1/jobs', spec);
    await waitJob(d.url, body.id, (j) => j.state === 'running' && j.last_checkpoint_step >= 250);
    const k = await d.kill9();
    assert.equal(k.signal, 'SIGKILL');
    d = await startDaemon({ dir });
    // The kill came mid-run: the job is queued again (or already running), not finished.
    const back = (await api(d.url, 'GET', `/v1/jobs/${body.id}`)).json;
    assert.ok(['queued', 'running'].includes(back.state), `state after restart: ${back.state}`);
    assert.ok(back.last_checkpoint_step >= 250 && back.last_checkpoint_step < 3000, `checkpoint ${back.last_checkpoint_step}`);
    const job = await waitJob(d.url, body.id, (j) => j.state === 'completed', 120000);
    assert.equal(job.step, 3000);
    const m = await api(d.url, 'GET', `/v1/jobs/${body.id}/metrics`);
    assertOneRowPerStep(m.json.step, 3000, 'metrics after kill -9 and restart');
    const w = (await api(d.url, 'GET', `/v1/jobs/${body.id}/weights`)).json;
    assert.deepEqual(w, ref);
    assert.equal((await d.stop()).code, 0);
  } finally {
    removeDir(dir);
  }
});

test('SIGTERM with two jobs running: exit 0, both checkpointed, both continue after a restart', async () => {
  const dir = tmpDir();
  // No periodic checkpoints: the only checkpoint of each job is the one taken at the SIGTERM.
  const ck = { every_steps: 0, every_seconds: 0, keep_last: 5 };
  try {
    let d = await startDaemon({ dir, args: ['--workers', '2'] });
    const a = (await api(d.url, 'POST', '/v1/jobs', heavyJob({ checkpoint: ck }))).json;
    const b = (await api(d.url, 'POST', '/v1/jobs', heavyJob({ checkpoint: ck, seed: 7 }))).json;
    const seen = {};
    for (const id of [a.id, b.id]) seen[id] = (await waitJob(d.url, id, (j) => j.state === 'running' && j.step > 200)).step;
    const t0 = Date.now();
    const ex = await d.stop();
    assert.equal(ex.code, 0);
    assert.equal(ex.signal, null);
    // the whole process: both workers checkpoint and the store closes within the 5 s stop
    const took = Date.now() - t0;
    console.log(`# SIGTERM to exit with two jobs checkpointing: ${took} ms`);
    assert.ok(took < 5000 * SLOW, `stopped in ${took} ms`);
    d = await startDaemon({ dir, args: ['--workers', '2'] });
    for (const id of [a.id, b.id]) {
      const cks = (await api(d.url, 'GET', `/v1/jobs/${id}/checkpoints`)).json.checkpoints;
      assert.ok(cks.length >= 1, `${id} was checkpointed`);
      const at = cks[0].step;
      assert.ok(at >= seen[id], `${id}: checkpoint at ${at}, step ${seen[id]} was seen before the SIGTERM`);
      // It goes on from there by itself, past the checkpoint.
      await waitJob(d.url, id, (j) => j.state === 'running' && j.step > at + 100);
      const c = await api(d.url, 'POST', `/v1/jobs/${id}/cancel`);
      assert.equal(c.status, 200);
      assert.equal(c.json.state, 'cancelled');
      const m = await api(d.url, 'GET', `/v1/jobs/${id}/metrics?format=csv`);
      const steps = m.text.trim().split('\n').slice(1).map((l) => Number(l.split(',')[0]));
      assertOneRowPerStep(steps, c.json.step, `${id} metrics`);
    }
    assert.equal((await d.stop()).code, 0);
  } finally {
    removeDir(dir);
  }
});

test('bad requests get the right status, name the field and change nothing', async () => {
  await withDaemon({ args: ['--max-body-json', '65536', '--max-body-dataset', '65536'] }, async (d) => {
    const done = (await api(d.url, 'POST', '/v1/jobs', tutorialJob({ steps: 10 }))).json;
    await waitJob(d.url, done.id, (j) => j.state === 'completed');
    await api(d.url, 'POST', '/v1/datasets?name=good', 'a,b\n1,2\n3,4\n', { 'Content-Type': 'text/csv' });
    const before = [await api(d.url, 'GET', '/v1/jobs'), await api(d.url, 'GET', '/v1/datasets')];
    const big = JSON.stringify({ ...tutorialJob(), name: 'x'.repeat(70000) });
    const job = (f) => JSON.stringify(f(structuredClone(tutorialJob())));
    const J = { 'Content-Type': 'application/json' };
    const cases = [
      ['POST', '/v1/jobs', '{"name": ', J, 400, 'body'],
      ['POST', '/v1/jobs', '', J, 400, 'body'],
      ['POST', '/v1/jobs', ' \n\t ', J, 400, 'body'],
      ['POST', '/v1/jobs', '[1,2]', J, 400, null],
      ['POST', '/v1/jobs', job((j) => { j.steps = 'ten'; return j; }), J, 400, 'steps'],
      ['POST', '/v1/jobs', job((j) => { j.seed = -1.5; return j; }), J, 400, 'seed'],
      ['POST', '/v1/jobs', job((j) => { delete j.model; return j; }), J, 400, 'model'],
      ['POST', '/v1/jobs', job((j) => { j.modle = {}; return j; }), J, 400, 'modle'],
      ['POST', '/v1/jobs', job((j) => { j.ds_config.scheduler.params.warmup_num_steps = -3; return j; }), J, 400, 'ds_config.scheduler.params.warmup_num_steps'],
      ['POST', '/v1/jobs', job((j) => { delete j.ds_config.optimizer; return j; }), J, 400, 'ds_config.optimizer'],
      ['POST', '/v1/jobs', job((j) => { j.model.inputs = 0; return j; }), J, 400, 'model.inputs'],
      ['POST', '/v1/jobs', job((j) => { j.data = { type: 'dataset', name: 'nope' }; return j; }), J, 422, 'data.name'],
      ['POST', '/v1/jobs', job((j) => { j.resume_from = { job: 'j_999999' }; return j; }), J, 422, 'resume_from.job'],
      // refused at submit rather than failing when a worker starts it: a step without a
      // checkpoint (the job has one at 10), a model the checkpoint's weights do not fit
      ['POST', '/v1/jobs', job((j) => { j.resume_from = { job: done.id, step: 7 }; return j; }), J, 422, 'resume_from.step'],
      ['POST', '/v1/jobs', job((j) => { j.resume_from = { job: done.id }; j.model = { type: 'mlp', inputs: 10, hidden: [4], outputs: 1 }; return j; }), J, 422, 'model'],
      ['POST', '/v1/jobs', big, J, 413, null],
      ['POST', '/v1/jobs', job((j) => j), { 'Content-Type': 'application/xml' }, 415, 'Content-Type'],
      ['GET', '/v1/jobs?limit=0', null, {}, 400, 'limit'],
      ['GET', '/v1/jobs?limit=abc', null, {}, 400, 'limit'],
      ['GET', '/v1/jobs?offset=-1', null, {}, 400, 'offset'],
      ['GET', '/v1/jobs?state=sleeping', null, {}, 400, 'state'],
      ['GET', '/v1/jobs?state=', null, {}, 400, 'state'],
      ['GET', '/v1/jobs?state=,', null, {}, 400, 'state'],
      ['GET', '/v1/jobs?state', null, {}, 400, 'state'],
      ['GET', '/v1/jobs?limit=1&LIMIT=2', null, {}, 400, 'LIMIT'],
      // an argument given twice would be read as one of its values without a word
      ['GET', '/v1/jobs?limit=1&limit=2', null, {}, 400, 'limit'],
      ['GET', '/v1/jobs?state=completed&limit=5&state=running', null, {}, 400, 'state'],
      ['POST', '/v1/datasets?name=x1&name=x2', 'a\n1\n', { 'Content-Type': 'text/csv' }, 400, 'name'],
      // a query argument the route does not read would be ignored: named instead
      ['GET', '/v1/jobs?stat=running', null, {}, 400, 'stat'],
      ['GET', `/v1/jobs/${done.id}/metrics?frm=1`, null, {}, 400, 'frm'],
      ['GET', `/v1/jobs/${done.id}?verbose=1`, null, {}, 400, 'verbose'],
      ['GET', `/v1/jobs?state=${'running,'.repeat(15)}paused,bogus`, null, {}, 400, 'state'],
      ['GET', '/v1/jobs?state=queuedqueuedqueued', null, {}, 400, 'state'],
      ['GET', '/v1/jobs/j_424242', null, {}, 404, 'id'],
      ['GET', '/v1/jobs/j_424242/metrics', null, {}, 404, 'id'],
      ['GET', `/v1/jobs/${done.id}/metrics?format=xml`, null, {}, 400, 'format'],
      ['GET', `/v1/jobs/${done.id}/metrics?max_points=-2`, null, {}, 400, 'max_points'],
      ['GET', `/v1/jobs/${done.id}/metrics?format=csv&max_points=5`, null, {}, 400, 'max_points'],
      ['GET', `/v1/jobs/${done.id}/weights?step=7`, null, {}, 404, 'step'],
      ['POST', `/v1/jobs/${done.id}/predict`, '{"inputs": [[1,2]]}', J, 400, 'inputs[0]'],
      ['POST', `/v1/jobs/${done.id}/predict`, '{"inputs": [["a",1,1,1,1,1,1,1,1,1]]}', J, 400, 'inputs[0][0]'],
      ['POST', `/v1/jobs/${done.id}/predict`, '{"rows": []}', J, 400, 'inputs'],
      // the routes that take no parameters refuse any other body before anything else
      ['POST', `/v1/jobs/${done.id}/resume`, 'x', J, 400, 'body'],
      ['POST', `/v1/jobs/${done.id}/pause`, '{"garbage":[1,2', J, 400, 'body'],
      ['POST', `/v1/jobs/${done.id}/cancel`, '[]', J, 400, 'body'],
      ['POST', `/v1/jobs/${done.id}/cancel`, '{"zzz":1}', J, 400, 'body'],
      ['POST', `/v1/jobs/${done.id}/cancel`, '\u0000\u0000', J, 400, 'body'],
      ['POST', '/v1/sweeps/s_000001/cancel', 'x', J, 400, 'body'],
      ['POST', `/v1/jobs/${done.id}/pause`, ' {} ', J, 409, 'state'],
      ['POST', `/v1/jobs/${done.id}/pause`, null, {}, 409, 'state'],
      ['POST', `/v1/jobs/${done.id}/resume`, null, {}, 409, 'state'],
      ['POST', '/v1/jobs/j_424242/cancel', null, {}, 404, 'id'],
      ['DELETE', '/v1/jobs/j_424242', null, {}, 404, 'id'],
      ['POST', '/v1/datasets?name=bad', 'a,b\n1,2\n3,x\n', { 'Content-Type': 'text/csv' }, 400, 'csv[2].b'],
      ['POST', '/v1/datasets?name=bad', 'a,b\n1,2\n3\n', { 'Content-Type': 'text/csv' }, 400, null],
      ['POST', '/v1/datasets', 'a\n1\n', { 'Content-Type': 'text/csv' }, 400, 'name'],
      ['POST', '/v1/datasets?name=d_000002', 'a\n1\n', { 'Content-Type': 'text/csv' }, 400, 'name'],
      ['POST', '/v1/datasets?name=good', 'a\n1\n', { 'Content-Type': 'text/csv' }, 409, 'name'],
      ['POST', '/v1/datasets?name=huge', 'a\n' + '1\n'.repeat(40000), { 'Content-Type': 'text/csv' }, 413, null],
      ['POST', '/v1/datasets?name=j', '{"a":1}', { 'Content-Type': 'application/json' }, 415, 'Content-Type'],
      ['GET', '/v1/datasets/d_999999', null, {}, 404, 'id'],
      ['DELETE', '/v1/datasets/d_999999', null, {}, 404, 'id'],
      ['POST', '/v1/schedules/preview', '{"ds_config": {"optimizer": {"type": "Adam", "params": {"lr": 0.1}}}, "steps": 0}', J, 400, 'steps'],
      ['POST', '/v1/schedules/preview', 'nope', J, 400, 'body'],
      ['GET', '/v1/nothing/here', null, {}, 404, null],
      ['PUT', '/v1/jobs', '{}', J, 405, null],
      ['PUT', `/v1/jobs/${done.id}`, '{}', J, 405, null], // PATCH exists since scheduling (sched.test.mjs)
      ['GET', '/v1/jobs/j_424242/events', null, {}, 404, 'id'],
    ];
    assert.ok(cases.length >= 30);
    for (const [method, path, body, headers, status, field] of cases) {
      const r = await api(d.url, method, path, body, headers);
      const what = `${method} ${path} -> ${r.status} ${r.text.slice(0, 200)}`;
      assert.equal(r.status, status, what);
      assert.ok(r.json && r.json.error && typeof r.json.error.message === 'string', what);
      assert.ok(typeof r.json.error.code === 'string', what);
      if (field) assert.equal(r.json.error.field, field, what);
      if (status === 405) assert.ok(r.headers.get('allow'), what);
    }
    // a body of whitespace is an empty body: the same answer
    const blank = await api(d.url, 'POST', '/v1/jobs', ' \n ', J);
    assert.deepEqual(blank.json, (await api(d.url, 'POST', '/v1/jobs', '', J)).json);
    const after = [await api(d.url, 'GET', '/v1/jobs'), await api(d.url, 'GET', '/v1/datasets')];
    assert.deepEqual(after.map((r) => r.json), before.map((r) => r.json));
    // the refused uploads used up no id: the next data set's follows the first's
    const first = after[1].json.datasets.find((x) => x.name === 'good').id;
    const next = await api(d.url, 'POST', '/v1/datasets?name=good2', 'a\n1\n', { 'Content-Type': 'text/csv' });
    assert.equal(next.status, 201, next.text);
    assert.equal(next.json.id, `d_${String(Number(first.slice(2)) + 1).padStart(6, '0')}`);
    assert.equal((await api(d.url, 'DELETE', `/v1/datasets/${next.json.id}`)).status, 204);
    const h = await api(d.url, 'GET', '/healthz');
    assert.equal(h.json.status, 'ok');
  });
});

test('POST /v1/jobs with three independent errors lists them all and stores nothing', async () => {
  await withDaemon({}, async (d) => {
    const before = (await api(d.url, 'GET', '/v1/jobs')).json;
    const spec = tutorialJob({ name: 5, model: { type: 'linear', inputs: 0, outputs: 1 } });
    spec.ds_config = { ...spec.ds_config, optimizer: { type: 'Adam', params: { lr: 'x' } } };
    const r = await api(d.url, 'POST', '/v1/jobs', spec);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.code, 'invalid_argument');
    assert.equal(r.json.error.field, 'name');
    assert.deepEqual(r.json.errors.map((e) => e.field), ['name', 'model.inputs', 'ds_config.optimizer.params.lr']);
    assert.equal(r.json.errors[0].message, r.json.error.message);
    for (const e of r.json.errors) assert.ok(typeof e.message === 'string' && e.message.length > 5, JSON.stringify(e));
    // One error: the list has just it; malformed JSON: one error on "body".
    const one = await api(d.url, 'POST', '/v1/jobs', tutorialJob({ steps: -1 }));
    assert.equal(one.status, 400);
    assert.deepEqual(one.json.errors, [{ message: one.json.error.message, field: 'steps' }]);
    const bad = await api(d.url, 'POST', '/v1/jobs', '{"steps": ', { 'Content-Type': 'application/json' });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.field, 'body');
    assert.equal(bad.json.errors.length, 1);
    assert.deepEqual((await api(d.url, 'GET', '/v1/jobs')).json, before);
    assert.equal(before.total, 0);
  });
});

test('a bearer token guards everything but /healthz, and SSE and the metrics download take ?access_token=', async () => {
  const dir = tmpDir();
  try {
    const tok = writeFile(dir, 'token', 's3cret-token\n');
    await withDaemon({ dir, args: ['--token-file', tok] }, async (d) => {
      const auth = { Authorization: 'Bearer s3cret-token' };
      assert.equal((await api(d.url, 'GET', '/healthz')).status, 200);
      // The dashboard's shell loads without the token (so it can ask for one); no data does.
      for (const p of ['/', '/index.html', '/app.js', '/style.css']) {
        const r = await api(d.url, 'GET', p);
        assert.equal(r.status, 200, p);
        assert.ok(!r.json, `${p} is a file, not API data`);
      }
      assert.equal((await api(d.url, 'GET', '/metrics')).status, 401, '/metrics needs the token');
      assert.equal((await api(d.url, 'GET', '/metrics', null, auth)).status, 200);
      for (const h of [{}, { Authorization: 'Bearer wrong' }, { Authorization: 'Bearer s3cret-toke' }, { Authorization: 'Basic czNjcmV0' }]) {
        const r = await api(d.url, 'GET', '/v1/jobs', null, h);
        assert.equal(r.status, 401);
        assert.equal(r.json.error.code, 'unauthorized');
        assert.ok(!('jobs' in r.json));
      }
      assert.equal((await api(d.url, 'POST', '/v1/jobs', tutorialJob(), {})).status, 401);
      assert.equal((await api(d.url, 'GET', '/v1/jobs', null, auth)).json.total, 0, 'the 401 created nothing');
      assert.equal((await api(d.url, 'GET', '/v1/jobs?access_token=s3cret-token')).status, 401, 'query token only for SSE');
      const j = await api(d.url, 'POST', '/v1/jobs', tutorialJob({ steps: 20 }), auth);
      assert.equal(j.status, 201);
      const ev = await readEvents(d.url, `/v1/jobs/${j.json.id}/events?access_token=s3cret-token`, { until: (e) => e.length >= 1 });
      assert.ok(ev.length >= 1);
      const bad = await fetch(`${d.url}/v1/events?access_token=nope`);
      assert.equal(bad.status, 401);
      await bad.text();
      // A metrics download link carries the token in its query too; a wrong one gets no rows.
      await waitJob(d.url, j.json.id, (x) => x.state === 'completed', 30000, auth);
      const csv = await api(d.url, 'GET', `/v1/jobs/${j.json.id}/metrics?format=csv&access_token=s3cret-token`);
      assert.equal(csv.status, 200, csv.text);
      assert.equal(csv.text.trim().split('\n').length, 21);
      const wrong = await api(d.url, 'GET', `/v1/jobs/${j.json.id}/metrics?format=csv&access_token=s3cret-tokem`);
      assert.equal(wrong.status, 401);
      assert.ok(!/^step,/.test(wrong.text));
      assert.equal((await api(d.url, 'GET', `/v1/jobs/${j.json.id}/weights?access_token=s3cret-token`)).status, 401,
                   'the query token only where a link needs it');
    });
  } finally {
    removeDir(dir);
  }
});

test('listening off loopback without a token is refused; bad flags exit 2', async () => {
  const r = spawnSync(BIN, ['--listen', '0.0.0.0:0', '--db', '/nonexistent/x.db']);
  assert.equal(r.status, 2);
  assert.match(String(r.stderr), /token/);
  assert.equal(spawnSync(BIN, ['--bogus']).status, 2);
  assert.equal(spawnSync(BIN, ['--workers', 'zero']).status, 2);
  for (const bad of [' 2', '2 ', '\t2', '', '-', '0x2', '2.0']) {
    const w = spawnSync(BIN, ['--workers', bad, '--db', '/nonexistent/x.db']);
    assert.equal(w.status, 2, `--workers ${JSON.stringify(bad)}`);
    assert.match(String(w.stderr), /--workers/);
  }
  assert.equal(spawnSync(BIN, ['--listen', '127.0.0.1: 8470', '--db', '/nonexistent/x.db']).status, 2);
  assert.equal(spawnSync(BIN, ['--listen', 'nowhere']).status, 2);
  // A host that is no address at all is refused by name, before the store is created, with or
  // without a token; a directory as the token file is said to be one.
  const tmp = tmpDir('anneald-flags-');
  try {
    const tok = writeFile(tmp, 'token', 'secret\n');
    for (const extra of [[], ['--token-file', tok]]) {
      const f = spawnSync(BIN, ['--listen', 'foo:0', '--db', `${tmp}/x.db`, ...extra], {encoding: 'utf8'});
      assert.equal(f.status, 2, f.stderr);
      assert.match(f.stderr, /--listen expects HOST:PORT, HOST a numeric IPv4 or IPv6 address .*got 'foo:0'/);
      assert.deepEqual(readdirSync(tmp), ['token'], 'nothing created');
    }
    const d = spawnSync(BIN, ['--token-file', tmp, '--db', `${tmp}/x.db`], {encoding: 'utf8'});
    assert.equal(d.status, 2);
    assert.match(d.stderr, /--token-file .*: cannot read it: Is a directory/);
    // IPv6 without brackets: "::1:18703" is an address of its own
    const v6 = spawnSync(BIN, ['--listen', '::1:18703', '--db', `${tmp}/x.db`], {encoding: 'utf8'});
    assert.equal(v6.status, 2);
    assert.match(v6.stderr, /IPv6 in brackets: \[::1\]:8470/);
    // a memory budget nothing fits in (a size without its suffix)
    const mm = spawnSync(BIN, ['--max-memory', '4', '--db', `${tmp}/x.db`], {encoding: 'utf8'});
    assert.equal(mm.status, 2);
    assert.match(mm.stderr, /--max-memory 4 is less than 1M/);
    // a token no Authorization header could carry
    const spaced = writeFile(tmp, 'spaced', 'two words\n');
    const sp = spawnSync(BIN, ['--token-file', spaced, '--db', `${tmp}/x.db`], {encoding: 'utf8'});
    assert.equal(sp.status, 2);
    assert.match(sp.stderr, /--token-file .*: the token holds a space or a control character \(byte 4\)/);
    assert.deepEqual(readdirSync(tmp).sort(), ['spaced', 'token'], 'nothing created');
  } finally {
    removeDir(tmp);
  }
  const v = spawnSync(BIN, ['--version']);
  assert.equal(v.status, 0);
  assert.match(String(v.stdout), /^anneald \d/);
  assert.equal(spawnSync(BIN, ['--help']).status, 0);
});

test('the start warns of what would fail later: an --mpirun that is not there, a short token', async () => {
  const tmp = tmpDir('anneald-warn-');
  try {
    const tok = writeFile(tmp, 'token', 'short\n');
    await withDaemon({ dir: tmp, args: ['--mpirun', '/nonexistent/mpirun', '--token-file', tok] }, async (d) => {
      await waitFor(() => /serving on port/.test(d.stderr()), { what: 'the start' });
      assert.match(d.stderr(), /--mpirun \/nonexistent\/mpirun is not an executable file: jobs with world_size > 1/);
      assert.match(d.stderr(), /the token is 5 characters/);
      assert.match(d.stderr(), /with \d+ workers?,/);
    });
  } finally {
    removeDir(tmp);
  }
});

test('two jobs training while 8 clients make 2,000 requests: no error, no crash', async () => {
  await withDaemon({ args: ['--workers', '2'] }, async (d) => {
    const a = (await api(d.url, 'POST', '/v1/jobs', heavyJob())).json;
    const b = (await api(d.url, 'POST', '/v1/jobs', heavyJob({ seed: 3 }))).json;
    const paths = ['/healthz', '/v1/jobs', `/v1/jobs/${a.id}`, `/v1/jobs/${b.id}`,
      `/v1/jobs/${a.id}/metrics?max_points=200`, `/v1/jobs/${b.id}/checkpoints`, '/metrics', '/v1/datasets'];
    let n = 0;
    const errors = [];
    const client = async (k) => {
      for (let i = 0; i < 250; i++) {
        const p = paths[(i + k) % paths.length];
        const r = await api(d.url, 'GET', p);
        n++;
        if (r.status !== 200) errors.push(`${p}: ${r.status}`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, k) => client(k)));
    assert.equal(n, 2000);
    assert.deepEqual(errors, []);
    for (const id of [a.id, b.id]) {
      assert.equal((await api(d.url, 'GET', `/v1/jobs/${id}`)).json.state, 'running', `${id} trained all along`);
    }
    await api(d.url, 'POST', `/v1/jobs/${a.id}/cancel`);
    await api(d.url, 'POST', `/v1/jobs/${b.id}/cancel`);
    assert.equal((await d.stop()).code, 0);
  });
});

// Every answer says how long the daemon took over it (Server-Timing: head in to answer
// queued), and /metrics keeps those times as a histogram: an operator can tell a slow daemon
// from a slow client or network.
test('answers carry the daemon\'s time; /metrics counts every answer in its time histogram', async () => {
  await withDaemon({}, async (d) => {
    const hist = async () => {
      const t = (await api(d.url, 'GET', '/metrics')).text;
      const buckets = [...t.matchAll(/^anneald_http_request_duration_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)]
        .map((m) => [m[1], Number(m[2])]);
      const count = Number(/^anneald_http_request_duration_seconds_count (\d+)$/m.exec(t)[1]);
      const sum = Number(/^anneald_http_request_duration_seconds_sum ([0-9.e+-]+)$/m.exec(t)[1]);
      return {buckets, count, sum};
    };
    const job = (await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 50}))).json;
    const before = await hist();
    // answered on the loop, after deferred work, an error, a streamed CSV
    const paths = ['/healthz', `/v1/jobs/${job.id}`, `/v1/jobs/${job.id}/metrics?max_points=20`,
      '/v1/jobs/j_999999', '/no/such/path', `/v1/jobs/${job.id}/metrics?format=csv`];
    for (const p of paths) {
      const r = await fetch(d.url + p);
      await r.text();
      const m = /^app;dur=([0-9]+\.[0-9]{3})$/.exec(r.headers.get('server-timing') ?? '');
      assert.ok(m, `${p} (${r.status}): Server-Timing ${r.headers.get('server-timing')}`);
      assert.ok(Number(m[1]) >= 0 && Number(m[1]) < 60000, `${p}: ${m[1]} ms`);
    }
    const after = await hist();
    // the first /metrics read is counted by the second; the second by neither
    assert.equal(after.count - before.count, paths.length + 1);
    assert.ok(after.sum > before.sum);
    assert.equal(after.buckets.at(-1)[0], '+Inf');
    assert.equal(after.buckets.at(-1)[1], after.count);
    for (let i = 1; i < after.buckets.length; i++) {
      assert.ok(Number(after.buckets[i][0]) > Number(after.buckets[i - 1][0]) || after.buckets[i][0] === '+Inf');
      assert.ok(after.buckets[i][1] >= after.buckets[i - 1][1], 'cumulative buckets');
    }
  });
});
