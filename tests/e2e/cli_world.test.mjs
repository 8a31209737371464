// `anneald train` and `lr-find` of a spec written for several ranks: the whole global batch
// is trained in the one process (with a note), bit for bit what one process of the same
// global batch trains; and the spec's warnings are printed as `check` prints them.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {BIN, tmpDir, removeDir} from './lib.mjs';

const dir = tmpDir('anneald-cli-world-');
test.after(() => removeDir(dir));

function write(name, content) {
  const p = path.join(dir, name);
  fs.writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

function ok(args) {
  const r = spawnSync(BIN, args, {encoding: 'utf8'});
  assert.equal(r.status, 0, `anneald ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return {out: r.stdout, err: r.stderr};
}

test('train and lr-find: a spec of several ranks trains its whole global batch here, and spec warnings are printed', () => {
  const f = (n) => path.join(dir, n);
  const iris = (W, over = {}) => ({
    seed: 3, model: {type: 'mlp', inputs: 4, hidden: [16], outputs: 3}, loss: 'cross_entropy',
    data: {type: 'builtin', name: 'iris'}, steps: 40, world_size: W, ...over,
    ds_config: {train_micro_batch_size_per_gpu: 4, gradient_accumulation_steps: 4 / W,
      optimizer: {type: 'Adam', params: {lr: 0.01}}},
  });
  const two = ok(['train', write('ws2.json', iris(2)), '--metrics-csv', f('ws2.csv')]);
  assert.match(two.err, /note: world_size 2: trained here in one process, 4 micro-batches of 4 a step \(2 ranks × 2\), the same global batch of 16/);
  ok(['train', write('ws1.json', iris(1)), '--metrics-csv', f('ws1.csv')]);
  const noTime = (t) => t.split('\n').map((l) => l.split(',').filter((_, i) => i !== 4).join(',')).join('\n');
  assert.equal(noTime(fs.readFileSync(f('ws2.csv'), 'utf8')), noTime(fs.readFileSync(f('ws1.csv'), 'utf8')));
  // a mistyped key: check warns, and so do train and lr-find now
  const typo = iris(1);
  typo.ds_config.schedular = {type: 'WarmupLR', params: {}};
  const p = write('typo.json', typo);
  const said = /warning: ds_config\.schedular is not a DeepSpeed key: did you mean ds_config\.scheduler\?/;
  assert.match(ok(['check', p]).err, said);
  assert.match(ok(['train', p, '--steps', '2']).err, said);
  assert.match(ok(['lr-find', p, '--steps', '20']).err, said);
});

