#include "http/query.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "banned.h"

struct param {
    const char *name, *value;
    size_t name_len, value_len;
};

/* The parameter that starts at q (up to stop); false when it is empty. */
static bool split_param(const char *q, const char *stop, struct param *p)
{
    const char *eq = memchr(q, '=', (size_t)(stop - q));
    p->name = q;
    p->name_len = (size_t)((eq ? eq : stop) - q);
    p->value = eq ? eq + 1 : stop;
    p->value_len = (size_t)(stop - p->value);
    return stop > q;
}

/* Decodes [v, v + len) into out (room for len + 1); -1 for a bad escape or a NUL byte. */
static int decode(const char *v, size_t len, char *out)
{
    char *w = out;
    for (const char *end = v + len; v < end; v++) {
        if (*v == '%') {
            if (end - v < 3 || !isxdigit((unsigned char)v[1]) || !isxdigit((unsigned char)v[2]))
                return -1;
            char hex[3] = {v[1], v[2], 0};
            *w = (char)strtol(hex, NULL, 16);
            if (*w++ == '\0')
                return -1;
            v += 2;
        } else {
            *w++ = *v == '+' ? ' ' : *v;
        }
    }
    *w = '\0';
    return 0;
}

/* Calls fn for each parameter; stops at the first that returns false. */
static bool each_param(h2o_req_t *req, bool (*fn)(const struct param *p, void *ctx), void *ctx)
{
    if (req->query_at == SIZE_MAX)
        return true;
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        struct param p;
        if (split_param(q, stop, &p) && !fn(&p, ctx))
            return false;
        q = stop + 1;
    }
    return true;
}

struct check_ctx {
    const char *const *known;
    unsigned seen; /* a bit per known name */
    char *bad, *msg;
    size_t badlen, msglen;
};

static bool check_one(const struct param *p, void *arg)
{
    struct check_ctx *c = arg;
    snprintf(c->bad, c->badlen, "%.*s", (int)(p->name_len > 64 ? 64 : p->name_len), p->name);
    size_t i = 0;
    for (; c->known[i] != NULL; i++)
        if (strlen(c->known[i]) == p->name_len && memcmp(c->known[i], p->name, p->name_len) == 0)
            break;
    if (c->known[i] == NULL) {
        snprintf(c->msg, c->msglen, "unknown query parameter \"%s\"", c->bad);
        return false;
    }
    if (c->seen & (1u << i)) {
        snprintf(c->msg, c->msglen, "query parameter \"%s\" is given more than once", c->bad);
        return false;
    }
    c->seen |= 1u << i;
    _cleanup_free_ char *value = xmalloc(p->value_len + 1);
    if (decode(p->value, p->value_len, value) < 0) {
        snprintf(c->msg, c->msglen, "query parameter \"%s\" has a malformed escape or a NUL byte", c->bad);
        return false;
    }
    return true;
}

bool query_check(h2o_req_t *req, const char *const *known, char *bad, size_t badlen, char *msg, size_t msglen)
{
    struct check_ctx c = {known, 0, bad, msg, badlen, msglen};
    return each_param(req, check_one, &c);
}

struct find_ctx {
    const char *name;
    char *value;
};

static bool find_one(const struct param *p, void *arg)
{
    struct find_ctx *f = arg;
    if (strlen(f->name) != p->name_len || memcmp(f->name, p->name, p->name_len) != 0)
        return true;
    f->value = xmalloc(p->value_len + 1);
    if (decode(p->value, p->value_len, f->value) < 0) {
        free(f->value);
        f->value = NULL;
    }
    return false;
}

char *query_param(h2o_req_t *req, const char *name)
{
    struct find_ctx f = {name, NULL};
    each_param(req, find_one, &f);
    return f.value;
}
