// A hostile web page against the daemon (DESIGN.md, "A browser is not a trusted client"): what
// a page the user visits can make the browser send — CORS "simple" POSTs (text/plain, form
// encoded), requests carrying its foreign Origin, and, after DNS rebinding, requests whose
// Host is the page's own name — is refused, and nothing in the store changes. The dashboard's
// own requests (same Origin and Host) and plain curl keep working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { api, heavyJob, tutorialJob, waitJob, withDaemon, writeFile, tmpDir, removeDir, BIN } from './lib.mjs';

// One raw HTTP exchange with headers exactly as given (fetch forbids setting Host).
function raw(url, method, p, headers = {}, body = null) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path: p, headers, setHost: !('Host' in headers) },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => { text += c; });
        res.on('end', () => {
          let json = null;
          try { json = JSON.parse(text); } catch { /* not JSON */ }
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        });
      });
    req.on('error', reject);
    if (body !== null) req.write(body);
    req.end();
  });
}

// Everything a page could have changed: the jobs (id, state, name) and the data sets.
async function snapshot(url) {
  const jobs = (await api(url, 'GET', '/v1/jobs?limit=1000')).json.jobs.map((j) => [j.id, j.state, j.name]);
  const ds = (await api(url, 'GET', '/v1/datasets')).json;
  return JSON.stringify({ jobs, ds });
}

