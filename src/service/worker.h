/*
 * Build workers: threads (in `debate serve`, or `debate worker` on other
 * machines) that take builds from the PostgreSQL queue and run them.
 *
 * A worker claims the oldest queued build (FOR UPDATE SKIP LOCKED), holds
 * it by a lease it renews from a heartbeat thread every third of
 * lease_seconds, and sleeps on LISTEN debate_queue when the queue is
 * empty. A heartbeat that finds the build's cancel flag set, or the lease
 * lost, interrupts the build: its sandbox dies within that heartbeat.
 * Every worker also sweeps: builds whose lease expired (their worker died)
 * go back to the queue until max_attempts, then fail.
 *
 * A worker with an identity (struct builder_id: the architecture, debate's
 * version, the digest of its tools' versions) says so in the workers table
 * when it starts, then every third of lease_seconds (from the heartbeat
 * while it builds), and claims only builds whose key was made for that
 * identity; it removes its row when it stops. A rebuild that verifies
 * (verify_of) runs cold: no base or kernel layer, only downloaded packages,
 * checked by their hashes.
 *
 * What a claimed build runs is a function (execute): the engine for
 * real builds; the queue tests plug in a no-op. Whatever ran, a build
 * that failed gets its error as the last lines of its log ("error: " and
 * the message, as `debate build` prints it) before the outcome is
 * recorded, so the text log and the event stream say why.
 *
 * The error code of a failed engine build is engine_error_code() of the
 * cause engine_build returned (never read from the message).
 */
#ifndef DEBATE_SERVICE_WORKER_H
#define DEBATE_SERVICE_WORKER_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"
#include "db/store.h"

struct worker_ctx;

/* Reported by the payload as it runs. */
void worker_progress(struct worker_ctx *ctx, const char *stage, int percent, const char *message);
void worker_log(struct worker_ctx *ctx, const char *line);

struct worker_outcome {
    const char *status; /* "succeeded", "failed", "cancelled" */
    char iso_sha256[65];
    long long iso_size;
    char lock_hash[65];
    const char *error_code;
    char error_message[2048];
    char *boot_verdict; /* succeeded with a boot check: its verdict as JSON text (malloc'd), else NULL */
    char *boot_log;     /* and its console (malloc'd), else NULL */
};

struct worker_ctx {
    const struct config *cfg;
    const struct build_record *rec;
    volatile sig_atomic_t interrupted; /* stop now: cancel, lost lease, shutdown */
    atomic_bool cancelled, lost;
    void *priv;
};

typedef int (*worker_execute_fn)(struct worker_ctx *ctx, struct worker_outcome *out);

struct worker_opts {
    const struct config *cfg;
    const char *conninfo;
    unsigned statement_timeout_ms;
    char name[160];            /* lease owner: host:pid:n */
    worker_execute_fn execute; /* NULL: worker_execute_build */
    const char *kind;          /* the job kind it takes: "build" (NULL) or "noop" */
    const struct builder_id *identity; /* what it builds with; NULL: it claims builds of any identity, unseen */
    atomic_int *stop;          /* set: finish (interrupting the running build) and return */
};

/* Runs until *o->stop; reconnects after database failures. */
void worker_run(struct worker_opts *o);
/* pthread entry for worker_run. */
void *worker_thread(void *opts);

/* The engine: recipe and lock from the record, the ISO into the artifact store. */
int worker_execute_build(struct worker_ctx *ctx, struct worker_outcome *out);

/*
 * The end of a build that made an ISO and its manifest in artifact_dir/tmp
 * (sha256 and size of the ISO's bytes): moves both into the store, indexes
 * the artifact and fills out as succeeded; or removes both and fills out
 * with the cause. 0 or -1. The no-op jobs of the queue tests publish
 * through it too.
 */
int worker_publish(struct worker_ctx *ctx, const char *iso, const char *manifest, const char *sha256,
                   long long size, struct worker_outcome *out);

/* Fills o->name with host:pid:index. */
void worker_name(struct worker_opts *o, unsigned index);

/* n workers on threads of their own, stopped together by *stop. */
struct worker_pool {
    struct worker_opts *opts;
    pthread_t *threads;
    unsigned n;
};

/* Starts n workers (execute, kind and identity as in worker_opts; NULL: real builds, any identity). */
void worker_pool_start(struct worker_pool *p, const struct config *cfg, const char *conninfo, unsigned n,
                       atomic_int *stop, worker_execute_fn execute, const char *kind,
                       const struct builder_id *identity);
/* Waits for every worker to return (after *stop was set) and frees the pool. */
void worker_pool_join(struct worker_pool *p);

#endif
