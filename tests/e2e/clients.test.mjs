// A hostile or careless HTTP client (not a page: a program on the machine or the network):
// what it sends cannot make the daemon answer outside its contract.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fs from 'node:fs';
import { SLOW, api, sleep, tutorialJob, waitFor, withDaemon } from './lib.mjs';

// Every JSON answer is UTF-8, as its Content-Type says, also when its message echoes bytes of
// the request: a name cut at a byte count mid-character, or bytes that are no UTF-8 at all.
test('answers are valid UTF-8 whatever bytes the request held', async () => {
  await withDaemon({}, async (d) => {
    const strict = new TextDecoder('utf-8', { fatal: true });
    const cases = [
      ['GET', `/v1/jobs/${'a'.repeat(63)}%C3%A9`, 404],
      ['GET', `/v1/jobs?limit=${'1'.repeat(63)}%C3%A9`, 400],
      ['POST', `/v1/datasets?name=${'a'.repeat(79)}%C3%A9`, 400],
      ['GET', '/v1/jobs/%ff%fe', 404],
      ['GET', '/v1/datasets/%c3%28', 404],
      ['GET', '/v1/sweeps/%ff', 404],
    ];
    for (const [method, p, status] of cases) {
      const res = await fetch(`${d.url}${p}`, {
        method, headers: method === 'POST' ? { 'Content-Type': 'text/csv' } : {},
        body: method === 'POST' ? 'a,b\n1,2\n' : undefined,
      });
      assert.equal(res.status, status, p);
      const bytes = new Uint8Array(await res.arrayBuffer());
      let text;
      assert.doesNotThrow(() => { text = strict.decode(bytes); }, `${p}: the answer is UTF-8`);
      const j = JSON.parse(text);
      assert.ok(j.error.message.length > 0, p);
    }
  });
});

// A key given twice, at any depth: JSON parsers disagree on which one counts (the daemon's
// reads the first, Python's and JavaScript's the last), so it is refused wherever it is.
test('a key given twice anywhere in a body is a 400 naming it, and nothing is stored', async () => {
  await withDaemon({}, async (d) => {
    const J = { 'Content-Type': 'application/json' };
    const job = JSON.stringify(tutorialJob());
    const twice = job.replace('"lr":0.01', '"lr":0.01,"lr":0.5');
    assert.notEqual(twice, job);
    const cases = [
      ['/v1/jobs', twice, 'ds_config.optimizer.params.lr'],
      ['/v1/schedules/preview', '{"ds_config":{"optimizer":{"type":"SGD","params":{"lr":0.1}},"optimizer":{"type":"Adam","params":{"lr":0.2}}}}', 'ds_config.optimizer'],
      ['/v1/sweeps', JSON.stringify({ base: tutorialJob(), parameters: { 'ds_config.optimizer.params.lr': [0.1] } })
        .replace('"parameters":{', '"parameters":{"ds_config.optimizer.params.lr":[0.2],'), 'parameters.ds_config.optimizer.params.lr'],
    ];
    for (const [p, body, field] of cases) {
      const r = await api(d.url, 'POST', p, body, J);
      assert.equal(r.status, 400, `${p}: ${r.text}`);
      assert.equal(r.json.error.field, field, r.text);
      assert.match(r.json.error.message, /duplicate key .*give each key once/);
    }
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.total, 0);
    assert.equal((await api(d.url, 'GET', '/v1/sweeps')).json.sweeps.length, 0);
  });
});

// A raw connection from `from` that sends `text` and collects what comes back until it ends
// (or until `wait` says stop): {sock, data(), ended}.
function rawConn(url, from, text) {
  const u = new URL(url);
  const sock = net.connect({ host: u.hostname, port: Number(u.port), localAddress: from });
  let data = '';
  sock.setEncoding('utf8');
  sock.on('data', (c) => { data += c; });
  sock.on('error', () => {});
  const ended = new Promise((r) => sock.on('close', r));
  const open = new Promise((r) => sock.on('connect', r));
  if (text) open.then(() => sock.write(text));
  return { sock, data: () => data, ended, open };
}

