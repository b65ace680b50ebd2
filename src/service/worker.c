#include "service/worker.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "engine/engine.h"
#include "engine/recipe.h"
#include "db/pool.h"
#include "log.h"
#include "service/artifacts.h"
#include "service/submit.h"
#include "util.h"
#include "banned.h"

#define EVENT_BATCH 64
#define FLUSH_MS 250

/* What a worker keeps about the build it runs. */
struct job {
    struct worker_opts *o;
    PGconn *conn;     /* the worker's: events, progress, finish */
    PGconn **hb_conn; /* the worker's second connection, kept across builds for the heartbeat */
    struct worker_ctx ctx;
    char *kinds[EVENT_BATCH], *bodies[EVENT_BATCH];
    size_t nevents;
    uint64_t last_flush;
    char stage[32];
    int percent;
    bool stage_dirty;
    /* the heartbeat thread */
    pthread_t heartbeat;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool done;
};

void worker_name(struct worker_opts *o, unsigned index)
{
    char host[64] = "";
    gethostname(host, sizeof(host) - 1);
    snprintf(o->name, sizeof(o->name), "%s:%ld:%u", host[0] ? host : "localhost", (long)getpid(), index);
}

/* ---- events: batched into build_events; a lost lease interrupts the build ---- */

/* Forgets the events not yet appended (appended, or written with the outcome). */
static void events_clear(struct job *j)
{
    for (size_t i = 0; i < j->nevents; i++) {
        free(j->kinds[i]);
        free(j->bodies[i]);
    }
    j->nevents = 0;
}

static void flush_events(struct job *j)
{
    char err[256];
    const struct build_record *rec = j->ctx.rec;
    enum db_status st = store_events_append(j->conn, rec->id, j->o->name, (const char *const *)j->kinds,
                                            (const char *const *)j->bodies, j->nevents,
                                            j->stage_dirty ? j->stage : NULL, j->percent, err, sizeof(err));
    if (st == DB_LOST_LEASE) {
        atomic_store(&j->ctx.lost, true);
        j->ctx.interrupted = 1;
    } else if (st != DB_OK) {
        log_warnx("worker %s: build %s: cannot record its progress: %s", j->o->name, rec->id, err);
    }
    events_clear(j);
    j->stage_dirty = false;
    j->last_flush = clock_monotonic_ms();
}

static void add_event(struct job *j, const char *kind, char *body)
{
    if (j->nevents == EVENT_BATCH)
        flush_events(j);
    j->kinds[j->nevents] = xstrdup(kind);
    j->bodies[j->nevents++] = body;
    if (j->nevents == EVENT_BATCH || clock_monotonic_ms() - j->last_flush >= FLUSH_MS)
        flush_events(j);
}

void worker_progress(struct worker_ctx *ctx, const char *stage, int percent, const char *message)
{
    struct job *j = ctx->priv;
    snprintf(j->stage, sizeof(j->stage), "%s", stage);
    j->percent = percent;
    j->stage_dirty = true;
    json_t *doc = json_pack("{s:s, s:i, s:s}", "stage", stage, "progress", percent, "message", message);
    char *body = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(doc);
    add_event(j, "progress", xstrdup(body ? body : "{}"));
    free(body);
    flush_events(j); /* progress shows at once */
}

