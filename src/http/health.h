#ifndef DEBATE_HTTP_HEALTH_H
#define DEBATE_HTTP_HEALTH_H

#include "http/router.h"

int health_get_ready(struct server *srv, h2o_req_t *req, const struct route_match *m);
int health_get_db(struct server *srv, h2o_req_t *req, const struct route_match *m);

/* 503 (database_busy or database_unavailable, Retry-After: 1) for a job that never got its answer. Returns 0. */
struct db_job;
int http_send_db_error(h2o_req_t *req, const struct db_job *job);

#endif
