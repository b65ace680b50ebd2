/*
 * The front door's request checks, in the pipeline's order (request.c):
 * the raw head re-read strictly (framing_check: line ends, header names
 * and values, Content-Length, Transfer-Encoding, one Host, the size
 * limit), then, on a head it accepts, what the later steps read from it:
 * the method and path (router), Host (the trusted-host check), the
 * client key from X-Forwarded-For, CORS, the CSRF cookie and header,
 * Content-Type and Accept-Encoding. The input is the bytes a client sends.
 */
#include "fuzz.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "config.h"
#include "http/csrf.h"
#include "http/framing.h"
#include "http/policy.h"
#include "http/router.h"
#include "http/routes.h"
#include "banned.h"

#define MAX_HEAD 16384 /* max_header_bytes' default */

static struct config cfg;
static struct csrf csrf;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    config_init(&cfg);
    /* A server behind a proxy on loopback that lets one origin in. */
    char err[1024];
    setenv("DEBATE_TRUSTED_PROXIES", "127.0.0.1,::1", 1);
    setenv("DEBATE_CORS_ORIGINS", "https://app.example", 1);
    fuzz_require(config_load(&cfg, NULL, err, sizeof(err)) == 0);
    memset(csrf.secret, 7, sizeof(csrf.secret));
    return 0;
}

struct head {
    const char *method, *path;
    size_t method_len, path_len;
    unsigned methods;
};

static void check_request_line(struct head *h, const char *line, size_t n)
{
    const char *sp = memchr(line, ' ', n);
    h->method = line;
    h->method_len = sp ? (size_t)(sp - line) : n;
    h->methods = router_method(h->method, h->method_len);
    if (sp == NULL)
        return;
    h->path = sp + 1;
    const char *sp2 = memchr(h->path, ' ', n - h->method_len - 1);
    h->path_len = sp2 ? (size_t)(sp2 - h->path) : n - h->method_len - 1;
    size_t nroutes;
    const struct route *routes = routes_table(&nroutes);
    struct route_match m = {.nparams = 0}; /* set only on a match */
    unsigned allowed;
    int r = router_lookup(routes, nroutes, h->methods, h->path, h->path_len, &m, &allowed);
    fuzz_require(r < (int)nroutes && m.nparams <= ROUTE_MAX_PARAMS);
    fuzz_require(router_path_index(routes, nroutes, h->path, h->path_len) < (int)nroutes);
    char allow[96];
    router_allow_header(allowed, allow, sizeof(allow));
}

static void check_header(const struct head *h, const char *name, size_t name_len, const char *v, size_t n,
                         const char **cookie, size_t *cookie_len)
{
    if (str_ieq(name, name_len, "host")) {
        const char *host;
        size_t host_len;
        policy_host_allowed(&cfg.trusted_hosts, v, n);
        if (policy_host_part(v, n, &host, &host_len))
            fuzz_require(host >= v && host + host_len <= v + n);
    } else if (str_ieq(name, name_len, "x-forwarded-for")) {
        struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct ratelimit_key key;
        char text[64];
        policy_client_key(&cfg.trusted_proxies, (const struct sockaddr *)&peer, v, n, &key);
        policy_key_format(&key, text, sizeof(text));
        fuzz_require(memchr(text, '\0', sizeof(text)) != NULL);
    } else if (str_ieq(name, name_len, "origin")) {
        policy_cors(&cfg.cors_origins, h->methods == METHOD_OPTIONS, v, n, h->method, h->method_len);
    } else if (str_ieq(name, name_len, "content-type")) {
        policy_media_type(v, n);
    } else if (str_ieq(name, name_len, "accept-encoding")) {
        policy_accepts_gzip(v, n);
    } else if (str_ieq(name, name_len, "cookie")) {
        *cookie = v;
        *cookie_len = n;
    } else if (str_ieq(name, name_len, CSRF_HEADER)) {
        enum csrf_result r = csrf_check(&csrf, *cookie, *cookie_len, v, n);
        fuzz_require(csrf_strerror(r) != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t head_len;
    enum framing_result r = framing_check(buf, size, MAX_HEAD, &head_len);
    fuzz_require(framing_strerror(r) != NULL);
    if (r != FRAMING_OK)
        return 0;
    fuzz_require(head_len <= size && head_len <= MAX_HEAD);
    /* framing_check promises CRLF lines, token names and a colon on every header line. */
    struct head h = {0};
    const char *cookie = NULL;
    size_t cookie_len = 0;
    for (const char *p = buf, *end = buf + head_len - 2; p < end;) {
        const char *cr = memchr(p, '\r', (size_t)(end - p));
        fuzz_require(cr != NULL && cr[1] == '\n');
        size_t n = (size_t)(cr - p);
        if (n > 0 && h.method == NULL) {
            check_request_line(&h, p, n);
        } else if (n > 0) {
            const char *colon = memchr(p, ':', n);
            fuzz_require(colon != NULL && colon > p);
            const char *v = colon + 1;
            size_t vn = n - (size_t)(v - p);
            while (vn > 0 && (*v == ' ' || *v == '\t'))
                v++, vn--;
            while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
                vn--;
            check_header(&h, p, (size_t)(colon - p), v, vn, &cookie, &cookie_len);
        }
        p = cr + 2;
    }
    fuzz_require(h.method != NULL);
    return 0;
}
