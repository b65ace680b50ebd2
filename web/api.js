// The page's one way to the server's JSON API (docs/api.md).
//
// Every request stays on the page's own origin (the CSP's connect-src is
// 'self'). POSTs carry the CSRF token fetched once from /api/v1/csrf in
// X-CSRF-Token; its cookie comes with the request by itself. A POST answered
// 403 csrf_failed (the token expired, or the server restarted with a new
// secret) fetches a fresh token and is sent once more.

// A failed request: the HTTP status, the error's stable code, its message,
// the field to blame (when one is), and Retry-After in seconds (when sent).
export class ApiError extends Error {
  constructor(status, code, message, field = null, retryAfter = null, body = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
    this.body = body;
  }
}

// The token as a promise: POSTs sent at once (a check as you type and a
// submission) share one fetch of it instead of each asking for its own.
let csrfToken = null;

async function readJson(resp) {
  const text = await resp.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

function errorOf(resp, body) {
  const err = body && typeof body.error === 'object' && body.error ? body.error : {};
  const retry = Number.parseInt(resp.headers.get('Retry-After') || '', 10);
  return new ApiError(resp.status, err.code || `http_${resp.status}`,
    err.message || `the server answered ${resp.status}`, err.field || null,
    Number.isFinite(retry) ? retry : null, body);
}

// GET path; resolves to the parsed JSON of a 2xx answer, rejects with an
// ApiError otherwise (a network failure rejects with status 0).
export async function getJson(path, {signal} = {}) {
  let resp;
  try {
    resp = await fetch(path, {headers: {Accept: 'application/json'}, signal, credentials: 'same-origin'});
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'the server cannot be reached');
  }
  const body = await readJson(resp);
  if (!resp.ok) throw errorOf(resp, body);
  return body;
}

function token(fresh) {
  if (csrfToken === null || fresh) {
    const fetching = getJson('/api/v1/csrf').then((body) => body.token);
    csrfToken = fetching;
    // A failed fetch is not kept: the next POST asks again.
    fetching.catch(() => {
      if (csrfToken === fetching) csrfToken = null;
    });
  }
  return csrfToken;
}

async function postOnce(path, doc, fresh, signal) {
  const headers = {
    'Accept': 'application/json',
    'Content-Type': 'application/json',
    'X-CSRF-Token': await token(fresh),
  };
  try {
    return await fetch(path, {method: 'POST', headers, body: JSON.stringify(doc), signal,
      credentials: 'same-origin'});
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'the server cannot be reached');
  }
}

// POST doc as JSON; resolves to {status, body} for a 2xx answer, rejects
// with an ApiError otherwise.
export async function postJson(path, doc, {signal} = {}) {
  let resp = await postOnce(path, doc, false, signal);
  let body = await readJson(resp);
  if (resp.status === 403 && body && body.error && body.error.code === 'csrf_failed') {
    resp = await postOnce(path, doc, true, signal);
    body = await readJson(resp);
  }
  if (!resp.ok) throw errorOf(resp, body);
  return {status: resp.status, body};
}
