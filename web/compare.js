// Compare (#/compare?ids=j_1,j_2): pick several jobs and overlay their loss and lr curves,
// with the same x-axis, log and smoothing controls as a job page. Live over /v1/events. A job
// deleted (before the page opened or while it watched) is said to be gone, its curves dropped.
import {h, toast, stateBadge, fmtNum} from './util.js';
import {api, openEvents, ApiError} from './api.js';
import {LineChart, PALETTE, XMODES, ema} from './charts.js';
import {FULL_LIMIT, MAX_POINTS, fetchMetrics, xFor, timedRows} from './metrics.js';

// a job's lr groups: one colour per job, one dash pattern per group
const GROUP_DASH = [undefined, [6, 3], [2, 3], [8, 3, 2, 3], [1, 6]];

export function mount(root, route) {
  let gone = false;
  const ids = (route.query.get('ids') || '').split(',').filter(Boolean);
  const selected = new Set(ids);
  const metrics = new Map();       // id -> metrics
  const jobs = new Map();          // id -> job
  const deleted = new Set();       // ids the daemon no longer has
  let list = [];                   // the picker's jobs
  const pending = new Map();       // id -> timer of its curve's next read
  const opts = {xmode: 'step', logX: false, logY: false, alpha: 0};

  const picker = h('div.picker#compare-picker', {'data-testid': 'compare-picker'});
  const xsel = h('select#cmp-x-mode', {'aria-label': 'x axis', onchange: () => { opts.xmode = xsel.value; rebuild(); }},
    ['step', 'elapsed'].map((k) => h('option', {value: k, text: 'x: ' + XMODES[k]})));
  const logx = h('input#cmp-log-x', {type: 'checkbox', onchange: () => { opts.logX = logx.checked; rebuild(); }});
  const logy = h('input#cmp-log-y', {type: 'checkbox', onchange: () => { opts.logY = logy.checked; rebuild(); }});
  const smooth = h('input#cmp-smoothing', {type: 'range', min: 0, max: 0.999, step: 0.001, value: 0,
    'aria-label': 'smoothing', oninput: () => { opts.alpha = Number(smooth.value); redraw(); }});
  const lossEl = h('div.chart#chart-compare-loss', {'data-testid': 'chart-compare-loss'});
  const lrEl = h('div.chart#chart-compare-lr', {'data-testid': 'chart-compare-lr'});
  const empty = h('p.empty#compare-empty', {text: 'Pick two or more jobs to overlay their curves.'});
  const goneNote = h('p.alert#compare-gone', {hidden: true, 'data-testid': 'compare-gone'});

  root.append(h('section.page#page-compare', null,
    h('div.toolbar', null, h('h1', {text: 'Compare'})),
    h('div.compare-grid', null,
      h('div.card', null, h('h2', {text: 'Jobs'}), picker),
      h('div.card', null,
        h('div.controls', null, xsel, h('label', null, logx, ' log x'), h('label', null, logy, ' log y'),
          h('label.smooth', null, 'smoothing ', smooth)),
        goneNote, empty, h('h2', {text: 'Loss'}), lossEl, h('h2', {text: 'Learning rate'}), lrEl))));

  const lossChart = new LineChart(lossEl, {name: 'compareLoss', yLabel: 'loss', sync: 'cmp', series: []});
  const lrChart = new LineChart(lrEl, {name: 'compareLr', yLabel: 'lr', sync: 'cmp', series: []});

  function color(id) {
    return PALETTE[[...selected].indexOf(id) % PALETTE.length];
  }

  // Each job has its own steps: join them on one x axis (uPlot.join leaves gaps, spanned).
  function tables() {
    const lossT = [], lrT = [], lossS = [], lrS = [];
    for (const id of selected) {
      const m = metrics.get(id);
      if (!m || !m.step.length) continue;
      const x = xFor(m, m.step, opts.xmode, 0);
      const name = (jobs.get(id) && jobs.get(id).name) || id;
      lossT.push(timedRows([x, ema(m.loss, opts.alpha)]));
      lossS.push({label: `${id} ${name}`, color: color(id)});
      m.lr.forEach((g, k) => {
        lrT.push(timedRows([x, g]));
        lrS.push({label: `${id}` + (m.lr.length > 1 ? ` group ${k}` : ''), color: color(id), dash: GROUP_DASH[k % GROUP_DASH.length]});
      });
    }
    return {lossT, lrT, lossS, lrS};
  }

  function join(ts) {
    if (!ts.length) return [[]];
    if (ts.length === 1) return ts[0];
    return uPlot.join(ts);
  }

  function redraw() {
    const {lossT, lrT, lossS, lrS} = tables();
    const lost = [...selected].filter((id) => deleted.has(id));
    empty.hidden = selected.size - lost.length >= 2;
    goneNote.hidden = !lost.length;
    goneNote.textContent = lost.length
      ? `${lost.join(', ')}: no such job (${lost.length > 1 ? 'they were' : 'it was'} deleted, or never was): no curves to show.` : '';
    for (const [c, T, S] of [[lossChart, lossT, lossS], [lrChart, lrT, lrS]]) {
      const sig = S.map((s) => s.label).join('|');
      if (sig !== c.sig) {
        c.sig = sig;
        c.opts.series = S;
        c.raw = join(T);
        c.build();
      } else c.setData(join(T), true);
    }
  }

  function rebuild() {
    for (const c of [lossChart, lrChart]) { c.opts = {...c.opts, ...opts}; c.sig = null; }
    redraw();
  }

  async function loadJob(id) {
    try {
      const j = jobs.get(id) || await api('GET', `/v1/jobs/${encodeURIComponent(id)}`);
      jobs.set(id, j);
      const full = (j.step || 0) <= FULL_LIMIT;
      const m = await fetchMetrics(id, full ? {} : {maxPoints: MAX_POINTS});
      if (gone) return;
      metrics.set(id, m);
    } catch (e) {
      if (gone) return;
      if (e instanceof ApiError && e.status === 404) markDeleted(id);
      else toast(`${id}: ${e.message}`, 'error');
    }
  }

  // The daemon has no job `id` any more: its curves go, and the picker and a note say so.
  function markDeleted(id) {
    deleted.add(id);
    metrics.delete(id);
    clearTimeout(pending.get(id));
    pending.delete(id);
    const j = list.find((x) => x.id === id);
    if (j) j.state = 'deleted';
    if (gone) return;
    renderPicker();
    redraw();
  }

  function setUrl() {
    history.replaceState(null, '', '#/compare' + (selected.size ? '?ids=' + [...selected].join(',') : ''));
  }

  function renderPicker() {
    picker.replaceChildren(...list.map((j) => {
      const box = h('input', {type: 'checkbox', checked: selected.has(j.id), 'data-testid': 'compare-pick',
                              'data-job-id': j.id, disabled: deleted.has(j.id) && !selected.has(j.id),
        onchange: async () => {
          if (box.checked) { selected.add(j.id); jobs.set(j.id, j); await loadJob(j.id); } else selected.delete(j.id);
          setUrl();
          renderPicker();
          redraw();
        }});
      return h('label.pick', {style: selected.has(j.id) ? `border-left-color:${color(j.id)}` : ''}, box,
        h('span.pick-name', {text: `${j.name || j.id}`}), h('span.muted.small', {text: j.id}),
        stateBadge(j.state), h('span.muted.small', {text: 'loss ' + fmtNum(j.loss)}));
    }));
  }

  openEvents('/v1/events', {
    deleted(ev) { if (list.some((j) => j.id === ev.id) || selected.has(ev.id)) markDeleted(ev.id); },
    progress(ev) {
      if (!selected.has(ev.id) || pending.has(ev.id) || deleted.has(ev.id)) return;
      // Re-fetch a compared job's curve at most every 2 s while it trains.
      pending.set(ev.id, setTimeout(async () => {
        jobs.delete(ev.id);
        await loadJob(ev.id);
        pending.delete(ev.id);
        if (!gone) redraw();
      }, 2000));
    },
  });

  (async () => {
    try {
      list = (await api('GET', '/v1/jobs?limit=200')).jobs || [];
    } catch (e) { toast('jobs: ' + e.message, 'error'); }
    if (gone) return;
    for (const j of list) jobs.set(j.id, j);
    for (const id of ids) if (!list.some((j) => j.id === id)) list.push({id, state: '?'});
    renderPicker();
    await Promise.all(ids.map(loadJob));
    if (!gone) redraw();
  })();

  return () => {
    gone = true;
    for (const t of pending.values()) clearTimeout(t);
    lossChart.destroy();
    lrChart.destroy();
  };
}
