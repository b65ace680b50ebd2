#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "http/csrf.h"
#include "harness.h"
#include "util.h"

static void new_csrf(struct csrf *c)
{
    char dir[] = "/tmp/debate-csrf-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    _cleanup_free_ char *path = xasprintf("%s/csrf.key", dir);
    CHECK_INT(csrf_init(c, path), 0);
    unlink(path);
    rmdir(dir);
}

TEST(valid_token_passes)
{
    struct csrf c;
    new_csrf(&c);
    char t[CSRF_TOKEN_LEN + 1];
    csrf_token_new(&c, t);
    CHECK_INT(strlen(t), CSRF_TOKEN_LEN);
    CHECK_INT(csrf_check(&c, t, strlen(t), t, strlen(t)), CSRF_OK);
}

TEST(missing_cookie_or_header_fails)
{
    struct csrf c;
    new_csrf(&c);
    char t[CSRF_TOKEN_LEN + 1];
    csrf_token_new(&c, t);
    CHECK_INT(csrf_check(&c, NULL, 0, t, strlen(t)), CSRF_NO_COOKIE);
    CHECK_INT(csrf_check(&c, t, strlen(t), NULL, 0), CSRF_NO_HEADER);
    CHECK_INT(csrf_check(&c, "", 0, t, strlen(t)), CSRF_NO_COOKIE);
}

TEST(mismatched_tokens_fail)
{
    struct csrf c;
    new_csrf(&c);
    char a[CSRF_TOKEN_LEN + 1], b[CSRF_TOKEN_LEN + 1];
    csrf_token_new(&c, a);
    csrf_token_new(&c, b);
    CHECK(strcmp(a, b) != 0);
    CHECK_INT(csrf_check(&c, a, strlen(a), b, strlen(b)), CSRF_MISMATCH);
}

TEST(forged_token_fails)
{
    struct csrf c;
    new_csrf(&c);
    /* An attacker who can plant a cookie sends the same random value twice. */
    uint8_t raw[48];
    char forged[CSRF_TOKEN_LEN + 1];
    RAND_bytes(raw, sizeof(raw));
    base64url_encode(forged, raw, sizeof(raw));
    CHECK_INT(csrf_check(&c, forged, strlen(forged), forged, strlen(forged)), CSRF_BAD_SIGNATURE);
    /* A real token with one character changed. */
    char t[CSRF_TOKEN_LEN + 1];
    csrf_token_new(&c, t);
    t[CSRF_TOKEN_LEN - 5] = t[CSRF_TOKEN_LEN - 5] == 'A' ? 'B' : 'A';
    CHECK_INT(csrf_check(&c, t, strlen(t), t, strlen(t)), CSRF_BAD_SIGNATURE);
}

TEST(token_from_another_secret_fails)
{
    struct csrf c1, c2;
    new_csrf(&c1);
    new_csrf(&c2);
    char t[CSRF_TOKEN_LEN + 1];
    csrf_token_new(&c1, t);
    CHECK_INT(csrf_check(&c2, t, strlen(t), t, strlen(t)), CSRF_BAD_SIGNATURE);
}

TEST(malformed_token_fails)
{
    struct csrf c;
    new_csrf(&c);
    CHECK_INT(csrf_check(&c, "abc", 3, "abc", 3), CSRF_MALFORMED);
    char bad[CSRF_TOKEN_LEN + 1];
    memset(bad, '*', CSRF_TOKEN_LEN);
    bad[CSRF_TOKEN_LEN] = '\0';
    CHECK_INT(csrf_check(&c, bad, CSRF_TOKEN_LEN, bad, CSRF_TOKEN_LEN), CSRF_MALFORMED);
}

TEST(secret_is_created_private_and_reused)
{
    char dir[] = "/tmp/debate-csrf-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    _cleanup_free_ char *path = xasprintf("%s/csrf.key", dir);
    struct csrf a, b;
    CHECK_INT(csrf_init(&a, path), 0);
    struct stat st;
    CHECK_INT(stat(path, &st), 0);
    CHECK_INT(st.st_mode & 0777, 0600);
    CHECK_INT(st.st_size, 32);
    CHECK_INT(csrf_init(&b, path), 0);
    char t[CSRF_TOKEN_LEN + 1];
    csrf_token_new(&a, t);
    CHECK_INT(csrf_check(&b, t, strlen(t), t, strlen(t)), CSRF_OK);
    unlink(path);
    rmdir(dir);
}
