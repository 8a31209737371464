// Helpers shared by the load test (tests/e2e/load.test.mjs) and the service benchmarks
// (bench/service.mjs): running wrk and reading its report, reading a process's resident
// memory from /proc, and judging whether a series of memory samples stays flat.
import {spawn} from 'node:child_process';
import fs from 'node:fs';

// wrk prints sizes and counts with unit suffixes ("1.23k", "4.5MB"); these are the factors.
const SUFFIX = {'': 1, k: 1e3, K: 1e3, m: 1e6, M: 1e6, g: 1e9, G: 1e9};

function num(text) {
  const m = /^([0-9.]+)([kKmMgG]?)/.exec(text);
  return m ? Number(m[1]) * SUFFIX[m[2]] : NaN;
}

// Reads wrk's plain report. Returns {requests, seconds, rps, non2xx, socketErrors: {connect,
// read, write, timeout}, errors} where errors = non-2xx/3xx responses + every socket error.
// wrk prints the "Socket errors" and "Non-2xx or 3xx responses" lines only when they are not
// zero, so their absence means zero. Throws when the lines every report has are missing
// (wrk failed to start, or its output format changed): a report that cannot be read must not
// pass for a clean one.
export function parseWrk(text) {
  const done = /(\d+) requests in ([0-9.]+)(us|ms|s|m),/.exec(text);
  const rate = /Requests\/sec:\s+([0-9.]+[kKmMgG]?)/.exec(text);
  if (!done || !rate) throw new Error(`not a wrk report:\n${text.slice(0, 600)}`);
  const unit = {us: 1e-6, ms: 1e-3, s: 1, m: 60}[done[3]];
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const socketErrors = se
    ? {connect: +se[1], read: +se[2], write: +se[3], timeout: +se[4]}
    : {connect: 0, read: 0, write: 0, timeout: 0};
  const bad = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  const non2xx = bad ? +bad[1] : 0;
  const errors = non2xx + Object.values(socketErrors).reduce((a, b) => a + b, 0);
  return {requests: +done[1], seconds: Number(done[2]) * unit, rps: num(rate[1]), non2xx,
          socketErrors, errors};
}

// Runs `wrk -t THREADS -c CONNECTIONS -d SECONDS --timeout TIMEOUT URL` and resolves to its
// parsed report (parseWrk) plus `text`, the report itself. Rejects when wrk exits non-zero.
export function runWrk(url, {threads = 1, connections = 16, seconds = 5, timeout = 2, headers = []} = {}) {
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`,
                '--timeout', `${timeout}s`];
  for (const h of headers) args.push('-H', h);
  args.push(url);
  return new Promise((resolve, reject) => {
    const p = spawn('wrk', args, {stdio: ['ignore', 'pipe', 'pipe']});
    let out = '';
    p.stdout.setEncoding('utf8');
    p.stderr.setEncoding('utf8');
    p.stdout.on('data', (c) => { out += c; });
    p.stderr.on('data', (c) => { out += c; });
    p.on('error', reject);
    p.on('exit', (code) => {
      if (code !== 0) { reject(new Error(`wrk ${args.join(' ')} exited with ${code}:\n${out}`)); return; }
      try { resolve({...parseWrk(out), text: out}); } catch (e) { reject(e); }
    });
  });
}

// The memory lines of /proc/PID/status in kB: {VmRSS, RssAnon, RssFile, RssShmem}; null once
// the process is gone.
export function readRss(pid) {
  let text;
  try { text = fs.readFileSync(`/proc/${pid}/status`, 'utf8'); } catch { return null; }
  const out = {};
  for (const k of ['VmRSS', 'RssAnon', 'RssFile', 'RssShmem']) {
    const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text);
    out[k] = m ? +m[1] : NaN;
  }
  return out;
}

// Judges a series of memory samples [{t, kb}] (t in seconds, in order). The first
// `warmupFrac` of the time span is warm-up (caches, JIT kernels, allocator arenas filling) and
// is ignored; the rest is cut into thirds by time. Flat means the last third's peak is at most
// the first third's peak × (1 + tol) + slackKb. Returns {flat, firstMaxKb, lastMaxKb,
// limitKb, growthKb}. Too few samples to cut into thirds is an error, not a pass.
export function judgeFlat(samples, {warmupFrac = 0.2, tol = 0.10, slackKb = 4096} = {}) {
  if (samples.length < 9) throw new Error(`only ${samples.length} memory samples`);
  const t0 = samples[0].t, t1 = samples.at(-1).t;
  const start = t0 + (t1 - t0) * warmupFrac;
  const span = t1 - start;
  const first = samples.filter((s) => s.t >= start && s.t < start + span / 3);
  const last = samples.filter((s) => s.t >= start + (2 * span) / 3);
  if (first.length < 3 || last.length < 3) {
    throw new Error(`too few memory samples per third (${first.length}, ${last.length})`);
  }
  const firstMaxKb = Math.max(...first.map((s) => s.kb));
  const lastMaxKb = Math.max(...last.map((s) => s.kb));
  const limitKb = firstMaxKb * (1 + tol) + slackKb;
  return {flat: lastMaxKb <= limitKb, firstMaxKb, lastMaxKb, limitKb, growthKb: lastMaxKb - firstMaxKb};
}
