/*
 * Downloading a build's ISO and manifest (see client_download in
 * client.h). The ISO is written to OUT.part, locked against a second
 * download to the same place, resumed with Range from the part's length
 * after a drop or from an earlier run, and bounded by the record's
 * iso_size. Only a part that hashes to the record's iso_sha256 becomes OUT.
 *
 * A part left by a download of another ISO cannot pass: its bytes do not
 * hash to this record's. Such a resumed part is thrown away and the ISO
 * fetched once more from the first byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client_int.h"
#include "digest.h"
#include "util.h"
#include "banned.h"

/* A download that sees no byte for this long has stalled: reconnect. */
#define DOWNLOAD_IDLE_S 30L

/* What the build record promises about its ISO. */
struct iso_want {
    const char *iso_url, *manifest_url, *sha256;
    long long size;
};

/* The transfer of one attempt: where the bytes go and what they must be. */
struct fetch {
    const struct iso_want *want;
    const char *part;
    int fd;
    long long offset;           /* bytes in the part */
    long long resumed_at;       /* where the first 206 started, or -1 */
    enum client_status failure; /* set by the callbacks when they stop the transfer */
    struct client_error *e;
    struct client *c;
};

static enum client_status want_from_build(struct client *c, const json_t *b, struct iso_want *w,
                                          struct client_error *e)
{
    w->iso_url = json_string_value(json_object_get(b, "iso_url"));
    w->manifest_url = json_string_value(json_object_get(b, "manifest_url"));
    w->sha256 = json_string_value(json_object_get(b, "iso_sha256"));
    w->size = (long long)json_integer_value(json_object_get(b, "iso_size"));
    bool ok = w->iso_url != NULL && strncmp(w->iso_url, "/api/v1/", 8) == 0 && w->manifest_url != NULL &&
              strncmp(w->manifest_url, "/api/v1/", 8) == 0 && w->sha256 != NULL && is_sha256_hex(w->sha256) &&
              w->size > 0;
    if (!ok)
        return client_error_set(e, CLIENT_BAD_REPLY, "the build record from \"%s\" lacks a valid iso_url, "
                                "manifest_url, iso_sha256 or iso_size", client_server(c));
    return CLIENT_OK;
}

static bool fetch_fail(struct fetch *f, enum client_status s, const char *what)
{
    client_error_set(f->e, s, "%s", what);
    f->failure = s;
    return false;
}

/* "bytes A-B/T": the answer to our Range must start where the part ends, of an ISO of the promised size. */
static bool range_matches(const char *value, long long offset, long long size)
{
    long long a, b, total;
    char tail;
    return sscanf(value, "bytes %lld-%lld/%lld%c", &a, &b, &total, &tail) == 3 && a == offset && total == size &&
           b == size - 1;
}

static bool fetch_head(void *arg, const struct client_call *k)
{
    struct fetch *f = arg;
    _cleanup_free_ char *etag = xasprintf("\"%s\"", f->want->sha256);
    if (strcmp(k->etag, etag) != 0) {
        _cleanup_free_ char *msg = xasprintf("the ISO at \"%s%s\" is not the build's: its ETag is %s, the record "
                                             "says %s", client_server(f->c), f->want->iso_url,
                                             k->etag[0] ? k->etag : "missing", etag);
        return fetch_fail(f, CLIENT_MISMATCH, msg);
    }
    if (k->status == 206 && !range_matches(k->content_range, f->offset, f->want->size))
        return fetch_fail(f, CLIENT_BAD_REPLY, "the server answered a range that was not asked for");
    if (k->status == 206 && f->resumed_at < 0)
        f->resumed_at = f->offset;
    if (k->status != 206 && f->offset > 0) {
        /* The whole ISO came instead of the rest: start the part over. */
        if (ftruncate(f->fd, 0) < 0)
            return fetch_fail(f, CLIENT_LOCAL, "cannot truncate the partial download");
        f->offset = 0;
    }
    return true;
}

