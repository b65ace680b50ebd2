// The compose view: the recipe form, its JSON view, checking as you type,
// import, export and submission.
//
// One recipe document (this.current) is what gets checked, exported and
// submitted. An edit in the form rebuilds it from the form's values; an edit
// in the JSON view that parses replaces it as written (wrong types
// included, so the server's checks see them) and redraws the form from it.
// The last document is kept in localStorage as a draft, so a reload or a
// visit to a build does not lose it.

import {getJson, postJson} from './api.js';
import {h, fill, FieldError} from './dom.js';
import {emptyValues, toForm, fromForm, parseField, fileName} from './recipe.js';
import {packageRow, overlayRow, hookRow} from './rows.js';
import {rememberSubmission} from './submissions.js';

const VALIDATE_DELAY_MS = 400;
const DRAFT_KEY = 'debate.draft';

const $ = (id) => document.getElementById(id);

// Suggestions for a package name prefix, from the server's package index.
// What cannot start a package name is not asked about: the server would
// refuse it (400), and the check as you type already says what is wrong.
// The packages are those of the recipe's release; a recipe that names none
// gets the server's default, which the server also applies here.
const suggestions = new Map();
const NAME_PREFIX = /^[a-z0-9][a-z0-9+.-]*$/;
async function suggest(release, prefix, signal) {
  if (!NAME_PREFIX.test(prefix)) return [];
  const key = `${release}\n${prefix}`;
  if (!suggestions.has(key)) {
    const q = new URLSearchParams({q: prefix, limit: '12'});
    if (release) q.set('release', release);
    const body = await getJson(`/api/v1/packages?${q}`, {signal});
    suggestions.set(key, Array.isArray(body.packages) ? body.packages : []);
  }
  return suggestions.get(key);
}

