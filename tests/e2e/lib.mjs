// Helpers of every end-to-end test (node --test): start the real daemon on a free port with a
// fresh store, talk JSON to it, read SSE streams, wait for conditions, and build job specs.
//
// The daemon under test is $ANNEALD_BIN (default build/anneald); `make check` points it at the
// sanitized build, where everything runs a few times slower (SLOW scales the waits) and any
// sanitizer report on the daemon's stderr fails the test that stops it.
import assert from 'node:assert/strict';
import {spawn} from 'node:child_process';
import {check as openapiCheck} from './openapi.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {after} from 'node:test';

export const BIN = process.env.ANNEALD_BIN || 'build/anneald';

// True when the daemon is the AddressSanitizer/UBSan build (make check).
export const SANITIZED = process.env.ANNEALD_SANITIZED === '1' || /build-san/.test(BIN);

// How much longer waits may take on the sanitized build.
export const SLOW = SANITIZED ? 5 : 1;

// What a sanitizer prints when it finds something (ASan, LSan, UBSan).
const SANITIZER_REPORT = /AddressSanitizer|LeakSanitizer|runtime error:/;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A fresh directory under the system's temp dir.
export function tmpDir(prefix = 'anneald-e2e-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function removeDir(dir) {
  fs.rmSync(dir, {recursive: true, force: true});
}

// Writes `text` to DIR/NAME and returns the path.
export function writeFile(dir, name, text) {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

// Resolves with the match array of the first line of `stream` that matches re; rejects after
// timeoutMs or when the stream ends first. Every line is also handed to onLine.
export function waitForLine(stream, re, timeoutMs = 15000, onLine) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const done = (err, val) => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      if (err) reject(err); else resolve(val);
    };
    const onData = (chunk) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (onLine) onLine(line);
        const m = re.exec(line);
        if (m) { done(null, m); return; }
      }
    };
    const onEnd = () => done(new Error(`stream ended before a line matching ${re}`));
    const timer = setTimeout(() => done(new Error(`no line matching ${re} within ${timeoutMs} ms`)), timeoutMs);
    stream.setEncoding('utf8');
    stream.on('data', onData);
    stream.on('end', onEnd);
  });
}

// Daemons still running when the test process ends are killed, so a failed test leaves none.
const live = new Set();
process.on('exit', () => { for (const p of live) p.kill('SIGKILL'); });
// Under `node --test`, a daemon a failed test left running would keep the file's process, and
// with it the whole run, waiting forever ('exit' never comes): killed once the file's tests
// are done. (Benchmarks import this file too; outside the test runner there is no hook.)
if (process.env.NODE_TEST_CONTEXT) {
  after(() => { for (const p of live) p.kill('SIGKILL'); });
}

