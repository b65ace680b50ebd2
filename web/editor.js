// A script editor: a textarea beside a gutter of line numbers.
//
// The gutter is decoration (aria-hidden); the textarea is the control, with
// its own label. Lines do not wrap, so number n stays beside line n, and the
// gutter follows the textarea's scrolling. Tab is left to move the focus on,
// so the editor never traps a keyboard user.

import {h} from './dom.js';

export class ScriptEditor {
  constructor(textarea) {
    this.textarea = textarea;
    textarea.classList.add('code');
    textarea.setAttribute('wrap', 'off');
    textarea.setAttribute('spellcheck', 'false');
    this.gutter = h('div', {class: 'gutter', 'aria-hidden': 'true'});
    this.el = h('div', {class: 'editor'}, this.gutter, textarea);
    this.lines = 0;
    textarea.addEventListener('input', () => this.renumber());
    textarea.addEventListener('scroll', () => {
      this.gutter.scrollTop = textarea.scrollTop;
    });
    this.renumber();
  }

  renumber() {
    const lines = this.textarea.value.split('\n').length;
    if (lines === this.lines) return;
    this.lines = lines;
    const numbers = [];
    for (let i = 1; i <= lines; i += 1) numbers.push(String(i));
    this.gutter.textContent = numbers.join('\n');
    this.gutter.scrollTop = this.textarea.scrollTop;
  }

  set value(v) {
    this.textarea.value = v;
    this.renumber();
  }
}
