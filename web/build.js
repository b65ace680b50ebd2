// The build view, /builds/{id}: status, queue position, progress by stage,
// the live log, cancel, and the result.
//
// The log and progress come over EventSource from the build's log_url. The
// browser reconnects a dropped stream by itself, sending Last-Event-ID, so
// the server resumes after the last event seen; meanwhile the view says
// "reconnecting". The stream ends with an `end` event carrying the final
// build object, after which the view closes it (otherwise the browser would
// reconnect to a finished stream). The stream carries the stage and the
// progress; while the build is queued the build object is also polled, for
// what the stream does not carry (the place in the queue), slowly and
// never faster than a Retry-After asks, so that a page left open stays far
// below the server's rate limit.
//
// Answers can arrive out of order (a poll sent before the end, answered
// after it): once the view shows a finished build, a record that is not
// finished is ignored, and the progress bar never moves backwards within
// one attempt.

import {getJson, postJson} from './api.js';
import {h, fill, formatBytes} from './dom.js';
import {cancelToken, submissionOf, forgetToken, rememberSubmission} from './submissions.js';

export const STAGES = ['queued', 'resolving', 'fetching', 'rootfs', 'customizing', 'kernel', 'squashfs',
  'bootloader', 'assembling', 'booting', 'verifying', 'done'];
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const POLL_MS = 10000;
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
    case 'queued': {
      const place = b.queue_position ? `Queued: number ${b.queue_position} in the queue.` : 'Queued.';
      // No live worker has the builder identity the build's key was made for.
      return b.waiting ? `${place} Waiting: ${b.waiting}.` : place;
    }
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
    this.pending = [];      // log lines not yet on screen
    this.frame = null;      // the animation frame that will put them there
    this.cancelling = false;
    $('b-cancel').addEventListener('click', () => this.cancel());
    $('b-verify-button').addEventListener('click', () => this.verify());
  }

  show(id) {
    this.hide();
    this.id = id;
    this.build = null;
    this.streamStage = null;
    this.cancelling = false;
    this.awaiting = null;   // the rebuild this view queued, until the build's verdict names it
    document.title = `Build ${id.slice(0, 8)} · debate`;
    $('b-id').textContent = id;
    $('build-title').textContent = 'Build';
    this.clearLog();
    $('b-cancel-msg').textContent = '';
    $('b-verify-msg').textContent = '';
    for (const el of ['b-result', 'b-error', 'b-cache', 'b-cancel', 'b-cancelling', 'b-verifies']) $(el).hidden = true;
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
    this.clearLog();
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
      // An id that is not one the server issues (400) names no build either.
      const missing = e.status === 404 || e.status === 400;
      $('build-title').textContent = missing ? 'No such build' : 'Build';
      $('b-status').textContent = missing
        ? 'The server knows no build with this id.'
        : `The build could not be loaded: ${e.message}.`;
    }
  }

  // Polls the build object while it is queued, for its place in the queue,
  // and while a rebuild verifies it, for the verdict; once it runs, the
  // stream says everything that changes.
  poll(delay = POLL_MS) {
    clearTimeout(this.poller);
    if (!this.build || !(this.build.status === 'queued' || this.build.verifying)) return;
    this.poller = setTimeout(async () => {
      const id = this.id;
      let next = POLL_MS;
      try {
        const b = await getJson(`/api/v1/builds/${encodeURIComponent(id)}`);
        if (this.id === id) this.render(b);
      } catch (e) {
        // A 429 says when to ask again; anything else, the stream's state shows.
        if (e.retryAfter) next = Math.max(POLL_MS, e.retryAfter * 1000);
      }
      if (this.id === id) this.poll(next);
    }, delay);
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
      this.clearLog();
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
    if (this.build && TERMINAL.has(this.build.status)) return;
    if (typeof p.progress === 'number') this.setProgress(Math.max(this.shownProgress(), p.progress));
    if (p.stage) this.streamStage = p.stage;
    if (this.build && p.stage) {
      this.build.stage = p.stage;
      this.build.status = p.stage === 'queued' ? 'queued' : 'running';
      this.renderStatus(this.build);
      this.poll();
    }
  }

  // A reloaded build sends its whole log at once: lines are queued and put
  // on screen once a frame, so the layout is read and written once per
  // frame rather than once per line.
  logLine(line) {
    this.pending.push(`${line}\n`);
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.flushLog());
  }

  flushLog() {
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    this.frame = null;
    if (this.pending.length === 0) return;
    const log = $('b-log');
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
    const lines = this.pending.slice(-MAX_LOG_LINES);
    this.pending = [];
    const chunk = document.createDocumentFragment();
    for (const line of lines) chunk.append(line);
    log.append(chunk);
    const extra = log.childNodes.length - MAX_LOG_LINES;
    for (let i = 0; i < extra; i += 1) log.firstChild.remove();
    if (atEnd) log.scrollTop = log.scrollHeight;
  }

  clearLog() {
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    this.frame = null;
    this.pending = [];
    fill($('b-log'));
  }

  end(data) {
    this.source.close();
    this.flushLog();
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

  shownProgress() {
    return Number($('b-progress').value) || 0;
  }

  render(b) {
    // A server may answer from a copy made before the rebuild this view queued:
    // until the verdict names that rebuild, it is under way.
    if (this.awaiting && b.id === this.id) {
      if (b.verification && b.verification.build === this.awaiting) this.awaiting = null;
      else if (!b.verifying) b = {...b, verifying: true};
    }
    const before = this.build;
    const finished = before && TERMINAL.has(before.status);
    // A record older than the one shown: a finished build stays finished.
    if (finished && !TERMINAL.has(b.status)) return;
    // While the stream runs, its stage is newer than a polled one.
    if (this.streamStage && !TERMINAL.has(b.status)) b.stage = this.streamStage;
    this.build = b;
    this.renderStatus(b);
    if (typeof b.progress === 'number') {
      // Within one attempt progress only grows; a new attempt starts over.
      const sameAttempt = before && !TERMINAL.has(b.status) && before.attempts === b.attempts;
      this.setProgress(sameAttempt ? Math.max(this.shownProgress(), b.progress) : b.progress);
    }
    this.renderCancel(b);
    this.renderResult(b);
    this.renderError(b);
    this.renderCache(b);
    this.renderVerifies(b);
    if (TERMINAL.has(b.status)) {
      clearTimeout(this.poller);
      if (b.verifying) this.poll();
      forgetToken(b.id);
      this.cancelling = false;
      if (before && before.status !== b.status) this.announce(`The build ${b.status}.`);
    }
  }

  renderStatus(b) {
    const el = $('b-status');
    el.className = `status-line status-${b.status}`;
    const text = statusText(b);
    if (el.textContent !== text) el.textContent = text;
    this.renderStages(b.stage, b.status, b.boot_check);
  }

  // A build that did not ask for a boot check skips "booting": it is never
  // shown as done (the ISO was not booted) but as not asked for.
  renderStages(stage, status, bootCheck) {
    const at = STAGES.indexOf(stage);
    const items = STAGES.map((name, i) => {
      let state = i < at ? 'done' : (i === at ? 'current' : 'pending');
      if (status === 'succeeded') state = 'done';
      else if (i === at && (status === 'failed' || status === 'cancelled')) state = 'stopped';
      if (name === 'booting' && bootCheck === false && state !== 'current') state = 'skipped';
      const words = {done: 'done', current: 'in progress', pending: 'not yet', stopped: status,
        skipped: 'not asked for'};
      return h('li', {class: `stage ${state}`, 'aria-current': state === 'current' ? 'step' : false},
        name, h('span', {class: 'visually-hidden'}, `: ${words[state]}`));
    });
    fill($('b-stages'), items);
  }

  // After a cancel is accepted the build ends a moment later (its sandbox is
  // stopped): until then the view says so instead of offering the button.
  renderCancel(b) {
    const token = cancelToken(b.id);
    const terminal = TERMINAL.has(b.status);
    $('b-cancel').hidden = !(token && !terminal && !this.cancelling);
    const note = $('b-cancelling');
    note.hidden = !(this.cancelling && !terminal);
  }

  renderResult(b) {
    const ok = b.status === 'succeeded' && b.iso_url;
    $('b-result').hidden = !ok;
    if (!ok) return;
    $('b-iso').href = b.iso_url;
    $('b-size').textContent = `${formatBytes(b.iso_size)} (${b.iso_size} bytes)`;
    $('b-sha').textContent = b.iso_sha256 || '';
    $('b-manifest').href = b.manifest_url || '';
    this.renderBoot(b);
    this.renderVerify(b);
  }

  // The boot check's verdict, in words a glance takes in; the build succeeds whatever it says.
  renderBoot(b) {
    const v = b.boot_verdict;
    $('b-boot').hidden = !b.boot_check;
    if (!b.boot_check) return;
    $('b-boot-result').textContent = !v ? 'Boot check pending.'
      : v.result === 'pass' ? 'The ISO boots.' : 'The ISO did not boot.';
    $('b-boot').classList.toggle('failed', Boolean(v) && v.result !== 'pass');
    $('b-boot-detail').textContent = v ? `BIOS: ${v.bios}, UEFI: ${v.uefi} (${v.seconds} s).` : '';
    $('b-boot-log').hidden = !b.boot_log_url;
    $('b-boot-log').href = b.boot_log_url || '';
  }

  // What an independent rebuild said about the ISO, and the button that asks for one.
  renderVerify(b) {
    const v = b.verification;
    $('b-verify').hidden = !b.verify_url;
    if (!b.verify_url) return;
    const words = {match: 'Verified: an independent rebuild gave the same bytes.',
      differs: 'Not verified: an independent rebuild gave other bytes.',
      failed: 'Not verified: the rebuild failed.', cancelled: 'Not verified: the rebuild was cancelled.'};
    let result = 'Not verified yet.';
    let detail = '';
    if (b.verifying) {
      result = 'Verifying: an independent rebuild is under way.';
    } else if (v) {
      result = words[v.result] || v.result;
      detail = `By ${v.worker || 'a worker'}, ${v.at || ''}${v.result === 'differs' ? `; its SHA-256 ${v.sha256}` : ''}${v.error ? `: ${v.error}` : ''}.`;
    }
    $('b-verify-result').textContent = result;
    $('b-verify-detail').textContent = detail;
    $('b-verify-text').className = `verify-verdict ${v && !b.verifying ? v.result : ''}`;
    const link = $('b-verify-link');
    link.hidden = !(v && v.build) || b.verifying;
    link.href = v && v.build ? `/builds/${v.build}` : '';
    $('b-verify-button').hidden = Boolean(b.verifying);
  }

  renderVerifies(b) {
    $('b-verifies').hidden = !b.verify_of;
    if (!b.verify_of) return;
    $('b-verifies-link').href = `/builds/${b.verify_of}`;
    $('b-verifies-id').textContent = b.verify_of;
  }

  async verify() {
    const id = this.id;
    const b = this.build;
    const button = $('b-verify-button');
    if (!b || !b.verify_url) return;
    button.disabled = true;
    $('b-verify-msg').textContent = '';
    let answer;
    try {
      const {body} = await postJson(b.verify_url, {});
      answer = body;
    } catch (e) {
      if (this.id === id) $('b-verify-msg').textContent = `No rebuild was queued: ${e.message}.`;
      button.disabled = false;
      return;
    }
    button.disabled = false;
    // The rebuild is a build of this browser's: its cancel token is kept like a submission's.
    if (answer && answer.build) rememberSubmission({...answer, cache: 'miss'});
    if (this.id !== id) return;
    this.announce('A rebuild that verifies this build was queued.');
    this.awaiting = answer && answer.build ? answer.build.id : null;
    this.render({...b, verifying: true});
    this.poll();
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
      if (this.id !== id) return;
      this.cancelling = true;
      if (body && body.build) this.render(body.build);
      else if (this.build) this.renderCancel(this.build);
      this.announce('Cancelling the build.');
    } catch (e) {
      if (this.id !== id) return;
      if (e.code === 'already_finished' && e.body && e.body.build) this.render(e.body.build);
      $('b-cancel-msg').textContent = `The build was not cancelled: ${e.message}.`;
    } finally {
      button.disabled = this.cancelling;
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
