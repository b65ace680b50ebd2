#include "http/recipes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/query.h"
#include "http/response.h"
#include "http/server.h"
#include "service/packages.h"
#include "service/submit.h"
#include "util.h"
#include "banned.h"

/* limit: a whole number from 1 to PACKAGES_LIMIT_MAX; the default when absent. False when malformed. */
static bool parse_limit(const char *text, unsigned *out)
{
    *out = PACKAGES_LIMIT_DEFAULT;
    if (text == NULL)
        return true;
    char *end;
    unsigned long v = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || v < 1 || v > PACKAGES_LIMIT_MAX)
        return false;
    *out = (unsigned)v;
    return true;
}

static int packages_status(enum packages_error e)
{
    switch (e) {
    case PACKAGES_OK: return 200;
    case PACKAGES_BAD_RELEASE:
    case PACKAGES_BAD_QUERY: return 400;
    case PACKAGES_LOADING:
    case PACKAGES_UNAVAILABLE: return 503;
    }
    return 500;
}

static const char *packages_field(enum packages_error e)
{
    return e == PACKAGES_BAD_RELEASE ? "release" : e == PACKAGES_BAD_QUERY ? "q" : NULL;
}

static json_t *packages_json(const struct packages_result *r)
{
    json_t *list = json_array();
    for (size_t i = 0; i < r->n; i++) {
        const struct packages_match *m = &r->matches[i];
        json_t *one = json_pack("{s:s, s:s, s:s}", "name", m->name, "version", m->version, "description",
                                m->description);
        if (one == NULL) /* not UTF-8: an index is, but a description is no reason to fail the answer */
            one = json_pack("{s:s, s:s, s:s}", "name", m->name, "version", m->version, "description", "");
        json_array_append_new(list, one);
    }
    return json_pack("{s:s, s:s, s:s, s:o}", "release", r->release, "index", r->index, "date", r->date, "packages",
                     list);
}

int recipes_packages(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    (void)m;
    static const char *const known[] = {"release", "q", "limit", NULL};
    char bad[80], msg[256];
    if (!query_check(req, known, bad, sizeof(bad), msg, sizeof(msg)))
        return http_send_error(req, 400, "invalid_request", msg, bad);
    _cleanup_free_ char *release = query_param(req, "release");
    _cleanup_free_ char *q = query_param(req, "q");
    _cleanup_free_ char *limit_text = query_param(req, "limit");
    unsigned limit;
    if (!parse_limit(limit_text, &limit)) {
        snprintf(msg, sizeof(msg), "limit must be a whole number from 1 to %d", PACKAGES_LIMIT_MAX);
        return http_send_error(req, 400, "invalid_request", msg, "limit");
    }
    struct packages_result r;
    enum packages_error e = packages_query(srv->service.packages, release, q ? q : "", limit, &r, msg, sizeof(msg));
    if (e == PACKAGES_LOADING)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    if (e != PACKAGES_OK)
        return http_send_error(req, packages_status(e), packages_error_code(e), msg, packages_field(e));
    http_send_json(req, 200, packages_json(&r));
    packages_result_release(&r);
    return 0;
}

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 0 || len > n || (len == 2 && s[0] < 0xc2))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    json_t *probe = json_stringn((const char *)s, len); /* jansson rules out the rest (surrogates, overlongs) */
    json_decref(probe);
    return probe != NULL ? len : 0;
}

/*
 * A message as a JSON string. A recipe's messages quote what was sent,
 * cut to a length that may split a character: invalid bytes become U+FFFD
 * instead of costing the whole answer.
 */
static json_t *text_json(const char *text)
{
    json_t *v = json_string(text);
    if (v != NULL)
        return v;
    size_t n = strlen(text), o = 0;
    _cleanup_free_ char *clean = xmalloc(3 * n + 1);
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq((const unsigned char *)text + i, n - i);
        if (len == 0) {
            memcpy(clean + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(clean + o, text + i, len);
            o += len;
            i += len;
        }
    }
    clean[o] = '\0';
    return json_string(clean);
}

int recipes_validate(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    (void)srv;
    (void)m;
    struct recipe_check c;
    struct submit_problem p;
    if (submission_check_recipe(req->entity.base, req->entity.len, &c, &p) != SUBMIT_OK)
        return http_send_error(req, 400, submit_error_code(p.error), p.message, p.field[0] ? p.field : NULL);
    json_t *doc;
    if (c.valid) {
        json_error_t je;
        json_t *canonical = json_loads(c.canonical, 0, &je);
        doc = json_pack("{s:b, s:s, s:o}", "valid", 1, "config_hash", c.config_hash, "canonical", canonical);
    } else {
        doc = json_pack("{s:b, s:[{s:o, s:o}]}", "valid", 0, "errors", "field", text_json(c.field), "message",
                        text_json(c.message));
    }
    recipe_check_release(&c);
    return http_send_json(req, 200, doc);
}
