/*
 * The build API (docs/api.md): submit, list, show, log (plain and SSE),
 * ISO, manifest, cancel. Every handler parses and validates on the loop
 * thread, does its database work (and artifact file checks) as one job on
 * the executor, and answers from the job's completion on the loop thread.
 */
#include "http/builds.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "engine/recipe.h"
#include "engine/resolve.h"
#include "db/store.h"
#include "http/health.h"
#include "http/policy.h"
#include "http/response.h"
#include "http/server.h"
#include "service/artifacts.h"
#include "digest.h"
#include "util.h"
#include "banned.h"

#define SSE_POLL_MS 500
#define SSE_KEEPALIVE_MS 15000
#define SSE_BATCH 500

static bool terminal(const char *status)
{
    return strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0;
}

static json_t *str_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
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
    return json_pack("{s:s, s:s, s:s, s:i, s:o, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:o, s:i, s:i, s:s, "
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
}

static int send_db_error(h2o_req_t *req, const struct db_job *job)
{
    if (job->status == DB_NOT_FOUND)
        return http_send_error(req, 404, "not_found", "no build with this id", NULL);
    return http_send_db_error(req, job);
}

/* Queues the database part of a request; release frees data whether or not done ran. */
static void submit_job(struct server *srv, h2o_req_t *req, db_job_run_cb run, db_job_done_cb done, void *data,
                       void (*release)(void *))
{
    struct db_job *job = executor_job_new(run, done, data);
    job->release = release;
    executor_submit(srv->executor, server_db_loop(req), req, job);
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

struct submit {
    struct server *srv;
    char config_hash[65], build_key[65];
    char *key_parts, *recipe, *lock;
    bool no_cache;
    uint8_t token_hash[32];
    char token[64];
    char client[64];
    /* results */
    struct build_record rec;
    bool hit, merged, queue_full;
    json_t *differs;
    int position;
};

static void submit_free(void *p)
{
    struct submit *s = p;
    free(s->key_parts);
    free(s->recipe);
    free(s->lock);
    build_record_release(&s->rec);
    if (s->differs)
        json_decref(s->differs);
    free(s);
}

/* The parts of the key that differ from the newest earlier build of the same recipe. */
static json_t *key_differences(const char *mine, const char *theirs)
{
    json_error_t je;
    json_t *a = json_loads(mine, 0, &je), *b = theirs ? json_loads(theirs, 0, &je) : NULL;
    json_t *out = json_array();
    const char *k;
    json_t *v;
    if (a != NULL && b != NULL)
        json_object_foreach(a, k, v) {
            if (!json_equal(v, json_object_get(b, k)))
                json_array_append_new(out, json_string(k));
        }
    json_decref(a);
    json_decref(b);
    return out;
}

static void submit_run(struct db_job *job, PGconn *c)
{
    struct submit *s = job->data;
    const struct config *cfg = s->srv->cfg;
    if (!s->no_cache) {
        job->status = store_build_find_cached(c, s->build_key, &s->rec, job->err, sizeof(job->err));
        if (job->status == DB_OK && artifact_verify(cfg->artifact_dir, s->rec.iso_sha256, s->rec.iso_size)) {
            s->hit = true;
            return;
        }
        build_record_release(&s->rec);
        if (job->status != DB_OK && job->status != DB_NOT_FOUND)
            return;
    }
    long long queued = 0;
    job->status = store_queue_length(c, &queued, job->err, sizeof(job->err));
    if (job->status != DB_OK)
        return;
    struct build_new in = {.config_hash = s->config_hash, .build_key = s->build_key, .key_parts = s->key_parts,
                           .recipe = s->recipe, .lock = s->lock, .cancel_token_hash = s->token_hash,
                           .max_attempts = (int)cfg->max_attempts, .client = s->client};
    if (queued >= (long long)cfg->queue_max) {
        /* full: only joining a build already in flight is allowed */
        job->status = store_build_find_active(c, s->build_key, &s->rec, job->err, sizeof(job->err));
        if (job->status == DB_NOT_FOUND) {
            s->queue_full = true;
            job->status = DB_OK;
            return;
        }
        s->merged = true;
    } else {
        job->status = store_build_submit(c, &in, &s->rec, &s->merged, job->err, sizeof(job->err));
    }
    if (job->status != DB_OK)
        return;
    struct build_record prev;
    enum db_status st = store_build_find_previous(c, s->config_hash, s->rec.id, &prev, job->err, sizeof(job->err));
    s->differs = key_differences(s->key_parts, st == DB_OK ? prev.key_parts : NULL);
    if (st == DB_OK)
        build_record_release(&prev);
    store_queue_position(c, s->rec.id, &s->position, job->err, sizeof(job->err));
    if (s->position == 0 && strcmp(s->rec.status, "queued") == 0) {
        /* a worker claimed it meanwhile: answer with what it is now */
        struct build_record now;
        if (store_build_get(c, s->rec.id, &now, job->err, sizeof(job->err)) == DB_OK) {
            build_record_release(&s->rec);
            s->rec = now;
        }
    }
    job->status = DB_OK;
}

static void submit_done(struct db_job *job, h2o_req_t *req)
{
    struct submit *s = job->data;
    if (job->status != DB_OK) {
        send_db_error(req, job);
    } else if (s->queue_full) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("60"));
        char msg[128];
        snprintf(msg, sizeof(msg), "the queue holds %u builds already; try again later", s->srv->cfg->queue_max);
        http_send_error(req, 503, "queue_full", msg, NULL);
    } else if (s->hit) {
        http_send_json(req, 200, json_pack("{s:o, s:s, s:b}", "build", build_json(&s->rec, 0), "cache", "hit",
                                           "merged", 0));
    } else {
        _cleanup_free_ char *location = xasprintf("/api/v1/builds/%s", s->rec.id);
        http_add_header(req, "location", location, strlen(location));
        json_t *doc = json_pack("{s:o, s:s, s:b, s:O}", "build", build_json(&s->rec, s->position), "cache", "miss",
                                "merged", s->merged, "differs", s->differs ? s->differs : json_array());
        if (!s->merged)
            json_object_set_new(doc, "cancel_token", json_string(s->token));
        http_send_json(req, 202, doc);
    }
}

