/*
 * Backups of the database and the proof that they restore.
 *
 * debate backup writes, under backup_dir, for a UTC timestamp T:
 *   debate-T.dump           pg_dump -Fc
 *   debate-T.dump.sha256    "<hex>  debate-T.dump" (sha256sum -c compatible)
 *   debate-T.manifest.json  schema version, row counts per table, size, sha256
 * each written to a temporary name, fsynced and renamed, the manifest last:
 * a dump without a manifest is incomplete and never used. Row counts are
 * taken in the same snapshot pg_dump dumps (pg_export_snapshot).
 *
 * Retention deletes sets older than backup_retention_days, but never the
 * newest good set (complete, checksum verified), however old.
 *
 * debate restore-test verifies the newest set's checksum, restores it into
 * a scratch database (pg_restore --exit-on-error --single-transaction),
 * compares row counts and schema version with the manifest, drops the
 * scratch database, and records the time of success in
 * backup_dir/restore-test.json for /metrics and /ready.
 *
 * Errors: 0, or -1 with a message in err.
 */
#ifndef DEBATE_DB_BACKUP_H
#define DEBATE_DB_BACKUP_H

#include <stddef.h>

#include "config.h"
#include "db/db.h"

/* Dumps the database now (now: seconds since the epoch), then prunes. */
int backup_run(const struct config *cfg, struct db *db, long long now, char *err, size_t errlen);
/* Applies the retention rule as of now. *deleted counts removed sets. */
int backup_prune(const struct config *cfg, long long now, int *deleted, char *err, size_t errlen);
/* Restores the newest set into a scratch database and compares. */
int backup_restore_test(const struct config *cfg, struct db *db, char *err, size_t errlen);
/*
 * Seconds since the epoch of the last successful restore test; 0 if none.
 * Read from backup_dir, or, by a process that may not read there (serve's
 * unprivileged front door), from DATA_DIR/restore-test-success.json.
 */
long long backup_last_restore_test(const struct config *cfg);
/*
 * Copies the time of the last success (nothing else of the record) to
 * DATA_DIR/restore-test-success.json, 0644. restore-test calls it after a
 * success, serve at start. 0 (also when there is none yet) or -errno.
 */
int backup_share_restore_success(const struct config *cfg);

#endif
