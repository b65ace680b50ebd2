/*
 * The routing table: method sets and path patterns. A pattern is a path
 * whose segments are literal or "{name}" (one non-empty segment). Lookup is
 * a linear scan: the table is short, and order is the table's order.
 */
#ifndef DEBATE_HTTP_ROUTER_H
#define DEBATE_HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>

#define ROUTE_MAX_PARAMS 4

enum {
    METHOD_GET = 1 << 0,
    METHOD_HEAD = 1 << 1,
    METHOD_POST = 1 << 2,
    METHOD_PUT = 1 << 3,
    METHOD_PATCH = 1 << 4,
    METHOD_DELETE = 1 << 5,
    METHOD_OPTIONS = 1 << 6,
};

/* Route flags. */
enum {
    ROUTE_NO_RATELIMIT = 1 << 0, /* liveness probes must never be refused */
};

struct server;

struct route_match {
    h2o_iovec_t params[ROUTE_MAX_PARAMS];
    size_t nparams;
};

/* A handler answers the request (h2o_send_*) and returns 0. */
typedef int (*route_fn)(struct server *srv, h2o_req_t *req, const struct route_match *m);

struct route {
    unsigned methods; /* GET implies HEAD */
    const char *pattern;
    route_fn fn;
    unsigned flags;
};

/* Maps a method name to its METHOD_* bit; 0 when unknown. */
unsigned router_method(const char *name, size_t len);
/* True for methods that may change state (everything but GET, HEAD, OPTIONS). */
bool router_method_is_unsafe(unsigned method);

/*
 * Finds the route for method and path. Returns its index, or -1. *allowed is
 * set to the union of the methods of every route whose pattern matches the
 * path (0: no such path), for 404 versus 405 and the Allow header.
 */
int router_lookup(const struct route *routes, size_t n, unsigned method, const char *path, size_t len,
                  struct route_match *m, unsigned *allowed);
/* Index of the first route whose pattern matches path, whatever the method; -1 if none. */
int router_path_index(const struct route *routes, size_t n, const char *path, size_t len);

/* Writes an Allow header value for the method set into buf. */
void router_allow_header(unsigned methods, char *buf, size_t len);

#endif