function loadDraft() {
  try {
    const text = localStorage.getItem(DRAFT_KEY);
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

function saveDraft(doc) {
  try {
    localStorage.setItem(DRAFT_KEY, JSON.stringify(doc));
  } catch {
    // A browser that keeps nothing loses the draft at reload; nothing more.
  }
}

export class ComposeView {
  constructor({navigate, announce}) {
    this.section = $('view-compose');
    this.navigate = navigate;
    this.announce = announce;
    this.errors = new Map();        // field key -> FieldError, rebuilt with the rows
    this.values = emptyValues();
    this.extras = {};
    this.packageIndex = [];
    this.current = null;
    this.timer = null;
    this.inflight = null;
    this.checkDraft = false;    // a draft from an earlier visit, checked when the view is first shown
    this.jsonError = new FieldError($('json'));
    $('json').after(this.jsonError.el);
    this.bindStatic();
    this.bindToolbar();
    // Every view loads this module: the draft is read now, but checked only
    // when the compose view is shown, so that a build or history visit
    // spends none of the client's requests on it.
    const draft = loadDraft();
    this.load(draft && typeof draft === 'object' ? draft : fromForm(this.values).recipe, false);
    this.checkDraft = Boolean(draft);
  }

  // The fields written in index.html: each edits one value.
  bindStatic() {
    const text = (id, set) => $(id).addEventListener('input', (e) => {
      set(e.target.value);
      this.changed();
    });
    text('f-name', (v) => { this.values.name = v; });
    text('f-release', (v) => { this.values.release = v; });
    text('f-variant', (v) => { this.values.variant = v; });
    text('f-compression', (v) => { this.values.compression = v; });
    text('f-hostname', (v) => { this.values.hostname = v; });
    text('f-cmdline', (v) => { this.values.boot.cmdline = v; });
    $('f-bios').addEventListener('change', (e) => { this.values.boot.bios = e.target.checked; this.changed(); });
    $('f-uefi').addEventListener('change', (e) => { this.values.boot.uefi = e.target.checked; this.changed(); });
    this.staticErrors = new Map();
    for (const [id, key] of [['f-name', 'name'], ['f-release', 'release'], ['f-variant', 'variant'],
      ['f-compression', 'compression'], ['f-hostname', 'hostname'], ['f-cmdline', 'boot.cmdline'],
      ['f-bios', 'boot.bios'], ['f-uefi', 'boot.uefi']]) {
      const error = new FieldError($(id));
      (id === 'f-bios' || id === 'f-uefi' ? $('field-boot') : $(id).parentElement).append(error.el);
      this.staticErrors.set(key, error);
    }
    this.staticErrors.set('boot', this.staticErrors.get('boot.bios'));
    $('json').addEventListener('input', () => this.jsonEdited());
    $('add-package').addEventListener('click', () => this.addRow('packages', ''));
    $('add-overlay').addEventListener('click', () => this.addRow('overlays', {path: '', mode: '0644', content: ''}));
    $('add-hook').addEventListener('click', () => this.addRow('hooks', {name: '', script: '#!/bin/sh\nset -e\n'}));
    // Only the button builds. It is not a submit button: Enter in a text
    // field "clicks" a form's submit button (implicit submission), and a
    // form with none and several text fields is never submitted by Enter.
    $('submit').addEventListener('click', () => this.submit());
    $('recipe-form').addEventListener('submit', (e) => e.preventDefault());
  }

  bindToolbar() {
    $('import').addEventListener('click', () => $('import-file').click());
    $('import-file').addEventListener('change', (e) => this.importFile(e.target));
    $('export').addEventListener('click', () => this.exportFile());
    $('clear').addEventListener('click', () => {
      this.load(fromForm(emptyValues()).recipe, false);
      saveDraft(this.current);
      $('f-name').focus();
      this.announce('the form is empty again');
    });
  }

  show() {
    document.title = 'Compose a recipe · debate';
    if (this.checkDraft) this.schedule();
    this.checkDraft = false;
  }

  hide() {}

  // Takes a recipe document into the form and the JSON view.
  load(doc, check) {
    this.checkDraft = false;
    ({values: this.values, extras: this.extras} = toForm(doc));
    this.current = doc;
    this.packageIndex = this.values.packages.map((_, i) => i);
    this.writeForm();
    $('json').value = JSON.stringify(doc, null, 2);
    this.jsonError.set('');
    this.clearErrors();
    fill($('validity'));
    if (check) this.schedule();
  }

  writeForm() {
    const v = this.values;
    $('f-name').value = v.name;
    $('f-release').value = v.release;
    $('f-variant').value = v.variant;
    $('f-compression').value = v.compression;
    $('f-hostname').value = v.hostname;
    $('f-cmdline').value = v.boot.cmdline;
    $('f-bios').checked = v.boot.bios;
    $('f-uefi').checked = v.boot.uefi;
    this.renderRows();
  }

  rowContext() {
    return {
      errors: this.errors,
      changed: () => this.changed(),
      remove: (kind, i) => this.removeRow(kind, i),
      addPackageAfter: (i) => this.addRow('packages', '', i + 1),
      suggest: (prefix, signal) => suggest(this.releaseOf(), prefix, signal),
      announce: this.announce,
    };
  }

  // The release the recipe names, or '' (the server's default) when it names
  // none or something that is not a name.
  releaseOf() {
    const r = this.current && this.current.release;
    return typeof r === 'string' ? r : '';
  }

  renderRows() {
    this.errors.clear();
    const ctx = this.rowContext();
    fill($('package-rows'), this.values.packages.map((_, i) => packageRow(ctx, this.values, i)));
    fill($('overlay-rows'), this.values.overlays.map((_, i) => overlayRow(ctx, this.values, i)));
    fill($('hook-rows'), this.values.hooks.map((_, i) => hookRow(ctx, this.values, i)));
  }

  rowsOf(kind) {
    return {packages: $('package-rows'), overlays: $('overlay-rows'), hooks: $('hook-rows')}[kind];
  }

  addRow(kind, value, at = this.values[kind].length) {
    this.values[kind].splice(at, 0, value);
    this.renderRows();
    this.changed();
    this.rowsOf(kind).children[at].querySelector('input, textarea').focus();
  }

  removeRow(kind, i) {
    this.values[kind].splice(i, 1);
    this.renderRows();
    this.changed();
    const rows = this.rowsOf(kind).children;
    const next = rows[Math.min(i, rows.length - 1)];
    (next ? next.querySelector('input, textarea') : $(`add-${kind.replace(/s$/, '')}`)).focus();
    this.announce(`removed ${kind.replace(/s$/, '')} ${i + 1}`);
  }

  // An edit in the form: the document follows, then the JSON view.
  changed() {
    ({recipe: this.current, packageIndex: this.packageIndex} = fromForm(this.values, this.extras));
    $('json').value = JSON.stringify(this.current, null, 2);
    this.jsonError.set('');
    this.edited();
  }

  // An edit in the JSON view: when it parses to an object, the form follows.
  jsonEdited() {
    let doc;
    try {
      doc = JSON.parse($('json').value);
    } catch (e) {
      this.jsonError.set(`This is not JSON yet: ${e.message}`);
      return;
    }
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
      this.jsonError.set('A recipe is a JSON object: { … }');
      return;
    }
    this.jsonError.set('');
    ({values: this.values, extras: this.extras} = toForm(doc));
    this.current = doc;
    this.packageIndex = this.values.packages.map((_, i) => i);
    this.writeForm();
    this.edited();
  }

  edited() {
    saveDraft(this.current);
    this.schedule();
  }

  // An answer about an older text would mislead: the verdict goes at once,
  // and the check runs when typing pauses.
  schedule() {
    clearTimeout(this.timer);
    if (this.inflight) this.inflight.abort();
    this.inflight = null;
    // The validity line is a live region: it says "Checking…" once per pause
    // in typing, not at every keystroke.
    if (!$('validity').querySelector('.checking')) fill($('validity'), h('span', {class: 'checking'}, 'Checking…'));
    this.timer = setTimeout(() => this.validate(), VALIDATE_DELAY_MS);
  }

  async validate() {
    if (this.inflight) this.inflight.abort();
    const inflight = new AbortController();
    this.inflight = inflight;
    try {
      const {body} = await postJson('/api/v1/recipes/validate', {recipe: this.current},
        {signal: inflight.signal});
      if (this.inflight !== inflight) return;
      this.showVerdict(body);
    } catch (e) {
      if (e.name === 'AbortError' || this.inflight !== inflight) return;
      this.showErrors(e.field ? [{field: e.field, message: e.message}] : []);
      fill($('validity'), h('span', {class: 'invalid'}, `The recipe could not be checked: ${e.message}.`));
    }
  }

  showVerdict(body) {
    if (body && body.valid) {
      this.showErrors([]);
      fill($('validity'), h('span', {class: 'valid'}, 'The recipe is valid.'), ' ',
        h('span', {class: 'hash-label'}, 'config_hash '), h('code', {id: 'config-hash', class: 'hash'},
          body.config_hash || ''));
      return;
    }
    const errors = body && Array.isArray(body.errors) ? body.errors : [];
    this.showErrors(errors);
    const n = errors.length;
    fill($('validity'), h('span', {class: 'invalid'},
      n === 1 ? 'The recipe has 1 problem.' : `The recipe has ${n} problems.`));
  }

  clearErrors() {
    for (const e of this.errors.values()) e.set('');
    for (const e of this.staticErrors.values()) e.set('');
    fill($('problem-list'));
    $('problems').hidden = true;
  }

  // The FieldError for a server field path, or null: packages[i] of the
  // document is the form's row packageIndex[i].
  errorFor(field) {
    const parts = parseField(field);
    if (parts[0] === 'packages' && typeof parts[1] === 'number') {
      parts[1] = this.packageIndex[parts[1]] ?? parts[1];
    }
    for (let n = parts.length; n > 0; n -= 1) {
      const key = parts.slice(0, n).join('.');
      const found = this.errors.get(key) || this.staticErrors.get(key);
      if (found) return found;
    }
    return null;
  }

  // Each error beside its field, and all of them in the list above the form.
  showErrors(errors) {
    this.clearErrors();
    const items = [];
    const seen = new Set();
    for (const err of errors) {
      const message = String(err.message || 'invalid');
      const slot = this.errorFor(err.field);
      if (slot && !seen.has(slot)) {
        slot.set(message);
        seen.add(slot);
      }
      items.push(h('li', {}, slot
        ? h('a', {href: `#${slot.control.id}`, onclick: (e) => {
          e.preventDefault();
          slot.control.focus();
        }}, message)
        : message));
    }
    fill($('problem-list'), items);
    $('problems').hidden = items.length === 0;
  }

  async submit() {
    const button = $('submit');
    button.disabled = true;
    $('submit-error').textContent = '';
    try {
      const {body} = await postJson('/api/v1/builds', {recipe: this.current, boot_check: $('f-bootcheck').checked});
      rememberSubmission(body);
      this.navigate(`/builds/${body.build.id}`);
    } catch (e) {
      if (e.field) this.showErrors([{field: e.field, message: e.message}]);
      const wait = e.retryAfter ? ` Try again in ${e.retryAfter} s.` : '';
      $('submit-error').textContent = `The build was not submitted: ${e.message}.${wait}`;
    } finally {
      button.disabled = false;
    }
  }

  async importFile(input) {
    const file = input.files[0];
    input.value = '';
    if (!file) return;
    let doc;
    try {
      doc = JSON.parse(await file.text());
    } catch (e) {
      $('file-status').textContent = `"${file.name}" is not JSON: ${e.message}`;
      return;
    }
    this.load(doc, true);
    saveDraft(doc);
    $('file-status').textContent = `Imported "${file.name}".`;
  }

  exportFile() {
    const blob = new Blob([`${JSON.stringify(this.current, null, 2)}\n`], {type: 'application/json'});
    const url = URL.createObjectURL(blob);
    const a = h('a', {href: url, download: fileName(this.current), hidden: true});
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    $('file-status').textContent = `Exported as "${fileName(this.current)}".`;
  }
}
