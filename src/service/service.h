/*
 * The build service as the front door sees it: what every submission's
 * cache key needs from this host (the mirror, the tools digest), the table
 * of finished builds, and the package indexes for the page's completion.
 * `debate serve` owns one; the HTTP routes, and whatever else submits (the
 * page, the client commands), read it through submit.h and finished.h.
 * The build workers are not part of it: they run in a process of their
 * own (serve's worker process, or `debate worker`), and meet the front
 * door only in PostgreSQL and the artifact store.
 *
 * Lifecycle: service_init (main thread, before any request and before
 * privileges are dropped: computes the host's key parts, no threads),
 * service_start (starts the package index loader), service_stop (stops
 * the loader), service_release. stop and release may be called without
 * start.
 *
 * Threads: after service_init, mirror, identity and nworkers are
 * read-only and any thread may read them; the finished table and the
 * package indexes lock themselves.
 */
#ifndef DEBATE_SERVICE_SERVICE_H
#define DEBATE_SERVICE_SERVICE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"
#include "db/store.h"
#include "service/finished.h"
#include "service/packages.h"

struct service {
    const struct config *cfg;
    char *mirror;          /* where unlocked recipes' packages come from */
    char *security_mirror; /* where their RELEASE-security suite comes from */
    struct builder_id identity; /* this host's: its builder and tools are part of every cache key
                                   unless a live worker of another identity builds (submit.h) */
    struct finished *finished;
    struct packages *packages; /* the package indexes for the page's completion */
    unsigned nworkers; /* build workers this server runs in its worker process; set before service_start */
};

/*
 * This host's builder identity: the architecture, debate's version, the
 * SHA-256 of the versions of the tools that write the image's bytes
 * (engine_tool_versions; runs dpkg-query once, scratch files in data_dir).
 */
void service_identity(const struct config *cfg, struct builder_id *id);

/* Computes the host's key parts (service_identity) and makes the finished table. */
void service_init(struct service *svc, const struct config *cfg);
/* Starts the package index loader. */
void service_start(struct service *svc);
/* Stops the package index loader. */
void service_stop(struct service *svc);
void service_release(struct service *svc);

#endif
