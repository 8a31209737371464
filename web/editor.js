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
    this.lines();
    this.sync();
  }

  clearError() {
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
    if (this.gutter.childElementCount !== n || this.gutter.dataset.err !== String(this.errLine)) {
      const kids = [];
      for (let k = 0; k < n; k++) kids.push(h(k === this.errLine ? 'div.err' : 'div', {text: String(k + 1)}));
      this.gutter.replaceChildren(...kids);
      this.gutter.dataset.err = String(this.errLine);
    }
  }

  sync() {
    this.back.scrollTop = this.ta.scrollTop;
    this.back.scrollLeft = this.ta.scrollLeft;
    this.gutter.scrollTop = this.ta.scrollTop;
    if (this.errLine != null) {
      const top = PAD_PX + (this.errLine + 1) * LINE_PX - this.ta.scrollTop;
      this.bubble.style.top = Math.max(0, Math.min(top, this.ta.clientHeight - 24)) + 'px';
    }
  }
}
