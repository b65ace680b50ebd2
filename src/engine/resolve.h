/*
 * Resolving a recipe to a lock, and the package cache.
 *
 * Resolution runs apt in a private directory (its own configuration,
 * sources, state and keyring: nothing of the host's apt setup but the
 * archive keyring) against the recipe's suites: the release, and for a
 * format 2 recipe RELEASE-updates from the same mirror and
 * RELEASE-security from the security mirror, each with the recipe's
 * components. They are resolved together with apt's own rule (the highest
 * version of a package wins). `apt-get update` fetches and verifies every
 * suite's signed InRelease with the archive keyring, then
 * `apt-get install --print-uris` against an empty package database gives
 * the whole dependency closure with each package's size and SHA-256 from
 * the signed index. For the "live" variant the closure starts from the
 * Essential and Priority: required packages and apt (what a minbase root
 * holds) plus the recipe's packages; for "busybox" from the recipe's
 * packages alone.
 *
 * The lock records the mirror, the release, every suite's InRelease (its
 * mirror, SHA-256 and Date), and every package (name, version,
 * architecture, size, SHA-256, pool path, and the suite and component it
 * came from), sorted by name; its canonical JSON's SHA-256 is lock_hash.
 * Its "date", SOURCE_DATE_EPOCH, is the newest suite's Date. A format 1
 * recipe gets a format 1 lock: one suite, main, none of the later fields,
 * exactly the text it always had; lock_parse reads both.
 *
 * apt's directory (CACHE/apt/<key>/, the key hashing the sources and
 * apt's settings) is kept between resolutions of the same sources: the
 * next one revalidates the lists with the mirror and reuses apt's caches
 * while they are unchanged; after any failed revalidation it starts from
 * nothing, so a list apt kept from before is never used. Threads: any
 * thread may call resolve_lock, several at once; an exclusive flock on
 * CACHE/apt/<key>.lock makes resolutions of the same sources (in this
 * process or another) wait for one another.
 *
 * The package cache (CACHE/debs/SHA256.deb) holds every package a lock
 * names, verified, written by rename so that concurrent builds are safe;
 * the signed indexes are kept beside (CACHE/indexes/<InRelease sha256>/:
 * InRelease, Packages.xz for main, COMPONENT.Packages.xz for the others),
 * one directory a suite, so an offline build can make a local mirror.
 *
 * Errors: resolve_lock and resolve_fetch return ENGINE_OK, or the cause
 * (enum engine_error, engine/error.h) with a message in err:
 * ENGINE_E_UNKNOWN_PACKAGE ("unknown package \"x\" in debian bookworm"),
 * ENGINE_E_MIRROR (unreachable, or it served a file whose checksum does not
 * match), ENGINE_E_SIGNATURE (a release file's signature does not
 * verify; the message names the suite and its mirror), ENGINE_E_DISK_FULL (the cache's file system), ENGINE_E_FAILED
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
    char *name, *version, *arch, *filename; /* filename: pool path below its suite's mirror */
    char *suite, *component;                /* where it came from ("trixie-security", "main") */
    long long size;
    char sha256[65];
};

/* One suite's signed release file. */
struct lock_suite {
    char *name;   /* "trixie", "trixie-updates", "trixie-security" */
    char *mirror; /* the mirror (or security mirror) it came from */
    char inrelease_sha256[65];
    char *date; /* its Date */
};

struct lock {
    int format;     /* 1: one suite, main (a format 1 recipe's); 2 */
    char *mirror;   /* the release's (and updates') mirror */
    char *release, *arch;
    char **components; /* format 1: "main" */
    size_t ncomponents;
    struct lock_suite *suites; /* the release first, then updates, then security */
    size_t nsuites;
    char *date; /* the newest suite's Date: SOURCE_DATE_EPOCH */
    struct lock_pkg *pkgs;
    size_t npkgs;
    char *json; /* canonical */
    char hash[65];
};

/* Where the packages come from: the mirror, and the security archive for RELEASE-security. */
struct resolve_mirrors {
    const char *mirror, *security_mirror, *keyring;
};

/* The mirror apt uses on this machine for Debian (from /etc/apt/sources*), else deb.debian.org's. */
char *resolve_default_mirror(void);
/* The security archive apt uses on this machine, else http://deb.debian.org/debian-security. */
char *resolve_default_security_mirror(void);

/*
 * Resolves r against its suites on m (signed with keys in m->keyring;
 * security_mirror is used only when r->security), using cache_dir for
 * apt's files and the kept indexes.
 */
enum engine_error resolve_lock(const struct recipe *r, const struct resolve_mirrors *m, const char *cache_dir,
                               struct lock *out, char *err, size_t errlen);

/* The suite of l named name, or NULL. */
const struct lock_suite *lock_suite_find(const struct lock *l, const char *name);
/* l's RELEASE-security suite, or NULL when it has none. */
const struct lock_suite *lock_security_suite(const struct lock *l);

/* Makes sure every package of the lock is in the cache; *fetched counts downloads. */
enum engine_error resolve_fetch(const struct lock *l, const char *cache_dir, int *fetched, char *err, size_t errlen);

/*
 * Reads a lock printed by debate lock (for an offline or exact rebuild):
 * checks its shape, that it is for r's release and architecture, suites
 * and components, and recomputes its canonical form and hash. 0, or -1 with a message (the
 * cause is ENGINE_E_INVALID_LOCK).
 */
int lock_parse(const char *text, size_t len, const struct recipe *r, struct lock *out, char *err, size_t errlen);

/* Reads a lock (either format) as lock_parse does, for no recipe in particular. 0, or -1 with a message. */
int lock_read(const char *text, size_t len, struct lock *out, char *err, size_t errlen);

void lock_release(struct lock *l);

/*
 * The SHA-256 a release file (the InRelease's text) lists for path
 * ("main/binary-amd64/Packages.xz") in its SHA256 section: 0 with out
 * filled, or -1 when it lists none.
 */
int resolve_release_hash(const char *inrelease, const char *path, char out[65]);

#endif
