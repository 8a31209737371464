// Turns the output of one `make bench` (bench/run.sh) into BENCHMARKS.md.
//
//   node bench/report.mjs RAW_LOG OUT.md ROUNDS COMMAND
//
// RAW_LOG holds every round's output; its lines "BENCH <name> <value> <unit> ref=<value>
// ratio=<value>" are gathered by name. Per figure: the median over the rounds of the value,
// of the reference and of the ratio (each ratio pairs a value with the reference measured
// beside it, so the median ratio is not the ratio of the medians), and the range of the
// value. Prints the median lines in the same BENCH format on stdout and writes OUT.md: the
// machine, the date, how to reproduce, and one table row per figure with what its reference
// is. Exits non-zero when the log holds no BENCH line or a malformed one.
import {execFileSync} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

const [raw, out, roundsArg, command] = process.argv.slice(2);
if (!raw || !out) {
  console.error('usage: node bench/report.mjs RAW_LOG OUT.md ROUNDS COMMAND');
  process.exit(2);
}

// What each figure's reference is, by name; the first matching pattern wins.
const REFS = [
  [/^(adam|adamw|lamb|lion|sgdm)_.*_1t$/,
    'in-place read-modify-write kernel over the same buffers and streams (arithmetic-free: the memory traffic alone), one thread'],
  [/^(adam|adamw|lamb|lion|sgdm)_.*_1t_step$/,
    'the same memory-only kernel, ms per pass (ratio = its time / the step\'s, so 1 = as fast as memory allows)'],
  [/^store_metrics_ingest/, 'the same rows as packed 48-byte records, one write() per batch to a plain file'],
  [/^store_metrics_query/, 'the same range read without downsampling (every row into columnar arrays)'],
  [/^store_checkpoint_commit/, 'one sequential write() of the same 720 MB (a 60M-parameter Adam state, inside the 2^26 cap) to a plain file, unsynced like the commit; two turns, each side first once, best of each. The commit is what the job waits for: its pages written to the WAL; their copy into the database file follows it (next line)'],
  [/^store_checkpoint_wal_copy/, 'the same plain write(); the value is the copy of the commit\'s pages from the WAL into the database file that the housekeeping thread (or the next metrics commit) makes after the commit'],
  [/^store_checkpoint_read/, 'read() of that plain file'],
  [/^actckpt_/, 'the same job without activation checkpointing (step times: runs taken in turns, best of each; activations: the memory estimate, which is the arena allocated)'],
  [/^train_/, 'the bare engine on the same spec: forward, loss, backward, optimizer step, no training-loop bookkeeping'],
  [/^store_bytes_per_step_vs_limit/, '~11 B/step: byte-shuffled columns of the same rows under a strong general compressor (near the lossless limit)'],
  [/^store_bytes_per_step/, '26 B/step: the same job\'s growth with the uncompressed blocks of schema 2 (10M-step tutorial job, file after a clean stop)'],
  [/^metrics_query_2000_points/, '50 ms: the goal for max_points=2000 over any range of a 100M-step job (client-side time, best of 5)'],
  [/^service_tutorial_/, '`anneald train` of the same spec without metrics output (start-up subtracted)'],
  [/^api_/, 'GET /healthz (two small reads of the loop\'s store connection: job counts, file sizes) under the same conditions, in turns with this one, each round starting with another'],
  [/^store_pyramid_query/, 'the whole range through the row scan that came before the summary pyramid'],
  [/^store_pyramid_ingest/, 'the same batches written with the pyramid merge off'],
  [/^gpt_shakespeare_char/, 'PyTorch 1.13 running the same model and step, one thread each (bench/gpt_torch.py), ms per iteration (ratio = torch / anneald)'],
  [/^gpt_shakespeare_2000_steps_threads2/, '45 s: issue 14\'s goal for the whole 2000-step recipe job with "threads": 2, validation included (`anneald train` of the README\'s shakespeare.json; a goal, not a measurement; ratio = 45 / time)'],
  [/^gpt_shakespeare_2000_steps_threads1/, 'the same job with "threads": 2, run just before (ratio = threads-1 time / threads-2 time: what the second thread gains)'],
  [/^gpt_roofline_fraction/, 'the iteration\'s matrix products alone through the same sgemm, same shapes, same run'],
  [/^gpt_bf16_iteration/, 'the same iteration in float32 (ratio = fp32 / bf16)'],
  [/^mlp_fashion_mnist/, 'PyTorch 1.13 training the same MLP on the same data, one thread each, neither clipping the gradients (bench/mlp_torch.py); three rounds in turns, best of each side'],
  [/^mpi_(mlp|gpt|fashion_mlp)_w2_comm/, 'share of the W = 2 run spent in the gradient exchange (no reference)'],
  [/^mpi_gpt_two_w1_at_once/, 'one W = 1 run of the same gpt job alone (the sum of two at once over it: the most W = 2 can gain on this machine while the benchmark runs)'],
  [/^mpi_gpt/, 'the same shakespeare gpt job (4 layers, 4 heads, 128 wide, block 64, global batch 64) at world_size 1, one thread per rank (goal: ratio ≥ 1.7 at W = 2)'],
  [/^mpi_fashion_mlp/, 'the same Fashion-MNIST MLP job (784-512-512-10, global batch 128) at world_size 1, one thread per rank'],
  [/^mpi_mlp/, 'the same job at world_size 1, one thread per rank'],
  [/^mpi_zero1_optim_bytes/, 'the whole optimizer state, which the one rank of world_size 1 holds (ratio = one rank\'s share under ZeRO stage 1)'],
  [/^dashboard_/, 'opening a finished 1,000-step job of the same spec, same browser'],
];

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function fmt(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e9) return v.toExponential(3);
  if (a >= 100) return v.toFixed(0);
  return Number(v.toPrecision(4)).toString();
}