static bool fetch_write(void *arg, const char *buf, size_t n)
{
    struct fetch *f = arg;
    if ((long long)n > f->want->size - f->offset)
        return fetch_fail(f, CLIENT_BAD_REPLY, "the server sent more bytes than the ISO's iso_size");
    while (n > 0) {
        ssize_t w = pwrite(f->fd, buf, n, f->offset);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            _cleanup_free_ char *msg = xasprintf("cannot write \"%s\": %s", f->part, strerror(errno));
            return fetch_fail(f, CLIENT_LOCAL, msg);
        }
        buf += w;
        n -= (size_t)w;
        f->offset += w;
    }
    return true;
}

/* The part's length now, trimmed to nothing when it is longer than the ISO can be. */
static enum client_status part_length(struct fetch *f)
{
    struct stat st;
    if (fstat(f->fd, &st) < 0)
        return client_error_set(f->e, CLIENT_LOCAL, "cannot read \"%s\": %s", f->part, strerror(errno));
    f->offset = st.st_size;
    if (f->offset > f->want->size) {
        if (ftruncate(f->fd, 0) < 0)
            return client_error_set(f->e, CLIENT_LOCAL, "cannot truncate \"%s\": %s", f->part, strerror(errno));
        f->offset = 0;
    }
    return CLIENT_OK;
}

/* One GET of what the part lacks. */
static enum client_status fetch_once(struct fetch *f)
{
    _cleanup_free_ char *range = f->offset > 0 ? xasprintf("Range: bytes=%lld-", f->offset) : NULL;
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/x-iso9660-image");
    if (range != NULL)
        headers = curl_slist_append(headers, range);
    struct client_call k = {.method = "GET", .path = f->want->iso_url, .headers = headers, .on_head = fetch_head,
                            .sink = fetch_write, .arg = f, .idle_s = DOWNLOAD_IDLE_S};
    f->failure = CLIENT_OK;
    enum client_status st = client_call_perform(f->c, &k, f->e);
    if (f->failure != CLIENT_OK)
        st = f->failure;
    else if (st == CLIENT_OK && f->offset != f->want->size)
        st = client_error_set(f->e, CLIENT_NETWORK, "the download of \"%s%s\" ended %lld bytes short",
                              client_server(f->c), f->want->iso_url, f->want->size - f->offset);
    if (st == CLIENT_REFUSED && k.status == 416 && ftruncate(f->fd, 0) == 0)
        st = client_error_set(f->e, CLIENT_NETWORK, "the partial download was longer than the ISO");
    client_call_release(&k);
    curl_slist_free_all(headers);
    return st;
}

/* Fetches until the part holds iso_size bytes, reconnecting after drops while the retry window lasts. */
static enum client_status fetch_all(struct fetch *f)
{
    struct client_retry retry;
    client_retry_start(f->c, &retry);
    for (;;) {
        enum client_status st = part_length(f);
        if (st != CLIENT_OK || f->offset == f->want->size)
            return st;
        long long before = f->offset;
        st = fetch_once(f);
        bool again = st == CLIENT_NETWORK ||
                     (st == CLIENT_REFUSED && (f->e->http_status >= 500 || f->e->http_status == 429));
        if (!again)
            return st;
        if (f->offset > before)
            client_retry_start(f->c, &retry);
        if (!client_retry_wait(f->c, &retry))
            return client_interrupted(f->c) ? client_error_set(f->e, CLIENT_INTERRUPTED, "interrupted") : st;
    }
}

static enum client_status part_check(struct fetch *f, bool *good)
{
    char sha[65];
    long long size;
    int rc = lseek(f->fd, 0, SEEK_SET) < 0 ? -errno : sha256_fd(f->fd, sha, &size);
    if (rc < 0)
        return client_error_set(f->e, CLIENT_LOCAL, "cannot read \"%s\": %s", f->part, strerror(-rc));
    *good = size == f->want->size && strcmp(sha, f->want->sha256) == 0;
    if (!*good)
        client_error_set(f->e, CLIENT_MISMATCH, "the ISO downloaded from \"%s%s\" has SHA-256 %s, its build record "
                         "says %s", client_server(f->c), f->want->iso_url, sha, f->want->sha256);
    return CLIENT_OK;
}

/*
 * The ISO into the part, checked; a resumed part that does not check out is
 * fetched again whole. Only bytes that failed the check are deleted: an
 * answer refused before its first byte (an ETag that is not the record's)
 * says nothing about the part, which may be the good start of a later run.
 */
