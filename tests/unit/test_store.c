#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/migrate.h"
#include "db/pool.h"
#include "db/store.h"
#include "dbtest.h"
#include "harness.h"

static const uint8_t token_a[32] = {1, 2, 3};
static const uint8_t token_b[32] = {9, 9, 9};

/* A 64-hex-digit key made of one repeated digit. */
static const char *key_of(char digit)
{
    static char keys[16][65];
    static int next;
    char *k = keys[next++ % 16];
    memset(k, digit, 64);
    k[64] = '\0';
    return k;
}

static enum db_status submit(PGconn *c, const char *key, struct build_record *out, bool *merged)
{
    struct build_new in = {.config_hash = key_of('c'),
                           .build_key = key,
                           .key_parts = "{\"recipe\":\"x\"}",
                           .recipe = "{\"name\":\"tiny\"}",
                           .lock = NULL,
                           .cancel_token_hash = token_a,
                           .max_attempts = 2,
                           .client = "127.0.0.1"};
    char msg[512];
    enum db_status st = store_build_submit(c, &in, out, merged, msg, sizeof(msg));
    if (st != DB_OK)
        harness_fail(__FILE__, __LINE__, "submit: %s %s", db_status_str(st), msg);
    return st;
}

static char err[512];

#define OK(call)                                                                                                       \
    do {                                                                                                               \
        enum db_status st_ = (call);                                                                                   \
        if (st_ != DB_OK)                                                                                              \
            harness_fail(__FILE__, __LINE__, "%s: %s %s", #call, db_status_str(st_), err);                             \
    } while (0)
#define E err, sizeof(err)

TEST(identical_submissions_in_flight_merge)
{
    PGconn *c = dbtest_open();
    struct build_record a, b;
    bool merged;
    submit(c, key_of('1'), &a, &merged);
    CHECK(!merged);
    CHECK_STR(a.status, "queued");
    CHECK_INT(a.attempts, 0);
    CHECK_INT(a.iso_size, -1);
    CHECK(a.created_at[0] != '\0');
    submit(c, key_of('1'), &b, &merged);
    CHECK(merged);
    CHECK_STR(b.id, a.id);
    /* Another key is another build. */
    struct build_record d;
    submit(c, key_of('2'), &d, &merged);
    CHECK(!merged);
    CHECK(strcmp(d.id, a.id) != 0);
    build_record_release(&a);
    build_record_release(&b);
    build_record_release(&d);
    dbtest_close(c);
}

TEST(claim_takes_the_oldest_and_skips_locked_rows)
{
    PGconn *c = dbtest_open();
    struct build_record first, second, got;
    bool merged;
    submit(c, key_of('1'), &first, &merged);
    submit(c, key_of('2'), &second, &merged);
    /* Worker A claims inside an open transaction, holding the row lock. */
    PGconn *a = dbtest_connect();
    dbtest_exec(a, "BEGIN");
    OK(store_build_claim(a, "worker-a", 30, &got, E));
    CHECK_STR(got.id, first.id);
    CHECK_STR(got.status, "running");
    CHECK_INT(got.attempts, 1);
    CHECK_STR(got.lease_owner, "worker-a");
    build_record_release(&got);
    /* Worker B is not blocked by it: it gets the next one. */
    OK(store_build_claim(c, "worker-b", 30, &got, E));
    CHECK_STR(got.id, second.id);
    build_record_release(&got);
    dbtest_exec(a, "COMMIT");
    CHECK_INT(store_build_claim(c, "worker-c", 30, &got, E), DB_NOT_FOUND);
    PQfinish(a);
    build_record_release(&first);
    build_record_release(&second);
    dbtest_close(c);
}

TEST(only_the_lease_holder_may_update_or_finish)
{
    PGconn *c = dbtest_open();
    struct build_record b, got;
    bool merged, cancel;
    submit(c, key_of('1'), &b, &merged);
    OK(store_build_claim(c, "worker-a", 30, &got, E));
    CHECK_INT(store_build_heartbeat(c, b.id, "worker-b", 30, &cancel, E), DB_LOST_LEASE);
    OK(store_build_heartbeat(c, b.id, "worker-a", 30, &cancel, E));
    CHECK(!cancel);
    OK(store_build_progress(c, b.id, "worker-a", "rootfs", 40, E));
    CHECK_INT(store_build_progress(c, b.id, "worker-b", "rootfs", 50, E), DB_LOST_LEASE);
    const char *first_kinds[] = {"log"}, *first_bodies[] = {"first line"};
    OK(store_events_append(c, b.id, "worker-a", first_kinds, first_bodies, 1, NULL, 0, E));
    /* The outcome carries the last lines: written with it, or not at all. */
    const char *kinds[] = {"log", "log"}, *bodies[] = {"last \"quoted\" line", "done \\ really"};
    struct build_result ok = {.status = "succeeded", .iso_sha256 = key_of('e'), .iso_size = 1234,
                              .event_kinds = kinds, .event_bodies = bodies, .nevents = 2};
    CHECK_INT(store_build_finish(c, b.id, "worker-b", &ok, E), DB_LOST_LEASE);
    /* An expired lease is no longer held, even before the sweep runs. */
    dbtest_exec(c, "UPDATE builds SET lease_expires_at = now() - interval '1 second'");
    CHECK_INT(store_build_finish(c, b.id, "worker-a", &ok, E), DB_LOST_LEASE);
    struct build_event *ev;
    size_t nev;
    OK(store_events_since(c, b.id, 0, 100, &ev, &nev, E));
    CHECK_INT((int)nev, 1);
    build_events_release(ev, nev);
    dbtest_exec(c, "UPDATE builds SET lease_expires_at = now() + interval '30 seconds'");
    OK(store_build_finish(c, b.id, "worker-a", &ok, E));
    OK(store_events_since(c, b.id, 0, 100, &ev, &nev, E));
    CHECK_INT((int)nev, 3);
    CHECK(ev[1].seq == ev[0].seq + 1 && ev[2].seq == ev[1].seq + 1);
    CHECK_STR(ev[0].body, "first line");
    CHECK_STR(ev[1].body, "last \"quoted\" line");
    CHECK_STR(ev[2].body, "done \\ really");
    build_events_release(ev, nev);
    build_record_release(&got);
    OK(store_build_get(c, b.id, &got, E));
    CHECK_STR(got.status, "succeeded");
    CHECK_STR(got.stage, "done");
    CHECK_INT(got.progress, 100);
    CHECK_INT(got.iso_size, 1234);
    CHECK(got.lease_owner == NULL);
    CHECK(got.finished_at[0] != '\0');
    /* Finishing twice is refused. */
    CHECK_INT(store_build_finish(c, b.id, "worker-a", &ok, E), DB_LOST_LEASE);
    build_record_release(&got);
    build_record_release(&b);
    dbtest_close(c);
}

TEST(cache_lookup_finds_the_newest_succeeded_build)
{
    PGconn *c = dbtest_open();
    struct build_record b, got;
    bool merged;
    CHECK_INT(store_build_find_cached(c, key_of('1'), false, &got, E), DB_NOT_FOUND);
    submit(c, key_of('1'), &b, &merged);
    CHECK_INT(store_build_find_cached(c, key_of('1'), false, &got, E), DB_NOT_FOUND); /* queued is not cached */
    OK(store_build_claim(c, "w", 30, &got, E));
    build_record_release(&got);
    struct build_result ok = {.status = "succeeded", .iso_sha256 = key_of('e'), .iso_size = 10};
    OK(store_build_finish(c, b.id, "w", &ok, E));
    OK(store_build_find_cached(c, key_of('1'), false, &got, E));
    CHECK_STR(got.id, b.id);
    CHECK_STR(got.iso_sha256, key_of('e'));
    build_record_release(&got);
    /* With the key free again, the same key queues a new build, not a merge. */
    struct build_record again;
    submit(c, key_of('1'), &again, &merged);
    CHECK(!merged);
    CHECK(strcmp(again.id, b.id) != 0);
    /* The previous build of the same recipe, for "what changed" on a miss. */
    OK(store_build_find_previous(c, again.config_hash, again.id, &got, E));
    CHECK_STR(got.id, b.id);
    build_record_release(&got);
    build_record_release(&again);
    build_record_release(&b);
    dbtest_close(c);
}

/*
 * A submission that asks for a boot check neither merges into the
 * identical build in flight that does not check, nor is answered by a
 * cached build whose check never ran; the verdict and console are kept.
 */
TEST(boot_checks_merge_and_hit_only_boot_checked_builds)
{
    PGconn *c = dbtest_open();
    struct build_record plain, checked, again, got;
    bool merged;
    submit(c, key_of('1'), &plain, &merged);
    struct build_new in = {.config_hash = key_of('c'), .build_key = key_of('1'), .key_parts = "{}",
                           .recipe = "{\"name\":\"tiny\"}", .cancel_token_hash = token_a, .max_attempts = 2,
                           .boot_check = true};
    OK(store_build_submit(c, &in, &checked, &merged, E));
    CHECK(!merged);
    CHECK(checked.boot_check);
    CHECK(strcmp(checked.id, plain.id) != 0);
    OK(store_build_submit(c, &in, &again, &merged, E));
    CHECK(merged);
    CHECK_STR(again.id, checked.id);
    CHECK_INT(store_build_find_active(c, key_of('1'), true, &got, E), DB_OK);
    CHECK_STR(got.id, checked.id);
    build_record_release(&got);
    /* The plain build finishes first: a hit for plain submissions only. */
    OK(store_build_claim(c, "w", 30, &got, E));
    CHECK_STR(got.id, plain.id);
    build_record_release(&got);
    struct build_result ok = {.status = "succeeded", .iso_sha256 = key_of('e'), .iso_size = 10};
    OK(store_build_finish(c, plain.id, "w", &ok, E));
    OK(store_build_find_cached(c, key_of('1'), false, &got, E));
    build_record_release(&got);
    CHECK_INT(store_build_find_cached(c, key_of('1'), true, &got, E), DB_NOT_FOUND);
    CHECK_INT(store_build_boot_log(c, plain.id, &(char *){NULL}, E), DB_NOT_FOUND);
    /* The checked one records its verdict and console. */
    OK(store_build_claim(c, "w", 30, &got, E));
    build_record_release(&got);
    struct build_result booted = {.status = "succeeded", .iso_sha256 = key_of('e'), .iso_size = 10,
                                  .boot_verdict = "{\"result\": \"fail\", \"bios\": \"fail\"}",
                                  .boot_log = "== bios: fail ==\nKernel panic\n"};
    OK(store_build_finish(c, checked.id, "w", &booted, E));
    OK(store_build_find_cached(c, key_of('1'), true, &got, E));
    CHECK_STR(got.id, checked.id);
    CHECK(strstr(got.boot_verdict, "\"result\": \"fail\"") != NULL);
    build_record_release(&got);
    char *log = NULL;
    OK(store_build_boot_log(c, checked.id, &log, E));
    CHECK_STR(log, "== bios: fail ==\nKernel panic\n");
    free(log);
    build_record_release(&plain);
    build_record_release(&checked);
    build_record_release(&again);
    dbtest_close(c);
}

TEST(sweep_requeues_expired_leases_then_fails_them)
{
    PGconn *c = dbtest_open();
    struct build_record b, got;
    bool merged;
    int requeued, failed;
    submit(c, key_of('1'), &b, &merged); /* max_attempts 2 */
    OK(store_build_claim(c, "dead-worker", 30, &got, E));
    build_record_release(&got);
    OK(store_build_sweep(c, &requeued, &failed, E));
    CHECK_INT(requeued + failed, 0); /* the lease still runs */
    dbtest_exec(c, "UPDATE builds SET lease_expires_at = now() - interval '1 second'");
    OK(store_build_sweep(c, &requeued, &failed, E));
    CHECK_INT(requeued, 1);
    CHECK_INT(failed, 0);
    OK(store_build_get(c, b.id, &got, E));
    CHECK_STR(got.status, "queued");
    CHECK_INT(got.attempts, 1);
    CHECK(got.lease_owner == NULL);
    build_record_release(&got);
    OK(store_build_claim(c, "dead-again", 30, &got, E));
    CHECK_INT(got.attempts, 2);
    build_record_release(&got);
    dbtest_exec(c, "UPDATE builds SET lease_expires_at = now() - interval '1 second'");
    OK(store_build_sweep(c, &requeued, &failed, E));
    CHECK_INT(requeued, 0);
    CHECK_INT(failed, 1);
    OK(store_build_get(c, b.id, &got, E));
    CHECK_STR(got.status, "failed");
    CHECK_STR(got.error_code, "attempts_exhausted");
    CHECK(strstr(got.error_message, "2 times") != NULL);
    build_record_release(&got);
    build_record_release(&b);
    dbtest_close(c);
}

TEST(cancel_needs_the_token)
{
    PGconn *c = dbtest_open();
    struct build_record q, r, got;
    bool merged, cancel;
    submit(c, key_of('1'), &q, &merged);
    submit(c, key_of('2'), &r, &merged);
    CHECK_INT(store_build_cancel(c, q.id, token_b, &got, E), DB_NOT_FOUND);
    CHECK_INT(store_build_cancel(c, "not-a-uuid", token_a, &got, E), DB_NOT_FOUND);
    CHECK_INT(store_build_cancel(c, "00000000-0000-0000-0000-000000000000", token_a, &got, E), DB_NOT_FOUND);
    /* Queued: cancelled at once. */
    OK(store_build_cancel(c, q.id, token_a, &got, E));
    CHECK_STR(got.status, "cancelled");
    build_record_release(&got);
    /* Running: the worker is told at its next heartbeat. */
    OK(store_build_claim(c, "w", 30, &got, E));
    CHECK_STR(got.id, r.id);
    build_record_release(&got);
    OK(store_build_cancel(c, r.id, token_a, &got, E));
    CHECK_STR(got.status, "running");
    CHECK(got.cancel_requested);
    build_record_release(&got);
    OK(store_build_heartbeat(c, r.id, "w", 30, &cancel, E));
    CHECK(cancel);
    struct build_result cancelled = {.status = "cancelled", .error_code = "cancelled", .error_message = "by user"};
    OK(store_build_finish(c, r.id, "w", &cancelled, E));
    /* Ended: a conflict that says how it ended. */
    CHECK_INT(store_build_cancel(c, r.id, token_a, &got, E), DB_CONFLICT);
    CHECK_STR(got.status, "cancelled");
    build_record_release(&got);
    build_record_release(&q);
    build_record_release(&r);
    dbtest_close(c);
}

TEST(list_pages_newest_first_with_a_cursor)
{
    PGconn *c = dbtest_open();
    char ids[5][37];
    for (int i = 0; i < 5; i++) {
        struct build_record b;
        bool merged;
        submit(c, key_of((char)('1' + i)), &b, &merged);
        memcpy(ids[i], b.id, 37);
        build_record_release(&b);
    }
    struct build_record *rows;
    size_t n;
    char *cursor;
    OK(store_build_list(c, NULL, NULL, 2, &rows, &n, &cursor, E));
    CHECK_INT(n, 2);
    CHECK_STR(rows[0].id, ids[4]);
    CHECK_STR(rows[1].id, ids[3]);
    CHECK(cursor != NULL);
    for (size_t i = 0; i < n; i++)
        build_record_release(&rows[i]);
    free(rows);
    char *cursor2;
    OK(store_build_list(c, NULL, cursor, 2, &rows, &n, &cursor2, E));
    CHECK_INT(n, 2);
    CHECK_STR(rows[0].id, ids[2]);
    CHECK_STR(rows[1].id, ids[1]);
    for (size_t i = 0; i < n; i++)
        build_record_release(&rows[i]);
    free(rows);
    free(cursor);
    char *cursor3;
    OK(store_build_list(c, NULL, cursor2, 2, &rows, &n, &cursor3, E));
    CHECK_INT(n, 1);
    CHECK_STR(rows[0].id, ids[0]);
    CHECK(cursor3 == NULL);
    build_record_release(&rows[0]);
    free(rows);
    free(cursor2);
    /* Filter by status. */
    struct build_record got;
    OK(store_build_claim(c, "w", 30, &got, E));
    build_record_release(&got);
    OK(store_build_list(c, "running", NULL, 10, &rows, &n, &cursor, E));
    CHECK_INT(n, 1);
    CHECK_STR(rows[0].id, ids[0]);
    build_record_release(&rows[0]);
    free(rows);
    CHECK_INT(store_build_list(c, "bogus", NULL, 10, &rows, &n, &cursor, E), DB_CONFLICT);
    CHECK_INT(store_build_list(c, NULL, "garbage", 10, &rows, &n, &cursor, E), DB_CONFLICT);
    CHECK_INT(store_build_list(c, NULL, "2026-01-01T00:00:00Z_'; DROP TABLE builds; --", 10, &rows, &n, &cursor, E),
              DB_CONFLICT);
    dbtest_close(c);
}

TEST(queue_position_counts_from_one)
{
    PGconn *c = dbtest_open();
    struct build_record a, b, got;
    bool merged;
    int pos;
    submit(c, key_of('1'), &a, &merged);
    submit(c, key_of('2'), &b, &merged);
    OK(store_queue_position(c, a.id, &pos, E));
    CHECK_INT(pos, 1);
    OK(store_queue_position(c, b.id, &pos, E));
    CHECK_INT(pos, 2);
    OK(store_build_claim(c, "w", 30, &got, E));
    build_record_release(&got);
    OK(store_queue_position(c, a.id, &pos, E));
    CHECK_INT(pos, 0);
    OK(store_queue_position(c, b.id, &pos, E));
    CHECK_INT(pos, 1);
    CHECK_INT(store_queue_position(c, "nope", &pos, E), DB_NOT_FOUND);
    build_record_release(&a);
    build_record_release(&b);
    dbtest_close(c);
}

TEST(migrations_are_idempotent_and_refuse_a_newer_schema)
{
    PGconn *c = dbtest_open();
    int applied = -1, version = 0;
    OK(migrate_run(c, &applied, E));
    CHECK_INT(applied, 0);
    OK(migrate_current_version(c, &version, E));
    CHECK_INT(version, migrate_latest_version());
    dbtest_exec(c, "INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')");
    CHECK_INT(migrate_run(c, &applied, E), DB_CONFLICT);
    CHECK(strstr(err, "newer than this debate knows") != NULL);
    dbtest_close(c);
}

/* How many statements connection c has prepared whose text starts with prefix. */
static int prepared_count(PGconn *c, const char *prefix)
{
    const char *p[] = {prefix};
    PGresult *r = PQexecParams(c, "SELECT count(*) FROM pg_prepared_statements WHERE starts_with(statement, $1)", 1,
                               NULL, p, NULL, NULL, 0);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
    int n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

TEST(statements_are_prepared_once_per_connection_and_forgotten_with_it)
{
    PGconn *c = dbtest_open();
    struct build_record a, b, got;
    bool merged;
    submit(c, key_of('1'), &a, &merged);
    submit(c, key_of('2'), &b, &merged);
    CHECK_INT(prepared_count(c, "INSERT INTO builds"), 1);
    OK(store_build_get(c, a.id, &got, E));
    CHECK_STR(got.id, a.id);
    build_record_release(&got);
    OK(store_build_get(c, b.id, &got, E));
    CHECK_STR(got.id, b.id);
    build_record_release(&got);
    int before = prepared_count(c, "");
    /* A statement that fails is not kept: its error is the caller's, as with a one-shot statement. */
    PGresult *r = db_exec_params(c, "SELECT no_such_column FROM builds", 0, NULL);
    CHECK_INT(db_check(c, r, E), DB_QUERY_ERROR);
    CHECK(strstr(err, "no_such_column") != NULL);
    PQclear(r);
    CHECK_INT(prepared_count(c, ""), before);
    /* A reset connection has no statements on the server: they are prepared again. */
    PQreset(c);
    CHECK(PQstatus(c) == CONNECTION_OK);
    CHECK_INT(prepared_count(c, ""), 0);
    OK(store_build_get(c, a.id, &got, E));
    CHECK_STR(got.id, a.id);
    build_record_release(&got);
    CHECK_INT(prepared_count(c, ""), 1);
    /* A connection not made by db_connect runs statements one-shot. */
    PQconninfoOption *opts = PQconninfo(c);
    const char *keys[64], *vals[64];
    size_t k = 0;
    for (PQconninfoOption *o = opts; o->keyword != NULL && k < 63; o++)
        if (o->val != NULL && o->val[0] != '\0') {
            keys[k] = o->keyword;
            vals[k++] = o->val;
        }
    keys[k] = vals[k] = NULL;
    PGconn *raw = PQconnectdbParams(keys, vals, 0);
    PQconninfoFree(opts);
    CHECK(PQstatus(raw) == CONNECTION_OK);
    OK(store_build_get(raw, b.id, &got, E));
    CHECK_STR(got.id, b.id);
    build_record_release(&got);
    CHECK_INT(prepared_count(raw, ""), 0);
    PQfinish(raw);
    build_record_release(&a);
    build_record_release(&b);
    dbtest_close(c);
}

static const struct builder_id ident_a = {.arch = "amd64", .builder = "debate 0.1.0",
                                          .tools = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
static const struct builder_id ident_b = {.arch = "amd64", .builder = "debate 0.1.0",
                                          .tools = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"};

/* A build for the workers of identity id (NULL: any worker). */
static void submit_for(PGconn *c, const char *key, const struct builder_id *id, struct build_record *out)
{
    struct build_new in = {.config_hash = key_of('c'), .build_key = key, .key_parts = "{}",
                           .recipe = "{\"name\":\"tiny\"}", .cancel_token_hash = token_a, .max_attempts = 2,
                           .identity = id};
    bool merged;
    OK(store_build_submit(c, &in, out, &merged, E));
    CHECK(!merged);
}

static void claim_as(PGconn *c, const char *worker, const struct builder_id *id, struct build_record *out)
{
    struct claim_filter f = {.identity = id, .live_s = 90};
    OK(store_build_claim_for(c, worker, 30, &f, out, E));
}

TEST(a_worker_claims_only_builds_of_its_identity)
{
    PGconn *c = dbtest_open();
    struct build_record for_a, for_b, for_any, got;
    submit_for(c, key_of('1'), &ident_b, &for_b);
    submit_for(c, key_of('2'), &ident_a, &for_a);
    submit_for(c, key_of('3'), NULL, &for_any);
    /* A skips the older build of B's identity; it takes its own, then one for anyone. */
    claim_as(c, "worker-a", &ident_a, &got);
    CHECK_STR(got.id, for_a.id);
    build_record_release(&got);
    claim_as(c, "worker-a", &ident_a, &got);
    CHECK_STR(got.id, for_any.id);
    build_record_release(&got);
    struct claim_filter fa = {.identity = &ident_a, .live_s = 90};
    CHECK_INT(store_build_claim_for(c, "worker-a", 30, &fa, &got, E), DB_NOT_FOUND);
    claim_as(c, "worker-b", &ident_b, &got);
    CHECK_STR(got.id, for_b.id);
    CHECK_STR(got.arch, "amd64");
    build_record_release(&got);
    build_record_release(&for_a);
    build_record_release(&for_b);
    build_record_release(&for_any);
    dbtest_close(c);
}

TEST(a_build_no_live_worker_can_take_says_why_and_keys_follow_the_live_workers)
{
    PGconn *c = dbtest_open();
    struct builder_id picked;
    /* no worker at all: this host's identity, and the build says it waits for a worker */
    OK(store_builder_pick(c, "amd64", &ident_a, 90, &picked, E));
    CHECK_STR(picked.tools, ident_a.tools);
    struct build_record b;
    submit_for(c, key_of('1'), &ident_a, &b);
    char *why = NULL;
    OK(store_build_waiting(c, &b, 90, &why, E));
    CHECK(why != NULL && strstr(why, "no worker is running") != NULL && strstr(why, "tools aaaaaaaaaaaa") != NULL);
    free(why);
    /* a live worker of another identity: new builds get its identity; this one still waits, and says why */
    OK(store_worker_seen(c, "host-b:1:0", &ident_b, E));
    OK(store_builder_pick(c, "amd64", &ident_a, 90, &picked, E));
    CHECK_STR(picked.tools, ident_b.tools);
    OK(store_build_waiting(c, &b, 90, &why, E));
    CHECK(why != NULL && strstr(why, "no live worker has the identity it was keyed for") != NULL);
    CHECK(strstr(why, "tools aaaaaaaaaaaa") != NULL && strstr(why, "tools bbbbbbbbbbbb") != NULL);
    free(why);
    /* a live worker of another debate version is never picked: it may not read this one's recipes */
    struct builder_id older = ident_b;
    snprintf(older.builder, sizeof(older.builder), "debate 0.0.9");
    OK(store_worker_gone(c, "host-b:1:0", E));
    OK(store_worker_seen(c, "host-c:1:0", &older, E));
    OK(store_builder_pick(c, "amd64", &ident_a, 90, &picked, E));
    CHECK_STR(picked.tools, ident_a.tools);
    OK(store_worker_gone(c, "host-c:1:0", E));
    OK(store_worker_seen(c, "host-b:1:0", &ident_b, E));
    /* a worker of this host's identity too: this host's wins; the build no longer waits for want of one */
    OK(store_worker_seen(c, "host-a:1:0", &ident_a, E));
    OK(store_builder_pick(c, "amd64", &ident_a, 90, &picked, E));
    CHECK_STR(picked.tools, ident_a.tools);
    OK(store_build_waiting(c, &b, 90, &why, E));
    CHECK(why == NULL);
    /* a worker not seen for longer than live_s is not live; one that stopped is gone */
    dbtest_exec(c, "UPDATE workers SET seen_at = now() - interval '5 minutes' WHERE name = 'host-a:1:0'");
    OK(store_builder_pick(c, "amd64", &ident_a, 90, &picked, E));
    CHECK_STR(picked.tools, ident_b.tools);
    OK(store_worker_gone(c, "host-b:1:0", E));
    OK(store_builder_pick(c, "amd64", &ident_a, 90, &picked, E));
    CHECK_STR(picked.tools, ident_a.tools);
    /* a worker that died without saying so is forgotten once it is old enough, and only then */
    int forgotten = -1;
    OK(store_workers_forget(c, 3600, &forgotten, E));
    CHECK_INT(forgotten, 0);
    dbtest_exec(c, "UPDATE workers SET seen_at = now() - interval '2 hours' WHERE name = 'host-a:1:0'");
    OK(store_workers_forget(c, 3600, &forgotten, E));
    CHECK_INT(forgotten, 1);
    build_record_release(&b);
    dbtest_close(c);
}

/* A build of identity a, made by worker-1: succeeded with sha 'e'. */
static void built(PGconn *c, struct build_record *out)
{
    struct build_record got;
    submit_for(c, key_of('1'), &ident_a, out);
    claim_as(c, "worker-1", &ident_a, &got);
    struct build_result ok = {.status = "succeeded", .iso_sha256 = key_of('e'), .iso_size = 1234};
    OK(store_build_finish(c, got.id, "worker-1", &ok, E));
    build_record_release(&got);
}

TEST(a_rebuild_verifies_a_build_on_another_worker_and_records_the_verdict)
{
    PGconn *c = dbtest_open();
    struct build_record b, v, again, got;
    built(c, &b);
    bool existing;
    /* what cannot be verified */
    CHECK_INT(store_build_verify(c, "6f1c1f8e-2f7e-4b55-9d7e-0b8a3f0d9c11", "{}", token_b, 2, "10.0.0.9", &v, &existing, E),
              DB_NOT_FOUND);
    struct build_record queued;
    submit_for(c, key_of('2'), &ident_a, &queued);
    CHECK_INT(store_build_verify(c, queued.id, "{}", token_b, 2, "10.0.0.9", &v, &existing, E), DB_CONFLICT);
    OK(store_build_verify(c, b.id, "{\"format\": 1}", token_b, 2, "10.0.0.9", &v, &existing, E));
    CHECK(!existing);
    { /* the rebuild is recorded as asked for by who asked, not by the build's submitter */
        const char *id[] = {v.id};
        PGresult *r = PQexecParams(c, "SELECT client FROM builds WHERE id = $1::uuid", 1, NULL, id, NULL, NULL, 0);
        CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1);
        CHECK_STR(PQgetvalue(r, 0, 0), "10.0.0.9");
        PQclear(r);
    }
    CHECK_STR(v.verify_of, b.id);
    CHECK_STR(v.build_key, b.build_key);
    CHECK_STR(v.status, "queued");
    CHECK(v.lock != NULL && strstr(v.lock, "format") != NULL);
    /* asked again while it is in flight: the same rebuild */
    OK(store_build_verify(c, b.id, "{}", token_b, 2, "10.0.0.9", &again, &existing, E));
    CHECK(existing);
    CHECK_STR(again.id, v.id);
    build_record_release(&again);
    OK(store_build_get(c, b.id, &got, E));
    CHECK_STR(got.built_by, "worker-1");
    CHECK(got.verifying);
    build_record_release(&got);
    /* the rebuild is no cache hit and no merge target */
    OK(store_build_find_cached(c, b.build_key, false, &got, E));
    CHECK_STR(got.id, b.id);
    build_record_release(&got);
    CHECK_INT(store_build_find_active(c, b.build_key, false, &got, E), DB_NOT_FOUND);
    /* worker-1 made the build: while worker-2 of the same identity is live, it leaves the rebuild to it */
    OK(store_worker_seen(c, "worker-1", &ident_a, E));
    OK(store_worker_seen(c, "worker-2", &ident_a, E));
    claim_as(c, "worker-1", &ident_a, &got); /* the queued build of key 2, not the rebuild */
    CHECK_STR(got.id, queued.id);
    build_record_release(&got);
    struct claim_filter f = {.identity = &ident_a, .live_s = 90};
    CHECK_INT(store_build_claim_for(c, "worker-1", 30, &f, &got, E), DB_NOT_FOUND);
    claim_as(c, "worker-2", &ident_a, &got);
    CHECK_STR(got.id, v.id);
    build_record_release(&got);
    struct build_result same = {.status = "succeeded", .iso_sha256 = key_of('e'), .iso_size = 1234};
    OK(store_build_finish(c, v.id, "worker-2", &same, E));
    OK(store_build_get(c, b.id, &got, E));
    CHECK(!got.verifying);
    CHECK(got.verification != NULL);
    CHECK(strstr(got.verification, "\"result\": \"match\"") != NULL);
    CHECK(strstr(got.verification, "\"worker\": \"worker-2\"") != NULL);
    CHECK(strstr(got.verification, v.id) != NULL);
    build_record_release(&got);
    build_record_release(&v);
    /* a second rebuild that gives other bytes: the verdict says so */
    OK(store_build_verify(c, b.id, "{}", token_b, 2, "10.0.0.9", &v, &existing, E));
    CHECK(!existing);
    claim_as(c, "worker-2", &ident_a, &got);
    build_record_release(&got);
    struct build_result other = {.status = "succeeded", .iso_sha256 = key_of('f'), .iso_size = 1234};
    OK(store_build_finish(c, v.id, "worker-2", &other, E));
    OK(store_build_get(c, b.id, &got, E));
    CHECK(strstr(got.verification, "\"result\": \"differs\"") != NULL);
    build_record_release(&got);
    build_record_release(&v);
    /* with no other live worker, the one that made the build takes the rebuild itself */
    OK(store_worker_gone(c, "worker-2", E));
    OK(store_build_verify(c, b.id, "{}", token_b, 2, "10.0.0.9", &v, &existing, E));
    claim_as(c, "worker-1", &ident_a, &got);
    CHECK_STR(got.id, v.id);
    build_record_release(&got);
    /* a rebuild that fails: the verdict is its failure, not a difference */
    struct build_result failed = {.status = "failed", .error_code = "build_failed", .error_message = "no space"};
    OK(store_build_finish(c, v.id, "worker-1", &failed, E));
    OK(store_build_get(c, b.id, &got, E));
    CHECK(strstr(got.verification, "\"result\": \"failed\"") != NULL);
    CHECK(strstr(got.verification, "no space") != NULL);
    /* a rebuild cannot itself be verified */
    CHECK_INT(store_build_verify(c, v.id, "{}", token_b, 2, "10.0.0.9", &again, &existing, E), DB_CONFLICT);
    build_record_release(&got);
    build_record_release(&v);
    build_record_release(&queued);
    build_record_release(&b);
    dbtest_close(c);
}

/*
 * A build whose identity no live worker has (its workers were upgraded,
 * or stopped for good) is taken, after a while, by a worker of another
 * identity, which keys it for its own; a rebuild is not: it fails after
 * ten minutes, and its build gets that verdict.
 */
TEST(a_build_whose_identity_is_gone_is_taken_over_and_keyed_again)
{
    PGconn *c = dbtest_open();
    struct build_record orphan, got;
    submit_for(c, key_of('1'), &ident_b, &orphan);
    OK(store_worker_seen(c, "worker-a", &ident_a, E));
    struct claim_filter f = {.identity = &ident_a, .live_s = 90};
    /* not at once: a worker of its identity may be restarting */
    CHECK_INT(store_build_claim_for(c, "worker-a", 30, &f, &got, E), DB_NOT_FOUND);
    dbtest_exec(c, "UPDATE builds SET updated_at = now() - interval '1 minute'");
    /* not while a worker of its identity is live */
    OK(store_worker_seen(c, "worker-b", &ident_b, E));
    CHECK_INT(store_build_claim_for(c, "worker-a", 30, &f, &got, E), DB_NOT_FOUND);
    OK(store_worker_gone(c, "worker-b", E));
    OK(store_build_claim_for(c, "worker-a", 30, &f, &got, E));
    CHECK_STR(got.id, orphan.id);
    OK(store_build_rekey(c, got.id, "worker-a", &ident_a, "{\"tools\": \"a\"}", key_of('9'), E));
    build_record_release(&got);
    OK(store_build_get(c, orphan.id, &got, E));
    CHECK_STR(got.build_key, key_of('9'));
    CHECK(strstr(got.key_parts, "\"a\"") != NULL);
    build_record_release(&got);
    /* keyed again into a key in flight: refused, and the build goes back to the queue */
    struct build_record second, third;
    submit_for(c, key_of('2'), &ident_b, &second);
    submit_for(c, key_of('3'), &ident_a, &third);
    dbtest_exec(c, "UPDATE builds SET updated_at = now() - interval '1 minute'");
    OK(store_build_claim_for(c, "worker-a", 30, &f, &got, E));
    CHECK_STR(got.id, second.id);
    CHECK_INT(store_build_rekey(c, got.id, "worker-a", &ident_a, "{}", key_of('3'), E), DB_CONFLICT);
    OK(store_build_release(c, got.id, "worker-a", E));
    build_record_release(&got);
    /* given back, it is not taken over again at once (no worker spins on it) */
    OK(store_build_claim_for(c, "worker-a", 30, &f, &got, E));
    CHECK_STR(got.id, third.id);
    build_record_release(&got);
    CHECK_INT(store_build_claim_for(c, "worker-a", 30, &f, &got, E), DB_NOT_FOUND);
    /* a rebuild of a build of identity b, with no b worker: never taken over; failed after ten minutes */
    struct build_record b, v;
    built(c, &b); /* identity a, by worker-1 */
    bool existing;
    dbtest_exec(c, "UPDATE builds SET arch = 'amd64', builder = 'debate 0.1.0', tools = repeat('b', 64) "
                   "WHERE status = 'succeeded'");
    OK(store_build_verify(c, b.id, "{}", token_b, 2, "10.0.0.9", &v, &existing, E));
    dbtest_exec(c, "UPDATE builds SET updated_at = now() - interval '1 minute' WHERE verify_of IS NOT NULL");
    CHECK_INT(store_build_claim_for(c, "worker-a", 30, &f, &got, E), DB_NOT_FOUND);
    char *why = NULL;
    OK(store_build_waiting(c, &v, 90, &why, E));
    CHECK(why != NULL && strstr(why, "no live worker can rebuild it") != NULL);
    free(why);
    int failed = -1;
    OK(store_build_sweep_rebuilds(c, 90, 600, &failed, E));
    CHECK_INT(failed, 0);
    dbtest_exec(c, "UPDATE builds SET created_at = now() - interval '11 minutes' WHERE verify_of IS NOT NULL");
    OK(store_build_sweep_rebuilds(c, 90, 600, &failed, E));
    CHECK_INT(failed, 1);
    OK(store_build_get(c, b.id, &got, E));
    CHECK(!got.verifying);
    CHECK(got.verification != NULL && strstr(got.verification, "\"result\": \"failed\"") != NULL);
    CHECK(strstr(got.verification, "no live worker has the identity") != NULL);
    build_record_release(&got);
    build_record_release(&v);
    build_record_release(&b);
    build_record_release(&orphan);
    build_record_release(&second);
    build_record_release(&third);
    dbtest_close(c);
}
