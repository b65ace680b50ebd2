#include "http/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/response.h"
#include "util.h"
#include "banned.h"

#define FILES_CHUNK (256 * 1024)

struct file_gen {
    h2o_generator_t super;
    int fd;
    off_t off, end; /* [off, end) still to send */
    struct stat at_start;
    char *buf;
};

static void file_gen_dispose(void *p)
{
    struct file_gen *g = p;
    if (g->fd >= 0)
        close(g->fd);
}

/* The file as it was when the response started: same size, not written since. */
static bool file_unchanged(const struct file_gen *g)
{
    struct stat st;
    return fstat(g->fd, &st) == 0 && st.st_size == g->at_start.st_size &&
           st.st_mtim.tv_sec == g->at_start.st_mtim.tv_sec && st.st_mtim.tv_nsec == g->at_start.st_mtim.tv_nsec;
}

static void file_gen_proceed(h2o_generator_t *self, h2o_req_t *req)
{
    struct file_gen *g = (struct file_gen *)self;
    size_t want = (size_t)(g->end - g->off) < FILES_CHUNK ? (size_t)(g->end - g->off) : FILES_CHUNK;
    ssize_t n = want ? pread(g->fd, g->buf, want, g->off) : 0;
    /* A file written to while it is sent is cut off: the client sees a short response, never other bytes. */
    if (n < 0 || (n == 0 && want > 0) || !file_unchanged(g)) {
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    g->off += n;
    h2o_iovec_t buf = h2o_iovec_init(g->buf, (size_t)n);
    h2o_send(req, &buf, 1, g->off >= g->end ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void file_gen_stop(h2o_generator_t *self, h2o_req_t *req)
{
    (void)self;
    (void)req;
}

int files_parse_range(const char *value, size_t len, off_t size, off_t *from, off_t *to)
{
    char v[64];
    if (len >= sizeof(v))
        return 0;
    memcpy(v, value, len);
    v[len] = '\0';
    if (strncmp(v, "bytes=", 6) != 0 || strchr(v, ',') != NULL)
        return 0;
    char *dash = strchr(v + 6, '-');
    if (dash == NULL)
        return 0;
    *dash = '\0';
    const char *a = v + 6, *b = dash + 1;
    char *end;
    if (*a == '\0') { /* the last N bytes */
        long long nb = strtoll(b, &end, 10);
        if (*b == '\0' || *end != '\0' || nb < 0)
            return 0;
        if (nb == 0 || size == 0)
            return -1;
        *from = nb >= size ? 0 : size - nb;
        *to = size - 1;
        return 1;
    }
    long long first = strtoll(a, &end, 10);
    if (*end != '\0' || first < 0)
        return 0;
    long long last = size - 1;
    if (*b != '\0') {
        last = strtoll(b, &end, 10);
        if (*end != '\0' || last < first)
            return 0;
    }
    if (first >= size)
        return -1;
    *from = first;
    *to = last >= size ? size - 1 : last;
    return 1;
}

/* If-None-Match names the entity tag: 304, nothing else. */
static bool not_modified(h2o_req_t *req, const char *etag)
{
    const h2o_iovec_t *inm = etag ? http_find_header(req, "if-none-match") : NULL;
    return inm != NULL && h2o_contains_token(inm->base, inm->len, etag, strlen(etag), ',');
}

/* The range to send: 200 (whole), 206 (with Content-Range), or 416 (answered here, returns 0). */
static int choose_range(h2o_req_t *req, off_t size, const char *what, off_t *from, off_t *to)
{
    *from = 0, *to = size - 1;
    const h2o_iovec_t *range = http_find_header(req, "range");
    int r = range ? files_parse_range(range->base, range->len, size, from, to) : 0;
    if (r < 0) {
        _cleanup_free_ char *cr = xasprintf("bytes */%lld", (long long)size);
        http_add_header(req, "content-range", cr, strlen(cr));
        _cleanup_free_ char *msg = xasprintf("the range starts past the end of %s", what ? what : "the file");
        http_send_error(req, 416, "range_not_satisfiable", msg, NULL);
        return 0;
    }
    if (r == 0) {
        *from = 0, *to = size - 1;
        return 200;
    }
    _cleanup_free_ char *cr = xasprintf("bytes %lld-%lld/%lld", (long long)*from, (long long)*to, (long long)size);
    http_add_header(req, "content-range", cr, strlen(cr));
    return 206;
}

static void start_stream(h2o_req_t *req, int fd, const struct stat *st, off_t from, off_t to, int status,
                         const char *content_type)
{
    struct file_gen *g = h2o_mem_alloc_shared(&req->pool, sizeof(*g), file_gen_dispose);
    g->super.proceed = file_gen_proceed;
    g->super.stop = file_gen_stop;
    g->fd = fd;
    g->at_start = *st;
    g->off = from;
    g->end = to + 1;
    g->buf = h2o_mem_alloc_pool(&req->pool, FILES_CHUNK);
    req->res.status = status;
    req->res.reason = status == 206 ? "Partial Content" : "OK";
    req->res.content_length = (size_t)(g->end - g->off);
    http_add_header(req, "content-type", content_type, strlen(content_type));
    h2o_start_response(req, &g->super);
    if (h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"))) {
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    file_gen_proceed(&g->super, req);
}

int files_send(h2o_req_t *req, const char *path, const struct files_opts *o)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return files_send_fd(req, fd, o);
}

int files_send_fd(h2o_req_t *req, int fd, const struct files_opts *o)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    if (o->etag != NULL)
        http_add_header(req, "etag", o->etag, strlen(o->etag));
    if (not_modified(req, o->etag)) {
        close(fd);
        req->res.status = 304;
        req->res.reason = "Not Modified";
        h2o_send_inline(req, NULL, 0);
        return 0;
    }
    if (o->disposition != NULL)
        http_add_header(req, "content-disposition", o->disposition, strlen(o->disposition));
    http_add_header(req, "accept-ranges", "bytes", 5);
    off_t from, to;
    int status = choose_range(req, st.st_size, o->what, &from, &to);
    if (status == 0) {
        close(fd);
        return 0;
    }
    start_stream(req, fd, &st, from, to, status, o->content_type);
    return 0;
}
