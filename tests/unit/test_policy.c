#include <arpa/inet.h>
#include <netinet/in.h>

#include "config.h"
#include "harness.h"
#include "http/policy.h"
#include "http/response.h"
#include "util.h"

/* Writable copies, as config.c makes them. */
#define S(x) ((char[]){x})

static struct strlist list(char **items, size_t n)
{
    struct strlist l = {items, n};
    return l;
}

#define HOST_OK(s) CHECK(policy_host_allowed(&hosts, s, strlen(s)))
#define HOST_BAD(s) CHECK(!policy_host_allowed(&hosts, s, strlen(s)))

TEST(host_check_accepts_trusted_hosts_with_or_without_port)
{
    char *items[] = {S("localhost"), S("127.0.0.1"), S("::1"), S("debate.example")};
    struct strlist hosts = list(items, 4);
    HOST_OK("localhost");
    HOST_OK("localhost:8443");
    HOST_OK("LOCALHOST:8443");
    HOST_OK("127.0.0.1:1");
    HOST_OK("[::1]:8443");
    HOST_OK("[::1]");
    HOST_OK("debate.example");
}

TEST(host_check_refuses_everything_else)
{
    char *items[] = {S("localhost"), S("127.0.0.1"), S("::1")};
    struct strlist hosts = list(items, 3);
    HOST_BAD("");
    HOST_BAD("evil.example");
    HOST_BAD("localhost.evil.example");
    HOST_BAD("evil.example:8443");
    HOST_BAD("localhost:");
    HOST_BAD("localhost:84a3");
    HOST_BAD("localhost:123456");
    HOST_BAD("local host");
    HOST_BAD("localhost@evil.example");
    HOST_BAD("localhost/x");
    HOST_BAD("[::1");
    HOST_BAD("[::1]x");
    HOST_BAD("[::2]:8443");
    HOST_BAD("::1");
}

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in in = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &in.sin_addr);
    return in;
}

static const char *client(const struct strlist *proxies, const char *peer, const char *xff)
{
    static char buf[64];
    struct sockaddr_in in = v4(peer);
    struct ratelimit_key k;
    policy_client_key(proxies, (struct sockaddr *)&in, xff, xff ? strlen(xff) : 0, &k);
    policy_key_format(&k, buf, sizeof(buf));
    return buf;
}

TEST(client_is_the_peer_unless_the_peer_is_a_trusted_proxy)
{
    char *items[] = {S("10.0.0.1"), S("10.0.0.2")};
    struct strlist proxies = list(items, 2);
    CHECK_STR(client(&proxies, "192.0.2.7", NULL), "192.0.2.7");
    /* An untrusted peer cannot choose its identity. */
    CHECK_STR(client(&proxies, "192.0.2.7", "203.0.113.9"), "192.0.2.7");
    /* A trusted proxy's header is read from the right, skipping proxies. */
    CHECK_STR(client(&proxies, "10.0.0.1", "203.0.113.9"), "203.0.113.9");
    CHECK_STR(client(&proxies, "10.0.0.1", "198.51.100.1, 203.0.113.9, 10.0.0.2"), "203.0.113.9");
    /* A forged left part does not matter. */
    CHECK_STR(client(&proxies, "10.0.0.1", "1.2.3.4, 203.0.113.9"), "203.0.113.9");
    /* Garbage stops the walk at the last trusted hop. */
    CHECK_STR(client(&proxies, "10.0.0.1", "203.0.113.9, nonsense"), "10.0.0.1");
    CHECK_STR(client(&proxies, "10.0.0.1", "10.0.0.2"), "10.0.0.2");
}

