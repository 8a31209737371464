// Load test of the daemon: while two jobs train, wrk hammers GET /v1/jobs/{id} and GET
// /v1/jobs and 200 SSE clients (on /v1/events and on each job's /events) follow the jobs'
// progress. Passes when wrk sees no non-2xx response and no socket error, every SSE client
// keeps receiving progress to the end, both jobs keep training, and the daemon's resident
// memory is flat over the run (bench/wrk.mjs judgeFlat: after a warm-up, the last third's peak
// within 10 % + 4 MB of the first third's peak).
//
// LOAD_SECONDS sets the length of the run (default 36 s; `make load-test` runs 300 s),
// LOAD_SSE_CLIENTS the number of SSE clients (200), LOAD_WRK_CONNECTIONS wrk's connections
// (16). LOAD_REPORT=FILE appends a summary of the run to FILE. Under the sanitized build
// (make check) the run keeps every client and connection but is longer to sample enough of it,
// ASan's quarantine of freed memory is capped (it would otherwise fill up to 256 MB and look
// like growth), and the memory tolerance is wider.
//
// The memory check was seen to fail on a daemon that leaks 256 bytes per GET /v1/jobs/{id}
// (RSS peak from 50 to 68 MB against a limit of 59 MB).
import {test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import {SANITIZED, SLOW, api, heavyJob, sleep, waitJob, withDaemon} from './lib.mjs';
import {judgeFlat, parseWrk, readRss, runWrk} from '../../bench/wrk.mjs';

const SECONDS = Number(process.env.LOAD_SECONDS || (SANITIZED ? 48 : 36));
const CLIENTS = Number(process.env.LOAD_SSE_CLIENTS || 200);
const WRK_CONNECTIONS = Number(process.env.LOAD_WRK_CONNECTIONS || 16);
// Longest a client may go without a progress event: progress comes ~10 times a second per
// job, so this only trips on a stalled or dropped stream.
const MAX_GAP_MS = 5000 * SLOW;
const FLAT = SANITIZED ? {warmupFrac: 0.25, tol: 0.10, slackKb: 10240}
                       : {warmupFrac: 0.2, tol: 0.10, slackKb: 4096};

// One SSE client on its own socket: counts progress events and the longest gap between two.
// The clients come from 16 loopback addresses, as 200 viewers would: the daemon allows at most
// 32 streams per address (api/conns.h).
function sseClient(url, path, i) {
  const u = new URL(url);
  const c = {path, status: 0, progress: 0, last: 0, maxGap: 0, error: null, ended: false, req: null};
  let buf = '';
  c.req = http.get({host: u.hostname, port: u.port, path, agent: false, localAddress: `127.0.0.${2 + (i % 16)}`}, (res) => {
    c.status = res.statusCode;
    res.setEncoding('utf8');
    res.on('data', (chunk) => {
      buf += chunk;
      let k;
      while ((k = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, k);
        buf = buf.slice(k + 2);
        if (frame.startsWith('event: progress\n')) {
          const now = Date.now();
          if (c.last) c.maxGap = Math.max(c.maxGap, now - c.last);
          c.last = now;
          c.progress++;
        }
      }
    });
    res.on('end', () => { c.ended = true; });
    res.on('error', (e) => { if (!c.closing) c.error = e; });
  });
  c.req.on('error', (e) => { if (!c.closing) c.error = e; });
  c.close = () => { c.closing = true; c.req.destroy(); };
  return c;
}

test('parseWrk reads counts and rates, and finds every kind of error wrk reports', () => {
  const clean = `Running 5s test @ http://127.0.0.1:1/v1/jobs
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  300.00us   9.00ms   90.00%
    Req/Sec    15.50k     1.00k   17.00k    70.00%
  77123 requests in 5.00s, 40.10MB read
Requests/sec:  15420.51
Transfer/sec:      8.02MB
`;
  const r = parseWrk(clean);
  assert.equal(r.requests, 77123);
  assert.equal(r.seconds, 5);
  assert.equal(r.rps, 15420.51);
  assert.equal(r.errors, 0);
  const bad = clean.replace('  77123 requests in 5.00s, 40.10MB read\n',
    '  77123 requests in 5.00s, 40.10MB read\n  Socket errors: connect 3, read 1, write 0, timeout 7\n' +
    '  Non-2xx or 3xx responses: 12\n');
  const b = parseWrk(bad);
  assert.deepEqual(b.socketErrors, {connect: 3, read: 1, write: 0, timeout: 7});
  assert.equal(b.non2xx, 12);
  assert.equal(b.errors, 23);
  assert.equal(parseWrk(clean.replace('Requests/sec:  15420.51', 'Requests/sec:   1.20k')).rps, 1200);
  assert.throws(() => parseWrk('unable to connect to 127.0.0.1:1 Connection refused\n'), /not a wrk report/);
});

test('judgeFlat passes a flat or settling series and fails a steady leak', () => {
  const series = (f) => Array.from({length: 120}, (_, i) => ({t: i * 0.25, kb: f(i * 0.25)}));
  // Warm-up growth that settles, then noise of ±1 MB around 60 MB.
  const settling = series((t) => 40000 + Math.min(t, 5) * 4000 + ((t * 7) % 2) * 1000);
  assert.equal(judgeFlat(settling).flat, true);
  // 1 MB per second over 30 s: the last third is ~16 MB above the first.
  const leak = series((t) => 60000 + t * 1024);
  const j = judgeFlat(leak);
  assert.equal(j.flat, false);
  assert.ok(j.growthKb > 8000, `growth ${j.growthKb} kB`);
  assert.throws(() => judgeFlat(leak.slice(0, 5)), /only 5 memory samples/);
});

test(`load: wrk on GET /v1/jobs/{id} and /v1/jobs + ${CLIENTS} SSE clients while two jobs train, ${SECONDS} s`, {timeout: (SECONDS + 120) * 1000 * SLOW}, async () => {
  const env = SANITIZED ? {ASAN_OPTIONS: `${process.env.ASAN_OPTIONS || ''}:quarantine_size_mb=16`} : {};
  await withDaemon({args: ['--workers', '2'], env}, async (d) => {
    const a = await api(d.url, 'POST', '/v1/jobs', heavyJob({name: 'load-a'}));
    const b = await api(d.url, 'POST', '/v1/jobs', heavyJob({name: 'load-b', seed: 6, model: {type: 'mlp', inputs: 32, hidden: [128, 128], outputs: 1}}));
    assert.equal(a.status, 201);
    assert.equal(b.status, 201);
    const ids = [a.json.id, b.json.id];
    const startSteps = [];
    for (const id of ids) startSteps.push((await waitJob(d.url, id, (j) => j.state === 'running' && j.step > 0)).step);

    // Memory is sampled from before the clients connect to after wrk's last run.
    const samples = [];
    const t0 = Date.now();
    const sample = () => {
      const r = readRss(d.proc.pid);
      if (r) samples.push({t: (Date.now() - t0) / 1000, kb: r.VmRSS, anon: r.RssAnon, file: r.RssFile, shmem: r.RssShmem});
    };
    sample();
    const sampler = setInterval(sample, 250);

    // A quarter on the global stream, the rest on the two jobs' streams.
    const clients = [];
    for (let i = 0; i < CLIENTS; i++) {
      const path = i % 4 === 0 ? '/v1/events' : `/v1/jobs/${ids[i % 2]}/events`;
      clients.push(sseClient(d.url, path, i));
    }
    const reports = [];
    try {
      await (async () => {
        const end = Date.now() + 10000 * SLOW;
        while (clients.some((c) => c.progress === 0 && !c.error && !c.ended) && Date.now() < end) await sleep(100);
      })();
      const silent = clients.filter((c) => c.progress === 0);
      assert.equal(silent.length, 0, `${silent.length} SSE clients got no progress at all (first: ${silent[0]?.path} status ${silent[0]?.status} ${silent[0]?.error})`);

      // wrk in turns of a few seconds on each job's resource and on the list, until the time is up.
      const targets = [`/v1/jobs/${ids[0]}`, '/v1/jobs', `/v1/jobs/${ids[1]}`];
      const turn = Math.max(2, Math.min(6, Math.round(SECONDS / 6)));
      const runEnd = t0 + SECONDS * 1000;
      for (let k = 0; Date.now() + turn * 1000 <= runEnd + 500 || k < targets.length; k++) {
        const path = targets[k % targets.length];
        const r = await runWrk(d.url + path, {connections: WRK_CONNECTIONS, seconds: turn, timeout: 2 * SLOW});
        reports.push({path, ...r});
        assert.equal(r.errors, 0, `wrk on ${path}: ${r.non2xx} non-2xx, socket errors ${JSON.stringify(r.socketErrors)}\n${r.text}`);
        assert.ok(r.requests > 0, `wrk on ${path} made no request`);
        // Every stream is still alive and receiving.
        const now = Date.now();
        const stale = clients.filter((c) => c.error || c.ended || now - c.last > MAX_GAP_MS);
        assert.equal(stale.length, 0, `${stale.length} SSE clients stalled or ended during wrk on ${path} ` +
          `(first: ${stale[0]?.path}, error ${stale[0]?.error}, ended ${stale[0]?.ended}, last progress ${now - stale[0]?.last} ms ago)`);
      }
    } finally {
      clearInterval(sampler);
      sample();
      for (const c of clients) c.close();
    }

    // Both jobs trained on throughout.
    for (let i = 0; i < 2; i++) {
      const j = (await api(d.url, 'GET', `/v1/jobs/${ids[i]}`)).json;
      assert.equal(j.state, 'running', `job ${ids[i]} is ${j.state}: ${j.error}`);
      assert.ok(j.step > startSteps[i], `job ${ids[i]} went from step ${startSteps[i]} to ${j.step}`);
    }
    const worstGap = Math.max(...clients.map((c) => c.maxGap));
    assert.ok(worstGap <= MAX_GAP_MS, `an SSE client waited ${worstGap} ms between two progress events`);
    const minProgress = Math.min(...clients.map((c) => c.progress));

    const rss = judgeFlat(samples, FLAT);
    const anon = judgeFlat(samples.map((s) => ({t: s.t, kb: s.anon})), FLAT);
    const rates = reports.map((r) => `${r.path.replace(/j_\d+/, '{id}')} ${Math.round(r.rps)} req/s`).join(', ');
    const summary = [
      `load: ${samples.at(-1).t.toFixed(0)} s, ${CLIENTS} SSE clients (fewest progress events ${minProgress}, longest gap ${worstGap} ms), ` +
        `wrk ${WRK_CONNECTIONS} connections: ${rates}`,
      `load: RSS first third peak ${(rss.firstMaxKb / 1024).toFixed(1)} MB, last third peak ${(rss.lastMaxKb / 1024).toFixed(1)} MB ` +
        `(limit ${(rss.limitKb / 1024).toFixed(1)} MB); anonymous ${(anon.firstMaxKb / 1024).toFixed(1)} -> ${(anon.lastMaxKb / 1024).toFixed(1)} MB; ` +
        `samples ${samples.length}, from ${(samples[0].kb / 1024).toFixed(1)} MB`,
    ];
    console.log(summary.join('\n'));
    if (process.env.LOAD_REPORT) fs.appendFileSync(process.env.LOAD_REPORT, summary.join('\n') + '\n');
    assert.ok(rss.flat, `RSS grew: ${summary[1]}`);
    assert.ok(anon.flat, `anonymous memory grew: ${summary[1]}`);

    for (const id of ids) await api(d.url, 'POST', `/v1/jobs/${id}/cancel`);
  });
});
