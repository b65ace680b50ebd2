/*
 * Small helpers shared by every module.
 *
 * Allocation: the x* wrappers abort on out-of-memory, so callers never test
 * for NULL. Buffers that hold outside input carry their own hard caps.
 * Time: monotonic milliseconds for deadlines, wall time for logs.
 */
#ifndef DEBATE_UTIL_H
#define DEBATE_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DEBATE_VERSION "0.1.0"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Formats into a new string; aborts on failure. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Frees *p; for __attribute__((cleanup)). */
void freep(void *p);
/* Closes *fd when it is >= 0; for __attribute__((cleanup)). */
void closep(int *fd);
#define _cleanup_free_ __attribute__((cleanup(freep)))
#define _cleanup_close_ __attribute__((cleanup(closep)))

/* Returns *pp and sets it to NULL: ownership leaves a cleanup variable. */
static inline void *steal_pointer(void *pp)
{
    void **p = pp;
    void *v = *p;
    *p = NULL;
    return v;
}

/* Returns *fd and sets it to -1: ownership leaves a _cleanup_close_ variable. */
static inline int steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}

/* Monotonic clock in milliseconds. */
uint64_t clock_monotonic_ms(void);

/* True for 64 lower-case hex digits: a SHA-256 as debate writes it. */
bool is_sha256_hex(const char *s);
/* Wall clock in milliseconds since the epoch. */
uint64_t clock_wall_ms(void);

/* Constant-time comparison of two equal-length buffers: true when equal. */
bool ct_equal(const void *a, const void *b, size_t n);

/* Case-insensitive comparison of a counted string with a C string. */
bool str_ieq(const char *s, size_t len, const char *lit);

/*
 * An IP address or range ("192.0.2.1", "10.0.0.0/8", "2001:db8::/32") as
 * 16 bytes (IPv4 as v4-mapped IPv6) and the number of leading bits that
 * count (a lone address counts all 128; an IPv4 /8 counts 104). False when
 * s is neither; addr and bits are then undefined.
 */
bool ip_range_parse(const char *s, uint8_t addr[16], unsigned *bits);
/* True when addr (16 bytes, v4-mapped for IPv4) lies in the range. */
bool ip_range_contains(const uint8_t range[16], unsigned bits, const uint8_t addr[16]);

/* Base64url without padding. dst must hold base64url_len(n) + 1 bytes. */
size_t base64url_len(size_t n);
void base64url_encode(char *dst, const uint8_t *src, size_t n);
/* Decodes into dst (cap bytes); returns the decoded length or -1. */
ssize_t base64url_decode(uint8_t *dst, size_t cap, const char *src, size_t len);

/*
 * Writes data to path atomically: a temporary file beside it, fsync, rename,
 * fsync of the directory. Returns 0 or -errno.
 */
int write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);
/* fsync of a file or a directory (opened read-only, never through a link). 0 or -errno. */
int fsync_path(const char *path);
/* fsync of the directory that holds path. 0 or -errno. */
int fsync_parent(const char *path);
/*
 * Puts a finished file in place: fsync of from, rename to to, fsync of to's
 * directory. A reader sees the old file or the whole new one, and the new
 * one survives a crash once this returns 0. 0 or -errno.
 */
int file_publish(const char *from, const char *to);
/* Reads a whole file up to max bytes. Returns 0 or -errno; *out is malloc'd. */
int read_file(const char *path, size_t max, char **out, size_t *len);
/* mkdir -p with the given mode. Returns 0 or -errno. */
int mkdir_p(const char *path, unsigned mode);
/* Copies in to out from their offsets to in's end (copy_file_range, else read and write). 0, or -1 and errno. */
int copy_fd(int in, int out);

#endif