// Starts `anneald --listen 127.0.0.1:0 --db DIR/anneald.db ...args` and waits for its
// "listening on http://HOST:PORT" line. dir: the store's directory (a fresh one, removed when
// the daemon is stopped, if not given; a given one is left to the caller, so a second daemon
// can restart on the same store). --listen and --db are added unless args name them.
// Returns {url, proc, dir, db, exited, running(), log(), stderr(), stop(), kill9()}: log() is everything
// the daemon printed, stderr() its stderr; stop() sends SIGTERM, waits for the exit (SIGKILL
// after 10 s) and resolves to {code, signal}; kill9() kills it at once. Both reject when the
// daemon's stderr holds a sanitizer report.
export async function startDaemon({dir, args = [], env = {}, bin = BIN, timeoutMs = 15000 * SLOW} = {}) {
  const owned = !dir;
  if (owned) dir = tmpDir();
  const full = [...args];
  if (!full.includes('--listen')) full.push('--listen', '127.0.0.1:0');
  const db = full.includes('--db') ? full[full.indexOf('--db') + 1] : path.join(dir, 'anneald.db');
  if (!full.includes('--db')) full.push('--db', db);
  const proc = spawn(bin, full, {env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']});
  live.add(proc);
  let out = '';
  let err = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c) => { out += c; err += c; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => {
    live.delete(proc);
    resolve({code, signal});
  }));
  let m;
  try {
    m = await Promise.race([
      waitForLine(proc.stdout, /^listening on (http:\/\/\S+)$/, timeoutMs, (l) => { out += l + '\n'; }),
      exited.then((r) => { throw new Error(`${bin} exited (${JSON.stringify(r)}) before listening:\n${out}`); }),
      new Promise((_, reject) => proc.on('error', reject)),
    ]);
  } catch (e) {
    proc.kill('SIGKILL');
    if (owned) removeDir(dir);
    throw e;
  }
  proc.stdout.on('data', (c) => { out += c; });
  const url = m[1].replace(/\/$/, '');
  const running = () => proc.exitCode === null && proc.signalCode === null;
  const finish = async (r) => {
    // stderr may still be draining after the exit event.
    await new Promise((res) => (proc.stderr.readableEnded ? res() : proc.stderr.once('end', res)));
    if (owned) removeDir(dir);
    if (SANITIZER_REPORT.test(err)) {
      throw new Error(`the daemon's stderr holds a sanitizer report (exit ${JSON.stringify(r)}):\n${err.slice(-8000)}`);
    }
    return r;
  };
  return {
    url, proc, dir, db, exited, running,
    log: () => out,
    stderr: () => err,
    async stop() {
      if (running()) {
        proc.kill('SIGTERM');
        // The grace timer is cleared as soon as the daemon exits: a pending timer would keep
        // the test file's process alive for its whole length.
        let timer;
        const grace = new Promise((r) => { timer = setTimeout(() => r(null), 10000 * SLOW); });
        const r = await Promise.race([exited, grace]);
        clearTimeout(timer);
        if (!r) proc.kill('SIGKILL');
      }
      return finish(await exited);
    },
    async kill9() {
      if (running()) proc.kill('SIGKILL');
      return finish(await exited);
    },
  };
}

// Runs fn(daemon) against a daemon started with `opts` (as startDaemon), then stops the daemon
// with SIGTERM if fn left it running; a daemon that then exits other than with 0 (a sanitizer
// aborts or reports leaks with another code) or printed a sanitizer report fails the test.
export async function withDaemon(opts, fn) {
  const d = await startDaemon(opts);
  let r;
  try {
    r = await fn(d);
  } catch (e) {
    await d.kill9().catch(() => {});
    throw e;
  }
  const wasRunning = d.running();
  const ex = await d.stop();
  if (wasRunning && ex.code !== 0) {
    throw new Error(`the daemon exited with ${JSON.stringify(ex)} on SIGTERM:\n${d.stderr().slice(-4000)}`);
  }
  return r;
}

// The daemon's own milliseconds over an answer: its `Server-Timing: app;dur=MS` (docs/API.md,
// "Service": the request's head in to its answer queued). null when the answer has none.
export function daemonMs(headers) {
  const m = /^app;dur=([0-9]+\.[0-9]{3})$/.exec(headers.get('server-timing') ?? '');
  return m ? Number(m[1]) : null;
}

