/*
 * A pool of libpq connections: `size` kept open, up to `overflow` more made
 * on demand and closed when returned while `size` sit idle. A connection
 * idle for more than a second is checked with an empty query before reuse,
 * and one found broken (or returned broken) is closed and replaced, so a
 * restarted or killed backend costs nothing but a reconnect. Waiting for a
 * connection is bounded by the deadline the caller passes.
 *
 * Every connection has application_name=debate and the configured
 * statement_timeout, so no query can hold a connection forever.
 *
 * Thread-safe. db_pool_acquire blocks: call it from a database thread or a
 * command-line tool, never from an event loop (see db/executor.h).
 */
#ifndef DEBATE_DB_POOL_H
#define DEBATE_DB_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

enum db_status {
    DB_OK,
    DB_TIMEOUT,      /* no connection free before the deadline */
    DB_UNAVAILABLE,  /* cannot connect, or the connection broke */
    DB_QUERY_ERROR,  /* the query failed (message in err) */
    DB_NOT_FOUND,
    DB_CONFLICT,
    DB_LOST_LEASE,   /* a worker no longer holds the build it tries to update */
};

const char *db_status_str(enum db_status s);

struct db_pool;

struct db_pool *db_pool_new(const char *conninfo, unsigned size, unsigned overflow, unsigned statement_timeout_ms);
void db_pool_free(struct db_pool *p);

/*
 * Takes a connection, waiting until deadline_ms (clock_monotonic_ms) at
 * most. Returns NULL with *st and err set on failure.
 */
PGconn *db_pool_acquire(struct db_pool *p, uint64_t deadline_ms, enum db_status *st, char *err, size_t errlen);
/* Gives a connection back; a broken one (or one left in a transaction) is closed. */
void db_pool_release(struct db_pool *p, PGconn *c);

struct db_pool_stats {
    unsigned open, idle, in_use, waiting;
    uint64_t timeouts, connects, discarded;
};
void db_pool_stats(struct db_pool *p, struct db_pool_stats *out);

/* Opens one connection outside any pool (command-line tools). NULL with err on failure. */
PGconn *db_connect(const char *conninfo, unsigned statement_timeout_ms, char *err, size_t errlen);

/* Runs a command expecting no rows; returns DB_OK or DB_QUERY_ERROR / DB_UNAVAILABLE with err. */
enum db_status db_exec(PGconn *c, const char *sql, char *err, size_t errlen);
/* Classifies a finished result: DB_OK for success, else the error in err. The result is not freed. */
enum db_status db_check(PGconn *c, PGresult *r, char *err, size_t errlen);
/*
 * Runs sql with n text parameters as a statement the connection prepares
 * the first time it runs it: the server parses and plans it once per
 * connection, not on every call (on the queue's hot path that is half of a
 * claim's cost). Only connections made by db_connect keep statements (up to
 * DB_PREPARED_MAX each, forgotten when the connection is reset or closed);
 * others, and statements past the limit, run one-shot, as PQexecParams.
 * The result is the caller's to check (db_check) and clear.
 */
#define DB_PREPARED_MAX 128
PGresult *db_exec_params(PGconn *c, const char *sql, int n, const char *const *params);

#endif
