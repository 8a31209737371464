// The store's file under an operator's bad day: deleted or replaced while the daemon runs, and
// files at the start that are no store (not SQLite, truncated). The daemon never opens a
// second file where its store was, never leaves its write-ahead log beside a file it does not
// belong to, and refuses what it cannot read with a clear message and exit status 1, leaving
// the file as it was.
import test from 'node:test';
import assert from 'node:assert/strict';
import {spawn, spawnSync} from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {BIN, SLOW, startDaemon, api, waitFor, waitJob, tmpDir, removeDir, tutorialJob} from './lib.mjs';

function sql(db, text) {
  const r = spawnSync('sqlite3', ['-batch', '-noheader', db, text], {encoding: 'utf8'});
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`sqlite3 ${db}: ${r.stderr}`);
  return r.stdout.trim();
}

// Runs the daemon on `db` until it exits or has listened; resolves to {code, stderr}.
function startOnly(db, extra = []) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, ['--listen', '127.0.0.1:0', '--db', db, ...extra], {stdio: ['ignore', 'pipe', 'pipe']});
    let err = '';
    p.stderr.on('data', (c) => { err += c; });
    p.stdout.on('data', (c) => { if (/listening on/.test(String(c))) p.kill('SIGTERM'); });
    const timer = setTimeout(() => p.kill('SIGKILL'), 15000 * SLOW);
    p.on('error', reject);
    p.on('exit', (code, signal) => { clearTimeout(timer); resolve({code, signal, stderr: err}); });
  });
}

const sha = (p) => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');

for (const how of ['deleted', 'replaced by another file']) {
  test(`the store file ${how} under the running daemon: no other file is opened or spoiled, /healthz and the log say what happened`, async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'anneald.db');
    let d;
    try {
      d = await startDaemon({dir, args: ['--db', db, '--workers', '1']});
      const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 300}));
      assert.equal(r.status, 201, r.text);
      await waitJob(d.url, r.json.id, (j) => j.state === 'completed');
      // What an operator might put in its place: another SQLite file, renamed over the store.
      const other = path.join(dir, 'other.db');
      if (how === 'deleted') {
        fs.rmSync(db);
      } else {
        sql(other, "CREATE TABLE notes(t TEXT); INSERT INTO notes VALUES('kept');");
        fs.renameSync(other, db);
      }
      const before = how === 'deleted' ? null : sha(db);
      const h = await waitFor(async () => {
        const x = await api(d.url, 'GET', '/healthz');
        return x.json.status === 'degraded' && x;
      }, {what: '/healthz to notice'});
      const word = how === 'deleted' ? 'deleted' : 'replaced by another file';
      assert.ok(h.json.problems.some((p) => p.includes(`store file ${db} was ${word}`)), JSON.stringify(h.json.problems));
      await waitFor(() => d.stderr().includes(`error: the store file ${db} was ${word}`), {what: 'the log to say it'});
      // A request thread that opens its connection now (the slow queue has served nothing
      // yet) is refused, rather than reading, or creating, whatever is at the path.
      const w = await api(d.url, 'GET', `/v1/jobs/${r.json.id}/weights`);
      assert.equal(w.status, 503, w.text);
      assert.match(w.json.error.message, new RegExp(`was ${word} while this daemon was running`));
      const ex = await d.stop();
      d = null;
      assert.deepEqual(ex, {code: 0, signal: null});
      const files = fs.readdirSync(dir).sort();
      if (how === 'deleted') {
        assert.ok(!files.includes('anneald.db'), `no fresh store made in its place: ${files}`);
      } else {
        assert.equal(sql(db, 'PRAGMA integrity_check; SELECT t FROM notes;'), 'ok\nkept');
        assert.equal(sha(db), before, 'the file put in its place is as it was put there');
      }
      assert.ok(!files.includes('anneald.db-wal'), `the old log is not left beside the path: ${files}`);
      assert.ok(files.includes('anneald.db-wal.of-a-replaced-store'), `the old log is kept aside: ${files}`);
    } finally {
      if (d) await d.kill9().catch(() => {});
      removeDir(dir);
    }
  });
}