TEST(trusted_proxies_may_be_ranges)
{
    char *items[] = {S("10.0.0.0/8"), S("192.0.2.128/25"), S("2001:db8::/32")};
    struct strlist proxies = list(items, 3);
    CHECK_STR(client(&proxies, "10.200.3.4", "203.0.113.9"), "203.0.113.9");
    CHECK_STR(client(&proxies, "11.0.0.1", "203.0.113.9"), "11.0.0.1");
    CHECK_STR(client(&proxies, "192.0.2.200", "203.0.113.9"), "203.0.113.9");
    CHECK_STR(client(&proxies, "192.0.2.100", "203.0.113.9"), "192.0.2.100");
    /* The walk skips every hop in a range, IPv6 ones too. */
    CHECK_STR(client(&proxies, "10.0.0.1", "203.0.113.9, 2001:db8::5, 10.1.1.1"), "203.0.113.9");
    CHECK_STR(client(&proxies, "10.0.0.1", "203.0.113.9, 2001:db9::5"), "2001:db9::5");
}

static bool range_ok(const char *s)
{
    uint8_t addr[16];
    unsigned bits;
    return ip_range_parse(s, addr, &bits);
}

TEST(proxy_ranges_parse_strictly)
{
    CHECK(range_ok("127.0.0.1"));
    CHECK(range_ok("::1"));
    CHECK(range_ok("10.0.0.0/8"));
    CHECK(range_ok("0.0.0.0/0"));
    CHECK(range_ok("fd00::/8"));
    CHECK(range_ok("2001:db8::/128"));
    CHECK(!range_ok("10.0.0.0/33"));
    CHECK(!range_ok("fd00::/129"));
    CHECK(!range_ok("10.0.0.0/"));
    CHECK(!range_ok("10.0.0.0/8x"));
    CHECK(!range_ok("10.0.0.0/-1"));
    CHECK(!range_ok("proxy.example"));
    CHECK(!range_ok(""));
}

TEST(cors_decisions)
{
    char *items[] = {S("https://app.example")};
    struct strlist origins = list(items, 1);
    const char *ok = "https://app.example", *bad = "https://evil.example";
    CHECK_INT(policy_cors(&origins, false, NULL, 0, NULL, 0), CORS_NONE);
    CHECK_INT(policy_cors(&origins, false, ok, strlen(ok), NULL, 0), CORS_ALLOWED);
    CHECK_INT(policy_cors(&origins, false, bad, strlen(bad), NULL, 0), CORS_NOT_ALLOWED);
    CHECK_INT(policy_cors(&origins, true, ok, strlen(ok), "POST", 4), CORS_PREFLIGHT_OK);
    CHECK_INT(policy_cors(&origins, true, bad, strlen(bad), "POST", 4), CORS_PREFLIGHT_DENIED);
    CHECK_INT(policy_cors(&origins, true, ok, strlen(ok), "BREW", 4), CORS_PREFLIGHT_DENIED);
    /* A prefix or suffix of an allowed origin is another origin. */
    const char *longer = "https://app.example.evil";
    CHECK_INT(policy_cors(&origins, false, longer, strlen(longer), NULL, 0), CORS_NOT_ALLOWED);
    /* OPTIONS without Access-Control-Request-Method is not a preflight. */
    CHECK_INT(policy_cors(&origins, true, ok, strlen(ok), NULL, 0), CORS_ALLOWED);
}

TEST(security_header_set_is_the_spec_set)
{
    static const struct {
        const char *name, *value;
    } want[] = {
        {"strict-transport-security", "max-age=63072000; includeSubDomains"},
        {"x-frame-options", "DENY"},
        {"x-content-type-options", "nosniff"},
        {"referrer-policy", "no-referrer"},
        {"cross-origin-opener-policy", "same-origin"},
        {"cache-control", "no-store"},
    };
    size_t n;
    const struct http_header *have = http_security_headers(&n);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        size_t j = 0;
        while (j < n && !h2o_memis(have[j].name, have[j].name_len, want[i].name, strlen(want[i].name)))
            j++;
        CHECK(j < n);
        CHECK(h2o_memis(have[j].value, have[j].value_len, want[i].value, strlen(want[i].value)));
    }
    size_t j = 0;
    while (j < n && !h2o_memis(have[j].name, have[j].name_len, H2O_STRLIT("content-security-policy")))
        j++;
    CHECK(j < n);
    CHECK(h2o_strstr(have[j].value, have[j].value_len, H2O_STRLIT("frame-ancestors 'none'")) != SIZE_MAX);
}

