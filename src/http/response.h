/*
 * Building responses. Every body debate sends goes through these, so the
 * JSON error shape {"error": {"code", "message", "field"?}} is the same
 * everywhere. The security headers are added later, by the filter in
 * request.c, to every response including h2o's own.
 *
 * Call from the request's loop thread only.
 */
#ifndef DEBATE_HTTP_RESPONSE_H
#define DEBATE_HTTP_RESPONSE_H

#include <stdbool.h>

#include <jansson.h>
#include <h2o.h>

const char *http_reason(int status);

struct http_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
    bool replaceable; /* a route may send its own value instead (the page's CSP and caching) */
};

/*
 * The headers every response carries (lower-case names): HSTS, framing,
 * sniffing, referrer, CSP, COOP, CORP and Cache-Control: no-store. The
 * CSP and Cache-Control are replaceable: a response that already has one
 * keeps its own (the page's routes, see page.c); the others are always
 * added as they are.
 */
const struct http_header *http_security_headers(size_t *n);

/*
 * The page's Content-Security-Policy: scripts, styles, images and fetches
 * from this origin only, no inline code, no eval (docs/security.md). API
 * responses keep the stricter default-src 'none'.
 */
#define HTTP_PAGE_CSP                                                                                              \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "               \
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

/* Sends body (copied) with the given status and content type. Returns 0. */
int http_send(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len);
/* Sends a JSON document (consumed). NULL (a json_pack that failed) answers 500 internal_error. Returns 0. */
int http_send_json(h2o_req_t *req, int status, json_t *doc);
/* Sends {"error": {...}}; field may be NULL. Returns 0. */
int http_send_error(h2o_req_t *req, int status, const char *code, const char *message, const char *field);
/* Builds the error document as a string (malloc'd). */
char *http_error_body(const char *code, const char *message, const char *field, size_t *len);

/* Adds a header by lower-case name; name and value are copied into the request's pool. */
void http_add_header(h2o_req_t *req, const char *name, const char *value, size_t value_len);
/* Finds a request header by lower-case name; NULL when absent. */
const h2o_iovec_t *http_find_header(const h2o_req_t *req, const char *name);

#endif
