#include "http/policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/router.h"
#include "util.h"
#include "banned.h"

bool policy_host_part(const char *a, size_t len, const char **host, size_t *host_len)
{
    const char *end = a + len, *port = NULL;
    if (len == 0)
        return false;
    if (a[0] == '[') {
        const char *close = memchr(a, ']', len);
        if (close == NULL)
            return false;
        *host = a;
        *host_len = (size_t)(close + 1 - a);
        if (close + 1 != end) {
            if (close[1] != ':')
                return false;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(a, ':', len);
        *host = a;
        *host_len = colon ? (size_t)(colon - a) : len;
        if (colon)
            port = colon + 1;
        for (size_t i = 0; i < *host_len; i++) {
            char c = a[i];
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '.';
            if (!ok)
                return false;
        }
    }
    if (port != NULL) {
        if (port == end || end - port > 5)
            return false;
        for (const char *p = port; p < end; p++)
            if (*p < '0' || *p > '9')
                return false;
    }
    return *host_len > 0;
}

bool policy_host_allowed(const struct strlist *hosts, const char *authority, size_t len)
{
    const char *h;
    size_t n;
    if (!policy_host_part(authority, len, &h, &n))
        return false;
    if (h[0] == '[') { /* the list holds IPv6 literals without brackets */
        h++;
        n -= 2;
    }
    return strlist_contains(hosts, h, n);
}

bool policy_key_from_sockaddr(const struct sockaddr *sa, struct ratelimit_key *key)
{
    memset(key, 0, sizeof(*key));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        key->addr[10] = key->addr[11] = 0xff;
        memcpy(key->addr + 12, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        memcpy(key->addr, &in6->sin6_addr, 16);
        return true;
    }
    return false;
}

static bool parse_ip(const char *s, size_t n, struct ratelimit_key *key)
{
    char buf[INET6_ADDRSTRLEN + 1];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(key, 0, sizeof(*key));
    struct in_addr v4;
    if (inet_pton(AF_INET, buf, &v4) == 1) {
        key->addr[10] = key->addr[11] = 0xff;
        memcpy(key->addr + 12, &v4, 4);
        return true;
    }
    return inet_pton(AF_INET6, buf, key->addr) == 1;
}

static bool is_trusted(const struct strlist *proxies, const struct ratelimit_key *key)
{
    for (size_t i = 0; i < proxies->count; i++) {
        uint8_t range[16];
        unsigned bits;
        if (ip_range_parse(proxies->items[i], range, &bits) && ip_range_contains(range, bits, key->addr))
            return true;
    }
    return false;
}

void policy_client_key(const struct strlist *trusted_proxies, const struct sockaddr *peer, const char *xff,
                       size_t xff_len, struct ratelimit_key *key)
{
    if (!policy_key_from_sockaddr(peer, key))
        memset(key, 0, sizeof(*key));
    if (xff == NULL || !is_trusted(trusted_proxies, key))
        return;
    const char *end = xff + xff_len;
    while (end > xff) {
        const char *comma = end;
        while (comma > xff && comma[-1] != ',')
            comma--;
        const char *s = comma, *e = end;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        struct ratelimit_key hop;
        if (!parse_ip(s, (size_t)(e - s), &hop))
            return; /* malformed: keep the last trusted hop */
        *key = hop;
        if (!is_trusted(trusted_proxies, &hop))
            return;
        end = comma > xff ? comma - 1 : xff;
    }
}

void policy_key_format(const struct ratelimit_key *key, char *buf, size_t len)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(key->addr, mapped, 12) == 0 && len >= 16) {
        /* Hot path (one per log line): no inet_ntop. */
        char *p = buf;
        for (int i = 12; i < 16; i++) {
            unsigned v = key->addr[i];
            if (v >= 100)
                *p++ = (char)('0' + v / 100);
            if (v >= 10)
                *p++ = (char)('0' + v / 10 % 10);
            *p++ = (char)('0' + v % 10);
            *p++ = i < 15 ? '.' : '\0';
        }
    } else if (memcmp(key->addr, mapped, 12) == 0)
        inet_ntop(AF_INET, key->addr + 12, buf, (socklen_t)len);
    else
        inet_ntop(AF_INET6, key->addr, buf, (socklen_t)len);
}

enum policy_media policy_media_type(const char *ct, size_t len)
{
    static const char *const simple[] = {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"};
    if (ct == NULL)
        return POLICY_MEDIA_NONE;
    const char *semi = memchr(ct, ';', len);
    size_t n = semi ? (size_t)(semi - ct) : len;
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    while (n > 0 && (ct[0] == ' ' || ct[0] == '\t'))
        ct++, n--;
    if (str_ieq(ct, n, "application/json"))
        return POLICY_MEDIA_JSON;
    for (size_t i = 0; i < ARRAY_SIZE(simple); i++)
        if (str_ieq(ct, n, simple[i]))
            return POLICY_MEDIA_SIMPLE;
    return POLICY_MEDIA_OTHER;
}

enum cors_decision policy_cors(const struct strlist *origins, bool is_options, const char *origin, size_t origin_len,
                               const char *request_method, size_t request_method_len)
{
    if (origin == NULL)
        return CORS_NONE;
    bool allowed = strlist_contains(origins, origin, origin_len);
    if (is_options && request_method != NULL) {
        unsigned m = router_method(request_method, request_method_len);
        return allowed && m != 0 ? CORS_PREFLIGHT_OK : CORS_PREFLIGHT_DENIED;
    }
    return allowed ? CORS_ALLOWED : CORS_NOT_ALLOWED;
}

/* The q-value of one Accept-Encoding element's parameters ("; q=0.5"): 1 without one, 0 when malformed. */
static double coding_quality(const char *p, const char *end)
{
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
            p++;
        if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            char num[8];
            size_t n = 0;
            for (p += 2; p < end && *p != ';' && *p != ' ' && n < sizeof(num) - 1; p++)
                num[n++] = *p;
            num[n] = '\0';
            char *stop;
            double q = strtod(num, &stop);
            return n == 0 || *stop != '\0' || q < 0 || q > 1 ? 0 : q;
        }
        while (p < end && *p != ';')
            p++;
    }
    return 1;
}

bool policy_accepts_gzip(const char *value, size_t len)
{
    /* An explicit "gzip;q=0" wins over "*": -1 means not named. */
    double gzip = -1, star = -1;
    const char *p = value, *end = value ? value + len : NULL;
    while (p != NULL && p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        while (p < stop && (*p == ' ' || *p == '\t'))
            p++;
        const char *tok = p;
        while (p < stop && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        size_t tlen = (size_t)(p - tok);
        if (str_ieq(tok, tlen, "gzip") || str_ieq(tok, tlen, "x-gzip"))
            gzip = coding_quality(p, stop);
        else if (str_ieq(tok, tlen, "*"))
            star = coding_quality(p, stop);
        p = comma ? comma + 1 : end;
    }
    return gzip >= 0 ? gzip > 0 : star > 0;
}
