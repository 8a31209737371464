// Schedules without training: the body of POST /v1/schedules/preview built from a job spec,
// and the momentum a job's schedule cycles (the metrics carry lr only).
import {api} from './api.js';

// Steps previewed for a job page's momentum curve at most (the preview answers every step).
const MOMENTUM_MAX_STEPS = 200000;
const CYCLING = new Set(['onecycle', 'cycliclr', 'onecyclelr']);

// {ds_config, steps, param_groups} for a job spec: group 0 takes the optimizer's lr, each entry
// of the spec's param_groups its own lr (or the optimizer's when it sets none).
export function previewBody(spec) {
  const ds = spec.ds_config || {};
  const body = {ds_config: ds, steps: Number.isInteger(spec.steps) ? spec.steps : 1000};
  if (Array.isArray(spec.param_groups) && spec.param_groups.length) {
    const base = ds.optimizer && ds.optimizer.params ? ds.optimizer.params.lr : undefined;
    const lr0 = typeof base === 'number' ? base : 1e-3;
    body.param_groups = [{lr: lr0}, ...spec.param_groups.map((g) => ({lr: typeof g.lr === 'number' ? g.lr : lr0}))];
  }
  return body;
}

export function preview(body, signal) {
  return api('POST', '/v1/schedules/preview', body, {signal});
}

function cycles(sched) {
  if (!sched || typeof sched.type !== 'string') return false;
  const t = sched.type.toLowerCase();
  if (CYCLING.has(t)) return true;
  if (t === 'multiphase') {
    const phases = (sched.params && sched.params.phases) || sched.phases || [];
    return phases.some((p) => cycles(p));
  }
  return false;
}

// Resolves to [[beta1 of step s at index s-1] per group] when the job's schedule cycles
// momentum, else null.
export async function momentumSchedule(job) {
  const spec = job && job.spec;
  if (!spec || !spec.ds_config || !cycles(spec.ds_config.scheduler)) return null;
  const steps = job.total_steps || spec.steps;
  if (!steps || steps > MOMENTUM_MAX_STEPS) return null;
  const r = await preview({...previewBody(spec), steps});
  const m = r && r.momentum;
  if (!Array.isArray(m) || !m.length || !Array.isArray(m[0]) || !m[0].length) return null;
  return m;
}