void worker_log(struct worker_ctx *ctx, const char *line)
{
    struct job *j = ctx->priv;
    /* a log line is text: drop bytes a JSON or SSE consumer could choke on */
    char *clean = xstrdup(line);
    for (char *p = clean; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t')
            *p = ' ';
    add_event(j, "log", clean);
}

/*
 * A failed build's log ends with why, as `debate build` prints it
 * ("error: unknown package ..."): the log is what every client reads (text
 * and stream), not only the build record. One log line per line of the
 * message; written with the outcome, while the lease is still held.
 */
static void log_failure(struct job *j, const struct worker_outcome *out)
{
    _cleanup_free_ char *msg = xstrdup(out->error_message[0] ? out->error_message : out->error_code);
    const char *prefix = "error: ";
    for (char *line = msg, *next; line != NULL; line = next, prefix = "") {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        _cleanup_free_ char *text = xasprintf("%s%s", prefix, line);
        worker_log(&j->ctx, text);
    }
}

/* ---- the heartbeat ---- */

static void *heartbeat_main(void *arg)
{
    struct job *j = arg;
    const struct config *cfg = j->o->cfg;
    unsigned period_ms = cfg->lease_seconds * 1000 / 3;
    char err[256];
    PGconn *c = *j->hb_conn; /* connected lazily: a short build never needs it */
    pthread_mutex_lock(&j->lock);
    while (!j->done) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += period_ms / 1000;
        until.tv_nsec += (long)(period_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!j->done && pthread_cond_timedwait(&j->wake, &j->lock, &until) != ETIMEDOUT)
            ;
        if (j->done)
            break;
        pthread_mutex_unlock(&j->lock);
        if (c == NULL || PQstatus(c) != CONNECTION_OK) {
            if (c != NULL)
                PQfinish(c);
            c = db_connect(j->o->conninfo, j->o->statement_timeout_ms, err, sizeof(err));
        }
        bool cancel = false;
        enum db_status st = c ? store_build_heartbeat(c, j->ctx.rec->id, j->o->name, cfg->lease_seconds, &cancel,
                                                      err, sizeof(err))
                              : DB_UNAVAILABLE;
        if (c != NULL && j->o->identity != NULL) {
            char ignored[128];
            store_worker_seen(c, j->o->name, j->o->identity, ignored, sizeof(ignored));
        }
        if (st == DB_LOST_LEASE) {
            log_warnx("worker %s: build %s: the lease is lost; stopping it", j->o->name, j->ctx.rec->id);
            atomic_store(&j->ctx.lost, true);
            j->ctx.interrupted = 1;
        } else if (st == DB_OK && cancel) {
            atomic_store(&j->ctx.cancelled, true);
            j->ctx.interrupted = 1;
        } else if (st != DB_OK) {
            log_warnx("worker %s: build %s: heartbeat failed: %s", j->o->name, j->ctx.rec->id, err);
        }
        if (atomic_load(j->o->stop))
            j->ctx.interrupted = 1;
        pthread_mutex_lock(&j->lock);
    }
    pthread_mutex_unlock(&j->lock);
    *j->hb_conn = c; /* kept for the next build */
    return NULL;
}

/* ---- one claimed build ---- */

static void run_job(struct worker_opts *o, PGconn *conn, PGconn **hb_conn, const struct build_record *rec)
{
    struct job j = {.o = o, .conn = conn, .hb_conn = hb_conn, .last_flush = clock_monotonic_ms()};
    j.ctx.cfg = o->cfg;
    j.ctx.rec = rec;
    j.ctx.priv = &j;
    pthread_mutex_init(&j.lock, NULL);
    pthread_cond_init(&j.wake, NULL);
    bool hb = pthread_create(&j.heartbeat, NULL, heartbeat_main, &j) == 0;
    log_infox("worker %s: build %s: attempt %d of %d", o->name, rec->id, rec->attempts, rec->max_attempts);

    struct worker_outcome out = {.status = "failed", .iso_size = -1, .error_code = "build_failed"};
    worker_execute_fn execute = o->execute ? o->execute : worker_execute_build;
    execute(&j.ctx, &out);
    /* The last log lines go with the outcome (one statement); a pending stage change goes first. */
    if (j.stage_dirty)
        flush_events(&j);

    pthread_mutex_lock(&j.lock);
    j.done = true;
    pthread_cond_signal(&j.wake);
    pthread_mutex_unlock(&j.lock);
    if (hb)
        pthread_join(j.heartbeat, NULL);

    char err[512];
    enum db_status st;
    if (atomic_load(&j.ctx.lost)) {
        log_warnx("worker %s: build %s: the lease was lost; its outcome (%s) is not recorded", o->name, rec->id,
                  out.status);
        goto done;
    }
    if (atomic_load(&j.ctx.cancelled)) {
        out.status = "cancelled";
        out.error_code = "cancelled";
        snprintf(out.error_message, sizeof(out.error_message), "cancelled by the submitter");
    } else if (atomic_load(o->stop) && strcmp(out.status, "succeeded") != 0) {
        /* shutting down: the build goes back to the queue for another worker */
        flush_events(&j);
        st = store_build_release(conn, rec->id, o->name, err, sizeof(err));
        log_infox("worker %s: build %s: given back to the queue (%s)", o->name, rec->id, db_status_str(st));
        goto done;
    }
    if (strcmp(out.status, "failed") == 0)
        log_failure(&j, &out);
    if (out.lock_hash[0] != '\0')
        store_build_set_lock(conn, rec->id, o->name, NULL, out.lock_hash, err, sizeof(err));
    struct build_result r = {.status = out.status, .iso_sha256 = out.iso_sha256, .iso_size = out.iso_size,
                             .error_code = out.error_code, .error_message = out.error_message,
                             .boot_verdict = out.boot_verdict, .boot_log = out.boot_log,
                             .event_kinds = (const char *const *)j.kinds,
                             .event_bodies = (const char *const *)j.bodies, .nevents = j.nevents};
    st = store_build_finish(conn, rec->id, o->name, &r, err, sizeof(err));
    if (st == DB_OK)
        log_infox("worker %s: build %s: %s%s%s", o->name, rec->id, out.status, out.iso_sha256[0] ? " sha256 " : "",
                  out.iso_sha256);
    else
        log_warnx("worker %s: build %s: cannot record the outcome: %s", o->name, rec->id,
                  st == DB_LOST_LEASE ? "the lease was lost" : err);
done:
    events_clear(&j);
    free(out.boot_verdict);
    free(out.boot_log);
    pthread_mutex_destroy(&j.lock);
    pthread_cond_destroy(&j.wake);
}

