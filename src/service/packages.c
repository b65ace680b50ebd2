#include "service/packages.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/pkgindex.h"
#include "engine/recipe.h"
#include "log.h"
#include "util.h"
#include "banned.h"

/* A loaded index, shared by the slot and the queries searching it; the last reference frees it. */
struct index_ref {
    atomic_int refs;
    struct pkgindex ix;
};

/* An index directory the loader has looked at (its name is its InRelease's hash: it never changes). */
struct seen {
    struct pkgindex_info info;
    bool broken; /* its files are there but did not check out: never tried again */
};

struct slot {
    const char *release;
    struct index_ref *current; /* under lock */
    bool loading;              /* under lock: a newer index is being parsed */
};

struct packages {
    char *cache_dir, *arch;
    pthread_mutex_t lock; /* slots, scanned, stop, wanted, started */
    pthread_cond_t wake;
    struct slot *slots;
    size_t nslots;
    bool scanned; /* the first pass has finished */
    bool stop, wanted, started;
    atomic_bool cancel; /* set by packages_stop: a load in progress gives up (no lock: read while parsing) */
    pthread_t thread;
    pthread_mutex_t refresh_lock; /* one pass at a time; guards seen */
    struct seen *seen;
    size_t nseen;
};

const char *packages_error_code(enum packages_error e)
{
    switch (e) {
    case PACKAGES_OK: return "ok";
    case PACKAGES_BAD_RELEASE:
    case PACKAGES_BAD_QUERY: return "invalid_request";
    case PACKAGES_LOADING: return "index_loading";
    case PACKAGES_UNAVAILABLE: return "index_unavailable";
    }
    return "internal_error";
}

static void ref_put(struct index_ref *r)
{
    if (r != NULL && atomic_fetch_sub(&r->refs, 1) == 1) {
        pkgindex_release(&r->ix);
        free(r);
    }
}

struct packages *packages_new(const char *cache_dir, const char *arch)
{
    struct packages *p = xcalloc(1, sizeof(*p));
    p->cache_dir = xstrdup(cache_dir);
    p->arch = xstrdup(arch);
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->refresh_lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    const char *const *releases = recipe_releases();
    while (releases[p->nslots] != NULL)
        p->nslots++;
    p->slots = xcalloc(p->nslots, sizeof(*p->slots));
    for (size_t i = 0; i < p->nslots; i++)
        p->slots[i].release = releases[i];
    return p;
}

/*
 * Whether both files of an index directory are there. resolve_lock makes
 * the directory, writes the InRelease, then takes seconds to fetch the
 * Packages.xz (which appears whole, by rename): a directory caught in
 * between is not ready yet, and is looked at again on the next pass.
 */
static bool index_complete(const char *path)
{
    _cleanup_free_ char *in = xasprintf("%s/InRelease", path), *xz = xasprintf("%s/Packages.xz", path);
    return access(in, F_OK) == 0 && access(xz, F_OK) == 0;
}

/* Looks at the complete index directories not seen before. */
static void scan_new(struct packages *p)
{
    _cleanup_free_ char *dir = xasprintf("%s/indexes", p->cache_dir);
    DIR *d = opendir(dir);
    if (d == NULL)
        return; /* no index yet: nothing resolved on this host */
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_sha256_hex(e->d_name))
            continue;
        bool known = false;
        for (size_t i = 0; i < p->nseen && !known; i++)
            known = strcmp(p->seen[i].info.sha256, e->d_name) == 0;
        if (known)
            continue;
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, e->d_name);
        if (!index_complete(path))
            continue;
        struct seen s = {0};
        char err[512];
        if (pkgindex_probe(path, &s.info, err, sizeof(err)) != ENGINE_OK) {
            log_warnx("package index skipped: %s", err);
            memcpy(s.info.sha256, e->d_name, sizeof(s.info.sha256)); /* 64 hex digits and the NUL */
            s.broken = true;
        }
        p->seen = xrealloc(p->seen, (p->nseen + 1) * sizeof(*p->seen));
        p->seen[p->nseen++] = s;
    }
    closedir(d);
}

/* The newest usable index of release, or NULL. */
static struct seen *newest(struct packages *p, const char *release)
{
    struct seen *best = NULL;
    for (size_t i = 0; i < p->nseen; i++) {
        struct seen *s = &p->seen[i];
        bool match = strcmp(s->info.codename, release) == 0 || strcmp(s->info.suite, release) == 0;
        if (match && !s->broken && (best == NULL || s->info.when > best->info.when))
            best = s;
    }
    return best;
}

