// Sweeps: the list (#/sweeps) with a form to start one, and a sweep's page (#/sweep/ID): its
// trials table (parameters, state, metric, the rung where ASHA stopped it), the metric of every
// trial against its steps, and each parameter against the metric. Live over /v1/events
// (`sweep` events and the trials' `state` events).
import {h, fmtNum, fmtTime, stateBadge, debounce, throttle, toast} from './util.js';
import {api, openEvents, setting, keepSetting} from './api.js';
import {LineChart, PALETTE} from './charts.js';

const EXAMPLE = {
  name: 'digits-lr',
  base: {
    seed: 7, model: {type: 'mlp', inputs: 64, hidden: [32], outputs: 10}, loss: 'cross_entropy',
    data: {type: 'builtin', name: 'digits'}, steps: 1800, validation: {fraction: 0.2, every_steps: 50},
    ds_config: {train_batch_size: 32, optimizer: {type: 'AdamW', params: {lr: 0.001, weight_decay: 0.01}}},
  },
  parameters: {'ds_config.optimizer.params.lr': {log_uniform: [1e-4, 1e-1]},
               'ds_config.optimizer.params.weight_decay': [0, 0.01, 0.1]},
  search: 'random', trials: 12, metric: 'val_loss', mode: 'min', max_concurrent: 2,
  early_stopping: {type: 'asha', min_steps: 200, reduction_factor: 3},
};

function sweepBadge(state) {
  return h(`span.badge.sw-${state}`, {'data-testid': 'sweep-state', text: state});
}

// ---- #/sweeps ------------------------------------------------------------------------------

function mountList(root) {
  let gone = false;
  const tbody = h('tbody');
  const empty = h('p.empty#sweeps-empty', {hidden: true, text: 'No sweeps yet: start one below.'});
  const editor = h('textarea#sweep-editor.code', {'data-testid': 'sweep-editor', rows: 22, spellcheck: 'false',
                                                   'aria-label': 'sweep JSON'});
  editor.value = JSON.stringify(EXAMPLE, null, 2);
  const err = h('p.error.small#sweep-error', {'data-testid': 'sweep-error', hidden: true});
  const submit = h('button.primary#sweep-submit', {'data-testid': 'sweep-submit', text: 'Start sweep',
    onclick: async () => {
      err.hidden = true;
      let body;
      try { body = JSON.parse(editor.value); } catch (e) {
        err.textContent = 'not JSON: ' + e.message;
        err.hidden = false;
        return;
      }
      submit.disabled = true;
      try {
        const s = await api('POST', '/v1/sweeps', body);
        toast(`sweep ${s.id} started: ${s.trial_count} trials`);
        location.hash = '#/sweep/' + encodeURIComponent(s.id);
      } catch (e) {
        err.textContent = (e.field ? e.field + ': ' : '') + e.message;
        err.hidden = false;
      } finally { submit.disabled = false; }
    }});
  root.append(h('section.page#page-sweeps', null,
    h('div.toolbar', null, h('h1', {text: 'Sweeps'})),
    h('div.card.table-wrap', null,
      h('table.jobs#sweeps-table', {'data-testid': 'sweeps-table'},
        h('thead', null, h('tr', null, h('th', {text: 'Sweep'}), h('th', {text: 'State'}),
          h('th.num', {text: 'Trials'}), h('th', {text: 'Metric'}), h('th.num', {text: 'Best'}),
          h('th', {text: 'Created'}))),
        tbody), empty),
    h('div.card', null, h('h2', {text: 'New sweep'}),
      h('p.muted.small', null, 'A base job spec, the JSON paths to vary and how (docs/EXPERIMENTS.md).'),
      editor, err, h('div.actions', null, submit))));

  async function load() {
    let list;
    try { list = await api('GET', '/v1/sweeps'); } catch (e) { if (!gone) toast('sweeps: ' + e.message, 'error'); return; }
    if (gone) return;
    empty.hidden = list.sweeps.length > 0;
    tbody.replaceChildren(...list.sweeps.map((s) => h('tr', {'data-sweep-id': s.id},
      h('td.name', null, h('a', {href: '#/sweep/' + encodeURIComponent(s.id), text: s.name || s.id}),
        h('span.muted.small', {text: ' ' + s.id})),
      h('td', null, sweepBadge(s.state)),
      h('td.num', {text: `${s.trials_started}/${s.trial_count}`}),
      h('td', {text: `${s.metric} (${s.mode})`}),
      h('td.num', {text: s.best ? fmtNum(s.best.metric) : '—'}),
      h('td', {text: fmtTime(s.created_at)}))));
  }
  const reload = debounce(load, 300);
  // open: after a reconnect the stream replays no sweep events: read the list again
  openEvents('/v1/events', {sweep: reload, open: reload, deleted: reload});
  load();
  return () => { gone = true; };
}

