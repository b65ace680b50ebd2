// debate's web page, driven in Debian's Chromium by playwright-core, as a
// person would use it: typing, clicking, the keyboard. Run by
// tests/integration/test_page.py against a real `debate serve`; it can also
// be run by hand:
//
//   node tests/browser/page.mjs CONFIG.json
//
// CONFIG: {"base": "https://localhost:PORT", "config_hash": hash of
// examples/tiny.json, "cancel_recipe": a recipe file whose hook sleeps,
// "failing_recipe": one whose hook prints markup and fails, "work": a
// scratch directory, "screenshots": a directory or null,
// "first_build_timeout": seconds}.
//
// Each step prints "ok NAME" or "not ok NAME: why" and the run stops at the
// first failure. The last line is a JSON object of what the Python side
// checks against the server (build ids, the downloaded ISO). Exit 0 when
// every step passed.
//
// Throughout: no console error, no uncaught exception and no CSP violation
// may occur, and axe-core finds no serious or critical violation on the
// compose view, the build view and the history.

import {chromium} from 'playwright-core';
import {createHash} from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {createRequire} from 'node:module';

const require = createRequire(import.meta.url);
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const result = {};
const problems = [];          // console errors, page errors, CSP violations
const requests = [];          // every request the page made: {method, path}

class Failure extends Error {}

function check(ok, message) {
  if (!ok) throw new Failure(message);
}

async function step(name, fn) {
  try {
    await fn();
    check(problems.length === 0, `the page reported: ${problems.join(' | ')}`);
    console.log(`ok ${name}`);
  } catch (e) {
    console.log(`not ok ${name}: ${e instanceof Failure ? e.message : e.stack}`);
    throw e;
  }
}

// The one error the page may meet: while the server has no package index
// (or is still reading it), completion is answered 503, and Chromium logs
// every failed request to the console; the page then says so and waits.
function expected(msg) {
  const url = msg.location().url || '';
  return /status of 503/.test(msg.text()) && new URL(url, config.base).pathname === '/api/v1/packages';
}

function watch(page) {
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    if (expected(msg)) result.packages_503 = (result.packages_503 || 0) + 1;
    else problems.push(`console: ${msg.text()} (${msg.location().url || 'no url'})`);
  });
  page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
  page.on('request', (r) => requests.push({method: r.method(), path: new URL(r.url()).pathname}));
  // A violation is also reported to the console, but the event says which
  // directive: keep both.
  return page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
    });
  });
}

// axe-core in the page (evaluated through the driver, which the page's CSP
// does not govern), then the serious and critical violations.
async function axe(page, what) {
  await page.evaluate(AXE_SOURCE);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, {resultTypes: ['violations']});
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  check(found.length === 0, `axe on ${what}: ${found.join('; ')}`);
}

// For the documentation: the view from its top, no control focused.
async function screenshot(page, name, fullPage = false) {
  if (!config.screenshots) return;
  await page.evaluate(() => {
    document.activeElement.blur();
    window.scrollTo(0, 0);
  });
  await page.screenshot({path: path.join(config.screenshots, name), fullPage});
}

const text = (page, sel) => page.locator(sel).textContent();

// How many requests for method and path the page made since requests[from].
const requestsSince = (from, method, path) =>
  requests.slice(from).filter((r) => r.method === method && r.path === path).length;

