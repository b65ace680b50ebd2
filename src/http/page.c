#include "http/page.h"

#include <string.h>

#include "http/assets.h"
#include "http/policy.h"
#include "http/response.h"
#include "banned.h"

/* The bytes are static: the generator hands h2o the asset's own storage, with nothing to copy or free. */
static h2o_generator_t static_generator = {NULL, NULL};

/*
 * Whether one entity tag of an If-None-Match list (spaces trimmed) names
 * etag. RFC 9110 13.1.2 asks for the weak comparison: "W/" is ignored on
 * either side, and the opaque part is compared byte for byte, case
 * included.
 */
static bool tag_matches(const char *tag, size_t len, const char *etag)
{
    if (len >= 2 && tag[0] == 'W' && tag[1] == '/')
        tag += 2, len -= 2;
    if (strncmp(etag, "W/", 2) == 0)
        etag += 2;
    return (len == 1 && tag[0] == '*') || (len == strlen(etag) && memcmp(tag, etag, len) == 0);
}

/* If-None-Match names the representation's tag (or is "*"): 304. */
static bool not_modified(h2o_req_t *req, const char *etag)
{
    const h2o_iovec_t *inm = http_find_header(req, "if-none-match");
    if (inm == NULL)
        return false;
    const char *at = inm->base, *end = inm->base + inm->len;
    while (at < end) {
        const char *comma = memchr(at, ',', (size_t)(end - at));
        const char *stop = comma ? comma : end;
        while (at < stop && (*at == ' ' || *at == '\t'))
            at++;
        const char *last = stop;
        while (last > at && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        if (tag_matches(at, (size_t)(last - at), etag))
            return true;
        at = stop + 1;
    }
    return false;
}

/*
 * Answers req with asset a. csp NULL keeps the API's policy (the security
 * filter adds it); the page's routes pass HTTP_PAGE_CSP.
 */
static int send_asset(h2o_req_t *req, const struct asset *a, const char *csp)
{
    const h2o_iovec_t *ae = http_find_header(req, "accept-encoding");
    bool gz = a->gzip != NULL && policy_accepts_gzip(ae ? ae->base : NULL, ae ? ae->len : 0);
    const char *etag = gz ? a->gzip_etag : a->etag;
    http_add_header(req, "etag", etag, strlen(etag));
    http_add_header(req, "cache-control", "no-cache", 8);
    if (a->gzip != NULL)
        http_add_header(req, "vary", "Accept-Encoding", 15);
    if (csp != NULL)
        http_add_header(req, "content-security-policy", csp, strlen(csp));
    if (not_modified(req, etag)) {
        req->res.status = 304;
        req->res.reason = http_reason(304);
        h2o_send_inline(req, NULL, 0);
        return 0;
    }
    if (gz)
        http_add_header(req, "content-encoding", "gzip", 4);
    http_add_header(req, "content-type", a->content_type, strlen(a->content_type));
    req->res.status = 200;
    req->res.reason = http_reason(200);
    req->res.content_length = gz ? a->gzip_len : a->len;
    h2o_start_response(req, &static_generator);
    h2o_iovec_t body = h2o_iovec_init(gz ? a->gzip : a->data, req->res.content_length);
    bool head = h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"));
    h2o_send(req, &body, head ? 0 : 1, H2O_SEND_STATE_FINAL);
    return 0;
}

/* GET / and GET /builds/{id}: the single-page app, whatever the id (the page says when it does not exist). */
int page_index(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    (void)srv;
    (void)m;
    return send_asset(req, assets_find(H2O_STRLIT("index.html")), HTTP_PAGE_CSP);
}

int page_asset(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    (void)srv;
    const struct asset *a = assets_find(m->params[0].base, m->params[0].len);
    if (a == NULL)
        return http_send_error(req, 404, "not_found", "no such asset", "name");
    return send_asset(req, a, HTTP_PAGE_CSP);
}

int page_openapi(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    (void)srv;
    (void)m;
    return send_asset(req, assets_openapi(), NULL);
}
