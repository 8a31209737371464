// Line charts on uPlot (loaded as the global `uPlot` from uPlot.iife.min.js), with what every
// chart of the dashboard shares: the x axis as step, elapsed time or wall clock; log scales;
// EMA smoothing; min/max downsampling; drag-to-zoom with a callback so the page can fetch the
// zoomed range in more detail; and registration in window.__anneald.charts for tests.

// A line series shows its points only when it has a single value in view: a line through
// one point draws nothing (a job of one step, a series whose other values are null).
function lonePoint(u, si, i0, i1) {
  const d = u.data[si];
  let n = 0;
  for (let k = i0; d && k <= i1 && n < 2; k++) if (d[k] != null) n++;
  return n === 1;
}

export const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2',
                        '#ca8a04', '#db2777', '#4b5563', '#65a30d'];

window.__anneald = window.__anneald || {charts: {}, lastRenderMs: null};

// Exponential moving average with the start-up bias removed (as TensorBoard smooths):
// s_t = a*s_{t-1} + (1-a)*x_t, shown as s_t / (1 - a^n) after n values. Nulls stay null and
// do not move the average. alpha 0 returns the input.
export function ema(values, alpha) {
  if (!alpha) return values;
  const out = new Array(values.length);
  let s = 0, w = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v == null || !Number.isFinite(v)) { out[i] = null; continue; }
    s = alpha * s + (1 - alpha) * v;
    w = alpha * w + (1 - alpha);
    out[i] = s / w;
  }
  return out;
}

// Keeps, for each of `buckets` equal runs of points, the first point and the points holding
// each series' minimum and maximum, so spikes survive. data = [x, y1, y2, ...] (aligned).
export function downsample(data, buckets) {
  const n = data[0].length;
  if (n <= buckets * 2) return data;
  const keep = [];
  const size = n / buckets;
  for (let b = 0; b < buckets; b++) {
    const lo = Math.floor(b * size), hi = Math.min(n, Math.floor((b + 1) * size));
    const idx = new Set([lo]);
    for (let k = 1; k < data.length; k++) {
      const ys = data[k];
      let mi = -1, ma = -1;
      for (let i = lo; i < hi; i++) {
        const v = ys[i];
        if (v == null) continue;
        if (mi < 0 || v < ys[mi]) mi = i;
        if (ma < 0 || v > ys[ma]) ma = i;
      }
      if (mi >= 0) { idx.add(mi); idx.add(ma); }
    }
    for (const i of [...idx].sort((a, c) => a - c)) keep.push(i);
  }
  if (keep[keep.length - 1] !== n - 1) keep.push(n - 1);
  return data.map((arr) => keep.map((i) => arr[i]));
}

// Index of the first element of sorted `arr` that is >= v.
export function lowerBound(arr, v) {
  let lo = 0, hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (arr[mid] < v) lo = mid + 1; else hi = mid;
  }
  return lo;
}

function fmtTick(v) {
  if (v == null) return '';
  const a = Math.abs(v);
  if (a === 0) return '0';
  // Learning rates live around 1e-5..1e-1: exponent form keeps ticks apart (0.001 vs 0).
  if (a < 1e-2 || a >= 1e5) return v.toExponential(1).replace('e+', 'e').replace('.0e', 'e');
  return String(Number(v.toPrecision(3)));
}

// "1.500" -> "1.5", "2.000" -> "2"; integers keep their zeros ("500").
function trimZeros(t) {
  return t.includes('.') ? t.replace(/0+$/, '').replace(/\.$/, '') : t;
}

function fmtStep(v) {
  if (v == null) return '';
  const a = Math.abs(v);
  if (a >= 1e6) return trimZeros((v / 1e6).toPrecision(4)) + 'M';
  if (a >= 1e3) return trimZeros((v / 1e3).toPrecision(4)) + 'k';
  return String(Math.round(v * 100) / 100);
}

