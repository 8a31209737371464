// The README's walk-through, step by step against the real daemon: the digits job it submits
// (taken from the README itself), and every output it shows — the check, the thinned preview,
// the job while it runs (events with validation), metrics, pause, checkpoints, the 409 of a
// second pause, resume, predict on a raw row, and the answer to a spec with two mistakes.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import {BIN, api, readEvents, tmpDir, removeDir, waitJob, withDaemon} from './lib.mjs';

const readme = fs.readFileSync('README.md', 'utf8');
const jobText = /cat > digits\.json <<'JSON'\n([\s\S]*?)\nJSON\n/.exec(readme)[1];
const job = JSON.parse(jobText);
const shown = (line) => assert.ok(readme.includes(line), `the README shows: ${line}`);

test('the README job is valid, previews as shown, and runs for minutes, not seconds', () => {
  const dir = tmpDir('anneald-readme-');
  const p = `${dir}/digits.json`;
  fs.writeFileSync(p, jobText);
  // check's warnings go to stderr, which `> /dev/null` leaves on the terminal: the README
  // shows each, before the echo's "valid"
  const ck = spawnSync(BIN, ['check', p], {encoding: 'utf8'});
  assert.equal(ck.status, 0, ck.stderr);
  const warned = ck.stderr.trimEnd().split('\n');
  assert.ok(warned.length >= 1 && warned.every((l) => l.startsWith('warning: ')), ck.stderr);
  shown(`&& echo valid       # the same checks as the daemon's\n${warned.map((l) => `# ${l}\n`).join('')}# valid\n`);
  const pv = spawnSync(BIN, ['preview', p, '--max-points', '5', '--format', 'csv'], {encoding: 'utf8'});
  assert.equal(pv.status, 0, pv.stderr);
  for (const line of pv.stdout.trimEnd().split('\n')) shown(`# ${line}\n`);
  assert.equal(pv.stdout.trimEnd().split('\n').length, 5);
  removeDir(dir);
  // 5000 epochs of 1438 rows in batches of 32
  assert.equal(Math.ceil(5000 * (1797 - Math.floor(1797 * 0.2)) / 32), 224688);
  shown('"total_steps":224688');
});

test('the README names every command whose --help anneald --help lists', () => {
  const cmds = (text) => /anneald ((?:[a-z-]+\|)+[a-z-]+) --help/.exec(text)[1].split('|').sort();
  const usage = spawnSync(BIN, ['--help'], {encoding: 'utf8'}).stdout;
  assert.deepEqual(cmds(readme), cmds(usage));
  for (const c of cmds(usage)) assert.equal(spawnSync(BIN, [c, '--help']).status, 0, c);
});

test('the README session answers as the README shows', async () => {
  await withDaemon({}, async (d) => {
    const c = await api(d.url, 'POST', '/v1/jobs', job);
    assert.equal(c.status, 201, c.text);
    assert.equal(c.json.id, 'j_000001');
    assert.ok(c.text.startsWith('{"id":"j_000001","name":"digits-demo","state":"queued",'));
    shown('# {"id":"j_000001","name":"digits-demo","state":"queued",…,"total_steps":224688,…}');
    assert.equal(c.json.total_steps, 224688);

    // watching: running, then progress that carries the validation once there is one
    await waitJob(d.url, 'j_000001', (j) => j.step > 600);
    const evs = await readEvents(d.url, '/v1/jobs/j_000001/events',
      {until: (e) => e.some((x) => x.event === 'progress')});
    assert.deepEqual(evs[0].data, {id: 'j_000001', state: 'running', error: null});
    shown('# data: {"id":"j_000001","state":"running","error":null}');
    const p = evs.find((x) => x.event === 'progress').data;
    for (const k of ['step', 'total_steps', 'loss', 'eta_s', 'val_loss', 'val_acc']) assert.ok(typeof p[k] === 'number', k);
    assert.ok(p.val_acc > 0.8, `val_acc ${p.val_acc}`);
    assert.ok(p.eta_s > 30, `a job of minutes: eta ${p.eta_s} s`);

    const m = (await api(d.url, 'GET', '/v1/jobs/j_000001/metrics?from=1&to=3')).json;
    assert.deepEqual(m.step, [1, 2, 3]);
    assert.deepEqual(m.lr[0].slice(0, 2), [0, 0]);
    assert.ok(String(m.lr[0][2]).startsWith('0.000100343'));
    assert.deepEqual([m.val_step, m.val_loss, m.val_acc], [[], [], []]);
    assert.ok(Math.abs(m.loss[0] - 2.3099) < 1e-3);
    const paused = await api(d.url, 'POST', '/v1/jobs/j_000001/pause');
    assert.equal(paused.status, 200);
    assert.equal(paused.json.state, 'paused');
    // (the pause commits every metric row, so the CSV has the validation columns by now)
    const csv = (await api(d.url, 'GET', '/v1/jobs/j_000001/metrics?format=csv')).text.split('\n');
    assert.equal(csv[0], 'step,loss,lr0,grad_norm,time,val_loss,val_acc');
    shown(`# ${csv[0]}`);
    assert.match(csv[1], /^1,2\.30\d+,0,[\d.]+,[\d.e-]+,,$/);
    const cps = (await api(d.url, 'GET', '/v1/jobs/j_000001/checkpoints')).json.checkpoints;
    assert.equal(cps.at(-1).step, (await api(d.url, 'GET', '/v1/jobs/j_000001')).json.step);
    const again = await api(d.url, 'POST', '/v1/jobs/j_000001/pause');
    assert.equal(again.status, 409);
    assert.equal(again.text, '{"error":{"code":"conflict","message":"job j_000001 is paused; pause needs a job ' +
      'that is running or queued","field":"state"}}\n');
    shown('# {"error":{"code":"conflict","message":"job j_000001 is paused; pause needs a job that is running or queued","field":"state"}}');

    // predict on the first row of data/digits.csv as it is (a 0), while paused
    const row = fs.readFileSync('data/digits.csv', 'utf8').split('\n')[1].split(',').map(Number);
    assert.equal(row[64], 0);
    const out = (await api(d.url, 'POST', '/v1/jobs/j_000001/predict', {inputs: [row.slice(0, 64)]})).json.outputs[0];
    assert.equal(out.length, 10);
    assert.equal(out.indexOf(Math.max(...out)), 0);

    const resumed = await api(d.url, 'POST', '/v1/jobs/j_000001/resume');
    assert.equal(resumed.json.state, 'queued');

    // the spec with two mistakes
    const bad = await api(d.url, 'POST', '/v1/jobs', {model: {type: 'mlp', inputs: 4, hidden: [8], outputs: 3},
      loss: 'cross_entropy', data: {type: 'builtin', name: 'iris', target: 'class'},
      ds_config: {train_batch_size: 16, optimizer: {type: 'Adam', params: {lr: 'auto'}}}});
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.json.errors.map((e) => e.field), ['data.target', 'ds_config.optimizer.params.lr']);
    assert.ok(bad.json.error.message.startsWith('builtin iris has no column "class"; its columns are: '));
    assert.ok(bad.json.errors[1].message.startsWith('"auto" cannot be worked out for lr; give a number: '));
    await api(d.url, 'POST', '/v1/jobs/j_000001/cancel');
  });
});
