// replay.mjs — rebuilds the store files a power loss could leave, from the log that
// tests/powerloss/iolog.c wrote while the daemon ran.
//
// The model of a power loss at crash point k (the first k records of the log happened):
//   - every write or truncate of a file that a sync of that file covers (logged before the
//     sync began, the sync returned before k) is on the disk;
//   - of the others, any subset is, in log order; a write that is on the disk may be torn: any
//     subset of its 512-byte sectors (by file offset) holds the new bytes, the rest the old.
//     Bytes outside a write's range never change (SQLite's powersafe-overwrite assumption,
//     which its unix VFS makes by default);
//   - an unlink or rename is on the disk from the moment it returned (the daemon syncs no
//     directory; SQLite removes only a WAL whose content is in the synced database);
//   - the -shm file is gone (it is not logged: SQLite rebuilds it from the WAL).
import fs from 'node:fs';
import path from 'node:path';

const REC = 48;
export const OP = {WRITE: 1, TRUNC: 2, SYNC: 3, UNLINK: 4, RENAME: 5, CREATE: 6};
export const SECTOR = 512;

// Reads the log of directory `dir`: {files: [path], ops: [{i, op, file, off, len, data,
// cover}], data: Buffer}.
export function readLog(dir) {
  const raw = fs.readFileSync(path.join(dir, 'ops'));
  const data = fs.readFileSync(path.join(dir, 'data'));
  const files = fs.readFileSync(path.join(dir, 'files'), 'utf8').split('\n').filter(Boolean);
  const ops = [];
  for (let i = 0; i + REC <= raw.length; i += REC) {
    ops.push({i: i / REC, op: raw.readUInt32LE(i), file: raw.readUInt32LE(i + 4),
              off: Number(raw.readBigInt64LE(i + 8)), len: Number(raw.readBigInt64LE(i + 16)),
              data: Number(raw.readBigInt64LE(i + 24)), cover: Number(raw.readBigInt64LE(i + 32))});
  }
  return {files, ops, data};
}

// The number of records the log of `dir` holds now: the log's clock.
export function logClock(dir) {
  try {
    return Math.floor(fs.statSync(path.join(dir, 'ops')).size / REC);
  } catch {
    return 0;
  }
}

// One file as the disk holds it: its synced bytes (null: absent) and its changes since.
class DiskFile {
  constructor() {
    this.bytes = null;
    this.pending = [];
  }
}

function grow(buf, size) {
  if (buf.length >= size) return buf;
  const b = Buffer.alloc(Math.max(size, buf.length * 2));
  buf.copy(b);
  return b;
}

// Applies one write or truncate to `img` ({buf, size}); `sectors`, when given, the sectors of
// the write that reach the disk (a torn write).
function apply(img, o, data, sectors) {
  if (o.op === OP.TRUNC) {
    img.buf = grow(img.buf, o.off);
    if (o.off < img.size) img.buf.fill(0, o.off, img.size);
    img.size = o.off;
    return;
  }
  const end = o.off + o.len;
  img.buf = grow(img.buf, end);
  for (let s = o.off; s < end;) {
    const next = Math.min(end, (Math.floor(s / SECTOR) + 1) * SECTOR);
    if (!sectors || sectors.has(Math.floor(s / SECTOR)))
      data.copy(img.buf, s, o.data + (s - o.off), o.data + (next - o.off));
    s = next;
  }
  // A torn write that reached none of its last sectors does not extend the file.
  if (!sectors) img.size = Math.max(img.size, end);
  else {
    let last = -1;
    for (const k of sectors) last = Math.max(last, Math.min(end, (k + 1) * SECTOR));
    img.size = Math.max(img.size, last);
  }
}

// Walks the log once, yielding [k, snapshot] at each crash point k of `points` (sorted,
// ascending); snapshot.files maps a path to {bytes: Buffer|null, pending: [op]}. A snapshot's
// buffers are never changed afterwards.
export function* walk(log, points) {
  const disk = log.files.map(() => new DiskFile());
  const settle = (f, upTo) => {
    if (!f.pending.length || f.pending[0].i >= upTo) return;
    const im = {buf: Buffer.from(f.bytes || []), size: f.bytes ? f.bytes.length : 0};
    while (f.pending.length && f.pending[0].i < upTo) apply(im, f.pending.shift(), log.data);
    f.bytes = im.buf.subarray(0, im.size);
  };
  let p = 0;
  for (let k = 0; k <= log.ops.length && p < points.length; k++) {
    while (p < points.length && points[p] === k) {
      const files = {};
      log.files.forEach((name, id) => {
        files[name] = {bytes: disk[id].bytes, pending: disk[id].pending.slice()};
      });
      yield [k, {files}];
      p++;
    }
    if (k === log.ops.length) break;
    const o = log.ops[k];
    const f = disk[o.file];
    switch (o.op) {
    case OP.CREATE:
      if (!f.bytes) f.bytes = Buffer.alloc(0);
      break;
    case OP.WRITE:
    case OP.TRUNC:
      if (!f.bytes) f.bytes = Buffer.alloc(0);
      f.pending.push(o);
      break;
    case OP.SYNC:
      settle(f, o.cover);
      break;
    case OP.UNLINK:
      f.bytes = null;
      f.pending = [];
      break;
    case OP.RENAME: {
      const to = disk[o.off];
      to.bytes = f.bytes;
      to.pending = f.pending;
      f.bytes = null;
      f.pending = [];
      break;
    }
    default:
      throw new Error(`log record ${k}: unknown operation ${o.op}`);
    }
  }
}

// Writes the files of `snapshot` into directory `out` (under their base names), with the
// unsynced changes chosen by `choose(op)`: false (lost), true (whole) or a Set of sector
// numbers (torn). Returns how many unsynced changes were lost, kept whole and torn.
export function materialize(log, snapshot, out, choose) {
  const tally = {lost: 0, whole: 0, torn: 0};
  fs.mkdirSync(out, {recursive: true});
  for (const [name, f] of Object.entries(snapshot.files)) {
    const dest = path.join(out, path.basename(name));
    if (!f.bytes) {
      fs.rmSync(dest, {force: true});
      continue;
    }
    const im = {buf: Buffer.from(f.bytes), size: f.bytes.length};
    for (const o of f.pending) {
      const c = choose(o);
      if (c === false) tally.lost++;
      else {
        tally[c === true ? 'whole' : 'torn']++;
        apply(im, o, log.data, c === true ? null : c);
      }
    }
    fs.writeFileSync(dest, im.buf.subarray(0, im.size));
  }
  return tally;
}

// The sectors a write covers (by file offset).
export function sectorsOf(o) {
  const out = [];
  for (let s = Math.floor(o.off / SECTOR); s * SECTOR < o.off + o.len; s++) out.push(s);
  return out;
}
