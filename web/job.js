// One job (#/job/ID): its state and progress, the buttons that act on it, the loss and lr
// charts (live over the job's event stream), its checkpoints, spec and warnings.
import {h, fmtNum, fmtLr, fmtInt, fmtRate, fmtDuration, fmtTime, fmtBytes, stateBadge, etaOf,
        FINISHED, toast, throttle} from './util.js';
import {api, openEvents, closeEvents, download, ApiError, setting, keepSetting} from './api.js';
import {LineChart, PALETTE, XMODES, lowerBound, lrSeries} from './charts.js';
import {FULL_LIMIT, MAX_POINTS, emptyMetrics, fetchMetrics, appendMetrics, lastStep, lossTable,
        lrTable, emaLeadIn, timed, xFor} from './metrics.js';
import {momentumSchedule} from './schedule.js';
import {sampleBox} from './sample.js';
import {labelsView, checkpointMarks} from './jobsched.js';
import {waitingBox} from './jobwait.js';

const SMOOTH_KEY = 'anneald.smoothing';

export function mount(root, route) {
  const id = route.parts[1];
  const t0 = performance.now();
  const state = {
    job: null,
    base: emptyMetrics(),      // whole run: every step (full) or server-downsampled
    full: true,                // base holds every step
    detail: null,              // a zoomed range fetched again: {m, skip}
    momentum: null,            // [[beta1 per step]] from the schedule preview, when it cycles
    xmode: setting('anneald.xmode', 'step'),
    logX: false, logY: false,
    alpha: Number(setting(SMOOTH_KEY, 0)),
    drawn: new Set(),
  };
  let gone = false;
  let fetching = null;
  let acting = false;   // a button's request is out
  let deleted = false;  // the job was deleted while the page showed it: the page stays as it was

  // ---- header: name, state, buttons, progress numbers
  const title = h('h1#job-title', {text: id});
  const badge = h('span#job-state-wrap');
  const btn = (name, text, fn, cls) => h(`button#btn-${name}${cls || ''}`, {'data-testid': 'btn-' + name, text,
                                                                            onclick: fn});
  const buttons = {
    pause: btn('pause', 'Pause', () => act('pause')),
    resume: btn('resume', 'Resume', () => act('resume')),
    cancel: btn('cancel', 'Cancel', () => confirmed('cancel', 'Really cancel?', () => act('cancel'))),
    delete: btn('delete', 'Delete', () => confirmed('delete', 'Really delete?', remove), '.danger'),
    fork: btn('fork', 'Fork…', () => fork(state.job.last_checkpoint_step)),
    lrfinder: btn('lrfinder', 'LR finder', () => { location.hash = '#/lrfinder/' + encodeURIComponent(id); }),
    csv: btn('csv', 'CSV', () => download(`/v1/jobs/${encodeURIComponent(id)}/metrics?format=csv`, `${id}.csv`)
      .catch((e) => toast('CSV: ' + e.message, 'error'))),
  };
  // until the job is read, no button acts on it (renderHead enables the ones that apply)
  for (const k of ['pause', 'resume', 'cancel', 'delete', 'fork']) buttons[k].disabled = true;
  const bar = h('div.fill');
  const stats = h('dl.stats#job-stats');
  const errorBox = h('div.alert#job-error', {hidden: true, 'data-testid': 'job-error'});
  // why a queued job waits, and where a fork came from
  const noteBox = h('p.note#job-note', {hidden: true, 'data-testid': 'job-note'});
  const labels = h('div.labels#job-labels', {'data-testid': 'job-labels'});

  // ---- chart controls
  const xsel = h('select#x-mode', {'data-testid': 'x-mode', 'aria-label': 'x axis',
    onchange: () => { state.xmode = xsel.value; keepSetting('anneald.xmode', xsel.value);
                      logx.disabled = xsel.value === 'wall'; reconfigure(); }},
  Object.entries(XMODES).map(([k, v]) => h('option', {value: k, text: 'x: ' + v, selected: k === state.xmode})));
  const logx = h('input#log-x', {type: 'checkbox', 'data-testid': 'log-x', disabled: state.xmode === 'wall',
    onchange: () => { state.logX = logx.checked; reconfigure(); }});
  const logy = h('input#log-y', {type: 'checkbox', 'data-testid': 'log-y',
    onchange: () => { state.logY = logy.checked; reconfigure(); }});
  const smoothVal = h('output#smoothing-value', {text: state.alpha.toFixed(2)});
  const smooth = h('input#smoothing', {type: 'range', min: 0, max: 0.999, step: 0.001, value: state.alpha,
    'data-testid': 'smoothing', 'aria-label': 'smoothing',
    oninput: () => {
      state.alpha = Number(smooth.value);
      smoothVal.textContent = state.alpha.toFixed(3).replace(/0$/, '');
      keepSetting(SMOOTH_KEY, String(state.alpha));
      redrawSoon();
    }});
  const resBox = h('span.muted.small#resolution', {'data-testid': 'resolution'});
  const resetBtn = h('button#reset-zoom', {text: 'Reset zoom', disabled: true, onclick: () => resetZoom()});

  const loadingMsg = h('p.muted.small#chart-loading', {'data-testid': 'chart-loading', text: 'Loading the metrics…'});
  const lossEl = h('div.chart#chart-loss', {'data-testid': 'chart-loss'});
  const lrEl = h('div.chart#chart-lr', {'data-testid': 'chart-lr'});
  // no step to draw yet (a queued job): said so in place of empty charts
  const waiting = waitingBox();
  const chartsBox = h('div#charts-box', {'data-testid': 'charts-box'},
    h('div.controls#chart-controls', null, xsel,
      h('label', null, logx, ' log x'), h('label', null, logy, ' log y'),
      h('label.smooth', null, 'smoothing ', smooth, smoothVal), resetBtn, resBox),
    h('h2', {text: 'Loss'}), lossEl, h('h2', {text: 'Learning rate'}), lrEl,
    h('p.hint.muted.small', {text: 'Drag across a chart to zoom (the range is fetched again in detail); double-click to reset.'}));
  const ckBody = h('tbody');
  const ckEmpty = h('p.empty', {text: 'No checkpoints yet.'});
  const specPre = h('pre.spec#job-spec', {'data-testid': 'job-spec'});
  const warnList = h('ul.warnings#job-warnings', {'data-testid': 'job-warnings'});

  root.append(h('section.page#page-job', {'data-job-id': id},
    h('div.card.job-head', null,
      h('div.toolbar', null, h('div.titles', null, title, h('div.muted.small', {text: id})), badge,
        h('span.grow'), h('div.buttons', null, Object.values(buttons))),
      labels, h('div.bar.big', {'data-testid': 'job-progress'}, bar), stats, noteBox, errorBox),
    h('div.card', null, loadingMsg, waiting.el, chartsBox),
    h('div.grid2', null,
      h('div.card', null, h('h2', {text: 'Checkpoints'}),
        h('table.list#checkpoints', {'data-testid': 'checkpoints'},
          h('thead', null, h('tr', null, ['Step', 'Created', 'Size', 'Loss', 'Kept', '', ''].map((t) => h('th', {text: t})))),
          ckBody), ckEmpty),
      h('div.card', null, h('h2', {text: 'Warnings'}), warnList, h('h2', {text: 'Spec'}), specPre))));

  // ---- charts
  const onDraw = (name) => () => {
    state.drawn.add(name);
    if (state.drawn.size === 2 && window.__anneald.lastRenderMs == null) {
      window.__anneald.lastRenderMs = performance.now() - t0;
    }
  };
  window.__anneald.lastRenderMs = null;
  const common = {xmode: state.xmode, sync: 'job', gaps: true, onZoom: (a, b) => zoom(a, b),
    onReset: () => resetZoom()};
  const lossChart = new LineChart(lossEl, {...common, name: 'loss', yLabel: 'loss', series: [], onDraw: onDraw('loss')});
  const lrChart = new LineChart(lrEl, {...common, name: 'lr', yLabel: 'lr', y2Label: 'momentum', series: [],
                                       onDraw: onDraw('lr')});
  let sigLoss = '', sigLr = '';

  function startSec() {
    const j = state.job || {};
    return Date.parse(j.started_at || j.created_at || '') / 1000 || 0;
  }

  function redraw(keepZoom) {
    const src = state.detail ? state.detail.m : state.base;
    const skip = state.detail ? state.detail.skip : 0;
    const opts = {xmode: state.xmode, t0: startSec(), alpha: state.alpha, momentum: state.momentum, skip};
    const L = lossTable(src, opts);
    const R = lrTable(src, opts);
    const sl = L.labels.join('|'), sr = R.labels.join('|');
    if (sl !== sigLoss) {
      sigLoss = sl;
      lossChart.opts.series = L.labels.map((label) => (
        label === 'train loss' ? {label, color: L.smoothed ? '#93c5fd' : PALETTE[0], width: L.smoothed ? 1 : 1.5}
          : label === 'val loss' ? {label, color: PALETTE[1], points: true, width: 1.5}
            // fp16: the scale on a log axis of its own, skipped (overflowed) steps as red marks
            : label === 'loss scale' ? {label, color: PALETTE[6], width: 1, stepped: true, scale: 'y2'}
              : label === 'skipped step' ? {label, color: '#dc2626', points: true, line: false}
                : {label, color: PALETTE[0], width: 2}));
      lossChart.opts.y2Label = L.labels.includes('loss scale') ? 'loss scale' : undefined;
      lossChart.opts.y2Log = true;
      lossChart.raw = L.data;
      lossChart.build();
    } else lossChart.setData(L.data, keepZoom);
    if (sr !== sigLr) {
      sigLr = sr;
      lrChart.opts.series = lrSeries(R.labels, R.groups);
      lrChart.raw = R.data;
      lrChart.build();
    } else lrChart.setData(R.data, keepZoom);
    const n = src.step.length;
    chartsBox.hidden = !waiting.show(state.job, state.base.step.length > 0);
    resBox.textContent = state.detail
      ? `zoomed: steps ${fmtInt(src.step[lowerBound(src.step, skip)] ?? 0)}–${fmtInt(lastStep(src))}, ` +
        (state.detail.full ? 'every step' : `${fmtInt(n)} points (downsampled by the server)`)
      : state.full ? `${fmtInt(n)} steps, every step` : `${fmtInt(n)} points (downsampled by the server)`;
    resBox.dataset.full = String(state.detail ? state.detail.full : state.full);
  }
  let redrawPending = false;
  function redrawSoon() {
    if (redrawPending) return;
    redrawPending = true;
    requestAnimationFrame(() => { redrawPending = false; if (!gone) redraw(true); });
  }

  function reconfigure() {
    for (const c of [lossChart, lrChart]) c.opts = {...c.opts, xmode: state.xmode, logX: state.logX, logY: state.logY};
    state.detail = null;
    resetBtn.disabled = true;
    sigLoss = sigLr = '';
    redraw(false);
  }

  // ---- data
  async function loadBase() {
    const total = state.job ? state.job.step || 0 : 0;
    state.full = total <= FULL_LIMIT;
    state.base = await fetchMetrics(id, state.full ? {} : {maxPoints: MAX_POINTS});
    if (!state.full) state.base.downsampled = true;
    checkWall();
  }

  // Without the rows' wall clock (a daemon that does not answer it), the wall-clock axis is
  // the job's first start plus its training time: true only for a run that never stopped.
  // Once the time since the start outruns the training time (a pause, a restart, a wait for
  // memory), the axis would squeeze the gaps out: it is offered no more.
  function checkWall() {
    const t = state.base && state.base.time, j = state.job || {};
    // rows with their wall clock draw the gaps as they were: nothing to hide
    if (state.base && state.base.wall && state.base.wall.some((v) => v != null)) return;
    const last = t && t.length ? t[t.length - 1] : null, t0 = startSec();
    if (last == null || !t0 || last > 1e9) return;   // epoch times are wall times already
    // when it last trained: now while it runs, its end once it ended; a paused (or queued
    // again) job's pause time is not known, so it is given the benefit of the doubt
    if (j.state !== 'running' && !j.finished_at) return;
    const end = (j.finished_at ? Date.parse(j.finished_at) : Date.now()) / 1000;
    const gap = end - t0 - last;
    const opt = xsel.querySelector('option[value=wall]');
    if (!opt || gap <= Math.max(5, 0.05 * (end - t0))) return;
    opt.disabled = true;
    opt.title = 'this job stopped along the way (paused, restarted or waiting): its times count training only';
    if (state.xmode === 'wall') {
      state.xmode = xsel.value = 'elapsed';   // drawn so by the redraw that follows a load
      logx.disabled = false;
      for (const c of [lossChart, lrChart]) c.opts = {...c.opts, xmode: state.xmode};
      sigLoss = sigLr = '';   // the charts are built again, with the new axis
    }
  }

  // Pulls the steps recorded since the last fetch; in downsampled mode a long tail is
  // downsampled too, and the whole run is fetched again when the table has grown a lot.
  async function pull() {
    if (fetching) return fetching;
    fetching = (async () => {
      try {
        const from = lastStep(state.base) + 1;
        const j = state.job;
        if (state.full && j && j.step > FULL_LIMIT) { await loadBase(); return; }
        const add = await fetchMetrics(id, state.full ? {from} : {from, maxPoints: MAX_POINTS / 4});
        appendMetrics(state.base, add);
        if (!state.full && state.base.step.length > MAX_POINTS * 3) await loadBase();
      } finally { fetching = null; }
    })();
    await fetching.catch((e) => { if (!(e instanceof ApiError && e.status === 404)) console.warn(e.message); });
    if (!gone && !state.detail) redrawSoon();
  }
  let lastPull = 0, pullTimer = 0;
  function pullSoon() {
    // At most one metrics fetch a second, whatever the event rate.
    const wait = Math.max(0, 1000 - (performance.now() - lastPull));
    if (pullTimer) return;
    pullTimer = setTimeout(() => { pullTimer = 0; lastPull = performance.now(); pull(); }, wait);
  }

  // x range (in the current x units) -> step range, via the rows held.
  function stepsOf(a, b) {
    if (state.xmode === 'step') return [Math.floor(a), Math.ceil(b)];
    const src = state.detail ? state.detail.m : state.base;
    const m = timed(src);
    const xs = xFor(src, m.step, state.xmode, startSec());   // as the charts place the rows
    const i = Math.max(0, lowerBound(xs, a) - 1);
    const k = Math.min(m.step.length - 1, lowerBound(xs, b));
    return [m.step[i] ?? 0, m.step[k] ?? lastStep(m)];
  }

  // Each zoom and reset gets a number; an answer that comes after a newer one is dropped, so
  // the charts never show one range's data under another's.
  let zoomSeq = 0;
  async function zoom(a, b) {
    const mine = ++zoomSeq;
    for (const c of [lossChart, lrChart]) c.zoomTo(a, b, false);
    resetBtn.disabled = false;
    const [s0, s1] = stepsOf(a, b);
    const full = s1 - s0 <= FULL_LIMIT;
    // Without a server-side average, the EMA needs the steps before the range to start right.
    const lead = full ? emaLeadIn(state.alpha) : 0;
    try {
      const m = await fetchMetrics(id, full ? {from: Math.max(1, s0 - lead), to: s1}
        : {from: s0, to: s1, maxPoints: MAX_POINTS});
      if (gone || mine !== zoomSeq) return;
      state.detail = {m, skip: full ? s0 : 0, full};
      redraw(true);
    } catch (e) { if (mine === zoomSeq) toast('Zoom: ' + e.message, 'error'); }
  }

  function resetZoom() {
    zoomSeq++;
    state.detail = null;
    resetBtn.disabled = true;
    for (const c of [lossChart, lrChart]) c.zoomed = null;
    redraw(false);
  }

  async function loadCheckpoints() {
    try {
      const r = await api('GET', `/v1/jobs/${encodeURIComponent(id)}/checkpoints`);
      if (gone || deleted) return;   // a list read before the delete: its buttons act on nothing
      const list = (r.checkpoints || []).slice().sort((a, b) => b.step - a.step);
      ckEmpty.hidden = list.length > 0;
      ckBody.replaceChildren(...list.map((c) => h('tr', {'data-step': c.step, 'data-testid': 'checkpoint-row'},
        h('td', {'data-label': 'Step', text: fmtInt(c.step)}), h('td', {'data-label': 'Created', text: fmtTime(c.created_at)}),
        h('td', {'data-label': 'Size', text: fmtBytes(c.bytes)}), h('td', {'data-label': 'Loss', text: fmtNum(c.loss)}),
        ...(([marks, pin]) => [marks, h('td', null, pin)])(checkpointMarks(id, c, loadCheckpoints)),
        h('td', null, h('button.small', {text: 'Fork', 'data-testid': 'fork-checkpoint',
                                         title: 'resume from this checkpoint with a new config',
                                         onclick: () => fork(c.step)})))));
      headRow(true);   // a list read just before the newest checkpoint landed lacks it
    } catch (e) { if (!gone) console.warn(e.message); }
  }
  // Checkpoint events may come many times a second (each adds its row at once); the list the
  // server keeps (retention drops old ones) is read at most once a second but always after the
  // last event.
  const loadCheckpointsSoon = throttle(loadCheckpoints, 1000);

  // A checkpoint event's row, ahead of the next list from the server.
  function addCheckpointRow(ev) {
    if (ckBody.querySelector(`tr[data-step="${ev.step}"]`)) return false;
    ckEmpty.hidden = true;
    ckBody.prepend(h('tr', {'data-step': ev.step, 'data-testid': 'checkpoint-row'},
      h('td', {'data-label': 'Step', text: fmtInt(ev.step)}), h('td', {'data-label': 'Created', text: fmtTime(new Date().toISOString())}),
      h('td', {'data-label': 'Size', text: fmtBytes(ev.bytes)}), h('td', {'data-label': 'Loss', text: '…'}),
      h('td', {'data-label': 'Kept'}), h('td'),
      h('td', null, h('button.small', {text: 'Fork', 'data-testid': 'fork-checkpoint',
                                       title: 'resume from this checkpoint with a new config',
                                       onclick: () => fork(ev.step)}))));
    return true;
  }

  // The header's checkpoint always has its row, whichever of the job, the event and the list
  // arrived first; the next list from the server fills in what the placeholder lacks.
  function headRow(fromList) {
    const step = state.job && state.job.last_checkpoint_step;
    if (step != null && addCheckpointRow({step}) && !fromList) loadCheckpointsSoon();
  }

  // ---- header
  function renderHead() {
    const j = state.job;
    if (!j || deleted) return;
    headRow();
    title.textContent = j.name || j.id;
    title.title = j.name || j.id;   // a long name is cut short on screen
    document.title = `${j.name || j.id} · anneald`;
    labels.replaceChildren(...labelsView(j).filter(Boolean));
    badge.replaceChildren(stateBadge(j.state));
    const frac = j.total_steps ? Math.min(1, (j.step || 0) / j.total_steps) : 0;
    bar.style.width = (frac * 100).toFixed(1) + '%';
    const running = j.state === 'running';
    const item = (k, v, tid) => [h('dt', {text: k}), h('dd', {text: v, title: v, 'data-testid': tid})];
    const took = j.finished_at && j.started_at ? (Date.parse(j.finished_at) - Date.parse(j.started_at)) / 1000 : null;
    stats.replaceChildren(...[
      item('step', `${fmtInt(j.step || 0)} / ${fmtInt(j.total_steps)}`, 'stat-step'),
      item('loss', fmtNum(j.loss), 'stat-loss'), item('lr', fmtLr(j.lr), 'stat-lr'),
      item('samples/s', running ? fmtRate(j.samples_per_sec) : '—', 'stat-sps'),
      item('ETA', running || j.state === 'queued' ? fmtDuration(etaOf(j)) : '—', 'stat-eta'),
      item('epoch', j.epoch == null ? '—' : String(j.epoch), 'stat-epoch'),
      item('started', fmtTime(j.started_at), 'stat-started'),
      ...(j.finished_at ? [item('finished', fmtTime(j.finished_at), 'stat-finished')] : []),
      ...(took != null && took >= 0 ? [item('took', fmtDuration(took), 'stat-took')] : []),
      item('checkpoint', j.last_checkpoint_step == null ? '—' : 'step ' + fmtInt(j.last_checkpoint_step), 'stat-ckpt'),
      // The latest validation, for jobs that validate.
      ...(j.val_loss == null ? [] : [item('val loss', fmtNum(j.val_loss), 'stat-val-loss')]),
      ...(j.val_acc == null ? [] : [item('val acc', (100 * j.val_acc).toFixed(1) + '%', 'stat-val-acc')])].flat());
    const from = j.spec && j.spec.resume_from;
    const notes = [];
    if (j.state === 'queued')
      notes.push(j.queue_reason ? 'Queued: ' + j.queue_reason : 'Queued: waiting for a free worker.');
    if (from && from.job)
      notes.push(`Forked from ${from.job}` + (from.step != null ? ` at step ${fmtInt(from.step)}` : ' (its latest checkpoint)') + '.');
    noteBox.textContent = notes.join(' ');
    noteBox.hidden = notes.length === 0;
    errorBox.hidden = !j.error;
    errorBox.textContent = j.error ? 'Error: ' + (typeof j.error === 'string' ? j.error : JSON.stringify(j.error)) : '';
    const fin = FINISHED.has(j.state);
    // while an action is out, none other can be started
    buttons.pause.disabled = acting || !(j.state === 'running' || j.state === 'queued');
    // a job that used up its max_runtime_s fails again at once: fork it with a larger one
    const err = typeof j.error === 'string' ? j.error : '';
    const spent = j.state === 'failed' && /^max_runtime:/.test(err);
    // so does one whose metrics filled metrics.max_bytes: it pauses again at once
    const full = j.state === 'paused' && /^metrics\.max_bytes:/.test(err);
    buttons.resume.disabled = acting || spent || full ||
      !(j.state === 'paused' || j.state === 'failed' || j.state === 'stopped');
    buttons.resume.title = spent ? 'its max_runtime_s is used up: a resume would fail again at once (Fork… it with a larger one)'
      : full ? 'its metrics filled metrics.max_bytes: a resume would pause again at once (Fork… it with a larger one)' : '';
    buttons.cancel.disabled = acting || fin;
    buttons.delete.disabled = acting || !fin;
    buttons.fork.disabled = j.last_checkpoint_step == null;
    buttons.lrfinder.disabled = !(j.step > 0);   // nothing to read before the first step
    if (sampler) sampler.setReady(j.last_checkpoint_step != null);
  }

  let sampler = null;
  function renderSpec() {
    const j = state.job;
    specPre.textContent = JSON.stringify(j.spec || {}, null, 2);
    // A language model's page gets the Sample box (once), under the charts.
    if (!sampler && j.spec && j.spec.model && j.spec.model.type === 'gpt') {
      sampler = sampleBox(id);
      sampler.setReady(j.last_checkpoint_step != null);
      root.querySelector('#page-job .grid2').before(sampler);
    }
    const w = j.warnings || [];
    warnList.replaceChildren(...(w.length ? w.map((t) => h('li', {text: t})) : [h('li.muted', {text: 'none'})]));
  }

  // One request at a time: a pause can wait for a checkpoint, and a second click meanwhile
  // would only earn a 409. The buttons are disabled until the answer.
  async function act(what) {
    if (acting) return;
    acting = true;
    renderHead();
    try {
      state.job = await api('POST', `/v1/jobs/${encodeURIComponent(id)}/${what}`);
      toast(`${what}: job is ${state.job.state}`);
    } catch (e) { toast(`${what}: ${e.message}`, 'error'); } finally {
      acting = false;
      if (!gone) renderHead();
    }
  }

  // Cancel and Delete cannot be undone: the first click arms the button, a second one between
  // 0.6 s and 4 s later acts (no blocking dialog). A double click is one click: it neither
  // acts nor lets a click lined up by another page act.
  const arming = {};
  function confirmed(name, ask, fn) {
    const b = buttons[name], a = arming[name], now = performance.now();
    if (a && now - a.at < 600) return;
    if (!a) {
      const text = b.textContent;
      b.textContent = ask;
      arming[name] = {at: now, timer: setTimeout(() => { delete arming[name]; b.textContent = text; }, 4000), text};
      return;
    }
    clearTimeout(a.timer);
    delete arming[name];
    b.textContent = a.text;
    fn();
  }

  async function remove() {
    if (acting) return;
    acting = true;
    renderHead();
    try {
      await api('DELETE', `/v1/jobs/${encodeURIComponent(id)}`);
      toast(`${id} deleted`);
      location.hash = '#/jobs';
    } catch (e) { toast('delete: ' + e.message, 'error'); } finally {
      acting = false;
      if (!gone) renderHead();
    }
  }

  function fork(step) {
    location.hash = `#/new?fork=${encodeURIComponent(id)}` + (step != null ? `&step=${step}` : '');
  }

  // ---- start
  (async () => {
    try {
      state.job = await api('GET', `/v1/jobs/${encodeURIComponent(id)}`);
    } catch (e) {
      root.querySelector('#page-job').replaceChildren(h('div.card', null, h('h1', {text: id}),
        h('p.alert', {'data-testid': 'job-missing', text: e.status === 404 ? `There is no job ${id}.` : e.message}),
        h('a', {href: '#/jobs', text: 'Back to the jobs'})));
      return;
    }
    if (gone) return;
    renderHead();
    renderSpec();
    const refresh = async () => {
      try { state.job = await api('GET', `/v1/jobs/${encodeURIComponent(id)}`); } catch { return; /* deleted */ }
      if (!gone) renderHead();
    };
    openEvents(`/v1/jobs/${encodeURIComponent(id)}/events`, {
      // What changed between the first GET and the stream's start (or while it reconnected),
      // checkpoints included (retention may have removed some).
      open() { refresh(); pullSoon(); loadCheckpointsSoon(); },
      // The stream ended for good: a 404 for the job means it was deleted elsewhere.
      async exists() {
        try { await api('GET', `/v1/jobs/${encodeURIComponent(id)}`); return true; } catch (e) {
          if (e instanceof ApiError && e.status === 404) return false;
          throw e;
        }
      },
      gone() {
        if (gone) return;
        deleted = true;
        badge.replaceChildren(stateBadge('deleted'));
        for (const b of Object.values(buttons)) b.disabled = true;
        // the checkpoints' Pin and Fork too: they act on a job that is gone
        for (const b of root.querySelectorAll('#checkpoints button')) b.disabled = true;
        if (sampler) { sampler.stop(); sampler.setReady(false); } // nothing left to sample
        const note = h('p.alert', {'data-testid': 'job-deleted',
                                   text: `Job ${id} was deleted; what this page shows is all that is left of it.`});
        root.querySelector('#page-job').prepend(note);
      },
      // Deleted elsewhere while this page watched: nothing more will come on the stream.
      deleted(ev) {
        if (ev.id !== id) return;
        closeEvents();
        this.gone();
      },
      progress(ev) {
        if (ev.id && ev.id !== id) return;
        Object.assign(state.job, {step: ev.step, loss: ev.loss, lr: ev.lr, samples_per_sec: ev.samples_per_sec,
                                  eta_s: ev.eta_s});
        if (ev.epoch != null) state.job.epoch = ev.epoch;
        if (ev.total_steps != null) state.job.total_steps = ev.total_steps;   // an lr finder ends early
        if ('val_loss' in ev) Object.assign(state.job, {val_loss: ev.val_loss, val_acc: ev.val_acc});
        if (state.job.state === 'queued') state.job.state = 'running';   // progress comes from a worker
        renderHead();
        pullSoon();
      },
      async state(ev) {
        if (ev.id && ev.id !== id) return;
        state.job.state = ev.state;
        if (ev.error !== undefined) state.job.error = ev.error;
        renderHead();
        await refresh();
        pullSoon();
      },
      checkpoint(ev) {
        if (ev.id && ev.id !== id) return;
        state.job.last_checkpoint_step = ev.step;
        renderHead();
        addCheckpointRow(ev);   // the table shows what the header shows, at once
        loadCheckpointsSoon();  // then the server's list (creation time, loss, retention)
      },
    });
    loadCheckpoints();
    const momentum = momentumSchedule(state.job).catch(() => null);
    if (state.job.step > 0)
      loadingMsg.textContent = `Loading the metrics of ${fmtInt(state.job.step)} steps…`;
    try { await loadBase(); } catch (e) { toast('metrics: ' + e.message, 'error'); }
    state.momentum = await momentum;
    if (gone) return;
    redraw(false);
    loadingMsg.hidden = true;
  })();

  return () => {
    gone = true;
    document.title = 'anneald';
    if (sampler) sampler.stop();
    waiting.stop();
    clearTimeout(pullTimer);
    for (const a of Object.values(arming)) clearTimeout(a.timer);
    loadCheckpointsSoon.cancel();
    lossChart.destroy();
    lrChart.destroy();
  };
}