static int bad_request(h2o_req_t *req, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad_request(h2o_req_t *req, const char *code, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return http_send_error(req, 400, code, msg, field);
}

/* Checks the submission limit of this client; answers 429 when over. */
static bool over_submit_limit(struct server *srv, h2o_req_t *req)
{
    struct ratelimit_key key;
    struct ratelimit_result rr;
    request_client_key(srv, req, &key);
    ratelimit_check(srv->submit_limit, &key, clock_monotonic_ms(), &rr);
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

int builds_post(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    (void)m;
    json_error_t je;
    json_t *doc = json_loadb(req->entity.base ? req->entity.base : "", req->entity.len, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL)
        return bad_request(req, "invalid_json", NULL, "the body is not JSON: %s (line %d, column %d)", je.text,
                           je.line, je.column);
    struct submit *s = NULL;
    struct recipe r;
    bool have_recipe = false;
    int rc = 0;
    char *rtext = NULL; /* declared before the first goto: out: frees it */
    if (!json_is_object(doc)) {
        rc = bad_request(req, "invalid_request", NULL, "the body must be an object: {\"recipe\": {...}}");
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v) {
        if (strcmp(k, "recipe") != 0 && strcmp(k, "lock") != 0 && strcmp(k, "no_cache") != 0) {
            rc = bad_request(req, "invalid_request", k, "unknown field \"%.64s\" (recipe, lock, no_cache)", k);
            goto out;
        }
    }
    json_t *jr = json_object_get(doc, "recipe"), *jl = json_object_get(doc, "lock"),
           *jn = json_object_get(doc, "no_cache");
    if (!json_is_object(jr)) {
        rc = bad_request(req, "invalid_request", "recipe", "\"recipe\" must be an object (see docs/recipes.md)");
        goto out;
    }
    if (jl != NULL && !json_is_object(jl) && !json_is_null(jl)) {
        rc = bad_request(req, "invalid_request", "lock", "\"lock\" must be an object (from debate lock)");
        goto out;
    }
    if (jn != NULL && !json_is_boolean(jn)) {
        rc = bad_request(req, "invalid_request", "no_cache", "\"no_cache\" must be true or false");
        goto out;
    }
    rtext = json_dumps(jr, JSON_COMPACT);
    struct recipe_error rerr;
    if (recipe_parse(rtext, strlen(rtext), &r, &rerr) < 0) {
        char msg[512];
        recipe_error_format(&rerr, msg, sizeof(msg));
        _cleanup_free_ char *field = rerr.field[0] ? xasprintf("recipe.%s", rerr.field) : xstrdup("recipe");
        rc = http_send_error(req, 400, "invalid_recipe", msg, field);
        goto out;
    }
    have_recipe = true;
    s = xcalloc(1, sizeof(*s));
    s->srv = srv;
    s->no_cache = jn != NULL && json_is_true(jn);
    char lock_hash[65] = "";
    if (json_is_object(jl)) {
        _cleanup_free_ char *ltext = json_dumps(jl, JSON_COMPACT);
        struct lock lock;
        char err[512];
        if (lock_parse(ltext, strlen(ltext), &r, &lock, err, sizeof(err)) < 0) {
            rc = http_send_error(req, 400, "invalid_lock", err, "lock");
            goto out;
        }
        snprintf(lock_hash, sizeof(lock_hash), "%s", lock.hash);
        s->lock = xstrdup(lock.json);
        lock_release(&lock);
    }
    if (over_submit_limit(srv, req))
        goto out;
    /* The cache key: every input the ISO depends on (docs/api.md). */
    json_t *key = json_pack("{s:s, s:o, s:o, s:s, s:s}", "config_hash", r.config_hash, "lock_hash",
                            lock_hash[0] ? json_string(lock_hash) : json_null(), "mirror",
                            lock_hash[0] ? json_null() : json_string(srv->mirror), "builder", "debate " DEBATE_VERSION,
                            "tools", srv->tools_digest);
    s->key_parts = json_dumps(key, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(key);
    sha256_hex(s->key_parts, strlen(s->key_parts), s->build_key);
    snprintf(s->config_hash, sizeof(s->config_hash), "%s", r.config_hash);
    s->recipe = xstrdup(r.canonical);
    uint8_t raw[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        abort();
    base64url_encode(s->token, raw, sizeof(raw));
    EVP_Digest(s->token, strlen(s->token), s->token_hash, NULL, EVP_sha256(), NULL);
    struct ratelimit_key ck;
    request_client_key(srv, req, &ck);
    policy_key_format(&ck, s->client, sizeof(s->client));
    submit_job(srv, req, submit_run, submit_done, s, submit_free);
    s = NULL;
out:
    free(rtext);
    if (s != NULL)
        submit_free(s);
    if (have_recipe)
        recipe_release(&r);
    json_decref(doc);
    return rc;
}

/* ---- GET /api/v1/builds and /api/v1/builds/{id} --------------------------------------- */

/* The value of query parameter name (percent-decoded, malloc'd), or NULL. */
static char *query_param(h2o_req_t *req, const char *name)
{
    if (req->query_at == SIZE_MAX)
        return NULL;
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t nlen = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - q) > nlen && memcmp(q, name, nlen) == 0 && q[nlen] == '=') {
            const char *v = q + nlen + 1;
            char *out = xcalloc(1, (size_t)(stop - v) + 1), *w = out;
            for (; v < stop; v++) {
                if (*v == '%' && stop - v >= 3 && isxdigit((unsigned char)v[1]) && isxdigit((unsigned char)v[2])) {
                    char hex[3] = {v[1], v[2], 0};
                    *w++ = (char)strtol(hex, NULL, 16);
                    v += 2;
                } else {
                    *w++ = *v == '+' ? ' ' : *v;
                }
            }
            return out;
        }
        q = stop + 1;
    }
    return NULL;
}

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
    /* for the ISO and the manifest */
    bool gone;
    char *path;
    char *body;
    size_t body_len;
};

