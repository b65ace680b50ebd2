/* The build API's routes (docs/api.md). */
#ifndef DEBATE_HTTP_BUILDS_H
#define DEBATE_HTTP_BUILDS_H

#include "http/router.h"

struct server;

int builds_post(struct server *srv, h2o_req_t *req, const struct route_match *m);
int builds_list(struct server *srv, h2o_req_t *req, const struct route_match *m);
int builds_get(struct server *srv, h2o_req_t *req, const struct route_match *m);
int builds_log(struct server *srv, h2o_req_t *req, const struct route_match *m);
int builds_iso(struct server *srv, h2o_req_t *req, const struct route_match *m);
int builds_manifest(struct server *srv, h2o_req_t *req, const struct route_match *m);
/* The boot check's console, text/plain; 404 when the build had none. */
int builds_boot_log(struct server *srv, h2o_req_t *req, const struct route_match *m);
int builds_cancel(struct server *srv, h2o_req_t *req, const struct route_match *m);
int builds_verify(struct server *srv, h2o_req_t *req, const struct route_match *m);

#endif
