#ifndef DEBATE_HTTP_HEALTH_H
#define DEBATE_HTTP_HEALTH_H

#include "http/router.h"

int health_get_ready(struct server *srv, h2o_req_t *req, const struct route_match *m);
int health_get_db(struct server *srv, h2o_req_t *req, const struct route_match *m);

#endif