test('the store file deleted before any request: the first /healthz names it, though its thread cannot open the store', async () => {
  // No request has been served: the request threads open their connections now, and are
  // refused; /healthz still says what happened, not only that the store cannot be read.
  const dir = tmpDir();
  const db = path.join(dir, 'anneald.db');
  let d;
  try {
    d = await startDaemon({dir, args: ['--db', db, '--workers', '1']});
    fs.rmSync(db);
    const h = await api(d.url, 'GET', '/healthz');
    assert.equal(h.status, 503, h.text);
    assert.equal(h.json.status, 'degraded');
    assert.ok(h.json.problems.some((p) => p.includes(`store file ${db} was deleted`) && p.includes('/proc/')),
              JSON.stringify(h.json.problems));
    assert.deepEqual(await d.stop(), {code: 0, signal: null});
    d = null;
  } finally {
    if (d) await d.kill9().catch(() => {});
    removeDir(dir);
  }
});

test('a file that is not SQLite, or a store cut short, is refused at the start with a clear message and left as it is', async () => {
  const dir = tmpDir();
  try {
    // a store of the daemon's own, to cut short
    const d = await startDaemon({dir, args: ['--workers', '1']});
    const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 300}));
    await waitJob(d.url, r.json.id, (j) => j.state === 'completed');
    assert.deepEqual(await d.stop(), {code: 0, signal: null});
    const cut = path.join(dir, 'cut.db');
    fs.copyFileSync(path.join(dir, 'anneald.db'), cut);
    fs.truncateSync(cut, 20000);
    const text = path.join(dir, 'notes.db');
    fs.writeFileSync(text, 'these are notes, not a database\n'.repeat(20));
    for (const f of [text, cut]) {
      const before = sha(f);
      const b = await startOnly(f);
      assert.equal(b.code, 1, b.stderr);
      assert.match(b.stderr, new RegExp(`cannot open the store ${f}: .*(file is not a database|malformed).*` +
                                        'not an anneald store, or it is damaged.*left as it is'));
      assert.equal(sha(f), before, `${f} is as it was`);
    }
  } finally {
    removeDir(dir);
  }
});

// Mounts a tmpfs of `size` on a fresh directory; throws (the test fails, it is not skipped)
// where mounting is not permitted.
function mountTmpfs(size) {
  const dir = tmpDir('anneald-tmpfs-');
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], {encoding: 'utf8'});
  if (r.error || r.status !== 0) {
    removeDir(dir);
    throw new Error(`this test needs a small file system of its own and could not mount a tmpfs ` +
                    `(run it as root; mount said: ${(r.stderr || String(r.error)).trim()})`);
  }
  return {dir, unmount: () => spawnSync('umount', [dir]).status === 0 && (removeDir(dir), true)};
}

// Writes zeros to DIR/filler until the file system refuses more.
function fillUp(dir) {
  const fd = fs.openSync(path.join(dir, 'filler'), 'w');
  try {
    for (;;) fs.writeSync(fd, Buffer.alloc(64 * 1024));
  } catch (e) {
    assert.equal(e.code, 'ENOSPC');
  } finally {
    fs.closeSync(fd);
  }
}

test('a start on a full disk with a schema to migrate: exit 1 saying the disk is full, the file as it was, and a migrated store once space is back', async () => {
  const fsys = mountTmpfs('16m');
  let d, d2;
  try {
    const db = path.join(fsys.dir, 'anneald.db');
    d = await startDaemon({dir: fsys.dir, args: ['--db', db, '--workers', '1', '--min-free-disk', '0']});
    const id = (await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 300}))).json.id;
    await waitJob(d.url, id, (j) => j.state === 'completed');
    assert.deepEqual(await d.stop(), {code: 0, signal: null});
    // schema 5: before the summary pyramid, which the migration builds from the rows
    sql(db, 'DROP TABLE metric_pyramid; PRAGMA user_version=5;');
    const before = sha(db);
    fillUp(fsys.dir);
    const b = await startOnly(db, ['--min-free-disk', '0']);
    assert.equal(b.code, 1, b.stderr);
    assert.match(b.stderr, /file system is full: free some space there and start again; the store was left as it was/);
    assert.equal(sha(db), before, 'nothing written');
    fs.rmSync(path.join(fsys.dir, 'filler'));
    d = null;
    d2 = await startDaemon({dir: fsys.dir, args: ['--db', db, '--workers', '1', '--min-free-disk', '0']});
    const m = await api(d2.url, 'GET', `/v1/jobs/${id}/metrics?max_points=40`);
    assert.equal(m.status, 200, m.text);
    assert.equal(m.json.step.at(-1), 300);
    assert.deepEqual(await d2.stop(), {code: 0, signal: null});
    d2 = null;
    assert.equal(Number(sql(db, 'PRAGMA user_version;')) > 5, true);
    assert.equal(sql(db, 'PRAGMA integrity_check;'), 'ok');
  } finally {
    for (const x of [d, d2]) if (x) await x.kill9().catch(() => {});
    assert.ok(fsys.unmount(), `could not unmount ${fsys.dir}`);
  }
});

