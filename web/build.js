// The build view, /builds/{id}: status, queue position, progress by stage,
// the live log, cancel, and the result.
//
// The log and progress come over EventSource from the build's log_url. The
// browser reconnects a dropped stream by itself, sending Last-Event-ID, so
// the server resumes after the last event seen; meanwhile the view says
// "reconnecting". The stream ends with an `end` event carrying the final
// build object, after which the view closes it (otherwise the browser would
// reconnect to a finished stream). While the build is not finished the
// build object is also polled, for what the stream does not carry: the
// queue position and the attempts.

import {getJson, postJson} from './api.js';
import {h, fill, formatBytes} from './dom.js';
import {cancelToken, submissionOf, forgetToken} from './submissions.js';

export const STAGES = ['queued', 'resolving', 'fetching', 'rootfs', 'customizing', 'kernel', 'squashfs',
  'bootloader', 'assembling', 'verifying', 'done'];
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const POLL_MS = 3000;
const RETRY_MS = 5000;
const MAX_LOG_LINES = 20000;

const $ = (id) => document.getElementById(id);

const KEY_PARTS = [
  ['config_hash', 'the recipe (config_hash)'],
  ['lock_hash', 'the lock (lock_hash)'],
  ['mirror', 'the mirror'],
  ['builder', 'debate (builder)'],
  ['tools', 'the host tools (tools)'],
];

function statusText(b) {
  switch (b.status) {
    case 'queued':
      return b.queue_position ? `Queued: number ${b.queue_position} in the queue.` : 'Queued.';
    case 'running':
      return `Running: ${b.stage}${b.attempts > 1 ? ` (attempt ${b.attempts} of ${b.max_attempts})` : ''}.`;
    case 'succeeded':
      return 'Succeeded.';
    case 'failed':
      return 'Failed.';
    case 'cancelled':
      return 'Cancelled.';
    default:
      return b.status;
  }
}

export class BuildView {
  constructor({announce}) {
    this.announce = announce;
    this.id = null;
    this.build = null;
    this.source = null;
    this.poller = null;
    this.retry = null;
    $('b-cancel').addEventListener('click', () => this.cancel());
  }

  show(id) {
    this.hide();
    this.id = id;
    this.build = null;
    this.streamStage = null;
    document.title = `Build ${id.slice(0, 8)} · debate`;
    $('b-id').textContent = id;
    $('build-title').textContent = 'Build';
    fill($('b-log'));
    $('b-cancel-msg').textContent = '';
    for (const el of ['b-result', 'b-error', 'b-cache', 'b-cancel']) $(el).hidden = true;
    $('b-message').textContent = '';
    this.renderStages('queued', null);
    this.setProgress(0);
    $('b-status').textContent = 'Loading…';
    $('b-conn').textContent = '';
    this.load();
  }

  hide() {
    if (this.source) this.source.close();
    this.source = null;
    clearTimeout(this.poller);
    clearTimeout(this.retry);
    this.id = null;
  }

  async load() {
    const id = this.id;
    try {
      const b = await getJson(`/api/v1/builds/${encodeURIComponent(id)}`);
      if (this.id !== id) return;
      this.render(b);
      this.stream(b.log_url || `/api/v1/builds/${id}/log`);
      this.poll();
    } catch (e) {
      if (this.id !== id) return;
      $('build-title').textContent = e.status === 404 ? 'No such build' : 'Build';
      $('b-status').textContent = e.status === 404
        ? 'The server knows no build with this id.'
        : `The build could not be loaded: ${e.message}.`;
    }
  }

  poll() {
    clearTimeout(this.poller);
    if (!this.build || TERMINAL.has(this.build.status)) return;
    this.poller = setTimeout(async () => {
      const id = this.id;
      try {
        const b = await getJson(`/api/v1/builds/${encodeURIComponent(id)}`);
        if (this.id === id) this.render(b);
      } catch {
        // The stream's state says what is wrong; poll again.
      }
      if (this.id === id) this.poll();
    }, POLL_MS);
  }

  stream(url) {
    const source = new EventSource(url);
    this.source = source;
    source.addEventListener('open', () => this.connection('live', 'Following the log live.'));
    source.addEventListener('progress', (e) => this.progress(e.data));
    source.addEventListener('log', (e) => this.logLine(e.data));
    source.addEventListener('end', (e) => this.end(e.data));
    source.addEventListener('error', () => this.streamError(source, url));
  }

  streamError(source, url) {
    if (source !== this.source) return;
    if (source.readyState === EventSource.CONNECTING) {
      this.connection('reconnecting', 'Reconnecting to the log…');
      return;
    }
    // The browser gave up (the server answered with an error): start over
    // later with the whole log, which the server sends from the beginning.
    source.close();
    this.connection('reconnecting', 'The log stream was refused; trying again in a few seconds…');
    this.retry = setTimeout(() => {
      if (this.source !== source) return;
      fill($('b-log'));
      this.streamStage = null;
      this.stream(url);
    }, RETRY_MS);
  }

  connection(state, text) {
    const el = $('b-conn');
    el.className = `conn ${state}`;
    if (el.textContent !== text) el.textContent = text;
  }