static enum client_status fetch_iso(struct fetch *f)
{
    enum client_status st = part_length(f);
    bool resumed = f->offset > 0, good = false;
    for (int round = 0; st == CLIENT_OK && round < (resumed ? 2 : 1); round++) {
        if (round == 1 && ftruncate(f->fd, 0) < 0)
            return client_error_set(f->e, CLIENT_LOCAL, "cannot truncate \"%s\": %s", f->part, strerror(errno));
        if ((st = fetch_all(f)) == CLIENT_OK && (st = part_check(f, &good)) == CLIENT_OK && good)
            return CLIENT_OK;
    }
    if (st == CLIENT_OK) {
        unlink(f->part); /* wrong bytes are no start for a later run */
        return CLIENT_MISMATCH;
    }
    return st;
}

/* The manifest, in memory: JSON that names the same ISO. */
static enum client_status fetch_manifest(struct client *c, const struct iso_want *w, struct client_call *k,
                                         struct client_error *e)
{
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    k->method = "GET";
    k->path = w->manifest_url;
    k->headers = headers;
    enum client_status st = client_call_perform(c, k, e);
    curl_slist_free_all(headers);
    k->headers = NULL;
    if (st != CLIENT_OK)
        return st;
    json_t *doc = json_loadb(k->buf.data ? k->buf.data : "", k->buf.len, 0, NULL);
    const char *sha = json_string_value(json_object_get(doc, "iso_sha256"));
    if (sha == NULL || strcmp(sha, w->sha256) != 0)
        st = client_error_set(e, CLIENT_MISMATCH, "the manifest at \"%s%s\" does not name the build's ISO",
                              client_server(c), w->manifest_url);
    json_decref(doc);
    return st;
}

static enum client_status open_part(struct fetch *f)
{
    f->fd = open(f->part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (f->fd < 0)
        return client_error_set(f->e, CLIENT_LOCAL, "cannot open \"%s\": %s", f->part, strerror(errno));
    if (flock(f->fd, LOCK_EX | LOCK_NB) < 0)
        return client_error_set(f->e, CLIENT_LOCAL, "\"%s\": %s", f->part,
                                errno == EWOULDBLOCK ? "another download to the same file is running"
                                                     : strerror(errno));
    return CLIENT_OK;
}

/* A part that holds nothing is no start for a later run, only litter beside OUT. Called with the lock held. */
static void part_drop_if_empty(const struct fetch *f)
{
    struct stat st;
    if (fstat(f->fd, &st) == 0 && st.st_size == 0)
        unlink(f->part);
}

/* The checked part becomes out, then the manifest goes beside it. */
static enum client_status publish(const char *part, const char *out, const struct client_call *manifest,
                                  struct client_error *e)
{
    int rc = file_publish(part, out);
    if (rc < 0)
        return client_error_set(e, CLIENT_LOCAL, "cannot put the ISO at \"%s\": %s", out, strerror(-rc));
    _cleanup_free_ char *path = xasprintf("%s.manifest.json", out);
    rc = write_file_atomic(path, manifest->buf.data, manifest->buf.len, 0644);
    if (rc < 0)
        return client_error_set(e, CLIENT_LOCAL, "cannot write \"%s\": %s", path, strerror(-rc));
    return CLIENT_OK;
}

enum client_status client_download(struct client *c, const json_t *build, const char *out, long long *resumed_at,
                                   struct client_error *e)
{
    struct iso_want want;
    enum client_status st = want_from_build(c, build, &want, e);
    if (st != CLIENT_OK)
        return st;
    _cleanup_free_ char *part = xasprintf("%s.part", out);
    _cleanup_close_ int fd = -1;
    struct fetch f = {.want = &want, .part = part, .fd = -1, .resumed_at = -1, .e = e, .c = c};
    struct client_call manifest = {0};
    st = open_part(&f);
    fd = f.fd;
    bool locked = st == CLIENT_OK;
    if (st == CLIENT_OK)
        st = fetch_iso(&f);
    if (st == CLIENT_OK)
        st = fetch_manifest(c, &want, &manifest, e);
    if (st == CLIENT_OK)
        st = publish(part, out, &manifest, e);
    if (st != CLIENT_OK && locked)
        part_drop_if_empty(&f);
    client_call_release(&manifest);
    *resumed_at = f.resumed_at;
    return st;
}
