/*
 * The build API (docs/api.md): submit, list, show, log (plain and SSE),
 * ISO, manifest, cancel, verify (an independent rebuild). Every handler parses and validates on the loop
 * thread, does its database work (and artifact file checks) as one job on
 * the executor, and answers from the job's completion on the loop thread.
 *
 * What a submission means (the cache key, hit, merge, a full queue) is the
 * service's (service/submit.h): this file maps its causes to status codes.
 * The ISO goes out through http/files.c, the live log through http/sse.c.
 */
#include "http/builds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <unistd.h>

#include "db/store.h"
#include "http/files.h"
#include "http/health.h"
#include "http/policy.h"
#include "http/query.h"
#include "http/response.h"
#include "http/server.h"
#include "http/sse.h"
#include "service/artifacts.h"
#include "service/finished.h"
#include "service/submit.h"
#include "util.h"
#include "banned.h"

#define SSE_POLL_MS 500
#define SSE_KEEPALIVE_MS 15000
#define SSE_BATCH 500

static json_t *str_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

/* What the boot check says: what was asked, the verdict and where its console is, once it ran. */
static void add_boot_check(json_t *doc, const struct build_record *b, const char *base)
{
    json_error_t je;
    json_t *verdict = b->boot_verdict ? json_loads(b->boot_verdict, 0, &je) : NULL;
    json_object_set_new(doc, "boot_check", json_boolean(b->boot_check));
    json_object_set_new(doc, "boot_verdict", verdict ? verdict : json_null());
    json_object_set_new(doc, "boot_log_url", verdict ? json_sprintf("%s/boot-log", base) : json_null());
}

/* Who built it, and what an independent rebuild said (or that one is under way). */
static void add_verification(json_t *doc, const struct build_record *b, const char *base)
{
    json_error_t je;
    json_t *verdict = b->verification ? json_loads(b->verification, 0, &je) : NULL;
    bool verifiable = strcmp(b->status, "succeeded") == 0 && b->verify_of[0] == '\0';
    json_object_set_new(doc, "built_by", str_or_null(b->built_by));
    json_object_set_new(doc, "verify_of", str_or_null(b->verify_of));
    json_object_set_new(doc, "verifying", json_boolean(b->verifying));
    json_object_set_new(doc, "verification", verdict ? verdict : json_null());
    json_object_set_new(doc, "verify_url", verifiable ? json_sprintf("%s/verify", base) : json_null());
    json_object_set_new(doc, "waiting", json_null());
}

/* The build object of docs/api.md. */
static json_t *build_json(const struct build_record *b, int queue_position)
{
    json_error_t je;
    json_t *key = b->key_parts ? json_loads(b->key_parts, 0, &je) : NULL;
    bool ok = strcmp(b->status, "succeeded") == 0;
    _cleanup_free_ char *base = xasprintf("/api/v1/builds/%s", b->id);
    _cleanup_free_ char *iso = xasprintf("%s/iso", base), *manifest = xasprintf("%s/manifest", base),
                        *log = xasprintf("%s/log", base);
    json_t *error = json_null();
    if (b->error_code != NULL)
        error = json_pack("{s:s, s:s}", "code", b->error_code, "message", b->error_message ? b->error_message : "");
    json_t *doc = json_pack("{s:s, s:s, s:s, s:i, s:o, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:o, s:i, s:i, s:s, "
                     "s:o, s:o}",
                     "id", b->id, "status", b->status, "stage", b->stage, "progress", b->progress, "queue_position",
                     queue_position > 0 ? json_integer(queue_position) : json_null(), "config_hash", b->config_hash,
                     "build_key", b->build_key, "key", key ? key : json_object(), "lock_hash",
                     str_or_null(b->lock_hash), "iso_sha256", str_or_null(b->iso_sha256), "iso_size",
                     b->iso_size >= 0 ? json_integer(b->iso_size) : json_null(), "iso_url",
                     ok ? json_string(iso) : json_null(), "manifest_url", ok ? json_string(manifest) : json_null(),
                     "log_url", log, "error", error, "attempts", b->attempts, "max_attempts", b->max_attempts,
                     "created_at", b->created_at, "started_at", str_or_null(b->started_at), "finished_at",
                     str_or_null(b->finished_at));
    add_boot_check(doc, b, base);
    add_verification(doc, b, base);
    return doc;
}

