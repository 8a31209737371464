// Small helpers shared by every page of the dashboard: building DOM nodes, formatting numbers,
// times and durations, and reading the hash route.

// h('div.card#main', {onclick, 'data-testid': 'x'}, child, ...) builds an element. Children may be
// strings, nodes, arrays or null (skipped), so a page reads as the tree it builds.
export function h(tag, attrs, ...children) {
  const m = /^([a-z0-9]+)?((?:[.#][\w-]+)*)$/i.exec(tag);
  const el = document.createElement((m && m[1]) || 'div');
  if (m && m[2]) {
    for (const part of m[2].match(/[.#][\w-]+/g)) {
      if (part[0] === '.') el.classList.add(part.slice(1));
      else el.id = part.slice(1);
    }
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    // through the CSSOM: the page's Content-Security-Policy (style-src 'self') refuses a
    // style attribute, set by markup or by setAttribute
    else if (k === 'style') el.style.cssText = v;
    else if (k === 'value' || k === 'checked' || k === 'disabled') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, kids) {
  for (const c of kids) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// A number in at most 4 significant digits; exponent form when tiny or huge (learning rates
// such as 3e-5 read better that way than 0.00003).
export function fmtNum(x) {
  if (x == null || Number.isNaN(x)) return '—';
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(2).replace('e+', 'e');
  return String(Number(x.toPrecision(4)));
}

export function fmtLr(lr) {
  if (Array.isArray(lr)) return lr.length ? lr.map(fmtNum).join(' / ') : '—';
  return fmtNum(lr);
}

export function fmtInt(x) {
  return x == null ? '—' : Math.round(x).toLocaleString('en-US');
}

export function fmtRate(x) {
  if (x == null || !Number.isFinite(x)) return '—';
  if (x >= 1e6) return (x / 1e6).toFixed(2) + 'M';
  if (x >= 1e3) return (x / 1e3).toFixed(1) + 'k';
  return x.toFixed(1);
}

// Seconds as "1h 02m", "3m 07s", "12s".
export function fmtDuration(s) {
  if (s == null || !Number.isFinite(s) || s < 0) return '—';
  s = Math.round(s);
  if (s < 60) return s + 's';
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, {month: 'short', day: 'numeric', hour: '2-digit',
                                       minute: '2-digit', second: '2-digit'});
}

export function fmtBytes(b) {
  if (b == null) return '—';
  const u = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return (i ? b.toFixed(1) : b) + ' ' + u[i];
}

// The route in the hash: "#/job/j_000001?x=1" -> {parts: ['job', 'j_000001'], query}.
export function parseHash(hash) {
  const raw = (hash || '').replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  // a part that is not valid percent-encoding ("#/job/100%") is taken as written
  const decode = (p) => { try { return decodeURIComponent(p); } catch { return p; } };
  return {parts: path.split('/').filter(Boolean).map(decode),
          query: new URLSearchParams(qs || '')};
}

// Calls fn at most once per animation frame, with the latest arguments.
export function perFrame(fn) {
  let pending = false, args = [];
  return (...a) => {
    args = a;
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; fn(...args); });
  };
}

// Calls fn once, ms after the last call.
export function debounce(fn, ms) {
  let t = 0;
  const d = (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
  d.cancel = () => clearTimeout(t);
  return d;
}

// Calls fn at once, then at most once per ms while calls keep coming: a call during the wait
// makes one more call at its end, so the last call is always followed by a run (a debounce
// would never run while calls come faster than its delay).
export function throttle(fn, ms) {
  let t = 0, again = false;
  const run = () => {
    t = setTimeout(() => { t = 0; if (again) { again = false; run(); } }, ms);
    fn();
  };
  const d = () => { if (t) again = true; else run(); };
  d.cancel = () => { clearTimeout(t); t = 0; again = false; };
  return d;
}

export const STATES = ['queued', 'running', 'paused', 'completed', 'failed', 'cancelled', 'stopped'];
export const FINISHED = new Set(['completed', 'failed', 'cancelled', 'stopped']);

export function stateBadge(state) {
  return h(`span.badge.st-${state || 'unknown'}`, {'data-testid': 'job-state', text: state || '?'});
}

// Remaining time of a job: the event's eta_s when the server sent one, else from the step rate
// (samples/s over the batch size).
export function etaOf(job) {
  if (FINISHED.has(job.state)) return 0;
  if (job.eta_s != null) return job.eta_s;
  const bs = job.spec && job.spec.ds_config && Number(job.spec.ds_config.train_batch_size);
  if (!job.samples_per_sec || !bs || !job.total_steps) return null;
  return (job.total_steps - (job.step || 0)) / (job.samples_per_sec / bs);
}

// A short message at the bottom of the screen (results and errors of buttons).
export function toast(msg, kind) {
  const el = document.getElementById('toast');
  if (!el) return;
  const item = h(`div.toast-item${kind === 'error' ? '.error' : ''}`, {text: msg, 'data-testid': 'toast'});
  el.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 6000 : 3000);
}
