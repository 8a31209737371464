// End-to-end tests of POST /v1/schedules/preview as a stream: the answer is the exact bytes of
// `anneald preview` (JSON and ?format=csv), a 10,000,000-step preview streams while the
// daemon's memory stays small, and body errors are still 400 with their field.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {BIN, SANITIZED, api, tmpDir, withDaemon} from './lib.mjs';

const dir = tmpDir('anneald-preview-');
process.on('exit', () => fs.rmSync(dir, {recursive: true, force: true}));

const WARMUP = {
  train_batch_size: 8,
  optimizer: {type: 'Adam', params: {lr: 0.01}},
  scheduler: {type: 'WarmupLR', params: {warmup_min_lr: 0.001, warmup_max_lr: 0.01, warmup_num_steps: 100}},
};
const ONECYCLE = {
  train_batch_size: 8,
  optimizer: {type: 'Adam', params: {lr: 0.1}},
  scheduler: {type: 'OneCycle', params: {cycle_min_lr: 0.01, cycle_max_lr: 0.1, cycle_first_step_size: 20,
                                         cycle_min_mom: 0.8, cycle_max_mom: 0.9}},
};
const COSINE = {
  train_batch_size: 8,
  optimizer: {type: 'SGD', params: {lr: 0.1, momentum: 0.9}},
  scheduler: {type: 'WarmupCosineLR', params: {total_num_steps: 400, warmup_num_steps: 10}},
};

// Bodies of every form the endpoint takes: preview body, preview body with groups, bare
// ds_config (1000 steps by default), a job spec.
const BODIES = [
  {ds_config: WARMUP, steps: 300},
  {ds_config: ONECYCLE, steps: 123},
  {ds_config: COSINE, steps: 500, param_groups: [{lr: 0.1}, {lr: 0.02}, {lr: 0.003}]},
  WARMUP,
  {name: 'j', model: {type: 'linear', inputs: 2, outputs: 1}, steps: 77,
   data: {type: 'synthetic', task: 'regression', samples: 64, features: 2}, ds_config: ONECYCLE},
];