static int send_db_error(h2o_req_t *req, const struct db_job *job)
{
    if (job->status == DB_NOT_FOUND)
        return http_send_error(req, 404, "not_found", "no build with this id", NULL);
    return http_send_db_error(req, job);
}

/* Queues the database part of a request; release frees data whether or not done ran. */
/* A database job for req; guard: NULL, or the request's own for a request that runs many (an event stream). */
static void submit_guarded(struct server *srv, h2o_req_t *req, struct db_job_guard *guard, db_job_run_cb run,
                           db_job_done_cb done, void *data, void (*release)(void *))
{
    struct db_job *job = executor_job_new(run, done, data);
    job->release = release;
    executor_submit(srv->executor, server_db_loop(req), req, job, guard);
}

static void submit_job(struct server *srv, h2o_req_t *req, db_job_run_cb run, db_job_done_cb done, void *data,
                       void (*release)(void *))
{
    submit_guarded(srv, req, NULL, run, done, data, release);
}

/* The {id} of the route, as a C string (an over-long one cannot be an id). */
static void route_id(const struct route_match *m, char id[37])
{
    size_t n = m->nparams > 0 ? m->params[0].len : 0;
    if (n > 36)
        n = 0;
    memcpy(id, m->params[0].base, n);
    id[n] = '\0';
}

/* ---- POST /api/v1/builds ---------------------------------------------------------------- */

/* The service's causes as HTTP answers. */
static int submit_status(enum submit_error e)
{
    switch (e) {
    case SUBMIT_INVALID_JSON:
    case SUBMIT_INVALID_REQUEST:
    case SUBMIT_INVALID_RECIPE:
    case SUBMIT_INVALID_LOCK:
        return 400;
    case SUBMIT_QUEUE_FULL:
    case SUBMIT_DATABASE:
        return 503;
    case SUBMIT_OK:
        break;
    }
    return 500;
}

struct submit_req {
    struct server *srv;
    struct submission sub;
    struct submit_result res;
    enum submit_error error;
};

static void submit_req_free(void *p)
{
    struct submit_req *s = p;
    submission_release(&s->sub);
    submit_result_release(&s->res);
    free(s);
}

static void submit_run(struct db_job *job, PGconn *c)
{
    struct submit_req *s = job->data;
    s->error = submission_store(&s->srv->service, &s->sub, c, &s->res, job->err, sizeof(job->err));
    job->status = s->error == SUBMIT_DATABASE ? s->res.db : DB_OK;
}

static void send_queue_full(struct server *srv, h2o_req_t *req)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("60"));
    char msg[128];
    snprintf(msg, sizeof(msg), "the queue holds %u builds already; try again later", srv->cfg->queue_max);
    http_send_error(req, submit_status(SUBMIT_QUEUE_FULL), submit_error_code(SUBMIT_QUEUE_FULL), msg, NULL);
}

static void submit_done(struct db_job *job, h2o_req_t *req)
{
    struct submit_req *s = job->data;
    const struct submit_result *r = &s->res;
    if (job->status != DB_OK) {
        send_db_error(req, job);
    } else if (s->error == SUBMIT_QUEUE_FULL) {
        send_queue_full(s->srv, req);
    } else if (r->outcome == SUBMIT_HIT) {
        http_send_json(req, 200, json_pack("{s:o, s:s, s:b}", "build", build_json(&r->rec, 0), "cache", "hit",
                                           "merged", 0));
    } else {
        _cleanup_free_ char *location = xasprintf("/api/v1/builds/%s", r->rec.id);
        http_add_header(req, "location", location, strlen(location));
        bool merged = r->outcome == SUBMIT_MERGED;
        json_t *doc = json_pack("{s:o, s:s, s:b, s:O}", "build", build_json(&r->rec, r->queue_position), "cache",
                                "miss", "merged", merged, "differs", r->differs ? r->differs : json_array());
        if (!merged)
            json_object_set_new(doc, "cancel_token", json_string(s->sub.cancel_token));
        if (r->lock_changes != NULL)
            json_object_set(doc, "lock_changes", r->lock_changes);
        http_send_json(req, 202, doc);
    }
}

