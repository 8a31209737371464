// End-to-end tests of data-parallel job specs: world_size in the batch arithmetic, ZeRO stage
// warnings, a job of several ranks refused at submit (422 naming world_size) when Open MPI's
// launcher or the rank program is missing (and started with both there), and the --mpirun /
// --mpi-hosts flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, SANITIZED, api, tmpDir, removeDir, writeFile, withDaemon, waitFor } from './lib.mjs';

const RANK = path.join(path.dirname(BIN), 'anneald-rank');

const job = (over = {}, ds = {}) => ({
  model: {type: 'linear', inputs: 2, outputs: 1},
  data: {type: 'synthetic', task: 'regression', samples: 64, features: 2},
  steps: 5, ...over,
  ds_config: {train_micro_batch_size_per_gpu: 4, gradient_accumulation_steps: 2,
    optimizer: {type: 'Adam', params: {lr: 0.01}}, ...ds},
});

test('world_size enters the batch arithmetic; bad values name the field and store nothing', async () => {
  await withDaemon({}, async (d) => {
    const one = await api(d.url, 'POST', '/v1/jobs', job({}, {zero_optimization: {stage: 0}}));
    assert.equal(one.status, 201, one.text);
    const got = await api(d.url, 'GET', `/v1/jobs/${one.json.id}`);
    assert.equal(got.json.spec.world_size, 1);
    assert.equal(got.json.spec.ds_config.train_batch_size, 8);
    for (const [over, ds, field, re] of [
      [{world_size: 0}, {}, 'world_size', /got 0/],
      [{world_size: '2'}, {}, 'world_size', /got "2"/],
      [{world_size: 1000}, {}, 'world_size', /got 1000/],
      [{world_size: 2}, {train_batch_size: 8}, 'ds_config.train_batch_size',
        /train_batch_size 8 != train_micro_batch_size_per_gpu 4 × gradient_accumulation_steps 2 × world_size 2/],
      [{}, {zero_optimization: {stage: 5}}, 'ds_config.zero_optimization.stage', /got 5/],
    ]) {
      const r = await api(d.url, 'POST', '/v1/jobs', job(over, ds));
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error.field, field, r.text);
      assert.match(r.json.error.message, re);
    }
    // ZeRO stage 2 is accepted with a warning that says what runs
    const z = await api(d.url, 'POST', '/v1/jobs', job({}, {zero_optimization: {stage: 2, overlap_comm: true}}));
    assert.equal(z.status, 201, z.text);
    assert.ok(z.json.warnings.some((w) => /^ds_config\.zero_optimization\.stage 2 runs as stage 1 here/.test(w)), z.text);
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.total, 2);
  });
});

