// A connection flood cannot take the service (api/conns.h): 300 slowloris connections (a byte
// of request head a second, reconnecting when closed), then 300 SSE clients that never read,
// all from other loopback addresses (127.0.0.2, 127.0.0.3, …). Throughout, GET /healthz and a
// job submission from 127.0.0.1 answer within 2 s; afterwards the daemon's memory is back
// within 10 % of its level before the flood.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { SANITIZED, SLOW, api, daemonMs, removeDir, sleep, tmpDir, tutorialJob, withDaemon, writeFile } from './lib.mjs';
import { readRss } from '../../bench/wrk.mjs';

const LIMIT_MS = 2000;

// One request on a fresh connection from 127.0.0.1; resolves to {status, ms, serverMs} or
// rejects after LIMIT_MS (scaled for the sanitized build). The bound is on this client's
// clock, as the issue put it: a flood's harm is a connection the daemon does not accept or
// read in time, which its own time (serverMs: from the request's head in) cannot show;
// serverMs is kept to tell, when a probe is slow, whether the daemon's part was.
function timed(url, method, path, body) {
  const u = new URL(url);
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const headers = body ? { 'Content-Type': 'application/json' } : {};
    const req = http.request({ host: u.hostname, port: u.port, method, path, headers, agent: false,
      localAddress: '127.0.0.1' }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, ms: Date.now() - t0,
        serverMs: daemonMs(new Headers(Object.entries(res.headers))) }));
    });
    req.setTimeout(LIMIT_MS * SLOW, () => req.destroy(new Error(`${method} ${path}: no answer within ${LIMIT_MS * SLOW} ms`)));
    req.on('error', reject);
    if (body) req.write(JSON.stringify(body));
    req.end();
  });
}

// Probes the daemon every 250 ms (and submits a job every second) until stop(); collects the
// slowest answer and every failure.
function prober(url) {
  const p = { max: 0, maxServer: 0, n: 0, jobs: 0, failures: [], stopped: false };
  const note = (r) => { p.max = Math.max(p.max, r.ms); p.maxServer = Math.max(p.maxServer, r.serverMs ?? Infinity); };
  const run = async () => {
    let i = 0;
    while (!p.stopped) {
      try {
        const h = await timed(url, 'GET', '/healthz');
        if (h.status !== 200) p.failures.push(`healthz ${h.status}`);
        note(h);
        if (i % 4 === 0) {
          const j = await timed(url, 'POST', '/v1/jobs', tutorialJob({ steps: 10, name: `probe-${i}` }));
          if (j.status !== 201) p.failures.push(`submit ${j.status}`);
          else p.jobs++;
          note(j);
        }
        p.n++;
      } catch (e) {
        p.failures.push(e.message);
      }
      i++;
      await sleep(250);
    }
  };
  p.done = run();
  p.stop = async () => { p.stopped = true; await p.done; };
  return p;
}

const addr = (i) => `127.0.${Math.floor(i / 250)}.${2 + (i % 250)}`;

// A slowloris client: sends the head one byte a second, reconnecting when the daemon closes it.
function slowloris(url, local, state) {
  const u = new URL(url);
  const head = `GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:${u.port}\r\nX-Slow: ${'a'.repeat(100)}\r\n\r\n`;
  const open = () => {
    if (state.stopped) return;
    let k = 0;
    const s = net.connect({ host: u.hostname, port: Number(u.port), localAddress: local });
    state.sockets.add(s);
    let timer = null;
    s.on('connect', () => {
      state.connected++;
      timer = setInterval(() => { if (k < head.length - 4) s.write(head[k++]); }, 1000);
    });
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => {
      clearInterval(timer);
      state.sockets.delete(s);
      state.closed++;
      setTimeout(open, 100);
    });
  };
  open();
}

// An SSE client that sends its request and never reads a byte of the answer.
function deadReader(url, local, state) {
  const u = new URL(url);
  const s = net.connect({ host: u.hostname, port: Number(u.port), localAddress: local });
  s.on('connect', () => {
    s.write(`GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1:${u.port}\r\nAccept: text/event-stream\r\n\r\n`);
    s.pause();
  });
  s.on('error', () => {});
  state.sockets.add(s);
}

