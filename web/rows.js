// The repeated parts of the form: package rows, file (overlay) rows and hook
// rows. Each row builder takes the row's values, writes edits straight back
// into them, and registers a FieldError for every control under the field
// path the server's errors use ("packages.3", "overlays.0.path"), so that an
// error about that field lands beside it.

import {h, uid, FieldError} from './dom.js';
import {Combobox} from './combobox.js';
import {ScriptEditor} from './editor.js';

// ctx: {errors: Map(key -> FieldError), changed(), remove(kind, i),
//       addPackageAfter(i), suggest(prefix, signal), announce(text)}

function control(ctx, key, input) {
  const error = new FieldError(input);
  ctx.errors.set(key, error);
  return error.el;
}

function removeButton(ctx, kind, i, what) {
  return h('button', {type: 'button', class: 'remove', 'aria-label': `Remove ${what}`,
    onclick: () => ctx.remove(kind, i)}, 'Remove');
}

// One package: a combobox input and its remove button.
export function packageRow(ctx, values, i) {
  const id = uid('package');
  const input = h('input', {id, type: 'text', value: values.packages[i], spellcheck: 'false',
    'aria-describedby': 'packages-hint'});
  const combo = new Combobox(input, ctx.suggest, {
    announce: ctx.announce,
    onChoose: (name) => {
      values.packages[i] = name;
      ctx.changed();
    },
  });
  input.addEventListener('input', () => {
    values.packages[i] = input.value;
    ctx.changed();
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      ctx.addPackageAfter(i);
    }
  });
  return h('li', {class: 'row package'},
    h('label', {for: id, class: 'visually-hidden'}, `Package ${i + 1}`),
    h('div', {class: 'combo'}, input, combo.elements),
    removeButton(ctx, 'packages', i, `package ${i + 1}`),
    control(ctx, `packages.${i}`, input));
}

function labelled(label, inputEl, errorEl, extra = null) {
  return h('div', {class: 'field'}, h('label', {for: inputEl.id}, label), inputEl, extra, errorEl);
}

function textInput(value, onInput, props = {}) {
  return h('input', {id: uid('input'), type: 'text', value, spellcheck: 'false', autocomplete: 'off',
    oninput: (e) => onInput(e.target.value), ...props});
}

// Reads a chosen or dropped file as text into an overlay's content.
async function readInto(file, textarea, overlay, ctx) {
  if (!file) return;
  const content = await file.text();
  overlay.content = content;
  textarea.value = content;
  ctx.changed();
  ctx.announce(`read ${file.name} into the content`);
}

function contentBox(ctx, overlay) {
  const textarea = h('textarea', {id: uid('content'), class: 'code', rows: 4, spellcheck: 'false',
    value: overlay.content, oninput: (e) => {
      overlay.content = e.target.value;
      ctx.changed();
    }});
  textarea.addEventListener('dragover', (e) => e.preventDefault());
  textarea.addEventListener('drop', (e) => {
    e.preventDefault();
    readInto(e.dataTransfer.files[0], textarea, overlay, ctx);
  });
  const picker = h('input', {type: 'file', hidden: true, class: 'overlay-file',
    onchange: (e) => readInto(e.target.files[0], textarea, overlay, ctx)});
  // The row's legend ("File 2") tells which file this button is for.
  const choose = h('button', {type: 'button', class: 'secondary', onclick: () => picker.click()},
    'Read from a file…');
  return {textarea, extra: h('div', {class: 'file-actions'}, choose, picker)};
}

// One overlay: path, mode, content (typed, chosen or dropped).
export function overlayRow(ctx, values, i) {
  const o = values.overlays[i];
  const path = textInput(o.path, (v) => {
    o.path = v;
    ctx.changed();
  }, {placeholder: '/etc/motd'});
  const mode = textInput(o.mode, (v) => {
    o.mode = v;
    ctx.changed();
  }, {inputmode: 'numeric', size: 4, class: 'mode'});
  const {textarea, extra} = contentBox(ctx, o);
  return h('fieldset', {class: 'row overlay'},
    h('legend', {}, `File ${i + 1}`),
    h('div', {class: 'field-row'},
      labelled('Path', path, control(ctx, `overlays.${i}.path`, path)),
      labelled('Mode', mode, control(ctx, `overlays.${i}.mode`, mode))),
    labelled('Content', textarea, control(ctx, `overlays.${i}.content`, textarea), extra),
    removeButton(ctx, 'overlays', i, `file ${i + 1}`),
    control(ctx, `overlays.${i}`, path));
}

// One hook: its name and its script, in an editor with line numbers.
export function hookRow(ctx, values, i) {
  const k = values.hooks[i];
  const name = textInput(k.name, (v) => {
    k.name = v;
    ctx.changed();
  }, {placeholder: '10-setup'});
  const textarea = h('textarea', {id: uid('script'), rows: 6, value: k.script, oninput: (e) => {
    k.script = e.target.value;
    ctx.changed();
  }});
  const editor = new ScriptEditor(textarea);
  return h('fieldset', {class: 'row hook'},
    h('legend', {}, `Hook ${i + 1}`),
    labelled('Name', name, control(ctx, `hooks.${i}.name`, name)),
    h('div', {class: 'field'}, h('label', {for: textarea.id}, 'Script'), editor.el,
      control(ctx, `hooks.${i}.script`, textarea)),
    removeButton(ctx, 'hooks', i, `hook ${i + 1}`),
    control(ctx, `hooks.${i}`, name));
}
