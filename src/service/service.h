/*
 * The build service as one object: what every submission's cache key
 * needs from this host (the mirror, the tools digest), the table of
 * finished builds, and the in-process workers. `debate serve` owns one;
 * the HTTP routes, and whatever else submits (the page, the client
 * commands), read it through submit.h and finished.h.
 *
 * Lifecycle: service_init (main thread, before any request: computes the
 * host's key parts, no threads), service_start (starts the package index
 * loader, sweeps stale cgroups and starts cfg->nworkers workers on
 * conninfo), service_stop (interrupts and joins the workers: their builds
 * go back to the queue; stops the loader), service_release. stop and
 * release may be called without start.
 *
 * Threads: after service_init, mirror and tools_digest are read-only and
 * any thread may read them; the finished table and the package indexes
 * lock themselves.
 */
#ifndef DEBATE_SERVICE_SERVICE_H
#define DEBATE_SERVICE_SERVICE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"
#include "service/finished.h"
#include "service/packages.h"
#include "service/worker.h"

struct service {
    const struct config *cfg;
    char *mirror;          /* where unlocked recipes' packages come from */
    char *security_mirror; /* where their RELEASE-security suite comes from */
    char tools_digest[65]; /* SHA-256 of the host tool versions: part of every cache key */
    struct finished *finished;
    struct packages *packages; /* the package indexes for the page's completion */
    struct worker_pool workers;
    unsigned nworkers; /* running in this process (0 before start) */
    atomic_int workers_stop;
};

/* Computes the host's key parts (runs dpkg-query once) and makes the finished table. */
void service_init(struct service *svc, const struct config *cfg);
/* Starts the package index loader, and cfg->nworkers build workers on the database at conninfo. */
void service_start(struct service *svc, const char *conninfo);
/* Interrupts the workers' builds (back to the queue) and waits for them. */
void service_stop(struct service *svc);
void service_release(struct service *svc);

#endif
