#include "dbtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "db/migrate.h"
#include "db/pool.h"
#include "harness.h"
#include "util.h"

static char dbname[64];

static char *url_for(const char *name)
{
    const char *base = getenv("DEBATE_TEST_DATABASE_URL");
    if (base == NULL)
        harness_fail(__FILE__, __LINE__, "DEBATE_TEST_DATABASE_URL is not set: run the tests with tests/run.py");
    return xasprintf("%s dbname=%s", base, name);
}

static PGconn *connect_to(const char *name)
{
    _cleanup_free_ char *url = url_for(name);
    char err[512];
    PGconn *c = db_connect(url, 10000, err, sizeof(err));
    if (c == NULL)
        harness_fail(__FILE__, __LINE__, "%s", err);
    return c;
}

void dbtest_exec(PGconn *c, const char *sql)
{
    char err[512];
    if (db_exec(c, sql, err, sizeof(err)) != DB_OK)
        harness_fail(__FILE__, __LINE__, "%s: %s", sql, err);
}

PGconn *dbtest_open(void)
{
    snprintf(dbname, sizeof(dbname), "unit_%ld", (long)getpid());
    PGconn *admin = connect_to("postgres");
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", dbname);
    dbtest_exec(admin, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
    dbtest_exec(admin, sql);
    PQfinish(admin);
    PGconn *c = connect_to(dbname);
    int applied;
    char err[512];
    if (migrate_run(c, &applied, err, sizeof(err)) != DB_OK)
        harness_fail(__FILE__, __LINE__, "migrate: %s", err);
    return c;
}

PGconn *dbtest_connect(void)
{
    return connect_to(dbname);
}

void dbtest_close(PGconn *c)
{
    PQfinish(c);
    PGconn *admin = connect_to("postgres");
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    dbtest_exec(admin, sql);
    PQfinish(admin);
}
