#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "banned.h"

static void oom(size_t n)
{
    fprintf(stderr, "debate: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *xcalloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (p == NULL)
        oom(count * n);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *out = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(0);
    return out;
}

void freep(void *p)
{
    free(*(void **)p);
}

void closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

static uint64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t clock_monotonic_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

uint64_t clock_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

bool ct_equal(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= x[i] ^ y[i];
    return acc == 0;
}

bool str_ieq(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(s, lit, len) == 0;
}

/* The prefix length after '/': digits only, at most max. */
static bool prefix_parse(const char *s, unsigned max, unsigned *bits)
{
    unsigned v = 0;
    if (*s == '\0' || strlen(s) > 3)
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (unsigned)(*s - '0');
    }
    *bits = v;
    return v <= max;
}

bool ip_range_parse(const char *s, uint8_t addr[16], unsigned *bits)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (strlen(s) >= sizeof(buf))
        return false;
    memcpy(buf, s, strlen(s) + 1);
    char *slash = strchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    memset(addr, 0, 16);
    unsigned prefix = 128;
    if (inet_pton(AF_INET, buf, addr + 12) == 1) {
        addr[10] = addr[11] = 0xff;
        if (slash != NULL && !prefix_parse(slash + 1, 32, &prefix))
            return false;
        *bits = slash != NULL ? 96 + prefix : 128;
        return true;
    }
    if (inet_pton(AF_INET6, buf, addr) != 1 || (slash != NULL && !prefix_parse(slash + 1, 128, &prefix)))
        return false;
    *bits = prefix;
    return true;
}

bool ip_range_contains(const uint8_t range[16], unsigned bits, const uint8_t addr[16])
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(range, addr, whole) != 0)
        return false;
    uint8_t mask = (uint8_t)(0xff00 >> rest);
    return rest == 0 || (range[whole] & mask) == (addr[whole] & mask);
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t base64url_len(size_t n)
{
    return (n * 4 + 2) / 3;
}

void base64url_encode(char *dst, const uint8_t *src, size_t n)
{
    size_t i = 0, o = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
        dst[o++] = b64url[v >> 18 & 63];
        dst[o++] = b64url[v >> 12 & 63];
        dst[o++] = b64url[v >> 6 & 63];
        dst[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)src[i] << 16;
        dst[o++] = b64url[v >> 18 & 63];
        dst[o++] = b64url[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
        dst[o++] = b64url[v >> 18 & 63];
        dst[o++] = b64url[v >> 12 & 63];
        dst[o++] = b64url[v >> 6 & 63];
    }
    dst[o] = '\0';
}

static int b64url_value(char c)
{
    const char *p = c ? strchr(b64url, c) : NULL;
    return p ? (int)(p - b64url) : -1;
}

ssize_t base64url_decode(uint8_t *dst, size_t cap, const char *src, size_t len)
{
    if (len % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(src[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap)
                return -1;
            dst[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* Leftover bits must be zero, so each byte string has one encoding. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (ssize_t)o;
}

int fsync_path(const char *path)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fsync(fd) < 0)
        return -errno;
    return 0;
}

int fsync_parent(const char *path)
{
    _cleanup_free_ char *copy = xstrdup(path);
    return fsync_path(dirname(copy));
}

int file_publish(const char *from, const char *to)
{
    if (fsync_path(from) < 0 || rename(from, to) < 0)
        return -errno;
    return fsync_parent(to);
}

int write_file_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
    _cleanup_free_ char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -errno;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto fail;
        }
        p += n;
        len -= (size_t)n;
    }
    if (fchmod(fd, mode) < 0 || fsync(fd) < 0) {
        rc = -errno;
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = -errno;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        rc = -errno;
        goto fail;
    }
    return fsync_parent(path);
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}

int read_file(const char *path, size_t max, char **out, size_t *len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* Room for one byte past cap: reading it means the file is larger. */
    size_t cap = max < 4096 ? max : 4096, n = 0;
    _cleanup_free_ char *buf = xmalloc(cap + 2);
    for (;;) {
        if (n > max)
            return -EFBIG;
        if (n > cap) {
            cap = cap * 2 > max ? max : cap * 2;
            buf = xrealloc(buf, cap + 2);
        }
        ssize_t r = read(fd, buf + n, cap + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = steal_pointer(&buf);
    *len = n;
    return 0;
}

int mkdir_p(const char *path, unsigned mode)
{
    _cleanup_free_ char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

bool is_sha256_hex(const char *s)
{
    if (s == NULL || strlen(s) != 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

int copy_fd(int in, int out)
{
    for (;;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
        if (n == 0)
            return 0;
        if (n > 0)
            continue;
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
            return -1;
        char buf[1 << 16];
        for (;;) {
            ssize_t r = read(in, buf, sizeof(buf));
            if (r == 0)
                return 0;
            if (r < 0 || write(out, buf, (size_t)r) != r)
                return -1;
        }
    }
}
