// A job's step history as the dashboard holds it: fetching the columnar metrics
// (GET /v1/jobs/{id}/metrics), appending live increments, and turning it into chart tables
// (x by step, elapsed time or wall clock; smoothed loss; validation points; lr per group;
// for fp16 jobs the loss scale and the skipped steps).
import {api} from './api.js';
import {ema, downsample, lowerBound} from './charts.js';

// Up to this many steps in a range the dashboard fetches every step (no max_points), so that
// smoothing runs on full-resolution data and only then is the result downsampled for drawing.
// Longer ranges are downsampled by the server (each bucket's extremes) and smoothed as they
// come: an EMA over bucket extremes, which is what the chart can afford for a 1M-step job.
// Zooming into a range of at most FULL_LIMIT steps fetches it in full again.
export const FULL_LIMIT = 50000;
// Points per fetch when the server downsamples, and points drawn per series.
export const MAX_POINTS = 2000;
export const DRAW_POINTS = 4000;

export function emptyMetrics() {
  return {step: [], loss: [], lr: [], grad_norm: [], time: [], wall: [], val_step: [], val_loss: [],
          val_acc: [], fp16: null};
}

// GET metrics for steps from..to (both optional); maxPoints 0 asks for every step.
export async function fetchMetrics(id, {from, to, maxPoints} = {}) {
  const q = new URLSearchParams();
  if (from != null) q.set('from', String(Math.max(0, Math.floor(from))));
  if (to != null) q.set('to', String(Math.ceil(to)));
  if (maxPoints) q.set('max_points', String(maxPoints));
  const m = await api('GET', `/v1/jobs/${encodeURIComponent(id)}/metrics?${q}`);
  return normalize(m);
}

function normalize(m) {
  const out = emptyMetrics();
  if (!m || !Array.isArray(m.step)) return out;
  out.step = m.step;
  out.loss = m.loss || [];
  out.lr = Array.isArray(m.lr) ? (Array.isArray(m.lr[0]) || !m.lr.length ? m.lr : [m.lr]) : [];
  out.grad_norm = m.grad_norm || [];
  out.time = m.time || [];
  out.wall = m.wall || [];
  out.val_step = m.val_step || [];
  out.val_loss = m.val_loss || [];
  out.val_acc = m.val_acc || [];
  // fp16 jobs: {step, loss_scale, skipped}, led by the event in force at the range's start.
  if (m.fp16 && Array.isArray(m.fp16.step)) out.fp16 = m.fp16;
  if (Array.isArray(m.momentum)) out.momentum = Array.isArray(m.momentum[0]) ? m.momentum : [m.momentum];
  return out;
}

export function lastStep(m) {
  return m.step.length ? m.step[m.step.length - 1] : 0;
}

// Appends the rows of `add` that come after the last step of `m` (a live increment may
// overlap what is already there).
export function appendMetrics(m, add) {
  const last = lastStep(m);
  const i0 = lowerBound(add.step, last + 1);
  const cut = (a) => (a ? a.slice(i0) : []);
  push(m.step, cut(add.step));
  push(m.loss, cut(add.loss));
  push(m.grad_norm, cut(add.grad_norm));
  push(m.time, cut(add.time));
  push(m.wall, cut(add.wall));
  add.lr.forEach((g, k) => { if (!m.lr[k]) m.lr[k] = new Array(m.step.length - (g.length - i0)).fill(null); push(m.lr[k], g.slice(i0)); });
  if (add.momentum) {
    m.momentum = m.momentum || [];
    add.momentum.forEach((g, k) => { m.momentum[k] = (m.momentum[k] || []).concat(g.slice(i0)); });
  }
  const lv = m.val_step.length ? m.val_step[m.val_step.length - 1] : 0;
  const j0 = lowerBound(add.val_step, lv + 1);
  push(m.val_step, add.val_step.slice(j0));
  push(m.val_loss, add.val_loss.slice(j0));
  push(m.val_acc, add.val_acc.slice(j0));
  if (add.fp16) {
    if (!m.fp16) m.fp16 = {step: [], loss_scale: [], skipped: []};
    const f = m.fp16, ls = f.step.length ? f.step[f.step.length - 1] : 0;
    const e0 = lowerBound(add.fp16.step, ls + 1);
    push(f.step, add.fp16.step.slice(e0));
    push(f.loss_scale, add.fp16.loss_scale.slice(e0));
    const lk = f.skipped.length ? f.skipped[f.skipped.length - 1] : 0;
    push(f.skipped, add.fp16.skipped.slice(lowerBound(add.fp16.skipped, lk + 1)));
  }
}

function push(dst, src) {
  for (let i = 0; i < src.length; i++) dst.push(src[i]);
}

