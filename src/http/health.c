/*
 * Liveness and readiness: GET /ready (database reachable, schema current,
 * free disk, restore test fresh) and GET /api/v1/health/db (one database
 * round trip and its latency). Database work runs on the executor; the
 * loop only answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "db/backup.h"
#include "db/migrate.h"
#include "http/health.h"
#include "http/response.h"
#include "http/server.h"
#include "util.h"
#include "banned.h"

struct ready_data {
    struct server *srv;
    int schema_version;
    double latency_ms;
};

int http_send_db_error(h2o_req_t *req, const struct db_job *job)
{
    const char *code = job->status == DB_TIMEOUT ? "database_busy" : "database_unavailable";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    return http_send_error(req, 503, code, job->err[0] ? job->err : db_status_str(job->status), NULL);
}

/* Round-trip time measured with microsecond resolution. */
static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void ping_run(struct db_job *job, PGconn *c)
{
    struct ready_data *d = job->data;
    double t0 = now_us();
    PGresult *r = PQexec(c, "SELECT 1");
    job->status = db_check(c, r, job->err, sizeof(job->err));
    PQclear(r);
    d->latency_ms = (now_us() - t0) / 1000.0;
}

static void ping_done(struct db_job *job, h2o_req_t *req)
{
    struct ready_data *d = job->data;
    if (job->status != DB_OK) {
        http_send_db_error(req, job);
        return;
    }
    http_send_json(req, 200,
                   json_pack("{s:s, s:f, s:f}", "status", "ok", "latency_ms", d->latency_ms, "queue_ms",
                             (double)(job->started_ms - job->queued_ms)));
}

int health_get_db(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    (void)m;
    struct ready_data *d = xcalloc(1, sizeof(*d));
    d->srv = srv;
    executor_submit(srv->executor, server_db_loop(req), req, executor_job_new(ping_run, ping_done, d), NULL);
    return 0;
}

static void ready_run(struct db_job *job, PGconn *c)
{
    struct ready_data *d = job->data;
    double t0 = now_us();
    job->status = migrate_current_version(c, &d->schema_version, job->err, sizeof(job->err));
    d->latency_ms = (now_us() - t0) / 1000.0;
}

static json_t *disk_check(const struct config *cfg, json_t *reasons)
{
    struct statvfs vfs;
    if (statvfs(cfg->data_dir, &vfs) < 0) {
        json_array_append_new(reasons, json_string("cannot read the free space of the data directory"));
        return json_pack("{s:b}", "ok", 0);
    }
    unsigned long long free_mb = (unsigned long long)vfs.f_bavail * vfs.f_frsize / (1024 * 1024);
    bool ok = free_mb >= cfg->ready_min_free_mb;
    if (!ok) {
        char msg[160];
        snprintf(msg, sizeof(msg), "only %llu MB free in the data directory (at least %u MB needed)", free_mb,
                 cfg->ready_min_free_mb);
        json_array_append_new(reasons, json_string(msg));
    }
    return json_pack("{s:b, s:I, s:I}", "ok", ok, "free_mb", (json_int_t)free_mb, "min_free_mb",
                     (json_int_t)cfg->ready_min_free_mb);
}

static json_t *restore_check(const struct config *cfg, json_t *warnings)
{
    long long last = backup_last_restore_test(cfg);
    long long now = (long long)(clock_wall_ms() / 1000);
    long long max_age = (long long)cfg->restore_test_max_age_days * 86400;
    if (last <= 0) {
        json_array_append_new(warnings, json_string("no restore test has succeeded yet (run debate restore-test)"));
        return json_pack("{s:b, s:n}", "ok", 0, "last_success");
    }
    bool fresh = now - last <= max_age;
    if (!fresh) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the last successful restore test is %lld days old (more than %u)",
                 (now - last) / 86400, cfg->restore_test_max_age_days);
        json_array_append_new(warnings, json_string(msg));
    }
    return json_pack("{s:b, s:I, s:I}", "ok", fresh, "last_success", (json_int_t)last, "age_seconds",
                     (json_int_t)(now - last));
}

static void ready_done(struct db_job *job, h2o_req_t *req)
{
    struct ready_data *d = job->data;
    const struct config *cfg = d->srv->cfg;
    json_t *reasons = json_array(), *warnings = json_array();
    json_t *db;
    if (job->status != DB_OK) {
        char msg[600];
        snprintf(msg, sizeof(msg), "database: %s", job->err[0] ? job->err : db_status_str(job->status));
        json_array_append_new(reasons, json_string(msg));
        db = json_pack("{s:b, s:s}", "ok", 0, "error", job->err);
    } else {
        bool current = d->schema_version == migrate_latest_version();
        if (!current) {
            char msg[160];
            snprintf(msg, sizeof(msg), "database schema is at version %d, this debate needs %d", d->schema_version,
                     migrate_latest_version());
            json_array_append_new(reasons, json_string(msg));
        }
        db = json_pack("{s:b, s:i, s:i, s:f}", "ok", current, "schema_version", d->schema_version, "schema_expected",
                       migrate_latest_version(), "latency_ms", d->latency_ms);
    }
    /* In-process workers: none is a warning (builds queue up until a debate worker takes them), not unreadiness. */
    if (d->srv->service.nworkers == 0)
        json_array_append_new(warnings, json_string("workers: this server runs no build workers (workers = 0); "
                                                    "builds wait for a debate worker"));
    json_t *checks = json_pack("{s:o, s:o, s:o, s:{s:I}}", "database", db, "disk", disk_check(cfg, reasons),
                               "restore_test", restore_check(cfg, warnings), "workers", "in_process",
                               (json_int_t)d->srv->service.nworkers);
    bool ready = json_array_size(reasons) == 0;
    if (!ready)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("5"));
    http_send_json(req, ready ? 200 : 503,
                   json_pack("{s:s, s:o, s:o, s:o}", "status", ready ? "ready" : "not ready", "checks", checks,
                             "reasons", reasons, "warnings", warnings));
}

int health_get_ready(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    (void)m;
    struct ready_data *d = xcalloc(1, sizeof(*d));
    d->srv = srv;
    executor_submit(srv->executor, server_db_loop(req), req, executor_job_new(ready_run, ready_done, d), NULL);
    return 0;
}
