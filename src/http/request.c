/*
 * The request pipeline: every request passes these checks in this order
 * before any route sees it.
 *
 *   1. framing    the raw head is re-read strictly (framing.c): 400 / 431
 *   2. host       the Host header must name a trusted host: 400
 *   3. scheme     plain HTTP is answered 301 to HTTPS, nothing else
 *   4. rate limit per client, exact sliding window: 429 (not /health)
 *   5. CORS       preflights answered 204 or 403
 *   6. CSRF       unsafe methods need the signed double-submit token: 403
 *   7. media type an unsafe method's body, when typed, must be JSON: 415
 *   8. routing    404, 405 with Allow, or the route's handler
 *
 * A response filter adds the security headers, the request id and CORS
 * headers to every response, h2o's own error responses included, and turns
 * those into debate's JSON error shape. A logger writes one line per request
 * and feeds the metrics.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "http/framing.h"
#include "http/policy.h"
#include "http/response.h"
#include "http/server.h"
#include "log.h"
#include "util.h"
#include "banned.h"

struct pipeline_handler {
    h2o_handler_t super;
    struct server *srv;
};

struct pipeline_filter {
    h2o_filter_t super;
    struct server *srv;
};

struct pipeline_logger {
    h2o_logger_t super;
    struct server *srv;
};

struct rewrite_ostream {
    h2o_ostream_t super;
    unsigned max_body;
    size_t text_len;
    char text[200];
};

static void add_static_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, value, strlen(value));
}

static void add_header_static(h2o_req_t *req, const struct http_header *h)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, h->name, h->name_len, 0, NULL, h->value, h->value_len);
}

/* Lower-case hex of v into out; returns the length. */
static size_t format_hex(char *out, uint64_t v)
{
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* 1. The raw head as received, still at the start of the socket's input buffer. */
static int check_framing(struct server *srv, h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock == NULL || sock->input == NULL)
        return 0;
    size_t head_len;
    enum framing_result r = framing_check(sock->input->bytes, sock->input->size, srv->cfg->max_header_bytes, &head_len);
    if (r == FRAMING_OK)
        return 0;
    req->http1_is_persistent = 0; /* the stream can no longer be trusted */
    if (r == FRAMING_TOO_LARGE) {
        char msg[128];
        snprintf(msg, sizeof(msg), "the request head is larger than %u bytes", srv->cfg->max_header_bytes);
        return http_send_error(req, 431, "headers_too_large", msg, NULL) + 1;
    }
    return http_send_error(req, 400, "bad_request", framing_strerror(r), NULL) + 1;
}

/* 3. The plain listener's only answer. */
static int redirect_to_https(struct server *srv, h2o_req_t *req)
{
    const char *host;
    size_t host_len;
    policy_host_part(req->input.authority.base, req->input.authority.len, &host, &host_len);
    char port[16] = "";
    if (srv->https_port != 443)
        snprintf(port, sizeof(port), ":%u", srv->https_port);
    _cleanup_free_ char *location =
        xasprintf("https://%.*s%s%.*s", (int)host_len, host, port, (int)req->input.path.len, req->input.path.base);
    http_add_header(req, "location", location, strlen(location));
    req->http1_is_persistent = 0;
    return http_send_error(req, 301, "moved_permanently", "this server speaks HTTPS only", NULL);
}

/*
 * Every X-Forwarded-For line of req as one list, in order (in req's pool),
 * or NULL when there is none. A proxy may add its hop as a line of its own
 * after the client's: reading only the first line would believe the client.
 */
static h2o_iovec_t forwarded_for(h2o_req_t *req)
{
    h2o_iovec_t all = {NULL, 0};
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_X_FORWARDED_FOR, i)) >= 0;) {
        const h2o_iovec_t *v = &req->headers.entries[i].value;
        all = all.base == NULL ? *v : h2o_concat(&req->pool, all, h2o_iovec_init(H2O_STRLIT(",")), *v);
    }
    return all;
}

void request_client_key(struct server *srv, h2o_req_t *req, struct ratelimit_key *key)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss) == 0)
        ss.ss_family = AF_UNSPEC;
    h2o_iovec_t xff = forwarded_for(req);
    policy_client_key(&srv->cfg->trusted_proxies, (struct sockaddr *)&ss, xff.base, xff.len, key);
}