// Waits until the answers on c hold n status lines.
async function answers(c, n, ms = 10000 * SLOW) {
  const t0 = Date.now();
  while ((c.data().match(/^HTTP\/1\.1 \d{3}/gm) || []).length < n) {
    if (Date.now() - t0 > ms) throw new Error(`${n} answers expected, got: ${c.data().slice(0, 300)}`);
    await sleep(10);
  }
  return [...c.data().matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));
}

// CPU time (user + system, in clock ticks of 10 ms) of the daemon's loop thread: the main one.
function loopTicks(pid) {
  const f = fs.readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8').split(')').pop().trim().split(' ');
  return Number(f[11]) + Number(f[12]);
}

// A client that shuts its side with its head unfinished: the gate's peek leaves the bytes in
// the socket, so the end of stream is not read there; it must be noticed at once, not at the
// 10 s head deadline, and the loop must not spin on the readable socket meanwhile.
test('a client that hangs up mid-head is let go at once and costs the loop nothing', async () => {
  await withDaemon({}, async (d) => {
    const host = new URL(d.url).host;
    // one that still reads (shut down for writing only) is told why
    const half = rawConn(d.url, '127.0.0.1', `GET /v1/jobs HTTP/1.1\r\nHost: ${host}\r\n`);
    await half.open;
    await sleep(100);
    half.sock.end();
    await Promise.race([half.ended, sleep(5000 * SLOW)]);
    assert.match(half.data(), /^HTTP\/1\.1 400 /, half.data());
    assert.match(half.data(), /before the request head ended/);
    // a crowd that just goes away
    const t0 = loopTicks(d.proc.pid);
    for (let k = 0; k < 20; k++) {
      const c = rawConn(d.url, '127.0.0.1', `POST /v1/jobs HTTP/1.1\r\nHost: ${host}\r\nContent-Le`);
      await c.open;
      await sleep(20);
      c.sock.destroy();
    }
    await waitFor(async () => /anneald_connections\{state="head"\} 0\n/.test((await api(d.url, 'GET', '/metrics')).text),
                  {timeoutMs: 2000, what: 'no connection waiting in the gate'});
    await sleep(1000);
    const ticks = loopTicks(d.proc.pid) - t0;
    assert.ok(ticks < 50 * SLOW, `the loop thread used ${ticks * 10} ms of CPU in ~1.5 s`);
    const m = (await api(d.url, 'GET', '/metrics')).text;
    assert.match(m, /reason="head_timeout"\} 0\n/);
    assert.match(m, /reason="bad_head"\} 21\n/);
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.total, 0);
  });
});

// MHD's idle timeout starts again with every byte, so a body sent a byte at a time would hold
// its connection for good; after 10 s a body must average 16 KiB/s.
test('a request body that trickles is answered 408 and its connection closed', async () => {
  await withDaemon({}, async (d) => {
    const host = new URL(d.url).host;
    const c = rawConn(d.url, '127.0.0.1', `POST /v1/jobs HTTP/1.1\r\nHost: ${host}\r\n` +
      'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
    await c.open;
    const t0 = Date.now();
    const drip = setInterval(() => { if (!c.sock.destroyed) c.sock.write(' '); }, 1000);
    await Promise.race([c.ended, sleep(30000 * SLOW)]);
    clearInterval(drip);
    const s = (Date.now() - t0) / 1000;
    assert.match(c.data(), /^HTTP\/1\.1 408 /, c.data());
    assert.match(c.data(), /too slowly/);
    // the daemon's 10 s body deadline, by this client's clock: not before it, nor long after
    console.log(`# a trickling body closed after ${s} s`);
    assert.ok(s >= 9.5 && s < 15 * SLOW, `closed after ${s} s`);
    const m = await api(d.url, 'GET', '/metrics');
    assert.match(m.text, /anneald_connections_refused_total\{reason="body_slow"\} 1\n/);
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.total, 0);
  });
});

