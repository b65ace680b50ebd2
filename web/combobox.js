// A text input with a list of suggestions: the WAI-ARIA 1.2 combobox
// pattern (a listbox popup, aria-activedescendant, arrow keys, Enter,
// Escape). Focus stays in the input; the active option is announced through
// aria-activedescendant, so screen readers follow the arrow keys.
//
// suggest(prefix, signal) resolves to [{name, version, description}] or
// rejects with an ApiError. A 503 means the server has no package list yet
// (index_unavailable) or is still reading it (with Retry-After): the
// combobox says so and asks no more for a while, the Retry-After or 10 s,
// then asks again for what is typed by then.

import {h, uid, describedBy} from './dom.js';

const DEBOUNCE_MS = 150;
const QUIET_MS = 10000;

export class Combobox {
  // input: the text input to enhance (already labelled). onChoose(name) runs
  // after an option was taken into the input.
  constructor(input, suggest, {onChoose = () => {}, announce = () => {}} = {}) {
    this.input = input;
    this.suggest = suggest;
    this.onChoose = onChoose;
    this.announce = announce;
    this.options = [];
    this.active = -1;
    this.timer = null;
    this.abort = null;
    this.said = null;       // what the live region last said of this list
    this.listbox = h('ul', {role: 'listbox', id: uid('listbox'), class: 'listbox', hidden: true,
      'aria-label': 'Suggestions'});
    this.note = h('p', {class: 'hint', id: uid('note'), hidden: true});
    input.setAttribute('role', 'combobox');
    input.setAttribute('aria-autocomplete', 'list');
    input.setAttribute('aria-expanded', 'false');
    input.setAttribute('aria-controls', this.listbox.id);
    input.setAttribute('autocomplete', 'off');
    input.addEventListener('input', () => this.schedule());
    input.addEventListener('keydown', (e) => this.key(e));
    input.addEventListener('blur', () => this.close());
  }

  // The elements to place after the input: the popup and the note.
  get elements() {
    return [this.listbox, this.note];
  }

  schedule() {
    clearTimeout(this.timer);
    const prefix = this.input.value.trim();
    if (!prefix || Date.now() < Combobox.quietUntil) {
      this.close();
      return;
    }
    this.timer = setTimeout(() => this.fetch(prefix), DEBOUNCE_MS);
  }

  async fetch(prefix) {
    if (this.abort) this.abort.abort();
    this.abort = new AbortController();
    try {
      const found = await this.suggest(prefix, this.abort.signal);
      if (this.input.value.trim() !== prefix || document.activeElement !== this.input) return;
      this.say('');
      this.open(found);
    } catch (e) {
      if (e.name === 'AbortError') return;
      this.close();
      if (e.status === 503) this.quiet(e);
      else this.say(`No suggestions: ${e.message}.`);
    }
  }

  quiet(e) {
    const wait = e.retryAfter ? e.retryAfter * 1000 : QUIET_MS;
    Combobox.quietUntil = Date.now() + wait;
    this.say(e.retryAfter
      ? 'The server is reading its package list; suggestions come in a moment.'
      : 'The server has no package list yet: type package names in full.');
    this.timer = setTimeout(() => {
      if (document.activeElement === this.input) this.schedule();
    }, wait);
  }

  say(text) {
    this.note.textContent = text;
    this.note.hidden = !text;
    describedBy(this.input, this.note.id, Boolean(text));
  }

  open(found) {
    this.options = found.map((p, i) => {
      const li = h('li', {role: 'option', id: `${this.listbox.id}-${i}`, 'aria-selected': 'false',
        class: 'option'},
      h('span', {class: 'opt-name'}, p.name),
      ' ', h('span', {class: 'opt-version'}, p.version || ''),
      h('span', {class: 'opt-desc'}, p.description || ''));
      // mousedown, not click: the input must keep its focus.
      li.addEventListener('mousedown', (e) => {
        e.preventDefault();
        this.choose(i);
      });
      return {li, name: p.name};
    });
    this.listbox.replaceChildren(...this.options.map((o) => o.li));
    this.active = -1;
    this.input.removeAttribute('aria-activedescendant');
    const any = this.options.length > 0;
    this.listbox.hidden = !any;
    this.input.setAttribute('aria-expanded', String(any));
    // Each keystroke opens the list anew: say its size only when it changed,
    // or a screen reader repeats the same sentence at every letter.
    const text = any ? `${this.options.length} suggestions; arrow keys to choose` : 'no matching package';
    if (text !== this.said) this.announce(text);
    this.said = text;
  }

  close() {
    clearTimeout(this.timer);
    this.said = null;
    this.listbox.hidden = true;
    this.input.setAttribute('aria-expanded', 'false');
    this.input.removeAttribute('aria-activedescendant');
    this.active = -1;
  }

  get isOpen() {
    return !this.listbox.hidden;
  }

  move(delta) {
    const n = this.options.length;
    if (!n) return;
    if (this.active >= 0) this.options[this.active].li.setAttribute('aria-selected', 'false');
    this.active = this.active < 0 ? (delta > 0 ? 0 : n - 1) : (this.active + delta + n) % n;
    const {li} = this.options[this.active];
    li.setAttribute('aria-selected', 'true');
    this.input.setAttribute('aria-activedescendant', li.id);
    li.scrollIntoView({block: 'nearest'});
  }

  choose(i) {
    this.input.value = this.options[i].name;
    this.close();
    this.onChoose(this.input.value);
  }

  key(e) {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      if (!this.isOpen && this.options.length) {
        this.listbox.hidden = false;
        this.input.setAttribute('aria-expanded', 'true');
      }
      if (this.isOpen) {
        e.preventDefault();
        this.move(e.key === 'ArrowDown' ? 1 : -1);
      }
    } else if (e.key === 'Enter' && this.isOpen && this.active >= 0) {
      e.preventDefault();
      e.stopImmediatePropagation();
      this.choose(this.active);
    } else if (e.key === 'Escape' && this.isOpen) {
      e.preventDefault();
      e.stopImmediatePropagation();
      this.close();
    }
  }
}

// Until then no combobox asks the server (it said it has no package list).
Combobox.quietUntil = 0;