function fmtElapsed(v) {
  if (v == null) return '';
  if (v < 1) return (v * 1000).toPrecision(2) + 'ms';
  if (v < 120) return Number(v.toPrecision(3)) + 's';
  if (v < 7200) return Number((v / 60).toPrecision(3)) + 'm';
  return Number((v / 3600).toPrecision(3)) + 'h';
}

// Series styles of an lr chart: the first `groups` labels are learning rates (solid, left
// scale), the rest momentum (dashed, right scale).
export function lrSeries(labels, groups) {
  return labels.map((label, k) => (k < groups
    ? {label, color: PALETTE[(k + 2) % PALETTE.length]}
    : {label, color: PALETTE[(k - groups + 4) % PALETTE.length], dash: [5, 4], scale: 'y2'}));
}

export const XMODES = {step: 'step', elapsed: 'elapsed time', wall: 'wall clock'};

// A chart in `el`. opts: {name (key in window.__anneald.charts), title, xmode, xLabel, xTicks, logX, logY,
// height, series: [{label, color, width, dash, points, scale, show, stepped, line}], yLabel,
// y2Label, y2Log, onZoom(xmin, xmax), onReset(), onDraw()}. stepped: a step line (a value
// holds until the next); line false: points only (marks). xTicks: names of the x positions
// 0, 1, 2… (a parameter's choices): the axis has a tick at each, named, and nothing between.
export class LineChart {
  constructor(el, opts) {
    this.el = el;
    this.opts = {xmode: 'step', logX: false, logY: false, height: 260, ...opts};
    this.raw = null;
    this.u = null;
    this.zoomed = null;
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(el);
  }

  // Changes x mode or log scales; the chart is rebuilt with the same data.
  configure(patch) {
    Object.assign(this.opts, patch);
    this.zoomed = null;
    this.build();
  }

  // data = [x, y1, y2, ...] aligned arrays. keepZoom keeps the current x range (live appends
  // while the user looks at a zoomed part).
  setData(data, keepZoom) {
    this.raw = data;
    if (!this.u) { this.build(); return; }
    const shown = this.display(data);
    if (keepZoom && this.zoomed) {
      this.u.setData(shown, false);
      this.u.setScale('x', {min: this.zoomed[0], max: this.zoomed[1]});
    } else {
      this.zoomed = null;
      this.u.setData(shown, true);
    }
  }

  // On log scales, zero and negative values have no place: they become gaps.
  display(data) {
    const {logX, logY} = this.opts;
    if (!logX && !logY) return data;
    let x = data[0];
    let keep = null;
    if (logX) {
      keep = [];
      for (let i = 0; i < x.length; i++) if (x[i] > 0) keep.push(i);
    }
    return data.map((arr, k) => {
      let a = keep ? keep.map((i) => arr[i]) : arr;
      if (k > 0 && logY && this.opts.series[k - 1].scale !== 'y2') {
        a = a.map((v) => (v != null && v > 0 ? v : null));
      }
      return a;
    });
  }

