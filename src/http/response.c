#include "http/response.h"

#include <string.h>

#include "log.h"
#include "util.h"
#include "banned.h"

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

#define HEADER(n, v) {n, sizeof(n) - 1, v, sizeof(v) - 1, false}
#define REPLACEABLE(n, v) {n, sizeof(n) - 1, v, sizeof(v) - 1, true}

static const struct http_header security_headers[] = {
    HEADER("strict-transport-security", "max-age=63072000; includeSubDomains"),
    HEADER("x-frame-options", "DENY"),
    HEADER("x-content-type-options", "nosniff"),
    HEADER("referrer-policy", "no-referrer"),
    REPLACEABLE("content-security-policy",
                "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    HEADER("cross-origin-opener-policy", "same-origin"),
    HEADER("cross-origin-resource-policy", "same-origin"),
    REPLACEABLE("cache-control", "no-store"),
};

const struct http_header *http_security_headers(size_t *n)
{
    *n = ARRAY_SIZE(security_headers);
    return security_headers;
}

void http_add_header(h2o_req_t *req, const char *name, const char *value, size_t value_len)
{
    h2o_iovec_t n = h2o_strdup(&req->pool, name, strlen(name));
    h2o_iovec_t v = h2o_strdup(&req->pool, value, value_len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
}

const h2o_iovec_t *http_find_header(const h2o_req_t *req, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    return i < 0 ? NULL : &req->headers.entries[i].value;
}

int http_send(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = http_reason(status);
    req->res.content_length = len;
    if (content_type != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                       strlen(content_type));
    h2o_send_inline(req, body, len);
    return 0;
}

int http_send_json(h2o_req_t *req, int status, json_t *doc)
{
    /* json_pack gives NULL for data it cannot hold (a string that is not UTF-8, a NULL string): a server fault,
       answered as one rather than ending the process. */
    if (doc == NULL) {
        log_warnx("a response to \"%.*s\" could not be made JSON", (int)req->path_normalized.len, req->path_normalized.base);
        return http_send_error(req, 500, "internal_error", "the answer could not be encoded", NULL);
    }
    char *body = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(6));
    json_decref(doc);
    if (body == NULL)
        abort();
    http_send(req, status, "application/json", body, strlen(body));
    free(body);
    return 0;
}

char *http_error_body(const char *code, const char *message, const char *field, size_t *len)
{
    json_t *err = json_pack("{s:s, s:s}", "code", code, "message", message);
    if (err == NULL) /* the message was not valid UTF-8 */
        err = json_pack("{s:s, s:s}", "code", code, "message", "(message withheld: not valid UTF-8)");
    if (err == NULL)
        abort();
    if (field != NULL)
        json_object_set_new(err, "field", json_string(field));
    json_t *doc = json_pack("{s:o}", "error", err);
    char *body = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    if (body == NULL)
        abort();
    *len = strlen(body);
    return body;
}

int http_send_error(h2o_req_t *req, int status, const char *code, const char *message, const char *field)
{
    size_t len;
    char *body = http_error_body(code, message, field, &len);
    http_send(req, status, "application/json", body, len);
    free(body);
    return 0;
}