/* Checks the submission limit of this client; answers 429 when over. */
static bool over_submit_limit(struct server *srv, h2o_req_t *req, const struct ratelimit_key *key)
{
    struct ratelimit_result rr;
    ratelimit_check(srv->submit_limit, key, clock_monotonic_ms(), &rr);
    if (rr.allowed)
        return false;
    char buf[32], msg[160];
    snprintf(buf, sizeof(buf), "%u", ratelimit_seconds(rr.retry_ms));
    http_add_header(req, "retry-after", buf, strlen(buf));
    snprintf(msg, sizeof(msg), "more than %u submissions in %u seconds; retry in %u seconds", srv->cfg->submit_limit,
             srv->cfg->submit_window, ratelimit_seconds(rr.retry_ms));
    http_send_error(req, 429, "submission_limit", msg, NULL);
    return true;
}

/* Validates on the loop thread (bad input never reaches the database), then one database job. */
int builds_post(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    (void)m;
    struct submit_req *s = xcalloc(1, sizeof(*s));
    s->srv = srv;
    struct submit_problem p;
    s->error = submission_parse(&srv->service, req->entity.base, req->entity.len, &s->sub, &p);
    if (s->error != SUBMIT_OK) {
        free(s);
        return http_send_error(req, submit_status(p.error), submit_error_code(p.error), p.message,
                               p.field[0] ? p.field : NULL);
    }
    struct ratelimit_key client;
    request_client_key(srv, req, &client);
    if (over_submit_limit(srv, req, &client)) {
        submit_req_free(s);
        return 0;
    }
    policy_key_format(&client, s->sub.client, sizeof(s->sub.client));
    submit_job(srv, req, submit_run, submit_done, s, submit_req_free);
    return 0;
}

/* ---- GET /api/v1/builds and /api/v1/builds/{id} --------------------------------------- */

struct list_req {
    char *status, *after;
    unsigned limit;
    struct build_record *rows;
    int *positions;
    size_t n;
    char *next;
};

static void list_run(struct db_job *job, PGconn *c)
{
    struct list_req *l = job->data;
    job->status = store_build_list(c, l->status, l->after, l->limit, &l->rows, &l->n, &l->next, job->err,
                                   sizeof(job->err));
    if (job->status != DB_OK)
        return;
    l->positions = xcalloc(l->n ? l->n : 1, sizeof(int));
    char err[128];
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->rows[i].status, "queued") == 0)
            store_queue_position(c, l->rows[i].id, &l->positions[i], err, sizeof(err));
}

static void list_done(struct db_job *job, h2o_req_t *req)
{
    struct list_req *l = job->data;
    if (job->status == DB_CONFLICT) {
        http_send_error(req, 400, "invalid_request", job->err, strstr(job->err, "cursor") ? "after" : "status");
    } else if (job->status != DB_OK) {
        send_db_error(req, job);
    } else {
        json_t *arr = json_array();
        for (size_t i = 0; i < l->n; i++)
            json_array_append_new(arr, build_json(&l->rows[i], l->positions[i]));
        http_send_json(req, 200, json_pack("{s:o, s:o}", "builds", arr, "next", str_or_null(l->next)));
    }
}

static void list_free(void *p)
{
    struct list_req *l = p;
    for (size_t i = 0; i < l->n; i++)
        build_record_release(&l->rows[i]);
    free(l->rows);
    free(l->positions);
    free(l->next);
    free(l->status);
    free(l->after);
    free(l);
}