/* 4. Returns non-zero when the request was refused. */
static int check_rate(struct server *srv, h2o_req_t *req)
{
    struct ratelimit_key key;
    struct ratelimit_result rr;
    request_client_key(srv, req, &key);
    ratelimit_check(srv->ratelimit, &key, clock_monotonic_ms(), &rr);
    char buf[64];
    snprintf(buf, sizeof(buf), "%u", rr.limit);
    http_add_header(req, "ratelimit-limit", buf, strlen(buf));
    snprintf(buf, sizeof(buf), "%u", rr.remaining);
    http_add_header(req, "ratelimit-remaining", buf, strlen(buf));
    snprintf(buf, sizeof(buf), "%u", ratelimit_seconds(rr.reset_ms));
    http_add_header(req, "ratelimit-reset", buf, strlen(buf));
    snprintf(buf, sizeof(buf), "%u;w=%u", rr.limit, srv->cfg->rate_window);
    http_add_header(req, "ratelimit-policy", buf, strlen(buf));
    if (rr.allowed)
        return 0;
    atomic_fetch_add_explicit(&srv->metrics.ratelimit_rejections, 1, memory_order_relaxed);
    snprintf(buf, sizeof(buf), "%u", ratelimit_seconds(rr.retry_ms));
    http_add_header(req, "retry-after", buf, strlen(buf));
    char msg[160];
    snprintf(msg, sizeof(msg), "more than %u requests in %u seconds; retry in %u seconds", rr.limit,
             srv->cfg->rate_window, ratelimit_seconds(rr.retry_ms));
    return http_send_error(req, 429, "rate_limited", msg, NULL) + 1;
}

/* 5. Returns non-zero when the request was a preflight, now answered. */
static int check_preflight(struct server *srv, h2o_req_t *req, unsigned method)
{
    const h2o_iovec_t *origin = http_find_header(req, "origin");
    const h2o_iovec_t *acrm = http_find_header(req, "access-control-request-method");
    enum cors_decision d = policy_cors(&srv->cfg->cors_origins, method == METHOD_OPTIONS, origin ? origin->base : NULL,
                                       origin ? origin->len : 0, acrm ? acrm->base : NULL, acrm ? acrm->len : 0);
    if (d == CORS_PREFLIGHT_DENIED)
        return http_send_error(req, 403, "cors_denied", "this origin or method is not allowed by the CORS policy",
                               NULL) + 1;
    if (d != CORS_PREFLIGHT_OK)
        return 0;
    add_static_header(req, "access-control-allow-methods", "GET, HEAD, POST, DELETE");
    add_static_header(req, "access-control-allow-headers", "Content-Type, X-CSRF-Token");
    add_static_header(req, "access-control-max-age", "600");
    return http_send(req, 204, NULL, "", 0) + 1;
}

/* Finds a cookie's value in the Cookie header(s). */
static bool find_cookie(h2o_req_t *req, const char *name, h2o_iovec_t *out)
{
    size_t nlen = strlen(name);
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) != -1;) {
        const char *p = req->headers.entries[i].value.base, *end = p + req->headers.entries[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *stop = semi ? semi : end;
            if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
                *out = h2o_iovec_init(p + nlen + 1, (size_t)(stop - p - nlen - 1));
                return true;
            }
            p = stop;
        }
    }
    return false;
}

/* 6. Returns non-zero when the request was refused. */
static int check_csrf(struct server *srv, h2o_req_t *req)
{
    const h2o_iovec_t *site = http_find_header(req, "sec-fetch-site");
    if (site != NULL && str_ieq(site->base, site->len, "cross-site"))
        return http_send_error(req, 403, "csrf_failed", "cross-site requests may not change state", NULL) + 1;
    h2o_iovec_t cookie = {NULL, 0};
    find_cookie(req, CSRF_COOKIE, &cookie);
    const h2o_iovec_t *header = http_find_header(req, CSRF_HEADER);
    enum csrf_result r =
        csrf_check(&srv->csrf, cookie.base, cookie.len, header ? header->base : NULL, header ? header->len : 0);
    if (r == CSRF_OK)
        return 0;
    return http_send_error(req, 403, "csrf_failed", csrf_strerror(r), NULL) + 1;
}

/*
 * 7. Returns non-zero when the request was refused. After the CSRF check,
 * so a request without the token is refused as a forgery (403) whatever it
 * carries; a form's content type (which a cross-site page can send without
 * a preflight) never reaches a route either way.
 */
