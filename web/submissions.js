// What the page keeps of the builds it submitted, in localStorage under
// the build's id: the one-time cancel token (the server keeps only its hash,
// so this is the only copy) and what the submission said about the cache.

const TOKEN = 'debate.cancel.';
const ANSWER = 'debate.submission.';

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
    differs: Array.isArray(body.differs) ? body.differs : null}));
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
