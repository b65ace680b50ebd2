/*
 * Resolving a recipe to a lock, and the package cache.
 *
 * Resolution runs apt in a private directory (its own configuration,
 * sources, state and keyring: nothing of the host's apt setup but the
 * archive keyring) against the configured mirror: `apt-get update` fetches
 * and verifies the signed InRelease with the archive keyring, then
 * `apt-get install --print-uris` against an empty package database gives
 * the whole dependency closure with each package's size and SHA-256 from
 * the signed index. For the "live" variant the closure starts from the
 * Essential and Priority: required packages and apt (what a minbase root
 * holds) plus the recipe's packages; for "busybox" from the recipe's
 * packages alone.
 *
 * The lock records the mirror, the release, the InRelease's SHA-256 and
 * Date, and every package (name, version, architecture, size, SHA-256, pool
 * path), sorted by name; its canonical JSON's SHA-256 is lock_hash.
 *
 * The package cache (CACHE/debs/SHA256.deb) holds every package a lock
 * names, verified, written by rename so that concurrent builds are safe;
 * the signed indexes are kept beside (CACHE/indexes) so an offline build
 * can make a local mirror.
 *
 * Errors: resolve_lock and resolve_fetch return ENGINE_OK, or the cause
 * (enum engine_error, engine/error.h) with a message in err:
 * ENGINE_E_UNKNOWN_PACKAGE ("unknown package \"x\" in debian bookworm"),
 * ENGINE_E_MIRROR (unreachable, or it served a file whose checksum does not
 * match), ENGINE_E_SIGNATURE (the release file's signature does not
 * verify), ENGINE_E_DISK_FULL (the cache's file system), ENGINE_E_FAILED
 * for anything else. The cause is read from apt's own output where apt is
 * the only witness (the words of its errors); debate's messages are never
 * searched. lock_parse returns 0, or -1 with a message (its only cause is
 * ENGINE_E_INVALID_LOCK).
 */
#ifndef DEBATE_ENGINE_RESOLVE_H
#define DEBATE_ENGINE_RESOLVE_H

#include <stddef.h>

#include "engine/error.h"
#include "engine/recipe.h"

struct lock_pkg {
    char *name, *version, *arch, *filename; /* filename: pool path below the mirror */
    long long size;
    char sha256[65];
};

struct lock {
    char *mirror, *release, *arch;
    char inrelease_sha256[65];
    char *date;
    struct lock_pkg *pkgs;
    size_t npkgs;
    char *json; /* canonical */
    char hash[65];
};

/* The mirror apt uses on this machine for Debian (from /etc/apt/sources*). */
char *resolve_default_mirror(void);

/* Resolves r against mirror (signed with keys in keyring), using cache_dir for apt's files. */
enum engine_error resolve_lock(const struct recipe *r, const char *mirror, const char *keyring,
                               const char *cache_dir, struct lock *out, char *err, size_t errlen);

/* Makes sure every package of the lock is in the cache; *fetched counts downloads. */
enum engine_error resolve_fetch(const struct lock *l, const char *cache_dir, int *fetched, char *err, size_t errlen);

/*
 * Reads a lock printed by debate lock (for an offline or exact rebuild):
 * checks its shape and that it is for r's release and architecture, and
 * recomputes its canonical form and hash. 0, or -1 with a message (the
 * cause is ENGINE_E_INVALID_LOCK).
 */
int lock_parse(const char *text, size_t len, const struct recipe *r, struct lock *out, char *err, size_t errlen);

void lock_release(struct lock *l);

/*
 * The SHA-256 a release file (the InRelease's text) lists for path
 * ("main/binary-amd64/Packages.xz") in its SHA256 section: 0 with out
 * filled, or -1 when it lists none.
 */
int resolve_release_hash(const char *inrelease, const char *path, char out[65]);

#endif
