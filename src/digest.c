#include "digest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "util.h"
#include "banned.h"

static void digest_hex(const unsigned char md[32], char out[65])
{
    for (int i = 0; i < 32; i++) {
        out[2 * i] = "0123456789abcdef"[md[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
    }
    out[64] = '\0';
}

void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned mdlen = sizeof(md);
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    digest_hex(md, out);
}

int sha256_file(const char *path, char out[65], long long *size)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    return sha256_fd(fd, out, size);
}

int sha256_fd(int fd, char out[65], long long *size)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        abort();
    long long total = 0;
    _cleanup_free_ char *buf = xmalloc(1 << 16);
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, 1 << 16);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        total += n;
    }
    unsigned char md[32];
    unsigned mdlen = sizeof(md);
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (rc < 0)
        return rc;
    digest_hex(md, out);
    if (size != NULL)
        *size = total;
    return 0;
}
