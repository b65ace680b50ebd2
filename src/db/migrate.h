/*
 * Schema migrations: versioned SQL compiled into the binary, applied in
 * order, each in its own transaction and recorded in schema_migrations,
 * all under a session advisory lock so that several servers starting at
 * once apply each migration exactly once. A database whose schema is newer
 * than this binary knows is refused.
 */
#ifndef DEBATE_DB_MIGRATE_H
#define DEBATE_DB_MIGRATE_H

#include <stddef.h>

#include <libpq-fe.h>

#include "db/pool.h"

/* The newest schema version this binary knows. */
int migrate_latest_version(void);

/*
 * Brings the database up to date. *applied is set to the number of
 * migrations applied now. DB_OK, or an error with the reason in err.
 */
enum db_status migrate_run(PGconn *c, int *applied, char *err, size_t errlen);

/* The database's current version (0: none) into *version. */
enum db_status migrate_current_version(PGconn *c, int *version, char *err, size_t errlen);

#endif
