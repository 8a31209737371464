// End-to-end tests of the streamed metrics answers (GET /v1/jobs/{id}/metrics, JSON and
// ?format=csv): a job of millions of steps comes back whole and bit for bit (against the same
// spec run by `anneald train --metrics-csv`, and JSON against CSV), the daemon's memory stays
// far below the body's size while it streams, a stop cuts a stream visibly (chunked encoding
// without its terminating chunk), and bad queries keep their 4xx.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {BIN, SANITIZED, api, tmpDir, tutorialJob, waitJob, withDaemon} from './lib.mjs';

const dir = tmpDir('anneald-export-');
process.on('exit', () => fs.rmSync(dir, {recursive: true, force: true}));

// As large as a CI run affords: ~2 s of export per million rows.
const STEPS = SANITIZED ? 200000 : 2000000;
const spec = tutorialJob({steps: STEPS, checkpoint: {every_steps: 100000, keep_last: 2}});

function status(pid) {
  return fs.readFileSync(`/proc/${pid}/status`, 'utf8');
}
function kb(pid, key) {
  const m = new RegExp(`${key}:\\s+(\\d+) kB`).exec(status(pid));
  return m ? Number(m[1]) : 0;
}
// Resets the process's peak resident size to its current one (Linux: clear_refs 5); false when
// the kernel does not let us, and the test then relies on its own samples only.
function resetPeak(pid) {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

// One GET read to its end while the daemon's resident memory is sampled every 10 ms:
// {status, type, body (Buffer), peakKb (the most resident memory seen or recorded)}.
async function fetchSampled(d, p) {
  const pid = d.proc.pid;
  const canReset = resetPeak(pid);
  let peak = kb(pid, 'VmRSS');
  const timer = setInterval(() => { peak = Math.max(peak, kb(pid, 'VmRSS')); }, 10);
  try {
    const res = await fetch(d.url + p);
    const parts = [];
    for await (const c of res.body) parts.push(c);
    if (canReset) peak = Math.max(peak, kb(pid, 'VmHWM'));
    return {status: res.status, type: res.headers.get('content-type'), body: Buffer.concat(parts), peakKb: peak};
  } finally {
    clearInterval(timer);
  }
}

const lines = (buf) => buf.toString('latin1').trimEnd().split('\n');
// Same double, bit for bit (NaN as "" in CSV and null in JSON).
const same = (a, b) => Object.is(a, b);
const num = (s) => (s === '' ? NaN : Number(s));

test(`the JSON and CSV of a ${STEPS}-step job stream whole, bit for bit, in little memory`, {timeout: 900000}, async () => {
  // The reference: the same spec trained by the CLI, every row written as it goes.
  const specFile = path.join(dir, 'spec.json');
  const refFile = path.join(dir, 'ref.csv');
  fs.writeFileSync(specFile, JSON.stringify(spec));
  const cli = spawnSync(BIN, ['train', specFile, '--metrics-csv', refFile], {encoding: 'utf8'});
  assert.equal(cli.status, 0, cli.stderr);
  const ref = lines(fs.readFileSync(refFile));
  assert.equal(ref.length, STEPS + 1);

  await withDaemon({args: ['--workers', '1']}, async (d) => {
    const r = await api(d.url, 'POST', '/v1/jobs', spec);
    assert.equal(r.status, 201, r.text);
    const j = await waitJob(d.url, r.json.id, (x) => ['completed', 'failed'].includes(x.state), 600000);
    assert.equal(j.state, 'completed', j.error);
    const base = kb(d.proc.pid, 'VmRSS');

    const csv = await fetchSampled(d, `/v1/jobs/${j.id}/metrics?format=csv`);
    assert.equal(csv.status, 200);
    assert.match(csv.type, /^text\/csv/);
    const rows = lines(csv.body);
    assert.equal(rows[0], ref[0], 'CSV header');
    assert.equal(rows.length, STEPS + 1, `${rows.length - 1} CSV rows`);
    // Every row as the CLI's (time aside: it is wall clock), every value bit for bit.
    const mismatch = [];
    for (let i = 1; i <= STEPS && mismatch.length < 5; i++) {
      const g = rows[i].split(','), e = ref[i].split(',');
      if (Number(g[0]) !== i) mismatch.push(`row ${i} is step ${g[0]}`);
      for (const c of [1, 2, 3]) if (!same(num(g[c]), num(e[c]))) mismatch.push(`step ${i} column ${c}: ${g[c]} vs ${e[c]}`);
    }
    assert.deepEqual(mismatch, []);

    const json = await fetchSampled(d, `/v1/jobs/${j.id}/metrics`);
    assert.equal(json.status, 200);
    assert.match(json.type, /^application\/json/);
    const o = JSON.parse(json.body.toString('utf8'));
    assert.deepEqual(Object.keys(o), ['step', 'loss', 'lr', 'grad_norm', 'time', 'wall', 'val_step', 'val_loss', 'val_acc']);
    for (const k of ['step', 'loss', 'grad_norm', 'time', 'wall']) assert.equal(o[k].length, STEPS, k);
    // the wall clock: whole seconds, never going back
    for (let i = 1; i < STEPS; i++) if (!(o.wall[i] >= o.wall[i - 1] && Number.isInteger(o.wall[i]))) assert.fail(`wall at step ${i + 1}: ${o.wall[i]}`);
    assert.equal(o.lr.length, 1);
    assert.equal(o.lr[0].length, STEPS);
    // JSON and CSV: the same rows, all five columns (time included) bit for bit.
    const diff = [];
    for (let i = 0; i < STEPS && diff.length < 5; i++) {
      const c = rows[i + 1].split(',');
      const v = [o.step[i], o.loss[i], o.lr[0][i], o.grad_norm[i], o.time[i]];
      for (let k = 0; k < 5; k++) if (!same(v[k] ?? NaN, num(c[k]))) diff.push(`step ${i + 1} column ${k}: ${v[k]} vs ${c[k]}`);
    }
    assert.deepEqual(diff, []);

    // Windows (one piece each) are the same rows as the whole.
    for (const [from, to] of [[1, 1], [777777 % STEPS, 777777 % STEPS + 2999], [STEPS - 5, STEPS + 100]]) {
      const w = await api(d.url, 'GET', `/v1/jobs/${j.id}/metrics?format=csv&from=${from}&to=${to}`);
      assert.equal(w.status, 200);
      const wl = w.text.trimEnd().split('\n');
      assert.deepEqual(wl.slice(1), rows.slice(from, Math.min(to, STEPS) + 1), `window ${from}..${to}`);
    }

    // Memory: the bodies are ~170 MB; the daemon's resident size grows by a few MB (two
    // 256 KiB pieces, a decoded block, SQLite's page cache). The sanitized build's allocator
    // keeps freed memory in quarantine, so its figures are printed only.
    const mb = (k) => (k / 1024).toFixed(1);
    console.log(`# ${STEPS} rows: CSV ${csv.body.length} B, JSON ${json.body.length} B; daemon RSS before ${mb(base)} MB,` +
                ` peak during CSV ${mb(csv.peakKb)} MB, during JSON ${mb(json.peakKb)} MB`);
    if (!SANITIZED) {
      for (const [what, x] of [['CSV', csv], ['JSON', json]]) {
        const grew = x.peakKb - base;
        assert.ok(grew < 32 * 1024, `${what}: peak ${x.peakKb} kB during the export, ${base} kB before`);
        assert.ok(grew * 1024 * 8 < x.body.length, `${what}: grew ${grew} kB for a body of ${x.body.length} B`);
      }
    }
  });
});

// The raw bytes of one HTTP/1.1 exchange until the server closes: {head, body (Buffer)}.
// onFirst(socket) runs once the first body bytes are in.
function rawGet(url, p, onFirst) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname);
    const parts = [];
    let first = false;
    s.on('connect', () => s.write(`GET ${p} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\n\r\n`));
    s.on('data', (c) => {
      parts.push(c);
      if (!first && Buffer.concat(parts).includes('\r\n\r\n')) {
        first = true;
        if (onFirst) onFirst(s);
      }
    });
    s.on('error', reject);
    s.on('close', () => {
      const all = Buffer.concat(parts);
      const k = all.indexOf('\r\n\r\n');
      resolve({head: all.subarray(0, k).toString('latin1'), body: all.subarray(k + 4)});
    });
  });
}

