// The "Sample" box of a gpt job's page: a prompt and the sampling settings, sent to
// POST /v1/jobs/{id}/generate as a Server-Sent Events stream so the text appears token by
// token; Stop ends it early. An error (a character outside the vocabulary, no checkpoint yet)
// shows with its field; a 401 asks for the access token as every other request does.
import {h} from './util.js';
import {token, askToken} from './api.js';

// Reads an SSE body, calling onEvent(name, data) for each event.
async function readSse(res, onEvent) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buf += dec.decode(value, {stream: true});
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let ev = 'message', data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) ev = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      onEvent(ev, data ? JSON.parse(data) : null);
    }
  }
}

export function sampleBox(jobId) {
  let ready = true;   // the job has a checkpoint (box.setReady)
  const num = (id, label, value, attrs) => {
    const el = h(`input#${id}`, {type: 'number', value, 'data-testid': id, ...attrs});
    return [el, h('label.small', null, label + ' ', el)];
  };
  const prompt = h('textarea#sample-prompt', {rows: 2, 'data-testid': 'sample-prompt', 'aria-label': 'prompt',
                                              placeholder: 'a prompt, e.g. ROMEO:'});
  const [maxTok, maxLabel] = num('sample-max-tokens', 'tokens', 200, {min: 1, max: 100000});
  const [temp, tempLabel] = num('sample-temperature', 'temperature', 0.8, {min: 0, max: 100, step: 0.1});
  const [topk, topkLabel] = num('sample-top-k', 'top k', 0, {min: 0});
  const [seed, seedLabel] = num('sample-seed', 'seed', 0, {min: 0});
  const out = h('pre.sample#sample-output', {'data-testid': 'sample-output'});
  const err = h('div.alert#sample-error', {hidden: true, 'data-testid': 'sample-error'});
  const status = h('span.muted.small#sample-status', {'data-testid': 'sample-status'});
  const go = h('button#sample-go', {text: 'Sample', 'data-testid': 'sample-go', onclick: () => run()});
  const stopBtn = h('button#sample-stop', {text: 'Stop', 'data-testid': 'sample-stop', disabled: true,
                                           onclick: () => { if (ctl) { stopped = true; ctl.abort(); } }});
  let ctl = null; // the running request's: Stop or leaving the page ends the generation
  let stopped = false; // Stop was clicked (leaving the page aborts without it)

  // POSTs the request; a 401 asks for the token and sends it again.
  async function post(body, signal) {
    for (;;) {
      const t = token();
      const headers = {'Content-Type': 'application/json', Accept: 'text/event-stream'};
      if (t) headers.Authorization = 'Bearer ' + t;
      const res = await fetch(`/v1/jobs/${encodeURIComponent(jobId)}/generate`,
                              {method: 'POST', headers, body: JSON.stringify(body), signal});
      if (res.status !== 401) return res;
      await askToken(t ? 'The token was refused. Enter the right one.' : undefined);
      if (signal.aborted) throw new DOMException('stopped', 'AbortError');
    }
  }

  async function run() {
    go.disabled = true;
    stopBtn.disabled = false;
    stopped = false;
    err.hidden = true;
    out.textContent = prompt.value;
    status.textContent = 'sampling…';
    // an emptied field takes the daemon's default (0 would be a value, and refused)
    const body = {prompt: prompt.value};
    for (const [key, el] of [['max_tokens', maxTok], ['temperature', temp], ['top_k', topk], ['seed', seed]])
      if (el.value.trim() !== '') body[key] = Number(el.value);
    ctl = new AbortController();
    const signal = ctl.signal;
    let n = 0;
    try {
      const res = await post(body, signal);
      if (!res.ok) {
        const j = await res.json().catch(() => null);
        const e = j && j.error;
        // the field, when it is one of the box's and the message does not already name it
        const named = e && e.field && e.field in body && !e.message.startsWith(e.field);
        throw new Error(e ? (named ? e.field + ': ' : '') + e.message : 'HTTP ' + res.status);
      }
      await readSse(res, (ev, data) => {
        if (ev === 'token') {
          out.append(data.token); // a text node each: += would copy the whole text per token
          n++;
        } else if (ev === 'done') {
          status.textContent = `${data.tokens} tokens from the checkpoint at step ${data.step}`;
          out.dataset.step = String(data.step);
        }
      });
      if (!n && !status.textContent.includes('tokens')) status.textContent = 'no tokens';
      else if (!status.textContent.includes('tokens'))
        status.textContent = `${n} tokens; the stream ended before its last event`;
    } catch (e) {
      if (signal.aborted) { // Stop, or the page was left
        if (stopped) status.textContent = `stopped after ${n} tokens`;
        return;
      }
      err.textContent = e.message;
      err.hidden = false;
      status.textContent = '';
      out.textContent = '';   // no sample: not the prompt alone, as if it were one
    } finally {
      go.disabled = !ready;
      stopBtn.disabled = true;
    }
  }

  const box = h('div.card#sample-box', {'data-testid': 'sample-box'},
    h('h2', {text: 'Sample'}), prompt,
    h('div.controls', null, maxLabel, tempLabel, topkLabel, seedLabel, go, stopBtn, status), err, out);
  // The job page calls this when it goes: a generation still streaming would otherwise keep
  // the daemon making tokens for a page nobody sees.
  box.stop = () => { if (ctl) ctl.abort(); };
  // The job page tells it whether the job has a checkpoint to sample from yet.
  box.setReady = (yes) => {
    ready = yes;
    if (stopBtn.disabled) go.disabled = !yes;   // not while a sample streams
    go.title = yes ? '' : 'the job has no checkpoint yet: sampling reads one';
  };
  return box;
}
