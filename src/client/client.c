/* The client and its requests: one curl handle, JSON in and out, the CSRF handshake, errors as values. */
#include "client/client_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util.h"
#include "banned.h"

/* An error body is read only to show its message: a little is plenty. */
#define ERROR_BODY_MAX (64 * 1024)
/* A JSON request that has not finished in this long will not. */
#define CALL_TIMEOUT_S 120L
#define CONNECT_TIMEOUT_S 10L
/* 429 and 503 are retried this many times when Retry-After asks for this long at most. */
#define RETRY_TRIES 3
#define RETRY_AFTER_MAX_S 10

static void client_setup(struct client *c);

enum client_status client_error_set(struct client_error *e, enum client_status s, const char *fmt, ...)
{
    memset(e, 0, sizeof(*e));
    e->status = s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return s;
}

/* The URL must be http or https, with a host, and nothing after the authority but an optional path. */
static bool server_url_valid(const char *url)
{
    if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
        return false;
    CURLU *u = curl_url();
    bool ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK && strpbrk(url, "?#") == NULL;
    curl_url_cleanup(u);
    return ok;
}

struct client *client_new(const struct client_opts *o, struct client_error *e)
{
    if (!server_url_valid(o->server)) {
        client_error_set(e, CLIENT_LOCAL, "\"%s\" is not an http or https URL (such as https://localhost:8443)",
                         o->server);
        return NULL;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct client *c = xcalloc(1, sizeof(*c));
    c->curl = curl_easy_init();
    if (c->curl == NULL)
        abort(); /* only out of memory: the policy of every allocation */
    c->server = xstrdup(o->server);
    size_t n = strlen(c->server);
    while (n > 0 && c->server[n - 1] == '/')
        c->server[--n] = '\0';
    c->cacert = o->cacert ? xstrdup(o->cacert) : NULL;
    c->interrupted = o->interrupted;
    c->retry_window_s = o->retry_window_s ? o->retry_window_s : 60;
    client_setup(c);
    return c;
}

void client_free(struct client *c)
{
    if (c == NULL)
        return;
    curl_easy_cleanup(c->curl);
    free(c->server);
    free(c->cacert);
    free(c);
}

const char *client_server(const struct client *c)
{
    return c->server;
}

bool client_id_valid(const char *id)
{
    static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    if (id == NULL || strlen(id) != sizeof(shape) - 1)
        return false;
    for (size_t i = 0; shape[i]; i++) {
        bool hex = isdigit((unsigned char)id[i]) || (id[i] >= 'a' && id[i] <= 'f');
        if (shape[i] == '-' ? id[i] != '-' : !hex)
            return false;
    }
    return true;
}

bool client_server_is_local(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL;
    bool local = false;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
        local = strcasecmp(host, "localhost") == 0 || strcmp(host, "127.0.0.1") == 0 || strcmp(host, "[::1]") == 0;
    curl_free(host);
    curl_url_cleanup(u);
    return local;
}

char *client_query_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = xmalloc(strlen(s) * 3 + 1), *w = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || strchr("-._~", *p) != NULL) {
            *w++ = (char)*p;
        } else {
            *w++ = '%';
            *w++ = hex[*p >> 4];
            *w++ = hex[*p & 15];
        }
    }
    *w = '\0';
    return out;
}

bool client_interrupted(const struct client *c)
{
    return c->interrupted != NULL && *c->interrupted;
}

bool client_sleep(struct client *c, unsigned ms)
{
    uint64_t end = clock_monotonic_ms() + ms;
    for (uint64_t now = clock_monotonic_ms(); now < end && !client_interrupted(c); now = clock_monotonic_ms()) {
        uint64_t left = end - now < 100 ? end - now : 100; /* look at the flag ten times a second */
        struct timespec ts = {0, (long)left * 1000000L};
        nanosleep(&ts, NULL);
    }
    return !client_interrupted(c);
}

void client_retry_start(struct client *c, struct client_retry *r)
{
    r->deadline_ms = clock_monotonic_ms() + (uint64_t)c->retry_window_s * 1000;
    r->delay_ms = 200;
}

