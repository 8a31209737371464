// The e2e helpers themselves: a daemon whose stderr holds a sanitizer report, or that exits
// other than with 0 on SIGTERM, fails the test that ran it (make check relies on this).
import {test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import {api, daemonMs, readEvents, removeDir, tmpDir, withDaemon, writeFile} from './lib.mjs';

// A stand-in daemon: announces itself, and on SIGTERM prints `line` to stderr and exits `code`.
function fakeDaemon(dir, line, code) {
  const p = writeFile(dir, 'fake.sh', `#!/bin/sh
trap 'echo "${line}" >&2; exit ${code}' TERM
echo "listening on http://127.0.0.1:9"
while :; do sleep 0.05; done
`);
  fs.chmodSync(p, 0o755);
  return p;
}

test('a sanitizer report on stderr or a non-zero exit fails the test', async () => {
  const dir = tmpDir();
  try {
    for (const line of ['x.c:3:9: runtime error: signed integer overflow',
      '==1==ERROR: AddressSanitizer: heap-use-after-free', 'SUMMARY: AddressSanitizer: 64 byte(s) leaked']) {
      await assert.rejects(withDaemon({bin: fakeDaemon(dir, line, 0)}, async () => {}), /sanitizer report/, line);
    }
    await assert.rejects(withDaemon({bin: fakeDaemon(dir, 'bye', 23)}, async () => {}), /exited with .*23/);
    assert.equal(await withDaemon({bin: fakeDaemon(dir, 'stopping', 0)}, async (d) => d.url), 'http://127.0.0.1:9');
  } finally {
    removeDir(dir);
  }
});

// The two clocks of a request (api()): the daemon's own time, read from Server-Timing, lies
// within the client's; an answer without the header has no daemon's time, not a zero.
test('api() gives the daemon\'s time and the client\'s; daemonMs reads Server-Timing', async () => {
  assert.equal(daemonMs(new Headers({'server-timing': 'app;dur=12.345'})), 12.345);
  for (const v of [undefined, '', 'app;dur=', 'app;dur=-1.000', 'db;dur=1.000', 'app;dur=1.000, db;dur=2.000'])
    assert.equal(daemonMs(new Headers(v === undefined ? {} : {'server-timing': v})), null, String(v));
  await withDaemon({}, async (d) => {
    const r = await api(d.url, 'GET', '/healthz');
    assert.equal(r.status, 200);
    assert.equal(typeof r.serverMs, 'number');
    assert.ok(r.serverMs >= 0 && r.serverMs <= r.clientMs, `the daemon's ${r.serverMs} ms, the client's ${r.clientMs} ms`);
  });
});

// readEvents says what ended a read: the caller's condition, the server, or its own timeout.
test('readEvents tells a stream the server ended from one it gave up on', async () => {
  const srv = http.createServer((req, res) => {
    res.writeHead(200, {'Content-Type': 'text/event-stream'});
    res.write('event: a\ndata: {}\n\n');
    if (req.url === '/ends') res.end('event: b\ndata: {}\n\n');
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${srv.address().port}`;
  try {
    const ended = await readEvents(url, '/ends');
    assert.deepEqual([ended.map((e) => e.event), ended.ended], [['a', 'b'], 'closed']);
    const held = await readEvents(url, '/holds', {timeoutMs: 300});
    assert.deepEqual([held.map((e) => e.event), held.ended], [['a'], 'timeout']);
    const until = await readEvents(url, '/holds', {until: (ev) => ev.length === 1});
    assert.deepEqual([until.map((e) => e.event), until.ended], [['a'], 'until']);
  } finally {
    srv.closeAllConnections();
    srv.close();
  }
});
