/*
 * The web page's routes: the single-page app (GET / and GET /builds/{id},
 * both index.html), its other files (GET /assets/{name}) and the OpenAPI
 * document (GET /api/v1/openapi.json), all from the bytes compiled into
 * the binary (assets.h). HEAD too (the router adds it to GET).
 *
 * Each answer carries a strong ETag (the bytes' SHA-256; the gzip copy has
 * its own), answers If-None-Match with 304, goes out gzip-compressed when
 * the client accepts it and a compressed copy exists (Vary:
 * Accept-Encoding), and says Cache-Control: no-cache, so a browser keeps
 * the file and revalidates it: a new binary's page is seen at the next
 * load. The page's routes send the page's Content-Security-Policy
 * (HTTP_PAGE_CSP); the document keeps the API's.
 *
 * Handlers run on the loop thread and never block: everything is in memory.
 */
#ifndef DEBATE_HTTP_PAGE_H
#define DEBATE_HTTP_PAGE_H

#include "http/router.h"

int page_index(struct server *srv, h2o_req_t *req, const struct route_match *m);
int page_asset(struct server *srv, h2o_req_t *req, const struct route_match *m);
int page_openapi(struct server *srv, h2o_req_t *req, const struct route_match *m);

#endif