static int check_media_type(h2o_req_t *req)
{
    const h2o_iovec_t *ct = http_find_header(req, "content-type");
    enum policy_media media = policy_media_type(ct ? ct->base : NULL, ct ? ct->len : 0);
    if (media == POLICY_MEDIA_NONE || media == POLICY_MEDIA_JSON)
        return 0;
    return http_send_error(req, 415, "unsupported_media_type",
                           "the body must be JSON: send Content-Type: application/json", NULL) + 1;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct server *srv = ((struct pipeline_handler *)self)->srv;
    if (atomic_load_explicit(&srv->stopping, memory_order_relaxed))
        req->http1_is_persistent = 0;
    if (check_framing(srv, req))
        return 0;
    if (!policy_host_allowed(&srv->cfg->trusted_hosts, req->input.authority.base, req->input.authority.len))
        return http_send_error(req, 400, "untrusted_host", "the Host header does not name a host this server serves",
                               NULL);
    bool plain = req->input.scheme != &H2O_URL_SCHEME_HTTPS;
    unsigned method = router_method(req->input.method.base, req->input.method.len);
    struct route_match m;
    unsigned allowed;
    int r = router_lookup(srv->routes, srv->nroutes, method, req->path_normalized.base, req->path_normalized.len, &m,
                          &allowed);
    int any = r >= 0 ? r : router_path_index(srv->routes, srv->nroutes, req->path_normalized.base, req->path_normalized.len);
    bool exempt = any >= 0 && (srv->routes[any].flags & ROUTE_NO_RATELIMIT);
    if (!exempt && check_rate(srv, req))
        return 0;
    if (plain)
        return redirect_to_https(srv, req);
    if (method == METHOD_OPTIONS && check_preflight(srv, req, method))
        return 0;
    if (router_method_is_unsafe(method) && method != 0 && (check_csrf(srv, req) || check_media_type(req)))
        return 0;
    if (r >= 0)
        return srv->routes[r].fn(srv, req, &m);
    if (allowed == 0)
        return http_send_error(req, 404, "not_found", "no route matches this path", NULL);
    char allow[96];
    router_allow_header(allowed, allow, sizeof(allow));
    http_add_header(req, "allow", allow, strlen(allow));
    return http_send_error(req, 405, "method_not_allowed", "this path does not accept this method", NULL);
}

static const char *code_for(int status);

/* Replaces h2o's text/plain error body with the JSON shape, keeping its words. */
static void rewrite_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                         h2o_send_state_t state)
{
    struct rewrite_ostream *rw = (void *)self;
    for (size_t i = 0; i < bufcnt; i++) {
        size_t room = sizeof(rw->text) - 1 - rw->text_len;
        size_t n = bufs[i].len < room ? bufs[i].len : room;
        memcpy(rw->text + rw->text_len, bufs[i].base, n);
        rw->text_len += n;
    }
    if (state == H2O_SEND_STATE_IN_PROGRESS) {
        h2o_ostream_send_next(self, req, NULL, 0, state);
        return;
    }
    rw->text[rw->text_len] = '\0';
    char msg[256];
    if (req->res.status == 413)
        snprintf(msg, sizeof(msg), "the request body is larger than %u bytes", rw->max_body);
    else
        snprintf(msg, sizeof(msg), "%s", rw->text_len ? rw->text : req->res.reason);
    size_t len;
    char *body = http_error_body(code_for(req->res.status), msg, NULL, &len);
    h2o_iovec_t buf = h2o_strdup(&req->pool, body, len);
    free(body);
    req->res.content_length = len;
    h2o_ostream_send_next(self, req, &buf, 1, state);
}

static const char *code_for(int status)
{
    switch (status) {
    case 413: return "body_too_large";
    case 431: return "headers_too_large";
    case 404: return "not_found";
    case 417: return "expectation_failed";
    case 503: return "unavailable";
    default: return status >= 500 ? "internal_error" : "bad_request";
    }
}

/*
 * h2o answers some malformed requests itself (a broken chunk size, a body
 * over max_request_entity_size) with a text/plain body: give those the JSON
 * error shape too.
 */
static void rewrite_library_error(struct server *srv, h2o_req_t *req, h2o_ostream_t **slot)
{
    ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (ct < 0 || req->res.headers.entries[ct].value.len < 10 ||
        !h2o_memis(req->res.headers.entries[ct].value.base, 10, H2O_STRLIT("text/plain")))
        return;
    req->res.headers.entries[ct].value = h2o_iovec_init(H2O_STRLIT("application/json"));
    req->http1_is_persistent = 0;
    struct rewrite_ostream *rw = (void *)h2o_add_ostream(req, sizeof(*rw), slot);
    rw->super.do_send = rewrite_send;
    rw->max_body = srv->cfg->max_body_bytes;
    rw->text_len = 0;
}

