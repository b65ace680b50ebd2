/*
 * Package completion for the page: the package indexes of the releases a
 * recipe may name, parsed once per index and kept in memory, searched by
 * name.
 *
 * Where they come from: the signed indexes resolve_lock keeps in the
 * package cache (CACHE/indexes/<InRelease sha256>/, see
 * engine/pkgindex.h). For each release the newest (by the InRelease's
 * Date) whose files check out is the one searched. Nothing is fetched
 * here: until a build or `debate lock` has resolved a recipe of that
 * release, there is no index, and a query says so.
 *
 * Threads: a loader thread (packages_start) reads the cache at start, then
 * every PACKAGES_RESCAN_S seconds, and at once when a query finds no
 * index; it parses a new index with no lock held and swaps it in under
 * the lock. packages_query may be called from any thread, the event loops
 * included: it never touches the disk, it takes the lock only to take a
 * reference to the current index, and it searches the index (immutable)
 * outside the lock. packages_refresh is the loader's step, callable
 * directly where no thread runs (tests).
 *
 * Errors travel as values: enum packages_error, with its stable API code
 * (packages_error_code); the message says the rest.
 */
#ifndef DEBATE_SERVICE_PACKAGES_H
#define DEBATE_SERVICE_PACKAGES_H

#include <stdbool.h>
#include <stddef.h>

#define PACKAGES_RESCAN_S 30
#define PACKAGES_Q_MAX 64       /* the longest query: longer than any package name worth completing */
#define PACKAGES_LIMIT_MAX 100
#define PACKAGES_LIMIT_DEFAULT 20

enum packages_error {
    PACKAGES_OK,
    PACKAGES_BAD_RELEASE, /* not a release a recipe may name (field: release) */
    PACKAGES_BAD_QUERY,   /* q too long, or characters no package name has (field: q) */
    PACKAGES_LOADING,     /* an index is there but not read yet: retry in a second */
    PACKAGES_UNAVAILABLE, /* no index of this release in the cache yet */
};

/* The stable API code of a cause ("index_unavailable", ...). */
const char *packages_error_code(enum packages_error e);

struct packages_match {
    char *name, *version, *description;
};

struct packages_result {
    char release[32];
    char index[65]; /* the InRelease's SHA-256 */
    char date[64];  /* its Date */
    struct packages_match *matches;
    size_t n;
};
void packages_result_release(struct packages_result *r);

struct packages;

/* For the indexes of arch ("amd64") under cache_dir/indexes. Nothing is read yet. */
struct packages *packages_new(const char *cache_dir, const char *arch);
/* Starts the loader thread (once). */
void packages_start(struct packages *p);
/* Stops and joins the loader thread (a parse in progress finishes first); safe without start. */
void packages_stop(struct packages *p);
void packages_free(struct packages *p);

/* One pass of the loader: reads what is new in the cache and loads each release's newest index. */
void packages_refresh(struct packages *p);

/*
 * Up to limit (1..PACKAGES_LIMIT_MAX) packages of release (NULL: the
 * release a recipe gets when it names none) whose names
 * start with q, then those that contain it (q is folded to lower case).
 * PACKAGES_OK with *out filled (release it), or the cause with a message
 * in msg (and nothing to release).
 */
enum packages_error packages_query(struct packages *p, const char *release, const char *q, unsigned limit,
                                   struct packages_result *out, char *msg, size_t msglen);

#endif
