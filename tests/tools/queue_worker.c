/*
 * A test-only program around the real worker loop (src/service/worker.c)
 * with a no-op job kind, for the queue tests and bench/service:
 *
 *   queue_worker submit CONNINFO N        queue N no-op jobs (max_attempts from DEBATE_MAX_ATTEMPTS, default 3)
 *   queue_worker work CONNINFO WORKERS    run WORKERS worker threads on "noop" jobs until SIGTERM
 *
 * A no-op job sleeps DEBATE_TEST_NOOP_MIN_MS (default 0) to DEBATE_NOOP_MS
 * milliseconds (default 0), writes one log event and succeeds. With
 * DEBATE_TEST_NOOP_ISO_BYTES set it also makes an "ISO" of that many bytes
 * (the same bytes for every attempt of a job: a function of its build_key)
 * in artifact_dir/tmp, as the engine does, and publishes it with the real
 * worker_publish: the fault tests see a store, a digest and a download.
 * With DEBATE_TEST_TOOLS set (64 hex digits), jobs are submitted for, and
 * workers claim as, the builder identity of those tools (amd64, this
 * debate): the identity tests run workers of two identities on one queue.
 * Settings come from DEBATE_* as for debate (lease_seconds and artifact_dir
 * matter most). It is built by the Makefile into build/tools/, never
 * installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
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

static unsigned env_unsigned(const char *name)
{
    const char *v = getenv(name);
    return v ? (unsigned)atoi(v) : 0;
}

/* Writes len bytes; a full disk is said as the engine says it. */
static int write_all(int fd, const char *path, const void *data, size_t len, struct worker_outcome *out)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            int saved = errno;
            out->error_code = saved == ENOSPC ? "disk_full" : "build_failed";
            snprintf(out->error_message, sizeof(out->error_message), "cannot write \"%s\": %s", path,
                     saved == ENOSPC ? "the disk is full" : strerror(saved));
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The job's ISO: blocks of SHA-256 chained from its build_key, written and hashed as they go. */
static int write_iso(const struct build_record *rec, const char *path, size_t size, char sha256[65],
                     struct worker_outcome *out)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(out->error_message, sizeof(out->error_message), "cannot create \"%s\": %s", path, strerror(errno));
        return -1;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    char block[65];
    snprintf(block, sizeof(block), "%s", rec->build_key);
    int rc = 0;
    for (size_t done = 0; done < size && rc == 0;) {
        sha256_hex(block, 64, block);
        size_t n = size - done < 64 ? size - done : 64;
        rc = write_all(fd, path, block, n, out);
        EVP_DigestUpdate(md, block, n);
        done += n;
    }
    unsigned char digest[32];
    EVP_DigestFinal_ex(md, digest, NULL);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 32; i++)
        snprintf(sha256 + 2 * i, 3, "%02x", digest[i]);
    return rc;
}

/* What the engine leaves in artifact_dir/tmp, published as worker_execute_build does. */
static int make_and_publish(struct worker_ctx *ctx, size_t size, struct worker_outcome *out)
{
    const struct build_record *rec = ctx->rec;
    _cleanup_free_ char *tmp = xasprintf("%s/tmp", ctx->cfg->artifact_dir);
    mkdir_p(tmp, 0755);
    _cleanup_free_ char *iso = xasprintf("%s/%s-%d.iso", tmp, rec->id, rec->attempts);
    _cleanup_free_ char *manifest = xasprintf("%s.manifest.json", iso);
    char sha256[65];
    if (write_iso(rec, iso, size, sha256, out) < 0) {
        unlink(iso);
        return -1;
    }
    _cleanup_free_ char *text = xasprintf("{\"iso_sha256\": \"%s\", \"iso_size\": %zu}\n", sha256, size);
    int rc = write_file_atomic(manifest, text, strlen(text), 0644);
    if (rc < 0) {
        out->error_code = rc == -ENOSPC ? "disk_full" : "build_failed";
        snprintf(out->error_message, sizeof(out->error_message), "cannot write \"%s\": %s", manifest,
                 rc == -ENOSPC ? "the disk is full" : strerror(-rc));
        unlink(iso);
        return -1;
    }
    return worker_publish(ctx, iso, manifest, sha256, (long long)size, out);
}

static int noop(struct worker_ctx *ctx, struct worker_outcome *out)
{
    unsigned min_ms = env_unsigned("DEBATE_TEST_NOOP_MIN_MS"), max_ms = env_unsigned("DEBATE_NOOP_MS");
    unsigned ms = min_ms;
    if (max_ms > min_ms) {
        unsigned r;
        RAND_bytes((unsigned char *)&r, sizeof(r));
        ms = min_ms + r % (max_ms - min_ms + 1);
    }
    worker_progress(ctx, "running", 50, "no-op");
    for (unsigned slept = 0; slept < ms && !ctx->interrupted; slept += 10)
        usleep(10000);
    size_t iso_bytes = env_unsigned("DEBATE_TEST_NOOP_ISO_BYTES");
    if (iso_bytes > 0) {
        if (make_and_publish(ctx, iso_bytes, out) < 0)
            return -1;
        worker_log(ctx, "no-op done");
        return 0;
    }
    worker_log(ctx, "no-op done");
    /* a succeeded build names an ISO: the no-op names a hash of its id */
    sha256_hex(ctx->rec->id, strlen(ctx->rec->id), out->iso_sha256);
    out->iso_size = 0;
    out->status = "succeeded";
    out->error_code = NULL;
    return 0;
}

/* The identity of DEBATE_TEST_TOOLS, or NULL when it is not set. */
static const struct builder_id *test_identity(struct builder_id *id)
{
    const char *tools = getenv("DEBATE_TEST_TOOLS");
    if (tools == NULL || strlen(tools) != 64)
        return NULL;
    snprintf(id->arch, sizeof(id->arch), "amd64");
    snprintf(id->builder, sizeof(id->builder), "debate %s", DEBATE_VERSION);
    snprintf(id->tools, sizeof(id->tools), "%s", tools);
    return id;
}

static int submit(const char *conninfo, long n)
{
    struct builder_id idbuf;
    const struct builder_id *id = test_identity(&idbuf);
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
                               .cancel_token_hash = token, .max_attempts = ma ? atoi(ma) : 3, .kind = "noop",
                               .identity = id};
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
    struct builder_id idbuf;
    worker_pool_start(&pool, &cfg, conninfo, n, &stop, noop, "noop", test_identity(&idbuf));
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
