// Strict input: what goes in is well-formed, so what comes out is. Invalid UTF-8 and NULs in
// any stored string, lax JSON numbers, duplicated framing and auth headers are refused with a
// JSON error naming the field and change nothing; malformed request heads get the API's JSON
// errors (not the HTTP library's HTML); the SSE ?access_token= never reaches the log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { api, readEvents, removeDir, tmpDir, tutorialJob, waitFor, withDaemon, writeFile } from './lib.mjs';

// Sends raw bytes on a fresh connection; resolves to {status, headers, body, json}.
function rawBytes(url, bytes) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: u.hostname, port: Number(u.port) });
    const chunks = [];
    s.on('connect', () => s.write(bytes));
    s.on('data', (c) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const [head, ...rest] = text.split('\r\n\r\n');
      const body = rest.join('\r\n\r\n');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
      let json = null;
      try { json = JSON.parse(body); } catch { /* not JSON */ }
      resolve({ status: m ? Number(m[1]) : 0, head, body, json });
    });
    setTimeout(() => s.end(), 1500);
  });
}

const J = { 'Content-Type': 'application/json' };

test('invalid UTF-8, NULs and lax numbers are refused with the field; nothing is stored', async () => {
  await withDaemon({}, async (d) => {
    const good = JSON.stringify(tutorialJob({ steps: 5, name: 'café ☕' }));
    const ok = await api(d.url, 'POST', '/v1/jobs', good, J);
    assert.equal(ok.status, 201, ok.text);
    const spec = JSON.stringify(tutorialJob({ steps: 5, name: 'NAME' }));
    const bad = [
      [Buffer.from(spec.replace('"NAME"', '"a\\u0000b"')), 'name', /NUL/],
      [Buffer.concat([Buffer.from(spec.split('NAME')[0]), Buffer.from([0x61, 0xff, 0x62]), Buffer.from(spec.split('NAME')[1])]), 'name', /UTF-8/],
      [Buffer.concat([Buffer.from(spec.split('NAME')[0]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from(spec.split('NAME')[1])]), 'name', /UTF-8/],
      // A \u escape with bad digits (which cJSON would take as U+0000), a backslash that is no
      // escape.
      [Buffer.from(spec.replace('"NAME"', '"caf\\u0*e9"')), 'name', /four hexadecimal/],
      [Buffer.from(spec.replace('"NAME"', '"a\\é"')), 'name', /escape/],
      [Buffer.from(spec.replace('"steps":5', '"steps":05')), 'steps', /leading zeros/],
      [Buffer.from(spec.replace('"lr":0.01', '"lr":1.')), 'ds_config.optimizer.params.lr', /decimal point/],
      // Valid JSON, so not refused for strictness: an exponent is fine.
      [Buffer.from(spec.replace('"samples":4096', '"samples":4.096e+3').replace('"NAME"', '"exp"')), null, null],
    ];
    for (const [body, field, re] of bad) {
      const r = await api(d.url, 'POST', '/v1/jobs', new Uint8Array(body), J);
      if (field === null) { assert.equal(r.status, 201, r.text); continue; }
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error.field, field, r.text);
      assert.match(r.json.error.message, re);
    }
    // A CSV whose header is not UTF-8, a data set name with a NUL.
    const csv = Buffer.concat([Buffer.from('a,'), Buffer.from([0xc3, 0x28]), Buffer.from('\n1,2\n')]);
    const c1 = await api(d.url, 'POST', '/v1/datasets?name=bytes', new Uint8Array(csv), { 'Content-Type': 'text/csv' });
    assert.equal(c1.status, 400, c1.text);
    assert.equal(c1.json.error.field, 'body');
    assert.match(c1.json.error.message, /UTF-8.*line 1, column 3/);
    const c2 = await api(d.url, 'POST', '/v1/datasets?name=a%00b', 'a,b\n1,2\n', { 'Content-Type': 'text/csv' });
    assert.equal(c2.status, 400, c2.text);
    assert.equal(c2.json.error.field, 'name');
    const c3 = await api(d.url, 'POST', '/v1/datasets?name=%ff', 'a,b\n1,2\n', { 'Content-Type': 'text/csv' });
    assert.equal(c3.status, 400, c3.text);

    const list = await api(d.url, 'GET', '/v1/jobs');
    assert.deepEqual(list.json.jobs.map((j) => j.name).sort(), ['café ☕', 'exp'], 'only the good jobs were stored');
    // The list is strict UTF-8 JSON: decoding with fatal errors succeeds.
    const raw = await fetch(`${d.url}/v1/jobs`);
    JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await raw.arrayBuffer()));
    assert.equal((await api(d.url, 'GET', '/v1/datasets')).json.datasets.length, 0);
  });
});

