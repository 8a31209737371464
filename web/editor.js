// The JSON editor of the New-job page: a textarea with line numbers, and errors shown where
// they are — the named field's text is marked and the message stands just under its line.
import {h} from './util.js';
import {parseWithSpans, findSpan, lineCol, normalizePath, JsonSyntaxError} from './jsonpos.js';

const LINE_PX = 20;     // must match .editor line-height in style.css
const PAD_PX = 10;      // must match .editor textarea padding

export class JsonEditor {
  constructor({onInput}) {
    this.ta = h('textarea#spec-editor', {spellcheck: 'false', wrap: 'off', autocomplete: 'off',
                                         'aria-label': 'job spec (JSON)', 'data-testid': 'spec-editor'});
    this.gutter = h('div.gutter', {'aria-hidden': 'true'});
    this.back = h('pre.backdrop', {'aria-hidden': 'true'});
    this.bubble = h('div.field-error#field-error', {hidden: true, 'data-testid': 'field-error', role: 'alert'});
    this.el = h('div.editor', null, this.gutter, h('div.edit-area', null, this.back, this.ta, this.bubble));
    this.mark = null;
    this.extra = [];          // the bubbles of errors after the first: [{line, el}]
    this.errLines = new Set();
    this.ta.addEventListener('input', () => {
      this.clearError();
      this.lines();
      if (onInput) onInput(this.ta.value);
    });
    this.ta.addEventListener('scroll', () => this.sync());
    this.ta.addEventListener('keydown', (ev) => {
      // Tab indents by two spaces rather than leaving the editor.
      if (ev.key === 'Tab' && !ev.shiftKey) {
        ev.preventDefault();
        document.execCommand('insertText', false, '  ');
      }
    });
  }

  get value() { return this.ta.value; }

  set value(text) {
    this.ta.value = text;
    this.clearError();
    this.lines();
  }

  // {value} or {error: JsonSyntaxError}; a syntax error is shown at once.
  parse() {
    try {
      return {value: parseWithSpans(this.ta.value).value};
    } catch (e) {
      if (!(e instanceof JsonSyntaxError)) throw e;
      const {line, col} = lineCol(this.ta.value, e.pos);
      this.showAt(e.pos, Math.min(this.ta.value.length, e.pos + 1),
                  `Not JSON: ${e.message} (line ${line + 1}, column ${col + 1})`, '');
      return {error: e};
    }
  }

  // Shows a server error ({message, field}) at the field it names; without a field (or one
  // that is not in the text) under the first line. Returns true when the field was found.
  showFieldError(message, field) {
    let spans;
    try { ({spans} = parseWithSpans(this.ta.value)); } catch { spans = new Map(); }
    const found = field ? findSpan(spans, field) : null;
    if (!found) { this.showAt(0, 0, message, field); return false; }
    const {span, exact} = found;
    this.showAt(span.keyStart, exact ? span.end : span.keyStart + 1, message, normalizePath(field));
    return exact;
  }

  // Shows every error of a rejected spec ([{message, field}], the first one first): each named
  // field is marked, each message stands under its line. Returns true when the first error's
  // field was found exactly.
  showFieldErrors(errors) {
    if (!errors.length) return false;
    const exact = this.showFieldError(errors[0].message, errors[0].field);
    let spans;
    try { ({spans} = parseWithSpans(this.ta.value)); } catch { spans = new Map(); }
    const marks = [this.mark];
    for (const e of errors.slice(1)) {
      const found = e.field ? findSpan(spans, e.field) : null;
      const start = found ? found.span.keyStart : 0;
      const end = found ? (found.exact ? found.span.end : start + 1) : 0;
      const {line} = lineCol(this.ta.value, start);
      const el = h('div.field-error.more', {'data-testid': 'field-error-more', role: 'alert',
                                             'data-field': e.field ? normalizePath(e.field) : '',
                                             'data-line': String(line + 1)},
        e.field ? h('code', {text: normalizePath(e.field)}) : '', e.field ? ': ' : '', e.message);
      this.el.querySelector('.edit-area').append(el);
      this.extra.push({line, el});
      if (!marks.some((m) => start < m.end && m.start < end)) marks.push({start, end});
    }
    // the backdrop marks every field (in text order, without overlaps)
    marks.sort((a, b) => a.start - b.start);
    const text = this.ta.value, kids = [];
    let at = 0;
    for (const m of marks) {
      kids.push(text.slice(at, m.start), h('mark', {text: text.slice(m.start, m.end) || ' '}));
      at = m.end;
    }
    kids.push(text.slice(at) + '\n');
    this.back.replaceChildren(...kids);
    this.errLines = new Set([this.errLine, ...this.extra.map((x) => x.line)]);
    this.lines();
    this.sync();
    return exact;
  }

  showAt(start, end, message, field) {
    const text = this.ta.value;
    this.mark = {start, end};
    const {line} = lineCol(text, start);
    this.back.replaceChildren(text.slice(0, start), h('mark', {text: text.slice(start, end) || ' '}),
                              text.slice(end) + '\n');
    this.bubble.hidden = false;
    this.bubble.dataset.field = field || '';
    this.bubble.dataset.line = String(line + 1);
    this.bubble.replaceChildren(field ? h('code', {text: field}) : '', field ? ': ' : '', message);
    this.errLine = line;
    this.errLines = new Set([line]);
    this.lines();
    this.sync();
  }

  clearError() {
    for (const x of this.extra) x.el.remove();
    this.extra = [];
    this.errLines = new Set();
    if (!this.mark) return;
    this.mark = null;
    this.errLine = null;
    this.back.textContent = '';
    this.bubble.hidden = true;
    this.bubble.dataset.field = '';
  }

  // Moves the caret to the marked field, scrolled into view.
  reveal() {
    if (!this.mark) return;
    this.ta.focus();
    this.ta.setSelectionRange(this.mark.start, this.mark.end);
    const {line} = lineCol(this.ta.value, this.mark.start);
    this.ta.scrollTop = Math.max(0, line * LINE_PX - this.ta.clientHeight / 3);
    this.sync();
  }

  lines() {
    const n = this.ta.value.split('\n').length;
    const errs = [...this.errLines].sort((a, b) => a - b).join(',');
    if (this.gutter.childElementCount !== n || this.gutter.dataset.err !== errs) {
      const kids = [];
      for (let k = 0; k < n; k++) kids.push(h(this.errLines.has(k) ? 'div.err' : 'div', {text: String(k + 1)}));
      this.gutter.replaceChildren(...kids);
      this.gutter.dataset.err = errs;
    }
  }

  sync() {
    this.back.scrollTop = this.ta.scrollTop;
    this.back.scrollLeft = this.ta.scrollLeft;
    this.gutter.scrollTop = this.ta.scrollTop;
    const place = (el, line) => {
      const top = PAD_PX + (line + 1) * LINE_PX - this.ta.scrollTop;
      el.style.top = Math.max(0, Math.min(top, this.ta.clientHeight - 24)) + 'px';
    };
    if (this.errLine != null) place(this.bubble, this.errLine);
    for (const x of this.extra) place(x.el, x.line);
  }
}
