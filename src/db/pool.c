#include "db/pool.h"

#include <errno.h>
#include <libpq-events.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "util.h"
#include "banned.h"

#define CHECK_IDLE_MS 1000
#define OVERFLOW_IDLE_MS 5000 /* an overflow connection idle this long is closed */

struct idle_conn {
    PGconn *conn;
    uint64_t since_ms;
};

struct db_pool {
    char *conninfo;
    unsigned size, overflow, statement_timeout_ms;
    pthread_mutex_t lock;
    pthread_cond_t freed;
    struct idle_conn *idle; /* a stack: the most recently used on top */
    unsigned nidle, open, waiting;
    uint64_t timeouts, connects, discarded;
};

const char *db_status_str(enum db_status s)
{
    switch (s) {
    case DB_OK: return "ok";
    case DB_TIMEOUT: return "no database connection was free in time";
    case DB_UNAVAILABLE: return "the database is unavailable";
    case DB_QUERY_ERROR: return "the database query failed";
    case DB_NOT_FOUND: return "not found";
    case DB_CONFLICT: return "conflict";
    case DB_LOST_LEASE: return "the lease on this build is no longer held";
    }
    return "unknown database error";
}

struct db_pool *db_pool_new(const char *conninfo, unsigned size, unsigned overflow, unsigned statement_timeout_ms)
{
    struct db_pool *p = xcalloc(1, sizeof(*p));
    p->conninfo = xstrdup(conninfo);
    p->size = size;
    p->overflow = overflow;
    p->statement_timeout_ms = statement_timeout_ms;
    p->idle = xcalloc(size + overflow, sizeof(*p->idle));
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->freed, &ca);
    pthread_condattr_destroy(&ca);
    return p;
}

void db_pool_free(struct db_pool *p)
{
    if (p == NULL)
        return;
    for (unsigned i = 0; i < p->nidle; i++)
        PQfinish(p->idle[i].conn);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->freed);
    free(p->idle);
    free(p->conninfo);
    free(p);
}

enum db_status db_check(PGconn *c, PGresult *r, char *err, size_t errlen)
{
    ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
        return DB_OK;
    const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
    snprintf(err, errlen, "%s", msg && msg[0] ? msg : PQerrorMessage(c));
    size_t n = strlen(err);
    while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
        err[--n] = '\0';
    return PQstatus(c) == CONNECTION_OK ? DB_QUERY_ERROR : DB_UNAVAILABLE;
}

enum db_status db_exec(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    enum db_status st = db_check(c, r, err, errlen);
    PQclear(r);
    return st;
}

/*
 * The statements a connection has prepared, kept with the connection itself
 * (libpq's instance data of an event procedure): gone with it, emptied when
 * it is reset, since the server forgets them then. Named by a hash of their
 * text; the text is kept to tell two statements with one hash apart.
 */
struct prepared {
    unsigned n;
    struct {
        uint64_t hash;
        char *sql;
    } s[DB_PREPARED_MAX];
};

static void prepared_clear(struct prepared *p)
{
    for (unsigned i = 0; i < p->n; i++)
        free(p->s[i].sql);
    p->n = 0;
}

static int prepared_event(PGEventId evt, void *info, void *pass)
{
    (void)pass;
    PGconn *c = evt == PGEVT_CONNRESET     ? ((PGEventConnReset *)info)->conn
                : evt == PGEVT_CONNDESTROY ? ((PGEventConnDestroy *)info)->conn
                                           : NULL;
    struct prepared *p = c ? PQinstanceData(c, prepared_event) : NULL;
    if (p != NULL) {
        prepared_clear(p);
        if (evt == PGEVT_CONNDESTROY)
            free(p);
    }
    return 1;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

PGresult *db_exec_params(PGconn *c, const char *sql, int n, const char *const *params)
{
    struct prepared *p = PQinstanceData(c, prepared_event);
    if (p == NULL)
        return PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    uint64_t h = fnv1a(sql);
    char name[24];
    snprintf(name, sizeof(name), "d%016llx", (unsigned long long)h);
    unsigned i = 0;
    while (i < p->n && p->s[i].hash != h)
        i++;
    if (i < p->n && strcmp(p->s[i].sql, sql) != 0)
        return PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0); /* another statement has its name */
    if (i == p->n) {
        if (p->n == DB_PREPARED_MAX)
            return PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
        char *copy = xstrdup(sql);
        PGresult *r = PQprepare(c, name, sql, n, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            free(copy);
            return r; /* the statement's own error (or the connection's), as running it would give */
        }
        PQclear(r);
        p->s[p->n].hash = h;
        p->s[p->n].sql = copy;
        p->n++;
    }
    return PQexecPrepared(c, name, n, params, NULL, NULL, 0);
}