const metric = (text, re) => { const m = re.exec(text); return m ? Number(m[1]) : NaN; };

test('300 slowloris connections and 300 never-reading SSE clients do not take the service', { timeout: 180000 * SLOW }, async () => {
  const env = SANITIZED ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS || ''}:quarantine_size_mb=16` } : {};
  await withDaemon({ args: ['--workers', '1'], env }, async (d) => {
    // Warm up every path the flood and the probe use, then take the memory baseline.
    for (let i = 0; i < 20; i++) {
      await timed(d.url, 'GET', '/healthz');
      await timed(d.url, 'POST', '/v1/jobs', tutorialJob({ steps: 10, name: `warm-${i}` }));
    }
    const warm = { stopped: false, sockets: new Set() };
    for (let i = 0; i < 20; i++) deadReader(d.url, addr(1000 + i), warm);
    await sleep(1000);
    for (const s of warm.sockets) s.destroy();
    await sleep(1000);
    const before = readRss(d.proc.pid).VmRSS;

    const probe = prober(d.url);
    // Phase 1: slowloris, long enough for the 10 s head deadline to pass more than once.
    const slow = { stopped: false, sockets: new Set(), connected: 0, closed: 0 };
    for (let i = 0; i < 300; i++) slowloris(d.url, addr(i), slow);
    await sleep(14000);
    let m = (await api(d.url, 'GET', '/metrics')).text;
    const heads = metric(m, /anneald_connections\{state="head"\} (\d+)/);
    assert.ok(heads >= 200, `the slow connections wait in the gate (${heads})`);
    assert.ok(metric(m, /reason="head_timeout"\} (\d+)/) + metric(m, /reason="head_evicted"\} (\d+)/) >= 50,
      `overdue heads are closed:\n${m}`);
    assert.ok(slow.closed >= 50, `the daemon closed slow connections (${slow.closed})`);

    // Phase 2: on top, 300 SSE clients that never read.
    const dead = { stopped: false, sockets: new Set() };
    for (let i = 0; i < 300; i++) deadReader(d.url, addr(300 + i), dead);
    await sleep(8000);
    m = (await api(d.url, 'GET', '/metrics')).text;
    const sse = metric(m, /anneald_sse_clients (\d+)/);
    assert.ok(sse > 0 && sse <= 256, `SSE streams are capped at 256 (${sse})`);
    assert.ok(metric(m, /reason="sse_total"\} (\d+)/) > 0, `streams beyond the cap were refused:\n${m}`);

    slow.stopped = true;
    for (const s of slow.sockets) s.destroy();
    for (const s of dead.sockets) s.destroy();
    // Streams whose client hung up end within seconds, not at the next 15 s heartbeat.
    const hungUp = Date.now();
    let left = -1;
    while (Date.now() - hungUp < 3000 * SLOW) {
      await sleep(250);
      left = metric((await api(d.url, 'GET', '/metrics')).text, /anneald_sse_clients (\d+)/);
      if (left === 0) break;
    }
    assert.equal(left, 0, 'streams of clients that hung up are ended within 3 s');
    await probe.stop();
    console.log(`# ${probe.n} probes: slowest ${probe.max} ms by this client's clock, ${probe.maxServer} ms the daemon's`);
    assert.deepEqual(probe.failures, [], `every probe answered in time (slowest ${probe.max} ms, the daemon's ${probe.maxServer} ms)`);
    assert.ok(probe.n >= 40 && probe.jobs >= 10, `the probe ran throughout (${probe.n} probes, ${probe.jobs} jobs)`);
    assert.ok(probe.max < LIMIT_MS * SLOW, `slowest answer ${probe.max} ms (the daemon's slowest ${probe.maxServer} ms)`);

    // Everything is let go: connections, and the memory they held.
    let after = 0;
    for (let i = 0; i < 20; i++) {
      await sleep(500);
      m = (await api(d.url, 'GET', '/metrics')).text;
      after = readRss(d.proc.pid).VmRSS;
      // The gate's count of waiting heads falls as the loop reads each hung-up socket's end
      // (seconds for 300 of them in the sanitized build).
      if (metric(m, /anneald_sse_clients (\d+)/) === 0 &&
          metric(m, /anneald_connections\{state="head"\} (\d+)/) === 0 && after <= before * 1.1) break;
    }
    assert.equal(metric(m, /anneald_sse_clients (\d+)/), 0);
    assert.equal(metric(m, /anneald_connections\{state="head"\} (\d+)/), 0);
    // AddressSanitizer holds freed memory in its quarantine (16 MiB here) and keeps its own
    // free lists, which malloc_trim cannot return: the sanitized build gets that much slack.
    const slack = SANITIZED ? 20480 : 0;
    assert.ok(after <= before * 1.1 + slack, `RSS ${after} kB after the flood, ${before} kB before (limit +10 %)`);
    console.log(`flood: RSS ${before} kB before, ${after} kB after; slowest probe ${probe.max} ms over ${probe.n} probes`);
  });
});

