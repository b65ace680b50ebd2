/*
 * What changed between two locks of a recipe: the packages whose version
 * (or suite) differs, and those only one of them has. `debate lock
 * --against OLD` prints it; the service names it when a submission's lock
 * is what makes it miss the cache.
 *
 * Ownership: lock_diff's array points into both locks (it owns neither);
 * free it with free() before the locks go. lock_load_against returns a
 * lock the caller releases with lock_release.
 */
#ifndef DEBATE_ENGINE_LOCKDIFF_H
#define DEBATE_ENGINE_LOCKDIFF_H

#include <stddef.h>

#include <jansson.h>

#include "engine/resolve.h"

/* One package: old NULL when it was added, new NULL when it was removed, else both. */
struct lock_change {
    const struct lock_pkg *old, *new;
};

/* The changes from old to new, in name order, into *out (malloc'd; NULL when none). Returns how many. */
size_t lock_diff(const struct lock *old, const struct lock *new, struct lock_change **out);

/*
 * The changes as JSON, an array of {"name", "old": {"version", "suite"} |
 * null, "new": ... | null} (a new reference).
 */
json_t *lock_diff_json(const struct lock_change *changes, size_t n);

/*
 * Reads path: a lock (debate lock's output) or a build's manifest (its
 * "lock"). 0, or -1 with a message in err.
 */
int lock_load_against(const char *path, struct lock *out, char *err, size_t errlen);

#endif