const figures = new Map();
const LINE = /^BENCH (\S+) (\S+) (\S+) ref=(\S+) ratio=(\S+)$/;
for (const line of fs.readFileSync(raw, 'utf8').split('\n')) {
  if (!line.startsWith('BENCH ')) continue;
  const m = LINE.exec(line.trim());
  if (!m || [m[2], m[4], m[5]].some((x) => !Number.isFinite(Number(x)))) {
    console.error(`bench/report.mjs: malformed line: ${line}`);
    process.exit(1);
  }
  const [, name, value, unit, ref, ratio] = m;
  if (!figures.has(name)) figures.set(name, {unit, values: [], refs: [], ratios: []});
  const f = figures.get(name);
  f.values.push(Number(value));
  f.refs.push(Number(ref));
  f.ratios.push(Number(ratio));
}
if (figures.size === 0) {
  console.error(`bench/report.mjs: no BENCH line in ${raw}`);
  process.exit(1);
}

function sh(cmd, args) {
  try { return execFileSync(cmd, args, {encoding: 'utf8'}).trim(); } catch { return ''; }
}
const lscpu = sh('lscpu', []);
const cpu = (/^Model name:\s*(.+)$/m.exec(lscpu) || [])[1] || os.cpus()[0]?.model || 'unknown';
const virt = (/^Hypervisor vendor:\s*(.+)$/m.exec(lscpu) || [])[1];
const cores = sh('nproc', []) || String(os.cpus().length);
const memGb = (os.totalmem() / 2 ** 30).toFixed(0);
const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const rounds = Number(roundsArg || 1);

const rows = [];
for (const [name, f] of figures) {
  const refText = (REFS.find(([re]) => re.test(name)) || [null, 'see the benchmark\'s header comment'])[1];
  const v = median(f.values), r = median(f.refs), q = median(f.ratios);
  const lo = Math.min(...f.values), hi = Math.max(...f.values);
  console.log(`BENCH ${name} ${fmt(v)} ${f.unit} ref=${fmt(r)} ratio=${q.toFixed(4)}`);
  const range = f.values.length > 1 ? `${fmt(lo)}–${fmt(hi)}` : '';
  rows.push(`| ${name} | ${fmt(v)} | ${f.unit} | ${fmt(r)} | ${q.toFixed(3)} | ${range} | ${refText} |`);
}

// The figures the service's goals speak of, in words.
const med = (name) => (figures.has(name) ? {v: median(figures.get(name).values), r: median(figures.get(name).refs),
                                             q: median(figures.get(name).ratios), unit: figures.get(name).unit} : null);
