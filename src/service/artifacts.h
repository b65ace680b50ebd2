/*
 * The artifact store: a directory of finished ISOs named by their SHA-256
 * (SHA.iso, SHA.manifest.json), shared by every worker (a local directory,
 * or a network file system mounted at the same path on worker machines).
 *
 * - Publishing moves a finished ISO in by rename after fsync, manifest
 *   first: a name in the store always holds a complete file. Publishing an
 *   ISO that is already there keeps the one there.
 * - Verifying re-hashes the file the first time and records what it saw
 *   (size, mtime, inode) in SHA.verified; later checks compare that stamp
 *   and re-hash only when the file changed. A file that fails is removed.
 * - Garbage collection removes artifacts no build names, then, while the
 *   store is over its budget, the least recently downloaded.
 *
 * Errors: 0, or -1 with a message in err.
 */
#ifndef DEBATE_SERVICE_ARTIFACTS_H
#define DEBATE_SERVICE_ARTIFACTS_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

/* DIR/SHA.iso, DIR/SHA.manifest.json (malloc'd). */
char *artifact_iso_path(const char *dir, const char *sha256);
char *artifact_manifest_path(const char *dir, const char *sha256);

/* Moves iso and manifest (temporary files in dir/tmp) into the store under sha256. */
int artifact_publish(const char *dir, const char *iso, const char *manifest, const char *sha256, char *err,
                     size_t errlen);

/* True when DIR/SHA.iso is present, of size bytes, and hashes to sha256. */
bool artifact_verify(const char *dir, const char *sha256, long long size);

struct artifact_gc_stats {
    unsigned removed;
    long long bytes_removed, bytes_kept;
};

/* Garbage-collects dir against the index in the database (budget in MiB). */
int artifact_gc(const char *dir, unsigned budget_mb, PGconn *c, struct artifact_gc_stats *st, char *err,
                size_t errlen);

#endif
