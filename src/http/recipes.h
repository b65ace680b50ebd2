/*
 * The routes that help write a recipe (the page's editor, docs/api.md):
 * package name completion from the cached package index, and checking a
 * recipe without submitting it. What they mean is the service's
 * (service/packages.h, service/submit.h); these parse the request, map the
 * causes to status codes and render the answer, on the loop thread,
 * without blocking: the index is searched in memory and a recipe is
 * checked with no I/O.
 */
#ifndef DEBATE_HTTP_RECIPES_H
#define DEBATE_HTTP_RECIPES_H

#include "http/router.h"

/* GET /api/v1/packages?release=&q=&limit= */
int recipes_packages(struct server *srv, h2o_req_t *req, const struct route_match *m);
/* POST /api/v1/recipes/validate */
int recipes_validate(struct server *srv, h2o_req_t *req, const struct route_match *m);

#endif