test('a job of several ranks is refused with 422 when mpirun or the rank program is missing', async () => {
  await withDaemon({args: ['--mpirun', '/nonexistent/mpirun']}, async (d) => {
    const r = await api(d.url, 'POST', '/v1/jobs', job({world_size: 2}));
    assert.equal(r.status, 422, r.text);
    assert.equal(r.json.error.field, 'world_size');
    assert.match(r.json.error.message, /world_size 2 needs Open MPI's launcher, and '\/nonexistent\/mpirun' is not an executable file/);
    assert.match(r.json.error.message, /--mpirun PATH/);
    assert.equal((await api(d.url, 'GET', '/v1/jobs')).json.total, 0);
    // one rank never needs the launcher
    const one = await api(d.url, 'POST', '/v1/jobs', job({world_size: 1}));
    assert.equal(one.status, 201, one.text);
  });
  const dir = tmpDir();
  try {
    // a launcher that exists (any executable will do for the check) and a copy of the daemon
    // with no rank program next to it
    writeFile(dir, 'mpirun', '#!/bin/sh\nexit 1\n');
    fs.copyFileSync(BIN, `${dir}/anneald`);
    fs.chmodSync(`${dir}/mpirun`, 0o755);
    fs.chmodSync(`${dir}/anneald`, 0o755);
    await withDaemon({bin: `${dir}/anneald`, args: ['--mpirun', `${dir}/mpirun`]}, async (d) => {
      const r = await api(d.url, 'POST', '/v1/jobs', job({world_size: 4}));
      assert.equal(r.status, 422, r.text);
      assert.equal(r.json.error.field, 'world_size');
      assert.match(r.json.error.message, /world_size 4 needs the rank program anneald-rank next to the daemon/);
      assert.match(r.json.error.message, /build it with `make rank`/);
    });
    // with both there, the job is taken and the worker starts the launcher: this one fails at
    // once, and the job fails with what it printed (the command line, --mpi-hosts included)
    if (fs.existsSync(RANK)) {
      fs.copyFileSync(RANK, `${dir}/anneald-rank`);
      fs.chmodSync(`${dir}/anneald-rank`, 0o755);
      writeFile(dir, 'mpirun', '#!/bin/sh\necho "launcher args: $*"\nexit 3\n');
      fs.chmodSync(`${dir}/mpirun`, 0o755);
      await withDaemon({bin: `${dir}/anneald`, args: ['--mpirun', `${dir}/mpirun`, '--mpi-hosts', 'node1:4,node2:4']}, async (d) => {
        const r = await api(d.url, 'POST', '/v1/jobs', job({world_size: 8}, {gradient_accumulation_steps: 1}));
        assert.equal(r.status, 201, r.text);
        const j = await waitFor(async () => {
          const g = (await api(d.url, 'GET', `/v1/jobs/${r.json.id}`)).json;
          return g.state === 'failed' && g;
        }, {what: 'the job to fail'});
        assert.match(j.error, /^world_size: mpirun ended \(exit status 3\) before rank 0 connected: launcher args: -np 8 --host node1:4,node2:4 .*anneald-rank --job j_\d+ --socket \S+daemon\.sock/);
      });
    }
  } finally {
    removeDir(dir);
  }
});

test('--mpirun and --mpi-hosts: bad values stop the daemon with a message naming the flag', () => {
  for (const [args, re] of [
    [['--mpi-hosts', 'node1,,node2'], /--mpi-hosts expects an Open MPI hostfile or host names/],
    [['--mpi-hosts', 'node1:0'], /--mpi-hosts expects/],
    [['--mpi-hosts', 'no such host!'], /--mpi-hosts expects/],
    [['--mpi-hosts', '/nonexistent/hostfile'], /--mpi-hosts: cannot read the hostfile '\/nonexistent\/hostfile'/],
    [['--mpirun', ''], /--mpirun expects the path of Open MPI's mpirun/],
    [['--mpirun'], /--mpirun needs a value/],
  ]) {
    const r = spawnSync(BIN, ['--listen', '127.0.0.1:0', '--db', '/nonexistent/x.db', ...args], {encoding: 'utf8'});
    assert.notEqual(r.status, 0, args.join(' '));
    assert.match(r.stderr, re, args.join(' '));
  }
  const h = spawnSync(BIN, ['--help'], {encoding: 'utf8'});
  assert.match(h.stdout, /--mpi-hosts FILE\|LIST/);
});

// The rank program starts Open MPI before it reads its arguments: under `make check` its leak
// check skips what Open MPI keeps until exit, as in mpi_ranks.test.mjs.
const RANK_ENV = SANITIZED ? {...process.env,
  ASAN_OPTIONS: `${process.env.ASAN_OPTIONS || ''}:fast_unwind_on_malloc=0`,
  LSAN_OPTIONS: `suppressions=${path.resolve('tests/e2e/lsan-openmpi.supp')}:fast_unwind_on_malloc=0`} : process.env;

test('the rank program names a bad argument of its command line, as the other commands do', () => {
  const RANK = path.join(path.dirname(BIN), 'anneald-rank');
  for (const [args, re] of [
    [['--stps', '3', 'job.json'], /^anneald-rank: unknown flag '--stps'$/m],
    [['a.json', 'b.json'], /^anneald-rank: unexpected argument 'b\.json'$/m],
    [['a.json', '--steps'], /^anneald-rank: unknown flag \(or one without its value\) '--steps'$/m],
  ]) {
    const r = spawnSync(RANK, args, {encoding: 'utf8', timeout: 60000, env: RANK_ENV});
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.match(r.stderr, /^usage: mpirun -n W anneald-rank SPEC\.json/m);
  }
});
