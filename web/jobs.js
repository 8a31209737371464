// The jobs list (#/jobs?state=…): every job, newest first, with state, progress, loss, lr,
// throughput and ETA, kept live from the global event stream GET /v1/events.
import {h, fmtNum, fmtLr, fmtInt, fmtRate, fmtDuration, fmtTime, STATES, stateBadge, etaOf,
        perFrame, debounce, toast} from './util.js';
import {api, openEvents, setting, keepSetting} from './api.js';

const PAGE = 100;
const API_MAX_LIMIT = 1000; // GET /v1/jobs's largest limit

export function mount(root, route) {
  const filter = route.query.get('state') || '';
  let limit = PAGE;
  const jobs = new Map();           // id -> job object, merged with live events
  const rows = new Map();           // id -> {tr, cells}
  const selected = new Set();
  const asked = new Set();
  let total = 0;
  let gone = false;

  const select = h('select#state-filter', {'data-testid': 'state-filter', 'aria-label': 'filter by state',
    onchange: () => { location.hash = '#/jobs' + (select.value ? '?state=' + select.value : ''); }},
  h('option', {value: '', text: 'all states'}),
  STATES.map((s) => h('option', {value: s, text: s, selected: s === filter})));
  const compareBtn = h('button#compare-selected', {'data-testid': 'compare-selected', disabled: true,
    text: 'Compare selected',
    onclick: () => { location.hash = '#/compare?ids=' + [...selected].join(','); }});
  const count = h('span.muted#jobs-count');
  // A sweep's trials are jobs too, and a sweep of many fills the list: they can be left out
  // (its page on Sweeps lists them).
  const hideTrials = h('input#hide-trials', {type: 'checkbox', 'data-testid': 'hide-trials',
    checked: setting('anneald.hideTrials', '') === '1',
    onchange: () => { keepSetting('anneald.hideTrials', hideTrials.checked ? '1' : ''); render(); }});
  const tbody = h('tbody');
  const empty = h('p.empty#jobs-empty', {hidden: true},
    'No jobs', filter ? ` in state "${filter}"` : '', '. ', h('a', {href: '#/new', text: 'Submit one'}), '.');
  const more = h('button#jobs-more', {hidden: true, text: 'Show more',
    onclick: () => { limit += PAGE; load(); }});
  const table = h('table.jobs#jobs-table', {'data-testid': 'jobs-table'},
    h('thead', null, h('tr', null,
      h('th.sel', null, ''), h('th', {text: 'Job'}), h('th', {text: 'State'}), h('th.prog', {text: 'Progress'}),
      h('th.num', {text: 'Loss'}), h('th.num', {text: 'LR'}), h('th.num', {text: 'Samples/s'}),
      h('th.num', {text: 'ETA'}), h('th', {text: 'Created'}))),
    tbody);

  root.append(
    h('section.page#page-jobs', null,
      h('div.toolbar', null, h('h1', {text: 'Jobs'}), count, h('span.grow'),
        h('label.inline.small', null, hideTrials, ' hide sweep trials'), select, compareBtn,
        h('a.button.primary', {href: '#/new', text: 'New job', 'data-testid': 'new-job-link'})),
      h('div.card.table-wrap', null, table, empty), more));

  function cell(label, cls) {
    return h(`td${cls || ''}`, {'data-label': label});
  }

  function makeRow(id) {
    const box = h('input', {type: 'checkbox', 'aria-label': 'select ' + id, 'data-testid': 'job-select',
      onchange: () => {
        if (box.checked) selected.add(id); else selected.delete(id);
        compareBtn.disabled = selected.size < 2;   // a comparison needs two
        compareBtn.textContent = selected.size ? `Compare selected (${selected.size})` : 'Compare selected';
      }});
    const c = {
      name: cell('Job', '.name'), state: cell('State'), prog: cell('Progress', '.prog'),
      loss: cell('Loss', '.num'), lr: cell('LR', '.num'), sps: cell('Samples/s', '.num'),
      eta: cell('ETA', '.num'), created: cell('Created', '.created'),
    };
    const tr = h('tr', {'data-job-id': id, 'data-testid': 'job-row'},
      h('td.sel', null, box), c.name, c.state, c.prog, c.loss, c.lr, c.sps, c.eta, c.created);
    return {tr, c};
  }

  function fill(row, j) {
    const {c} = row;
    row.tr.dataset.state = j.state;
    // what the job is beside an ordinary run: an lr sweep, a sweep's trial
    const kind = j.kind === 'lr_finder' ? 'lr finder' : j.sweep ? `${j.sweep} trial ${j.trial}` : '';
    c.name.replaceChildren(h('a', {href: '#/job/' + encodeURIComponent(j.id), text: j.name || j.id, title: j.name || j.id}),
      h('div.muted.small', {text: j.id + (kind ? ' · ' + kind : '')}));
    c.state.replaceChildren(stateBadge(j.state));
    const frac = j.total_steps ? Math.min(1, (j.step || 0) / j.total_steps) : 0;
    c.prog.replaceChildren(
      h('div.bar', {role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
                    'aria-valuenow': Math.round(frac * 100), 'data-testid': 'job-progress'},
        h('div.fill', {style: `width:${(frac * 100).toFixed(1)}%`})),
      h('div.small.nowrap', {'data-testid': 'job-steps', text: `${fmtInt(j.step || 0)} / ${fmtInt(j.total_steps)}`}));
    c.loss.textContent = fmtNum(j.loss);
    c.lr.textContent = fmtLr(j.lr);
    c.sps.textContent = j.state === 'running' ? fmtRate(j.samples_per_sec) : '—';
    c.eta.textContent = j.state === 'running' || j.state === 'queued' ? fmtDuration(etaOf(j)) : '—';
    c.created.textContent = fmtTime(j.created_at);
  }

  // Newest first: the server lists that way; ids grow with time, so they order live arrivals too.
  function render() {
    if (gone) return;
    const all = [...jobs.values()];
    const list = (hideTrials.checked ? all.filter((j) => !j.sweep) : all).sort((a, b) =>
      String(b.created_at || '').localeCompare(String(a.created_at || '')) || String(b.id).localeCompare(String(a.id)));
    const hidden = all.length - list.length;
    const want = [];
    for (const j of list) {
      let row = rows.get(j.id);
      if (!row) { row = makeRow(j.id); rows.set(j.id, row); }
      fill(row, j);
      want.push(row.tr);
    }
    const shown = new Set(list.map((j) => j.id));
    for (const [id, row] of rows) if (!shown.has(id)) { row.tr.remove(); rows.delete(id); selected.delete(id); }
    want.forEach((tr, i) => { if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null); });
    empty.hidden = list.length > 0;
    count.textContent = `${total} job${total === 1 ? '' : 's'}` +
      (hidden ? ` (${hidden} sweep trial${hidden === 1 ? '' : 's'} hidden)` : '');
    more.hidden = jobs.size >= total;
  }
  const renderSoon = perFrame(render);

  async function load() {
    try {
      // The first `limit` jobs, in pages of at most the API's 1000.
      const list = [];
      let res = null;
      for (let offset = 0; offset < limit;) {
        const n = Math.min(limit - offset, API_MAX_LIMIT);
        const q = new URLSearchParams({limit: String(n), offset: String(offset)});
        if (filter) q.set('state', filter);
        res = await api('GET', '/v1/jobs?' + q);
        if (gone) return;
        list.push(...res.jobs);
        offset += n;
        if (res.jobs.length < n) break;
      }
      total = res.total == null ? list.length : res.total;
      jobs.clear();
      for (const j of list) jobs.set(j.id, j);
      render();
    } catch (e) {
      if (!gone) toast('Could not list jobs: ' + e.message, 'error');
    }
  }
  const reload = debounce(load, 250);

  openEvents('/v1/events', {
    open: reload,
    progress(ev) {
      const j = jobs.get(ev.id);
      if (!j) {
        // A job this page has not listed: ask once (it may be beyond the page shown).
        if ((!filter || filter === 'running') && !asked.has(ev.id)) { asked.add(ev.id); reload(); }
        return;
      }
      Object.assign(j, {step: ev.step, loss: ev.loss, lr: ev.lr, samples_per_sec: ev.samples_per_sec,
                        eta_s: ev.eta_s});
      if (ev.total_steps != null) j.total_steps = ev.total_steps;
      renderSoon();
    },
    state(ev) {
      const j = jobs.get(ev.id);
      // A new job, or one that moved into or out of the filtered state: ask the server.
      if (!j || (filter && ev.state !== filter)) { reload(); return; }
      j.state = ev.state;
      if (ev.error !== undefined) j.error = ev.error;
      if (ev.state !== 'running') j.eta_s = null;
      renderSoon();
      if (ev.state === 'completed') reload();
    },
    deleted(ev) { // by another page or a client: the row goes, and the count with it
      if (jobs.delete(ev.id)) total = Math.max(0, total - 1);
      renderSoon();
    },
  });
  load();
  return () => { gone = true; reload.cancel(); };
}