// The rows of m that have a time: {step, time}. A job that keeps only its newest steps may
// answer null for the time of a row it dropped while the answer was read (docs/API.md).
export function timed(m) {
  if (!m.time.some((t) => t == null)) return {step: m.step, time: m.time};
  const step = [], time = [];
  m.time.forEach((t, i) => { if (t != null) { step.push(m.step[i]); time.push(t); } });
  return {step, time};
}

// Elapsed seconds at each of `steps`, from the rows of m that have one: on the line through
// the two such rows around the step, or the nearest two past either end (not before 0).
function timesAt(m, steps) {
  const r = timed(m), n = r.step.length;
  return steps.map((s) => {
    if (n < 2) return n ? r.time[0] : null;
    let i = lowerBound(r.step, s);
    if (i < n && r.step[i] === s) return r.time[i];
    const before = i === 0;
    i = Math.min(Math.max(i, 1), n - 1);
    const s0 = r.step[i - 1], s1 = r.step[i], t0 = r.time[i - 1], t1 = r.time[i];
    const t = t0 + (t1 - t0) * (s - s0) / (s1 - s0);
    return before ? Math.max(0, t) : t; // no time before the start
  });
}

// A table [x, ...] without its rows whose x is null: on a time axis, when no row had a time.
export function timedRows(data) {
  if (!data[0].some((v) => v == null)) return data;
  const keep = [];
  data[0].forEach((v, i) => { if (v != null) keep.push(i); });
  return data.map((a) => keep.map((i) => a[i]));
}

// x values for rows at `steps`: the steps themselves, elapsed seconds, or wall-clock seconds
// (the job's start plus elapsed).
// A server may record time as seconds since the epoch rather than since the start: such values
// (past 1e9 s, 2001) are taken as wall-clock times. A row without a time is placed by the
// rows around it that have one, as validation steps are.
export function xFor(m, steps, xmode, t0) {
  if (xmode === 'step') return steps;
  const t = steps === m.step && !m.time.some((v) => v == null) ? m.time : timesAt(m, steps);
  if (xmode === 'wall') {
    const w = wallAt(m, steps, t);
    if (w) return w;
  }
  const epoch = t.find((v) => v != null) > 1e9;
  if (xmode === 'elapsed') return epoch ? t.map((v) => (v == null ? null : v - t0)) : t;
  return epoch ? t : t.map((v) => (v == null ? null : t0 + v));
}

// Wall-clock seconds at `steps` (their training times `t`), from the rows' wall column: a
// row's training time plus how far the wall clock had run ahead of it by then. The wall
// column has whole seconds, so the largest lead seen so far is the true one (to within the
// first rows), and it grows by every pause, restart or wait: the axis shows those gaps. Null
// when the rows have no wall clock (a store from before the column was answered).
function wallAt(m, steps, t) {
  if (!m.wall || m.wall.length !== m.step.length || !m.wall.some((v) => v != null)) return null;
  const lead = new Array(m.step.length);
  let best = -Infinity;
  for (let i = 0; i < m.step.length; i++) {
    const w = m.wall[i], s = m.time[i];
    if (w != null && s != null && w - s > best) best = w - s;
    lead[i] = best;
  }
  // Backwards, each stretch between pauses takes its own largest lead (its last): the lead
  // grows by under a second within a stretch (the clock's whole seconds) and by the pause at
  // one, so the rows before a stretch's first tick of the clock are not placed up to a
  // second early.
  for (let i = lead.length - 2, top = lead[lead.length - 1]; i >= 0; i--) {
    if (!(top - lead[i] < 1)) top = lead[i];
    lead[i] = top;
  }
  const first = lead.find((v) => Number.isFinite(v));
  return steps.map((s, k) => {
    if (t[k] == null) return null;
    let i = lowerBound(m.step, s);
    if (i >= m.step.length || m.step[i] > s) i--;
    const L = i >= 0 && Number.isFinite(lead[i]) ? lead[i] : first;
    return t[k] + L;
  });
}

// On the wall-clock axis a pause or a wait is a span with no rows. A row of nulls in the
// middle of such a span keeps the lines from bridging it, so it shows as a gap. A span counts
// when it is over 2 s and over 50 times the table's median spacing. The table's other holes
// (a series without a value at a row: validation steps, groups) become undefined, which the
// lines pass over: on this axis the charts draw nulls as gaps (charts.js, `gaps`).
export function breakGaps(data, xmode) {
  const x = data[0], n = x.length;
  if (xmode !== 'wall') return data;
  const cut = new Set();
  if (n >= 3) {
    const d = [];
    for (let i = 1; i < n; i++) d.push(x[i] - x[i - 1]);
    const med = [...d].sort((a, b) => a - b)[d.length >> 1];
    const min = Math.max(2, 50 * med);
    for (let i = 1; i < n; i++) if (x[i] - x[i - 1] > min) cut.add(i);
  }
  return data.map((col, c) => {
    const out = [];
    for (let i = 0; i < n; i++) {
      if (cut.has(i)) out.push(c === 0 ? (x[i - 1] + x[i]) / 2 : null);
      out.push(c > 0 && col[i] === null ? undefined : col[i]);
    }
    return out;
  });
}

