// What the job page shows in place of its charts while the job has no step to draw: a queued
// job's place in the queue, a job starting, or one that ended before its first step.
import {h, FINISHED} from './util.js';
import {api} from './api.js';

// The order the workers take queued jobs in (docs/API.md, Scheduling): highest priority
// first, then the oldest (smallest id; ids grow with the number they end in).
function ahead(a, b) {
  const pa = (a.spec && a.spec.priority) || 0, pb = (b.spec && b.spec.priority) || 0;
  if (pa !== pb) return pb - pa;
  const na = Number(String(a.id).replace(/\D/g, '')), nb = Number(String(b.id).replace(/\D/g, ''));
  return na !== nb ? na - nb : String(a.id) < String(b.id) ? -1 : 1;
}

// {position (1 = next), of, pages} of job `id` among the queued jobs, or null when it is not
// queued. The list comes newest first in pages of at most 1000: every page is read (up to
// --max-queued's million), as the job may be the oldest of many.
export async function queuePosition(id) {
  const all = [];
  let total = 0, pages = 0;
  for (let offset = 0; offset <= 1000000; offset += 1000) {
    const r = await api('GET', `/v1/jobs?state=queued&limit=1000&offset=${offset}`);
    const got = r.jobs || [];
    total = r.total || 0;
    pages++;
    all.push(...got);
    if (got.length < 1000 || all.length >= total) break;
  }
  const q = all.sort(ahead);
  const i = q.findIndex((j) => j.id === id);
  return i < 0 ? null : {position: i + 1, of: Math.max(q.length, total), pages};
}

// The box, and show(job, hasSteps): true when the charts are to be shown.
export function waitingBox() {
  const title = h('strong#waiting-title');
  const detail = h('span.muted.small#waiting-detail');
  const el = h('div.waiting#chart-waiting', {'data-testid': 'chart-waiting', hidden: true}, title, ' ', detail);
  let timer = 0, asked = null, stopped = false;
  function stop() { clearTimeout(timer); timer = 0; }
  async function place(id) {
    if (asked || stopped) return;
    asked = queuePosition(id).catch(() => null);
    const p = await asked;
    asked = null;
    if (stopped || el.hidden || el.dataset.state !== 'queued') return;
    detail.textContent = p ? `position ${p.position} of ${p.of} in the queue (by priority, then age)` : '';
    el.dataset.position = p ? String(p.position) : '';
    // other jobs start and end meanwhile, without an event on this job's stream; a long queue
    // (several pages of it) is read less often
    timer = setTimeout(() => { timer = 0; place(id); }, 3000 * (p ? p.pages : 1));
  }
  function show(job, hasSteps) {
    const waiting = !hasSteps && job && !(job.step > 0);
    if (stopped) return !waiting;   // the page is gone: it asks nothing more
    el.hidden = !waiting;
    if (!waiting) { stop(); return true; }
    if (el.dataset.state !== job.state) {
      el.dataset.state = job.state;
      stop();
      detail.textContent = '';
      if (job.state === 'queued') {
        title.textContent = 'Queued — no steps yet.';
        place(job.id);
      } else if (FINISHED.has(job.state)) {
        title.textContent = `No steps: the job was ${job.state} before its first step.`;
      } else {
        title.textContent = job.state === 'running' ? 'Starting — no steps yet.' : `${job.state[0].toUpperCase()}${job.state.slice(1)} — no steps yet.`;
      }
    }
    return false;
  }
  return {el, show, stop: () => { stopped = true; stop(); }};
}
