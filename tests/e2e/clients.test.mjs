// A hostile or careless HTTP client (not a page: a program on the machine or the network):
// what it sends cannot make the daemon answer outside its contract.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, tutorialJob, withDaemon } from './lib.mjs';

// Every JSON answer is UTF-8, as its Content-Type says, also when its message echoes bytes of
// the request: a name cut at a byte count mid-character, or bytes that are no UTF-8 at all.
test('answers are valid UTF-8 whatever bytes the request held', async () => {
  await withDaemon({}, async (d) => {
    const strict = new TextDecoder('utf-8', { fatal: true });
    const cases = [
      ['GET', `/v1/jobs/${'a'.repeat(63)}%C3%A9`, 404],
      ['GET', `/v1/jobs?limit=${'1'.repeat(63)}%C3%A9`, 400],
      ['POST', `/v1/datasets?name=${'a'.repeat(79)}%C3%A9`, 400],
      ['GET', '/v1/jobs/%ff%fe', 404],
      ['GET', '/v1/datasets/%c3%28', 404],
      ['GET', '/v1/sweeps/%ff', 404],
    ];
    for (const [method, p, status] of cases) {
      const res = await fetch(`${d.url}${p}`, {
        method, headers: method === 'POST' ? { 'Content-Type': 'text/csv' } : {},
        body: method === 'POST' ? 'a,b\n1,2\n' : undefined,
      });
      assert.equal(res.status, status, p);
      const bytes = new Uint8Array(await res.arrayBuffer());
      let text;
      assert.doesNotThrow(() => { text = strict.decode(bytes); }, `${p}: the answer is UTF-8`);
      const j = JSON.parse(text);
      assert.ok(j.error.message.length > 0, p);
    }
  });
});

// A key given twice, at any depth: JSON parsers disagree on which one counts (the daemon's
// reads the first, Python's and JavaScript's the last), so it is refused wherever it is.
test('a key given twice anywhere in a body is a 400 naming it, and nothing is stored', async () => {
  await withDaemon({}, async (d) => {
    const J = { 'Content-Type': 'application/json' };
    const job = JSON.stringify(tutorialJob());
    const twice = job.replace('"lr":0.01', '"lr":0.01,"lr":0.5');
    assert.notEqual(twice, job);
    const cases = [
      ['/v1/jobs', twice, 'ds_config.optimizer.params.lr'],
      ['/v1/schedules/preview', '{"ds_config":{"optimizer":{"type":"SGD","params":{"lr":0.1}},"optimizer":{"type":"Adam","params":{"lr":0.2}}}}', 'ds_config.optimizer'],
      ['/v1/sweeps', JSON.stringify({ base: tutorialJob(), parameters: { 'ds_config.optimizer.params.lr': [0.1] } })
        .replace('"parameters":{', '"parameters":{"ds_config.optimizer.params.lr":[0.2],'), 'parameters.ds_config.optimizer.params.lr'],
    ];
    for (const [p, body, field] of cases) {
      const r = await api(d.url, 'POST', p, body, J);
      assert.equal(r.status, 400, `${p}: ${r.text}`);
      assert.equal(r.json.error.field, field, r.text);
      assert.match(r.json.error.message, /duplicate key .*give each key once/);
    }
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.total, 0);
    assert.equal((await api(d.url, 'GET', '/v1/sweeps')).json.sweeps.length, 0);
  });
});