test('a hostile page is refused everything and changes nothing; the dashboard and curl still work', async () => {
  await withDaemon({ args: ['--workers', '1'] }, async (d) => {
    const port = new URL(d.url).port;
    const running = (await api(d.url, 'POST', '/v1/jobs', heavyJob())).json;
    await waitJob(d.url, running.id, (j) => j.state === 'running');
    const paused = (await api(d.url, 'POST', '/v1/jobs', tutorialJob({ steps: 100000000, name: 'queued' }))).json;
    const before = await snapshot(d.url);

    const spec = JSON.stringify(tutorialJob({ name: 'evil' }));
    const evil = 'http://evil.example';
    const cases = [
      // CORS simple requests: no preflight, so the browser sends them as they are.
      ['POST', '/v1/jobs', { 'Content-Type': 'text/plain' }, spec, 415],
      ['POST', '/v1/jobs', { 'Content-Type': 'application/x-www-form-urlencoded' }, spec, 415],
      ['POST', '/v1/jobs', { 'Content-Type': 'multipart/form-data; boundary=x' }, spec, 415],
      ['POST', '/v1/jobs', {}, spec, 415],
      ['POST', '/v1/jobs', { 'Content-Type': 'text/plain', Origin: evil }, spec, 403],
      ['POST', '/v1/jobs', { 'Content-Type': 'application/json', Origin: evil }, spec, 403],
      ['POST', `/v1/jobs/${running.id}/cancel`, { Origin: evil }, null, 403],
      ['POST', `/v1/jobs/${running.id}/pause`, { Origin: evil, 'Content-Type': 'text/plain' }, '{}', 403],
      ['POST', `/v1/jobs/${running.id}/cancel`, { 'Content-Type': 'text/plain' }, '{}', 415],
      ['DELETE', `/v1/jobs/${paused.id}`, { Origin: evil }, null, 403],
      ['POST', '/v1/datasets?name=evil', { 'Content-Type': 'text/plain', Origin: evil }, 'a,b\n1,2\n', 403],
      ['POST', '/v1/datasets?name=evil', { 'Content-Type': 'application/x-www-form-urlencoded' }, 'a,b\n1,2\n', 415],
      // Another page on this machine is another origin too, and so are sandboxed frames.
      ['POST', `/v1/jobs/${running.id}/cancel`, { Origin: 'http://localhost:3000' }, null, 403],
      ['POST', `/v1/jobs/${running.id}/cancel`, { Origin: `https://127.0.0.1:${Number(port) + 1}` }, null, 403],
      ['POST', `/v1/jobs/${running.id}/cancel`, { Origin: 'null' }, null, 403],
      // DNS rebinding: evil.example now resolves to 127.0.0.1, so the page is "same origin"
      // with the daemon in the browser's eyes, and reads as well as writes.
      ['GET', '/v1/jobs', { Host: `evil.example:${port}` }, null, 421],
      ['GET', `/v1/jobs/${running.id}`, { Host: 'evil.example' }, null, 421],
      ['GET', '/v1/events', { Host: `evil.example:${port}` }, null, 421],
      ['GET', '/metrics', { Host: `evil.example:${port}` }, null, 421],
      ['POST', `/v1/jobs/${running.id}/cancel`,
        { Host: `evil.example:${port}`, Origin: `http://evil.example:${port}` }, null, 421],
      ['POST', '/v1/jobs', { Host: `evil.example:${port}`, Origin: `http://evil.example:${port}`,
        'Content-Type': 'application/json' }, spec, 421],
      ['DELETE', `/v1/jobs/${paused.id}`, { Host: `127.0.0.1.evil.example:${port}` }, null, 421],
    ];
    for (const [method, p, headers, body, want] of cases) {
      const r = await raw(d.url, method, p, headers, body);
      const what = `${method} ${p} ${JSON.stringify(headers)}`;
      assert.equal(r.status, want, `${what}: ${r.text}`);
      assert.ok(r.json && r.json.error && r.json.error.message, `${what}: a JSON error body: ${r.text}`);
      const field = { 415: 'Content-Type', 403: 'Origin', 421: 'Host' }[want];
      assert.equal(r.json.error.field, field, what);
    }
    assert.equal(await snapshot(d.url), before, 'nothing changed');

    // The dashboard's own requests: same Origin as Host, JSON bodies.
    const own = { Host: `127.0.0.1:${port}`, Origin: `http://127.0.0.1:${port}` };
    const created = await raw(d.url, 'POST', '/v1/jobs', { ...own, 'Content-Type': 'application/json' },
      JSON.stringify(tutorialJob({ steps: 5, name: 'dashboard' })));
    assert.equal(created.status, 201, created.text);
    const pausedOwn = await raw(d.url, 'POST', `/v1/jobs/${paused.id}/pause`, own, null);
    assert.equal(pausedOwn.status, 200, pausedOwn.text);
    const viaLocalhost = await raw(d.url, 'GET', '/v1/jobs', { Host: `localhost:${port}`, Origin: `http://localhost:${port}` });
    assert.equal(viaLocalhost.status, 200, viaLocalhost.text);
    const page = await raw(d.url, 'GET', '/', { Host: `localhost:${port}` });
    assert.equal(page.status, 200);

    // Plain curl, as the README shows it.
    const out = execFileSync('curl', ['-s', '-w', '\n%{http_code}', '-X', 'POST', `${d.url}/v1/jobs`,
      '-H', 'Content-Type: application/json', '-d', JSON.stringify(tutorialJob({ steps: 5, name: 'curl' }))], { encoding: 'utf8' });
    assert.match(out, /\n201$/, out);
    const cancel = execFileSync('curl', ['-s', '-w', '\n%{http_code}', '-X', 'POST', `${d.url}/v1/jobs/${running.id}/cancel`], { encoding: 'utf8' });
    assert.match(cancel, /\n200$/, cancel);
    const list = execFileSync('curl', ['-s', '-w', '\n%{http_code}', `${d.url}/v1/jobs`], { encoding: 'utf8' });
    assert.match(list, /\n200$/, list);

    // The refusals are counted.
    const m = (await api(d.url, 'GET', '/metrics')).text;
    assert.match(m, /anneald_http_refused_total\{reason="host"\} [1-9]/);
    assert.match(m, /anneald_http_refused_total\{reason="origin"\} [1-9]/);
    assert.match(m, /anneald_http_refused_total\{reason="media_type"\} [1-9]/);
  });
});

