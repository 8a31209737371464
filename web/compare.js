// Compare (#/compare?ids=j_1,j_2): pick several jobs and overlay their loss and lr curves,
// with the same x-axis, log and smoothing controls as a job page. Live over /v1/events.
import {h, toast, stateBadge, fmtNum} from './util.js';
import {api, openEvents} from './api.js';
import {LineChart, PALETTE, XMODES, ema} from './charts.js';
import {FULL_LIMIT, MAX_POINTS, fetchMetrics} from './metrics.js';

export function mount(root, route) {
  let gone = false;
  const ids = (route.query.get('ids') || '').split(',').filter(Boolean);
  const selected = new Set(ids);
  const metrics = new Map();       // id -> metrics
  const jobs = new Map();          // id -> job
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

  root.append(h('section.page#page-compare', null,
    h('div.toolbar', null, h('h1', {text: 'Compare'})),
    h('div.compare-grid', null,
      h('div.card', null, h('h2', {text: 'Jobs'}), picker),
      h('div.card', null,
        h('div.controls', null, xsel, h('label', null, logx, ' log x'), h('label', null, logy, ' log y'),
          h('label.smooth', null, 'smoothing ', smooth)),
        empty, h('h2', {text: 'Loss'}), lossEl, h('h2', {text: 'Learning rate'}), lrEl))));

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
      const x = opts.xmode === 'step' ? m.step : m.time;
      const name = (jobs.get(id) && jobs.get(id).name) || id;
      lossT.push([x, ema(m.loss, opts.alpha)]);
      lossS.push({label: `${id} ${name}`, color: color(id)});
      m.lr.forEach((g, k) => {
        lrT.push([x, g]);
        lrS.push({label: `${id}` + (m.lr.length > 1 ? ` group ${k}` : ''), color: color(id), dash: k ? [4, 3] : undefined});
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
    empty.hidden = selected.size >= 2;
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
      if (!gone) toast(`${id}: ${e.message}`, 'error');
    }
  }

  function setUrl() {
    history.replaceState(null, '', '#/compare' + (selected.size ? '?ids=' + [...selected].join(',') : ''));
  }

  function renderPicker(list) {
    picker.replaceChildren(...list.map((j) => {
      const box = h('input', {type: 'checkbox', checked: selected.has(j.id), 'data-testid': 'compare-pick',
                              'data-job-id': j.id,
        onchange: async () => {
          if (box.checked) { selected.add(j.id); jobs.set(j.id, j); await loadJob(j.id); } else selected.delete(j.id);
          setUrl();
          renderPicker(list);
          redraw();
        }});
      return h('label.pick', {style: selected.has(j.id) ? `border-left-color:${color(j.id)}` : ''}, box,
        h('span.pick-name', {text: `${j.name || j.id}`}), h('span.muted.small', {text: j.id}),
        stateBadge(j.state), h('span.muted.small', {text: 'loss ' + fmtNum(j.loss)}));
    }));
  }

  const pending = new Map();
  openEvents('/v1/events', {
    progress(ev) {
      if (!selected.has(ev.id) || pending.has(ev.id)) return;
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
    let list = [];
    try {
      list = (await api('GET', '/v1/jobs?limit=200')).jobs || [];
    } catch (e) { toast('jobs: ' + e.message, 'error'); }
    if (gone) return;
    for (const j of list) jobs.set(j.id, j);
    for (const id of ids) if (!list.some((j) => j.id === id)) list.push({id, state: '?'});
    renderPicker(list);
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
