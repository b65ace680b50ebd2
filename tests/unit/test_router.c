#include "harness.h"
#include "http/router.h"

static int fn(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    return 0;
}

static const struct route routes[] = {
    {METHOD_GET, "/health", fn, ROUTE_NO_RATELIMIT},
    {METHOD_GET, "/api/v1/builds", fn, 0},
    {METHOD_POST, "/api/v1/builds", fn, 0},
    {METHOD_GET, "/api/v1/builds/{id}", fn, 0},
    {METHOD_GET, "/api/v1/builds/{id}/log", fn, 0},
    {METHOD_POST, "/api/v1/builds/{id}/cancel", fn, 0},
};
#define N (sizeof(routes) / sizeof(routes[0]))

static int lookup(unsigned method, const char *path, struct route_match *m, unsigned *allowed)
{
    return router_lookup(routes, N, method, path, strlen(path), m, allowed);
}

TEST(exact_paths_and_methods)
{
    struct route_match m;
    unsigned allowed;
    CHECK_INT(lookup(METHOD_GET, "/health", &m, &allowed), 0);
    CHECK_INT(lookup(METHOD_HEAD, "/health", &m, &allowed), 0);
    CHECK_INT(lookup(METHOD_GET, "/api/v1/builds", &m, &allowed), 1);
    CHECK_INT(lookup(METHOD_POST, "/api/v1/builds", &m, &allowed), 2);
    CHECK_INT(allowed, METHOD_GET | METHOD_HEAD | METHOD_POST);
}

TEST(parameters_are_captured)
{
    struct route_match m;
    unsigned allowed;
    CHECK_INT(lookup(METHOD_GET, "/api/v1/builds/abc-123/log", &m, &allowed), 4);
    CHECK_INT(m.nparams, 1);
    CHECK_INT(m.params[0].len, 7);
    CHECK(memcmp(m.params[0].base, "abc-123", 7) == 0);
    CHECK_INT(lookup(METHOD_GET, "/api/v1/builds//log", &m, &allowed), -1);
    CHECK_INT(allowed, 0);
}

TEST(not_found_and_method_not_allowed)
{
    struct route_match m;
    unsigned allowed;
    CHECK_INT(lookup(METHOD_GET, "/nope", &m, &allowed), -1);
    CHECK_INT(allowed, 0);
    CHECK_INT(lookup(METHOD_GET, "/health/", &m, &allowed), -1);
    CHECK_INT(lookup(METHOD_GET, "/healthz", &m, &allowed), -1);
    CHECK_INT(lookup(METHOD_DELETE, "/health", &m, &allowed), -1);
    CHECK_INT(allowed, METHOD_GET | METHOD_HEAD);
    char buf[64];
    router_allow_header(allowed, buf, sizeof(buf));
    CHECK_STR(buf, "GET, HEAD");
    CHECK_INT(lookup(METHOD_GET, "/api/v1/builds/x/cancel", &m, &allowed), -1);
    CHECK_INT(allowed, METHOD_POST);
}

TEST(methods)
{
    CHECK_INT(router_method("GET", 3), METHOD_GET);
    CHECK_INT(router_method("get", 3), 0);
    CHECK_INT(router_method("BREW", 4), 0);
    CHECK(router_method_is_unsafe(METHOD_POST));
    CHECK(router_method_is_unsafe(METHOD_DELETE));
    CHECK(!router_method_is_unsafe(METHOD_GET));
    CHECK(!router_method_is_unsafe(METHOD_OPTIONS));
}
