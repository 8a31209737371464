// New job (#/new, or #/new?fork=ID&step=N to resume from a checkpoint with a new config, or
// #/new?from=ID&lr=X for job ID's spec at learning rate X, as the lr finder's pages open it):
// a JSON editor with examples, a live preview of the schedule from POST /v1/schedules/preview
// as the user types, server errors at the field they name, and submit.
import {h, toast, debounce, fmtNum} from './util.js';
import {api, ApiError, openEvents} from './api.js';
import {LineChart, downsample, lrSeries} from './charts.js';
import {EXAMPLES} from './examples.js';
import {JsonEditor} from './editor.js';
import {previewBody, preview} from './schedule.js';

const DRAFT_KEY = 'anneald.draft';
const PREVIEW_DRAW_POINTS = 4000;

// Job j's spec with the optimizer lr set to `lr`: of a sweep (POST /v1/lr_finder), its early
// stop and its schedule are dropped; any other job keeps its schedule. The name says where
// it came from.
export function atLr(j, lr) {
  const spec = JSON.parse(JSON.stringify(j.spec || {}));
  spec.name = `${j.name || j.id}-lr-${lr.toPrecision(3)}`;
  delete spec.resume_from;
  const ds = spec.ds_config || (spec.ds_config = {});
  const opt = ds.optimizer || (ds.optimizer = {type: 'AdamW', params: {}});
  opt.params = {...(opt.params || {}), lr};
  if (spec.lr_finder) { // a sweep: its schedule and its early stop go, the rest stays
    delete spec.lr_finder;
    if (ds.scheduler && /^(ExponentialLR|LRRangeTest)$/.test(ds.scheduler.type)) delete ds.scheduler;
  }
  return spec;
}