// Decodes a chunked body: {data, complete} (complete: it ended with its terminating chunk).
function dechunk(b) {
  const out = [];
  let p = 0;
  for (;;) {
    const e = b.indexOf('\r\n', p);
    if (e < 0) return {data: Buffer.concat(out), complete: false};
    const n = parseInt(b.subarray(p, e).toString('latin1'), 16);
    if (n === 0) return {data: Buffer.concat(out), complete: b.subarray(e, e + 4).toString('latin1') === '\r\n\r\n'};
    if (e + 2 + n + 2 > b.length) {
      out.push(b.subarray(e + 2, Math.min(b.length, e + 2 + n)));
      return {data: Buffer.concat(out), complete: false};
    }
    out.push(b.subarray(e + 2, e + 2 + n));
    p = e + 2 + n + 2;
  }
}

test('a stop cuts a long export visibly: chunked, without the terminating chunk', {timeout: 600000}, async () => {
  const steps = SANITIZED ? 100000 : 600000;
  await withDaemon({args: ['--workers', '1']}, async (d) => {
    const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps, checkpoint: {every_steps: 100000, keep_last: 2}}));
    assert.equal(r.status, 201, r.text);
    const j = await waitJob(d.url, r.json.id, (x) => x.state === 'completed', 600000);
    const p = `/v1/jobs/${j.id}/metrics?format=csv`;
    // Read whole, the same stream ends with its terminating chunk and holds every row.
    const whole = await rawGet(d.url, p);
    assert.match(whole.head, /^HTTP\/1\.1 200/);
    assert.match(whole.head, /transfer-encoding: chunked/i);
    const w = dechunk(whole.body);
    assert.ok(w.complete, 'a whole export ends with the terminating chunk');
    assert.equal(lines(w.data).length, steps + 1);
    // Cut: the client stops reading after the first bytes, the daemon gets SIGTERM, the
    // client reads on. The daemon exits 0 (withDaemon) and the body has no terminating chunk.
    const cut = await rawGet(d.url, p, (s) => {
      s.pause();
      d.proc.kill('SIGTERM');
      setTimeout(() => s.resume(), 300);
    });
    assert.match(cut.head, /^HTTP\/1\.1 200/);
    const c = dechunk(cut.body);
    assert.equal(c.complete, false, 'a cut stream has no terminating chunk');
    assert.ok(c.data.length < w.data.length, `${c.data.length} of ${w.data.length} bytes`);
    assert.ok(w.data.subarray(0, c.data.length).equals(c.data), 'what came is the start of the export');
    assert.equal((await d.exited).code, 0);
  });
});

