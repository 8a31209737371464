// Scheduling and retention on the job page: the job's priority, tags, notes and scheduler
// state (preempted, restarts) under its title, and the pinned/best marks and the Pin button of
// each checkpoint row.
import {h, toast} from './util.js';
import {api} from './api.js';

// The labels line of job `j`.
export function labelsView(j) {
  const s = j.spec || {};
  const tags = Array.isArray(s.tags) ? s.tags : [];
  return [
    h('span.label', {'data-testid': 'job-priority', title: 'priority: higher runs first'},
      'priority ', h('b', {text: String(s.priority ?? 0)})),
    s.preemptible === false ? h('span.label.muted', {'data-testid': 'job-not-preemptible', text: 'not preemptible'}) : null,
    j.preempted ? h('span.badge.st-queued', {'data-testid': 'job-preempted', text: 'preempted'}) : null,
    j.restarts ? h('span.label', {'data-testid': 'job-restarts', text: `restarts ${j.restarts}`}) : null,
    ...tags.map((t) => h('span.tag', {'data-testid': 'job-tag', text: t})),
    s.notes ? h('p.notes', {'data-testid': 'job-notes', text: s.notes}) : null,
  ];
}

// The "kept" cell and the pin button of checkpoint `c` of job `id`; `reload` lists them again.
export function checkpointMarks(id, c, reload) {
  const marks = h('td', {'data-label': 'Kept', 'data-testid': 'checkpoint-marks'},
    c.pinned ? h('span.badge.pinned', {text: 'pinned'}) : null,
    c.best ? h('span.badge.best', {text: 'best'}) : null);
  const verb = c.pinned ? 'unpin' : 'pin';
  const button = h('button.small', {
    text: c.pinned ? 'Unpin' : 'Pin', 'data-testid': 'pin-checkpoint',
    title: c.pinned ? 'let retention remove this checkpoint again' : 'keep this checkpoint: retention never removes it',
    onclick: async () => {
      button.disabled = true;
      try {
        await api('POST', `/v1/jobs/${encodeURIComponent(id)}/checkpoints/${c.step}/${verb}`, {});
        toast(`checkpoint at step ${c.step} ${verb}ned`);
      } catch (e) { toast(`${verb}: ${e.message}`, 'error'); }
      reload();
    }});
  return [marks, button];
}
