/*
 * A test-only program around the real worker loop (src/service/worker.c)
 * with a no-op job kind, for the queue tests and bench/service:
 *
 *   queue_worker submit CONNINFO N        queue N no-op jobs (max_attempts from DEBATE_MAX_ATTEMPTS, default 3)
 *   queue_worker work CONNINFO WORKERS    run WORKERS worker threads on "noop" jobs until SIGTERM
 *
 * A no-op job sleeps 0 to DEBATE_NOOP_MS milliseconds (default 0), writes
 * one log event and succeeds. Settings come from DEBATE_* as for debate
 * (lease_seconds matters most). It is built by the Makefile into
 * build/tools/, never installed.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "engine/recipe.h"
#include "db/migrate.h"
#include "db/pool.h"
#include "db/store.h"
#include "log.h"
#include "service/worker.h"
#include "digest.h"
#include "util.h"

static atomic_int stop;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop, 1);
}

static int noop(struct worker_ctx *ctx, struct worker_outcome *out)
{
    const char *env = getenv("DEBATE_NOOP_MS");
    unsigned max_ms = env ? (unsigned)atoi(env) : 0;
    unsigned ms = 0;
    if (max_ms > 0) {
        unsigned r;
        RAND_bytes((unsigned char *)&r, sizeof(r));
        ms = r % (max_ms + 1);
    }
    worker_progress(ctx, "running", 50, "no-op");
    for (unsigned slept = 0; slept < ms && !ctx->interrupted; slept += 10)
        usleep(10000);
    worker_log(ctx, "no-op done");
    /* a succeeded build names an ISO: the no-op names a hash of its id */
    sha256_hex(ctx->rec->id, strlen(ctx->rec->id), out->iso_sha256);
    out->iso_size = 0;
    out->status = "succeeded";
    out->error_code = NULL;
    return 0;
}

static int submit(const char *conninfo, long n)
{
    char err[512];
    PGconn *c = db_connect(conninfo, 0, err, sizeof(err));
    int applied;
    if (c == NULL || migrate_run(c, &applied, err, sizeof(err)) != DB_OK) {
        fprintf(stderr, "queue_worker: %s\n", err);
        return 1;
    }
    const char *ma = getenv("DEBATE_MAX_ATTEMPTS");
    for (long i = 0; i < n; i++) {
        uint8_t raw[16], token[32];
        RAND_bytes(raw, sizeof(raw));
        RAND_bytes(token, sizeof(token));
        char key[65], hash[65];
        sha256_hex(raw, sizeof(raw), key);
        sha256_hex("noop", 4, hash);
        struct build_new in = {.config_hash = hash, .build_key = key, .key_parts = "{}", .recipe = "{}",
                               .cancel_token_hash = token, .max_attempts = ma ? atoi(ma) : 3, .kind = "noop"};
        struct build_record rec;
        bool merged;
        if (store_build_submit(c, &in, &rec, &merged, err, sizeof(err)) != DB_OK) {
            fprintf(stderr, "queue_worker: %s\n", err);
            return 1;
        }
        build_record_release(&rec);
    }
    PQfinish(c);
    return 0;
}

static int work(const char *conninfo, unsigned n)
{
    struct config cfg;
    char err[2048];
    config_init(&cfg);
    if (config_load(&cfg, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "queue_worker: %s", err);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct worker_pool pool;
    worker_pool_start(&pool, &cfg, conninfo, n, &stop, noop, "noop");
    worker_pool_join(&pool);
    config_release(&cfg);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stderr, NULL, _IOLBF, 0);
    if (argc == 4 && strcmp(argv[1], "submit") == 0)
        return submit(argv[2], atol(argv[3]));
    if (argc == 4 && strcmp(argv[1], "work") == 0)
        return work(argv[2], (unsigned)atoi(argv[3]));
    fprintf(stderr, "usage: queue_worker submit CONNINFO N | work CONNINFO WORKERS\n");
    return 2;
}