/* Server notices ("relation already exists, skipping") are not errors: keep them out of stderr. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *db_connect(const char *conninfo, unsigned statement_timeout_ms, char *err, size_t errlen)
{
    /* Defaults first: what the caller's string says (expanded from dbname) wins. */
    const char *keys[] = {"application_name", "connect_timeout", "dbname", NULL};
    const char *vals[] = {"debate", "5", conninfo, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to the database: %s", PQerrorMessage(c));
        size_t n = strlen(err);
        while (n > 0 && err[n - 1] == '\n')
            err[--n] = '\0';
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, on_notice, NULL);
    struct prepared *prep = xcalloc(1, sizeof(*prep));
    if (!PQregisterEventProc(c, prepared_event, "debate prepared statements", NULL) ||
        !PQsetInstanceData(c, prepared_event, prep)) {
        snprintf(err, errlen, "cannot connect to the database: libpq refused an event procedure");
        free(prep);
        PQfinish(c);
        return NULL;
    }
    char sql[96];
    snprintf(sql, sizeof(sql), "SET statement_timeout = %u", statement_timeout_ms);
    if (db_exec(c, sql, err, errlen) != DB_OK) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

static bool alive(PGconn *c)
{
    if (PQstatus(c) != CONNECTION_OK)
        return false;
    PGresult *r = PQexec(c, "");
    bool ok = PQresultStatus(r) == PGRES_EMPTY_QUERY;
    PQclear(r);
    return ok;
}

/* Called with the lock held and a slot reserved (open counted). */
static PGconn *open_new(struct db_pool *p, enum db_status *st, char *err, size_t errlen)
{
    pthread_mutex_unlock(&p->lock);
    PGconn *c = db_connect(p->conninfo, p->statement_timeout_ms, err, errlen);
    pthread_mutex_lock(&p->lock);
    if (c == NULL) {
        p->open--;
        pthread_cond_signal(&p->freed);
        *st = DB_UNAVAILABLE;
        return NULL;
    }
    p->connects++;
    return c;
}

PGconn *db_pool_acquire(struct db_pool *p, uint64_t deadline_ms, enum db_status *st, char *err, size_t errlen)
{
    PGconn *c = NULL;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->nidle > 0) {
            struct idle_conn ic = p->idle[--p->nidle];
            bool check = clock_monotonic_ms() - ic.since_ms > CHECK_IDLE_MS || PQstatus(ic.conn) != CONNECTION_OK;
            pthread_mutex_unlock(&p->lock);
            bool ok = !check || alive(ic.conn);
            pthread_mutex_lock(&p->lock);
            if (ok) {
                c = ic.conn;
                break;
            }
            /* Broken (a restarted server, a killed backend): replace it. */
            PQfinish(ic.conn);
            p->open--;
            p->discarded++;
            continue;
        }
        if (p->open < p->size + p->overflow) {
            p->open++;
            c = open_new(p, st, err, errlen);
            break;
        }
        uint64_t now = clock_monotonic_ms();
        if (now >= deadline_ms) {
            p->timeouts++;
            *st = DB_TIMEOUT;
            snprintf(err, errlen, "all %u database connections are busy", p->size + p->overflow);
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t wait = deadline_ms - now;
        ts.tv_sec += (time_t)(wait / 1000);
        ts.tv_nsec += (long)(wait % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        p->waiting++;
        pthread_cond_timedwait(&p->freed, &p->lock, &ts);
        p->waiting--;
    }
    pthread_mutex_unlock(&p->lock);
    if (c != NULL)
        *st = DB_OK;
    return c;
}

/*
 * Called with the lock held: closes the oldest idle connection when the pool
 * is above its size and that connection has not been used for a while.
 * Closing overflow connections lazily, not the moment they come back, keeps
 * a busy pool from reconnecting for every burst.
 */
static PGconn *take_stale_overflow(struct db_pool *p, uint64_t now)
{
    if (p->open <= p->size || p->nidle == 0 || now - p->idle[0].since_ms < OVERFLOW_IDLE_MS)
        return NULL;
    PGconn *c = p->idle[0].conn;
    memmove(p->idle, p->idle + 1, (p->nidle - 1) * sizeof(*p->idle));
    p->nidle--;
    p->open--;
    return c;
}

void db_pool_release(struct db_pool *p, PGconn *c)
{
    if (c == NULL)
        return;
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
        char err[256];
        db_exec(c, "ROLLBACK", err, sizeof(err));
    }
    bool broken = PQstatus(c) != CONNECTION_OK || PQtransactionStatus(c) != PQTRANS_IDLE;
    uint64_t now = clock_monotonic_ms();
    pthread_mutex_lock(&p->lock);
    PGconn *close_now = NULL;
    if (broken) {
        p->open--;
        p->discarded++;
        close_now = c;
    } else {
        p->idle[p->nidle].conn = c;
        p->idle[p->nidle].since_ms = now;
        p->nidle++;
    }
    PGconn *stale = take_stale_overflow(p, now);
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
    if (close_now != NULL)
        PQfinish(close_now);
    if (stale != NULL)
        PQfinish(stale);
}

void db_pool_stats(struct db_pool *p, struct db_pool_stats *out)
{
    pthread_mutex_lock(&p->lock);
    out->open = p->open;
    out->idle = p->nidle;
    out->in_use = p->open - p->nidle;
    out->waiting = p->waiting;
    out->timeouts = p->timeouts;
    out->connects = p->connects;
    out->discarded = p->discarded;
    pthread_mutex_unlock(&p->lock);
}
