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
#include <sys/types.h>

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
/*
 * In a child forked after db_open: the cluster is the parent's to stop, so
 * this process's db_close leaves it running. The pool must be empty (it
 * is after db_open; connections are never shared across a fork).
 */
void db_forget_cluster(struct db *db);
/* Lets processes of group gid reach the embedded cluster's socket (no-op with database_url). 0 or -1. */
int db_grant_client(struct db *db, gid_t gid, char *err, size_t errlen);

#endif