// Idle keep-alive connections (after a HEAD / of the dashboard, which needs no token) fill the
// server up to its reserve: then only GET /healthz and requests with the right token get in,
// everything else a JSON 503.
test('the last connection slots are kept for /healthz and token holders', { timeout: 120000 * SLOW }, async () => {
  const dir = tmpDir();
  const tok = writeFile(dir, 'token', 'reserve-token\n');
  try {
    await withDaemon({ args: ['--token-file', tok] }, async (d) => {
      const u = new URL(d.url);
      const sockets = [];
      const open = (local) => new Promise((resolve) => {
        const s = net.connect({ host: u.hostname, port: Number(u.port), localAddress: local });
        let got = '';
        s.on('connect', () => s.write(`HEAD / HTTP/1.1\r\nHost: 127.0.0.1:${u.port}\r\n\r\n`));
        s.on('data', (c) => { got += c; if (got.includes('\r\n\r\n')) resolve(Number(got.slice(9, 12))); });
        s.on('error', () => resolve(0));
        s.on('close', () => resolve(Number(got.slice(9, 12)) || 0));
        sockets.push(s);
      });
      const statuses = [];
      // 10 addresses × 100 connections, in batches so the backlog never overflows.
      for (let b = 0; b < 10; b++) {
        const batch = [];
        for (let i = 0; i < 100; i++) batch.push(open(`127.0.1.${10 + b}`));
        statuses.push(...await Promise.all(batch));
      }
      const held = statuses.filter((s) => s === 200).length;
      const refused = statuses.filter((s) => s === 503).length;
      assert.ok(held >= 900 && held <= 960, `${held} connections held (200 keep-alive), ${refused} refused`);
      assert.ok(refused >= 40, `beyond the reserve line new requests are refused (${refused})`);
      const m = (await api(d.url, 'GET', '/metrics', null, { Authorization: 'Bearer reserve-token' })).text;
      assert.match(m, /reason="reserve"\} [1-9]/);
      // From 127.0.0.1, on fresh connections: an ordinary request is refused, /healthz and
      // the token holder get through.
      const plain = await timed(d.url, 'GET', '/v1/jobs');
      assert.equal(plain.status, 503);
      assert.equal((await timed(d.url, 'GET', '/healthz')).status, 200);
      const r = await api(d.url, 'GET', '/v1/jobs', null, { Authorization: 'Bearer reserve-token' });
      assert.equal(r.status, 200, r.text);
      for (const s of sockets) s.destroy();
      // Once they are gone, ordinary requests are served again.
      let ok = 0;
      for (let i = 0; i < 40 && ok !== 401; i++) { await sleep(250); ok = (await timed(d.url, 'GET', '/v1/jobs')).status; }
      assert.equal(ok, 401);
    });
  } finally {
    removeDir(dir);
  }
});

