#include "http/router.h"

#include <stdio.h>
#include <string.h>

#include "util.h"
#include "banned.h"

static const struct {
    const char *name;
    unsigned bit;
} methods[] = {
    {"GET", METHOD_GET},     {"HEAD", METHOD_HEAD},     {"POST", METHOD_POST},       {"PUT", METHOD_PUT},
    {"PATCH", METHOD_PATCH}, {"DELETE", METHOD_DELETE}, {"OPTIONS", METHOD_OPTIONS},
};

unsigned router_method(const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
        if (strlen(methods[i].name) == len && memcmp(methods[i].name, name, len) == 0)
            return methods[i].bit;
    return 0;
}

bool router_method_is_unsafe(unsigned method)
{
    return (method & (METHOD_GET | METHOD_HEAD | METHOD_OPTIONS)) == 0;
}

static bool pattern_match(const char *pat, const char *path, size_t len, struct route_match *m)
{
    const char *p = path, *end = path + len;
    m->nparams = 0;
    while (*pat) {
        if (pat[0] == '{') {
            const char *close = strchr(pat, '}');
            const char *seg_end = memchr(p, '/', (size_t)(end - p));
            if (seg_end == NULL)
                seg_end = end;
            if (close == NULL || seg_end == p || m->nparams == ROUTE_MAX_PARAMS)
                return false;
            m->params[m->nparams++] = h2o_iovec_init(p, (size_t)(seg_end - p));
            p = seg_end;
            pat = close + 1;
        } else {
            if (p == end || *p != *pat)
                return false;
            p++;
            pat++;
        }
    }
    return p == end;
}

static unsigned effective(unsigned methods_)
{
    return methods_ & METHOD_GET ? methods_ | METHOD_HEAD : methods_;
}

int router_lookup(const struct route *routes, size_t n, unsigned method, const char *path, size_t len,
                  struct route_match *m, unsigned *allowed)
{
    int found = -1;
    *allowed = 0;
    for (size_t i = 0; i < n; i++) {
        struct route_match tmp;
        if (!pattern_match(routes[i].pattern, path, len, &tmp))
            continue;
        *allowed |= effective(routes[i].methods);
        if (found < 0 && (effective(routes[i].methods) & method)) {
            found = (int)i;
            *m = tmp;
        }
    }
    return found;
}

int router_path_index(const struct route *routes, size_t n, const char *path, size_t len)
{
    struct route_match tmp;
    for (size_t i = 0; i < n; i++)
        if (pattern_match(routes[i].pattern, path, len, &tmp))
            return (int)i;
    return -1;
}

void router_allow_header(unsigned set, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < ARRAY_SIZE(methods); i++) {
        if (!(set & methods[i].bit))
            continue;
        int n = snprintf(buf + o, len - o, "%s%s", o ? ", " : "", methods[i].name);
        if (n < 0 || (size_t)n >= len - o)
            break;
        o += (size_t)n;
    }
}
