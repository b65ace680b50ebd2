/*
 * Unit tests against a real PostgreSQL: tests/run.py starts a private
 * cluster and passes its maintenance connection string in
 * DEBATE_TEST_DATABASE_URL. Each test (its own process) gets a fresh
 * database with the schema migrated.
 */
#ifndef DEBATE_TEST_DBTEST_H
#define DEBATE_TEST_DBTEST_H

#include <libpq-fe.h>

/* A connection to a new, migrated database; fails the test if impossible. */
PGconn *dbtest_open(void);
/* Another connection to the same database. */
PGconn *dbtest_connect(void);
/* Runs SQL, failing the test on error. */
void dbtest_exec(PGconn *c, const char *sql);
/* Drops the test database (call at the end of the test). */
void dbtest_close(PGconn *c);

#endif
