// A daemon runs for months: what clients do over and over, carelessly too, must give back
// every descriptor and thread it took. (bench/soak.mjs is the long form, minutes of it.)
import {test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import {SANITIZED, SLOW, api, sleep, tutorialJob, waitFor, waitJob, withDaemon} from './lib.mjs';

const TEXT = 'to be or not to be, that is the question: whether tis nobler in the mind to suffer ' +
             'the slings and arrows of outrageous fortune, or to take arms against a sea of troubles';

// Sends `text` on a raw connection and leaves: after `ms`, or (readNothing) without ever
// reading what comes back, so the daemon's writes back up.
function rawVisit(url, text, {ms = 150, readNothing = false} = {}) {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port), u.hostname);
    s.on('error', () => resolve());
    s.on('connect', () => {
      s.write(text.replaceAll('HOST', u.host));
      if (readNothing) s.pause();
      setTimeout(() => { s.destroy(); resolve(); }, ms);
    });
    if (!readNothing) s.on('data', () => {});
  });
}

function metric(text, re) {
  const m = re.exec(text);
  return m ? Number(m[1]) : NaN;
}

// The daemon's descriptors other than its connections' sockets (the store, pipes, the loop's
// own), its connections as it counts them, and its threads.
async function figures(d) {
  const m = (await api(d.url, 'GET', '/metrics')).text;
  const pid = d.proc.pid;
  let sockets = 0;
  let other = 0;
  for (const f of fs.readdirSync(`/proc/${pid}/fd`)) {
    let t = '';
    try { t = fs.readlinkSync(`/proc/${pid}/fd/${f}`); } catch { continue; }
    if (t.startsWith('socket:') && Number(f) > 2) sockets++; else other++; /* stdout, stderr: the test's pipes */
  }
  return {
    other, sockets,
    conns: metric(m, /^anneald_connections\{state="open"\} (\d+)/m) + metric(m, /^anneald_connections\{state="head"\} (\d+)/m),
    sse: metric(m, /^anneald_sse_clients (\d+)/m),
    threads: fs.readdirSync(`/proc/${pid}/task`).length,
  };
}