int builds_list(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    (void)m;
    struct list_req *l = xcalloc(1, sizeof(*l));
    l->status = query_param(req, "status");
    l->after = query_param(req, "after");
    _cleanup_free_ char *limit = query_param(req, "limit");
    l->limit = 20;
    if (limit != NULL) {
        char *end;
        unsigned long v = strtoul(limit, &end, 10);
        if (*limit == '\0' || *end != '\0' || v < 1 || v > 100) {
            free(l->status);
            free(l->after);
            free(l);
            return http_send_error(req, 400, "invalid_request", "limit must be a whole number from 1 to 100", "limit");
        }
        l->limit = (unsigned)v;
    }
    submit_job(srv, req, list_run, list_done, l, list_free);
    return 0;
}

struct one_req {
    struct server *srv;
    char id[37];
    struct build_record rec;
    int position;
    /* for cancel */
    uint8_t token_hash[32];
    bool exists;
    /* for a queued build: why no worker takes it, or NULL */
    char *waiting;
    /* for verify: the rebuild, its cancel token, whether it was already in flight, a full queue */
    struct build_record rebuild;
    char token[SUBMIT_TOKEN_LEN + 1];
    char client[64]; /* who asks, as a submission records it */
    bool existing, queue_full;
    /* for the ISO and the manifest */
    int gone;  /* -errno when the file cannot be served: -ENOENT collected, -EBADMSG damaged */
    int fd;    /* the ISO, verified */
    char *body;
    size_t body_len;
};

static void one_free(void *p)
{
    struct one_req *o = p;
    build_record_release(&o->rec);
    build_record_release(&o->rebuild);
    free(o->waiting);
    if (o->fd >= 0)
        close(o->fd);
    free(o->body);
    free(o);
}

static void get_run(struct db_job *job, PGconn *c)
{
    struct one_req *o = job->data;
    job->status = store_build_get_brief(c, o->id, &o->rec, job->err, sizeof(job->err));
    if (job->status != DB_OK || strcmp(o->rec.status, "queued") != 0)
        return;
    /* only a queued build has a place, and may wait for a worker that can build it */
    char err[256];
    store_queue_position(c, o->id, &o->position, err, sizeof(err));
    store_build_waiting(c, &o->rec, 3 * o->srv->cfg->lease_seconds, &o->waiting, err, sizeof(err));
}

/*
 * How long the answer for a build may be kept: for good once nothing can
 * change it; a few seconds for a succeeded build, which a rebuild may still
 * verify (on any server); not at all while it does, or before it ended.
 */
static bool keep_ms(const struct build_record *b, unsigned *ms)
{
    *ms = 0;
    if (!finished_status_final(b->status) || b->verifying)
        return false;
    if (strcmp(b->status, "succeeded") == 0 && b->verify_of[0] == '\0')
        *ms = 2000;
    return true;
}

static void get_done(struct db_job *job, h2o_req_t *req)
{
    struct one_req *o = job->data;
    if (job->status != DB_OK) {
        send_db_error(req, job);
        return;
    }
    json_t *doc = build_json(&o->rec, o->position);
    if (o->waiting != NULL)
        json_object_set_new(doc, "waiting", json_string(o->waiting));
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    if (text == NULL)
        abort();
    size_t len = strlen(text);
    /* A finished build hardly changes again: later requests are answered from memory. */
    unsigned ms;
    if (keep_ms(&o->rec, &ms))
        finished_store(o->srv->service.finished, o->rec.id, text, len, ms);
    http_send(req, 200, "application/json", text, len);
    free(text);
}

static struct one_req *one_new(struct server *srv, const struct route_match *m)
{
    struct one_req *o = xcalloc(1, sizeof(*o));
    o->srv = srv;
    o->fd = -1;
    route_id(m, o->id);
    return o;
}

int builds_get(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    char id[37];
    route_id(m, id);
    size_t len;
    char *cached = finished_lookup(srv->service.finished, id, &len);
    if (cached != NULL) {
        http_send(req, 200, "application/json", cached, len);
        free(cached);
        return 0;
    }
    submit_job(srv, req, get_run, get_done, one_new(srv, m), one_free);
    return 0;
}

/* ---- GET /api/v1/builds/{id}/boot-log ------------------------------------------------------- */

