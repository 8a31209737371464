// Soak: runs the daemon for a while and does, over and over, everything a user does (jobs of
// every kind submitted, paused, resumed, cancelled and deleted; SSE streams dropped mid-stream
// or never read; uploads, some cut off mid-body; generations, some abandoned; metrics and CSV
// exports; LR finder jobs; sweeps; bad requests; weights and predict), and prints the daemon's
// resident memory, file descriptors, threads, store and WAL size after every cycle. After the
// warm-up these figures must stop growing.
//
//   node bench/soak.mjs [--bin build/anneald] [--seconds 480] [--warmup 3] [--out FILE.csv]
//                       [--log FILE (the daemon's stderr, e.g. LeakSanitizer's report at the stop)]
//
// Exits 1 when the last third of the cycles shows more threads or descriptors (sockets: 4
// more) than the first cycle after the warm-up, or an RSS that is still climbing (its
// least-squares slope over the cycles after the warm-up over 128 KiB per cycle: malloc's
// arenas settle slowly, a few tens of KiB a cycle for the first hundred cycles).
import fs from 'node:fs';
import net from 'node:net';
import {startDaemon, api, sleep, tutorialJob, heavyJob} from '../tests/e2e/lib.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const BIN_PATH = opt('--bin', 'build/anneald');
const SECONDS = Number(opt('--seconds', '480'));
const WARMUP = Number(opt('--warmup', '3'));
const OUT = opt('--out', '');
const LOG = opt('--log', '');

const TEXT = 'to be or not to be, that is the question: whether tis nobler in the mind to suffer ' +
             'the slings and arrows of outrageous fortune, or to take arms against a sea of troubles';
const gptJob = (steps = 20, data = {type: 'text', text: TEXT}) => ({
  name: 'soak-gpt', seed: 3,
  model: {type: 'gpt', block_size: 8, n_layer: 1, n_head: 2, n_embd: 16},
  data, steps, checkpoint: {every_steps: 10},
  ds_config: {train_batch_size: 4, optimizer: {type: 'AdamW', params: {lr: 0.003}}},
});
const mlpJob = (steps = 200) => ({
  name: 'soak-mlp', seed: 1, model: {type: 'mlp', inputs: 4, hidden: [8], outputs: 3},
  loss: 'cross_entropy', data: {type: 'builtin', name: 'iris'}, steps,
  checkpoint: {every_steps: 50, keep_last: 2},
  ds_config: {train_batch_size: 16, optimizer: {type: 'Adam', params: {lr: 0.01}}},
});

// A raw HTTP/1.1 exchange on a socket that is destroyed after `afterMs` (or once `bytes` of the
// answer arrived): the client that goes away without a word. readNothing: the socket is
// paused, so the daemon's writes back up.
function rawClient(url, head, body = '', {afterMs = 100, bytes = Infinity, readNothing = false} = {}) {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port), u.hostname);
    let got = 0;
    const end = () => { s.destroy(); resolve(got); };
    const timer = setTimeout(end, afterMs);
    s.on('error', () => { clearTimeout(timer); resolve(got); });
    s.on('connect', () => {
      s.write(head.replace('HOST', u.host) + body);
      if (readNothing) s.pause();
    });
    s.on('data', (c) => { got += c.length; if (got >= bytes) { clearTimeout(timer); end(); } });
  });
}

// utime + stime of the whole process, in clock ticks (1/100 s).
function cpuTicks(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').pop().trim().split(' ');
  return Number(f[11]) + Number(f[12]);
}