// Later requests on a kept-alive connection reach the HTTP library without the gate; they get
// its size limits again, and a connection the reserve let in (for /healthz) serves nothing
// else. The reserve is reached here by 960 kept-alive connections from 127.0.0.2-9.
test('a kept-alive connection\'s later requests meet the gate\'s limits and the reserve', async () => {
  await withDaemon({}, async (d) => {
    const host = new URL(d.url).host;
    const get = (p, extra = '') => `GET ${p} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`;
    // limits on a second request: a 9000-byte target, a 20,000-byte head
    const a = rawConn(d.url, '127.0.0.1', get('/healthz'));
    assert.deepEqual(await answers(a, 1), [200]);
    a.sock.write(get(`/v1/jobs?q=${'x'.repeat(9000)}`));
    assert.deepEqual(await answers(a, 2), [200, 414]);
    await a.ended; /* and it closes */
    const b = rawConn(d.url, '127.0.0.1', get('/healthz'));
    assert.deepEqual(await answers(b, 1), [200]);
    b.sock.write(get('/healthz', `X-Big: ${'y'.repeat(20000)}\r\n`));
    assert.deepEqual(await answers(b, 2), [200, 431]);
    assert.match(b.data(), /"code":"too_large"/);
    await b.ended;
    // the reserve: 960 connections hold every other slot, each kept alive after its small
    // answer (the head of a static document), for at most 10 s (the keep-alive deadline)
    const held = [];
    const t0 = Date.now();
    try {
      for (let k = 0; k < 960; k += 160) { /* in turns: the gate takes 512 heads at once */
        const turn = [];
        for (let i = k; i < k + 160; i++)
          turn.push(rawConn(d.url, `127.0.0.${2 + (i % 8)}`, get('/v1/openapi.json').replace('GET', 'HEAD')));
        held.push(...turn);
        assert.ok((await Promise.all(turn.map((c) => answers(c, 1)))).every((x) => x[0] === 200));
      }
      assert.ok(Date.now() - t0 < 8000, `filling took ${Date.now() - t0} ms, near the 10 s keep-alive deadline`);
      const plain = rawConn(d.url, '127.0.0.1', get('/v1/jobs'));
      assert.deepEqual(await answers(plain, 1), [503], 'the reserve turns a plain request away');
      const r = rawConn(d.url, '127.0.0.1', get('/healthz'));
      assert.deepEqual(await answers(r, 1), [200]);
      r.sock.write(get('/healthz'));
      assert.deepEqual(await answers(r, 2), [200, 200], '/healthz again on it');
      r.sock.write(get('/v1/jobs'));
      assert.deepEqual(await answers(r, 3), [200, 200, 503], 'anything else is refused');
      await r.ended;
      const m = await api(d.url, 'GET', '/metrics').catch(() => null);
      if (m) assert.ok(m.status === 503 || /reason="reserve"\} [1-9]/.test(m.text));
    } finally {
      for (const c of held) c.sock.destroy();
    }
  });
});

// A megabyte of JSON takes a tenth of a second to parse: the bodies of the routes whose
// handlers read them on the loop thread (predict, generate, preview, …) are parsed on a
// request thread first when large, so the loop never spends that long on one; a PATCH has
// no business being large and is refused before its body is read.
test('large JSON bodies are not parsed on the loop thread', async () => {
  await withDaemon({}, async (d) => {
    const longest = async () => Number(/^anneald_loop_longest_turn_cpu_seconds (\S+)$/m
      .exec((await api(d.url, 'GET', '/metrics')).text)[1]);
    const broken = `{"prompt": "${'a'.repeat(1000000)}", "max_tokens": 1, "x": [`;
    const rows = `{"inputs": [${Array.from({ length: 50000 }, (_, i) => `[${i},1.5,2.25,3]`).join(',')}]}`;
    const J = { 'Content-Type': 'application/json' };
    for (const [p, body, status] of [['/v1/jobs/j_000001/generate', broken, 400],
      ['/v1/schedules/preview', broken, 400], ['/v1/jobs/j_000001/predict', rows, 404],
      ['/v1/jobs/j_000001', broken.slice(0, 80000), 413]]) { // PATCH: a few fields, at most 64 KiB
      const r = await api(d.url, p.endsWith('01') ? 'PATCH' : 'POST', p, body, J);
      assert.equal(r.status, status, `${p}: ${r.text.slice(0, 200)}`);
      if (status === 400) assert.match(r.json.error.message, /malformed JSON at line 1, column 10000\d\d/);
    }
    const worst = await longest();
    assert.ok(worst < 0.05 * SLOW, `the loop's longest turn took ${worst} s of CPU`);
  });
});

