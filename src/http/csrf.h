/*
 * CSRF protection by signed double submit. A token is
 * base64url(nonce || HMAC-SHA256(secret, "debate-csrf-v1" || nonce)), 64
 * characters. The server hands it out as a __Host- cookie and in a JSON
 * body; an unsafe request must carry the cookie and the same value in the
 * X-CSRF-Token header, and the value must verify under the server's secret.
 * The signature stops an attacker who can plant a cookie (a sibling
 * subdomain, say) from choosing a token of their own.
 *
 * The secret is 32 random bytes in a file created at first start, mode 0600.
 */
#ifndef DEBATE_CSRF_H
#define DEBATE_CSRF_H

#include <stddef.h>
#include <stdint.h>

#define CSRF_COOKIE "__Host-debate_csrf"
#define CSRF_HEADER "x-csrf-token"
#define CSRF_TOKEN_LEN 64

struct csrf {
    uint8_t secret[32];
};

enum csrf_result {
    CSRF_OK,
    CSRF_NO_COOKIE,
    CSRF_NO_HEADER,
    CSRF_MISMATCH,
    CSRF_MALFORMED,
    CSRF_BAD_SIGNATURE,
};

/* Reads the secret from path, creating it when absent. Returns 0 or -errno. */
int csrf_init(struct csrf *c, const char *path);
/* Writes a fresh token and its NUL into out. */
void csrf_token_new(const struct csrf *c, char out[CSRF_TOKEN_LEN + 1]);
/* Checks a request's cookie and header values (NULL when absent). */
enum csrf_result csrf_check(const struct csrf *c, const char *cookie, size_t cookie_len, const char *header,
                            size_t header_len);
const char *csrf_strerror(enum csrf_result r);

#endif
