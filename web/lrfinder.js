// The learning-rate finder of a job (#/lrfinder/ID): its loss and smoothed loss against the lr
// (log x) from GET /v1/jobs/{id}/lr_finder, the three suggestions marked on the curve, and a
// button per suggestion that opens the New-job form with the job's spec at that lr. A finder
// still running is followed over the job's event stream and drawn as it goes.
import {h, fmtNum, toast, throttle} from './util.js';
import {api, openEvents, closeEvents, ApiError} from './api.js';
import {LineChart, lowerBound} from './charts.js';

const RULES = {
  steepest: 'where the smoothed loss falls fastest against log(lr)',
  valley: 'halfway through the longest descent of the smoothed loss',
  minimum_div_10: 'the lr of the lowest smoothed loss, divided by 10',
};
const COLORS = {steepest: '#dc2626', valley: '#16a34a', minimum_div_10: '#9333ea'};

// The part of a run a loss-against-lr chart can show: after the steps at lr 0 it may start
// with (a warm-up from 0), as long as the lr grows step by step. [start, end) of the arrays.
export function sweepWindow(lr) {
  let s = 0;
  while (s < lr.length && !(lr[s] > 0)) s++;
  let e = Math.min(s + 1, lr.length);
  while (e < lr.length && lr[e] > lr[e - 1]) e++;
  return [s, e];
}
const MIN_SWEEP = 10;   // fewer growing steps than this are no sweep to read

// The smoothed loss at lr v, which would go before row i: on the line between the finite
// values either side (linear in log(lr)), or the nearest one past either end.
export function onCurve(x, y, i, v) {
  let lo = i - 1, hi = i;
  while (lo >= 0 && !Number.isFinite(y[lo])) lo--;
  while (hi < x.length && !Number.isFinite(y[hi])) hi++;
  if (lo < 0) return hi < x.length ? y[hi] : null;
  if (hi >= x.length) return y[lo];
  const t = Math.log(v / x[lo]) / Math.log(x[hi] / x[lo]);
  return y[lo] + t * (y[hi] - y[lo]);
}

// The report's caveats (the service judges them: core/lrfind_caveats.c), as the page lists
// them: [{key, text, affects: [suggestion names]}]. The message starts lower-case, as every
// error of the API does; here it opens a sentence.
export function caveats(rep) {
  return (rep.caveats || []).map((c) => ({key: c.code, affects: c.affects,
    text: c.message.charAt(0).toUpperCase() + c.message.slice(1) + '.'}));
}