bool client_retry_wait(struct client *c, struct client_retry *r)
{
    if (clock_monotonic_ms() >= r->deadline_ms)
        return false;
    bool ok = client_sleep(c, r->delay_ms);
    r->delay_ms = r->delay_ms * 2 > 5000 ? 5000 : r->delay_ms * 2;
    return ok;
}

/* ---- one call ------------------------------------------------------------------------------- */

static bool buf_append(struct client_buf *b, const char *s, size_t n)
{
    if (n > b->max - b->len) {
        b->too_big = true;
        return false;
    }
    b->data = xrealloc(b->data, b->len + n + 1);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

void client_call_release(struct client_call *k)
{
    free(k->buf.data);
    k->buf.data = NULL;
    k->buf.len = 0;
}

static bool is_2xx(long status)
{
    return status >= 200 && status < 300;
}

/* Copies a header's value (trimmed) when line is "name: value"; true when it was that header. */
static bool header_value(const char *line, size_t n, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return false;
    const char *v = line + nl + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    snprintf(out, outlen, "%.*s", (int)(end - v), v);
    return true;
}

/* Status line "HTTP/1.1 206 Partial Content": a new response (after a 100, say) starts afresh. */
static void take_status_line(struct client_call *k, const char *line, size_t n)
{
    const char *sp = memchr(line, ' ', n);
    k->status = sp ? strtol(sp + 1, NULL, 10) : 0;
    k->etag[0] = k->content_range[0] = k->location[0] = '\0';
    k->retry_after = 0;
}

static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
    struct client_call *k = arg;
    n *= size;
    if (n > CLIENT_MAX_HEAD - k->head_bytes) {
        k->head_too_big = true;
        return 0;
    }
    k->head_bytes += n;
    char value[96];
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0)
        take_status_line(k, line, n);
    else if (header_value(line, n, "etag", value, sizeof(value)))
        memcpy(k->etag, value, sizeof(value));
    else if (header_value(line, n, "content-range", value, sizeof(value)))
        memcpy(k->content_range, value, sizeof(value));
    else if (header_value(line, n, "retry-after", value, sizeof(value)))
        k->retry_after = (unsigned)strtoul(value, NULL, 10);
    else if (header_value(line, n, "location", k->location, sizeof(k->location)))
        ; /* kept to be named in the error */
    else if ((n == 2 && line[0] == '\r') || (n == 1 && line[0] == '\n')) {
        if (is_2xx(k->status) && k->on_head != NULL && !k->on_head(k->arg, k)) {
            k->stopped = true;
            return 0;
        }
    }
    return n;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct client_call *k = arg;
    n *= size;
    if (is_2xx(k->status) && k->sink != NULL) {
        if (k->sink(k->arg, data, n))
            return n;
        k->stopped = true;
        return 0;
    }
    if (k->buf.max == 0)
        k->buf.max = is_2xx(k->status) ? CLIENT_MAX_JSON : ERROR_BODY_MAX;
    if (is_2xx(k->status))
        return buf_append(&k->buf, data, n) ? n : 0;
    /* An error is known by its status; its body is only read for a message, so a long one is cut, not refused. */
    size_t room = k->buf.max - k->buf.len;
    buf_append(&k->buf, data, n < room ? n : room);
    return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    const struct client *c = arg;
    return client_interrupted(c) ? 1 : 0;
}

/*
 * What every call shares, set once: the handle is not reset between calls,
 * for curl_easy_reset would turn the cookie engine off (and with it the
 * CSRF cookie) and leak curl's list of cookie files.
 */
static void client_setup(struct client *c)
{
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_COOKIEFILE, ""); /* the cookie engine, in memory only */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "debate/" DEBATE_VERSION);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_err);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    if (c->cacert != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
}

/* What differs from call to call: every option a call sets, each call sets. */
static void call_setup(struct client *c, struct client_call *k, const char *url)
{
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, k);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, k);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, k->headers);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, k->idle_s > 0 ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, k->idle_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, k->idle_s > 0 ? 0L : CALL_TIMEOUT_S);
    if (strcmp(k->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, k->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)k->body_len);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
}

static bool is_tls_failure(CURLcode rc)
{
    switch (rc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
        return true;
    default:
        return false;
    }
}