static void add_cors_headers(struct server *srv, h2o_req_t *req)
{
    const h2o_iovec_t *origin = http_find_header(req, "origin");
    if (origin == NULL || !strlist_contains(&srv->cfg->cors_origins, origin->base, origin->len))
        return;
    http_add_header(req, "access-control-allow-origin", origin->base, origin->len);
    add_static_header(req, "access-control-allow-credentials", "true");
    add_static_header(req, "vary", "Origin");
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    struct server *srv = ((struct pipeline_filter *)self)->srv;
    /* boot id, loop, sequence: unique within this server's lifetime and across restarts. */
    static _Thread_local uint64_t seq;
    char *id = h2o_mem_alloc_pool(&req->pool, 48);
    size_t n = strlen(srv->boot_id);
    memcpy(id, srv->boot_id, n);
    id[n++] = '-';
    n += format_hex(id + n, server_loop_index);
    id[n++] = '-';
    n += format_hex(id + n, ++seq);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, id, n);
    size_t nsec;
    const struct http_header *sec = http_security_headers(&nsec);
    for (size_t i = 0; i < nsec; i++)
        if (!sec[i].replaceable || h2o_find_header_by_str(&req->res.headers, sec[i].name, sec[i].name_len, -1) < 0)
            add_header_static(req, &sec[i]);
    add_cors_headers(srv, req);
    if (req->res.status >= 400)
        rewrite_library_error(srv, req, slot);
    h2o_setup_next_ostream(req, slot);
}

static uint64_t elapsed_us(const struct timeval *from)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    if (from->tv_sec == 0)
        return 0;
    int64_t us = (int64_t)(now.tv_sec - from->tv_sec) * 1000000 + (now.tv_usec - from->tv_usec);
    return us > 0 ? (uint64_t)us : 0;
}

static void log_access(h2o_logger_t *self, h2o_req_t *req)
{
    struct server *srv = ((struct pipeline_logger *)self)->srv;
    int route = req->path_normalized.base
                    ? router_path_index(srv->routes, srv->nroutes, req->path_normalized.base, req->path_normalized.len)
                    : -1;
    uint64_t us = elapsed_us(&req->timestamps.request_begin_at);
    metrics_observe(&srv->metrics, route, req->res.status, us);
    if (req->res.status == 0)
        return;

    struct log_fields f;
    log_fields_init(&f);
    ssize_t id = h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"), -1);
    if (id >= 0)
        log_field_str(&f, "id", req->res.headers.entries[id].value.base, req->res.headers.entries[id].value.len);
    struct sockaddr_storage ss;
    struct ratelimit_key key;
    char peer[64] = "-", client[64];
    if (req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss) != 0 &&
        policy_key_from_sockaddr((struct sockaddr *)&ss, &key))
        policy_key_format(&key, peer, sizeof(peer));
    log_field_cstr(&f, "peer", peer);
    /* Behind a trusted proxy the peer is the proxy: the client is who the rate limit counts. */
    request_client_key(srv, req, &key);
    policy_key_format(&key, client, sizeof(client));
    if (peer[0] != '-' && strcmp(client, peer) != 0)
        log_field_cstr(&f, "client", client);
    log_field_str(&f, "method", req->input.method.base, req->input.method.len);
    log_field_str(&f, "path", req->input.path.base, req->input.path.len > 512 ? 512 : req->input.path.len);
    log_field_int(&f, "status", req->res.status);
    log_field_int(&f, "bytes", (long long)req->bytes_sent);
    log_field_us_as_ms(&f, "dur_ms", us);
    log_msg(LOG_INFO, "request", f.buf);
}

void request_register(struct server *srv, h2o_pathconf_t *pathconf, bool with_handler)
{
    if (with_handler) {
        struct pipeline_handler *h = (void *)h2o_create_handler(pathconf, sizeof(*h));
        h->super.on_req = on_req;
        h->srv = srv;
    }
    struct pipeline_filter *f = (void *)h2o_create_filter(pathconf, sizeof(*f));
    f->super.on_setup_ostream = on_setup_ostream;
    f->srv = srv;
    struct pipeline_logger *l = (void *)h2o_create_logger(pathconf, sizeof(*l));
    l->super.log_access = log_access;
    l->srv = srv;
}