// One HTTP exchange. body: an object (sent as JSON), a string or Uint8Array (sent as it is;
// give the Content-Type in headers), or null/undefined. Resolves to {status, headers, json,
// text, clientMs, serverMs}; json is the parsed body when it is JSON, else null.
// Two clocks, for the tests that bound a request's time: serverMs is the daemon's own
// (daemonMs); clientMs is this process's, from the fetch to the body read, and so also holds
// what the network and this process add (its garbage collector, its page faults under the
// kernel's write-back, its other timers). A bound on the daemon's latency belongs on
// serverMs; clientMs only catches what the daemon cannot see (a connection not yet read, a
// wait long enough to be a failure by any clock). The API check below is not timed.
export async function api(url, method, path, body, headers = {}) {
  const h = {...headers};
  let payload;
  if (body !== undefined && body !== null) {
    if (typeof body === 'string' || body instanceof Uint8Array) payload = body;
    else {
      payload = JSON.stringify(body);
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'application/json';
    }
  }
  const t0 = performance.now();
  const res = await fetch(url + path, {method, headers: h, body: payload});
  const text = await res.text();
  const clientMs = performance.now() - t0;
  let json = null;
  if ((res.headers.get('content-type') || '').includes('json') && text) json = JSON.parse(text);
  // Every exchange must be as the API document describes it (tests/e2e/openapi.mjs).
  const reqType = Object.entries(h).find(([k]) => k.toLowerCase() === 'content-type')?.[1] || '';
  let reqJson;
  if (body !== undefined && body !== null && typeof body === 'object' && !(body instanceof Uint8Array)) reqJson = body;
  else if (typeof body === 'string' && reqType.startsWith('application/json')) {
    try { reqJson = JSON.parse(body); } catch { reqJson = undefined; }
  }
  const problems = openapiCheck({method, url: url + path, reqType, reqJson, status: res.status,
                                 resType: res.headers.get('content-type'), resJson: json});
  if (problems.length) throw new Error('not as api/openapi.json says:\n  ' + problems.join('\n  '));
  return {status: res.status, headers: res.headers, json, text, clientMs, serverMs: daemonMs(res.headers)};
}

// Polls fn until it returns a truthy value (which it resolves to); rejects naming `what` after
// timeoutMs (scaled by SLOW). `what` may be a function, asked for its text only then.
export async function waitFor(fn, {timeoutMs = 15000, intervalMs = 50, what = 'condition'} = {}) {
  const end = Date.now() + timeoutMs * SLOW;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    if (Date.now() > end) {
      const name = typeof what === 'function' ? what() : what;
      throw new Error(`timed out after ${timeoutMs * SLOW} ms waiting for ${name}` +
                      (last instanceof Error ? `: ${last.message}` : `: ${JSON.stringify(last)}`.slice(0, 400)));
    }
    await sleep(intervalMs);
  }
}

// Polls GET /v1/jobs/{id} until pred(job) holds; resolves to the job. A job that ends in a
// state pred cannot reach any more is reported at once with the job's own error.
export async function waitJob(url, id, pred, timeoutMs = 60000, headers = {}) {
  let job = null;
  return waitFor(async () => {
    const r = await api(url, 'GET', `/v1/jobs/${id}`, null, headers);
    job = r.json;
    if (r.status === 200 && pred(job)) return job;
    if (r.status === 200 && job.state === 'failed') throw new Error(`job ${id} failed: ${job.error}`);
    return null;
  }, {timeoutMs, intervalMs: 20, what: () => `job ${id} (last seen ${JSON.stringify(job).slice(0, 600)})`});
}

// Reads an SSE stream until `until(events)` holds or the time is up; resolves to the events
// [{event, id, data}] (data parsed), with `ended` saying what ended the read: 'until', 'closed'
// (the daemon ended the stream) or 'timeout' (this reader gave up).
// `onOpen` is called once the answer's headers arrive: the daemon subscribes a stream before
// it sends them, so whatever happens after onOpen reaches the stream.
export async function readEvents(url, path, {headers = {}, until = () => false, timeoutMs = 10000, onOpen = () => {}} = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  const events = [];
  events.ended = 'closed';
  try {
    const res = await fetch(url + path, {headers, signal: ctl.signal});
    if (res.status !== 200) throw new Error(`SSE status ${res.status}`);
    onOpen();
    const dec = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body) {
      buf += dec.decode(chunk, {stream: true});
      let k;
      while ((k = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, k);
        buf = buf.slice(k + 2);
        const ev = {};
        for (const line of frame.split('\n')) {
          if (line.startsWith('event: ')) ev.event = line.slice(7);
          else if (line.startsWith('id: ')) ev.id = line.slice(4);
          else if (line.startsWith('data: ')) ev.data = JSON.parse(line.slice(6));
        }
        if (ev.event) events.push(ev);
      }
      if (until(events)) { events.ended = 'until'; break; }
    }
  } catch (e) {
    if (e.name !== 'AbortError') throw e;
    events.ended = 'timeout';
  } finally {
    clearTimeout(timer);
    ctl.abort();
  }
  return events;
}

