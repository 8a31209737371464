// What the job page shows in place of its charts while the job has no step to draw: a queued
// job's place in the queue, a job starting, or one that ended before its first step.
import {h, FINISHED} from './util.js';
import {api} from './api.js';

// {position (1 = next), of} of job `id` among the queued jobs, in the order the workers take
// them (docs/API.md, Scheduling: by priority, then age), as the daemon counts it
// (queue_position, queue_length), or null when it is not queued.
export async function queuePosition(id) {
  const j = await api('GET', `/v1/jobs/${encodeURIComponent(id)}`);
  return j && j.queue_position ? {position: j.queue_position, of: j.queue_length} : null;
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
    // other jobs start and end meanwhile, without an event on this job's stream
    timer = setTimeout(() => { timer = 0; place(id); }, 3000);
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
