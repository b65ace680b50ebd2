/*
 * A release's package index, read from the package cache: the names,
 * versions and short descriptions of every package of the signed
 * Packages.xz that resolve_lock keeps in CACHE/indexes/<InRelease
 * sha256>/ (resolve.h). The page's package completion searches it.
 *
 * The trust is the resolver's: apt verified the InRelease's signature
 * with the archive keyring before resolve_lock stored it under its
 * SHA-256. pkgindex_probe checks that the InRelease still has the hash its
 * directory is named by; pkgindex_load also checks that Packages.xz has
 * the SHA-256 the InRelease lists for it. So what is read is the signed
 * index or nothing.
 *
 * Errors: pkgindex_probe and pkgindex_load return ENGINE_OK, or
 * ENGINE_E_FAILED with a message in err (a missing or altered file, a
 * corrupt archive). An index is immutable once loaded: any number of
 * threads may search it at once.
 */
#ifndef DEBATE_ENGINE_PKGINDEX_H
#define DEBATE_ENGINE_PKGINDEX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "engine/error.h"

/* What the InRelease says about itself. */
struct pkgindex_info {
    char sha256[65];   /* the InRelease's, which names its directory */
    char codename[32]; /* "bookworm" */
    char suite[32];    /* "stable" */
    char date[64];     /* its Date field, as written */
    time_t when;       /* the Date as a time, for "newest" (0 when unreadable) */
};

struct pkgindex_pkg {
    const char *name, *version, *description; /* description: the first line only */
};

struct pkgindex {
    struct pkgindex_info info;
    struct pkgindex_pkg *pkgs; /* sorted by name, one entry a name */
    size_t npkgs;
    char *strings; /* the storage every pkgs[] string points into */
};

/* Reads dir/InRelease (dir: CACHE/indexes/<sha256>) and checks its hash against the directory's name. */
enum engine_error pkgindex_probe(const char *dir, struct pkgindex_info *out, char *err, size_t errlen);

/*
 * Reads dir's index for arch ("amd64"): the InRelease as pkgindex_probe
 * does, then Packages.xz, checked against the hash the InRelease lists for
 * main/binary-ARCH/Packages.xz, decompressed and parsed. Takes about a
 * second for a whole Debian release (many more under a sanitizer): call it
 * off any event loop. When cancel (may be NULL) is set meanwhile, it gives
 * up within a MiB of decompression or a thousand packages and returns
 * ENGINE_E_INTERRUPTED; out then holds nothing.
 */
enum engine_error pkgindex_load(const char *dir, const char *arch, const atomic_bool *cancel, struct pkgindex *out,
                                char *err, size_t errlen);
void pkgindex_release(struct pkgindex *ix);

/*
 * The two parsers behind pkgindex_load's checks, on text in memory (for
 * the fuzz targets and tests; pkgindex_load is the way in otherwise).
 * pkgindex_parse_release fills info's codename, suite, date and when from
 * a release file's text (NUL-terminated; sha256 is left alone).
 * pkgindex_parse_packages reads the stanzas of a Packages file into out's
 * pkgs, npkgs and strings as pkgindex_load does (release them with
 * pkgindex_release); false, with out untouched, when cancel (may be NULL)
 * was set meanwhile.
 */
void pkgindex_parse_release(const char *text, struct pkgindex_info *info);
bool pkgindex_parse_packages(const char *text, size_t len, const atomic_bool *cancel, struct pkgindex *out);

/*
 * At most limit packages whose names start with q (in name order), then
 * those whose names contain q elsewhere (in name order), into out (room
 * for limit). Returns how many. An empty q matches every name.
 */
size_t pkgindex_search(const struct pkgindex *ix, const char *q, size_t limit, const struct pkgindex_pkg **out);

#endif
