// End-to-end tests of scheduling: priorities and the queue's order, preemption at a
// checkpoint with a bit-exact continuation, max_runtime_s, the stall watchdog with its
// restarts (test hook ANNEALD_FAULT=hang), PATCH of a job's labels, list filters by tag and
// text, and the scheduling series of /metrics.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import {api, heavyJob, readEvents, tutorialJob, waitFor, waitJob, withDaemon} from './lib.mjs';

const ONE = {args: ['--workers', '1']};

// GET /metrics checked by promtool; resolves to the text.
async function exposition(url) {
  const r = await api(url, 'GET', '/metrics');
  assert.equal(r.status, 200);
  const p = spawnSync('promtool', ['check', 'metrics'], {input: r.text, encoding: 'utf8'});
  if (p.error) throw new Error(`promtool: ${p.error.message} (make deps installs prometheus)`);
  assert.equal(p.status, 0, `promtool check metrics: ${p.stdout}${p.stderr}\n${r.text}`);
  return r.text;
}

function sample(text, name) {
  const m = new RegExp(`^${name.replace(/[{}"]/g, (c) => '\\' + c)} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

async function submit(url, spec) {
  const r = await api(url, 'POST', '/v1/jobs', spec);
  assert.equal(r.status, 201, r.text);
  return r.json;
}

// A job of a few thousand steps that trains long enough to be running when a test acts.
const LONG = heavyJob({name: 'low', steps: 6000, checkpoint: {every_steps: 500, keep_last: 2}});

test('a priority-10 job preempts a running priority-0 job, which then finishes bit for bit as an uninterrupted run', async () => {
  const ref = await withDaemon(ONE, async (d) => {
    const a = await submit(d.url, LONG);
    await waitJob(d.url, a.id, (j) => j.state === 'completed', 120000);
    return (await api(d.url, 'GET', `/v1/jobs/${a.id}/weights`)).text;
  });
  await withDaemon(ONE, async (d) => {
    const a = await submit(d.url, LONG);
    assert.equal(a.spec.priority, 0);
    assert.equal(a.spec.preemptible, true);
    assert.equal(a.preempted, false);
    await waitJob(d.url, a.id, (j) => j.state === 'running' && j.step >= 200);
    const b = await submit(d.url, heavyJob({name: 'high', priority: 10, steps: 3000}));
    // The low job lets go at a checkpoint and waits, marked preempted, while the high one runs.
    const seen = await waitJob(d.url, a.id, (j) => j.state === 'queued' && j.preempted === true, 10000);
    assert.ok(seen.step < LONG.steps, `preempted at step ${seen.step}`);
    assert.equal(seen.last_checkpoint_step, seen.step);
    await waitJob(d.url, b.id, (j) => j.state === 'running' || j.state === 'completed', 5000);
    const bdone = await waitJob(d.url, b.id, (j) => j.state === 'completed', 120000);
    assert.equal(bdone.step, 3000);
    const done = await waitJob(d.url, a.id, (j) => j.state === 'completed', 120000);
    assert.equal(done.step, LONG.steps);
    assert.equal(done.preempted, false);
    const w = (await api(d.url, 'GET', `/v1/jobs/${a.id}/weights`)).text;
    assert.equal(w, ref, 'the preempted job ends with the uninterrupted run\'s weights');
    const m = await exposition(d.url);
    assert.equal(sample(m, 'anneald_preemptions_total'), 1);
  });
});

test('with two workers busy, the running job of lowest priority is the one preempted', async () => {
  await withDaemon({args: ['--workers', '2']}, async (d) => {
    const a = await submit(d.url, heavyJob({name: 'one', priority: 1}));
    const b = await submit(d.url, heavyJob({name: 'zero', priority: 0}));
    await waitJob(d.url, a.id, (j) => j.state === 'running' && j.step > 0);
    await waitJob(d.url, b.id, (j) => j.state === 'running' && j.step > 0);
    const c = await submit(d.url, heavyJob({name: 'five', priority: 5}));
    await waitJob(d.url, b.id, (j) => j.state === 'queued' && j.preempted === true, 10000);
    await waitJob(d.url, c.id, (j) => j.state === 'running', 10000);
    assert.equal((await api(d.url, 'GET', `/v1/jobs/${a.id}`)).json.state, 'running');
    const m = await exposition(d.url);
    assert.equal(sample(m, 'anneald_preemptions_total'), 1);
    assert.equal(sample(m, 'anneald_queue_depth{priority="0"}'), 1);
    for (const j of [a, b, c]) assert.equal((await api(d.url, 'POST', `/v1/jobs/${j.id}/cancel`)).status, 200);
  });
});

test('a job that is not preemptible keeps its worker; equal priorities do not preempt', async () => {
  await withDaemon(ONE, async (d) => {
    const a = await submit(d.url, heavyJob({name: 'keep', preemptible: false}));
    await waitJob(d.url, a.id, (j) => j.state === 'running' && j.step > 0);
    const b = await submit(d.url, tutorialJob({name: 'urgent', priority: 5}));
    const c = await submit(d.url, tutorialJob({name: 'same', priority: 0}));
    let m;
    await waitFor(async () => {
      m = await exposition(d.url);
      return sample(m, 'anneald_queue_depth{priority="5"}') === 1;
    }, {what: 'queue depth by priority'});
    assert.equal(sample(m, 'anneald_queue_depth{priority="0"}'), 1);
    await new Promise((r) => setTimeout(r, 1500)); // several watchdog/scheduler turns
    assert.equal((await api(d.url, 'GET', `/v1/jobs/${a.id}`)).json.state, 'running');
    assert.equal((await api(d.url, 'GET', `/v1/jobs/${b.id}`)).json.state, 'queued');
    assert.equal(sample(await exposition(d.url), 'anneald_preemptions_total'), 0);
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${a.id}/cancel`)).status, 200);
    await waitJob(d.url, b.id, (j) => j.state === 'completed');
    await waitJob(d.url, c.id, (j) => j.state === 'completed');
  });
});