/*
 * A build taken over from an identity no live worker has (the claim's
 * rule): keyed for this worker's identity before it is built, so that its
 * key names what it runs with. 0: build it; -1: it went back to the queue
 * (the same recipe is in flight for this identity already) or the lease
 * is gone.
 */
static int take_over(struct worker_opts *o, PGconn *c, struct build_record *rec)
{
    _cleanup_free_ char *parts = NULL;
    char key[65], err[512];
    if (o->identity == NULL || rec->arch[0] == '\0' || rec->verify_of[0] != '\0' ||
        submit_key_for(rec->key_parts, o->identity, &parts, key) < 0 || strcmp(key, rec->build_key) == 0)
        return 0;
    enum db_status st = store_build_rekey(c, rec->id, o->name, o->identity, parts, key, err, sizeof(err));
    if (st == DB_OK) {
        log_infox("worker %s: build %s: no live worker has the identity it was keyed for; keyed for this one's "
                  "(tools %.12s)", o->name, rec->id, o->identity->tools);
        memcpy(rec->build_key, key, sizeof(rec->build_key));
        free(rec->key_parts);
        rec->key_parts = steal_pointer(&parts);
        return 0;
    }
    if (st == DB_CONFLICT) {
        st = store_build_release(c, rec->id, o->name, err, sizeof(err));
        log_infox("worker %s: build %s: the same recipe is in flight for this worker's identity; given back to "
                  "the queue (%s)", o->name, rec->id, db_status_str(st));
    } else {
        log_warnx("worker %s: build %s: cannot key it for this worker's identity: %s", o->name, rec->id, err);
    }
    return -1;
}

/* ---- the loop ---- */

static void wait_for_work(PGconn *c, unsigned ms, atomic_int *stop)
{
    for (unsigned waited = 0; waited < ms && !atomic_load(stop); waited += 250) {
        struct pollfd pf = {.fd = PQsocket(c), .events = POLLIN};
        if (pf.fd < 0 || poll(&pf, 1, 250) < 0)
            return;
        if (pf.revents == 0)
            continue;
        if (PQconsumeInput(c) == 0)
            return;
        bool woken = false;
        PGnotify *n;
        while ((n = PQnotifies(c)) != NULL) {
            woken = true;
            PQfreemem(n);
        }
        if (woken)
            return;
    }
}