test('--allow-host adds names; token deployments get the same checks', async () => {
  const dir = tmpDir();
  try {
    const tok = writeFile(dir, 'token', 's3cret\n');
    await withDaemon({ args: ['--token-file', tok, '--allow-host', 'train.example,proxy.internal'] }, async (d) => {
      const auth = { Authorization: 'Bearer s3cret' };
      const viaProxy = await raw(d.url, 'GET', '/v1/jobs', { ...auth, Host: 'train.example', Origin: 'https://train.example' });
      assert.equal(viaProxy.status, 200, viaProxy.text);
      const created = await raw(d.url, 'POST', '/v1/jobs',
        { ...auth, Host: 'proxy.internal:8443', Origin: 'https://train.example', 'Content-Type': 'application/json' },
        JSON.stringify(tutorialJob({ steps: 5 })));
      assert.equal(created.status, 201, created.text);
      // With the right token, a foreign page is still refused.
      for (const [h, want] of [[{ Host: 'evil.example' }, 421], [{ Origin: 'http://evil.example' }, 403],
        [{ 'Content-Type': 'text/plain' }, 415]]) {
        const r = await raw(d.url, 'POST', '/v1/jobs', { ...auth, ...h }, JSON.stringify(tutorialJob()));
        assert.equal(r.status, want, `${JSON.stringify(h)}: ${r.text}`);
      }
      assert.equal((await api(d.url, 'GET', '/v1/jobs', null, auth)).json.jobs.length, 1);
    });
  } finally {
    removeDir(dir);
  }
});

test('--allow-host refuses a malformed name at start', () => {
  let err = null;
  try {
    execFileSync(process.env.ANNEALD_BIN || 'build/anneald',
      ['--listen', '127.0.0.1:0', '--db', path.join(tmpDir(), 'x.db'), '--allow-host', 'http://x/'], { stdio: 'pipe' });
  } catch (e) { err = e; }
  assert.ok(err, 'the daemon refused to start');
  assert.equal(err.status, 2);
  assert.match(String(err.stderr), /--allow-host/);
});

test('--web-root serves its own files, and no symlink out of it (its files need no token)', async () => {
  const dir = tmpDir();
  try {
    const fs = await import('node:fs');
    const web = path.join(dir, 'web');
    fs.mkdirSync(web);
    writeFile(web, 'index.html', '<p>dev dashboard</p>');
    writeFile(web, 'real.js', 'ok();');
    writeFile(dir, 'secret.txt', 'the token is hunter2');
    fs.symlinkSync(path.join(web, 'real.js'), path.join(web, 'alias.js'));
    fs.symlinkSync(path.join(dir, 'secret.txt'), path.join(web, 'leak.js'));
    writeFile(dir, 'token', 'tok-123456789012345678901234');
    await withDaemon({ args: ['--web-root', web, '--token-file', path.join(dir, 'token')] }, async (d) => {
      const get = async (p) => { const r = await fetch(d.url + p); return { status: r.status, text: await r.text() }; };
      assert.match((await get('/')).text, /dev dashboard/);
      assert.equal((await get('/alias.js')).text, 'ok();', 'a symlink inside the folder is served');
      const leak = await get('/leak.js');
      assert.equal(leak.status, 404, leak.text);
      assert.doesNotMatch(leak.text, /hunter2/);
    });
    // a root that is not there, not a folder, or holds no dashboard: refused at start (exit 2)
    const {spawnSync} = await import('node:child_process');
    for (const [root, says] of [[path.join(dir, 'none'), /is not there/], [path.join(dir, 'token'), /is not one/],
                                [dir, /has no index\.html/]]) {
      const r = spawnSync(BIN, ['--web-root', root, '--listen', '127.0.0.1:0', '--db', path.join(dir, 'x.db')], {encoding: 'utf8'});
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, says);
      assert.equal(fs.existsSync(path.join(dir, 'x.db')), false, 'nothing started');
    }
  } finally {
    removeDir(dir);
  }
});
