/*
 * The routing table and the routes that need nothing but the front door.
 * The build API adds its routes here.
 */
#include <string.h>

#include "db/backup.h"
#include "http/builds.h"
#include "http/health.h"
#include "http/page.h"
#include "http/recipes.h"
#include "http/response.h"
#include "http/routes.h"
#include "http/server.h"
#include "util.h"
#include "banned.h"

static int get_health(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    (void)srv;
    (void)m;
    static const char body[] = "{\"status\":\"ok\",\"version\":\"" DEBATE_VERSION "\"}";
    return http_send(req, 200, "application/json", body, sizeof(body) - 1);
}

static int get_metrics(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    (void)m;
    size_t len;
    char *body = metrics_render(&srv->metrics, srv->route_names, srv->nroutes, &len);
    struct db_pool_stats ps;
    db_pool_stats(srv->db.pool, &ps);
    struct executor_stats es;
    executor_stats(srv->executor, &es);
    _cleanup_free_ char *more = xasprintf(
        "# HELP debate_db_connections Database connections, by state.\n"
        "# TYPE debate_db_connections gauge\n"
        "debate_db_connections{state=\"idle\"} %u\n"
        "debate_db_connections{state=\"in_use\"} %u\n"
        "# HELP debate_db_acquire_timeouts_total Requests that found no free database connection in time.\n"
        "# TYPE debate_db_acquire_timeouts_total counter\n"
        "debate_db_acquire_timeouts_total %llu\n"
        "# HELP debate_db_connections_discarded_total Broken database connections closed and replaced.\n"
        "# TYPE debate_db_connections_discarded_total counter\n"
        "debate_db_connections_discarded_total %llu\n"
        "# HELP debate_db_queue_length Database jobs waiting for a database thread.\n"
        "# TYPE debate_db_queue_length gauge\n"
        "debate_db_queue_length %u\n"
        "# HELP debate_backup_last_restore_test_success_timestamp_seconds When a restore test last succeeded (0: never).\n"
        "# TYPE debate_backup_last_restore_test_success_timestamp_seconds gauge\n"
        "debate_backup_last_restore_test_success_timestamp_seconds %lld\n",
        ps.idle, ps.in_use, (unsigned long long)(ps.timeouts + es.expired + es.rejected), (unsigned long long)ps.discarded, es.queued,
        backup_last_restore_test(srv->cfg));
    size_t more_len = strlen(more);
    body = xrealloc(body, len + more_len);
    memcpy(body + len, more, more_len);
    http_send(req, 200, "text/plain; version=0.0.4; charset=utf-8", body, len + more_len);
    free(body);
    return 0;
}

static int get_csrf(struct server *srv, h2o_req_t *req, const struct route_match *m)
{
    (void)m;
    char token[CSRF_TOKEN_LEN + 1];
    csrf_token_new(&srv->csrf, token);
    _cleanup_free_ char *cookie = xasprintf(CSRF_COOKIE "=%s; Path=/; Secure; HttpOnly; SameSite=Strict", token);
    http_add_header(req, "set-cookie", cookie, strlen(cookie));
    return http_send_json(req, 200,
                          json_pack("{s:s, s:s, s:s}", "token", token, "header", "X-CSRF-Token", "cookie", CSRF_COOKIE));
}

static const struct route routes[] = {
    {METHOD_GET, "/health", get_health, ROUTE_NO_RATELIMIT},
    {METHOD_GET, "/metrics", get_metrics, 0},
    {METHOD_GET, "/api/v1/csrf", get_csrf, 0},
    {METHOD_GET, "/ready", health_get_ready, ROUTE_NO_RATELIMIT},
    {METHOD_GET, "/api/v1/health/db", health_get_db, 0},
    {METHOD_POST, "/api/v1/builds", builds_post, 0},
    {METHOD_GET, "/api/v1/builds", builds_list, 0},
    {METHOD_GET, "/api/v1/builds/{id}", builds_get, 0},
    {METHOD_GET, "/api/v1/builds/{id}/log", builds_log, 0},
    {METHOD_GET, "/api/v1/builds/{id}/iso", builds_iso, 0},
    {METHOD_GET, "/api/v1/builds/{id}/manifest", builds_manifest, 0},
    {METHOD_GET, "/api/v1/builds/{id}/boot-log", builds_boot_log, 0},
    {METHOD_POST, "/api/v1/builds/{id}/cancel", builds_cancel, 0},
    {METHOD_POST, "/api/v1/builds/{id}/verify", builds_verify, 0},
    {METHOD_GET, "/api/v1/packages", recipes_packages, 0},
    {METHOD_POST, "/api/v1/recipes/validate", recipes_validate, 0},
    {METHOD_GET, "/api/v1/openapi.json", page_openapi, 0},
    {METHOD_GET, "/", page_index, 0},
    {METHOD_GET, "/builds/{id}", page_index, 0},
    /* In-memory constant bytes, fetched with every view of the page: see docs/security.md. */
    {METHOD_GET, "/assets/{name}", page_asset, ROUTE_NO_RATELIMIT},
};

const struct route *routes_table(size_t *n)
{
    *n = ARRAY_SIZE(routes);
    return routes;
}