static void one_free(void *p)
{
    struct one_req *o = p;
    build_record_release(&o->rec);
    free(o->path);
    free(o->body);
    free(o);
}

static void get_run(struct db_job *job, PGconn *c)
{
    struct one_req *o = job->data;
    job->status = store_build_get_brief(c, o->id, &o->rec, job->err, sizeof(job->err));
    if (job->status == DB_OK && strcmp(o->rec.status, "queued") == 0) /* only a queued build has a place */
        store_queue_position(c, o->id, &o->position, job->err, sizeof(job->err));
}

/*
 * A finished build never changes again (succeeded, failed, cancelled are
 * final, on every server): its JSON is kept in a bounded, direct-mapped
 * table and GET /api/v1/builds/{id} answers it without the database.
 */
#define DONE_SLOTS 4096

struct done_entry {
    char id[37];
    char *json;
    size_t len;
};

static struct done_entry done_cache[DONE_SLOTS];
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t done_slot(const char *id)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (size_t)(h % DONE_SLOTS);
}

/* The cached JSON of a finished build (malloc'd), or NULL. */
static char *done_lookup(const char *id, size_t *len)
{
    if (strlen(id) != 36)
        return NULL;
    char *copy = NULL;
    struct done_entry *e = &done_cache[done_slot(id)];
    pthread_mutex_lock(&done_lock);
    if (e->json != NULL && strcmp(e->id, id) == 0) {
        copy = xmalloc(e->len);
        memcpy(copy, e->json, e->len);
        *len = e->len;
    }
    pthread_mutex_unlock(&done_lock);
    return copy;
}

