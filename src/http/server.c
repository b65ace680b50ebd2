#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o/socket/evloop.h>
#include <openssl/rand.h>

#include "http/routes.h"
#include "http/tls.h"
#include "log.h"
#include "util.h"
#include "banned.h"

_Thread_local unsigned server_loop_index;

struct listener {
    struct loop *loop;
    h2o_accept_ctx_t *accept_ctx;
    h2o_socket_t *sock;
};

struct loop {
    struct server *srv;
    unsigned index;
    pthread_t thread;
    h2o_evloop_t *evloop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_https, accept_http;
    struct listener https, http;
    int https_fd, http_fd; /* bound by server_init; closed by the loop once started */
    bool started;
    size_t open_connections; /* touched by this loop's thread only */
    struct executor_loop db;
};

struct executor_loop *server_db_loop(h2o_req_t *req)
{
    struct loop *lp = H2O_STRUCT_FROM_MEMBER(struct loop, ctx, req->conn->ctx);
    return &lp->db;
}

static int parse_addr(const char *addr, unsigned port, struct sockaddr_storage *ss, socklen_t *sslen)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (void *)ss;
    struct sockaddr_in6 *in6 = (void *)ss;
    if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        *sslen = sizeof(*in);
    } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *sslen = sizeof(*in6);
    } else {
        return -1;
    }
    return 0;
}

/*
 * SO_REUSEPORT lets every loop have its own listener on one port, but it
 * would also let a second debate (or anything else of the same user that
 * sets it) bind a port this one holds, and the kernel would split the
 * connections between them. So the first listener of a port is preceded by
 * a plain bind: a port that anything holds already is refused.
 */
static int port_is_free(const struct sockaddr_storage *ss, socklen_t sslen)
{
    _cleanup_close_ int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0)
        return -1;
    return bind(fd, (const struct sockaddr *)ss, sslen);
}

