// The page's entry: one document for three views, chosen by the URL.
//
//   /                      compose a recipe
//   /builds/{id}           one build (the server answers this path with the
//                          same document, so the URL can be shared and reloaded)
//   /?view=history         the builds; &status=S filters them
//
// Links to these paths are followed in place with history.pushState; any
// other link (the ISO, the manifest) is left to the browser. After a move
// the focus goes to the new view's heading, so a keyboard or screen reader
// user starts reading there.

import {ComposeView} from './compose.js';
import {BuildView} from './build.js';
import {HistoryView} from './history.js';

// Any one segment: the build view itself says when no build has that id.
const BUILD_PATH = /^\/builds\/([^/]+)$/;

function buildId(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

const announcer = document.getElementById('announcer');
function announce(text) {
  // A change of text is what a live region reads: empty it first.
  announcer.textContent = '';
  setTimeout(() => { announcer.textContent = text; }, 50);
}

const sections = {
  compose: document.getElementById('view-compose'),
  build: document.getElementById('view-build'),
  history: document.getElementById('view-history'),
};

let views;
let shown = null;

function select(name) {
  for (const [key, el] of Object.entries(sections)) el.hidden = key !== name;
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (shown && shown !== views[name]) shown.hide();
  shown = views[name];
}

function route() {
  const params = new URLSearchParams(location.search);
  const build = BUILD_PATH.exec(location.pathname);
  if (build) {
    select('build');
    views.build.show(buildId(build[1]));
  } else if (params.get('view') === 'history') {
    select('history');
    views.history.show(params);
  } else {
    select('compose');
    views.compose.show();
  }
}

function focusView() {
  const heading = document.querySelector('.view:not([hidden]) h1');
  if (heading) heading.focus();
}

function navigate(url) {
  history.pushState(null, '', url);
  route();
  focusView();
}

function replace(url) {
  history.replaceState(null, '', url);
  route();
}

// A click on a link to one of the page's own views: follow it in place.
function onClick(e) {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.hasAttribute('download') || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  if (url.pathname !== '/' && !BUILD_PATH.test(url.pathname)) return;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
}

// The skip link moves the focus without touching the URL.
function onSkip(e) {
  e.preventDefault();
  document.getElementById('main').focus();
}

views = {
  compose: new ComposeView({navigate, announce}),
  build: new BuildView({announce}),
  history: new HistoryView({replace}),
};
document.addEventListener('click', onClick);
document.querySelector('.skip-link').addEventListener('click', onSkip);
window.addEventListener('popstate', () => {
  route();
  focusView();
});
route();
