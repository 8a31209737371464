// Shared helpers of the end-to-end tests (node --test): start the real daemon on a free port
// with a fresh store, talk JSON to it, and wait for conditions.
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const BIN = process.env.ANNEALD_BIN || 'build/anneald';

// A fresh directory under the system's temp dir, removed by the caller (or left for a
// post-mortem when a test fails).
export function tmpDir(prefix = 'anneald-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// Resolves with the first line of `stream` that matches re (its match array); rejects after
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

// Starts the daemon and waits for its "listening on http://HOST:PORT" line.
// args: extra command-line arguments; --listen 127.0.0.1:0 and --db <fresh dir>/t.db are added
// unless args name them. env: added to the environment.
// Returns {url, proc, dir, db, log(), stop(), kill9()}: log() is everything the daemon printed
// so far; stop() sends SIGTERM and waits for the exit (SIGKILL after 10 s) and resolves to
// {code, signal}; kill9() kills it at once.
export async function startDaemon({args = [], env = {}, bin = BIN, timeoutMs = 15000} = {}) {
  const dir = tmpDir();
  const full = [...args];
  if (!full.includes('--listen')) full.push('--listen', '127.0.0.1:0');
  const db = full.includes('--db') ? full[full.indexOf('--db') + 1] : path.join(dir, 't.db');
  if (!full.includes('--db')) full.push('--db', db);
  const proc = spawn(bin, full, {env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']});
  let out = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c) => { out += c; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({code, signal})));
  let m;
  try {
    m = await Promise.race([
      waitForLine(proc.stdout, /listening on (http:\/\/[^\s]+)/, timeoutMs, (l) => { out += l + '\n'; }),
      exited.then((r) => { throw new Error(`${bin} exited (${JSON.stringify(r)}) before listening:\n${out}`); }),
      new Promise((_, reject) => proc.on('error', reject)),
    ]);
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
  proc.stdout.on('data', (c) => { out += c; });
  const url = m[1].replace(/\/$/, '');
  const wait = async (ms) => Promise.race([exited, new Promise((r) => setTimeout(() => r(null), ms))]);
  return {
    url, proc, dir, db,
    log: () => out,
    exited,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill('SIGTERM');
      const r = await wait(10000);
      if (r) return r;
      proc.kill('SIGKILL');
      return exited;
    },
    async kill9() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      return exited;
    },
  };
}

// One HTTP exchange. body: an object (sent as JSON), a string or Buffer (sent as is, give the
// Content-Type in headers), or undefined. Resolves to {status, json, text, headers}; json is
// null when the answer is not JSON.
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
  const res = await fetch(url + path, {method, headers: h, body: payload});
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  return {status: res.status, json, text, headers: res.headers};
}

// Polls fn until it returns a truthy value (which it resolves to); rejects with `what` after
// timeoutMs.
export async function waitFor(fn, {timeoutMs = 15000, intervalMs = 100, what = 'condition'} = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
                                          (last instanceof Error ? `: ${last.message}` : ''));
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