export function mount(root, route) {
  const id = route.parts[1];
  let gone = false;
  const chartEl = h('div.chart#chart-lrfinder', {'data-testid': 'chart-lrfinder'});
  const msg = h('p.muted.small#lrfinder-status', {'data-testid': 'lrfinder-status', text: 'reading the sweep…'});
  const notes = h('ul.warnings#lrfinder-caveats', {'data-testid': 'lrfinder-caveats', hidden: true});
  const picks = h('div.lrf-picks#lrfinder-picks', {'data-testid': 'lrfinder-picks'});
  root.append(h('section.page#page-lrfinder', {'data-job-id': id},
    h('div.toolbar', null, h('h1', {text: 'Learning-rate finder'}), h('span.grow'),
      h('a', {href: '#/job/' + encodeURIComponent(id), text: '← ' + id})),
    h('div.card', null, chartEl, msg),
    h('div.card', null, h('h2', {text: 'Suggestions'}), notes, picks)));
  const chart = new LineChart(chartEl, {name: 'lrfinder', xmode: 'lr', logX: true, height: 340,
                                        yLabel: 'loss', series: []});
  let job = null;
  const live = () => job && job.kind === 'lr_finder' && (job.state === 'queued' || job.state === 'running');
  const fail = (e) => { if (!gone) { msg.textContent = 'lr finder: ' + e.message; msg.classList.add('error'); } };

  // Reads the report and draws it. Any job can be read as a sweep (an LRRangeTest schedule is
  // one), but only where its lr grows: the analysis, suggestions included, is asked for that
  // part alone.
  async function read() {
    const path = `/v1/jobs/${encodeURIComponent(id)}/lr_finder`;
    let rep = await api('GET', path);
    if (gone) return;
    const running = live();
    const progress = running ? `sweeping: step ${job.step || 0} of ${job.total_steps} (${job.state})… ` : '';
    const [s0, e0] = sweepWindow(rep.lr);
    if (e0 - s0 < MIN_SWEEP) {
      picks.replaceChildren();
      notes.hidden = true;
      if (running) { msg.textContent = progress.trim(); return; }   // too early to draw
      msg.textContent = `${id} is not a learning-rate sweep: its lr grows step by step for ` +
        `${e0 - s0} step${e0 - s0 === 1 ? '' : 's'} only. Start one from New job ("Find a learning rate").`;
      picks.append(h('p.empty', {text: 'No suggestions: there is no sweep to read them from.'}));
      return;
    }
    const cut = s0 > 0 || e0 < rep.lr.length;
    if (cut) {
      rep = await api('GET', `${path}?from=${rep.from + s0}&to=${rep.from + e0 - 1}`);
      if (gone) return;
    }
    draw(rep, cut, progress);
  }

  function draw(rep, cut, progress) {
    // up to the step the loss diverged at (included): what comes after only squashes the scale
    const n = rep.diverged_at == null ? rep.lr.length : rep.diverged_at + 1;
    const x = rep.lr.slice(0, n);
    const smoothed = rep.smoothed.slice(0, n);
    // raw losses drawn up to 1.5× the smoothed curve's top: a single spike would flatten it
    const cap = 1.5 * Math.max(...smoothed.filter(Number.isFinite));
    const loss = rep.loss.slice(0, n).map((v) => (Number.isFinite(v) ? Math.min(v, cap) : null));
    const sug = rep.suggestions || {};
    const keys = Object.keys(RULES).filter((k) => sug[k] != null);
    // A suggestion between two steps of the sweep (minimum/10 mostly is) gets a row of its own,
    // marked on the smoothed curve (interpolated on log(lr)) like those at a step.
    const at = new Map();
    for (const v of keys.map((k) => sug[k])) {
      if (!(v > 0) || x.includes(v)) continue;
      const i = lowerBound(x, v);
      at.set(v, onCurve(x, smoothed, i, v));
      x.splice(i, 0, v);
      smoothed.splice(i, 0, null);
      loss.splice(i, 0, null);
    }
    const mark = (v) => {
      const a = new Array(x.length).fill(null);
      const i = x.indexOf(v);
      if (i >= 0) a[i] = at.has(v) ? at.get(v) : smoothed[i];
      return a;
    };
    chart.opts.series = [
      {label: 'loss', color: '#9ca3af', width: 1},
      {label: 'smoothed', color: '#2563eb', width: 2},
      ...keys.map((k) => ({label: k, color: COLORS[k], width: 2, points: true, line: false})),
    ];
    chart.raw = [x, loss, smoothed, ...keys.map((k) => mark(sug[k]))];
    chart.build();
    window.__anneald.lrfinder = rep;
    msg.textContent = progress + `${rep.lr.length.toLocaleString('en-US')} steps read` +
      (cut ? ` (steps ${rep.from} to ${rep.to}: where the lr grows)` : '') +
      (rep.stopped_early ? `; the loss diverged at step ${rep.diverged_at + 1} (lr ${fmtNum(rep.lr[rep.diverged_at])}):` +
                           ' the chart and the suggestions end there' : '');
    picks.replaceChildren();
    if (!keys.length) {
      notes.hidden = true;
      picks.append(h('p.empty', {text: progress ? 'No suggestions yet: too few steps read.'
        : 'Too few steps before the loss diverged to suggest a learning rate.'}));
      return;
    }
    // a sweep still running may yet end elsewhere: what it would suggest now is said so
    const found = progress ? [] : caveats(rep);
    window.__anneald.lrfinderCaveats = found;
    notes.replaceChildren(...found.map((c) => h('li', {'data-testid': 'caveat-' + c.key, text: c.text})));
    notes.hidden = !found.length;
    if (progress) picks.append(h('p.muted.small', {text: 'So far: the sweep is still running, and these may change.'}));
    for (const k of keys) {
      const why = found.filter((c) => c.affects.includes(k)).map((c) => c.key);
      picks.append(h('div.lrf-pick', {'data-testid': 'lrf-' + k},
        h(`span.swatch.lrf-${k}`),
        h('b', {text: k.replace(/_/g, ' ') + ' '}),
        h('code', {text: fmtNum(sug[k])}),
        why.length ? h('span.lrf-caveat', {'data-testid': 'lrf-caveat-' + k, title: why.join(', '),
          text: why.includes('unbounded') ? '⚠ no floor: not advice' : why.includes('noisy') ? '⚠ may be noise'
            : '⚠ the sweep ended first'}) : null,
        h('span.muted.small', {text: ' — ' + RULES[k] + ' '}),
        h(`button#use-${k}`, {'data-testid': 'use-' + k, text: 'Use this lr',
          onclick: () => { location.hash = `#/new?from=${encodeURIComponent(id)}&lr=${sug[k]}`; }})));
    }
  }

  // One read at a time; a call meanwhile reads once more after it.
  let busy = false, again = false;
  async function reread() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      do { again = false; await read(); } while (again && !gone);
    } catch (e) { fail(e); } finally { busy = false; }
  }
  // a running finder's progress events: the report read again at most once a second
  const follow = throttle(reread, 1000);
  let readState = null;   // the job's state at the last read
  async function refresh() {
    try { job = await api('GET', `/v1/jobs/${encodeURIComponent(id)}`); } catch { return; }
    if (gone) return;
    // a finder is followed as it runs; any other job is read again only when its state changed
    if (live() || job.state !== readState) { readState = job.state; follow(); }
  }

  (async () => {
    try { job = await api('GET', `/v1/jobs/${encodeURIComponent(id)}`); } catch (e) { fail(e); return; }
    if (gone) return;
    readState = job.state;
    openEvents(`/v1/jobs/${encodeURIComponent(id)}/events`, {
      // what changed before the stream started (or while it reconnected)
      open: refresh,
      async exists() {
        try { await api('GET', `/v1/jobs/${encodeURIComponent(id)}`); return true; } catch (e) {
          if (e instanceof ApiError && e.status === 404) return false;
          throw e;
        }
      },
      gone() {
        if (gone) return;
        for (const b of root.querySelectorAll('#lrfinder-picks button')) b.disabled = true;
        msg.textContent = `Job ${id} was deleted; what this page shows is all that is left of it.`;
      },
      progress(ev) {
        if (ev.id && ev.id !== id) return;
        Object.assign(job, {step: ev.step});
        if (ev.total_steps != null) job.total_steps = ev.total_steps;   // a finder ends early
        if (job.state === 'queued') job.state = 'running';
        if (live()) follow();
      },
      state(ev) {
        if (ev.id && ev.id !== id) return;
        refresh();
      },
      deleted(ev) { if (ev.id === id) { closeEvents(); this.gone(); } },
    });
    await reread();
  })().catch((e) => toast('lr finder: ' + e.message, 'error'));

  return () => { gone = true; follow.cancel(); chart.destroy(); };
}
