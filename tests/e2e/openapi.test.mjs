// The API document (api/openapi.json, served at GET /v1/openapi.json): a valid OpenAPI 3.1
// document, describing every route the daemon has and no other, and a checker
// (tests/e2e/openapi.mjs, run on every exchange of the e2e suite by lib.mjs) that does find
// what the document does not describe.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {Validator} from '@seriousme/openapi-schema-validator';
import {DOC_PATH, doc, check, findPath} from './openapi.mjs';
import {api, withDaemon} from './lib.mjs';

test('the document is valid OpenAPI 3.1', async () => {
  const v = new Validator();
  const r = await v.validate(DOC_PATH);
  assert.equal(v.version, '3.1');
  assert.deepEqual(r, {valid: true});
});

test('it lists every route of api/routes.c, and only those', () => {
  const src = fs.readFileSync('api/routes.c', 'utf8');
  const routes = [...src.matchAll(/\{"(GET|POST|DELETE|PATCH|PUT)", "([^"]+)"/g)]
    .map(([, m, p]) => [m.toLowerCase(), p])
    .filter(([, p]) => p.startsWith('/v1/') || p === '/healthz' || p === '/metrics');
  assert.ok(routes.length > 15);
  const documented = [];
  for (const [p, item] of Object.entries(doc.paths)) {
    for (const m of Object.keys(item)) if (m !== 'parameters') documented.push([m, p]);
  }
  const key = ([m, p]) => `${m} ${p}`;
  assert.deepEqual(routes.map(key).sort(), documented.map(key).sort());
  for (const [, item] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(item)) {
      if (m === 'parameters') continue;
      assert.ok(op.responses.default || Object.keys(op.responses).some((s) => s >= '400'),
                `${m} has error answers`);
    }
  }
});

test('GET /v1/openapi.json serves the document', async () => {
  await withDaemon({}, async (d) => {
    const r = await api(d.url, 'GET', '/v1/openapi.json');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, doc);
  });
});

test('the checker finds what the document does not describe', () => {
  const job = {id: 'j_000001', name: 'x', state: 'queued', created_at: 't', step: 0, total_steps: 5,
               lr: [0.1], spec: {}, queue_position: 1, queue_length: 1};
  const ok = (x) => assert.deepEqual(check(x), []);
  const bad = (x, re) => {
    const p = check(x);
    assert.ok(p.length > 0, 'expected a problem');
    assert.match(p.join('\n'), re);
  };
  const J = 'application/json';
  ok({method: 'GET', url: '/v1/jobs/j_000001', status: 200, resType: J, resJson: job});
  // a field of the wrong type, a missing required field, an unknown state
  bad({method: 'GET', url: '/v1/jobs/j_1', status: 200, resType: J, resJson: {...job, step: 'five'}}, /step/);
  const {id: _, ...noId} = job;
  bad({method: 'GET', url: '/v1/jobs/j_1', status: 200, resType: J, resJson: noId}, /id/);
  bad({method: 'GET', url: '/v1/jobs/j_1', status: 200, resType: J, resJson: {...job, state: 'sleeping', queue_position: null, queue_length: null}}, /state/);
  // a queue place: 1-based, and only for a queued job
  bad({method: 'GET', url: '/v1/jobs/j_1', status: 200, resType: J, resJson: {...job, queue_position: 0}}, /queue_position/);
  bad({method: 'GET', url: '/v1/jobs/j_1', status: 200, resType: J, resJson: {...job, state: 'running'}}, /queue_position/);
  ok({method: 'GET', url: '/v1/jobs/j_1', status: 200, resType: J,
      resJson: {...job, state: 'running', queue_position: null, queue_length: null}});
  // an error answer must have the Error body
  ok({method: 'GET', url: '/v1/jobs/j_1', status: 404, resType: J,
      resJson: {error: {code: 'not_found', message: 'no job', field: 'id'}}});
  bad({method: 'GET', url: '/v1/jobs/j_1', status: 404, resType: J, resJson: {message: 'no job'}}, /error/);
  // a path or method the API does not have, answered as if it did
  bad({method: 'GET', url: '/v1/nothing', status: 200, resType: J, resJson: {}}, /not in the API document/);
  bad({method: 'PUT', url: '/v1/jobs', status: 200, resType: J, resJson: {}}, /not in the API document/);
  ok({method: 'GET', url: '/v1/nothing', status: 404, resType: J, resJson: {error: {code: 'not_found', message: 'm'}}});
  // an accepted request whose body is not what the document asks
  bad({method: 'POST', url: '/v1/lr_finder', reqType: J, reqJson: {min_lr: 1}, status: 201, resType: J,
       resJson: {...job, kind: 'lr_finder'}}, /request.*job/);
  // the wrong content type for an answer
  bad({method: 'GET', url: '/v1/jobs/j_1/checkpoints', status: 200, resType: 'text/csv', resJson: {checkpoints: []}},
      /answered text\/csv/);
  assert.equal(findPath('/v1/jobs/j_000003/lr_finder'), '/v1/jobs/{id}/lr_finder');
});