// One quick request does not buy a connection for good: after each answer, the next head has
// the same 10 s as the first one, however slowly it trickles in.
test('a kept-alive connection that trickles its next head is closed after the head deadline', { timeout: 60000 * SLOW }, async () => {
  await withDaemon({}, async (d) => {
    const u = new URL(d.url);
    const s = net.connect({ host: u.hostname, port: Number(u.port), localAddress: '127.0.0.9' });
    let got = '';
    let timer = null;
    const t0 = Date.now();
    let answeredAt = 0;
    const closed = new Promise((resolve) => s.on('close', () => { clearInterval(timer); resolve(Date.now()); }));
    s.on('error', () => {});
    s.on('data', (c) => {
      got += c;
      if (!answeredAt && got.includes('"status":"ok"')) {
        answeredAt = Date.now();
        const next = `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${u.port}\r\nX-Slow: ${'a'.repeat(60)}\r\n\r\n`;
        let k = 0;
        timer = setInterval(() => { if (k < next.length - 4) s.write(next[k++]); }, 500);
      }
    });
    s.on('connect', () => s.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${u.port}\r\n\r\n`));
    const end = await Promise.race([closed, sleep(30000 * SLOW).then(() => 0)]);
    assert.ok(answeredAt > 0, `the first request was answered: ${got.slice(0, 200)}`);
    assert.ok(end > 0, 'the daemon closed the connection');
    const held = (end - answeredAt) / 1000;
    // the daemon's 10 s head deadline, by this client's clock: not before it, nor long after
    console.log(`# a trickled next head closed ${held.toFixed(2)} s after the first answer`);
    assert.ok(held >= 9 && held < 15 * SLOW, `closed ${held.toFixed(1)} s after the first answer (deadline 10 s)`);
    assert.equal((got.match(/HTTP\/1\.1 200/g) || []).length, 1, 'the trickled request was never answered');
    const m = (await api(d.url, 'GET', '/metrics')).text;
    assert.match(m, /reason="keepalive_timeout"\} [1-9]/);
    assert.ok(Date.now() - t0 < 30000 * SLOW);
  });
});

// One address may hold 128 connections and 32 event streams; beyond either, a JSON 503.
test('per-address limits: 128 connections, 32 event streams', { timeout: 60000 * SLOW }, async () => {
  await withDaemon({}, async (d) => {
    const u = new URL(d.url);
    const sockets = [];
    // Resolves to the status of the answer's first line (0 when closed without one).
    const open = (local, path) => new Promise((resolve) => {
      const s = net.connect({ host: u.hostname, port: Number(u.port), localAddress: local });
      let got = '';
      s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${u.port}\r\n\r\n`));
      s.on('data', (c) => { got += c; if (got.includes('\r\n\r\n')) resolve(Number(got.slice(9, 12))); });
      s.on('error', () => resolve(0));
      s.on('close', () => resolve(Number(got.slice(9, 12)) || 0));
      sockets.push(s);
    });
    const streams = await Promise.all(Array.from({ length: 40 }, () => open('127.0.2.2', '/v1/events')));
    assert.equal(streams.filter((s) => s === 200).length, 32, `streams: ${streams}`);
    assert.equal(streams.filter((s) => s === 503).length, 8, `streams: ${streams}`);
    // Another address still gets its own streams.
    assert.equal(await open('127.0.2.3', '/v1/events'), 200);
    // Connections: the 40 above (the refused streams' connections stay open for their next
    // request) plus 88 more fill 127.0.2.2's 128; the rest get 503 and are closed.
    const more = [];
    for (let i = 0; i < 110; i++) more.push(await open('127.0.2.2', '/'));
    assert.equal(more.filter((s) => s === 200).length, 88, `connections: ${more}`);
    assert.equal(more.filter((s) => s === 503).length, 22);
    const m = (await api(d.url, 'GET', '/metrics')).text;
    assert.match(m, /reason="per_ip"\} 22\b/);
    assert.match(m, /reason="sse_per_ip"\} 8\b/);
    assert.equal((await api(d.url, 'GET', '/healthz')).status, 200, 'other addresses are served');
    for (const s of sockets) s.destroy();
  });
});