static void boot_log_run(struct db_job *job, PGconn *c)
{
    struct one_req *o = job->data;
    job->status = store_build_boot_log(c, o->id, &o->body, job->err, sizeof(job->err));
}

static void boot_log_done(struct db_job *job, h2o_req_t *req)
{
    struct one_req *o = job->data;
    if (job->status == DB_NOT_FOUND)
        http_send_error(req, 404, "not_found", "no build with this id, or no boot check ran for it", NULL);
    else if (job->status != DB_OK)
        http_send_db_error(req, job);
    else
        http_send(req, 200, "text/plain; charset=utf-8", o->body, strlen(o->body));
}

int builds_boot_log(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    submit_job(srv, req, boot_log_run, boot_log_done, one_new(srv, m), one_free);
    return 0;
}

/* ---- POST /api/v1/builds/{id}/cancel ------------------------------------------------------ */

static void cancel_run(struct db_job *job, PGconn *c)
{
    struct one_req *o = job->data;
    job->status = store_build_get_brief(c, o->id, &o->rec, job->err, sizeof(job->err));
    if (job->status != DB_OK)
        return; /* DB_NOT_FOUND: no such build */
    o->exists = true;
    build_record_release(&o->rec);
    /* DB_NOT_FOUND now means the token did not match */
    job->status = store_build_cancel(c, o->id, o->token_hash, &o->rec, job->err, sizeof(job->err));
}

static void cancel_done(struct db_job *job, h2o_req_t *req)
{
    struct one_req *o = job->data;
    if (job->status == DB_NOT_FOUND && !o->exists)
        http_send_error(req, 404, "not_found", "no build with this id", NULL);
    else if (job->status == DB_NOT_FOUND)
        http_send_error(req, 403, "bad_cancel_token", "the cancel token does not match this build", NULL);
    else if (job->status == DB_CONFLICT)
        http_send_json(req, 409, json_pack("{s:{s:s, s:s}, s:o}", "error", "code", "already_finished", "message",
                                           "the build had already ended", "build", build_json(&o->rec, 0)));
    else if (job->status != DB_OK)
        send_db_error(req, job);
    else
        http_send_json(req, 202, json_pack("{s:o}", "build", build_json(&o->rec, 0)));
}

int builds_cancel(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    json_error_t je;
    json_t *doc = json_loadb(req->entity.base ? req->entity.base : "", req->entity.len, 0, &je);
    const char *token = json_string_value(json_object_get(doc, "cancel_token"));
    if (token == NULL) {
        json_decref(doc);
        return http_send_error(req, 400, "invalid_request", "the body must be {\"cancel_token\": \"...\"}",
                               "cancel_token");
    }
    struct one_req *o = one_new(srv, m);
    submit_token_hash(token, o->token_hash);
    json_decref(doc);
    submit_job(srv, req, cancel_run, cancel_done, o, one_free);
    return 0;
}

/* ---- POST /api/v1/builds/{id}/verify ------------------------------------------------------ */

/* The lock a build was made from: its manifest's, as JSON text (malloc'd), or NULL with o->gone set. */
static char *manifest_lock(struct one_req *o)
{
    int rc = artifact_read_manifest(o->srv->cfg->artifact_dir, o->rec.iso_sha256, &o->body, &o->body_len);
    if (rc < 0) {
        o->gone = rc;
        return NULL;
    }
    json_error_t je;
    json_t *doc = json_loadb(o->body, o->body_len, 0, &je);
    json_t *lock = json_object_get(doc, "lock");
    char *text = json_is_object(lock) ? json_dumps(lock, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL)
        o->gone = -EBADMSG;
    return text;
}