// Polls cond() (in this process, not in the page, whose CSP forbids eval).
async function until(cond, ms, what) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    check(Date.now() < deadline, `${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// The message of the error tied to a control by aria-describedby.
async function describedError(locator) {
  return locator.evaluate((el) => (el.getAttribute('aria-describedby') || '').split(/\s+/)
    .map((id) => document.getElementById(id))
    .filter((e) => e && e.classList.contains('field-error') && !e.hidden)
    .map((e) => e.textContent).join(' '));
}

// Types a package into a new row; with suggestions, takes `name` from the
// list with the arrow keys and Enter. Returns whether the list was used.
async function addPackage(page, prefix, name, {requireList}) {
  await page.getByRole('button', {name: 'Add a package'}).click();
  const input = page.locator('#package-rows input').last();
  await check(await input.evaluate((el) => el === document.activeElement), 'a new package row takes the focus');
  await input.pressSequentially(prefix, {delay: 20});
  const option = page.getByRole('option', {name: new RegExp(`^${name.replace(/[+.]/g, '\\$&')}\\b`)});
  const listed = await option.first().waitFor({timeout: requireList ? 15000 : 5000}).then(() => true, () => false);
  check(listed || !requireList, `no suggestion "${name}" for "${prefix}"`);
  if (!listed) {
    await input.pressSequentially(name.slice(prefix.length), {delay: 20});
    return false;
  }
  check(await input.getAttribute('aria-expanded') === 'true', 'an open list sets aria-expanded');
  const ids = await page.locator(`#${await input.getAttribute('aria-controls')} [role=option]`)
    .evaluateAll((els) => els.map((e) => e.querySelector('.opt-name').textContent));
  for (let i = 0; i <= ids.indexOf(name); i += 1) await input.press('ArrowDown');
  const active = await input.getAttribute('aria-activedescendant');
  check(active && (await page.locator(`#${active} .opt-name`).textContent()) === name,
    `the arrow keys make "${name}" the active option (aria-activedescendant ${active})`);
  await input.press('Enter');
  check(await input.inputValue() === name, `Enter takes "${name}" into the input`);
  check(await input.getAttribute('aria-expanded') === 'false', 'Enter closes the list');
  return true;
}

// examples/tiny.json, typed into the form.
async function composeTiny(page) {
  await page.goto(`${config.base}/`);
  await page.getByRole('button', {name: 'Start over'}).click();
  await page.getByLabel('Name', {exact: true}).pressSequentially('tiny', {delay: 20});
  await page.getByLabel('Variant').selectOption('busybox');
  result.completion = await addPackage(page, 'busybox-st', 'busybox-static', {requireList: false});
  await addPackage(page, 'linux-image-amd6', 'linux-image-amd64', {requireList: false});

  await page.getByRole('button', {name: 'Add a file'}).click();
  await page.keyboard.type('/etc/motd');
  const file = page.locator('#overlay-rows fieldset').last();
  check(await file.getByLabel('Mode', {exact: true}).inputValue() === '0644', 'a new file has mode 0644');
  await file.getByLabel('Content', {exact: true}).pressSequentially('debate tiny image\n', {delay: 10});

  await page.getByRole('button', {name: 'Add a hook'}).click();
  await page.keyboard.type('10-marker');
  const script = page.locator('#hook-rows fieldset').last().getByLabel('Script', {exact: true});
  check(await script.inputValue() === '#!/bin/sh\nset -e\n', 'a new hook starts with "#!/bin/sh"');
  await script.click();
  await script.press('Control+End');
  await script.pressSequentially("echo 'DEBATE-TINY-BOOTED' > /etc/debate-marker\n", {delay: 10});
  const gutter = await page.locator('#hook-rows .gutter').last().textContent();
  check(gutter === '1\n2\n3\n4', `the script editor numbers its 4 lines, not ${JSON.stringify(gutter)}`);

  await page.getByLabel('Kernel command line').pressSequentially('console=ttyS0', {delay: 10});
  check(await page.getByLabel('BIOS (isolinux)').isChecked(), 'BIOS boot is on by default');
  check(await page.getByLabel('UEFI (GRUB)').isChecked(), 'UEFI boot is on by default');
}

async function expectValid(page, hash) {
  await page.locator('#config-hash').waitFor({timeout: 20000});
  const shown = await text(page, '#config-hash');
  check(shown === hash, `the page shows config_hash ${shown}, debate hash says ${hash}`);
}

