// Uploads go to the store as they arrive: a 120 MB data set is taken while the daemon's memory
// grows by a fraction of it (it was held whole before, and checked in a second pass), reads
// back whole for training, and a bad row near its end, a client that goes away mid-body and a
// daemon killed mid-upload all leave no stored piece behind.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import {spawnSync} from 'node:child_process';
import {api, startDaemon, withDaemon, waitFor, waitJob, sleep, tmpDir, removeDir, SANITIZED, SLOW} from './lib.mjs';

const hwmKb = (pid) => Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const rssKb = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const parts = (db) => {
  const r = spawnSync('sqlite3', [db, 'SELECT count(*) FROM dataset_parts'], {encoding: 'utf8'});
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout.trim());
};

// n rows of "x,y" with y = 3x + 1 (x in [0, 1)), as one Buffer.
function regression(n, bad = -1) {
  const lines = ['x,y'];
  for (let i = 0; i < n; i++) {
    const x = ((i * 7919) % 100003) / 100003;
    lines.push(i === bad ? `${x},oops` : `${x.toFixed(12)},${(3 * x + 1).toFixed(12)}`);
  }
  return Buffer.from(lines.join('\n') + '\n');
}

function post(url, name, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(`${url}/v1/datasets?name=${name}`), {method: 'POST',
      headers: {'Content-Type': 'text/csv', 'Content-Length': body.length}});
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({status: res.statusCode, text, json: text ? JSON.parse(text) : null}));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('a 120 MB upload is stored as it arrives: memory grows by a fraction of it, and a job trains on it', async () => {
  // AddressSanitizer holds freed blocks in a quarantine (256 MB by default), so the peak would
  // count every piece the upload went through; a small quarantine keeps the check meaningful.
  const env = SANITIZED ? {ASAN_OPTIONS: `${process.env.ASAN_OPTIONS || ''}:quarantine_size_mb=16`} : {};
  await withDaemon({env}, async (d) => {
    const body = regression(3_600_000); // ~120 MB
    assert.ok(body.length > 100e6, `${body.length} bytes`);
    // warm up (the first requests allocate the daemon's pools), then measure
    assert.equal((await post(d.url, 'warm', regression(10))).status, 201);
    const before = rssKb(d.proc.pid);
    const r = await post(d.url, 'big', body);
    assert.equal(r.status, 201, r.text.slice(0, 300));
    const grew = hwmKb(d.proc.pid) - before;
    console.log(`# ${(body.length / 1e6).toFixed(0)} MB upload: the daemon's peak grew by ${(grew / 1024).toFixed(1)} MB`);
    // About 26 MB here whatever the upload's size: the 4 MiB pieces in flight (received,
    // checked, stored), the storing connection's page cache and its 1 MiB WAL buffer. A third
    // of the body leaves room for the allocator; a body held whole would be all of it.
    // Under the sanitizers, the quarantine (16 MB) and the shadow of what was touched come on top.
    const slack = SANITIZED ? 24 << 20 : 0;
    assert.ok(grew * 1024 < body.length / 3 + slack, `the daemon's peak memory grew by ${grew} kB for a ${body.length}-byte upload`);
    assert.equal(r.json.rows, 3_600_000);
    assert.equal(r.json.bytes, body.length);
    assert.deepEqual(r.json.columns, ['x', 'y']);
    assert.ok(parts(d.db) >= Math.floor(body.length / (4 << 20)));
    // the stored text reads back whole: a job on it trains (its rows counted from the text)
    const job = (await api(d.url, 'POST', '/v1/jobs', {name: 'on-big', seed: 1, steps: 20,
      model: {type: 'linear', inputs: 1, outputs: 1}, loss: 'mse',
      data: {type: 'dataset', name: 'big', target: 'y', features: ['x']},
      ds_config: {train_batch_size: 64, optimizer: {type: 'Adam', params: {lr: 0.05}}}})).json;
    assert.ok(job.id, JSON.stringify(job));
    const done = await waitJob(d.url, job.id, (j) => ['completed', 'failed'].includes(j.state), 120000 * SLOW);
    assert.equal(done.state, 'completed', JSON.stringify(done.error));
  });
});

test('a bad row at the end of a large upload: 400 naming it, and no stored piece is left', async () => {
  await withDaemon({}, async (d) => {
    const body = regression(600_000, 599_990); // ~20 MB, five pieces stored before the bad row
    const r = await post(d.url, 'bad', body);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.field, 'csv[599991].y');
    assert.match(r.json.error.message, /row 599991 \(line 599992\), column 'y': 'oops' is not a number/);
    assert.equal(parts(d.db), 0);
    assert.deepEqual((await api(d.url, 'GET', '/v1/datasets')).json.datasets, []);
    // the name is free for a good upload
    assert.equal((await post(d.url, 'bad', regression(100))).status, 201);
  });
});

