// A long queue: 3,000 tiny jobs wait behind one that holds the only worker. A job's place and
// a PATCH of its priority must not cost the queue's length (the queue is a counted tree, the
// runs are indexed by id: jobs/qtree.c, jobs/runindex.c), and the order stays API.md's:
// higher priority first, then the oldest. The daemon's own time (Server-Timing) is measured,
// not the client's.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {api, tutorialJob, waitJob, withDaemon} from './lib.mjs';

const N = 3000;
const HOLD = {args: ['--workers', '1'], env: {ANNEALD_FAULT: 'hang'}};

const appMs = (r) => {
  const m = /app;dur=([0-9.]+)/.exec(r.headers.get('server-timing') ?? '');
  assert.ok(m, `Server-Timing ${r.headers.get('server-timing')}`);
  return Number(m[1]);
};
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

test(`with ${N} jobs queued, a job's GET and a PATCH cost what they cost with none, and the order holds`, async () => {
  await withDaemon(HOLD, async (d) => {
    // holds the worker without using a core (it stops making steps at step 1), and keeps it
    const hold = (await api(d.url, 'POST', '/v1/jobs', tutorialJob({name: 'hang-at-1', stall_timeout_s: 1e6, preemptible: false}))).json;
    await waitJob(d.url, hold.id, (j) => j.state === 'running');
    const jobs = new Array(N);
    let next = 0;
    const submitter = async () => {
      for (let i; (i = next++) < N;) {
        const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({name: `q${i}`, steps: 5, priority: i % 3}));
        assert.equal(r.status, 201, r.text);
        const j = r.json;
        jobs[i] = {id: j.id, seq: Number(j.id.slice(2)), priority: i % 3};
      }
    };
    await Promise.all([1, 2, 3, 4].map(submitter));
    // the order of API.md: priority descending, then job number ascending
    const order = [...jobs].sort((a, b) => b.priority - a.priority || a.seq - b.seq);
    const place = new Map(order.map((j, i) => [j.id, i + 1]));
    for (const k of [0, 1, 999, 1000, 1999, 2000, N - 1]) {
      const j = (await api(d.url, 'GET', `/v1/jobs/${order[k].id}`)).json;
      assert.deepEqual([j.queue_position, j.queue_length], [k + 1, N], order[k].id);
    }
    const list = (await api(d.url, 'GET', '/v1/jobs?state=queued&limit=1000&offset=500')).json;
    assert.equal(list.total, N);
    for (const j of list.jobs) assert.deepEqual([j.queue_position, j.queue_length], [place.get(j.id), N], j.id);

    // The daemon's time of a job's GET, beside one of its checkpoints' list (the same read of
    // the store and the same way through the request queue, but nothing of the manager),
    // asked in turn so that both see the same load. With a queue walked or copied per answer
    // (as it was), the job's GET took 4 times as long here as with no queue; now the two are
    // alike: the bound leaves twice that, and a fifth of a millisecond for a slow machine.
    const probe = order[N / 2].id;
    const get = [], base = [];
    for (let i = 0; i < 60; i++) {
      get.push(appMs(await api(d.url, 'GET', `/v1/jobs/${probe}`)));
      base.push(appMs(await api(d.url, 'GET', `/v1/jobs/${probe}/checkpoints`)));
    }
    assert.ok(median(get) <= 2 * median(base) + 0.2,
              `GET /v1/jobs/{id} ${median(get)} ms (median), a checkpoint list ${median(base)} ms`);

    // PATCH moves the youngest job of the lowest priority to the head, in its answer and for
    // everyone. Its time is a store write's (a few ms); 50 ms (median) is far above that and
    // far below what walking a queue a request costs at a few hundred thousand jobs.
    const patchMs = [];
    const young = order.slice(-20).reverse();
    for (const [i, j] of young.entries()) {
      const r = await api(d.url, 'PATCH', `/v1/jobs/${j.id}`, {priority: 10});
      assert.equal(r.status, 200, r.text);
      // each one raised goes after those raised before it (older ones are ahead of it only
      // when older: these come youngest first, so each goes first)
      assert.deepEqual([r.json.queue_position, r.json.queue_length], [1, N], `${j.id} (${i})`);
      patchMs.push(appMs(r));
    }
    assert.ok(median(patchMs) < 50, `PATCH ${median(patchMs)} ms (median)`);
    const head = (await api(d.url, 'GET', `/v1/jobs/${young.at(-1).id}`)).json;
    assert.equal(head.queue_position, 1);
    const second = (await api(d.url, 'GET', `/v1/jobs/${young.at(-2).id}`)).json;
    assert.equal(second.queue_position, 2);
    const formerHead = (await api(d.url, 'GET', `/v1/jobs/${order[0].id}`)).json;
    assert.equal(formerHead.queue_position, young.length + 1);
  });
});