void worker_run(struct worker_opts *o)
{
    const struct config *cfg = o->cfg;
    PGconn *c = NULL, *hb = NULL;
    uint64_t last_sweep = 0, last_gc = 0, last_seen = 0;
    struct claim_filter filter = {.kind = o->kind ? o->kind : "build", .identity = o->identity,
                                  .live_s = 3 * cfg->lease_seconds};
    char err[512];
    while (!atomic_load(o->stop)) {
        if (c == NULL || PQstatus(c) != CONNECTION_OK) {
            if (c != NULL)
                PQfinish(c);
            c = db_connect(o->conninfo, o->statement_timeout_ms, err, sizeof(err));
            /*
             * A worker's commits need not wait for the WAL flush: whatever a
             * database crash could lose of them (a claim, a progress batch,
             * an outcome) is redone, since the build stays or goes back to
             * running with an expiring lease and the sweep requeues it.
             * Submissions, on the server's connections, stay synchronous.
             * And its statements, prepared once (db_exec_params), keep one
             * plan: a claim planned anew each time spends more on planning
             * than on claiming, and the generic plan is the same index scan.
             */
            if (c != NULL && db_exec(c, "SET synchronous_commit = off; SET plan_cache_mode = force_generic_plan",
                                     err, sizeof(err)) != DB_OK)
                log_warnx("worker %s: %s", o->name, err);
            if (c == NULL || db_exec(c, "LISTEN debate_queue", err, sizeof(err)) != DB_OK) {
                log_warnx("worker %s: the database is not reachable: %s", o->name, err);
                if (c != NULL)
                    PQfinish(c);
                c = NULL;
                for (int i = 0; i < 20 && !atomic_load(o->stop); i++)
                    usleep(100000);
                continue;
            }
        }
        uint64_t now = clock_monotonic_ms();
        if (o->identity != NULL && (last_seen == 0 || now - last_seen >= cfg->lease_seconds * 333ull)) {
            if (store_worker_seen(c, o->name, o->identity, err, sizeof(err)) == DB_OK)
                last_seen = now;
            else
                log_warnx("worker %s: cannot say it is running: %s", o->name, err);
        }
        if (now - last_sweep >= cfg->lease_seconds * 500ull) {
            int requeued = 0, failed = 0;
            if (store_build_sweep(c, &requeued, &failed, err, sizeof(err)) == DB_OK && (requeued || failed))
                log_infox("worker %s: sweep: %d builds whose worker stopped answering requeued, %d failed", o->name,
                          requeued, failed);
            int stale = 0; /* rebuilds no live worker can make: failed after ten minutes, with their verdict */
            if (store_build_sweep_rebuilds(c, 3 * cfg->lease_seconds, 600, &stale, err, sizeof(err)) == DB_OK &&
                stale > 0)
                log_infox("worker %s: sweep: %d rebuilds no live worker can make failed", o->name, stale);
            int gone = 0; /* workers that died without saying so: gone from the table after a day */
            if (store_workers_forget(c, 86400, &gone, err, sizeof(err)) == DB_OK && gone > 0)
                log_infox("worker %s: sweep: %d workers not seen for a day forgotten", o->name, gone);
            last_sweep = now;
        }
        if (o->execute == NULL && now - last_gc >= 600000ull) {
            struct artifact_gc_stats gs;
            if (artifact_gc(cfg->artifact_dir, cfg->artifact_budget_mb, c, &gs, err, sizeof(err)) < 0)
                log_warnx("worker %s: artifact garbage collection: %s", o->name, err);
            last_gc = now;
        }
        struct build_record rec;
        enum db_status st = store_build_claim_for(c, o->name, cfg->lease_seconds, &filter, &rec, err, sizeof(err));
        if (st == DB_OK) {
            if (take_over(o, c, &rec) == 0)
                run_job(o, c, &hb, &rec);
            build_record_release(&rec);
            last_gc = 0;    /* collect after each build */
            last_seen = 0;  /* and say it is still there */
        } else if (st == DB_NOT_FOUND) {
            unsigned ms = cfg->lease_seconds * 500;
            wait_for_work(c, ms < 5000 ? ms : 5000, o->stop);
        } else {
            log_warnx("worker %s: cannot claim a build: %s", o->name, err);
            PQfinish(c);
            c = NULL;
        }
    }
    if (c != NULL && o->identity != NULL && PQstatus(c) == CONNECTION_OK)
        store_worker_gone(c, o->name, err, sizeof(err));
    if (c != NULL)
        PQfinish(c);
    if (hb != NULL)
        PQfinish(hb);
}

void *worker_thread(void *opts)
{
    worker_run(opts);
    return NULL;
}

void worker_pool_start(struct worker_pool *p, const struct config *cfg, const char *conninfo, unsigned n,
                       atomic_int *stop, worker_execute_fn execute, const char *kind,
                       const struct builder_id *identity)
{
    p->n = n;
    p->opts = xcalloc(n ? n : 1, sizeof(*p->opts));
    p->threads = xcalloc(n ? n : 1, sizeof(*p->threads));
    for (unsigned i = 0; i < n; i++) {
        struct worker_opts *o = &p->opts[i];
        o->cfg = cfg;
        o->conninfo = conninfo;
        o->execute = execute;
        o->kind = kind;
        o->identity = identity;
        o->stop = stop;
        worker_name(o, i);
        pthread_create(&p->threads[i], NULL, worker_thread, o);
    }
}

void worker_pool_join(struct worker_pool *p)
{
    for (unsigned i = 0; i < p->n; i++)
        pthread_join(p->threads[i], NULL);
    free(p->opts);
    free(p->threads);
    memset(p, 0, sizeof(*p));
}

/* ---- the engine as a worker's payload ---- */

static void engine_progress(void *arg, enum engine_stage stage, int percent, const char *message)
{
    if (stage != STAGE_DONE) /* the build is done once its ISO is in the store */
        worker_progress(arg, engine_stage_name(stage), percent, message);
}

static void engine_log(void *arg, const char *line)
{
    worker_log(arg, line);
}

/*
 * The boot check's verdict and console into the outcome (the build record
 * keeps them; the artifact store keeps ISOs by content, and a console is
 * one build's), and the verdict as the log's last line.
 */