/* A listener on addr:port; the first of a port (first) also makes sure nothing else holds it. */
static int listen_socket(const char *addr, unsigned port, bool first, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (parse_addr(addr, port, &ss, &sslen) < 0) {
        snprintf(err, errlen, "\"%s\" is not an IP address", addr);
        return -1;
    }
    if (first && port != 0 && port_is_free(&ss, sslen) < 0) {
        snprintf(err, errlen, "cannot listen on %s port %u: %s", addr, port,
                 errno == EADDRINUSE ? "the port is in use by another program" : strerror(errno));
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) < 0 ||
        bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, 1024) < 0) {
        snprintf(err, errlen, "cannot listen on %s port %u: %s", addr, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static unsigned bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void on_connection_close(void *data)
{
    struct loop *lp = data;
    lp->open_connections--;
    atomic_fetch_sub_explicit(&lp->srv->metrics.open_connections, 1, memory_order_relaxed);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct listener *l = listener->data;
    struct server *srv = l->loop->srv;
    if (err != NULL)
        return;
    for (int budget = 16; budget > 0; budget--) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        int64_t open = atomic_fetch_add_explicit(&srv->metrics.open_connections, 1, memory_order_relaxed);
        l->loop->open_connections++;
        sock->on_close.cb = on_connection_close;
        sock->on_close.data = l->loop;
        if (open >= (int64_t)srv->cfg->max_connections) {
            atomic_fetch_add_explicit(&srv->metrics.connections_refused, 1, memory_order_relaxed);
            h2o_socket_close(sock);
            continue;
        }
        atomic_fetch_add_explicit(&srv->metrics.connections_total, 1, memory_order_relaxed);
        h2o_accept(l->accept_ctx, sock);
    }
}

static void listener_start(struct loop *lp, struct listener *l, int fd, h2o_accept_ctx_t *actx)
{
    l->loop = lp;
    l->accept_ctx = actx;
    l->sock = h2o_evloop_socket_create(lp->evloop, fd, H2O_SOCKET_FLAG_DONT_READ);
    l->sock->data = l;
    h2o_socket_read_start(l->sock, on_accept);
}

static void listener_stop(struct listener *l)
{
    if (l->sock == NULL)
        return;
    h2o_socket_read_stop(l->sock);
    h2o_socket_close(l->sock);
    l->sock = NULL;
}

static void *loop_main(void *arg)
{
    struct loop *lp = arg;
    struct server *srv = lp->srv;
    server_loop_index = lp->index;
    log_buffer_start();
    lp->evloop = h2o_evloop_create();
    h2o_context_init(&lp->ctx, lp->evloop, &srv->globalconf);
    executor_loop_init(&lp->db, lp->evloop, lp->ctx.queue, srv->cfg->db_acquire_timeout_ms);
    lp->accept_https = (h2o_accept_ctx_t){.ctx = &lp->ctx, .hosts = srv->globalconf.hosts, .ssl_ctx = srv->ssl_ctx};
    lp->accept_http = (h2o_accept_ctx_t){.ctx = &lp->ctx, .hosts = srv->globalconf.hosts, .ssl_ctx = NULL};
    listener_start(lp, &lp->https, lp->https_fd, &lp->accept_https);
    listener_start(lp, &lp->http, lp->http_fd, &lp->accept_http);

    while (!atomic_load(&srv->stopping)) {
        h2o_evloop_run(lp->evloop, 200);
        log_flush();
    }

    /* Drain: stop accepting, finish what is in flight, then leave. */
    listener_stop(&lp->https);
    listener_stop(&lp->http);
    /*
     * Refuse keep-alive from now on. (h2o_context_request_shutdown would
     * also arm an HTTP/2 timer that h2o_context_dispose then asserts on.)
     */
    lp->ctx.shutdown_requested = 1;
    uint64_t deadline = clock_monotonic_ms() + (uint64_t)srv->cfg->drain_timeout * 1000;
    while ((lp->open_connections > 0 || lp->db.outstanding > 0) && clock_monotonic_ms() < deadline) {
        h2o_evloop_run(lp->evloop, 100);
        log_flush();
    }
    log_flush();
    if (lp->open_connections > 0 || lp->db.outstanding > 0) {
        /* The process is about to exit: what remains goes with it. */
        log_warnx("loop %u: drain timeout with %zu connections open, %zu database jobs due", lp->index,
                  lp->open_connections, lp->db.outstanding);
        log_flush();
        return NULL;
    }
    executor_loop_dispose(&lp->db);
    h2o_context_dispose(&lp->ctx);
    h2o_evloop_destroy(lp->evloop);
    return NULL;
}

static void globalconf_init(struct server *srv)
{
    const struct config *cfg = srv->cfg;
    h2o_config_init(&srv->globalconf);
    srv->globalconf_ready = true;
    srv->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("debate"));
    srv->globalconf.max_request_entity_size = cfg->max_body_bytes;
    srv->globalconf.handshake_timeout = (uint64_t)cfg->request_timeout * 1000;
    srv->globalconf.http1.req_timeout = (uint64_t)cfg->request_timeout * 1000;
    srv->globalconf.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *host = h2o_config_register_host(&srv->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    request_register(srv, h2o_config_register_path(host, "/", 0), true);
    /* h2o binds its own error responses to the fallback path: same filter and logger. */
    request_register(srv, &host->fallback_path, false);
}

static size_t loop_count(const struct config *cfg)
{
    if (cfg->threads > 0)
        return cfg->threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

/*
 * Every loop's listeners, bound now: server_init runs with the privileges
 * a port below 1024 needs, and the loops may start after they are gone.
 * The first loop takes the listeners that claimed the ports.
 */
static int loops_listen(struct server *srv, char *err, size_t errlen)
{
    const struct config *cfg = srv->cfg;
    srv->nloops = loop_count(cfg);
    srv->loops = xcalloc(srv->nloops, sizeof(*srv->loops));
    for (size_t i = 0; i < srv->nloops; i++)
        srv->loops[i].https_fd = srv->loops[i].http_fd = -1;
    srv->loops[0].https_fd = srv->https_fd;
    srv->loops[0].http_fd = srv->http_fd;
    srv->https_fd = srv->http_fd = -1; /* owned by the loops now */
    for (size_t i = 1; i < srv->nloops; i++) {
        struct loop *lp = &srv->loops[i];
        if ((lp->https_fd = listen_socket(cfg->listen, srv->https_port, false, err, errlen)) < 0 ||
            (lp->http_fd = listen_socket(cfg->listen, srv->http_port, false, err, errlen)) < 0)
            return -1;
    }
    return 0;
}

int server_init(struct server *srv, const struct config *cfg, char *err, size_t errlen)
{
    memset(srv, 0, sizeof(*srv));
    srv->cfg = cfg;
    srv->https_fd = srv->http_fd = -1;
    int rc = mkdir_p(cfg->data_dir, 0700);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create the data directory \"%s\": %s", cfg->data_dir, strerror(-rc));
        return -1;
    }
    srv->ssl_ctx = tls_context_new(cfg, &srv->ca_path, err, errlen);
    if (srv->ssl_ctx == NULL)
        return -1;
    _cleanup_free_ char *secret = xasprintf("%s/csrf.key", cfg->data_dir);
    if ((rc = csrf_init(&srv->csrf, secret)) < 0) {
        snprintf(err, errlen, "cannot read or create the CSRF secret \"%s\": %s", secret, strerror(-rc));
        return -1;
    }
    srv->routes = routes_table(&srv->nroutes);
    for (size_t i = 0; i < srv->nroutes && i < METRICS_MAX_ROUTES; i++)
        srv->route_names[i] = srv->routes[i].pattern;
    srv->ratelimit = ratelimit_new(cfg->rate_limit, (uint64_t)cfg->rate_window * 1000, cfg->rate_clients);
    srv->submit_limit = ratelimit_new(cfg->submit_limit, (uint64_t)cfg->submit_window * 1000, cfg->rate_clients);
    service_init(&srv->service, cfg);
    srv->service_ready = true;
    uint8_t id[4];
    RAND_bytes(id, sizeof(id));
    snprintf(srv->boot_id, sizeof(srv->boot_id), "%02x%02x%02x%02x", id[0], id[1], id[2], id[3]);
    if ((srv->https_fd = listen_socket(cfg->listen, cfg->https_port, true, err, errlen)) < 0)
        return -1;
    if (db_open(&srv->db, cfg, DB_OPEN_MIGRATE | DB_OPEN_WAIT | DB_OPEN_OWN, err, errlen) < 0)
        return -1;
    srv->db_ready = true;
    srv->https_port = bound_port(srv->https_fd);
    if ((srv->http_fd = listen_socket(cfg->listen, cfg->http_port, true, err, errlen)) < 0)
        return -1;
    srv->http_port = bound_port(srv->http_fd);
    if (loops_listen(srv, err, errlen) < 0)
        return -1;
    globalconf_init(srv);
    return 0;
}