// The example of JOBSPEC.md (DeepSpeed's scheduler tutorial), with overrides. It trains
// millions of steps per second: a job of it ends before a test can act on it mid-run.
export function tutorialJob(over = {}) {
  return {
    name: 'warmup-demo', seed: 42,
    model: {type: 'linear', inputs: 10, outputs: 1},
    loss: 'mean',
    data: {type: 'synthetic', task: 'regression', samples: 4096, features: 10},
    steps: 1000,
    checkpoint: {every_steps: 100, keep_last: 3},
    ds_config: {
      train_batch_size: 8,
      optimizer: {type: 'Adam', params: {lr: 0.01}},
      scheduler: {type: 'WarmupLR', params: {warmup_min_lr: 0.001, warmup_max_lr: 0.01, warmup_num_steps: 100}},
    },
    ...over,
  };
}

// A CSV table of `rows` rows for a regression: columns a, b and y = 2a - b.
export function regressionCsv(rows = 64) {
  let s = 'a,b,y\n';
  for (let i = 0; i < rows; i++) {
    const a = (i % 7) / 7, b = (i % 5) / 5;
    s += `${a},${b},${2 * a - b}\n`;
  }
  return s;
}

// A job heavy enough to train a few thousand steps per second (an MLP 32-256-256-1 on batches
// of 64), with far more steps than any test waits for: it is still running whenever a test
// looks, until the test cancels it.
export function heavyJob(over = {}) {
  return {
    name: 'heavy', seed: 5,
    model: {type: 'mlp', inputs: 32, hidden: [256, 256], outputs: 1},
    data: {type: 'synthetic', task: 'regression', samples: 8192, features: 32},
    steps: 100000000,
    checkpoint: {every_steps: 500, keep_last: 2},
    ds_config: {
      train_batch_size: 64,
      optimizer: {type: 'Adam', params: {lr: 0.001}},
      scheduler: {type: 'WarmupLR', params: {warmup_min_lr: 0, warmup_max_lr: 0.001, warmup_num_steps: 1000}},
    },
    ...over,
  };
}

// Parses the metrics CSV into its header and rows (arrays of strings).
export function parseCsv(text) {
  const lines = text.trim().split('\n');
  return {header: lines[0].split(','), rows: lines.slice(1).map((l) => l.split(','))};
}

// Asserts one row per step 1..n and every column but the wall-clock `time` equal to the
// reference's, as text: the CSV prints the shortest form that reads back to the same double,
// so equal text is equal bits.
export function assertSameMetrics(got, ref, n, what) {
  const g = parseCsv(got), r = parseCsv(ref);
  assert.deepEqual(g.header, r.header, `${what}: CSV header`);
  const steps = g.rows.map((row) => Number(row[0]));
  assert.equal(steps.length, n, `${what}: ${steps.length} metric rows, expected ${n}`);
  for (let i = 0; i < n; i++)
    assert.equal(steps[i], i + 1, `${what}: metric row ${i} is step ${steps[i]}, expected ${i + 1}`);
  const cols = g.header.map((h, i) => [h, i]).filter(([h]) => h !== 'time');
  assert.ok(cols.some(([h]) => h === 'lr0') && cols.some(([h]) => h === 'loss'), `${what}: header ${g.header}`);
  for (let i = 0; i < n; i++) {
    for (const [h, c] of cols) {
      if (g.rows[i][c] !== r.rows[i][c])
        assert.fail(`${what}: step ${i + 1} ${h} is ${g.rows[i][c]}, uninterrupted run has ${r.rows[i][c]}`);
    }
  }
}

// mulberry32: a small seedable PRNG (uniform in [0, 1)), so a random test replays by its seed.
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