test('a client gone mid-upload and a daemon killed mid-upload leave no pieces', async () => {
  const dir = tmpDir();
  let d = null;
  try {
    d = await startDaemon({dir});
    const body = regression(900_000); // ~30 MB
    const {port} = new URL(d.url);
    // send the head and two thirds of the body, then go away
    const sock = net.connect(Number(port), '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    let sockErr = null;
    sock.on('error', (e) => { sockErr = e; });
    sock.write(`POST /v1/datasets?name=gone HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: text/csv\r\nContent-Length: ${body.length}\r\n\r\n`);
    sock.write(body.subarray(0, Math.floor(body.length * 2 / 3)));
    await waitFor(() => parts(d.db) >= 3, {timeoutMs: 30000 * SLOW, what: 'pieces stored'});
    assert.equal(sockErr, null, 'the daemon kept the connection open while the body came');
    sock.destroy();
    await waitFor(() => parts(d.db) === 0, {timeoutMs: 30000 * SLOW, what: 'the pieces of the abandoned upload deleted'});
    // again, and this time the daemon dies mid-upload
    const sock2 = net.connect(Number(port), '127.0.0.1');
    await new Promise((r) => sock2.once('connect', r));
    sock2.on('error', () => {});
    sock2.write(`POST /v1/datasets?name=cut HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: text/csv\r\nContent-Length: ${body.length}\r\n\r\n`);
    sock2.write(body.subarray(0, Math.floor(body.length / 2)));
    await waitFor(() => parts(d.db) >= 2, {timeoutMs: 30000 * SLOW, what: 'pieces stored'});
    await d.kill9();
    sock2.destroy();
    assert.ok(parts(d.db) >= 2);
    d = await startDaemon({dir});
    try {
      assert.equal(parts(d.db), 0);
      assert.match(d.log(), /deleted \d+ part\(s\) of uploads a stop cut short/);
      assert.deepEqual((await api(d.url, 'GET', '/v1/datasets')).json.datasets, []);
    } finally {
      assert.equal((await d.stop()).code, 0);
    }
  } finally {
    // A failed check leaves the daemon running: a live child would keep this file's process,
    // and with it the whole test run, waiting forever.
    if (d && d.running()) await d.kill9().catch(() => {});
    removeDir(dir);
  }
});

// A body's last bytes and the client's FIN read together in one short read: libmicrohttpd's
// edge-triggered epoll then never sees the end of the input, and the request waited out the
// 30 s idle timeout (an upload's stored pieces and its memory with it). The daemon is stopped
// while the client sends its last bytes and closes, so both are queued when it reads again.
test('a client whose last bytes and close arrive together mid-body is let go at once', async () => {
  const abandoned = async (url) => Number(/anneald_connections_body_abandoned_total (\d+)/
    .exec((await api(url, 'GET', '/metrics')).text)[1]);
  await withDaemon({}, async (d) => {
    const {port} = new URL(d.url);
    const head = (line, type, length) =>
      `${line}\r\nHost: 127.0.0.1:${port}\r\nContent-Type: ${type}\r\nContent-Length: ${length}\r\n\r\n`;
    const cases = [
      // an upload with a stored piece (4 MiB) and the next one begun
      {head: (n) => head('POST /v1/datasets?name=cut HTTP/1.1', 'text/csv', n), first: regression(200_000), pieces: 1},
      // a JSON body, held whole until it ends
      {head: (n) => head('POST /v1/jobs HTTP/1.1', 'application/json', n), first: Buffer.from('{"name": "' + 'x'.repeat(200_000)),
       pieces: 0},
      // a head that announces a body, and the close right behind it
      {head: (n) => head('POST /v1/datasets?name=bare HTTP/1.1', 'text/csv', n), first: null, pieces: 0},
    ];
    for (const [i, c] of cases.entries()) {
      const sock = net.connect(Number(port), '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      sock.on('error', () => {});
      let last = Buffer.alloc(20_000, 0x31);
      if (c.first) {
        sock.write(c.head(c.first.length * 4));
        sock.write(c.first);
        await waitFor(() => parts(d.db) >= c.pieces, {timeoutMs: 30000 * SLOW, what: 'pieces stored'});
        await sleep(300); // the daemon has read what was sent
      } else {
        last = Buffer.from(c.head(1 << 20));
      }
      process.kill(d.proc.pid, 'SIGSTOP');
      try {
        await new Promise((r) => sock.end(last, r));
        await sleep(200);
      } finally {
        process.kill(d.proc.pid, 'SIGCONT');
      }
      // well before the 30 s idle timeout, which closes it without counting it
      await waitFor(async () => (await abandoned(d.url)) === i + 1,
        {timeoutMs: 10000, what: `the sweep closing the abandoned request (case ${i})`});
      await waitFor(() => parts(d.db) === 0, {timeoutMs: 10000, what: 'the pieces of the abandoned upload deleted'});
      sock.destroy();
    }
    // a whole upload and a request without a body afterwards are not taken for abandoned ones
    const ok = await post(d.url, 'whole', regression(1000));
    assert.equal(ok.status, 201, ok.text);
    assert.equal((await api(d.url, 'GET', '/v1/datasets')).status, 200);
    assert.equal(await abandoned(d.url), cases.length);
  });
});