function cli(body, format) {
  const p = path.join(dir, 'body.json');
  fs.writeFileSync(p, JSON.stringify(body));
  const r = spawnSync(BIN, ['preview', p, '--format', format], {encoding: 'latin1', maxBuffer: 64 << 20});
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('the preview is the bytes of `anneald preview`, as JSON and as CSV', async () => {
  await withDaemon({}, async (d) => {
    for (const body of BODIES) {
      const j = await api(d.url, 'POST', '/v1/schedules/preview', body);
      assert.equal(j.status, 200, j.text);
      assert.match(j.headers.get('content-type'), /^application\/json/);
      assert.equal(j.text, cli(body, 'json'), JSON.stringify(body));
      const explicit = await api(d.url, 'POST', '/v1/schedules/preview?format=json', body);
      assert.equal(explicit.text, j.text);
      const c = await api(d.url, 'POST', '/v1/schedules/preview?format=csv', body);
      assert.equal(c.status, 200, c.text);
      assert.match(c.headers.get('content-type'), /^text\/csv/);
      assert.equal(c.text, cli(body, 'csv'), JSON.stringify(body));
      // the two forms hold the same schedule
      const o = JSON.parse(j.text);
      const rows = c.text.trim().split('\n');
      assert.equal(rows.length - 1, o.step.length);
      assert.equal(Number(rows[rows.length - 1].split(',')[1]), o.lr[0][o.lr[0].length - 1]);
    }
  });
});

test('preview errors: 400 with the field, before any of the answer', async () => {
  await withDaemon({}, async (d) => {
    const cases = [
      ['/v1/schedules/preview', {ds_config: {optimizer: {type: 'Adam', params: {lr: -1}}}, steps: 5},
       'ds_config.optimizer.params.lr'],
      ['/v1/schedules/preview?format=csv', {ds_config: WARMUP, steps: 10000001}, 'steps'],
      ['/v1/schedules/preview', {ds_config: WARMUP, steps: 0}, 'steps'],
      ['/v1/schedules/preview?format=xml', {ds_config: WARMUP, steps: 5}, 'format'],
      ['/v1/schedules/preview?format=', {ds_config: WARMUP, steps: 5}, 'format'],
      ['/v1/schedules/preview', {ds_config: {...WARMUP, scheduler: {type: 'Nope'}}, steps: 5}, 'ds_config.scheduler.type'],
      // a misspelt key would be ignored: the default length, no thinning
      ['/v1/schedules/preview', {ds_config: WARMUP, step: 20}, 'step'],
      ['/v1/schedules/preview?format=csv', {ds_config: WARMUP, steps: 20, max_point: 2}, 'max_point'],
      ['/v1/schedules/preview', {ds_config: WARMUP, model: {type: 'linear'}, steps: 20, evry: 2}, 'evry'],
    ];
    for (const [p, body, field] of cases) {
      const r = await api(d.url, 'POST', p, body);
      assert.equal(r.status, 400, `${p} ${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.json.error.code, 'invalid_argument');
      assert.equal(r.json.error.field, field, r.text);
      assert.ok(r.json.error.message.length > 0);
    }
    for (const body of ['[1,2]', '{"ds_config":', '']) {
      const r = await api(d.url, 'POST', '/v1/schedules/preview', body, {'Content-Type': 'application/json'});
      assert.equal(r.status, 400, body);
      assert.equal(r.json.error.code, 'invalid_argument');
    }
    // the daemon still answers previews after the errors
    assert.equal((await api(d.url, 'POST', '/v1/schedules/preview', {ds_config: WARMUP, steps: 3})).status, 200);
  });
});

// Peak resident memory of the daemon (VmHWM), in kB.
function peakKb(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

// Streams one preview, counting its steps as the bytes arrive, and samples the daemon's peak
// memory meanwhile: {steps, bytes, tail, peak}.
async function streamSteps(d, query, body, csv) {
  const res = await fetch(`${d.url}/v1/schedules/preview${query}`, {
    method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body),
  });
  assert.equal(res.status, 200);
  let bytes = 0, steps = 0, tail = '', inSteps = !csv, peak = 0, lines = 0;
  const MARK = '],"lr":[', OPEN = '"step":[';
  let started = false;
  let carry = '';
  const timer = setInterval(() => { peak = Math.max(peak, peakKb(d.proc.pid)); }, 20);
  try {
    for await (const chunk of res.body) {
      bytes += chunk.length;
      const s = Buffer.from(chunk).toString('latin1');
      tail = (tail + s).slice(-200);
      if (csv) {
        for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) === 10) lines++;
      } else if (inSteps) {
        // commas between step numbers until the step array ends (the warnings before it
        // are a short array of their own)
        let text = carry + s;
        if (!started) {
          const at = text.indexOf(OPEN);
          if (at < 0) { carry = text; continue; }
          text = text.slice(at + OPEN.length);
          started = true;
        }
        const end = text.indexOf(MARK);
        const part = end >= 0 ? text.slice(0, end) : text.slice(0, text.length - MARK.length);
        for (let i = 0; i < part.length; i++) if (part.charCodeAt(i) === 44) steps++;
        if (end >= 0) {
          steps++; // n numbers have n-1 commas
          inSteps = false;
        } else {
          carry = text.slice(text.length - MARK.length);
        }
      }
    }
  } finally {
    clearInterval(timer);
  }
  peak = Math.max(peak, peakKb(d.proc.pid));
  return {steps: csv ? lines - 1 : steps, bytes, tail, peak};
}

test('a 10,000,000-step preview streams while the daemon stays small', {timeout: 300000}, async () => {
  const steps = SANITIZED ? 2000000 : 10000000;
  const limitKb = (SANITIZED ? 400 : 200) * 1024;
  await withDaemon({}, async (d) => {
    const body = {ds_config: WARMUP, steps};
    const json = await streamSteps(d, '', body, false);
    assert.equal(json.steps, steps);
    assert.ok(json.tail.endsWith(',0.010000000000000002]]}\n'), json.tail);
    // more than 20 bytes a step: as one buffer it would be far over the limit below
    assert.ok(json.bytes > steps * 20, `${json.bytes} bytes`);
    assert.ok(json.peak > 0 && json.peak < limitKb, `daemon peak RSS ${json.peak} kB`);
    const csv = await streamSteps(d, '?format=csv', body, true);
    assert.equal(csv.steps, steps);
    assert.ok(csv.tail.endsWith(`\n${steps},0.010000000000000002\n`), csv.tail);
    assert.ok(csv.peak > 0 && csv.peak < limitKb, `daemon peak RSS ${csv.peak} kB`);
    // the loop kept serving: a small request answers at once after the streams
    const h = await api(d.url, 'GET', '/healthz');
    assert.equal(h.status, 200);
  });
});

test('a long preview, thinned or not, is made over many turns of the loop, not in one', async () => {
  await withDaemon({}, async (d) => {
    const turns = async () => Number((await (await fetch(`${d.url}/metrics`)).text())
      .match(/^anneald_loop_turns_total (\d+)/m)[1]);
    let t0 = await turns();
    const full = await api(d.url, 'POST', '/v1/schedules/preview', {ds_config: WARMUP, steps: 2000000});
    assert.equal(full.status, 200);
    assert.equal(full.json.step.length, 2000000);
    // MHD takes at most a block of tens of KiB a turn; one turn for the whole answer held
    // every other request for its length
    const bytes = full.text.length;
    assert.ok(await turns() - t0 >= bytes / (256 * 1024), `${bytes} bytes in ${await turns() - t0} turns`);
    t0 = await turns();
    const thin = await api(d.url, 'POST', '/v1/schedules/preview',
                           {ds_config: WARMUP, steps: 10000000, max_points: 10});
    assert.equal(thin.status, 200, thin.text);
    assert.ok(thin.json.step.length <= 12 && thin.json.step.at(-1) === 10000000, thin.text);
    // 10,000,000 steps at most 65,536 a call: at least 150 calls, each in a turn of its own
    assert.ok(await turns() - t0 >= 100, `${await turns() - t0} turns`);
  });
});

test('a client that leaves in the middle of a long preview costs the daemon nothing', async () => {
  await withDaemon({}, async (d) => {
    const ac = new AbortController();
    const res = await fetch(`${d.url}/v1/schedules/preview`, {
      method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({ds_config: WARMUP, steps: 10000000}), signal: ac.signal,
    });
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    const first = await reader.read();
    assert.ok(first.value.length > 0);
    assert.ok(Buffer.from(first.value).toString('latin1').startsWith('{"warnings":[],"step":[1,2,3'));
    ac.abort();
    await reader.read().catch(() => {});
    // the daemon answers the next request, and withDaemon checks its clean exit
    const r = await api(d.url, 'POST', '/v1/schedules/preview', {ds_config: WARMUP, steps: 2});
    assert.equal(r.status, 200);
    assert.equal(r.text, cli({ds_config: WARMUP, steps: 2}, 'json'));
  });
});

// A misspelt "scheduler" previews as the optimizer's flat lr: the answer says why, in the JSON
// (`warnings`), in Warning headers of the CSV form, and on the stderr of `anneald preview`.
// A DeepSpeed key the schedule does not read is no warning.
test('a ds_config key DeepSpeed does not have is a warning in every form of the preview', async () => {
  const body = {ds_config: {optimizer: {type: 'Adam', params: {lr: 0.01}}, zero_optimization: {stage: 1},
                            schedular: {type: 'WarmupLR', params: {warmup_num_steps: 10}}}, steps: 20};
  const note = 'ds_config.schedular is not a DeepSpeed key: did you mean ds_config.scheduler? (ignored)';
  await withDaemon({}, async (d) => {
    const j = await api(d.url, 'POST', '/v1/schedules/preview', body);
    assert.equal(j.status, 200, j.text);
    assert.deepEqual(j.json.warnings, [note]);
    assert.ok(j.json.lr[0].every((v) => v === 0.01), 'no scheduler read: the flat lr the note explains');
    const c = await api(d.url, 'POST', '/v1/schedules/preview?format=csv', body);
    assert.equal(c.headers.get('warning'), `299 anneald "${note}"`);
    const fixed = structuredClone(body);
    fixed.ds_config.scheduler = fixed.ds_config.schedular;
    delete fixed.ds_config.schedular;
    const f = await api(d.url, 'POST', '/v1/schedules/preview', fixed);
    assert.deepEqual(f.json.warnings, []);
    assert.equal(f.json.lr[0][0], 0);
    assert.equal((await api(d.url, 'POST', '/v1/schedules/preview?format=csv', fixed)).headers.get('warning'), null);
  });
  const p = path.join(dir, 'typo.json');
  fs.writeFileSync(p, JSON.stringify(body));
  const r = spawnSync(BIN, ['preview', p, '--format', 'csv'], {encoding: 'utf8'});
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, `warning: ${note}\n`);
  assert.match(r.stdout, /^step,lr0\n1,0.01\n/);
});