static void verify_run(struct db_job *job, PGconn *c)
{
    struct one_req *o = job->data;
    const struct config *cfg = o->srv->cfg;
    job->status = store_build_get(c, o->id, &o->rec, job->err, sizeof(job->err));
    if (job->status != DB_OK)
        return;
    if (strcmp(o->rec.status, "succeeded") != 0 || o->rec.verify_of[0] != '\0') {
        job->status = DB_CONFLICT;
        return;
    }
    _cleanup_free_ char *lock = manifest_lock(o);
    if (lock == NULL)
        return;
    long long queued = 0;
    if ((job->status = store_queue_length(c, &queued, job->err, sizeof(job->err))) != DB_OK)
        return;
    if (queued >= (long long)cfg->queue_max && !o->rec.verifying) {
        o->queue_full = true;
        return;
    }
    submit_new_token(o->token, o->token_hash);
    job->status = store_build_verify(c, o->id, lock, o->token_hash, (int)cfg->max_attempts,
                                     o->client[0] ? o->client : NULL, &o->rebuild, &o->existing, job->err,
                                     sizeof(job->err));
    if (job->status == DB_OK)
        store_queue_position(c, o->rebuild.id, &o->position, job->err, sizeof(job->err));
}

static void verify_done(struct db_job *job, h2o_req_t *req)
{
    struct one_req *o = job->data;
    if (job->status == DB_CONFLICT) {
        char msg[160];
        snprintf(msg, sizeof(msg), "only a succeeded build can be verified, and not a rebuild itself; this one is %s%s",
                 o->rec.status, o->rec.verify_of[0] ? " (a rebuild)" : "");
        http_send_error(req, 409, "not_verifiable", msg, NULL);
    } else if (job->status != DB_OK) {
        send_db_error(req, job);
    } else if (o->gone < 0) {
        http_send_error(req, 410, "artifact_gone",
                        "the build's manifest is no longer in the artifact store: there is no lock to rebuild from",
                        NULL);
    } else if (o->queue_full) {
        send_queue_full(o->srv, req);
    } else {
        finished_forget(o->srv->service.finished, o->id);
        _cleanup_free_ char *location = xasprintf("/api/v1/builds/%s", o->rebuild.id);
        http_add_header(req, "location", location, strlen(location));
        json_t *doc = json_pack("{s:o, s:s, s:b}", "build", build_json(&o->rebuild, o->position), "verifies", o->id,
                                "merged", o->existing);
        if (!o->existing)
            json_object_set_new(doc, "cancel_token", json_string(o->token));
        http_send_json(req, 202, doc);
    }
}

int builds_verify(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    if (req->entity.len > 0) {
        json_error_t je;
        json_t *doc = json_loadb(req->entity.base, req->entity.len, 0, &je);
        bool empty = json_is_object(doc) && json_object_size(doc) == 0;
        json_decref(doc);
        if (!empty)
            return http_send_error(req, 400, "invalid_request", "the body must be empty or {}", NULL);
    }
    struct ratelimit_key client;
    request_client_key(srv, req, &client);
    if (over_submit_limit(srv, req, &client))
        return 0;
    struct one_req *o = one_new(srv, m);
    policy_key_format(&client, o->client, sizeof(o->client));
    submit_job(srv, req, verify_run, verify_done, o, one_free);
    return 0;
}

/* ---- GET /api/v1/builds/{id}/iso and /manifest --------------------------------------------- */

static void artifact_run(struct db_job *job, PGconn *c, bool manifest)
{
    struct one_req *o = job->data;
    const struct config *cfg = o->srv->cfg;
    job->status = store_build_get(c, o->id, &o->rec, job->err, sizeof(job->err));
    if (job->status != DB_OK || strcmp(o->rec.status, "succeeded") != 0)
        return;
    /*
     * Checked here, on a database thread, and sent from the descriptor that
     * was checked: a file changed since its stamp is re-hashed (seconds for
     * a large ISO, once), and one damaged or replaced is refused.
     */
    if (manifest) {
        int rc = artifact_read_manifest(cfg->artifact_dir, o->rec.iso_sha256, &o->body, &o->body_len);
        o->gone = rc < 0 ? rc : 0;
        return;
    }
    o->fd = artifact_open(cfg->artifact_dir, o->rec.iso_sha256, o->rec.iso_size);
    if (o->fd < 0) {
        o->gone = o->fd;
        return;
    }
    bool present;
    char err[128];
    store_artifact_touch(c, o->rec.iso_sha256, &present, err, sizeof(err)); /* for GC: least recently downloaded */
}

