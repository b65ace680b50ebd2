// Small DOM helpers shared by every view.
//
// Everything the page shows from the server goes in as text: h() appends
// strings as Text nodes and sets attributes with setAttribute, and it refuses
// the two keys through which markup or inline style could slip in. The page's
// Content-Security-Policy forbids inline style, so state is shown with classes
// and the hidden attribute, never with element.style.

let nextId = 0;

// A fresh element id with a readable prefix, for label/describedby pairs.
export function uid(prefix) {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

// h('a', {href: '/', class: 'brand'}, 'debate') builds an element. Props:
// class, text (textContent), on<event> (listeners), value/checked/disabled
// (properties), anything else as an attribute (true as '', false/null left
// out). Children: elements or strings (as text), arrays flattened.
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'innerHTML' || key === 'style') {
      throw new Error(`h: "${key}" is not allowed`);
    }
    if (value === false || value === null || value === undefined) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'value' || key === 'checked' || key === 'disabled') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

// Replaces an element's children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Shows or hides an element with the hidden attribute.
export function show(el, visible) {
  el.hidden = !visible;
}

// Adds or removes one id in an element's aria-describedby list.
export function describedBy(el, id, on) {
  const ids = new Set((el.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean));
  if (on) ids.add(id); else ids.delete(id);
  if (ids.size) el.setAttribute('aria-describedby', [...ids].join(' '));
  else el.removeAttribute('aria-describedby');
}

// A field's error message: a paragraph tied to its control by
// aria-describedby, with aria-invalid on the control while it holds text.
export class FieldError {
  constructor(control) {
    this.control = control;
    this.el = h('p', {class: 'field-error', id: uid('error'), hidden: true});
  }

  set(message) {
    const on = Boolean(message);
    this.el.textContent = on ? message : '';
    this.el.hidden = !on;
    if (on) this.control.setAttribute('aria-invalid', 'true');
    else this.control.removeAttribute('aria-invalid');
    describedBy(this.control, this.el.id, on);
  }
}

// 23068672 -> "22.0 MiB"
export function formatBytes(n) {
  if (typeof n !== 'number') return '';
  const units = ['bytes', 'KiB', 'MiB', 'GiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return u === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[u]}`;
}

// "2026-11-30T03:00:00.123456Z" -> "2026-11-30 03:00:00 UTC"
export function formatTime(iso) {
  if (typeof iso !== 'string') return '';
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)/.exec(iso);
  return m ? `${m[1]} ${m[2]} UTC` : iso;
}
