// What the page keeps of the builds it submitted, in localStorage under
// the build's id: the one-time cancel token (the server keeps only its hash,
// so this is the only copy) and what the submission said about the cache.

const TOKEN = 'debate.cancel.';
const ANSWER = 'debate.submission.';
// The submissions kept; beyond, the oldest go (with their tokens), so that
// a browser used for years does not fill its storage.
const KEEP = 100;

function put(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // Storage refused (private mode, full): the build runs all the same,
    // only this page cannot cancel it.
  }
}

function get(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

// body: the answer of POST /api/v1/builds.
export function rememberSubmission(body) {
  const id = body.build.id;
  if (body.cancel_token) put(TOKEN + id, body.cancel_token);
  put(ANSWER + id, JSON.stringify({cache: body.cache, merged: Boolean(body.merged),
    differs: Array.isArray(body.differs) ? body.differs : null, at: Date.now()}));
  prune();
}

// Drops the oldest submissions beyond KEEP.
function prune() {
  try {
    const kept = [];
    for (let i = 0; i < localStorage.length; i += 1) {
      const key = localStorage.key(i);
      if (!key || !key.startsWith(ANSWER)) continue;
      let at = 0;
      try {
        at = Number(JSON.parse(localStorage.getItem(key)).at) || 0;
      } catch {
        // Unreadable: among the first to go.
      }
      kept.push({id: key.slice(ANSWER.length), at});
    }
    kept.sort((a, b) => a.at - b.at);
    for (const {id} of kept.slice(0, Math.max(0, kept.length - KEEP))) {
      localStorage.removeItem(ANSWER + id);
      localStorage.removeItem(TOKEN + id);
    }
  } catch {
    // Storage refused: nothing was kept to prune.
  }
}

// The build's cancel token, or null when this browser did not submit it.
export function cancelToken(id) {
  return get(TOKEN + id);
}

// {cache, merged, differs} of the submission, or null.
export function submissionOf(id) {
  try {
    return JSON.parse(get(ANSWER + id));
  } catch {
    return null;
  }
}

// After the build ended the token cannot do anything more.
export function forgetToken(id) {
  try {
    localStorage.removeItem(TOKEN + id);
  } catch {
    // Nothing to do: the token is useless now anyway.
  }
}