static void iso_run(struct db_job *job, PGconn *c)
{
    artifact_run(job, c, false);
}

static void manifest_run(struct db_job *job, PGconn *c)
{
    artifact_run(job, c, true);
}

/* 404 or 410 when there is nothing to send; 0 when the ISO (o->fd) or the manifest (o->body) is there. */
static int artifact_missing(struct db_job *job, h2o_req_t *req, struct one_req *o)
{
    if (job->status != DB_OK)
        return send_db_error(req, job) + 1;
    if (strcmp(o->rec.status, "succeeded") != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "the build is %s: it has no ISO", o->rec.status);
        return http_send_error(req, 404, "no_iso", msg, NULL) + 1;
    }
    if (o->gone == -EBADMSG)
        return http_send_error(req, 410, "artifact_gone",
                               "the artifact in the store is damaged; submit the recipe again to rebuild it", NULL) + 1;
    if (o->gone < 0)
        return http_send_error(req, 410, "artifact_gone",
                               "the ISO was garbage-collected; submit the recipe again to rebuild it", NULL) + 1;
    return 0;
}

static void iso_done(struct db_job *job, h2o_req_t *req)
{
    struct one_req *o = job->data;
    if (artifact_missing(job, req, o) != 0)
        return;
    json_error_t je;
    json_t *recipe = o->rec.recipe ? json_loads(o->rec.recipe, 0, &je) : NULL;
    const char *name = json_string_value(json_object_get(recipe, "name"));
    _cleanup_free_ char *cd =
        xasprintf("attachment; filename=\"%s-%.12s.iso\"", name ? name : "debate", o->rec.iso_sha256);
    json_decref(recipe);
    _cleanup_free_ char *etag = xasprintf("\"%s\"", o->rec.iso_sha256);
    struct files_opts fo = {.content_type = "application/x-iso9660-image", .etag = etag, .disposition = cd,
                            .what = "the ISO"};
    if (files_send_fd(req, steal_fd(&o->fd), &fo) < 0)
        http_send_error(req, 410, "artifact_gone", "the ISO is no longer in the artifact store", NULL);
}

static void manifest_done(struct db_job *job, h2o_req_t *req)
{
    struct one_req *o = job->data;
    if (artifact_missing(job, req, o) == 0)
        http_send(req, 200, "application/json", o->body, o->body_len);
}

int builds_iso(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    submit_job(srv, req, iso_run, iso_done, one_new(srv, m), one_free);
    return 0;
}

int builds_manifest(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    submit_job(srv, req, manifest_run, manifest_done, one_new(srv, m), one_free);
    return 0;
}

/* ---- GET /api/v1/builds/{id}/log ------------------------------------------------------------ */

struct log_stream;

struct log_req {
    struct server *srv;
    char id[37];
    long long after;
    struct build_record rec;
    struct build_event *ev;
    size_t n;
    struct sse *sse;           /* a poll of a live stream, or NULL: the whole log as text */
    struct log_stream *stream; /* the stream's position (with sse) */
};

static void log_fetch(struct db_job *job, PGconn *c)
{
    struct log_req *l = job->data;
    job->status = store_build_get_brief(c, l->id, &l->rec, job->err, sizeof(job->err));
    if (job->status == DB_OK)
        job->status = store_events_since(c, l->id, l->after, l->sse ? SSE_BATCH : 1000000, &l->ev, &l->n, job->err,
                                         sizeof(job->err));
}

static void log_free(void *p)
{
    struct log_req *l = p;
    build_record_release(&l->rec);
    build_events_release(l->ev, l->n);
    free(l);
}

/* A progress event as a log line: "[stage 42%] message". */
static char *progress_line(const char *body)
{
    json_error_t je;
    json_t *doc = json_loads(body, 0, &je);
    char *line = xasprintf("[%s %lld%%] %s", json_string_value(json_object_get(doc, "stage")) ?: "?",
                           (long long)json_integer_value(json_object_get(doc, "progress")),
                           json_string_value(json_object_get(doc, "message")) ?: "");
    json_decref(doc);
    return line;
}