const highlights = [];
for (const [name] of figures) {
  if (!name.startsWith('service_tutorial_')) continue;
  const f = med(name);
  const slow = (1 / f.q - 1) * 100;
  // Storing cannot make the job faster: a daemon side ahead of its reference is the two runs'
  // noise, and says nothing about the goal.
  if (slow < 0) highlights.push(`- Storing every step's metrics: the tutorial job (${name.split('_')[2]} steps) ` +
    `ran at ${fmt(f.v)} steps/s in the daemon and ${fmt(f.r)} in \`anneald train\` without metrics output, ` +
    `${(-slow).toFixed(1)} % faster with storing: the two runs' noise on this machine, so this round ` +
    `cannot tell whether the goal (under 2 % slower) is met.`);
  else highlights.push(`- Storing every step's metrics slows the tutorial job (${name.split('_')[2]} steps) ` +
    `from ${fmt(f.r)} to ${fmt(f.v)} steps/s: the job takes ${slow.toFixed(1)} % longer ` +
    `than \`anneald train\` without metrics output (goal: under 2 %; ${slow < 2 ? 'met' : 'not met'}).`);
}
for (const name of ['store_metrics_ingest_batch1000', 'store_metrics_ingest_batch1000_varying']) {
  const f = med(name);
  if (f) highlights.push(`- Metrics ingest (${name.replace('store_metrics_ingest_', '')}): ${fmt(f.v)} rows/s into SQLite ` +
    `(a plain file takes ${fmt(f.r)}).`);
}
const ct = med('store_checkpoint_commit_time'), cr = med('store_checkpoint_commit_rate');
if (ct && cr) highlights.push(`- Checkpoint of an Adam state (params, m, v in fp32; 60M parameters, 4M in a quick run): ${fmt(ct.v)} s, ` +
  `${fmt(cr.v)} MB/s (a plain file: ${fmt(ct.r)} s, ${fmt(cr.r)} MB/s)` +
  (med('store_checkpoint_wal_copy_time') ? `; the copy from the WAL into the database after it: ${fmt(med('store_checkpoint_wal_copy_time').v)} s.` : '.'));
const gj = med('api_get_job');
if (gj) highlights.push(`- GET /v1/jobs/{id} while a job trains: ${fmt(gj.v)} req/s (GET /healthz: ${fmt(gj.r)} req/s).`);
const dash = med('dashboard_1M_open');
if (dash) highlights.push(`- The dashboard draws a 1,000,000-step job's charts ${fmt(dash.v)} ms after navigation (a 1,000-step job: ${fmt(dash.r)} ms).`);

// The long load test's summary, when one was run (make load-test writes it).
const loadFile = process.env.BENCH_LOAD_REPORT || '';
let loadSection = '';
if (loadFile && fs.existsSync(loadFile)) {
  const when = fs.statSync(loadFile).mtime.toISOString().replace(/\.\d+Z$/, 'Z');
  loadSection = `\n## Load test\n\n\`make load-test\` (tests/e2e/load.test.mjs) on ${when}: wrk on GET /v1/jobs/{id} and ` +
    `GET /v1/jobs while two jobs train, with SSE clients on /v1/events and each job's events:\n\n\`\`\`\n` +
    fs.readFileSync(loadFile, 'utf8').trim() + '\n\`\`\`\n';
}

// The commit the figures belong to: bench/run.sh takes it before the rounds run (a tree with
// uncommitted changes says so), since commits made while they run were not measured.
const commit = process.env.BENCH_COMMIT || '';

const md = `# Benchmarks

Produced by \`${command || 'make bench'}\` (bench/run.sh) on ${date}${commit ? `, on the tree of commit ${commit}` : ''}.

- CPU: ${cpu}${virt ? ` (virtual machine, ${virt})` : ''}, ${cores} cores, ${memGb} GB of memory; ${sh('uname', ['-sr'])}
- The machine is shared with other builds and test runs, which compete for its 2 cores while
  the benchmarks run: every figure is the median of ${rounds} round${rounds === 1 ? '' : 's'} of the whole
  suite, and the range column shows how far the rounds spread. Each reference is measured in
  the same round, beside its figure, so the ratio is steadier than either number alone.
- Every figure is one line \`BENCH <name> <value> <unit> ref=<value> ratio=<value>\`;
  ratio = value / reference (for times in ms or s lower is better, for rates higher), except
  the optimizer's \`*_1t_step\` lines, whose ratio is reference / value like their GB/s line.

## Highlights

${highlights.join('\n')}
${loadSection}

## Reproduce

\`\`\`sh
make bench                  # ${rounds} round${rounds === 1 ? '' : 's'} (BENCH_ROUNDS=N to change), rewrites BENCHMARKS.md
BENCH_QUICK=1 make bench    # smoke run, seconds; writes build/BENCHMARKS-quick.md instead
./build/bench/bench_optim build; ./build/bench/bench_store build; ./build/bench/bench_train build
node bench/service.mjs build; node bench/dashboard.mjs build
make load-test              # 300 s load test (tests/e2e/load.test.mjs); the short one is in make test
\`\`\`

## Figures

| name | value | unit | reference | ratio | range of value | the reference is |
|---|---:|---|---:|---:|---|---|
${rows.join('\n')}
`;
fs.writeFileSync(out, md);