static void done_store(const char *id, const char *json, size_t len)
{
    struct done_entry *e = &done_cache[done_slot(id)];
    char *copy = xmalloc(len);
    memcpy(copy, json, len);
    pthread_mutex_lock(&done_lock);
    char *old = e->json;
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->json = copy;
    e->len = len;
    pthread_mutex_unlock(&done_lock);
    free(old);
}

static void get_done(struct db_job *job, h2o_req_t *req)
{
    struct one_req *o = job->data;
    if (job->status != DB_OK) {
        send_db_error(req, job);
        return;
    }
    json_t *doc = build_json(&o->rec, o->position);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    if (text == NULL)
        abort();
    size_t len = strlen(text);
    if (terminal(o->rec.status))
        done_store(o->rec.id, text, len);
    http_send(req, 200, "application/json", text, len);
    free(text);
}

static struct one_req *one_new(struct server *srv, const struct route_match *m)
{
    struct one_req *o = xcalloc(1, sizeof(*o));
    o->srv = srv;
    route_id(m, o->id);
    return o;
}

int builds_get(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    char id[37];
    route_id(m, id);
    size_t len;
    char *cached = done_lookup(id, &len);
    if (cached != NULL) {
        http_send(req, 200, "application/json", cached, len);
        free(cached);
        return 0;
    }
    submit_job(srv, req, get_run, get_done, one_new(srv, m), one_free);
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
    EVP_Digest(token, strlen(token), o->token_hash, NULL, EVP_sha256(), NULL);
    json_decref(doc);
    submit_job(srv, req, cancel_run, cancel_done, o, one_free);
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
    o->path = manifest ? artifact_manifest_path(cfg->artifact_dir, o->rec.iso_sha256)
                       : artifact_iso_path(cfg->artifact_dir, o->rec.iso_sha256);
    if (access(o->path, R_OK) != 0) {
        o->gone = true;
        return;
    }
    if (manifest) {
        if (read_file(o->path, 64u << 20, &o->body, &o->body_len) < 0)
            o->gone = true;
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

/* 404 or 410 when there is nothing to send; 0 when o->path is there. */
static int artifact_missing(struct db_job *job, h2o_req_t *req, struct one_req *o)
{
    if (job->status != DB_OK)
        return send_db_error(req, job) + 1;
    if (strcmp(o->rec.status, "succeeded") != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "the build is %s: it has no ISO", o->rec.status);
        return http_send_error(req, 404, "no_iso", msg, NULL) + 1;
    }
    if (o->gone)
        return http_send_error(req, 410, "artifact_gone",
                               "the ISO was garbage-collected; submit the recipe again to rebuild it", NULL) + 1;
    return 0;
}

/*
 * The ISO as a stream of pread chunks: Range (one range; 206, or 416 past
 * the end), HEAD. Over TLS the bytes pass through user space anyway to be
 * encrypted, so sendfile would not save the copy.
 */
struct file_gen {
    h2o_generator_t super;
    int fd;
    off_t off, end; /* [off, end) still to send */
    char *buf;
};

#define FILE_CHUNK (256 * 1024)

static void file_gen_dispose(void *p)
{
    struct file_gen *g = p;
    if (g->fd >= 0)
        close(g->fd);
}

static void file_gen_proceed(h2o_generator_t *self, h2o_req_t *req)
{
    struct file_gen *g = (struct file_gen *)self;
    size_t want = (size_t)(g->end - g->off) < FILE_CHUNK ? (size_t)(g->end - g->off) : FILE_CHUNK;
    ssize_t n = want ? pread(g->fd, g->buf, want, g->off) : 0;
    if (n < 0 || (n == 0 && want > 0)) {
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    g->off += n;
    h2o_iovec_t buf = h2o_iovec_init(g->buf, (size_t)n);
    h2o_send(req, &buf, 1, g->off >= g->end ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void file_gen_stop(h2o_generator_t *self, h2o_req_t *req)
{
    (void)self;
    (void)req;
}

/* Parses "bytes=A-B" / "bytes=A-" / "bytes=-N" against size: 1 ok, 0 ignore (several ranges, junk), -1 unsatisfiable. */
static int parse_range(const h2o_iovec_t *h, off_t size, off_t *from, off_t *to)
{
    char v[64];
    if (h->len >= sizeof(v))
        return 0;
    memcpy(v, h->base, h->len);
    v[h->len] = '\0';
    if (strncmp(v, "bytes=", 6) != 0 || strchr(v, ',') != NULL)
        return 0;
    char *dash = strchr(v + 6, '-');
    if (dash == NULL)
        return 0;
    *dash = '\0';
    const char *a = v + 6, *b = dash + 1;
    char *end;
    if (*a == '\0') { /* the last N bytes */
        long long nb = strtoll(b, &end, 10);
        if (*b == '\0' || *end != '\0' || nb < 0)
            return 0;
        if (nb == 0 || size == 0)
            return -1;
        *from = nb >= size ? 0 : size - nb;
        *to = size - 1;
        return 1;
    }
    long long first = strtoll(a, &end, 10);
    if (*end != '\0' || first < 0)
        return 0;
    long long last = size - 1;
    if (*b != '\0') {
        last = strtoll(b, &end, 10);
        if (*end != '\0' || last < first)
            return 0;
    }
    if (first >= size)
        return -1;
    *from = first;
    *to = last >= size ? size - 1 : last;
    return 1;
}

static void send_file(h2o_req_t *req, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        http_send_error(req, 410, "artifact_gone", "the ISO is no longer in the artifact store", NULL);
        return;
    }
    off_t from = 0, to = st.st_size - 1;
    int status = 200;
    const h2o_iovec_t *range = http_find_header(req, "range");
    http_add_header(req, "accept-ranges", "bytes", 5);
    if (range != NULL) {
        int r = parse_range(range, st.st_size, &from, &to);
        if (r < 0) {
            close(fd);
            _cleanup_free_ char *cr = xasprintf("bytes */%lld", (long long)st.st_size);
            http_add_header(req, "content-range", cr, strlen(cr));
            http_send_error(req, 416, "range_not_satisfiable", "the range starts past the end of the ISO", NULL);
            return;
        }
        if (r > 0) {
            status = 206;
            _cleanup_free_ char *cr = xasprintf("bytes %lld-%lld/%lld", (long long)from, (long long)to,
                                                (long long)st.st_size);
            http_add_header(req, "content-range", cr, strlen(cr));
        } else {
            from = 0, to = st.st_size - 1;
        }
    }
    struct file_gen *g = h2o_mem_alloc_shared(&req->pool, sizeof(*g), file_gen_dispose);
    g->super.proceed = file_gen_proceed;
    g->super.stop = file_gen_stop;
    g->fd = fd;
    g->off = from;
    g->end = to + 1;
    g->buf = h2o_mem_alloc_pool(&req->pool, FILE_CHUNK);
    req->res.status = status;
    req->res.reason = status == 206 ? "Partial Content" : "OK";
    req->res.content_length = (size_t)(g->end - g->off);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/x-iso9660-image"));
    h2o_start_response(req, &g->super);
    if (h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"))) {
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    file_gen_proceed(&g->super, req);
}

static void iso_done(struct db_job *job, h2o_req_t *req)
{
    struct one_req *o = job->data;
    if (artifact_missing(job, req, o) == 0) {
        char etag[70];
        int n = snprintf(etag, sizeof(etag), "\"%s\"", o->rec.iso_sha256);
        const h2o_iovec_t *inm = http_find_header(req, "if-none-match");
        if (inm != NULL && h2o_contains_token(inm->base, inm->len, etag, (size_t)n, ',')) {
            http_add_header(req, "etag", etag, (size_t)n);
            req->res.status = 304;
            req->res.reason = "Not Modified";
            h2o_send_inline(req, NULL, 0);
        } else {
            json_error_t je;
            json_t *recipe = o->rec.recipe ? json_loads(o->rec.recipe, 0, &je) : NULL;
            const char *name = json_string_value(json_object_get(recipe, "name"));
            _cleanup_free_ char *cd =
                xasprintf("attachment; filename=\"%s-%.12s.iso\"", name ? name : "debate", o->rec.iso_sha256);
            json_decref(recipe);
            http_add_header(req, "etag", etag, (size_t)n);
            http_add_header(req, "content-disposition", cd, strlen(cd));
            send_file(req, o->path);
        }
    }
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

struct log_req {
    struct server *srv;
    char id[37];
    long long after;
    struct build_record rec;
    struct build_event *ev;
    size_t n;
    struct sse *sse;
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

/* The live stream: polls the events table every SSE_POLL_MS while the build runs. */
struct sse {
    h2o_generator_t super;
    struct server *srv;
    h2o_req_t *req;
    char id[37];
    long long last_seq;
    h2o_timeout_t poll_timeout;
    h2o_timeout_entry_t timer;
    h2o_loop_t *loop;
    char *pending; /* formatted events not yet handed to h2o */
    size_t pending_len;
    bool sending, fetching, ending, ended, stopped;
    uint64_t last_write_ms;
};

static void sse_fetch(struct sse *s);

static void sse_flush(struct sse *s)
{
    if (s->sending || s->stopped || s->ended)
        return;
    if (s->pending_len == 0 && !s->ending)
        return;
    h2o_iovec_t buf = h2o_iovec_init(NULL, 0);
    if (s->pending_len > 0) {
        buf.base = h2o_mem_alloc_pool(&s->req->pool, s->pending_len);
        memcpy(buf.base, s->pending, s->pending_len);
        buf.len = s->pending_len;
        s->pending_len = 0;
    }
    s->sending = true;
    s->last_write_ms = clock_monotonic_ms();
    if (s->ending)
        s->ended = true;
    h2o_send(s->req, &buf, buf.len ? 1 : 0, s->ending ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void sse_append(struct sse *s, const char *text)
{
    size_t n = strlen(text);
    s->pending = xrealloc(s->pending, s->pending_len + n + 1);
    memcpy(s->pending + s->pending_len, text, n + 1);
    s->pending_len += n;
}

static void sse_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    struct sse *s = (struct sse *)g;
    s->sending = false;
    sse_flush(s);
}

static void sse_stop(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    struct sse *s = (struct sse *)g;
    s->stopped = true;
    if (h2o_timeout_is_linked(&s->timer))
        h2o_timeout_unlink(&s->timer);
}

static void sse_on_timer(h2o_timeout_entry_t *entry)
{
    struct sse *s = H2O_STRUCT_FROM_MEMBER(struct sse, timer, entry);
    sse_fetch(s);
}

static void sse_dispose(void *p)
{
    struct sse *s = p;
    if (h2o_timeout_is_linked(&s->timer))
        h2o_timeout_unlink(&s->timer);
    h2o_timeout_dispose(s->loop, &s->poll_timeout);
    free(s->pending);
}

static void sse_done(struct db_job *job, h2o_req_t *req)
{
    (void)req;
    struct log_req *l = job->data;
    struct sse *s = l->sse;
    s->fetching = false;
    if (s->stopped || s->ended)
        return;
    if (job->status == DB_OK) {
        for (size_t i = 0; i < l->n; i++) {
            const struct build_event *e = &l->ev[i];
            _cleanup_free_ char *ev = xasprintf("id: %lld\nevent: %s\ndata: %s\n\n", e->seq,
                                                e->progress ? "progress" : "log", e->body);
            sse_append(s, ev);
            s->last_seq = e->seq;
        }
        if (terminal(l->rec.status) && l->n < SSE_BATCH) {
            json_t *b = build_json(&l->rec, 0);
            char *text = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
            json_decref(b);
            _cleanup_free_ char *ev = xasprintf("event: end\ndata: %s\n\n", text);
            free(text);
            sse_append(s, ev);
            s->ending = true;
        }
    } else if (job->status == DB_NOT_FOUND) {
        sse_append(s, "event: end\ndata: {\"error\":{\"code\":\"not_found\",\"message\":\"no build with this id\"}}\n\n");
        s->ending = true;
    }
    if (!s->ending && s->pending_len == 0 && clock_monotonic_ms() - s->last_write_ms >= SSE_KEEPALIVE_MS)
        sse_append(s, ": keep-alive\n\n");
    sse_flush(s);
    if (!s->ending)
        h2o_timeout_link(s->loop, &s->poll_timeout, &s->timer);
}

static void sse_fetch(struct sse *s)
{
    if (s->stopped || s->ended || s->fetching)
        return;
    struct log_req *l = xcalloc(1, sizeof(*l));
    l->srv = s->srv;
    memcpy(l->id, s->id, sizeof(l->id));
    l->after = s->last_seq;
    l->sse = s;
    s->fetching = true;
    submit_job(s->srv, s->req, log_fetch, sse_done, l, log_free);
}

static bool wants_sse(h2o_req_t *req)
{
    const h2o_iovec_t *accept = http_find_header(req, "accept");
    return accept != NULL && h2o_strstr(accept->base, accept->len, H2O_STRLIT("text/event-stream")) != SIZE_MAX;
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
    struct sse *s = h2o_mem_alloc_shared(&req->pool, sizeof(*s), sse_dispose);
    memset(s, 0, sizeof(*s));
    s->super.proceed = sse_proceed;
    s->super.stop = sse_stop;
    s->srv = srv;
    s->req = req;
    s->loop = req->conn->ctx->loop;
    route_id(m, s->id);
    const h2o_iovec_t *last = http_find_header(req, "last-event-id");
    if (last != NULL && last->len > 0 && last->len < 20) {
        char buf[24];
        memcpy(buf, last->base, last->len);
        buf[last->len] = '\0';
        s->last_seq = atoll(buf);
    }
    h2o_timeout_init(s->loop, &s->poll_timeout, SSE_POLL_MS);
    s->timer.cb = sse_on_timer;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/event-stream"));
    h2o_start_response(req, &s->super);
    sse_append(s, ": debate build log\n\n");
    sse_flush(s);
    sse_fetch(s);
    return 0;
}
