// The daemon's HTTP API as the dashboard uses it: JSON requests with the access token, a token
// prompt when the daemon answers 401, and the page's one Server-Sent Events stream.
import {h} from './util.js';

const TOKEN_KEY = 'anneald.token';

// Where the browser refuses storage (blocked, some private modes), the token lives in this
// page only, or every request would ask for it again.
let pageToken = '';

export function token() {
  try { return localStorage.getItem(TOKEN_KEY) || pageToken; } catch { return pageToken; }
}

function setToken(t) {
  pageToken = t;
  try { localStorage.setItem(TOKEN_KEY, t); } catch { /* kept in pageToken */ }
}

// A setting kept across visits, or `fallback` where storage is refused.
export function setting(key, fallback) {
  try { return localStorage.getItem(key) ?? fallback; } catch { return fallback; }
}

export function keepSetting(key, value) {
  try { localStorage.setItem(key, value); } catch { /* this page only */ }
}

// An error answer of the daemon: {"error": {code, message, field}} plus the HTTP status.
export class ApiError extends Error {
  constructor(status, body, fallback) {
    const e = (body && body.error) || {};
    super(e.message || fallback || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || '';
    this.field = e.field || '';
    // Every error of a rejected job spec (the first is the one above), when the daemon lists them.
    this.all = (body && Array.isArray(body.errors)) ? body.errors : [];
  }
}

let prompting = null;

// Asks for the token once, however many requests got 401 at the same time. Resolves when the
// user saved a token.
export function askToken(reason) {
  if (prompting) return prompting;
  prompting = new Promise((resolve) => {
    const input = h('input#token-input', {type: 'password', autocomplete: 'off',
                                          placeholder: 'access token', 'data-testid': 'token-input'});
    const form = h('form.modal-card', {onsubmit: (ev) => {
      ev.preventDefault();
      setToken(input.value.trim());
      overlay.remove();
      prompting = null;
      resolve();
    }},
    h('h2', {text: 'Access token'}),
    h('p', {text: reason || 'The daemon asks for a token (anneald --token-file). It is kept in this browser.'}),
    input,
    h('div.row', null, h('button.primary', {type: 'submit', 'data-testid': 'token-save', text: 'Save'})));
    const overlay = h('div.modal#token-modal', {'data-testid': 'token-modal'}, form);
    document.body.append(overlay);
    input.focus();
  });
  return prompting;
}

// One HTTP exchange. Resolves to the parsed JSON (or text for non-JSON answers, null for 204);
// rejects with ApiError on any non-2xx. A 401 prompts for the token and retries.
export async function api(method, path, body, opts = {}) {
  for (;;) {
    const headers = {};
    const t = token();
    if (t) headers.Authorization = 'Bearer ' + t;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, {method, headers, signal: opts.signal,
                                   body: body === undefined ? undefined : JSON.stringify(body)});
    if (res.status === 401 && !opts.noPrompt) {
      await askToken(t ? 'The token was refused. Enter the right one.' : undefined);
      continue;
    }
    if (res.status === 204) return null;
    const type = res.headers.get('content-type') || '';
    // A 2xx body cut short (the daemon stopped mid-stream) rejects here rather than reading
    // as an empty answer; an error's body is only its explanation, so a bad one is let go.
    const data = !type.includes('json') ? await res.text()
      : res.ok ? await res.json() : await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, typeof data === 'object' ? data : null,
                                    typeof data === 'string' ? data.slice(0, 200) : '');
    return data;
  }
}

// Downloads a file the API serves, from a route that takes ?access_token= (the metrics).
export async function download(path, filename) {
  // The answer's head first, so that a missing token is asked for and an error shown before
  // any file appears; then a plain link, which the browser streams to disk (reading the body
  // here would hold the whole file, gigabytes for a long job, in memory). A link carries no
  // header: the token goes in its query (the daemon takes ?access_token= on this route).
  const t = token();
  const ctl = new AbortController();
  const res = await fetch(path, {headers: t ? {Authorization: 'Bearer ' + t} : {}, signal: ctl.signal});
  if (res.status === 401) { ctl.abort(); await askToken(); return download(path, filename); }
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
  ctl.abort();
  const url = t ? path + (path.includes('?') ? '&' : '?') + 'access_token=' + encodeURIComponent(t) : path;
  const a = h('a', {href: url, download: filename});
  document.body.append(a);
  a.click();
  a.remove();
}

// The page's single EventSource. Opening a new stream closes the previous one, so a route
// change never leaves a stream behind. handlers: {state, progress, checkpoint, sweep, deleted,
// open, exists, gone}: when the stream ends for good, `exists()` (async) is asked whether what it
// streams is still there; false stops the reconnecting and calls `gone()`.
// lastId: the id of the last event a previous stream of the page delivered; the new stream
// starts after it (?last_event_id=, as EventSource cannot set the Last-Event-ID header), so
// the daemon replays what came meanwhile, or sends a fresh snapshot when it no longer can.
let current = null;

export function openEvents(path, handlers, lastId) {
  closeEvents();
  const t = token();
  const q = [t ? 'access_token=' + encodeURIComponent(t) : '',
             lastId ? 'last_event_id=' + encodeURIComponent(lastId) : ''].filter(Boolean).join('&');
  const url = q ? path + (path.includes('?') ? '&' : '?') + q : path;
  const es = new EventSource(url);
  const me = {es, closed: false, lastId};
  current = me;
  for (const name of ['state', 'progress', 'checkpoint', 'sweep', 'deleted']) {
    es.addEventListener(name, (ev) => {
      if (ev.lastEventId) me.lastId = ev.lastEventId;
      if (!handlers[name]) return;
      let data;
      try { data = JSON.parse(ev.data); } catch { return; }
      handlers[name](data);
    });
  }
  es.addEventListener('open', () => { setLive(true); if (handlers.open) handlers.open(); });
  // EventSource reconnects by itself (sending Last-Event-ID); it gives up only when the server
  // answers with an error status. Find out whether that was 401 and, if so, ask for the token.
  es.addEventListener('error', async () => {
    setLive(false, true);
    if (es.readyState !== EventSource.CLOSED || me.closed) return;
    try {
      await api('GET', '/v1/jobs?limit=1');
      if (handlers.exists && !(await handlers.exists()) && current === me) {
        closeEvents(); // deleted: nothing will come back on this stream
        if (handlers.gone) handlers.gone();
        return;
      }
    } catch { /* the daemon is away: try again below */ }
    if (current === me) setTimeout(() => { if (current === me) openEvents(path, handlers, me.lastId); }, 2000);
  });
  return es;
}

export function closeEvents() {
  if (current) {
    current.closed = true;
    current.es.close();
    current = null;
  }
  setLive(false);
  // a page without a stream (or one gone for good) cannot tell the daemon is away
  clearTimeout(lostTimer);
  lostTimer = 0;
  const banner = document.getElementById('offline');
  if (banner) banner.hidden = true;
}

// The banner that says the daemon is away: shown when a stream has been down for 3 s (a
// reconnect that quick goes unnoticed), gone as soon as one is open again.
let lostTimer = 0;

function setLive(on, lost) {
  const dot = document.getElementById('live');
  if (dot) {
    dot.classList.toggle('on', on);
    dot.title = on ? 'live: connected to the event stream' : 'not connected';
  }
  const banner = document.getElementById('offline');
  if (!banner) return;
  if (on) {
    clearTimeout(lostTimer);
    lostTimer = 0;
    banner.hidden = true;
  } else if (lost && !lostTimer && banner.hidden) {
    lostTimer = setTimeout(() => { lostTimer = 0; banner.hidden = false; }, 3000);
  }
}