test('dropped streams, abandoned exports and generations, cut uploads and half-sent heads give back every fd and thread', {timeout: 240000 * SLOW}, async () => {
  await withDaemon({args: ['--workers', '2']}, async (d) => {
    const url = d.url;
    const lin = (await api(url, 'POST', '/v1/jobs', tutorialJob({steps: 2000}))).json.id;
    const gpt = (await api(url, 'POST', '/v1/jobs', {
      name: 'soak-gpt', seed: 3, model: {type: 'gpt', block_size: 8, n_layer: 1, n_head: 2, n_embd: 16},
      data: {type: 'text', text: TEXT}, steps: 20, checkpoint: {every_steps: 10},
      ds_config: {train_batch_size: 4, optimizer: {type: 'AdamW', params: {lr: 0.003}}}})).json.id;
    await waitJob(url, lin, (j) => j.state === 'completed');
    await waitJob(url, gpt, (j) => j.state === 'completed');
    const gen = JSON.stringify({prompt: 'to', max_tokens: 5000});
    const csv = 'a,b,c\n' + Array.from({length: 100}, (_, i) => `${i},${2 * i},${i % 3}`).join('\n') + '\n';

    const round = async (k) => {
      // a job that runs, pauses, resumes, is cancelled and deleted, with streams on it
      const job = (await api(url, 'POST', '/v1/jobs', tutorialJob({steps: 100000000}))).json.id;
      const streams = [
        rawVisit(url, `GET /v1/jobs/${job}/events HTTP/1.1\r\nHost: HOST\r\n\r\n`, {ms: 400}),
        rawVisit(url, 'GET /v1/events HTTP/1.1\r\nHost: HOST\r\n\r\n', {ms: 600, readNothing: true}),
        rawVisit(url, 'GET /v1/events HTTP/1.1\r\nHost: HOST\r\nLast-Event-ID: 1\r\n\r\n', {ms: 100}),
      ];
      await waitJob(url, job, (j) => j.state === 'running' && j.step > 0);
      assert.equal((await api(url, 'POST', `/v1/jobs/${job}/pause`)).status, 200);
      await waitJob(url, job, (j) => j.state === 'paused');
      assert.equal((await api(url, 'POST', `/v1/jobs/${job}/resume`)).status, 200);
      assert.equal((await api(url, 'POST', `/v1/jobs/${job}/cancel`)).status, 200);
      // exports and weights not read or dropped after their first bytes
      await rawVisit(url, `GET /v1/jobs/${lin}/metrics?format=csv HTTP/1.1\r\nHost: HOST\r\n\r\n`, {ms: 200, readNothing: true});
      await rawVisit(url, `GET /v1/jobs/${lin}/metrics?format=csv HTTP/1.1\r\nHost: HOST\r\n\r\n`, {ms: 20});
      await rawVisit(url, `GET /v1/jobs/${lin}/weights HTTP/1.1\r\nHost: HOST\r\n\r\n`, {ms: 20, readNothing: true});
      // generations left, streamed and not
      for (const accept of ['text/event-stream', 'application/json']) {
        await rawVisit(url, `POST /v1/jobs/${gpt}/generate HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\n` +
                            `Accept: ${accept}\r\nContent-Length: ${gen.length}\r\n\r\n${gen}`, {ms: 200});
      }
      // uploads cut mid-body, a whole one deleted
      await rawVisit(url, `POST /v1/datasets?name=cut${k} HTTP/1.1\r\nHost: HOST\r\nContent-Type: text/csv\r\n` +
                          `Content-Length: 100000\r\n\r\n${csv}`, {ms: 200});
      await rawVisit(url, `POST /v1/datasets?name=chunk${k} HTTP/1.1\r\nHost: HOST\r\nContent-Type: text/plain\r\n` +
                          `Transfer-Encoding: chunked\r\n\r\n400\r\n${'x'.repeat(1024)}\r\n`, {ms: 200});
      const ds = await api(url, 'POST', `/v1/datasets?name=whole${k}`, csv, {'Content-Type': 'text/csv'});
      assert.equal(ds.status, 201);
      assert.equal((await api(url, 'DELETE', `/v1/datasets/${ds.json.id}`)).status, 204);
      // heads left half-sent, and garbage
      await rawVisit(url, 'GET /v1/jobs HTTP/1.1\r\nHost: HOST\r\n', {ms: 50});
      await rawVisit(url, 'GARBAGE\r\n\r\n', {ms: 50});
      await Promise.all(streams);
      await waitJob(url, job, (j) => j.state === 'cancelled');
      assert.equal((await api(url, 'DELETE', `/v1/jobs/${job}`)).status, 204);
    };

    // Everything settled: no stream, no waiting head, and the daemon's own count of its
    // connections is what its sockets say (besides the listening one).
    let last = null;
    const settled = (want) => waitFor(async () => {
      const f = last = await figures(d);
      return f.sse === 0 && f.sockets === f.conns + 1 && (!want || (f.other === want.other && f.threads === want.threads)) && f;
    }, {timeoutMs: 15000, what: () => `the figures to settle at ${JSON.stringify(want)} (last ${JSON.stringify(last)})`});

    // warm-up: the request threads' store connections, caches and thread teams start on first use
    await round(-1);
    await round(0);
    const base = await settled();
    for (let k = 1; k <= 4; k++) await round(k);
    const end = await settled(base).catch(async (e) => {
      throw new Error(`${e.message}; now ${JSON.stringify(await figures(d))}`);
    });
    assert.equal(end.other, base.other, 'descriptors other than connections');
    assert.equal(end.threads, base.threads, 'threads');
    assert.equal((await api(url, 'GET', '/v1/datasets')).json.datasets.length, 0);
    assert.equal((await api(url, 'GET', '/v1/jobs')).json.total, 2);
  });
});

// Jobs end and their memory goes back to the system: each of these jobs' parameters, gradients,
// optimizer state and checkpoint blobs (4 to 28 MiB each) is smaller than the last one's, which
// glibc's sliding mmap threshold would put in malloc's arenas and keep there (the daemon grew
// by about 100 MiB over these eight jobs). The arena tops may keep 8 MiB each.
// (AddressSanitizer's allocator keeps its own pages: not under make check.)
test('the memory of ended jobs goes back to the system', {timeout: 240000 * SLOW, skip: SANITIZED}, async () => {
  await withDaemon({args: ['--workers', '1']}, async (d) => {
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${d.proc.pid}/status`, 'utf8'))[1]) / 1024;
    const after = [];
    for (const C of [384, 352, 320, 288, 256, 224, 192, 160]) {
      const r = await api(d.url, 'POST', '/v1/jobs', {
        name: `shrinking-${C}`, seed: 1, model: {type: 'gpt', block_size: 16, n_layer: 4, n_head: 4, n_embd: C},
        data: {type: 'builtin', name: 'tinyshakespeare', sampling: 'random'}, steps: 2, checkpoint: {every_steps: 1},
        ds_config: {train_batch_size: 2, optimizer: {type: 'AdamW', params: {lr: 1e-3}}}});
      assert.equal(r.status, 201, r.text);
      await waitJob(d.url, r.json.id, (j) => j.state === 'completed', 120000 * SLOW);
      await sleep(200); /* the worker gives the memory back after it reports the job's end */
      after.push(rss());
    }
    const grew = after.at(-1) - after[0];
    assert.ok(grew < 32, `resident memory after each job (MiB): ${after.map((v) => v.toFixed(1)).join(', ')}: ` +
                         `grew by ${grew.toFixed(1)} MiB`);
  });
});