export function mount(root, route) {
  let gone = false;
  let ctl = null;           // the preview request in flight
  const forkId = route.query.get('fork');
  const forkStep = route.query.get('step');
  const fromId = route.query.get('from');
  const fromLr = Number(route.query.get('lr'));

  const editor = new JsonEditor({onInput: () => {
    status.textContent = '';
    status.classList.remove('error');
    exampleSel.value = '';
    previewSoon();
    saveDraft();
  }});
  const exampleSel = h('select#example-select', {'data-testid': 'example-select', 'aria-label': 'example',
    onchange: () => { const ex = EXAMPLES.find((e) => e.key === exampleSel.value); if (ex) load(ex.spec); }},
  h('option', {value: '', text: forkId ? 'fork of ' + forkId : '(edited)'}),
  EXAMPLES.map((e) => h('option', {value: e.key, text: e.title})));
  const submitBtn = h('button.primary#submit-job', {'data-testid': 'submit-job', text: 'Submit job',
                                                   onclick: () => submit()});
  const findBtn = h('button#find-lr', {'data-testid': 'find-lr', text: 'Find a learning rate',
                                       title: 'POST /v1/lr_finder: sweep this job\'s lr from 1e-7 to 10',
                                       onclick: () => findLr()});
  const status = h('span.muted.small#submit-status', {'data-testid': 'submit-status'});
  const previewMsg = h('p.muted.small#preview-status', {'data-testid': 'preview-status'});
  // What the daemon notes about the ds_config (a key DeepSpeed does not have, a quirk): a
  // misspelt "scheduler" would otherwise preview as a flat line without a word.
  const previewWarn = h('ul.warnings#preview-warnings', {'data-testid': 'preview-warnings'});
  const chartEl = h('div.chart#chart-preview', {'data-testid': 'chart-preview'});
  const note = forkId ? h('p.note#fork-note', {'data-testid': 'fork-note'},
    `Resuming from ${forkId}` + (forkStep ? ` at step ${forkStep}` : ' (latest checkpoint)') +
    ' with the config below: change the ds_config, keep the model.') : null;
  // The job a fork or an lr comes from cannot be read (deleted, or never was): say so, and
  // load nothing, rather than an unrelated example under a "Fork job" heading.
  const failNote = h('p.alert#source-error', {'data-testid': 'source-error', hidden: true});
  const lrNote = h('p.note#lr-note', {'data-testid': 'lr-note', hidden: true});
  function sourceGone(what, e) {
    failNote.textContent = `${what}: ${e.message}. Nothing was loaded: write a job spec here, ` +
      'or go back to the jobs.';
    failNote.hidden = false;
    if (note) note.hidden = true;
    editor.value = '';
    previewNow();
  }

  root.append(h('section.page#page-new', null,
    h('div.toolbar', null, h('h1', {text: forkId ? 'Fork job' : 'New job'}), h('span.grow'),
      h('label.inline', null, 'Example ', exampleSel)),
    note, failNote, lrNote,
    h('div.new-grid', null,
      h('div.card.editor-card', null, editor.el,
        h('div.row', null, submitBtn, findBtn, status)),
      h('div.card.preview-card', null, h('h2', {text: 'Schedule preview'}), chartEl, previewMsg, previewWarn))));

  const chart = new LineChart(chartEl, {name: 'preview', yLabel: 'lr', y2Label: 'momentum', series: [], height: 280});
  // The page has no job to watch; the global stream keeps the live dot honest (the daemon is
  // there and answering).
  openEvents('/v1/events', {});
  let sig = '';

  function load(spec) {
    // notes about what was loaded before go with it
    failNote.hidden = true;
    lrNote.hidden = true;
    editor.value = JSON.stringify(spec, null, 2);
    saveDraft();
    previewNow();
  }

  function saveDraft() {
    if (!forkId) try { sessionStorage.setItem(DRAFT_KEY, editor.value); } catch { /* full */ }
  }

  function showError(e, where) {
    if (e instanceof ApiError && e.status !== 401) {
      const exact = e.all.length > 1 ? editor.showFieldErrors(e.all)
                                     : editor.showFieldError(e.message, e.field);
      const more = e.all.slice(1).map((x) => (x.field ? `${x.field}: ` : '') + x.message);
      return `${where}: ${e.message}` + (e.field && !exact ? ` (${e.field})` : '') +
        (more.length ? ` — and ${more.length} more: ${more.join('; ')}` : '');
    }
    return `${where}: ${e.message}`;
  }

  async function previewNow() {
    if (ctl) ctl.abort();
    const parsed = editor.parse();
    if (parsed.error) { clearPreview('The spec is not valid JSON yet.'); return; }
    const spec = parsed.value;
    if (!spec || typeof spec !== 'object' || !spec.ds_config) {
      clearPreview('Add a ds_config to see its schedule.');
      return;
    }
    // A spec in epochs is previewed whole: the daemon counts the steps of its data. When it
    // cannot (the data set is not uploaded yet, the spec is unfinished), 1000 steps stand in.
    const inEpochs = !Number.isInteger(spec.steps) && spec.epochs != null;
    ctl = new AbortController();
    const mine = ctl;
    previewMsg.textContent = 'previewing…';
    try {
      let r = null, guessed = false;
      // Thinned by the daemon to what is drawn (the first and last step and every turn
      // survive), so a spec of 10^8 steps previews as fast as one of 10^3.
      const thin = {max_points: PREVIEW_DRAW_POINTS};
      if (inEpochs) r = await preview({...spec, ...thin}, mine.signal).catch((e) => { if (e.name === 'AbortError') throw e; return null; });
      if (!r) {
        guessed = inEpochs;
        r = await preview({...previewBody(spec), ...thin}, mine.signal);
      }
      if (gone || mine !== ctl) return;
      ctl = null;
      draw(r);
      previewWarn.replaceChildren(...(r.warnings || []).map((t) => h('li', {text: t})));
      const pts = r.step ? r.step.length : 0, n = pts ? r.step[pts - 1] : 0;
      previewMsg.textContent = `${n.toLocaleString('en-US')} steps` +
        (inEpochs ? (guessed ? ' (the spec counts epochs, and its data could not be read: the length is a stand-in)'
                             : ` (${spec.epochs} epochs of its data)`) : '') +
        (n > pts ? `, drawn as ${pts.toLocaleString('en-US')} points (the first, the last and every turn)` : '');
      previewMsg.classList.remove('error');
    } catch (e) {
      if (e.name === 'AbortError' || gone || mine !== ctl) return;
      ctl = null;
      clearPreview(showError(e, 'preview'));
      previewMsg.classList.add('error');
    }
  }
  const previewSoon = debounce(previewNow, 300);

  // A spec that cannot be previewed shows no curve: the last one would belong to another spec.
  function clearPreview(message) {
    previewMsg.textContent = message;
    previewWarn.replaceChildren();
    window.__anneald.preview = null;
    sig = '';
    chart.raw = null;
    chart.build();   // with no data: the old plot is removed
    delete window.__anneald.charts.preview;
    chartEl.dataset.empty = 'true';
  }

  function draw(r) {
    delete chartEl.dataset.empty;
    const lr = r.lr || [];
    const mom = (r.momentum || []).filter((g) => Array.isArray(g) && g.length);
    const labels = [...lr.map((_, k) => (lr.length > 1 ? `lr group ${k}` : 'lr')),
                    ...mom.map((_, k) => (mom.length > 1 ? `momentum group ${k}` : 'momentum'))];
    const data = downsample([r.step || [], ...lr, ...mom], PREVIEW_DRAW_POINTS / 2);
    window.__anneald.preview = r;
    const s = labels.join('|');
    if (s !== sig) {
      sig = s;
      chart.opts.series = lrSeries(labels, lr.length);
      chart.raw = data;
      chart.build();
    } else chart.setData(data);
  }

  async function submit() {
    previewSoon.cancel();
    const parsed = editor.parse();
    if (parsed.error) { status.textContent = 'Fix the JSON first.'; editor.reveal(); return; }
    submitBtn.disabled = true;
    status.textContent = 'submitting…';
    try {
      const job = await api('POST', '/v1/jobs', parsed.value);
      if (gone) return;
      try { sessionStorage.removeItem(DRAFT_KEY); } catch { /* ignore */ }
      toast(`${job.id} queued`);
      location.hash = '#/job/' + encodeURIComponent(job.id);
    } catch (e) {
      if (gone) return;
      status.textContent = showError(e, 'rejected');
      status.classList.add('error');
      editor.reveal();
    } finally {
      submitBtn.disabled = false;
    }
  }

  // Submits the spec as a learning-rate sweep and opens the finder's page, which follows it.
  async function findLr() {
    const parsed = editor.parse();
    if (parsed.error) { status.textContent = 'Fix the JSON first.'; editor.reveal(); return; }
    findBtn.disabled = true;
    status.textContent = 'starting the sweep…';
    try {
      const job = await api('POST', '/v1/lr_finder', {job: parsed.value});
      if (gone) return;
      location.hash = '#/lrfinder/' + encodeURIComponent(job.id);
    } catch (e) {
      if (gone) return;
      status.textContent = showError(e, 'lr finder');
      status.classList.add('error');
    } finally {
      findBtn.disabled = false;
    }
  }

  (async () => {
    if (fromId && Number.isFinite(fromLr) && fromLr > 0) {
      try {
        const j = await api('GET', `/v1/jobs/${encodeURIComponent(fromId)}`);
        if (gone) return;
        load(atLr(j, fromLr));
        if (j.kind === 'lr_finder') {
          // the sweep replaced the job's length and schedule: say so before a submit
          lrNote.textContent = `At lr ${fmtNum(fromLr)} from the sweep ${fromId}. Its steps ` +
            `(${j.spec && j.spec.steps}) are the sweep's, and it had no schedule of its own: set ` +
            'the run\'s length (and a warm-up or decay) before you submit.';
          lrNote.hidden = false;
        }
      } catch (e) {
        if (!gone) sourceGone(`The lr finder ${fromId} cannot be read`, e);
      }
      return;
    }
    if (forkId) {
      try {
        const j = await api('GET', `/v1/jobs/${encodeURIComponent(forkId)}`);
        const spec = JSON.parse(JSON.stringify(j.spec || {}));
        spec.name = (j.name || forkId) + '-fork';
        spec.resume_from = forkStep != null ? {job: forkId, step: Number(forkStep)} : {job: forkId};
        if (!gone) load(spec);
      } catch (e) {
        if (!gone) sourceGone(`${forkId} cannot be forked`, e);
      }
      return;
    }
    let draft = null;
    try { draft = sessionStorage.getItem(DRAFT_KEY); } catch { /* ignore */ }
    if (draft) { editor.value = draft; exampleSel.value = ''; previewNow(); } else {
      exampleSel.value = EXAMPLES[0].key;
      load(EXAMPLES[0].spec);
    }
  })();

  return () => { gone = true; previewSoon.cancel(); if (ctl) ctl.abort(); chart.destroy(); };
}