/* Makes the newest usable index of slot s current: parsed with no lock held, swapped in under it. */
static void load_slot(struct packages *p, struct slot *s)
{
    struct seen *best;
    while ((best = newest(p, s->release)) != NULL) {
        pthread_mutex_lock(&p->lock);
        bool same = s->current != NULL && strcmp(s->current->ix.info.sha256, best->info.sha256) == 0;
        s->loading = !same;
        pthread_mutex_unlock(&p->lock);
        if (same)
            return;
        _cleanup_free_ char *dir = xasprintf("%s/indexes/%s", p->cache_dir, best->info.sha256);
        struct index_ref *r = xcalloc(1, sizeof(*r));
        char err[512];
        enum engine_error e = pkgindex_load(dir, p->arch, &p->cancel, &r->ix, err, sizeof(err));
        if (e != ENGINE_OK) {
            pkgindex_release(&r->ix);
            free(r);
            if (e == ENGINE_E_INTERRUPTED) /* stopping: the index is fine, it was not read */
                break;
            log_warnx("package index skipped: %s", err);
            best->broken = true; /* try the next newest */
            continue;
        }
        atomic_init(&r->refs, 1);
        log_infox("package index of \"%s\" loaded: %zu packages (InRelease %.12s, %s)", s->release, r->ix.npkgs,
                  r->ix.info.sha256, r->ix.info.date);
        pthread_mutex_lock(&p->lock);
        struct index_ref *old = s->current;
        s->current = r;
        s->loading = false;
        pthread_mutex_unlock(&p->lock);
        ref_put(old);
        return;
    }
    pthread_mutex_lock(&p->lock);
    s->loading = false;
    pthread_mutex_unlock(&p->lock);
}

void packages_refresh(struct packages *p)
{
    pthread_mutex_lock(&p->refresh_lock);
    scan_new(p);
    for (size_t i = 0; i < p->nslots; i++)
        load_slot(p, &p->slots[i]);
    pthread_mutex_unlock(&p->refresh_lock);
    pthread_mutex_lock(&p->lock);
    p->scanned = true;
    pthread_mutex_unlock(&p->lock);
}

static void *loader_main(void *arg)
{
    struct packages *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stop) {
        p->wanted = false;
        pthread_mutex_unlock(&p->lock);
        packages_refresh(p);
        pthread_mutex_lock(&p->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += PACKAGES_RESCAN_S;
        while (!p->stop && !p->wanted && pthread_cond_timedwait(&p->wake, &p->lock, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* started is read by queries on the event loops (take_current): it changes under the lock only. */
void packages_start(struct packages *p)
{
    pthread_mutex_lock(&p->lock);
    bool was = p->started;
    p->started = true;
    pthread_mutex_unlock(&p->lock);
    if (!was && pthread_create(&p->thread, NULL, loader_main, p) != 0)
        abort();
}

void packages_stop(struct packages *p)
{
    pthread_mutex_lock(&p->lock);
    bool was = p->started;
    if (was) {
        p->stop = true;
        atomic_store(&p->cancel, true); /* loading an index takes seconds (many under a sanitizer): stop now */
        pthread_cond_signal(&p->wake);
    }
    pthread_mutex_unlock(&p->lock);
    if (!was)
        return;
    pthread_join(p->thread, NULL);
    pthread_mutex_lock(&p->lock);
    p->started = false;
    p->stop = false;
    atomic_store(&p->cancel, false);
    pthread_mutex_unlock(&p->lock);
}

void packages_free(struct packages *p)
{
    if (p == NULL)
        return;
    packages_stop(p);
    for (size_t i = 0; i < p->nslots; i++)
        ref_put(p->slots[i].current);
    free(p->slots);
    free(p->seen);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->refresh_lock);
    pthread_mutex_destroy(&p->lock);
    free(p->cache_dir);
    free(p->arch);
    free(p);
}

void packages_result_release(struct packages_result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->matches[i].name);
        free(r->matches[i].version);
        free(r->matches[i].description);
    }
    free(r->matches);
    r->matches = NULL;
    r->n = 0;
}

static struct slot *find_slot(struct packages *p, const char *release)
{
    for (size_t i = 0; i < p->nslots; i++)
        if (strcmp(p->slots[i].release, release) == 0)
            return &p->slots[i];
    return NULL;
}

/* q folded to lower case into out; false when it cannot be part of a package name. */
static bool fold_query(const char *q, char out[PACKAGES_Q_MAX + 1])
{
    size_t n = strlen(q);
    if (n > PACKAGES_Q_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = q[i] >= 'A' && q[i] <= 'Z' ? (char)(q[i] - 'A' + 'a') : q[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))
            return false;
        out[i] = c;
    }
    out[n] = '\0';
    return true;
}