// ---- #/sweep/ID ----------------------------------------------------------------------------

// A parameter's values as numbers on an axis: numbers as they are, anything else (a choice
// of strings) by its position among the distinct values, whose names label the axis' ticks
// (a string as it is, anything else as JSON). `choices`: the values the sweep lists, in
// its order, so that every chart of it puts them in the same places.
export function axisOf(values, choices) {
  if (values.every((v) => typeof v === 'number')) return {x: values, labels: null};
  const key = (v) => JSON.stringify(v);
  const distinct = [...new Set([...(choices || []), ...values].map(key))];
  return {x: values.map((v) => distinct.indexOf(key(v))),
          labels: distinct.map((k) => { const v = JSON.parse(k); return typeof v === 'string' ? v : k; })};
}

const LOGY_KEY = 'anneald.sweepLogY';

function mountOne(root, id) {
  let gone = false;
  let sweep = null, missing = false;
  const curves = new Map();         // job id -> {x, y, step} of the metric
  const head = h('div.sweep-head#sweep-head', {'data-testid': 'sweep-head'});
  const cancelBtn = h('button#sweep-cancel', {'data-testid': 'sweep-cancel', text: 'Cancel sweep',
    onclick: async () => {
      try { await api('POST', `/v1/sweeps/${encodeURIComponent(id)}/cancel`, {}); toast(`sweep ${id} cancelled`); load(); } catch (e) { toast(e.message, 'error'); }
    }});
  // trials that could not start (a data set uploaded since) start again; shown only when some did
  const retryBtn = h('button#sweep-retry', {'data-testid': 'sweep-retry', text: 'Retry trials that could not start', hidden: true,
    onclick: async () => {
      try { await api('POST', `/v1/sweeps/${encodeURIComponent(id)}/retry`, {}); toast(`sweep ${id}: trials retried`); load(); } catch (e) { toast(e.message, 'error'); }
    }});
  const deleteBtn = h('button.danger#sweep-delete', {'data-testid': 'sweep-delete', text: 'Delete',
    onclick: async () => {
      if (!confirm(`Delete sweep ${id} and every trial job of it?`)) return;
      try { await api('DELETE', `/v1/sweeps/${encodeURIComponent(id)}`); toast(`sweep ${id} deleted`); location.hash = '#/sweeps'; } catch (e) { toast(e.message, 'error'); }
    }});
  const thead = h('thead');
  const tbody = h('tbody');
  const metricEl = h('div.chart#chart-sweep-metric', {'data-testid': 'chart-sweep-metric'});
  const scatterWrap = h('div.sweep-scatter#sweep-scatter', {'data-testid': 'sweep-scatter'});
  // losses span decades: the metric's axis, on every chart of the page, may be logarithmic
  let logY = setting(LOGY_KEY, '0') === '1';
  const logyBox = h('input#sweep-log-y', {type: 'checkbox', 'data-testid': 'sweep-log-y', checked: logY,
    onchange: () => {
      logY = logyBox.checked;
      keepSetting(LOGY_KEY, logY ? '1' : '0');
      if (sweep) { drawCurves(sweep); drawScatter(sweep); }
    }});
  root.append(h('section.page#page-sweep', {'data-sweep-id': id},
    h('div.toolbar', null, h('h1', {text: 'Sweep'}), h('span.muted', {text: id}), h('span.grow'),
      retryBtn, cancelBtn, deleteBtn, h('a', {href: '#/sweeps', text: '← sweeps'})),
    h('div.card', null, head),
    h('div.card.table-wrap', null, h('h2', {text: 'Trials (completed first, best first)'}),
      h('table.jobs#sweep-trials', {'data-testid': 'sweep-trials'}, thead, tbody)),
    h('div.card', null, h('div.toolbar', null, h('h2#sweep-metric-title', {text: 'Metric of every trial'}),
      h('span.grow'), h('label.small', null, logyBox, ' log y')), metricEl),
    h('div.card', null, h('h2', {text: 'Parameters against the metric'}), scatterWrap)));
  const metricChart = new LineChart(metricEl, {name: 'sweepMetric', yLabel: 'metric', series: []});
  const scatters = [];

  // A swept value as the table shows it: a number in short, a name as it is, anything else
  // (true, null, an object) as JSON.
  const paramText = (v) => typeof v === 'number' ? fmtNum(v) : typeof v === 'string' ? v : JSON.stringify(v);

  function renderHead(s) {
    const es = s.early_stopping;
    head.replaceChildren(
      h('div', null, h('strong', {text: s.name || s.id}), ' ', sweepBadge(s.state)),
      h('div.muted.small', {text: `${s.search} search · ${s.trials_started} of ${s.trial_count} trials started · ` +
        `metric ${s.metric} (${s.mode}) · at most ${s.max_concurrent} at once` +
        (es ? ` · ASHA from ${es.min_steps} steps, reduction ${es.reduction_factor}` : '')}),
      s.best
        ? h('div.best#sweep-best', {'data-testid': 'sweep-best'}, 'Best: trial ', String(s.best.trial), ' (',
            h('a', {href: '#/job/' + encodeURIComponent(s.best.job), text: s.best.job}), `) ${s.metric} ${fmtNum(s.best.metric)} with `,
            Object.entries(s.best.params).map(([k, v]) => `${k} = ${paramText(v)}`).join(', '))
        : h('div.muted#sweep-best', {'data-testid': 'sweep-best', text: 'No trial has a value yet.'}));
    cancelBtn.disabled = s.state !== 'running';
    deleteBtn.disabled = s.state === 'running';
    retryBtn.hidden = s.state === 'cancelled' || !s.trials.some((t) => t.state === 'not_started');
  }

  function renderTrials(s) {
    const keys = Object.keys((s.trials[0] && s.trials[0].params) || {});
    thead.replaceChildren(h('tr', null, h('th', {text: '#'}), keys.map((k) => h('th', {text: k.split('.').pop(), title: k})),
      h('th', {text: 'State'}), h('th.num', {text: s.metric}), h('th.num', {text: 'Step'}),
      h('th.num', {text: 'Stopped at'}), h('th', {text: 'Job'})));
    tbody.replaceChildren(...s.trials.map((t, rank) => h('tr', {'data-trial': t.trial, class: rank === 0 && s.best && s.best.trial === t.trial ? 'best' : null},
      h('td', {text: String(t.trial)}),
      keys.map((k) => h('td.num', {'data-param': k, text: paramText(t.params[k])})),
      h('td', null, t.state === 'pending' || t.state === 'not_started'
        ? h('span.badge.st-queued', {text: t.state, title: t.error || ''}) : stateBadge(t.state)),
      h('td.num', {text: fmtNum(t.metric)}),
      h('td.num', {text: String(t.step || 0)}),
      h('td.num', {text: t.stopped_at == null ? '' : String(t.stopped_at)}),
      h('td', null, t.job ? h('a', {href: '#/job/' + encodeURIComponent(t.job), text: t.job}) : (t.error || '')))));
  }

  async function loadCurve(t, metric) {
    // the loss of every step would be many points: 500 per trial draw it well; validation
    // points are never thinned, so a val_* metric asks for the fewest steps beside them
    const q = metric === 'loss' ? '?max_points=500' : '?max_points=2';
    const m = await api('GET', `/v1/jobs/${encodeURIComponent(t.job)}/metrics${q}`);
    const x = metric === 'loss' ? m.step : m.val_step || [];
    const y = metric === 'loss' ? m.loss : metric === 'val_acc' ? m.val_acc : m.val_loss;
    curves.set(t.job, {x, y: y || [], step: t.step});
  }

  function drawCurves(s) {
    const tables = [], series = [];
    const ranked = s.trials.filter((t) => t.job && curves.has(t.job));
    ranked.forEach((t, i) => {
      const c = curves.get(t.job);
      if (!c.x.length) return;
      tables.push([c.x, c.y]);
      // past the palette's colours, dashed: no two curves of the first twenty look alike
      series.push({label: `#${t.trial}`, color: PALETTE[i % PALETTE.length], width: i === 0 ? 2.5 : 1.2,
                   dash: i >= PALETTE.length ? [6, 4] : undefined});
    });
    document.getElementById('sweep-metric-title').textContent = `${s.metric} of every trial against its steps`;
    metricChart.opts.yLabel = s.metric;
    metricChart.opts.series = series;
    metricChart.opts.logY = logY;
    metricChart.raw = tables.length === 0 ? null : tables.length === 1 ? tables[0] : uPlot.join(tables);
    metricChart.build();
  }

  function drawScatter(s) {
    for (const c of scatters) c.destroy();
    scatters.length = 0;
    scatterWrap.replaceChildren();
    const keys = Object.keys((s.trials[0] && s.trials[0].params) || {});
    const logParams = new Set(Object.entries((s.spec && s.spec.parameters) || {})
      .filter(([, v]) => v && typeof v === 'object' && !Array.isArray(v) && v.log_uniform).map(([k]) => k));
    for (const k of keys) {
      const withValue = s.trials.filter((t) => t.metric != null);
      const listed = s.spec && s.spec.parameters && s.spec.parameters[k];
      const ax = axisOf(withValue.map((t) => t.params[k]), Array.isArray(listed) ? listed : null);
      const pts = withValue.map((t, i) => [ax.x[i], t.metric, t.state === 'completed'])
        .sort((a, b) => a[0] - b[0]);
      // The chart takes each x once, in order, and a grid repeats every value: trials that
      // share one are drawn a hair apart (far below a pixel) so that every one shows.
      for (let i = 1; i < pts.length; i++)
        if (pts[i][0] <= pts[i - 1][0]) pts[i][0] = pts[i - 1][0] + (Math.abs(pts[i - 1][0]) || 1) * 1e-9;
      // values spread over decades (a list of learning rates) read best on a log axis
      const xs = ax.labels ? [] : pts.map((p) => p[0]);
      const decades = xs.length > 1 && xs[0] > 0 && xs[xs.length - 1] / xs[0] >= 100;
      const el = h('div.chart.scatter', {'data-testid': 'sweep-scatter-chart', 'data-param': k});
      scatterWrap.append(h('div.scatter-box', null, h('h3', {text: k}), el));
      const c = new LineChart(el, {name: 'sweepScatter:' + k, xmode: 'lr', xLabel: k.split('.').pop(),
        logX: !ax.labels && (logParams.has(k) || decades), xTicks: ax.labels, logY, height: 220,
        yLabel: s.metric, series: [
          {label: 'completed', color: '#2563eb', width: 0, points: true},
          {label: 'stopped or other', color: '#9ca3af', width: 0, points: true}]});
      c.raw = [pts.map((p) => p[0]), pts.map((p) => (p[2] ? p[1] : null)), pts.map((p) => (p[2] ? null : p[1]))];
      c.build();
      scatters.push(c);
    }
  }

  async function load() {
    let s;
    if (missing) return;
    try { s = await api('GET', `/v1/sweeps/${encodeURIComponent(id)}`); } catch (e) {
      if (gone) return;
      head.replaceChildren(h('p.error', {text: e.message}));
      if (e.status === 404) { // no such sweep (or deleted): nothing to act on or draw
        missing = true;
        cancelBtn.hidden = deleteBtn.hidden = retryBtn.hidden = true;
        for (const c of root.querySelectorAll('#page-sweep > .card')) if (!c.contains(head)) c.hidden = true;
      }
      return;
    }
    if (gone) return;
    sweep = s;
    window.__anneald.sweep = s;
    renderHead(s);
    renderTrials(s);
    // Curves of trials whose step changed since they were read (finished ones are read once).
    const stale = s.trials.filter((t) => t.job && (!curves.has(t.job) || curves.get(t.job).step !== t.step));
    try { await Promise.all(stale.map((t) => loadCurve(t, s.metric))); } catch (e) { if (!gone) toast(e.message, 'error'); }
    if (gone) return;
    drawCurves(s);
    drawScatter(s);
  }

  const reload = debounce(load, 400);
  const follow = throttle(load, 2000); // a running trial's steps and curve, every 2 s at most
  const mine = (ev) => sweep && sweep.trials.some((t) => t.job === ev.id);
  openEvents('/v1/events', {
    open: reload, // a reconnect replays no sweep events: read the sweep again
    sweep(ev) { if (ev.id === id) reload(); },
    state(ev) { if (mine(ev)) reload(); },
    progress(ev) { if (mine(ev)) follow(); },
    deleted(ev) {
      if (ev.id !== id || gone) return;
      // deleted elsewhere: what the page shows is all there is; nothing can act on it
      for (const b of root.querySelectorAll('#page-sweep button')) b.disabled = true;
      root.querySelector('#page-sweep').prepend(h('p.alert', {'data-testid': 'sweep-deleted',
        text: `Sweep ${id} was deleted, with its trial jobs; what this page shows is all that is left of it.`}));
      gone = true;
    },
  });
  load();
  return () => {
    gone = true;
    metricChart.destroy();
    for (const c of scatters) c.destroy();
  };
}

export function mount(root, route) {
  return route.parts[0] === 'sweep' && route.parts[1] ? mountOne(root, route.parts[1]) : mountList(root);
}
