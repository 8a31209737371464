// A JSON reader that remembers where each value stands in the text, so an error that names a
// JSON path ("ds_config.scheduler.params.warmup_num_steps") can be shown at its place in the
// editor, and a syntax error at its line and column.

export class JsonSyntaxError extends Error {
  constructor(msg, pos) {
    super(msg);
    this.pos = pos;
  }
}

// Parses text. Returns {value, spans}: spans maps a path ("a.b.0.c"; array indices as
// segments) to {start, end, keyStart} offsets in text. Throws JsonSyntaxError.
export function parseWithSpans(text) {
  let i = 0;
  const spans = new Map();
  const fail = (msg) => { throw new JsonSyntaxError(msg, i); };
  const ws = () => { while (i < text.length && ' \t\r\n'.includes(text[i])) i++; };
  const str = () => {
    const s = i;
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') i++;
      else if (text[i] === '\n') fail('line break inside a string');
      i++;
    }
    if (i >= text.length) { i = s; fail('a string is not closed'); }
    i++;
    try { return JSON.parse(text.slice(s, i)); } catch { i = s; return fail('a bad escape in this string'); }
  };
  const val = (path, keyStart) => {
    ws();
    const start = i;
    let v;
    const c = text[i];
    if (c === '{') {
      v = {};
      i++;
      ws();
      if (text[i] === '}') i++;
      else {
        for (;;) {
          ws();
          if (text[i] !== '"') fail(text[i] === '}' ? 'a trailing comma before }' : 'expected a "key"');
          const ks = i;
          const k = str();
          ws();
          if (text[i] !== ':') fail('expected : after the key');
          i++;
          v[k] = val(path ? path + '.' + k : k, ks);
          ws();
          if (text[i] === ',') { i++; continue; }
          if (text[i] === '}') { i++; break; }
          fail('expected , or } after a value');
        }
      }
    } else if (c === '[') {
      v = [];
      i++;
      ws();
      if (text[i] === ']') i++;
      else {
        for (let n = 0; ; n++) {
          ws();
          if (text[i] === ']') fail('a trailing comma before ]');
          v.push(val(path ? path + '.' + n : String(n)));
          ws();
          if (text[i] === ',') { i++; continue; }
          if (text[i] === ']') { i++; break; }
          fail('expected , or ] after a value');
        }
      }
    } else if (c === '"') {
      v = str();
    } else {
      const m = /^(-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
      if (!m) fail(i >= text.length ? 'the text ends early' : `unexpected ${JSON.stringify(text[i])}`);
      i += m[0].length;
      v = JSON.parse(m[0]);
    }
    spans.set(path, {start, end: i, keyStart: keyStart == null ? start : keyStart});
    return v;
  };
  const value = val('');
  ws();
  if (i < text.length) fail('more text after the JSON value');
  return {value, spans};
}

// "a.b[0].c" and "a.b.0.c" and "$.a.b" name the same place.
export function normalizePath(p) {
  return String(p || '').replace(/^\$\.?/, '').replace(/\[(\d+)\]/g, '.$1').replace(/^\./, '');
}

// The span of path, or of its nearest ancestor that exists (a missing key is shown at the
// object that should hold it). Returns {span, exact}.
export function findSpan(spans, path) {
  let p = normalizePath(path);
  let exact = true;
  for (;;) {
    if (spans.has(p)) return {span: spans.get(p), exact};
    if (!p) return null;
    exact = false;
    const cut = p.lastIndexOf('.');
    p = cut < 0 ? '' : p.slice(0, cut);
  }
}

// 0-based line and column of offset pos.
export function lineCol(text, pos) {
  let line = 0, last = -1;
  for (let k = 0; k < pos && k < text.length; k++) if (text[k] === '\n') { line++; last = k; }
  return {line, col: pos - last - 1};
}