  progress(data) {
    let p;
    try {
      p = JSON.parse(data);
    } catch {
      return;
    }
    if (p.message) {
      $('b-message').textContent = p.message;
      // The same line as in the plain log (GET log_url).
      this.logLine(`[${p.stage} ${p.progress}%] ${p.message}`);
    }
    if (typeof p.progress === 'number') this.setProgress(p.progress);
    if (p.stage) this.streamStage = p.stage;
    if (this.build && !TERMINAL.has(this.build.status) && p.stage) {
      this.build.stage = p.stage;
      if (p.stage !== 'queued') this.build.status = 'running';
      this.renderStatus(this.build);
    }
  }

  logLine(line) {
    const log = $('b-log');
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
    log.append(`${line}\n`);
    while (log.childNodes.length > MAX_LOG_LINES) log.firstChild.remove();
    if (atEnd) log.scrollTop = log.scrollHeight;
  }

  end(data) {
    this.source.close();
    this.connection('ended', 'The log is complete.');
    try {
      this.render(JSON.parse(data));
    } catch {
      this.load();
    }
  }

  setProgress(pct) {
    $('b-progress').value = pct;
    $('b-percent').textContent = `${pct}%`;
  }

  render(b) {
    const before = this.build ? this.build.status : null;
    // While the stream runs, its stage is newer than a polled one.
    if (this.streamStage && !TERMINAL.has(b.status)) b.stage = this.streamStage;
    this.build = b;
    this.renderStatus(b);
    if (typeof b.progress === 'number') this.setProgress(b.progress);
    this.renderCancel(b);
    this.renderResult(b);
    this.renderError(b);
    this.renderCache(b);
    if (TERMINAL.has(b.status)) {
      clearTimeout(this.poller);
      forgetToken(b.id);
      if (before && before !== b.status) this.announce(`The build ${b.status}.`);
    }
  }

  renderStatus(b) {
    const el = $('b-status');
    el.className = `status-line status-${b.status}`;
    const text = statusText(b);
    if (el.textContent !== text) el.textContent = text;
    this.renderStages(b.stage, b.status);
  }

  renderStages(stage, status) {
    const at = STAGES.indexOf(stage);
    const items = STAGES.map((name, i) => {
      let state = i < at ? 'done' : (i === at ? 'current' : 'pending');
      if (status === 'succeeded') state = 'done';
      else if (i === at && (status === 'failed' || status === 'cancelled')) state = 'stopped';
      const words = {done: 'done', current: 'in progress', pending: 'not yet', stopped: status};
      return h('li', {class: `stage ${state}`, 'aria-current': state === 'current' ? 'step' : false},
        name, h('span', {class: 'visually-hidden'}, `: ${words[state]}`));
    });
    fill($('b-stages'), items);
  }

  renderCancel(b) {
    const token = cancelToken(b.id);
    $('b-cancel').hidden = !(token && !TERMINAL.has(b.status));
  }

  renderResult(b) {
    const ok = b.status === 'succeeded' && b.iso_url;
    $('b-result').hidden = !ok;
    if (!ok) return;
    $('b-iso').href = b.iso_url;
    $('b-size').textContent = `${formatBytes(b.iso_size)} (${b.iso_size} bytes)`;
    $('b-sha').textContent = b.iso_sha256 || '';
    $('b-manifest').href = b.manifest_url || '';
  }

  renderError(b) {
    const failed = (b.status === 'failed' || b.status === 'cancelled') && b.error;
    $('b-error').hidden = !failed;
    if (!failed) return;
    $('b-error-code').textContent = b.error.code || '';
    $('b-error-message').textContent = b.error.message || '';
  }

  renderCache(b) {
    const answer = submissionOf(b.id);
    $('b-cache').hidden = false;
    $('b-cache-text').textContent = cacheSentence(answer);
    const rows = [];
    const key = b.key || {};
    for (const [part, label] of KEY_PARTS) {
      const value = key[part];
      const differs = answer && Array.isArray(answer.differs) && answer.differs.includes(part);
      rows.push(h('dt', {}, label, differs ? h('span', {class: 'differs'}, ' (differs)') : null),
        h('dd', {}, h('code', {class: 'hash'}, value === null || value === undefined ? 'none' : String(value))));
    }
    rows.push(h('dt', {}, 'the key (build_key)'), h('dd', {}, h('code', {class: 'hash'}, b.build_key || '')));
    fill($('b-key'), rows);
  }

  async cancel() {
    const id = this.id;
    const button = $('b-cancel');
    button.disabled = true;
    $('b-cancel-msg').textContent = '';
    try {
      const {body} = await postJson(`/api/v1/builds/${encodeURIComponent(id)}/cancel`,
        {cancel_token: cancelToken(id)});
      if (this.id === id && body && body.build) this.render(body.build);
      this.announce('Cancelling the build.');
    } catch (e) {
      if (e.code === 'already_finished' && e.body && e.body.build) this.render(e.body.build);
      $('b-cancel-msg').textContent = `The build was not cancelled: ${e.message}.`;
    } finally {
      button.disabled = false;
    }
  }
}

function cacheSentence(answer) {
  if (!answer) return 'Every input the ISO depends on; two builds with the same key give the same ISO.';
  if (answer.cache === 'hit') return 'Served from the cache: an earlier build had this key, and its ISO is reused.';
  if (answer.merged) return 'Joined an identical build that was already queued or running.';
  if (!answer.differs || answer.differs.length === 0) {
    return 'Built anew: no earlier build of this recipe can be reused.';
  }
  return `Built anew: the key differs from the newest earlier build of this recipe in ${answer.differs.join(', ')}.`;
}