static void log_text_done(struct db_job *job, h2o_req_t *req)
{
    struct log_req *l = job->data;
    if (job->status != DB_OK) {
        send_db_error(req, job);
    } else {
        size_t cap = 1, len = 0;
        for (size_t i = 0; i < l->n; i++)
            cap += strlen(l->ev[i].body) + 64;
        char *text = xcalloc(1, cap);
        for (size_t i = 0; i < l->n; i++) {
            _cleanup_free_ char *p = l->ev[i].progress ? progress_line(l->ev[i].body) : NULL;
            len += (size_t)snprintf(text + len, cap - len, "%s\n", p ? p : l->ev[i].body);
        }
        http_send(req, 200, "text/plain; charset=utf-8", text, len);
        free(text);
    }
}

/* The live stream: the events table polled through the executor while the build runs (http/sse.c). */
struct log_stream {
    struct server *srv;
    char id[37];
    long long last_seq;
    struct db_job_guard *guard; /* one for all the stream's polls: nothing grows in its pool */
};

static void stream_done(struct db_job *job, h2o_req_t *req)
{
    (void)req;
    struct log_req *l = job->data;
    struct sse *s = l->sse;
    struct log_stream *ls = l->stream;
    if (job->status == DB_OK) {
        for (size_t i = 0; i < l->n; i++) {
            sse_event(s, l->ev[i].seq, l->ev[i].progress ? "progress" : "log", l->ev[i].body);
            ls->last_seq = l->ev[i].seq;
        }
        /* A short batch of a finished build is its last: the end event carries the build. */
        if (finished_status_final(l->rec.status) && l->n < SSE_BATCH) {
            json_t *b = build_json(&l->rec, 0);
            _cleanup_free_ char *text = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
            json_decref(b);
            sse_event(s, -1, "end", text);
            sse_end(s);
        }
    } else if (job->status == DB_NOT_FOUND) {
        sse_event(s, -1, "end", "{\"error\":{\"code\":\"not_found\",\"message\":\"no build with this id\"}}");
        sse_end(s);
    }
    sse_poll_done(s); /* other failures: try again at the next poll */
}

static void stream_poll(struct sse *s, void *data)
{
    struct log_stream *ls = data;
    struct log_req *l = xcalloc(1, sizeof(*l));
    l->srv = ls->srv;
    memcpy(l->id, ls->id, sizeof(l->id));
    l->after = ls->last_seq;
    l->sse = s;
    l->stream = ls;
    submit_guarded(ls->srv, sse_req(s), ls->guard, log_fetch, stream_done, l, log_free);
}

static bool wants_sse(h2o_req_t *req)
{
    const h2o_iovec_t *accept = http_find_header(req, "accept");
    return accept != NULL && h2o_strstr(accept->base, accept->len, H2O_STRLIT("text/event-stream")) != SIZE_MAX;
}

/* Last-Event-ID: the seq after which the client wants events (0: from the start). */
static long long last_event_id(h2o_req_t *req)
{
    const h2o_iovec_t *last = http_find_header(req, "last-event-id");
    return last != NULL ? sse_last_event_id(last->base, last->len) : 0;
}

int builds_log(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    if (!wants_sse(req)) {
        struct log_req *l = xcalloc(1, sizeof(*l));
        l->srv = srv;
        route_id(m, l->id);
        submit_job(srv, req, log_fetch, log_text_done, l, log_free);
        return 0;
    }
    struct log_stream *ls = h2o_mem_alloc_pool(&req->pool, sizeof(*ls));
    memset(ls, 0, sizeof(*ls));
    ls->srv = srv;
    ls->guard = executor_guard_new(req);
    route_id(m, ls->id);
    ls->last_seq = last_event_id(req);
    struct sse_opts o = {.poll_ms = SSE_POLL_MS, .keepalive_ms = SSE_KEEPALIVE_MS, .poll = stream_poll, .data = ls,
                         .greeting = "debate build log", .stopping = &srv->stopping};
    sse_start(req, &o);
    return 0;
}