// A query argument the route does not read is refused, naming it, with the nearest name it
// takes: GET /v1/jobs?stat=running would otherwise list every job.
test('an unknown query argument is a 400 naming it and the route\'s own', async () => {
  await withDaemon({}, async (d) => {
    const r = await api(d.url, 'GET', '/v1/jobs?stat=running');
    assert.equal(r.status, 400);
    assert.equal(r.json.error.field, 'stat');
    assert.equal(r.json.error.message, "unknown query argument 'stat' (did you mean 'state'?); " +
      'GET /v1/jobs takes limit offset state tag q');
    const n = await api(d.url, 'GET', '/healthz?x=1');
    assert.equal(n.status, 400);
    assert.match(n.json.error.message, /GET \/healthz takes none/);
    // the routes' own arguments, the dashboard's files (any) and access_token pass
    for (const p of ['/v1/jobs?limit=5&offset=0&state=running&tag=a&q=b', '/index.html?v=2',
      '/v1/events?job=j_000001&last_event_id=3&access_token=x'])
      assert.notEqual((await fetch(`${d.url}${p}`, { signal: AbortSignal.timeout(500) })
        .then((x) => { x.body?.cancel(); return x.status; }).catch(() => 'stream')), 400, p);
  });
});

// The HTTP library decodes a path before it is routed: an encoded '/' would become a separator
// (so /v1/jobs/ID%2Fcancel would cancel, past a proxy that allows only /v1/jobs/ID) and an
// encoded NUL would cut the path (/v1/jobs/ID%00x answering for ID). Both are refused, on a
// connection's first request and its later ones; in the query they are ordinary bytes.
test('a path with an encoded slash or NUL is a 400 and does nothing', async () => {
  await withDaemon({}, async (d) => {
    const job = await api(d.url, 'POST', '/v1/jobs', tutorialJob({ steps: 100000000 }));
    assert.equal(job.status, 201, job.text);
    const id = job.json.id;
    for (const [method, p, what] of [['POST', `/v1/jobs/${id}%2Fcancel`, /'%2F' \(an encoded '\/'\)/],
                                     ['POST', `/v1/jobs/${id}%2fpause`, /'%2F'/],
                                     ['GET', `/v1/jobs/${id}%00zzz`, /'%00' \(an encoded NUL byte\)/],
                                     ['GET', `/v1%2Fjobs`, /'%2F'/],
                                     ['DELETE', `/v1/jobs/${id}%00`, /'%00'/]]) {
      // (fetch, not api(): the API document has no such paths to check the answer against)
      const res = await fetch(d.url + p, { method });
      const r = { status: res.status, text: await res.text() };
      r.json = JSON.parse(r.text);
      assert.equal(r.status, 400, `${method} ${p}: ${r.text}`);
      assert.equal(r.json.error.code, 'invalid_argument');
      assert.match(r.json.error.message, what);
    }
    const now = await api(d.url, 'GET', `/v1/jobs/${id}`);
    assert.ok(['queued', 'running'].includes(now.json.state), now.json.state);
    // what is not a slash or NUL still decodes, and the query takes both
    assert.equal((await api(d.url, 'GET', `/v1/jobs/%6A${id.slice(1)}`)).json.id, id);
    assert.equal((await api(d.url, 'GET', '/v1/jobs?q=warm%2Fup')).status, 200);

    // a later request of a kept-alive connection: refused the same way, and its target is
    // measured as sent (9000 bytes of escapes), not as decoded (3000)
    const host = new URL(d.url).host;
    const get = (p) => `GET ${p} HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
    const a = rawConn(d.url, '127.0.0.1', get('/healthz'));
    assert.deepEqual(await answers(a, 1), [200]);
    a.sock.write(get(`/v1/jobs/${id}%2Fmetrics`));
    assert.deepEqual(await answers(a, 2), [200, 400]);
    await a.ended;
    const b = rawConn(d.url, '127.0.0.1', get('/healthz'));
    assert.deepEqual(await answers(b, 1), [200]);
    b.sock.write(get(`/v1/jobs?q=${'%41'.repeat(3000)}`));
    assert.deepEqual(await answers(b, 2), [200, 414]);
    await b.ended;
    assert.equal((await api(d.url, 'POST', `/v1/jobs/${id}/cancel`)).status, 200);
  });
});
