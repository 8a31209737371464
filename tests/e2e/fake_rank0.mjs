// A stand-in for mpirun and rank 0 of a job of several ranks (the daemon's --mpirun): it
// connects to the daemon's socket as rank 0 does, reads the job (spec, data, resume) and then
// sends what the scenario in $FAKE_RANK0 says, frames the real rank program would never send
// (another build's, out of order). Used by mpi_wire.test.mjs.
import net from 'node:net';

const sock = process.argv[process.argv.indexOf('--socket') + 1];
const scenario = process.env.FAKE_RANK0 || '';

function frame(type, payload) {
  const h = Buffer.alloc(5);
  h.writeUInt32LE(payload.length, 0);
  h.writeUInt8(type, 4);
  return Buffer.concat([h, payload]);
}
function start(done, total, version = 2) {
  const b = Buffer.alloc(version === 1 ? 16 : 20);
  b.writeBigInt64LE(BigInt(done), 0);
  b.writeBigInt64LE(BigInt(total), 8);
  if (version !== 1) b.writeUInt32LE(version, 16);
  return frame(21, b);
}
// metric rows as the rank program encodes them: step, epoch, loss, grad_norm, time, n_lr,
// flags, then the lrs
function rows(steps) {
  const parts = [Buffer.alloc(4)];
  parts[0].writeUInt32LE(steps.length, 0);
  for (const s of steps) {
    const r = Buffer.alloc(43 + 8);
    r.writeBigInt64LE(BigInt(s), 0);
    r.writeBigInt64LE(0n, 8);
    r.writeDoubleLE(1.0 / s, 16);
    r.writeDoubleLE(0.5, 24);
    r.writeDoubleLE(0.001 * s, 32);
    r.writeUInt16LE(1, 40);
    r.writeUInt8(0, 42);
    r.writeDoubleLE(0.1, 43);
    parts.push(r);
  }
  return frame(16, Buffer.concat(parts));
}
const done = (how = 0) => frame(19, Buffer.from([how]));
function ckpt(step, blob) {
  const h = Buffer.alloc(16);
  h.writeBigInt64LE(BigInt(step), 0);
  h.writeDoubleLE(1.0, 8);
  return frame(17, Buffer.concat([h, blob]));
}
const range = (a, b) => Array.from({length: b - a + 1}, (_, i) => a + i);

const SCENARIOS = {
  'old-build': () => [start(0, 10, 1)],
  'other-build': () => [start(0, 10, 7)],
  'rows-again': () => [start(0, 10), rows([1, 2, 3]), rows([2, 3])],
  'rows-beyond': () => [start(0, 10), rows(range(1, 11))],
  'completed-early': () => [start(0, 10), rows([1]), done(0)],
  'garbage-checkpoint': () => [start(0, 10), rows([1, 2]), ckpt(2, Buffer.from('not a training state'))],
  'fail-text': () => [start(0, 10), frame(20, Buffer.concat([Buffer.from('model: bad\u0000byte\u0007 here '),
    Buffer.from([0xff]), Buffer.from(' \u2713')]))],
};

const c = net.createConnection(sock);
let got = Buffer.alloc(0), frames = 0;
c.on('data', (b) => {
  got = Buffer.concat([got, b]);
  while (got.length >= 5 && got.length >= 5 + got.readUInt32LE(0)) {
    got = got.subarray(5 + got.readUInt32LE(0));
    if (++frames === 3) { // the spec, the data and the resume: the job is ours
      for (const f of SCENARIOS[scenario]()) c.write(f);
      setTimeout(() => c.end(), 2000);
    }
  }
});
c.on('error', () => process.exit(1));
c.on('close', () => process.exit(0));
