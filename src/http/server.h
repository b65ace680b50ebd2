/*
 * debate serve's HTTP front door: one h2o event loop per thread, each with
 * its own SO_REUSEPORT listeners (HTTPS, and plain HTTP that only
 * redirects), sharing one configuration, TLS context, rate limiter and
 * metrics. See docs/internals/http.md.
 *
 * Threads: server_run is called from the main thread and returns after a
 * SIGTERM or SIGINT has drained the loops. Everything in struct server is
 * read-only after server_init except the atomics, the thread-safe rate
 * limiters and the service's finished-builds table (which locks itself).
 *
 * The build service (what a submission means) is the service/ layer's:
 * server_init makes it (service_init), server_run starts it once the
 * loops run and stops it after they have drained, server_release
 * releases it. The build workers are not in this process (see
 * docs/security.md: `debate serve` runs them in a process of its own).
 *
 * Privileges: server_init does everything that needs root (the TLS key,
 * the secrets in the data directory, every loop's listening socket, the
 * embedded PostgreSQL) and starts no thread, so that its caller may fork
 * and drop privileges before server_run.
 */
#ifndef DEBATE_HTTP_SERVER_H
#define DEBATE_HTTP_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <h2o.h>

#include "config.h"
#include "http/csrf.h"
#include "db/db.h"
#include "db/executor.h"
#include "http/metrics.h"
#include "http/router.h"
#include "http/ratelimit.h"
#include "service/service.h"

struct loop;

struct server {
    const struct config *cfg;
    SSL_CTX *ssl_ctx;
    char *ca_path; /* internal CA certificate, or NULL */
    struct csrf csrf;
    struct ratelimit *ratelimit;
    struct metrics metrics;
    h2o_globalconf_t globalconf;
    bool globalconf_ready;
    struct db db;
    bool db_ready;
    struct executor *executor;
    const struct route *routes;
    size_t nroutes;
    const char *route_names[METRICS_MAX_ROUTES];
    unsigned https_port, http_port; /* as bound (a configured 0 becomes the kernel's choice) */
    int https_fd, http_fd;          /* the first listeners, bound by server_init */
    char boot_id[9];
    atomic_int stopping;
    size_t nloops;
    struct loop *loops;
    struct ratelimit *submit_limit; /* submissions per client, stricter than ratelimit */
    struct service service;         /* the build service: key parts, finished builds, workers */
    bool service_ready;
};

/* The index of the loop running on this thread (0 outside the loops). */
extern _Thread_local unsigned server_loop_index;

/* The database completion queue of the loop serving req. */
struct executor_loop *server_db_loop(h2o_req_t *req);

/* Sets up TLS, secrets, listeners, the database. Returns 0, or -1 with a message in err. */
int server_init(struct server *srv, const struct config *cfg, char *err, size_t errlen);
/* Starts the loops and the database threads, runs until SIGTERM or SIGINT, drains, returns 0. */
int server_run(struct server *srv);
/* Closes the listeners server_init bound, in a process that will not run the loops. */
void server_close_listeners(struct server *srv);
void server_release(struct server *srv);

/* The rate-limit identity of the client of req (the peer, or X-Forwarded-For from a trusted proxy). */
struct ratelimit_key;
void request_client_key(struct server *srv, h2o_req_t *req, struct ratelimit_key *key);

/* Registers the request pipeline on a path of the host (request.c). */
void request_register(struct server *srv, h2o_pathconf_t *pathconf, bool with_handler);

#endif