test('the queue runs higher priorities first, equals oldest first, and PATCH moves a queued job', async () => {
  await withDaemon(ONE, async (d) => {
    const block = await submit(d.url, heavyJob({name: 'block', preemptible: false}));
    await waitJob(d.url, block.id, (j) => j.state === 'running');
    const x = await submit(d.url, tutorialJob({name: 'x'}));
    const y = await submit(d.url, tutorialJob({name: 'y', priority: 2}));
    const z = await submit(d.url, tutorialJob({name: 'z', priority: 2}));
    const v = await submit(d.url, tutorialJob({name: 'v'}));
    // v was last of the priority-0 jobs; raised to 3 it goes first.
    const p = await api(d.url, 'PATCH', `/v1/jobs/${v.id}`, {priority: 3});
    assert.equal(p.status, 200, p.text);
    assert.equal(p.json.spec.priority, 3);
    let opened;
    const open = new Promise((r) => { opened = r; });
    const evs = readEvents(d.url, '/v1/events', {
      until: (es) => es.filter((e) => e.event === 'state' && e.data.state === 'completed').length >= 4,
      timeoutMs: 60000, onOpen: opened});
    await open; // the stream is subscribed before the blocker goes
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${block.id}/cancel`)).status, 200);
    const order = (await evs).filter((e) => e.event === 'state' && e.data.state === 'running')
      .map((e) => e.data.id).filter((id) => id !== block.id);
    assert.deepEqual(order, [v.id, y.id, z.id, x.id]);
  });
});

test('max_runtime_s: the job is checkpointed and fails with error max_runtime', async () => {
  await withDaemon(ONE, async (d) => {
    const a = await submit(d.url, heavyJob({name: 'capped', max_runtime_s: 0.5}));
    assert.equal(a.spec.max_runtime_s, 0.5);
    const f = await waitFor(async () => {
      const x = (await api(d.url, 'GET', `/v1/jobs/${a.id}`)).json;
      return x.state === 'failed' || x.state === 'completed' ? x : null;
    }, {timeoutMs: 30000, what: 'the capped job to end'});
    assert.equal(f.state, 'failed');
    assert.match(f.error, /^max_runtime: /);
    assert.ok(f.step > 0 && f.step < 100000000);
    assert.equal(f.last_checkpoint_step, f.step, 'checkpointed where it stopped');
    // The limit counts training time in total: resumed, it fails again at once (no new steps
    // beyond what the limit allows are trained).
    const r = await api(d.url, 'POST', `/v1/jobs/${a.id}/resume`);
    assert.equal(r.status, 200);
    const again = await waitFor(async () => {
      const x = (await api(d.url, 'GET', `/v1/jobs/${a.id}`)).json;
      return x.state === 'failed' ? x : null;
    }, {what: 'the resumed job to fail again'});
    assert.match(again.error, /^max_runtime: /);
    assert.ok(again.step - f.step < 2000, `trained ${again.step - f.step} more steps`);
  });
});

test('a job that hangs is restarted from its latest checkpoint, then failed after max_restarts', async () => {
  await withDaemon({...ONE, env: {ANNEALD_FAULT: 'hang'}}, async (d) => {
    const a = await submit(d.url, tutorialJob({
      name: 'hang-at-50', stall_timeout_s: 0.5, max_restarts: 2,
      checkpoint: {every_steps: 10, keep_last: 2}}));
    assert.equal(a.spec.max_restarts, 2);
    const restarted = await waitJob(d.url, a.id, (j) => j.restarts >= 1, 20000);
    assert.ok(['queued', 'running'].includes(restarted.state), restarted.state);
    const f = await waitFor(async () => {
      const x = (await api(d.url, 'GET', `/v1/jobs/${a.id}`)).json;
      return x.state === 'failed' ? x : null;
    }, {timeoutMs: 30000, what: 'the stalled job to fail'});
    assert.match(f.error, /^stalled: no step for 0\.5 s .* after 2 restarts \(max_restarts 2\)/);
    assert.equal(f.step, 50);
    assert.equal(f.last_checkpoint_step, 50);
    const m = await exposition(d.url);
    assert.equal(sample(m, 'anneald_job_restarts_total'), 2);
    assert.equal(sample(m, 'anneald_job_stall_failures_total'), 1);
    // An ordinary job on the same daemon is not touched by the hook or the watchdog.
    const ok = await submit(d.url, tutorialJob({name: 'fine', stall_timeout_s: 0.5}));
    await waitJob(d.url, ok.id, (j) => j.state === 'completed');
  });
});

test('PATCH changes priority, tags, notes and name only; bad input is a 400 naming the field and changes nothing', async () => {
  await withDaemon(ONE, async (d) => {
    const a = await submit(d.url, tutorialJob({name: 'labels', tags: ['baseline'], notes: 'first try'}));
    await waitJob(d.url, a.id, (j) => j.state === 'completed');
    const before = (await api(d.url, 'GET', `/v1/jobs/${a.id}`)).json;
    assert.deepEqual(before.spec.tags, ['baseline']);
    assert.equal(before.spec.notes, 'first try');
    const bad = [
      [{priority: 'high'}, 'priority'], [{priority: 1.5}, 'priority'], [{priority: 2e6}, 'priority'],
      [{tags: 'x'}, 'tags'], [{tags: [1]}, 'tags[0]'], [{tags: ['a', 'a']}, 'tags[1]'],
      [{tags: ['x'.repeat(64)]}, 'tags[0]'], [{notes: 5}, 'notes'], [{notes: 'n'.repeat(5000)}, 'notes'],
      [{name: ''}, 'name'], [{name: 7}, 'name'], [{steps: 5}, 'steps'], [{}, null], [[1], null],
    ];
    for (const [body, field] of bad) {
      const r = await api(d.url, 'PATCH', `/v1/jobs/${a.id}`, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.json.error.code, 'invalid_argument');
      if (field) assert.equal(r.json.error.field, field, JSON.stringify(body));
    }
    const mal = await api(d.url, 'PATCH', `/v1/jobs/${a.id}`, '{"priority": ', {'Content-Type': 'application/json'});
    assert.equal(mal.status, 400);
    assert.match(mal.json.error.message, /malformed JSON/);
    const huge = await api(d.url, 'PATCH', `/v1/jobs/${a.id}`, JSON.stringify({notes: 'x'.repeat(80 << 20)}),
                           {'Content-Type': 'application/json'}).catch((e) => ({status: 413, err: e}));
    assert.equal(huge.status, 413);
    assert.equal((await api(d.url, 'PATCH', '/v1/jobs/j_999999', {priority: 1})).status, 404);
    assert.deepEqual((await api(d.url, 'GET', `/v1/jobs/${a.id}`)).json, before, 'nothing changed');

    const r = await api(d.url, 'PATCH', `/v1/jobs/${a.id}`, {tags: ['lr-test', 'x'], notes: 'Warmup 10%', name: 'renamed'});
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.name, 'renamed');
    assert.equal(r.json.spec.name, 'renamed');
    assert.deepEqual(r.json.spec.tags, ['lr-test', 'x']);
    assert.equal(r.json.spec.notes, 'Warmup 10%');
    assert.equal(r.json.spec.priority, 0, 'priority untouched');
    const {name: _n, tags: _t, notes: _o, ...restAfter} = r.json.spec;
    const {name: _n2, tags: _t2, notes: _o2, ...restBefore} = before.spec;
    assert.deepEqual(restAfter, restBefore, 'the rest of the spec is as it was');
    assert.equal(r.json.state, 'completed');
    assert.equal(r.json.step, before.step);
  });
});

test('GET /v1/jobs?tag=&q= filters by tag and by text in name or notes', async () => {
  await withDaemon(ONE, async (d) => {
    const a = await submit(d.url, tutorialJob({name: 'alpha run', tags: ['baseline'], notes: 'plain 100% warmup'}));
    const b = await submit(d.url, tutorialJob({name: 'beta', tags: ['baseline', 'lr-test']}));
    const c = await submit(d.url, tutorialJob({name: 'gamma', notes: 'ALPHA in notes'}));
    const ids = async (qs) => {
      const r = await api(d.url, 'GET', `/v1/jobs?${qs}`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.total, r.json.jobs.length);
      return r.json.jobs.map((j) => j.id);
    };
    assert.deepEqual(await ids('tag=baseline'), [b.id, a.id]);
    assert.deepEqual(await ids('tag=lr-test'), [b.id]);
    assert.deepEqual(await ids('tag=base'), [], 'tags match exactly');
    assert.deepEqual(await ids('q=alpha'), [c.id, a.id], 'name or notes, either case');
    assert.deepEqual(await ids('q=alpha&tag=baseline'), [a.id]);
    assert.deepEqual(await ids('q=100%25'), [a.id], '% is plain text');
    assert.deepEqual(await ids('q=_'), [], '_ is plain text');
    assert.deepEqual(await ids('q='), [c.id, b.id, a.id]);
    const long = await api(d.url, 'GET', `/v1/jobs?tag=${'t'.repeat(64)}`);
    assert.equal(long.status, 400);
    assert.equal(long.json.error.field, 'tag');
    const lq = await api(d.url, 'GET', `/v1/jobs?q=${'q'.repeat(300)}`);
    assert.equal(lq.status, 400);
    assert.equal(lq.json.error.field, 'q');
  });
});

test('scheduling keys of a spec: defaults filled in, bad values refused naming the key', async () => {
  await withDaemon(ONE, async (d) => {
    const a = await submit(d.url, tutorialJob());
    assert.deepEqual(
      {p: a.spec.priority, e: a.spec.preemptible, s: a.spec.stall_timeout_s, r: a.spec.max_restarts, t: a.spec.tags, n: a.spec.notes},
      {p: 0, e: true, s: 600, r: 3, t: [], n: ''});
    assert.equal('max_runtime_s' in a.spec, false);
    const bad = [
      [{priority: '1'}, 'priority'], [{priority: 1e7}, 'priority'], [{preemptible: 1}, 'preemptible'],
      [{max_runtime_s: 0}, 'max_runtime_s'], [{max_runtime_s: -1}, 'max_runtime_s'],
      [{stall_timeout_s: 0}, 'stall_timeout_s'], [{stall_timeout_s: 'x'}, 'stall_timeout_s'],
      [{max_restarts: -1}, 'max_restarts'], [{max_restarts: 1.5}, 'max_restarts'],
      [{tags: {}}, 'tags'], [{tags: ['ok', '']}, 'tags[1]'], [{tags: ['a\nb']}, 'tags[0]'],
      [{tags: Array.from({length: 33}, (_, i) => `t${i}`)}, 'tags'], [{notes: ['x']}, 'notes'],
    ];
    for (const [over, field] of bad) {
      const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob(over));
      assert.equal(r.status, 400, JSON.stringify(over));
      assert.equal(r.json.error.field, field, JSON.stringify(over));
    }
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.total, 1, 'nothing stored');
  });
});

test('queue_position and queue_length follow the order the workers take: submit, PATCH, pause, resume, cancel, start', async () => {
  await withDaemon(ONE, async (d) => {
    const place = async (id) => {
      const j = (await api(d.url, 'GET', `/v1/jobs/${id}`)).json;
      return [j.queue_position, j.queue_length];
    };
    const places = (ids) => Promise.all(ids.map(place));
    const expectOrder = async (ids, what) => assert.deepEqual(
      await places(ids), ids.map((_, i) => [i + 1, ids.length]), what);
    const block = await submit(d.url, heavyJob({name: 'block', preemptible: false}));
    assert.deepEqual([block.queue_position, block.queue_length], [1, 1], 'alone in the queue');
    await waitJob(d.url, block.id, (j) => j.state === 'running');
    assert.deepEqual(await place(block.id), [null, null], 'running: no place');
    // queued behind the blocker: the POST answer already shows each one's place
    const a = await submit(d.url, heavyJob({name: 'a'}));
    const b = await submit(d.url, heavyJob({name: 'b', priority: 2}));
    const c = await submit(d.url, heavyJob({name: 'c'}));
    const e = await submit(d.url, heavyJob({name: 'e', priority: 1}));
    assert.deepEqual([a, b, c, e].map((j) => [j.queue_position, j.queue_length]),
                     [[1, 1], [1, 2], [3, 3], [2, 4]]);
    await expectOrder([b.id, e.id, a.id, c.id], 'by priority, then age');
    // a list carries the same places, and null for the running job
    for (const qs of ['', '?state=queued', '?state=queued&limit=2&offset=1']) {
      const l = (await api(d.url, 'GET', `/v1/jobs${qs}`)).json.jobs;
      for (const j of l)
        assert.deepEqual([j.queue_position, j.queue_length], await place(j.id), `${qs} ${j.id}`);
    }
    // PATCH: c goes first, in the answer and at once for every job
    const p = await api(d.url, 'PATCH', `/v1/jobs/${c.id}`, {priority: 5});
    assert.equal(p.status, 200, p.text);
    assert.deepEqual([p.json.queue_position, p.json.queue_length], [1, 4]);
    await expectOrder([c.id, b.id, e.id, a.id], 'after the PATCH');
    // a PATCH of another field keeps the place; one of a running job gives none
    const n = await api(d.url, 'PATCH', `/v1/jobs/${e.id}`, {notes: 'waits'});
    assert.deepEqual([n.json.queue_position, n.json.queue_length], [3, 4]);
    const r = await api(d.url, 'PATCH', `/v1/jobs/${block.id}`, {priority: 9});
    assert.deepEqual([r.json.queue_position, r.json.queue_length], [null, null]);
    // pause leaves the queue, resume takes the job's place back
    const pa = await api(d.url, 'POST', `/v1/jobs/${b.id}/pause`);
    assert.equal(pa.json.state, 'paused');
    assert.deepEqual([pa.json.queue_position, pa.json.queue_length], [null, null]);
    await expectOrder([c.id, e.id, a.id], 'b paused');
    const re = await api(d.url, 'POST', `/v1/jobs/${b.id}/resume`);
    assert.equal(re.json.state, 'queued');
    assert.deepEqual([re.json.queue_position, re.json.queue_length], [2, 4]);
    await expectOrder([c.id, b.id, e.id, a.id], 'b resumed');
    // cancel of a queued job: the later ones move up
    const x = await api(d.url, 'POST', `/v1/jobs/${b.id}/cancel`);
    assert.equal(x.json.state, 'cancelled');
    assert.deepEqual([x.json.queue_position, x.json.queue_length], [null, null]);
    await expectOrder([c.id, e.id, a.id], 'b cancelled');
    // the blocker ends: the first one starts and has no place, the others move up
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${block.id}/cancel`)).status, 200);
    const run = await waitJob(d.url, c.id, (j) => j.state === 'running');
    assert.deepEqual([run.queue_position, run.queue_length], [null, null]);
    await expectOrder([e.id, a.id], 'c started');
    for (const j of [block, b])
      assert.deepEqual(await place(j.id), [null, null], `${j.id} ended`);
    for (const j of [c, e, a]) assert.equal((await api(d.url, 'POST', `/v1/jobs/${j.id}/cancel`)).status, 200);
  });
});
