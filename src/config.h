/*
 * Configuration: a table of settings (name, type, default, bounds), read
 * from defaults, then an optional file of "name = value" lines, then
 * environment variables DEBATE_<NAME>. Later sources win.
 *
 * A name that is no setting is an error, never ignored: a file key, or any
 * DEBATE_* variable but the few that are not settings (DEBATE_CONFIG,
 * DEBATE_BIN, DEBATE_NOOP_MS, DEBATE_TEST_*); the message offers the
 * closest setting. After config_load every path setting is absolute,
 * relative ones taken from the working directory at the time of the call.
 *
 * Errors: config_load returns 0 or -1 after writing one message per bad
 * setting to the err buffer; on -1 the caller must not use cfg (only
 * release it).
 *
 * Threads: config_load reads the environment and the working directory;
 * call it before starting threads. A loaded config is read-only after.
 */
#ifndef DEBATE_CONFIG_H
#define DEBATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct strlist {
    char **items;
    size_t count;
};

struct config {
    char *data_dir;
    char *listen;
    unsigned https_port;
    unsigned http_port;
    unsigned threads;
    char *tls_cert;
    char *tls_key;
    struct strlist trusted_hosts;
    struct strlist cors_origins;
    struct strlist trusted_proxies;
    unsigned rate_limit;
    unsigned rate_window;
    unsigned rate_clients;
    unsigned max_header_bytes;
    unsigned max_body_bytes;
    unsigned max_connections;
    unsigned request_timeout;
    unsigned drain_timeout;
    int log_level;
    char *database_url;
    unsigned db_pool_size;
    unsigned db_pool_overflow;
    unsigned db_acquire_timeout_ms;
    unsigned db_statement_timeout_ms;
    char *pg_bindir;
    char *embedded_db_user;
    char *user; /* serve as root: the front door's user; empty: "debate" if it exists, else "nobody" */
    char *backup_dir;
    unsigned backup_retention_days;
    unsigned ready_min_free_mb;
    unsigned restore_test_max_age_days;
    char *mirror;
    char *security_mirror;
    char *archive_keyring;
    char *cache_dir;
    unsigned base_cache_mb;     /* the layers kept in cache_dir/bases and cache_dir/kernels; 0: none */
    unsigned sandbox_id_base;   /* root inside a sandbox is this uid/gid outside; 65536 ids from here */
    unsigned sandbox_memory_mb; /* per build, swap included */
    unsigned sandbox_pids;
    unsigned sandbox_cpu_s;
    unsigned sandbox_disk_mb;
    unsigned build_timeout;     /* wall-time limit of a build's sandbox, seconds */
    unsigned hook_timeout;      /* per hook, service builds */
    unsigned boot_check_timeout; /* per firmware of a boot check, seconds */
    char *workers;              /* serve's in-process build workers: a number, or "auto" (from cores and memory) */
    unsigned nworkers;          /* what workers came to */
    unsigned lease_seconds;     /* a claimed build's lease; heartbeats every third */
    unsigned max_attempts;
    char *artifact_dir;         /* content-addressed ISOs and manifests (default DATA_DIR/artifacts) */
    unsigned artifact_budget_mb;
    unsigned queue_max;         /* queued builds at most: submissions beyond get 503 */
    unsigned submit_limit;      /* submissions per client per submit_window seconds */
    unsigned submit_window;
    char *server;               /* the URL the client commands (submit, status, ...) talk to */
};

/* Fills in the defaults. */
void config_init(struct config *cfg);
void config_release(struct config *cfg);

/*
 * Applies the file (NULL: none) and then the environment, refuses unknown
 * names, validates, makes paths absolute and fills in the derived
 * settings. On failure returns -1 with the reasons, one per line, in err.
 */
int config_load(struct config *cfg, const char *file, char *err, size_t errlen);

/* Prints the effective configuration, one "name = value" line each. */
void config_print(const struct config *cfg, FILE *out);

bool strlist_contains(const struct strlist *l, const char *s, size_t len);

#endif