static void boot_outcome(struct worker_ctx *ctx, const char *iso, const struct bootcheck_result *boot,
                         struct worker_outcome *out)
{
    json_t *verdict = bootcheck_json(boot);
    out->boot_verdict = json_dumps(verdict, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(verdict);
    _cleanup_free_ char *path = xasprintf("%s.boot.log", iso);
    size_t len;
    if (read_file(path, 2 * BOOTCHECK_LOG_CAP + 4096, &out->boot_log, &len) < 0)
        out->boot_log = xstrdup("");
    unlink(path);
    char line[128];
    snprintf(line, sizeof(line), "boot check: bios %s, uefi %s (%lld s)", bootcheck_verdict_name(boot->bios),
             bootcheck_verdict_name(boot->uefi), boot->seconds);
    worker_log(ctx, line);
}

int worker_execute_build(struct worker_ctx *ctx, struct worker_outcome *out)
{
    const struct config *cfg = ctx->cfg;
    const struct build_record *rec = ctx->rec;
    struct recipe r;
    struct recipe_error rerr;
    if (rec->recipe == NULL || recipe_parse(rec->recipe, strlen(rec->recipe), &r, &rerr) < 0) {
        out->error_code = "invalid_recipe";
        recipe_error_format(&rerr, out->error_message, sizeof(out->error_message));
        return -1;
    }
    _cleanup_free_ char *tmp = xasprintf("%s/tmp", cfg->artifact_dir);
    int rc = mkdir_p(tmp, 0755);
    if (rc < 0) {
        snprintf(out->error_message, sizeof(out->error_message), "cannot create \"%s\": %s", tmp, strerror(-rc));
        recipe_release(&r);
        return -1;
    }
    _cleanup_free_ char *iso = xasprintf("%s/%s-%d.iso", tmp, rec->id, rec->attempts);
    _cleanup_free_ char *manifest = xasprintf("%s.manifest.json", iso);
    _cleanup_free_ char *lock_path = NULL;
    if (rec->lock != NULL) {
        lock_path = xasprintf("%s/%s-%d.lock.json", tmp, rec->id, rec->attempts);
        if ((rc = write_file_atomic(lock_path, rec->lock, strlen(rec->lock), 0644)) < 0) {
            snprintf(out->error_message, sizeof(out->error_message), "cannot write the lock: %s", strerror(-rc));
            recipe_release(&r);
            return -1;
        }
    }
    struct engine_opts eo = {.cfg = cfg, .output = iso, .lock_path = lock_path, .hook_timeout_s = cfg->hook_timeout,
                             .timeout_s = cfg->build_timeout, .progress = engine_progress, .progress_arg = ctx,
                             .log = engine_log, .interrupted = &ctx->interrupted, .boot_check = rec->boot_check,
                             .cold = rec->verify_of[0] != '\0'};
    struct engine_result res;
    char msg[4096];
    enum engine_error cause = engine_build(&r, &eo, &res, msg, sizeof(msg));
    recipe_release(&r);
    if (lock_path != NULL)
        unlink(lock_path);
    snprintf(out->lock_hash, sizeof(out->lock_hash), "%s", res.lock_hash);
    if (cause != ENGINE_OK) {
        out->error_code = engine_error_code(cause);
        snprintf(out->error_message, sizeof(out->error_message), "%.2047s", msg);
        unlink(iso);
        unlink(manifest);
        return -1;
    }
    if (res.boot.checked)
        boot_outcome(ctx, iso, &res.boot, out);
    return worker_publish(ctx, iso, manifest, res.iso_sha256, res.iso_size, out);
}

int worker_publish(struct worker_ctx *ctx, const char *iso, const char *manifest, const char *sha256,
                   long long size, struct worker_outcome *out)
{
    worker_progress(ctx, "verifying", 100, "storing the ISO by its SHA-256");
    char err[512];
    if (artifact_publish(ctx->cfg->artifact_dir, iso, manifest, sha256, err, sizeof(err)) < 0) {
        out->error_code = "build_failed";
        snprintf(out->error_message, sizeof(out->error_message), "%s", err);
        unlink(iso);
        unlink(manifest);
        return -1;
    }
    struct job *j = ctx->priv;
    if (store_artifact_add(j->conn, sha256, size, err, sizeof(err)) != DB_OK)
        log_warnx("build %s: cannot index its artifact: %s", ctx->rec->id, err);
    worker_progress(ctx, "done", 100, sha256);
    out->status = "succeeded";
    snprintf(out->iso_sha256, sizeof(out->iso_sha256), "%s", sha256);
    out->iso_size = size;
    out->error_code = NULL;
    return 0;
}
