// The history view, /?view=history[&status=S]: the builds, newest first,
// a page at a time (GET /api/v1/builds and its `next` cursor), each linking
// to its build view.

import {getJson} from './api.js';
import {h, fill, formatBytes, formatTime} from './dom.js';

const PAGE = 20;
const $ = (id) => document.getElementById(id);

export class HistoryView {
  constructor({replace}) {
    this.replace = replace;
    this.status = '';
    this.next = null;
    this.loading = null;
    $('h-status').addEventListener('change', (e) => {
      const status = e.target.value;
      this.replace(status ? `/?view=history&status=${encodeURIComponent(status)}` : '/?view=history');
    });
    $('h-more').addEventListener('click', () => this.page(this.next));
  }

  show(params) {
    this.status = params.get('status') || '';
    $('h-status').value = this.status;
    document.title = 'History · debate';
    fill($('h-rows'));
    this.next = null;
    this.page(null);
  }

  hide() {
    if (this.loading) this.loading.abort();
  }

  async page(after) {
    if (this.loading) this.loading.abort();
    const loading = new AbortController();
    this.loading = loading;
    const q = new URLSearchParams({limit: String(PAGE)});
    if (this.status) q.set('status', this.status);
    if (after) q.set('after', after);
    $('h-message').textContent = 'Loading…';
    try {
      const body = await getJson(`/api/v1/builds?${q}`, {signal: loading.signal});
      const rows = body.builds.map(row);
      $('h-rows').append(...rows);
      this.next = body.next;
      // The last "Show more" hides itself: its focus goes to the first new
      // build rather than to the document's body.
      const more = $('h-more');
      const hadFocus = document.activeElement === more;
      more.hidden = !this.next;
      if (hadFocus && more.hidden && rows.length) rows[0].querySelector('a').focus();
      const n = $('h-rows').children.length;
      $('h-message').textContent = n ? `${n} build${n === 1 ? '' : 's'} shown${this.next ? '; there are more.' : '.'}`
        : 'No builds yet.';
    } catch (e) {
      if (e.name === 'AbortError') return;
      $('h-message').textContent = `The builds could not be listed: ${e.message}.`;
    }
  }
}

function row(b) {
  return h('tr', {},
    h('td', {}, h('a', {href: `/builds/${b.id}`}, h('code', {}, b.id.slice(0, 8)))),
    h('td', {}, h('span', {class: `badge status-${b.status}`}, b.status)),
    h('td', {}, `${b.stage} (${b.progress}%)`),
    h('td', {}, formatTime(b.created_at)),
    h('td', {}, b.iso_size ? formatBytes(b.iso_size) : '—'));
}
