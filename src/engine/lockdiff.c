#include "engine/lockdiff.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "banned.h"

/* Whether a package is the same in both locks: the same version from the same suite. */
static bool same_package(const struct lock_pkg *a, const struct lock_pkg *b)
{
    return strcmp(a->version, b->version) == 0 && strcmp(a->suite, b->suite) == 0;
}

size_t lock_diff(const struct lock *old, const struct lock *new, struct lock_change **out)
{
    /* Both are sorted by name (resolve_lock and lock_read sort them): one merge walk. */
    struct lock_change *changes = NULL;
    size_t n = 0, i = 0, k = 0;
    while (i < old->npkgs || k < new->npkgs) {
        int c = i == old->npkgs ? 1 : k == new->npkgs ? -1 : strcmp(old->pkgs[i].name, new->pkgs[k].name);
        struct lock_change ch = {c <= 0 ? &old->pkgs[i] : NULL, c >= 0 ? &new->pkgs[k] : NULL};
        i += c <= 0;
        k += c >= 0;
        if (ch.old != NULL && ch.new != NULL && same_package(ch.old, ch.new))
            continue;
        changes = xrealloc(changes, (n + 1) * sizeof(*changes));
        changes[n++] = ch;
    }
    *out = changes;
    return n;
}

static json_t *side(const struct lock_pkg *p)
{
    return p == NULL ? json_null() : json_pack("{s:s, s:s}", "version", p->version, "suite", p->suite);
}

json_t *lock_diff_json(const struct lock_change *changes, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct lock_pkg *any = changes[i].new ? changes[i].new : changes[i].old;
        json_array_append_new(arr, json_pack("{s:s, s:o, s:o}", "name", any->name, "old", side(changes[i].old),
                                             "new", side(changes[i].new)));
    }
    return arr;
}

int lock_load_against(const char *path, struct lock *out, char *err, size_t errlen)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    memset(out, 0, sizeof(*out));
    int rc = read_file(path, 64u << 20, &text, &len);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(-rc));
        return -1;
    }
    /* A manifest holds the lock it was built from. */
    json_error_t je;
    json_t *doc = json_loadb(text, len, 0, &je);
    json_t *inner = json_is_object(doc) && json_is_object(json_object_get(doc, "recipe"))
                        ? json_object_get(doc, "lock")
                        : NULL;
    _cleanup_free_ char *lock_text = json_is_object(inner) ? json_dumps(inner, JSON_COMPACT) : NULL;
    json_decref(doc);
    char why[512];
    rc = lock_text ? lock_read(lock_text, strlen(lock_text), out, why, sizeof(why))
                   : lock_read(text, len, out, why, sizeof(why));
    if (rc < 0)
        snprintf(err, errlen, "\"%s\": %s", path, why);
    return rc;
}