/* The server's {"error": {"code", "message", "field"}}, or what can be said without it. */
static enum client_status refused(struct client_call *k, const char *url, struct client_error *e)
{
    json_t *doc = k->buf.data ? json_loadb(k->buf.data, k->buf.len, 0, NULL) : NULL;
    json_t *err = json_object_get(doc, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    const char *field = json_string_value(json_object_get(err, "field"));
    if (msg != NULL)
        client_error_set(e, CLIENT_REFUSED, "%s", msg);
    else if (k->status >= 300 && k->status < 400 && k->location[0] != '\0')
        client_error_set(e, CLIENT_REFUSED, "\"%s\" answered %ld, a redirect to \"%s\", which the client does not "
                         "follow; if that is the server, name it with --server", url, k->status, k->location);
    else
        client_error_set(e, CLIENT_REFUSED, "\"%s\" answered %ld without an error message", url, k->status);
    e->http_status = k->status;
    snprintf(e->code, sizeof(e->code), "%s", code ? code : "");
    snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
    json_decref(doc);
    return CLIENT_REFUSED;
}

/* curl said no: name the URL and curl's reason. */
static enum client_status failed(struct client *c, struct client_call *k, const char *url, CURLcode rc,
                                 struct client_error *e)
{
    const char *why = c->curl_err[0] ? c->curl_err : curl_easy_strerror(rc);
    if (client_interrupted(c))
        return client_error_set(e, CLIENT_INTERRUPTED, "interrupted");
    if (k->head_too_big)
        return client_error_set(e, CLIENT_BAD_REPLY, "the answer of \"%s\" has a head over %d bytes", url,
                                CLIENT_MAX_HEAD);
    if (k->buf.too_big)
        return client_error_set(e, CLIENT_BAD_REPLY, "the answer of \"%s\" is over %zu bytes", url, k->buf.max);
    if (is_tls_failure(rc))
        return client_error_set(e, CLIENT_TLS, "TLS with \"%s\" failed: %s", url, why);
    if (k->status != 0)
        return client_error_set(e, CLIENT_NETWORK, "the answer of \"%s\" broke off: %s", url, why);
    return client_error_set(e, CLIENT_NETWORK, "cannot reach \"%s\": %s", url, why);
}

enum client_status client_call_perform(struct client *c, struct client_call *k, struct client_error *e)
{
    _cleanup_free_ char *url = xasprintf("%s%s", c->server, k->path);
    k->status = 0;
    k->head_bytes = 0;
    k->head_too_big = k->stopped = false;
    client_call_release(k);
    k->buf.too_big = false;
    k->buf.max = 0;
    c->curl_err[0] = '\0';
    call_setup(c, k, url);
    CURLcode rc = curl_easy_perform(c->curl);
    if (k->stopped)
        return CLIENT_OK;
    if (rc != CURLE_OK)
        return failed(c, k, url, rc, e);
    if (!is_2xx(k->status))
        return refused(k, url, e);
    return CLIENT_OK;
}

/* ---- JSON requests -------------------------------------------------------------------------- */

/* 429 and 503 say when to come back; come back when that is soon. */
static enum client_status perform_retrying(struct client *c, struct client_call *k, struct client_error *e)
{
    enum client_status st = CLIENT_OK;
    for (int i = 0; i < RETRY_TRIES; i++) {
        st = client_call_perform(c, k, e);
        bool busy = st == CLIENT_REFUSED && (k->status == 429 || k->status == 503);
        if (!busy || k->retry_after > RETRY_AFTER_MAX_S || i + 1 == RETRY_TRIES)
            break;
        if (!client_sleep(c, (k->retry_after ? k->retry_after : 1) * 1000))
            return client_error_set(e, CLIENT_INTERRUPTED, "interrupted");
    }
    return st;
}

static enum client_status parse_json(struct client *c, struct client_call *k, json_t **out, struct client_error *e)
{
    json_error_t je;
    *out = json_loadb(k->buf.data ? k->buf.data : "", k->buf.len, 0, &je);
    if (*out == NULL)
        return client_error_set(e, CLIENT_BAD_REPLY, "the answer of \"%s%s\" is not JSON: %s", c->server, k->path,
                                je.text);
    return CLIENT_OK;
}

enum client_status client_get_json(struct client *c, const char *path, json_t **out, struct client_error *e)
{
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    struct client_call k = {.method = "GET", .path = path, .headers = headers};
    *out = NULL;
    enum client_status st = perform_retrying(c, &k, e);
    if (st == CLIENT_OK)
        st = parse_json(c, &k, out, e);
    client_call_release(&k);
    curl_slist_free_all(headers);
    return st;
}

/* A token is base64url: anything else must not reach a header. */
static bool csrf_token_valid(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    if (n == 0 || n >= sizeof(((struct client *)0)->csrf))
        return false;
    return strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == n;
}

/* GET /api/v1/csrf: the token for X-CSRF-Token; curl's cookie engine keeps the cookie. */
static enum client_status csrf_fetch(struct client *c, struct client_error *e)
{
    json_t *doc;
    enum client_status st = client_get_json(c, "/api/v1/csrf", &doc, e);
    if (st != CLIENT_OK)
        return st;
    const char *token = json_string_value(json_object_get(doc, "token"));
    if (csrf_token_valid(token))
        snprintf(c->csrf, sizeof(c->csrf), "%s", token);
    else
        st = client_error_set(e, CLIENT_BAD_REPLY, "\"%s/api/v1/csrf\" gave no CSRF token", c->server);
    json_decref(doc);
    return st;
}

static enum client_status post_once(struct client *c, const char *path, const char *body, long *http_status,
                                    json_t **out, struct client_error *e)
{
    _cleanup_free_ char *token = xasprintf("X-CSRF-Token: %s", c->csrf);
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, token);
    struct client_call k = {.method = "POST", .path = path, .headers = headers, .body = body,
                            .body_len = strlen(body)};
    enum client_status st = perform_retrying(c, &k, e);
    *http_status = k.status;
    if (st == CLIENT_OK)
        st = parse_json(c, &k, out, e);
    client_call_release(&k);
    curl_slist_free_all(headers);
    return st;
}