test('malformed heads and duplicated headers get JSON errors, never HTML', async () => {
  await withDaemon({}, async (d) => {
    const port = new URL(d.url).port;
    const cases = [
      ['GET /healthz HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n', 505],
      ['GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nbad header line\r\n\r\n', 400],
      ['NOT A REQUEST\r\n\r\n', 400],
      [`GET /${'a'.repeat(9000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, 414],
      [`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'b'.repeat(17000)}\r\n\r\n`, 431],
      [`POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}`, 400, 'Content-Length'],
      [`GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n`, 400, 'Authorization'],
      [`GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n`, 400, 'Host'],
      // an absolute-form target names the host, whatever the Host header says
      [`GET http://evil.example/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`, 421, 'Host', /'evil\.example' that the request target names/],
      // framing the library would answer with its HTML page (and, for some, its head twice)
      [`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\nConnection: close\r\n\r\n`, 400, null, /Content-Length .*got 'abc'/],
      [`POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n`, 400, null, /Content-Length/],
      [`POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 18446744073709551616\r\n\r\n`, 413, null, /larger than any body/],
      [`POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n`, 501, null, /Transfer-Encoding 'gzip' is not supported/],
      [`POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}`, 400, null, /not both/],
      ['GET /healthz HTTP/1.1\r\n\r\n', 400, null, /needs a Host/],
    ];
    for (const [req, status, field, says] of cases) {
      const r = await rawBytes(d.url, req);
      assert.equal(r.status, status, `${req.slice(0, 60)}: ${r.head}`);
      assert.match(r.head, /Content-Type: application\/json/i, r.head);
      assert.ok(r.json && r.json.error && r.json.error.code && r.json.error.message, r.body);
      if (field) assert.equal(r.json.error.field, field);
      if (says) assert.match(r.json.error.message, says);
      // one answer, whole: a single status line, the headers every answer has, a final newline
      assert.equal(((r.head + '\r\n\r\n' + r.body).match(/(^|\r\n)HTTP\/1\.[01] \d{3} /g) || []).length, 1, r.head + r.body);
      assert.match(r.head, /X-Frame-Options: DENY/i, r.head);
      assert.match(r.head, /X-Content-Type-Options: nosniff/i, r.head);
      assert.ok(r.body.endsWith('}\n'), JSON.stringify(r.body.slice(-20)));
    }
    // absolute-form targets (RFC 9112 3.2.2) are answered as their path
    const abs = await rawBytes(d.url, `GET HTTP://127.0.0.1:${port}/v1/jobs?limit=1 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    assert.equal(abs.status, 200, abs.head);
    assert.deepEqual(abs.json.jobs, []);
    const root = await rawBytes(d.url, `GET http://localhost:${port} HTTP/1.1\r\nHost: localhost:${port}\r\nConnection: close\r\n\r\n`);
    assert.equal(root.status, 200, root.head);
    assert.match(root.head, /Content-Type: text\/html/i);
    // HTTP/1.0 needs no Host
    assert.equal((await rawBytes(d.url, 'GET /healthz HTTP/1.0\r\n\r\n')).status, 200);
    // HEAD of a streamed answer: the library still sends its last chunk, so the connection
    // closes after it rather than give those bytes to the next answer. A HEAD of a document
    // of known length keeps the connection for the next request.
    const job = await api(d.url, 'POST', '/v1/jobs', tutorialJob({ steps: 5 }));
    const get = (m, p) => `${m} ${p} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`;
    const lines = (r) => ((r.head + '\r\n\r\n' + r.body).match(/(^|\r\n)HTTP\/1\.1 \d{3} /g) || []).length;
    for (const p of [`/v1/jobs/${job.json.id}/metrics`, `/v1/jobs/${job.json.id}/metrics?format=csv`, '/v1/events']) {
      const h = await rawBytes(d.url, get('HEAD', p) + get('GET', '/healthz'));
      assert.equal(h.status, 200, `${p}: ${h.head}`);
      assert.match(h.head, /Connection: close/i, h.head);
      assert.equal(lines(h), 1, `${p}: ${h.head}${h.body}`);
    }
    const kept = await rawBytes(d.url, get('HEAD', '/v1/openapi.json') + get('GET', '/healthz'));
    assert.equal(lines(kept), 2, kept.head + kept.body);
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.jobs.length, 1, 'only the HEAD test\'s job');
  });
});

test('the ?access_token= is redacted from every log line', async () => {
  const dir = tmpDir();
  try {
    const tok = writeFile(dir, 'token', 'very-secret-token-value\n');
    await withDaemon({ args: ['--token-file', tok, '--log-level', 'debug'] }, async (d) => {
      const ev = await readEvents(d.url, '/v1/events?access_token=very-secret-token-value', { until: () => true, timeoutMs: 1000 })
        .catch(() => []);
      assert.ok(Array.isArray(ev));
      const wrong = await fetch(`${d.url}/v1/events?access_token=very-secret-but-wrong`);
      assert.equal(wrong.status, 401);
      await wrong.arrayBuffer();
      // A head the gate refuses, holding the token too.
      await rawBytes(d.url, 'GET /v1/events?access_token=very-secret-token-value HTTP/3.0\r\n\r\n');
      // the log line is written as the answer goes: wait for it, not a fixed time
      const line = /GET \/v1\/events\?access_token=\[redacted\] -> 401/;
      await waitFor(() => line.test(d.stderr()), {what: () => `${line} in the log: ${d.stderr().slice(-2000)}`});
      const log = d.stderr();
      assert.doesNotMatch(log, /very-secret/);
    });
    // A token holding '#' and '&' (sent encoded): the log shows no part of it, on the
    // metrics route that takes it for download links too.
    const odd = writeFile(dir, 'odd', 'odd-secret#hidden&tail42\n');
    await withDaemon({ args: ['--token-file', odd, '--log-level', 'debug'] }, async (d) => {
      const q = encodeURIComponent('odd-secret#hidden&tail42');
      const r = await fetch(`${d.url}/v1/jobs/j_000001/metrics?format=csv&access_token=${q}`);
      assert.equal(r.status, 404); // authorized, and no such job
      await r.arrayBuffer();
      const line = /GET \/v1\/jobs\/j_000001\/metrics\?format=csv&access_token=\[redacted\] -> 404/;
      await waitFor(() => line.test(d.stderr()), {what: () => `${line} in the log: ${d.stderr().slice(-2000)}`});
      const log = d.stderr();
      assert.doesNotMatch(log, /odd-secret|hidden|tail42/);
    });
  } finally {
    removeDir(dir);
  }
});
