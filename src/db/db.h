/*
 * The database as the rest of debate sees it: where it is (database_url,
 * or the embedded cluster, started on demand), a pool of connections, and
 * the schema brought up to date.
 *
 * Errors: 0, or -1 with a message in err.
 */
#ifndef DEBATE_DB_DB_H
#define DEBATE_DB_DB_H

#include <stdbool.h>

#include "config.h"
#include "db/embedded.h"
#include "db/pool.h"

struct db {
    bool embedded;
    struct embedded_pg pg;
    char *conninfo;
    struct db_pool *pool;
    unsigned statement_timeout_ms;
    bool own_cluster;
};

enum db_open_flags {
    DB_OPEN_MIGRATE = 1 << 0, /* apply migrations */
    DB_OPEN_WAIT = 1 << 1,    /* retry for up to 30 s while the server is not reachable */
    DB_OPEN_OWN = 1 << 2,     /* serve: the embedded cluster is ours to stop, even if adopted */
};

/* Starts the embedded cluster when configured so, checks the connection, migrates. */
int db_open(struct db *db, const struct config *cfg, unsigned flags, char *err, size_t errlen);
/* Closes the pool and stops the embedded cluster if this process started it. */
void db_close(struct db *db);

#endif