enum client_status client_post_json(struct client *c, const char *path, const json_t *body, long *http_status,
                                    json_t **out, struct client_error *e)
{
    *out = NULL;
    *http_status = 0;
    if (body == NULL) /* what json_pack returns for a string that is not UTF-8 */
        return client_error_set(e, CLIENT_LOCAL, "no request body to post to \"%s%s\"", c->server, path);
    _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
    if (text == NULL)
        abort(); /* jansson fails only for want of memory here */
    enum client_status st = CLIENT_OK;
    /* A token from before a server's new secret fails once; a fresh one settles it. */
    for (int i = 0; i < 2; i++) {
        if (c->csrf[0] == '\0' && (st = csrf_fetch(c, e)) != CLIENT_OK)
            return st;
        st = post_once(c, path, text, http_status, out, e);
        if (st != CLIENT_REFUSED || strcmp(e->code, "csrf_failed") != 0)
            break;
        c->csrf[0] = '\0';
    }
    return st;
}

/* ---- text ----------------------------------------------------------------------------------- */

struct text_sink {
    bool (*write)(void *arg, const char *buf, size_t n);
    void *arg;
    bool failed;
    int error;
};

static bool text_write(void *arg, const char *buf, size_t n)
{
    struct text_sink *t = arg;
    t->failed = !t->write(t->arg, buf, n);
    t->error = errno;
    return !t->failed;
}

enum client_status client_get_text(struct client *c, const char *path, bool (*write)(void *arg, const char *buf,
                                                                                      size_t n),
                                   void *arg, struct client_error *e)
{
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: text/plain");
    struct text_sink t = {write, arg, false, 0};
    struct client_call k = {.method = "GET", .path = path, .headers = headers, .sink = text_write, .arg = &t,
                            .idle_s = 60};
    enum client_status st = perform_retrying(c, &k, e);
    /* A signal breaks off a write that was blocked (a full pipe): that is the signal's doing, not the pipe's. */
    if (client_interrupted(c))
        st = client_error_set(e, CLIENT_INTERRUPTED, "interrupted");
    else if (t.failed)
        st = client_error_set(e, CLIENT_LOCAL, "cannot write the log: %s", strerror(t.error));
    client_call_release(&k);
    curl_slist_free_all(headers);
    return st;
}