static enum packages_error refuse(enum packages_error e, char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum packages_error refuse(enum packages_error e, char *msg, size_t msglen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
    return e;
}

/* The current index of s with a reference taken, or NULL (and the loader woken). */
static struct index_ref *take_current(struct packages *p, struct slot *s, bool *loading)
{
    pthread_mutex_lock(&p->lock);
    struct index_ref *r = s->current;
    if (r != NULL)
        atomic_fetch_add(&r->refs, 1);
    *loading = s->loading || !p->scanned;
    if (r == NULL && p->started) {
        /* A build may have just resolved this release: look again now rather than at the next rescan. */
        p->wanted = true;
        pthread_cond_signal(&p->wake);
    }
    pthread_mutex_unlock(&p->lock);
    return r;
}

static void copy_matches(const struct index_ref *r, const char *q, unsigned limit, struct packages_result *out)
{
    const struct pkgindex_pkg **found = xcalloc(limit, sizeof(*found));
    out->n = pkgindex_search(&r->ix, q, limit, found);
    out->matches = xcalloc(out->n ? out->n : 1, sizeof(*out->matches));
    for (size_t i = 0; i < out->n; i++)
        out->matches[i] = (struct packages_match){xstrdup(found[i]->name), xstrdup(found[i]->version),
                                                  xstrdup(found[i]->description)};
    free(found);
    snprintf(out->index, sizeof(out->index), "%s", r->ix.info.sha256);
    snprintf(out->date, sizeof(out->date), "%s", r->ix.info.date);
}

/* The releases a recipe may name, as "a, b or c" (malloc'd). */
static char *release_names(void)
{
    const char *const *r = recipe_releases();
    char *out = xasprintf("\"%s\"", r[0]);
    for (size_t i = 1; r[i] != NULL; i++) {
        char *longer = xasprintf("%s%s\"%s\"", out, r[i + 1] != NULL ? ", " : " or ", r[i]);
        free(out);
        out = longer;
    }
    return out;
}

/* How much of text to quote: at most max bytes, never part of a UTF-8 character (the message becomes JSON). */
static size_t quoted_len(const char *text, size_t max)
{
    size_t n = strnlen(text, max + 1);
    if (n <= max)
        return n;
    n = max;
    while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
        n--;
    return n;
}

enum packages_error packages_query(struct packages *p, const char *release, const char *q, unsigned limit,
                                   struct packages_result *out, char *msg, size_t msglen)
{
    memset(out, 0, sizeof(*out));
    if (release == NULL)
        release = recipe_default_release();
    struct slot *s = find_slot(p, release);
    char folded[PACKAGES_Q_MAX + 1];
    if (s == NULL) {
        _cleanup_free_ char *names = release_names();
        return refuse(PACKAGES_BAD_RELEASE, msg, msglen, "release \"%.*s\" is not one a recipe may name (%s)",
                      (int)quoted_len(release, 32), release, names);
    }
    if (!fold_query(q, folded))
        return refuse(PACKAGES_BAD_QUERY, msg, msglen,
                      "q must be at most %d of a-z, 0-9, '+', '-' and '.' (the characters of package names)",
                      PACKAGES_Q_MAX);
    bool loading;
    struct index_ref *r = take_current(p, s, &loading);
    if (r == NULL && loading)
        return refuse(PACKAGES_LOADING, msg, msglen,
                      "the package index of \"%s\" is being read; try again in a second", release);
    if (r == NULL)
        return refuse(PACKAGES_UNAVAILABLE, msg, msglen,
                      "no package index of \"%s\" is cached yet: it comes with the first build of a \"%s\" recipe, "
                      "or run `debate lock` on one",
                      release, release);
    snprintf(out->release, sizeof(out->release), "%s", release);
    copy_matches(r, folded, limit, out);
    ref_put(r);
    return PACKAGES_OK;
}
