/*
 * Request policies that need no I/O: the trusted-host check, the client
 * identity used for rate limiting, and CORS decisions. Pure functions over
 * strings and addresses, unit-tested on their own.
 */
#ifndef DEBATE_HTTP_POLICY_H
#define DEBATE_HTTP_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config.h"
#include "http/ratelimit.h"

/*
 * Splits a Host header value into host and port and checks the host against
 * the list (case-insensitive; IPv6 literals in brackets). A malformed value
 * is refused.
 */
bool policy_host_allowed(const struct strlist *hosts, const char *authority, size_t len);

/* The host part of a Host value (brackets kept for IPv6), for redirects. */
bool policy_host_part(const char *authority, size_t len, const char **host, size_t *host_len);

/* Turns a socket address into a rate-limit key (IPv4 as v4-mapped IPv6). */
bool policy_key_from_sockaddr(const struct sockaddr *sa, struct ratelimit_key *key);

/*
 * The client's identity: the TCP peer, unless the peer is a trusted proxy,
 * in which case X-Forwarded-For is read from the right, skipping trusted
 * proxies, and the first other address is the client. A malformed entry
 * stops the walk at the last trusted hop.
 */
void policy_client_key(const struct strlist *trusted_proxies, const struct sockaddr *peer, const char *xff,
                       size_t xff_len, struct ratelimit_key *key);

/* Formats a key as text (IPv4 for mapped addresses). */
void policy_key_format(const struct ratelimit_key *key, char *buf, size_t len);

enum policy_media {
    POLICY_MEDIA_NONE,   /* no Content-Type */
    POLICY_MEDIA_JSON,   /* application/json, with or without parameters */
    POLICY_MEDIA_SIMPLE, /* one a plain HTML form can send: form-urlencoded, multipart/form-data, text/plain */
    POLICY_MEDIA_OTHER,  /* anything else */
};

/*
 * Classifies a Content-Type value by its media type (case-insensitive,
 * parameters after ';' ignored). ct may be NULL (no header).
 */
enum policy_media policy_media_type(const char *ct, size_t len);

enum cors_decision {
    CORS_NONE,              /* no Origin header: not a CORS request */
    CORS_ALLOWED,           /* add Access-Control-Allow-Origin */
    CORS_NOT_ALLOWED,       /* answer without CORS headers */
    CORS_PREFLIGHT_OK,      /* answer 204 with the allow headers */
    CORS_PREFLIGHT_DENIED,  /* answer 403 */
};

/*
 * True when an Accept-Encoding value (NULL: no header) accepts gzip: the
 * token "gzip" (or "*") with no q-value, or a q-value above zero. Case
 * does not matter; a malformed q-value counts as zero.
 */
bool policy_accepts_gzip(const char *value, size_t len);

/*
 * Decides a request's CORS treatment. A preflight is OPTIONS with an Origin
 * and an Access-Control-Request-Method.
 */
enum cors_decision policy_cors(const struct strlist *origins, bool is_options, const char *origin, size_t origin_len,
                               const char *request_method, size_t request_method_len);

#endif