async function stepCompose(page) {
  await composeTiny(page);
  await expectValid(page, config.config_hash);
  // Enter in a text field does not build (implicit submission): only the button does.
  const before = requests.length;
  for (const field of ['#f-name', '#f-hostname', '#f-cmdline', '#overlay-rows input[type=text]',
    '#hook-rows input[type=text]']) {
    await page.locator(field).first().press('Enter');
  }
  await page.waitForTimeout(1500);
  check(requestsSince(before, 'POST', '/api/v1/builds') === 0, 'Enter in a text field submitted a build');
  check(new URL(page.url()).pathname === '/', `Enter in a text field left the compose view: ${page.url()}`);
  const doc = JSON.parse(await page.locator('#json').inputValue());
  check(doc.name === 'tiny' && doc.variant === 'busybox' && doc.hooks.length === 1,
    `the JSON view follows the form: ${JSON.stringify(doc)}`);
  await axe(page, 'the compose view');
  await screenshot(page, 'compose.png', true);
}

// A bad package name: its error appears beside its input, tied to it.
async function stepRecipeError(page) {
  await page.getByRole('button', {name: 'Add a package'}).click();
  const input = page.locator('#package-rows input').last();
  await input.pressSequentially('Evil;rm', {delay: 20});
  await page.locator('#package-rows input[aria-invalid="true"]').waitFor({timeout: 20000});
  check(await input.getAttribute('aria-invalid') === 'true', 'the bad package\'s input is marked invalid');
  const message = await describedError(input);
  check(message.includes('"Evil;rm"') && message.includes('not a Debian package name'),
    `the error beside the input names the package: ${JSON.stringify(message)}`);
  const others = await page.locator('#package-rows input[aria-invalid="true"]').count();
  check(others === 1, `only the bad row is marked invalid, not ${others}`);
  check(await page.locator('#problem-list li').count() >= 1, 'the problem is listed above the form');
  await axe(page, 'the compose view with an error');
  await page.getByRole('button', {name: `Remove package 3`}).click();
  await expectValid(page, config.config_hash);
  check(await page.locator('[aria-invalid="true"]').count() === 0, 'removing the row clears the error');
}

// The JSON view edits the form.
async function stepJsonView(page) {
  const json = page.locator('#json');
  const doc = JSON.parse(await json.inputValue());
  doc.hostname = 'typed-in-json';
  await json.fill(JSON.stringify(doc, null, 2));
  check(await page.getByLabel('Host name').inputValue() === 'typed-in-json', 'the form follows the JSON view');
  await json.press('End');
  await json.pressSequentially(',');
  await page.locator('#json[aria-invalid="true"]').waitFor({timeout: 5000});
  check(await page.getByLabel('Host name').inputValue() === 'typed-in-json', 'JSON that does not parse leaves the form');
  await page.getByLabel('Host name').fill('');
  await expectValid(page, config.config_hash);
  check(await json.getAttribute('aria-invalid') === null, 'an edit in the form rewrites the JSON view');
}

async function collectStages(page) {
  await page.evaluate(() => {
    window.seenStages = [];
    const note = () => {
      const cur = document.querySelector('#b-stages .current');
      const name = cur ? cur.firstChild.textContent : null;
      if (name && window.seenStages[window.seenStages.length - 1] !== name) window.seenStages.push(name);
    };
    new MutationObserver(note).observe(document.getElementById('b-stages'), {childList: true, subtree: true});
    note();
  });
}

async function waitStatus(page, re, seconds) {
  await page.locator('#b-status').filter({hasText: re}).waitFor({timeout: seconds * 1000});
}