test('bad metrics queries keep their 4xx naming the field, unknown jobs 404, a job without rows streams empty columns', async () => {
  await withDaemon({args: ['--workers', '1']}, async (d) => {
    const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 50}));
    assert.equal(r.status, 201, r.text);
    const id = r.json.id;
    await waitJob(d.url, id, (x) => x.state === 'completed');
    for (const [q, field] of [['from=-1', 'from'], ['from=abc', 'from'], ['to=-2', 'to'], ['from=10&to=5', 'to'],
      ['max_points=-1', 'max_points'], ['max_points=1e3', 'max_points'], ['max_points=99999999999', 'max_points'],
      ['format=xml', 'format'], ['format=csv&to=x', 'to']]) {
      const a = await api(d.url, 'GET', `/v1/jobs/${id}/metrics?${q}`);
      assert.equal(a.status, 400, `${q}: ${a.text}`);
      assert.equal(a.json.error.field, field, q);
      assert.ok(a.json.error.message.length > 10, q);
    }
    for (const q of ['', '?format=csv', '?max_points=10']) {
      const a = await api(d.url, 'GET', `/v1/jobs/j_999999/metrics${q}`);
      assert.equal(a.status, 404, `${q}: ${a.text}`);
      assert.match(a.json.error.message, /j_999999/);
    }
    const ok = await api(d.url, 'GET', `/v1/jobs/${id}/metrics?format=csv`);
    assert.equal(ok.text.trimEnd().split('\n').length, 51);
    // A range past the last step: no rows, but still one (empty) lr array per group.
    const past = await api(d.url, 'GET', `/v1/jobs/${id}/metrics?from=100&to=200`);
    assert.equal(past.status, 200, past.text);
    assert.deepEqual(past.json.lr, [[]]);
    assert.deepEqual(past.json.step, []);
    assert.equal((await api(d.url, 'GET', `/v1/jobs/${id}/metrics?from=100&format=csv`)).text, 'step,loss,lr0,grad_norm,time\n');
    // max_points below 2 still has the first and the last step
    assert.deepEqual((await api(d.url, 'GET', `/v1/jobs/${id}/metrics?max_points=1`)).json.step, [1, 50]);
    // The only worker busy with a long job: the next job waits in the queue without a row.
    const busy = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 100000000}));
    await waitJob(d.url, busy.json.id, (x) => x.state === 'running');
    const q = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 50}));
    assert.equal(q.status, 201, q.text);
    assert.equal((await api(d.url, 'GET', `/v1/jobs/${q.json.id}`)).json.state, 'queued');
    for (const mp of ['', '?max_points=100']) {
      const e = await api(d.url, 'GET', `/v1/jobs/${q.json.id}/metrics${mp}`);
      assert.equal(e.status, 200);
      assert.deepEqual(e.json, {step: [], loss: [], lr: [], grad_norm: [], time: [], wall: [], val_step: [], val_loss: [], val_acc: []});
    }
    const c = await api(d.url, 'GET', `/v1/jobs/${q.json.id}/metrics?format=csv`);
    assert.equal(c.text, 'step,loss,lr0,grad_norm,time\n');
    for (const x of [q.json.id, busy.json.id]) assert.equal((await api(d.url, 'POST', `/v1/jobs/${x}/cancel`)).status, 200);
  });
});
