// Helpers for the service's end-to-end tests: start the real daemon on a free port with a
// temporary store, talk JSON to it, read SSE streams.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BIN = process.env.ANNEALD_BIN || 'build/anneald';

export function tempDir() {
  return mkdtempSync(join(tmpdir(), 'anneald-e2e-'));
}

export function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true });
}

// Starts `anneald --listen 127.0.0.1:0 --db DIR/anneald.db ...args`; resolves once it prints
// its "listening on" line. stop() sends SIGTERM and resolves with the exit code.
export function startDaemon({ dir, args = [], env = {} } = {}) {
  const db = join(dir, 'anneald.db');
  const proc = spawn(BIN, ['--listen', '127.0.0.1:0', '--db', db, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`daemon did not start: ${stderr}`)), 10000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/^listening on (http:\/\/\S+)$/m);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1], proc, db, exited,
          stderr: () => stderr,
          stop: async () => { proc.kill('SIGTERM'); return exited; },
          kill9: async () => { proc.kill('SIGKILL'); return exited; },
        });
      }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`daemon exited ${code}: ${stderr}`)); });
  });
}

// One request; returns {status, headers, body (parsed JSON when it is JSON), text}.
export async function api(url, method, path, body, headers = {}) {
  const h = { ...headers };
  let payload;
  if (body !== undefined && body !== null) {
    if (typeof body === 'string' || body instanceof Uint8Array) payload = body;
    else { payload = JSON.stringify(body); h['Content-Type'] ??= 'application/json'; }
  }
  const res = await fetch(url + path, { method, headers: h, body: payload });
  const text = await res.text();
  let json = null;
  if ((res.headers.get('content-type') || '').includes('json') && text) json = JSON.parse(text);
  return { status: res.status, headers: res.headers, body: json, text };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls GET /v1/jobs/{id} until pred(job) holds; returns the job.
export async function waitJob(url, id, pred, timeoutMs = 60000, headers = {}) {
  const t0 = Date.now();
  for (;;) {
    const r = await api(url, 'GET', `/v1/jobs/${id}`, null, headers);
    if (r.status === 200 && pred(r.body)) return r.body;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timeout waiting for ${id}: ${JSON.stringify(r.body).slice(0, 300)}`);
    await sleep(20);
  }
}

// Reads an SSE stream until `until(events)` is true or the time is up; returns the events
// [{event, id, data}] (data parsed).
export async function readEvents(url, path, { headers = {}, until = () => false, timeoutMs = 10000 } = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  const events = [];
  try {
    const res = await fetch(url + path, { headers, signal: ctl.signal });
    if (res.status !== 200) throw new Error(`SSE status ${res.status}`);
    const dec = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body) {
      buf += dec.decode(chunk, { stream: true });
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
      if (until(events)) break;
    }
  } catch (e) {
    if (e.name !== 'AbortError') throw e;
  } finally {
    clearTimeout(timer);
    ctl.abort();
  }
  return events;
}

export function writeFile(dir, name, text) {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

// The example of JOBSPEC.md (DeepSpeed's scheduler tutorial), with overrides.
export function tutorialJob(over = {}) {
  return {
    name: 'warmup-demo', seed: 42,
    model: { type: 'linear', inputs: 10, outputs: 1 },
    loss: 'mean',
    data: { type: 'synthetic', task: 'regression', samples: 4096, features: 10 },
    steps: 1000,
    checkpoint: { every_steps: 100, keep_last: 3 },
    ds_config: {
      train_batch_size: 8,
      optimizer: { type: 'Adam', params: { lr: 0.01 } },
      scheduler: { type: 'WarmupLR', params: { warmup_min_lr: 0.001, warmup_max_lr: 0.01, warmup_num_steps: 100 } },
    },
    ...over,
  };
}