// A CSV body of about `mb` MB.
function bigCsv(mb) {
  const rows = ['a,b,c,y'];
  for (let i = 0; rows.length * 40 < mb * 1e6; i++) rows.push(`${i * 0.001},${Math.sin(i)},${Math.cos(i)},${(i * 13) % 17}`);
  return rows.join('\n') + '\n';
}

async function upload(url, name, body) {
  const r = await fetch(`${url}/v1/datasets?name=${name}`, {method: 'POST', headers: {'content-type': 'text/csv'}, body});
  const text = await r.text();
  return {status: r.status, text, json: JSON.parse(text)};
}

test('an upload larger than the disk has room for stops at --min-free-disk and says so; the disk keeps its room and a small upload then works', async () => {
  const fsys = mountTmpfs('24m');
  let d;
  try {
    const db = path.join(fsys.dir, 'anneald.db');
    d = await startDaemon({dir: fsys.dir, args: ['--db', db, '--workers', '1', '--min-free-disk', '8M']});
    const big = await upload(d.url, 'big', bigCsv(22));
    assert.equal(big.status, 503, big.text);
    assert.match(big.json.error.message, /the store's file system has .* free, and an upload stops before it leaves less than --min-free-disk 8 MiB; free some space there, then upload again/);
    const free = fs.statfsSync(fsys.dir);
    assert.ok(free.bavail * free.bsize > 4e6, `the disk kept room: ${free.bavail * free.bsize} bytes free`);
    // the refused upload's pages go back to the file system within the housekeeping's second
    let small;
    await waitFor(async () => (small = await upload(d.url, 'small', 'x,y\n1,2\n3,4\n')).status !== 503,
                  {timeoutMs: 10000, what: `a small upload (${small && small.text})`});
    assert.equal(small.status, 201, small.text);
    assert.deepEqual((await api(d.url, 'GET', '/v1/datasets')).json.datasets.map((x) => x.name), ['small']);
    assert.deepEqual(await d.stop(), {code: 0, signal: null});
    d = null;
    assert.equal(sql(db, 'PRAGMA integrity_check; SELECT count(*) FROM dataset_parts WHERE dataset NOT IN (SELECT num FROM datasets);'), 'ok\n0');
  } finally {
    if (d) await d.kill9().catch(() => {});
    assert.ok(fsys.unmount(), `could not unmount ${fsys.dir}`);
  }
});

test('with --min-free-disk 0 an upload fills the disk: 503 saying the disk is full, and its parts go once space is freed, without a restart', async () => {
  const fsys = mountTmpfs('24m');
  let d;
  try {
    const db = path.join(fsys.dir, 'anneald.db');
    const spare = path.join(fsys.dir, 'spare');
    fs.writeFileSync(spare, Buffer.alloc(6 << 20)); // what the operator frees later
    d = await startDaemon({dir: fsys.dir, args: ['--db', db, '--workers', '1', '--min-free-disk', '0']});
    const big = await upload(d.url, 'big', bigCsv(22));
    assert.equal(big.status, 503, big.text);
    assert.match(big.json.error.message, /database or disk is full.*the store's disk is full: free some space on it, then try again/);
    fs.rmSync(spare);
    // (deleted at once when the store takes it, else by the housekeeping's retry each second)
    const orphans = `SELECT count(*) FROM dataset_parts WHERE dataset NOT IN (SELECT num FROM datasets);`;
    await waitFor(() => sql(db, orphans) === '0', {what: `the abandoned parts to go:\n${d.stderr()}`});
    const small = await upload(d.url, 'small', 'x,y\n1,2\n3,4\n');
    assert.equal(small.status, 201, small.text);
    assert.deepEqual(await d.stop(), {code: 0, signal: null});
    d = null;
    assert.equal(sql(db, 'PRAGMA integrity_check; SELECT count(*) FROM dataset_parts WHERE dataset NOT IN (SELECT num FROM datasets);'), 'ok\n0');
  } finally {
    if (d) await d.kill9().catch(() => {});
    assert.ok(fsys.unmount(), `could not unmount ${fsys.dir}`);
  }
});
