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
 *   Downloads read the very descriptor that was verified, so a file
 *   replaced or damaged behind the store is refused, never served. The
 *   stamp guards against accidents (a bad disk, a hand in the directory),
 *   not against someone who can write the store and forge mtimes.
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

/*
 * Opens DIR/SHA.iso for reading when it is of size bytes and hashes to
 * sha256 (by its stamp, else by re-hashing: seconds for a large ISO).
 * Returns the descriptor (the caller closes it), -ENOENT when the file is
 * not there, -EBADMSG when it is damaged (it is removed), or another
 * -errno.
 */
int artifact_open(const char *dir, const char *sha256, long long size);

/* True when DIR/SHA.iso is present, of size bytes, and hashes to sha256. */
bool artifact_verify(const char *dir, const char *sha256, long long size);

/*
 * Reads DIR/SHA.manifest.json (malloc'd into *body, *len bytes) when it is
 * the manifest of that ISO (its iso_sha256 says so). 0, -EBADMSG for a
 * manifest of something else or no JSON, or -errno.
 */
int artifact_read_manifest(const char *dir, const char *sha256, char **body, size_t *len);

struct artifact_gc_stats {
    unsigned removed;
    long long bytes_removed, bytes_kept;
};

/* Garbage-collects dir against the index in the database (budget in MiB). */
int artifact_gc(const char *dir, unsigned budget_mb, PGconn *c, struct artifact_gc_stats *st, char *err,
                size_t errlen);

#endif
