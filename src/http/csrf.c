#include "http/csrf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "util.h"
#include "banned.h"

#define NONCE_LEN 16
#define MAC_LEN 32
#define RAW_LEN (NONCE_LEN + MAC_LEN)

static const char context[] = "debate-csrf-v1";

int csrf_init(struct csrf *c, const char *path)
{
    _cleanup_free_ char *data = NULL;
    size_t len;
    int rc = read_file(path, 4096, &data, &len);
    if (rc == 0) {
        if (len != sizeof(c->secret))
            return -EINVAL;
        memcpy(c->secret, data, len);
        return 0;
    }
    if (rc != -ENOENT)
        return rc;
    if (RAND_bytes(c->secret, sizeof(c->secret)) != 1)
        return -EIO;
    return write_file_atomic(path, c->secret, sizeof(c->secret), 0600);
}

static void sign(const struct csrf *c, const uint8_t nonce[NONCE_LEN], uint8_t mac[MAC_LEN])
{
    uint8_t msg[sizeof(context) - 1 + NONCE_LEN];
    memcpy(msg, context, sizeof(context) - 1);
    memcpy(msg + sizeof(context) - 1, nonce, NONCE_LEN);
    unsigned maclen = MAC_LEN;
    HMAC(EVP_sha256(), c->secret, sizeof(c->secret), msg, sizeof(msg), mac, &maclen);
}

void csrf_token_new(const struct csrf *c, char out[CSRF_TOKEN_LEN + 1])
{
    uint8_t raw[RAW_LEN];
    if (RAND_bytes(raw, NONCE_LEN) != 1)
        abort();
    sign(c, raw, raw + NONCE_LEN);
    base64url_encode(out, raw, RAW_LEN);
}

enum csrf_result csrf_check(const struct csrf *c, const char *cookie, size_t cookie_len, const char *header,
                            size_t header_len)
{
    if (cookie == NULL || cookie_len == 0)
        return CSRF_NO_COOKIE;
    if (header == NULL || header_len == 0)
        return CSRF_NO_HEADER;
    if (cookie_len != header_len || !ct_equal(cookie, header, cookie_len))
        return CSRF_MISMATCH;
    uint8_t raw[RAW_LEN], mac[MAC_LEN];
    if (header_len != CSRF_TOKEN_LEN || base64url_decode(raw, sizeof(raw), header, header_len) != RAW_LEN)
        return CSRF_MALFORMED;
    sign(c, raw, mac);
    return ct_equal(mac, raw + NONCE_LEN, MAC_LEN) ? CSRF_OK : CSRF_BAD_SIGNATURE;
}

const char *csrf_strerror(enum csrf_result r)
{
    switch (r) {
    case CSRF_OK:
        return "ok";
    case CSRF_NO_COOKIE:
        return "the " CSRF_COOKIE " cookie is missing; GET /api/v1/csrf first";
    case CSRF_NO_HEADER:
        return "the X-CSRF-Token header is missing";
    case CSRF_MISMATCH:
        return "the X-CSRF-Token header does not match the " CSRF_COOKIE " cookie";
    case CSRF_MALFORMED:
        return "the CSRF token is malformed";
    case CSRF_BAD_SIGNATURE:
        return "the CSRF token was not issued by this server";
    }
    return "unknown CSRF error";
}