// The loss chart's table: [x, train loss, (smoothed), (val loss)] over the union of train and
// validation steps; labels name the series. alpha is the EMA weight (0 = no smoothing).
// skip: leading rows fetched only to warm the EMA up, not drawn.
export function lossTable(m, {xmode, t0, alpha, skip = 0}) {
  const smooth = alpha > 0 ? ema(m.loss, alpha) : null;
  const hasVal = m.val_step.length > 0;
  let steps = m.step, cols = [m.loss];
  if (smooth) cols.push(smooth);
  if (hasVal) {
    // Merge the two sorted step lists; each series is null where it has no value.
    const merged = [], out = cols.map(() => []), val = [];
    let i = 0, j = 0;
    while (i < m.step.length || j < m.val_step.length) {
      const a = i < m.step.length ? m.step[i] : Infinity, b = j < m.val_step.length ? m.val_step[j] : Infinity;
      const s = Math.min(a, b);
      merged.push(s);
      out.forEach((o, k) => o.push(a === s ? cols[k][i] : null));
      val.push(b === s ? m.val_loss[j] : null);
      if (a === s) i++;
      if (b === s) j++;
    }
    steps = merged;
    cols = [...out, val];
  }
  const labels = ['train loss'];
  if (smooth) labels.push('train loss (EMA)');
  if (hasVal) labels.push('val loss');
  if (m.fp16 && m.fp16.step.length) {
    const f = fp16Cols(m.fp16, steps, cols[0]);
    cols = [...cols, f.scale, f.skipped];
    labels.push('loss scale', 'skipped step');
  }
  let data = [xFor(m, steps, xmode, t0), ...cols];
  if (skip) {
    const k = lowerBound(steps, skip);
    data = data.map((a) => a.slice(k));
  }
  return {data: breakGaps(downsample(timedRows(data), DRAW_POINTS / 2), xmode), labels, hasVal,
          smoothed: !!smooth};
}

// fp16 columns over the table's rows: the loss scale in force at each step (the last event at
// or before it), and at each skipped step its train loss (null elsewhere), drawn as a mark. A
// skipped step between the rows of a downsampled table marks the row after it.
function fp16Cols(f, steps, loss) {
  const scale = new Array(steps.length).fill(null), skipped = new Array(steps.length).fill(null);
  let e = -1;
  for (let i = 0; i < steps.length; i++) {
    while (e + 1 < f.step.length && f.step[e + 1] <= steps[i]) e++;
    scale[i] = e >= 0 ? f.loss_scale[e] : null;
  }
  for (const s of f.skipped) {
    let i = lowerBound(steps, s);
    while (i < steps.length && loss[i] == null) i++; // a validation-only row has no loss
    if (i < steps.length) skipped[i] = loss[i];
  }
  return {scale, skipped};
}

// The lr chart's table: [x, lr group 0, …, (momentum group 0, …)].
export function lrTable(m, {xmode, t0, momentum, skip = 0}) {
  const groups = m.lr.length;
  const labels = m.lr.map((_, k) => (groups > 1 ? `lr group ${k}` : 'lr'));
  const cols = [...m.lr];
  const mom = momentum || m.momentum;
  if (mom) {
    mom.forEach((g, k) => {
      // momentum may be a whole schedule (entry s-1 for step s): pick the rows' steps.
      cols.push(g.length === m.step.length && !momentum ? g : m.step.map((s) => g[s - 1] ?? null));
      labels.push(mom.length > 1 ? `momentum group ${k}` : 'momentum');
    });
  }
  let data = [xFor(m, m.step, xmode, t0), ...cols];
  if (skip) {
    const k = lowerBound(m.step, skip);
    data = data.map((a) => a.slice(k));
  }
  return {data: breakGaps(downsample(timedRows(data), DRAW_POINTS / 2), xmode), labels, groups,
          momentum: mom ? mom.length : 0};
}

// Steps of the EMA's memory: rows before a zoomed range fetched so the average there starts
// the way it would over the whole run (weight alpha^k < 1e-3 beyond).
export function emaLeadIn(alpha) {
  if (!(alpha > 0)) return 0;
  return Math.min(20000, Math.ceil(Math.log(1e-3) / Math.log(alpha)));
}