async function stepBuild(page) {
  await page.getByRole('button', {name: 'Build this recipe'}).click();
  await page.waitForURL(/\/builds\/[0-9a-f-]{36}$/, {timeout: 30000});
  result.build_id = new URL(page.url()).pathname.split('/').pop();
  const from = requests.length;
  await collectStages(page);
  await page.getByRole('button', {name: 'Cancel this build'}).waitFor({timeout: 10000})
    .catch(() => check(false, 'the submitter of a running build is offered to cancel it'));
  await waitStatus(page, /^(Succeeded|Failed|Cancelled)\./, config.first_build_timeout);
  const status = await text(page, '#b-status');
  check(status === 'Succeeded.', `the build ended: ${status} ${await text(page, '#b-error')}`);
  const seen = await page.evaluate(() => window.seenStages);
  for (const stage of ['rootfs', 'customizing', 'squashfs', 'assembling']) {
    check(seen.includes(stage), `the progress showed stage "${stage}" (saw ${seen.join(', ')})`);
  }
  result.stages_seen = seen;
  // The stream carries the stage and the progress: the build object is read
  // once, and polled only while the build waits in the queue.
  const reads = requestsSince(from, 'GET', `/api/v1/builds/${result.build_id}`);
  result.build_reads = reads;
  check(reads <= 3, `the build view read the build object ${reads} times while it ran`);
  const stages = await page.locator('#b-stages .stage').count();
  check(stages === 12 && await page.locator('#b-stages .stage.done').count() === stages, 'every stage is done');
  check(await page.locator('#b-progress').evaluate((el) => el.value) === 100, 'the progress bar is full');
  check(!(await page.getByRole('button', {name: 'Cancel this build'}).isVisible()), 'a finished build has no cancel');
  const log = await text(page, '#b-log');
  check(log.includes('] installing the packages') && log.includes('] writing the ISO'),
    'the log shows the progress lines');
  check(log.includes('xorriso'), 'the log shows what the tools printed');
  check((await text(page, '#b-cache-text')).startsWith('Built anew'), 'a first build is not from the cache');
  await axe(page, 'the build view');
  await screenshot(page, 'build.png');
}