#define MEDIA(s) policy_media_type(s, strlen(s))

TEST(media_type_json_with_or_without_parameters)
{
    CHECK_INT(MEDIA("application/json"), POLICY_MEDIA_JSON);
    CHECK_INT(MEDIA("Application/JSON"), POLICY_MEDIA_JSON);
    CHECK_INT(MEDIA("application/json; charset=utf-8"), POLICY_MEDIA_JSON);
    CHECK_INT(MEDIA("application/json ;charset=utf-8"), POLICY_MEDIA_JSON);
    CHECK_INT(MEDIA(" application/json"), POLICY_MEDIA_JSON);
    CHECK_INT(policy_media_type(NULL, 0), POLICY_MEDIA_NONE);
}

TEST(media_type_forms_are_simple_and_the_rest_other)
{
    CHECK_INT(MEDIA("text/plain"), POLICY_MEDIA_SIMPLE);
    CHECK_INT(MEDIA("TEXT/PLAIN;charset=UTF-8"), POLICY_MEDIA_SIMPLE);
    CHECK_INT(MEDIA("application/x-www-form-urlencoded"), POLICY_MEDIA_SIMPLE);
    CHECK_INT(MEDIA("multipart/form-data; boundary=----x"), POLICY_MEDIA_SIMPLE);
    CHECK_INT(MEDIA("application/xml"), POLICY_MEDIA_OTHER);
    CHECK_INT(MEDIA("application/jsonp"), POLICY_MEDIA_OTHER);
    CHECK_INT(MEDIA("application/json-seq"), POLICY_MEDIA_OTHER);
    CHECK_INT(MEDIA("json"), POLICY_MEDIA_OTHER);
    CHECK_INT(MEDIA(""), POLICY_MEDIA_OTHER);
}

#define GZIP(s) policy_accepts_gzip(s, strlen(s))

TEST(accept_encoding_gzip_is_read_with_its_quality)
{
    CHECK(!policy_accepts_gzip(NULL, 0));
    CHECK(!GZIP(""));
    CHECK(!GZIP("identity"));
    CHECK(!GZIP("br, deflate"));
    CHECK(GZIP("gzip"));
    CHECK(GZIP("GZip"));
    CHECK(GZIP("deflate, gzip, br"));
    CHECK(GZIP("gzip;q=0.5"));
    CHECK(GZIP("gzip ; q=1"));
    CHECK(GZIP("*"));
    CHECK(GZIP("x-gzip"));
    CHECK(!GZIP("gzip;q=0"));
    CHECK(!GZIP("gzip;q=0.000"));
    CHECK(!GZIP("gzip;q=0, *"));  /* named and refused: a wildcard does not bring it back */
    CHECK(!GZIP("*;q=0"));
    CHECK(!GZIP("gzip;q=junk"));  /* a malformed quality counts as zero */
    CHECK(!GZIP("gzipper"));
}

TEST(page_responses_may_replace_only_the_csp_and_cache_control)
{
    size_t n;
    const struct http_header *have = http_security_headers(&n);
    for (size_t i = 0; i < n; i++) {
        bool may = h2o_memis(have[i].name, have[i].name_len, H2O_STRLIT("content-security-policy")) ||
                   h2o_memis(have[i].name, have[i].name_len, H2O_STRLIT("cache-control"));
        CHECK(have[i].replaceable == may);
    }
    CHECK(strstr(HTTP_PAGE_CSP, "'unsafe-inline'") == NULL);
    CHECK(strstr(HTTP_PAGE_CSP, "'unsafe-eval'") == NULL);
    CHECK(strstr(HTTP_PAGE_CSP, "frame-ancestors 'none'") != NULL);
}