  build() {
    if (this.u) { this.u.destroy(); this.u = null; }
    if (!this.raw) return;
    const o = this.opts;
    const width = Math.max(200, this.el.clientWidth || 600);
    const xIsTime = o.xmode === 'wall';
    const logX = o.logX && !xIsTime;
    const hasY2 = o.series.some((s) => s.scale === 'y2');
    const named = o.xTicks && o.xTicks.length ? o.xTicks : null;
    const nameOf = (v) => named[Math.round(v)] ?? '';
    const series = [{label: o.xLabel || XMODES[o.xmode] || o.xmode, // also 'lr': the lr finder's x
                     value: (u, v) => (v == null ? '—' : named ? nameOf(v) : xIsTime ? new Date(v * 1000).toLocaleTimeString()
                                        : o.xmode === 'elapsed' ? fmtElapsed(v)
                                        : o.xmode === 'lr' ? fmtTick(v) : fmtStep(v))}];
    o.series.forEach((s, i) => {
      series.push({
        label: s.label,
        stroke: s.color || PALETTE[i % PALETTE.length],
        width: s.width == null ? 1.5 : s.width,
        dash: s.dash,
        show: s.show !== false,
        scale: s.scale || 'y',
        // a null is a gap only where the table means one (metrics.js, breakGaps)
        spanGaps: !(o.gaps && o.xmode === 'wall'),
        paths: s.line === false ? () => null : s.stepped ? uPlot.paths.stepped({align: 1}) : undefined,
        points: s.points ? {show: true, size: s.line === false ? 7 : 5, fill: s.color}
          : {show: lonePoint, size: 5},
        value: (u, v) => (v == null ? '—' : fmtTick(v)),
      });
    });
    const axes = [
      named ? {values: (u, vals) => vals.map(nameOf), splits: () => named.map((_, i) => i),
               stroke: '#6b7280', grid: {stroke: '#e5e7eb'}, ticks: {stroke: '#e5e7eb'}} :
      {values: xIsTime ? undefined
         : (u, vals) => vals.map(o.xmode === 'elapsed' ? fmtElapsed : o.xmode === 'lr' ? fmtTick : fmtStep),
       stroke: '#6b7280', grid: {stroke: '#e5e7eb'}, ticks: {stroke: '#e5e7eb'}},
      {scale: 'y', label: o.yLabel, values: (u, vals) => vals.map(fmtTick), size: 58,
       stroke: '#6b7280', grid: {stroke: '#e5e7eb'}, ticks: {stroke: '#e5e7eb'}},
    ];
    if (hasY2) axes.push({scale: 'y2', side: 1, label: o.y2Label, values: (u, vals) => vals.map(fmtTick),
                          size: 50, stroke: '#6b7280', grid: {show: false}});
    const scales = {x: named ? {time: false, distr: 1, range: () => [-0.5, named.length - 0.5]}
                          : {time: xIsTime, distr: logX ? 3 : 1},
                    y: {distr: o.logY ? 3 : 1}};
    if (hasY2) scales.y2 = {distr: o.y2Log ? 3 : 1};
    let first = true;
    const uopts = {
      width, height: o.height, series, axes, scales,
      legend: {live: true},
      cursor: {sync: o.sync ? {key: o.sync} : undefined,
               drag: {x: true, y: false, setScale: false},
               bind: {dblclick: () => () => { this.resetZoom(); return null; }}},
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 3) return;
          const a = u.posToVal(u.select.left, 'x'), b = u.posToVal(u.select.left + u.select.width, 'x');
          u.setSelect({left: 0, top: 0, width: 0, height: 0}, false);
          this.zoomTo(a, b, true);
        }],
        draw: [() => { if (first) { first = false; if (o.onDraw) o.onDraw(); } }],
      },
    };
    this.u = new uPlot(uopts, this.display(this.raw), this.el);
    window.__anneald.charts[o.name] = this.u;
  }

  zoomTo(a, b, fromUser) {
    if (!this.u || !(b > a)) return;
    this.zoomed = [a, b];
    this.u.setScale('x', {min: a, max: b});
    if (fromUser && this.opts.onZoom) this.opts.onZoom(a, b);
  }

  resetZoom() {
    this.zoomed = null;
    if (this.opts.onReset) this.opts.onReset();
    else if (this.u) this.u.setData(this.u.data, true);
  }

  resize() {
    if (!this.u) return;
    const w = Math.max(200, this.el.clientWidth);
    if (Math.abs(w - this.u.width) > 1) this.u.setSize({width: w, height: this.opts.height});
  }

  destroy() {
    this.ro.disconnect();
    if (this.u) this.u.destroy();
    this.u = null;
    if (window.__anneald.charts[this.opts.name]) delete window.__anneald.charts[this.opts.name];
  }
}