int server_run(struct server *srv)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /*
     * As many database threads as kept connections: more threads than that
     * only add context switches on a small machine (bench/db); the
     * overflow is headroom for bursts of other users (workers, tools).
     */
    srv->executor = executor_new(srv->db.pool, srv->cfg->db_pool_size, srv->cfg->db_acquire_timeout_ms, 4096);
    for (size_t i = 0; i < srv->nloops; i++) {
        struct loop *lp = &srv->loops[i];
        lp->srv = srv;
        lp->index = (unsigned)i;
        pthread_create(&lp->thread, NULL, loop_main, lp);
        lp->started = true;
    }
    service_start(&srv->service);

    while (!atomic_load(&srv->stopping)) {
        struct timespec tick = {5, 0};
        int sig = sigtimedwait(&set, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            log_infox("received %s: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            atomic_store(&srv->stopping, 1);
        } else {
            ratelimit_sweep(srv->ratelimit, clock_monotonic_ms());
            /*
             * Give the allocator's free pages back. Each thread allocates
             * from an arena of its own, and an arena keeps the high-water
             * mark of what its thread ever held at once: a burst of ISO
             * downloads (a 256 KiB read buffer and a TLS record buffer as
             * large per response) or the package index's parsing leaves
             * megabytes free but resident for good, so the process looks
             * as if it grew (bench/soak). Trimming every tick costs a
             * walk of each arena's free lists, well under a millisecond,
             * and a page fault when freed pages are used again.
             */
            malloc_trim(0);
        }
    }
    service_stop(&srv->service);
    for (size_t i = 0; i < srv->nloops; i++)
        pthread_join(srv->loops[i].thread, NULL);
    executor_free(srv->executor);
    srv->executor = NULL;
    log_infox("stopped");
    return 0;
}

void server_close_listeners(struct server *srv)
{
    for (size_t i = 0; srv->loops != NULL && i < srv->nloops; i++) {
        struct loop *lp = &srv->loops[i];
        if (!lp->started && lp->https_fd >= 0)
            close(lp->https_fd);
        if (!lp->started && lp->http_fd >= 0)
            close(lp->http_fd);
        lp->https_fd = lp->http_fd = -1;
    }
}

void server_release(struct server *srv)
{
    if (srv->https_fd >= 0)
        close(srv->https_fd);
    if (srv->http_fd >= 0)
        close(srv->http_fd);
    executor_free(srv->executor);
    if (srv->db_ready)
        db_close(&srv->db);
    server_close_listeners(srv);
    free(srv->loops);
    if (srv->globalconf_ready)
        h2o_config_dispose(&srv->globalconf);
    ratelimit_free(srv->ratelimit);
    ratelimit_free(srv->submit_limit);
    if (srv->service_ready)
        service_release(&srv->service);
    if (srv->ssl_ctx)
        SSL_CTX_free(srv->ssl_ctx);
    free(srv->ca_path);
}