async function stepDownload(page) {
  const sha = await text(page, '#b-sha');
  check(/^[0-9a-f]{64}$/.test(sha), `the page shows the ISO's SHA-256: ${sha}`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', {name: 'Download the ISO'}).click()]);
  const file = path.join(config.work, 'downloaded.iso');
  await download.saveAs(file);
  const got = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  check(got === sha, `the downloaded ISO's SHA-256 ${got} is the one shown, ${sha}`);
  check((await text(page, '#b-size')).includes(`(${fs.statSync(file).size} bytes)`), 'the size shown is the file\'s');
  check(await page.getByRole('link', {name: 'The manifest'}).getAttribute('href')
    === `/api/v1/builds/${result.build_id}/manifest`, 'the manifest link');
  result.iso = file;
  result.iso_sha256_shown = sha;
}

// The build's URL is shareable: a reload shows the same build, ended.
async function stepReload(page) {
  const from = requests.length;
  await page.reload();
  await waitStatus(page, /^Succeeded\./, 60);
  await page.locator('#b-log').filter({hasText: 'writing the ISO'}).waitFor({timeout: 30000});
  check(await text(page, '#b-id') === result.build_id, 'the reloaded view shows the same build');
  // The draft kept in the browser is checked when the compose view is shown, not on every page.
  check(requestsSince(from, 'POST', '/api/v1/recipes/validate') === 0, 'the build view checked the draft');
}

// An independent rebuild, asked for from the page: the verdict shows there
// once it ends, with a link to the rebuild, whose own view names the build.
async function stepVerify(page) {
  check(await text(page, '#b-verify-result') === 'Not verified yet.', 'a new build is not verified yet');
  await page.getByRole('button', {name: 'Verify by rebuilding'}).click();
  await page.locator('#b-verify-result').filter({hasText: /^Verifying/}).waitFor({timeout: 20000});
  check(!(await page.getByRole('button', {name: 'Verify by rebuilding'}).isVisible()),
    'no second rebuild is offered while one runs');
  await page.locator('#b-verify-result').filter({hasText: /^Verified: /}).waitFor({timeout: 600000});
  const detail = await text(page, '#b-verify-detail');
  check(/^By .+, \d{4}-\d\d-\d\dT/.test(detail), `the verdict says by which worker and when: ${detail}`);
  await axe(page, 'the build view with a verdict');
  await page.getByRole('link', {name: 'The rebuild'}).click();
  await waitStatus(page, /^Succeeded\./, 60);
  check(await text(page, '#b-verifies-id') === result.build_id, 'the rebuild names the build it verifies');
  check(!(await page.locator('#b-verify').isVisible()), 'a rebuild is not offered for verifying');
  check(await text(page, '#b-sha') === result.iso_sha256_shown, 'the rebuild has the same SHA-256');
  await page.goBack();
  await waitStatus(page, /^Succeeded\./, 60);
}

// Answers that arrive late (a poll sent before the end, answered after it)
// do not undo what the view shows: the view's own module, driven with a
// finished record and then older ones.
async function stepStaleAnswers(page) {
  const seen = await page.evaluate(async (id) => {
    const {BuildView} = await import('/assets/build.js');
    const $ = (el) => document.getElementById(el);
    const finished = await (await fetch(`/api/v1/builds/${id}`)).json();
    const view = new BuildView({announce() {}});
    view.id = id;
    view.render(finished);
    view.render({...finished, status: 'running', stage: 'squashfs', progress: 40, iso_url: null});
    view.progress(JSON.stringify({stage: 'kernel', progress: 30, message: 'a late line'}));
    const out = {status: $('b-status').textContent, iso: !$('b-result').hidden, progress: $('b-progress').value};
    const running = {...finished, status: 'running', stage: 'kernel', progress: 60, iso_url: null};
    const other = new BuildView({announce() {}});
    other.id = id;
    other.render(running);
    other.render({...running, stage: 'rootfs', progress: 35});
    out.runningProgress = $('b-progress').value;
    // A build that did not ask for a boot check was never booted: that stage is not "done".
    const unchecked = new BuildView({announce() {}});
    unchecked.id = id;
    unchecked.render({...finished, boot_check: false});
    out.skipped = [...document.querySelectorAll('#b-stages .stage.skipped')].map((li) => li.firstChild.textContent);
    out.doneWithoutCheck = document.querySelectorAll('#b-stages .stage.done').length;
    return out;
  }, result.build_id);
  check(seen.status === 'Succeeded.', `a late "running" record turned a finished build into: ${seen.status}`);
  check(seen.iso, 'a late record hid the ISO');
  check(seen.progress === 100, `a late record moved the bar back to ${seen.progress}`);
  check(seen.runningProgress === 60, `an older progress moved the bar back to ${seen.runningProgress}`);
  check(seen.skipped.length === 1 && seen.skipped[0] === 'booting' && seen.doneWithoutCheck === 11,
    `without a boot check "booting" is shown as not asked for (skipped: ${seen.skipped}, done: ${seen.doneWithoutCheck})`);
  await page.reload();
  await waitStatus(page, /^Succeeded\./, 60);
}

// With the server's package index present (a build has resolved against
// it), completion works.
async function stepCompletion(page) {
  await page.getByRole('link', {name: 'Compose'}).click();
  check(await page.evaluate(() => document.activeElement.id) === 'compose-title', 'the view\'s heading takes the focus');
  await page.getByRole('button', {name: 'Start over'}).click();
  await addPackage(page, 'busybox-st', 'busybox-static', {requireList: true});
  const described = await page.locator('#package-rows input').last().getAttribute('aria-describedby');
  check(described.includes('packages-hint'), 'the package input is described by its hint');
  // A file's content read from a chosen file.
  await page.getByRole('button', {name: 'Add a file'}).click();
  await page.locator('#overlay-rows .overlay-file').last().setInputFiles(config.cancel_recipe);
  const box = page.locator('#overlay-rows fieldset').last().getByLabel('Content', {exact: true});
  const expected = fs.readFileSync(config.cancel_recipe, 'utf8');
  await until(async () => await box.inputValue() === expected, 5000, 'a chosen file becomes the content');
  const content = await box.inputValue();
  check(JSON.parse(await page.locator('#json').inputValue()).overlays[0].content === content, 'and the JSON view\'s');
}

async function stepCancel(page) {
  await page.locator('#import-file').setInputFiles(config.cancel_recipe);
  await page.locator('#file-status').filter({hasText: 'Imported'}).waitFor({timeout: 5000});
  await page.locator('#config-hash').waitFor({timeout: 20000});
  await page.getByRole('button', {name: 'Build this recipe'}).click();
  await page.waitForURL(/\/builds\/[0-9a-f-]{36}$/, {timeout: 30000});
  result.cancel_id = new URL(page.url()).pathname.split('/').pop();
  check(result.cancel_id !== result.build_id, 'a new build');
  // The hooks run in the customizing stage; the second one sleeps until
  // the build is cancelled.
  await page.locator('#b-log').filter({hasText: 'hook "20-sleep"'})
    .waitFor({timeout: config.first_build_timeout * 1000});
  // The build ends a moment after the cancel is accepted: meanwhile the view
  // says "Cancelling…" and offers no second cancel.
  await page.evaluate(() => {
    window.cancelling = {shown: false, buttonToo: false};
    const note = () => {
      const el = document.getElementById('b-cancelling');
      if (!el || el.hidden || el.textContent !== 'Cancelling…') return;
      window.cancelling.shown = true;
      if (!document.getElementById('b-cancel').hidden) window.cancelling.buttonToo = true;
    };
    new MutationObserver(note).observe(document.getElementById('view-build'),
      {attributes: true, childList: true, subtree: true});
  });
  await page.getByRole('button', {name: 'Cancel this build'}).click();
  await waitStatus(page, /^Cancelled\./, 120);
  const cancelling = await page.evaluate(() => window.cancelling);
  check(cancelling.shown, 'an accepted cancel showed "Cancelling…" until the build ended');
  check(!cancelling.buttonToo, 'the cancel button stayed while cancelling');
  check(await page.locator('#b-cancelling').isHidden(), '"Cancelling…" goes once the build is cancelled');
  check(await text(page, '#b-error-code') === 'cancelled', 'the build says it was cancelled');
  check(!(await page.getByRole('button', {name: 'Cancel this build'}).isVisible()), 'no cancel after the end');
}

// A build whose hook prints markup and fails: the error and the log show
// the markup as text.
async function stepFailure(page) {
  await page.getByRole('link', {name: 'Compose'}).click();
  await page.locator('#import-file').setInputFiles(config.failing_recipe);
  await page.locator('#config-hash').waitFor({timeout: 20000});
  await page.getByRole('button', {name: 'Build this recipe'}).click();
  await page.waitForURL(/\/builds\/[0-9a-f-]{36}$/, {timeout: 30000});
  result.failed_id = new URL(page.url()).pathname.split('/').pop();
  await waitStatus(page, /^(Succeeded|Failed|Cancelled)\./, config.first_build_timeout);
  check(await text(page, '#b-status') === 'Failed.', `the build failed: ${await text(page, '#b-status')}`);
  check(await text(page, '#b-error-code') === 'hook_failed', 'the error\'s code is shown');
  const markup = '<img src=x onerror=alert(1)><script>alert(2)</script>';
  const message = await text(page, '#b-error-message');
  check(message.includes('hook "30-fail" failed with exit code 3') && message.includes(markup),
    `the error's message shows the hook's output as text: ${JSON.stringify(message)}`);
  check((await text(page, '#b-log')).includes(markup), 'the log shows the markup as text');
  check(await page.locator('#b-log *, #b-error-message *').count() === 0, 'server text never becomes an element');
  check(await page.locator('#b-result').isHidden(), 'a failed build offers no ISO');
}

async function stepHistory(page) {
  await page.getByRole('link', {name: 'History'}).click();
  await page.waitForURL(/\?view=history$/);
  await page.locator('#h-rows tr').nth(1).waitFor({timeout: 10000});
  const links = await page.locator('#h-rows a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  check(links[0] === `/builds/${result.failed_id}` && links.includes(`/builds/${result.build_id}`),
    `the history lists the builds newest first: ${links.join(' ')}`);
  await axe(page, 'the history');
  await page.getByLabel('Show').selectOption('cancelled');
  await page.waitForURL(/status=cancelled$/);
  await page.locator('#h-message').filter({hasText: /shown/}).waitFor({timeout: 10000});
  const statuses = await page.locator('#h-rows .badge').allTextContents();
  check(statuses.length >= 1 && statuses.every((s) => s === 'cancelled'), `the filter shows cancelled builds: ${statuses}`);
  await page.getByLabel('Show').selectOption('');
  await page.locator(`#h-rows a[href="/builds/${result.build_id}"]`).click();
  await waitStatus(page, /^Succeeded\./, 30);
  await page.goBack();
  await page.locator(`#h-rows a[href="/builds/${result.build_id}"]`).waitFor({timeout: 10000});
}

// The keyboard alone: the skip link first, then the navigation.
async function stepKeyboard(page) {
  await page.goto(`${config.base}/`);
  await page.waitForLoadState('networkidle');
  const bytes = await page.evaluate(() => [...performance.getEntriesByType('navigation'),
    ...performance.getEntriesByType('resource')].reduce((n, e) => n + e.encodedBodySize, 0));
  check(bytes > 0 && bytes <= 150 * 1024, `the first view weighs ${bytes} bytes as sent, at most 150 KiB`);
  result.first_view_bytes = bytes;
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.className) === 'skip-link', 'Tab reaches the skip link first');
  await page.keyboard.press('Enter');
  check(await page.evaluate(() => document.activeElement.id) === 'main', 'the skip link moves the focus to the content');
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.id) === 'import', 'then the first control of the view');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', {name: 'Export as JSON'}).press('Enter')]);
  const file = path.join(config.work, 'exported.json');
  await download.saveAs(file);
  const exported = JSON.parse(fs.readFileSync(file, 'utf8'));
  check(JSON.stringify(exported) === JSON.stringify(JSON.parse(await page.locator('#json').inputValue())),
    'the export is the JSON view\'s recipe');
}