function figures(pid) {
  const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(st)[1]);
  const fds = fs.readdirSync(`/proc/${pid}/fd`);
  const kinds = {};
  for (const f of fds) {
    let t;
    try { t = fs.readlinkSync(`/proc/${pid}/fd/${f}`).replace(/\[\d+\]/, '').replace(/^\/.*\//, ''); } catch { continue; }
    kinds[t] = (kinds[t] || 0) + 1;
  }
  return {rss: kb('VmRSS'), hwm: kb('VmHWM'), fds: fds.length, threads: fs.readdirSync(`/proc/${pid}/task`).length, kinds};
}

const ok = (r, ...want) => { if (!want.includes(r.status)) throw new Error(`${r.status} ${r.text.slice(0, 300)}`); return r; };
const quiet = (p) => p.catch(() => null);

async function waitState(url, id, states, ms = 30000) {
  const end = Date.now() + ms;
  for (;;) {
    const j = (await api(url, 'GET', `/v1/jobs/${id}`)).json;
    if (states.includes(j.state)) return j;
    if (Date.now() > end) throw new Error(`job ${id} stays ${j.state}, wanted ${states}`);
    await sleep(20);
  }
}

async function cycle(d, n) {
  const url = d.url;
  const J = {'Content-Type': 'application/json'};
  // Streams opened before the jobs, dropped in every way while the jobs run.
  const streams = [
    rawClient(url, 'GET /v1/events HTTP/1.1\r\nHost: HOST\r\n\r\n', '', {afterMs: 300}),
    rawClient(url, 'GET /v1/events HTTP/1.1\r\nHost: HOST\r\n\r\n', '', {afterMs: 1500, readNothing: true}),
    rawClient(url, 'GET /v1/events HTTP/1.1\r\nHost: HOST\r\n\r\n', '', {afterMs: 2000, bytes: 200}),
  ];
  // Jobs: a linear one to its end, an mlp and a gpt through pause, resume, cancel, delete.
  const lin = ok(await api(url, 'POST', '/v1/jobs', tutorialJob({steps: 300})), 201).json.id;
  const mlp = ok(await api(url, 'POST', '/v1/jobs', mlpJob(1000000)), 201).json.id;
  const gpt = ok(await api(url, 'POST', '/v1/jobs', gptJob(20)), 201).json.id;
  streams.push(rawClient(url, `GET /v1/jobs/${mlp}/events HTTP/1.1\r\nHost: HOST\r\n\r\n`, '', {afterMs: 800}));
  streams.push(rawClient(url, `GET /v1/jobs/${mlp}/events HTTP/1.1\r\nHost: HOST\r\n\r\n`, '', {afterMs: 1500, readNothing: true}));
  await waitState(url, mlp, ['running']);
  await sleep(100);
  ok(await api(url, 'POST', `/v1/jobs/${mlp}/pause`), 200, 409);
  await waitState(url, mlp, ['paused']);
  ok(await api(url, 'POST', `/v1/jobs/${mlp}/resume`), 200);
  await sleep(100);
  ok(await api(url, 'POST', `/v1/jobs/${mlp}/cancel`), 200);
  await waitState(url, mlp, ['cancelled']);
  await waitState(url, lin, ['completed'], 60000);
  // Weights, predict, metrics and CSV exports, some abandoned.
  ok(await api(url, 'GET', `/v1/jobs/${lin}/weights`), 200);
  ok(await api(url, 'POST', `/v1/jobs/${lin}/predict`, {inputs: [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}), 200);
  ok(await api(url, 'POST', `/v1/jobs/${lin}/predict`, {inputs: [[1, 2]]}), 400);
  ok(await api(url, 'GET', `/v1/jobs/${lin}/metrics?max_points=50`), 200);
  ok(await api(url, 'GET', `/v1/jobs/${lin}/checkpoints`), 200);
  const csv = await fetch(`${url}/v1/jobs/${mlp}/metrics?format=csv`);
  await csv.text();
  await rawClient(url, `GET /v1/jobs/${mlp}/metrics?format=csv HTTP/1.1\r\nHost: HOST\r\n\r\n`, '', {afterMs: 500, bytes: 100});
  await rawClient(url, `GET /v1/jobs/${mlp}/metrics?format=csv HTTP/1.1\r\nHost: HOST\r\n\r\n`, '', {afterMs: 300, readNothing: true});
  await rawClient(url, `GET /v1/jobs/${mlp}/weights HTTP/1.1\r\nHost: HOST\r\n\r\n`, '', {afterMs: 5, readNothing: true});
  // Uploads: CSV and text, one cut off mid-body.
  const name = `soak${n}`;
  const rows = 'a,b,c\n' + Array.from({length: 200}, (_, i) => `${i},${i * 2},${i % 3}`).join('\n') + '\n';
  const ds = ok(await api(url, 'POST', `/v1/datasets?name=${name}`, rows, {'Content-Type': 'text/csv'}), 201).json.id;
  const tx = ok(await api(url, 'POST', `/v1/datasets?name=${name}t`, TEXT.repeat(20), {'Content-Type': 'text/plain'}), 201).json.id;
  await rawClient(url, `POST /v1/datasets?name=${name}x HTTP/1.1\r\nHost: HOST\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n\r\n`, rows, {afterMs: 200});
  await rawClient(url, `POST /v1/datasets?name=${name}y HTTP/1.1\r\nHost: HOST\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n`, '400\r\n' + 'x'.repeat(1024) + '\r\n', {afterMs: 200});
  // Generation, streamed and not, some abandoned.
  await waitState(url, gpt, ['completed'], 60000);
  ok(await api(url, 'POST', `/v1/jobs/${gpt}/generate`, {prompt: 'to be', max_tokens: 20, seed: n}), 200);
  const sse = await fetch(`${url}/v1/jobs/${gpt}/generate`, {method: 'POST', headers: {...J, Accept: 'text/event-stream'}, body: JSON.stringify({prompt: 'to', max_tokens: 30})});
  await sse.text();
  const gbody = JSON.stringify({prompt: 'to', max_tokens: 2000});
  await rawClient(url, `POST /v1/jobs/${gpt}/generate HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: ${gbody.length}\r\n\r\n`, gbody, {afterMs: 100});
  await rawClient(url, `POST /v1/jobs/${gpt}/generate HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nContent-Length: ${gbody.length}\r\n\r\n`, gbody, {afterMs: 50});
  await rawClient(url, `POST /v1/jobs/${gpt}/generate HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: ${gbody.length}\r\n\r\n`, gbody, {afterMs: 300, readNothing: true});
  ok(await api(url, 'POST', `/v1/jobs/${gpt}/generate`, {prompt: 'Z~', max_tokens: 2}), 400);
  // A gpt on the uploaded text, cancelled at once; an LR finder job to its end.
  const g2 = ok(await api(url, 'POST', '/v1/jobs', gptJob(100000, {type: 'text', dataset: `${name}t`})), 201).json.id;
  const lrf = ok(await api(url, 'POST', '/v1/lr_finder', {job: tutorialJob(), steps: 50}), 201).json.id;
  ok(await api(url, 'POST', `/v1/jobs/${g2}/cancel`), 200);
  await waitState(url, lrf, ['completed'], 60000);
  ok(await api(url, 'GET', `/v1/jobs/${lrf}/lr_finder`), 200);
  // A sweep created, cancelled and deleted.
  const sw = ok(await api(url, 'POST', '/v1/sweeps', {name: `sw${n}`, base: tutorialJob({steps: 100}),
    parameters: {'ds_config.optimizer.params.lr': [0.01, 0.001]}, search: 'grid', metric: 'loss', max_concurrent: 1}), 201).json.id;
  ok(await api(url, 'GET', `/v1/sweeps/${sw}`), 200);
  await sleep(100);
  ok(await api(url, 'POST', `/v1/sweeps/${sw}/cancel`), 200, 409);
  // A cancelled sweep is deleted once its trials have let go (409 until then).
  for (let k = 0; (await api(url, 'DELETE', `/v1/sweeps/${sw}`)).status === 409; k++) {
    if (k > 200) throw new Error(`sweep ${sw} cannot be deleted`);
    await sleep(50);
  }
  // Bad requests of every kind.
  ok(await api(url, 'POST', '/v1/jobs', '{"model": ', J), 400);
  ok(await api(url, 'POST', '/v1/jobs', {...tutorialJob(), bogus: 1}), 400);
  ok(await api(url, 'POST', '/v1/jobs', tutorialJob({ds_config: {train_batch_size: 8}})), 400);
  ok(await api(url, 'GET', '/v1/jobs/j_999999'), 404);
  ok(await api(url, 'POST', '/v1/jobs', 'x', {'Content-Type': 'text/plain'}), 415);
  ok(await api(url, 'DELETE', `/v1/jobs/${lin}/weights`), 405);
  ok(await api(url, 'GET', '/v1/jobs?limit=abc'), 400);
  ok(await api(url, 'POST', '/v1/datasets?name=bad', 'a,b\n1,x\n', {'Content-Type': 'text/csv'}), 400, 422);
  ok(await api(url, 'POST', '/v1/schedules/preview', {ds_config: {optimizer: {type: 'Adam', params: {lr: 0.1}}}, steps: 50}), 200);
  await rawClient(url, 'GARBAGE\r\n\r\n', '', {afterMs: 100});
  await rawClient(url, 'GET /v1/jobs HTTP/1.1\r\nHost: HOST\r\n', '', {afterMs: 100});
  // A heavy job pre-empted by nothing, cancelled mid-run.
  const hv = ok(await api(url, 'POST', '/v1/jobs', heavyJob()), 201).json.id;
  await waitState(url, hv, ['running']);
  ok(await api(url, 'POST', `/v1/jobs/${hv}/cancel`), 200);
  // Edits, pins, a fine-tune from a checkpoint, the API description, the dashboard.
  ok(await api(url, 'PATCH', `/v1/jobs/${lin}`, {tags: ['soak'], notes: `cycle ${n}`, priority: 1}), 200);
  const ck = ok(await api(url, 'GET', `/v1/jobs/${lin}/checkpoints`), 200).json.checkpoints[0].step;
  ok(await api(url, 'POST', `/v1/jobs/${lin}/checkpoints/${ck}/pin`), 200);
  ok(await api(url, 'POST', `/v1/jobs/${lin}/checkpoints/${ck}/unpin`), 200);
  const ft = ok(await api(url, 'POST', '/v1/jobs', tutorialJob({steps: 50, resume_from: {job: lin}})), 201).json.id;
  await (await fetch(`${url}/v1/openapi.json`)).text();
  await (await fetch(`${url}/`)).text();
  ok(await api(url, 'GET', '/v1/jobs?tag=soak&q=cycle'), 200);
  const pv = await fetch(`${url}/v1/schedules/preview?format=csv`, {method: 'POST', headers: J,
    body: JSON.stringify({ds_config: {optimizer: {type: 'Adam', params: {lr: 0.1}}, scheduler: {type: 'WarmupLR', params: {warmup_num_steps: 100}}}, steps: 100000})});
  await pv.text();
  // A larger upload cut off after a few MiB: its parts must go.
  const big = `POST /v1/datasets?name=${name}z HTTP/1.1\r\nHost: HOST\r\nContent-Type: text/plain\r\nContent-Length: 8000000\r\n\r\n`;
  await rawClient(url, big, 'y'.repeat(3000000), {afterMs: 400});
  // A gpt on two threads, paused and resumed, with a stream of it that resumes with Last-Event-ID.
  const g3 = ok(await api(url, 'POST', '/v1/jobs', {...gptJob(100000), threads: 2}), 201).json.id;
  await waitState(url, g3, ['running']);
  await rawClient(url, `GET /v1/jobs/${g3}/events HTTP/1.1\r\nHost: HOST\r\nLast-Event-ID: 1\r\n\r\n`, '', {afterMs: 200});
  ok(await api(url, 'POST', `/v1/jobs/${g3}/pause`), 200, 409);
  await waitState(url, g3, ['paused']);
  ok(await api(url, 'POST', `/v1/jobs/${g3}/resume`), 200);
  await waitState(url, g3, ['running']);
  ok(await api(url, 'POST', `/v1/jobs/${g3}/cancel`), 200);
  // A job on the uploaded table; two long jobs pre-empted by a job of higher priority; one
  // that ends at its max_runtime_s.
  const dj = ok(await api(url, 'POST', '/v1/jobs', {model: {type: 'linear', inputs: 2, outputs: 1},
    data: {type: 'dataset', name, target: 'c'}, steps: 100,
    ds_config: {train_batch_size: 8, optimizer: {type: 'Adam', params: {lr: 0.01}}}}), 201).json.id;
  await waitState(url, dj, ['completed'], 60000);
  const p1 = ok(await api(url, 'POST', '/v1/jobs', heavyJob({max_runtime_s: 1})), 201).json.id;
  const p2 = ok(await api(url, 'POST', '/v1/jobs', heavyJob()), 201).json.id;
  await waitState(url, p2, ['running']);
  const hi = ok(await api(url, 'POST', '/v1/jobs', tutorialJob({steps: 200, priority: 5})), 201).json.id;
  await waitState(url, hi, ['completed'], 60000);
  await waitState(url, p1, ['failed'], 60000);
  ok(await api(url, 'POST', `/v1/jobs/${p2}/cancel`), 200);
  // Listing, health, metrics.
  ok(await api(url, 'GET', '/v1/jobs?limit=50'), 200);
  ok(await api(url, 'GET', '/healthz'), 200);
  const m = await (await fetch(`${url}/metrics`)).text();
  await Promise.all(streams);
  // Clean up: everything made by this cycle goes, so the store does not grow.
  for (const id of [dj, p1, p2, hi, ft, lin, mlp, gpt, g2, g3, lrf, hv]) {
    await waitState(url, id, ['completed', 'cancelled', 'failed']);
    ok(await api(url, 'DELETE', `/v1/jobs/${id}`), 204);
  }
  ok(await api(url, 'DELETE', `/v1/datasets/${ds}`), 204);
  ok(await api(url, 'DELETE', `/v1/datasets/${tx}`), 204);
  const sse_clients = Number(/^anneald_sse_clients (\d+)/m.exec(m)?.[1]);
  const open = Number(/^anneald_connections\{state="open"\} (\d+)/m.exec(m)?.[1]);
  return {sse_clients, open};
}

const d = await startDaemon({bin: BIN_PATH, args: ['--workers', '2']});
const pid = d.proc.pid;
const rows = [];
const t0 = Date.now();
const header = 'cycle,seconds,rss_kb,hwm_kb,fds,threads,store_bytes,wal_bytes,sse_clients,open_conns,jobs_total,sweeps_total,datasets_total,idle_cpu_ticks_per_s';
console.log(header);
let n = 0;
let busyShown = false;
try {
  while ((Date.now() - t0) / 1000 < SECONDS) {
    n++;
    const c = await cycle(d, n);
    await sleep(300);
    const cpu0 = cpuTicks(pid);
    await sleep(1000);
    const idle = cpuTicks(pid) - cpu0;
    if (idle > 20 && !busyShown) {
      busyShown = true;
      const per = fs.readdirSync(`/proc/${pid}/task`).map((t) => {
        const st = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
        const f = st.split(')').pop().trim().split(' ');
        return `${t}:${/\((.*)\)/.exec(st)[1]}:${Number(f[11]) + Number(f[12])}`;
      });
      console.error(`busy while idle (${idle} ticks/s): ${per.join(' ')}`);
    }
    const f = figures(pid);
    const h = (await api(d.url, 'GET', '/healthz')).json;
    const total = (await api(d.url, 'GET', '/v1/jobs?limit=1')).json.total;
    const sweeps = (await api(d.url, 'GET', '/v1/sweeps')).json.sweeps.length;
    const datasets = (await api(d.url, 'GET', '/v1/datasets')).json.datasets.length;
    const row = [n, ((Date.now() - t0) / 1000).toFixed(0), f.rss, f.hwm, f.fds, f.threads,
      h.store.bytes, h.store.wal_bytes, c.sse_clients, c.open, total, sweeps, datasets, idle];
    rows.push({n, ...f});
    console.log(row.join(','));
    if (n === WARMUP + 1 || n % 20 === 0) console.error(`fds at cycle ${n}: ${JSON.stringify(f.kinds)}`);
  }
} finally {
  const ex = await d.stop().catch((e) => ({error: e.message.split('\n')[0]}));
  console.error(`daemon stopped: ${JSON.stringify(ex)}`);
  if (LOG) fs.writeFileSync(LOG, d.stderr());
}
if (OUT) fs.writeFileSync(OUT, header + '\n' + rows.map((r) => [r.n, r.rss, r.fds, r.threads].join(',')).join('\n') + '\n');
const steady = rows.slice(WARMUP);
if (steady.length >= 6) {
  const first = steady[0];
  const tail = steady.slice(Math.floor(steady.length * 2 / 3));
  // Sockets come and go with the clients' kept-alive connections: they get some slack.
  const maxF = Math.max(...tail.map((r) => r.fds));
  const maxOther = Math.max(...tail.map((r) => r.fds - (r.kinds['socket:'] || 0)));
  const firstOther = first.fds - (first.kinds['socket:'] || 0);
  const maxT = Math.max(...tail.map((r) => r.threads));
  const xs = steady.map((r) => r.n); const ys = steady.map((r) => r.rss);
  const mx = xs.reduce((a, b) => a + b) / xs.length; const my = ys.reduce((a, b) => a + b) / ys.length;
  const slope = xs.reduce((a, x, i) => a + (x - mx) * (ys[i] - my), 0) / xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  console.error(`after warm-up: fds ${first.fds} -> max ${maxF} in the last third; threads ${first.threads} -> ${maxT}; ` +
                `rss ${first.rss} -> ${steady.at(-1).rss} kB, slope ${slope.toFixed(1)} kB/cycle`);
  if (maxOther > firstOther || maxF > first.fds + 4 || maxT > first.threads || slope > 128) process.exitCode = 1;
}