async function report(page) {
  if (!page) return;
  try {
    await page.screenshot({path: path.join(config.work, 'failure.png'), fullPage: true});
    const state = await page.evaluate(() => ({
      url: location.href,
      validity: document.getElementById('validity').textContent,
      problems: document.getElementById('problem-list').textContent,
      json: document.getElementById('json').value,
      status: document.getElementById('b-status').textContent,
      log: document.getElementById('b-log').textContent.slice(-2000),
    }));
    console.log(`page state: ${JSON.stringify(state, null, 1)}`);
  } catch (e) {
    console.log(`page state: unavailable (${e.message})`);
  }
}

async function main() {
  const profile = fs.mkdtempSync(path.join(config.work, 'profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_FLAGS,
    ignoreHTTPSErrors: true, acceptDownloads: true, viewport: {width: 1280, height: 900},
  });
  let ok = false;
  try {
    const page = context.pages()[0] || await context.newPage();
    await watch(page);
    await step('compose examples/tiny.json by typing', () => stepCompose(page));
    await step('a recipe error beside its field', () => stepRecipeError(page));
    await step('the JSON view and the form follow each other', () => stepJsonView(page));
    await step('submit and follow the build to its end', () => stepBuild(page));
    await step('download the ISO through the page', () => stepDownload(page));
    await step('the build URL reloads into the same view', () => stepReload(page));
    await step('verify the build by an independent rebuild', () => stepVerify(page));
    await step('late answers do not undo a finished build', () => stepStaleAnswers(page));
    await step('package completion with the keyboard; a file read into an overlay', () => stepCompletion(page));
    await step('cancel a running build', () => stepCancel(page));
    await step('a failed build shows its error', () => stepFailure(page));
    await step('the history', () => stepHistory(page));
    await step('first view size, keyboard: skip link, export', () => stepKeyboard(page));
    ok = true;
  } catch {
    // Reported by step(); what the page showed helps to see why.
    await report(context.pages()[0]);
  } finally {
    await context.close();
    fs.rmSync(profile, {recursive: true, force: true});
  }
  console.log(JSON.stringify(result));
  process.exit(ok ? 0 : 1);
}

main();
