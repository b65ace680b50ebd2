#include "engine/pkgindex.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lzma.h>

#include "digest.h"
#include "engine/resolve.h"
#include "util.h"
#include "banned.h"

#define INRELEASE_MAX (16u << 20)
#define PACKAGES_XZ_MAX (256u << 20)
#define PACKAGES_MAX (1u << 30) /* decompressed: a whole release is ~50 MB */

/* The value of "\nNAME: value" in a release file's header, into out; "" when absent. */
static void header_field(const char *text, const char *name, char *out, size_t len)
{
    _cleanup_free_ char *needle = xasprintf("\n%s: ", name);
    const char *at = strncmp(text, needle + 1, strlen(needle + 1)) == 0 ? text : strstr(text, needle);
    out[0] = '\0';
    if (at == NULL)
        return;
    at += strlen(needle) - (at == text && *at != '\n');
    size_t n = strcspn(at, "\r\n");
    snprintf(out, len, "%.*s", (int)n, at);
}

/* "Sat, 09 Nov 2024 10:03:53 UTC" as a time; 0 when it does not read. */
static time_t release_time(const char *date)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(date, "%a, %d %b %Y %H:%M:%S", &tm);
    return end == NULL ? 0 : timegm(&tm);
}

void pkgindex_parse_release(const char *text, struct pkgindex_info *info)
{
    header_field(text, "Codename", info->codename, sizeof(info->codename));
    header_field(text, "Suite", info->suite, sizeof(info->suite));
    header_field(text, "Date", info->date, sizeof(info->date));
    info->when = release_time(info->date);
}

static enum engine_error read_inrelease(const char *dir, struct pkgindex_info *out, char **text, char *err,
                                        size_t errlen)
{
    _cleanup_free_ char *path = xasprintf("%s/InRelease", dir);
    size_t len;
    int rc = read_file(path, INRELEASE_MAX, text, &len);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(-rc));
        return ENGINE_E_FAILED;
    }
    sha256_hex(*text, len, out->sha256);
    const char *base = strrchr(dir, '/');
    base = base ? base + 1 : dir;
    if (strcmp(base, out->sha256) != 0) {
        snprintf(err, errlen, "\"%s\" does not have the SHA-256 its directory is named by", path);
        return ENGINE_E_FAILED;
    }
    pkgindex_parse_release(*text, out);
    return ENGINE_OK;
}

enum engine_error pkgindex_probe(const char *dir, struct pkgindex_info *out, char *err, size_t errlen)
{
    _cleanup_free_ char *text = NULL;
    memset(out, 0, sizeof(*out));
    return read_inrelease(dir, out, &text, err, errlen);
}

/* Decompresses an .xz file held in memory into *out (malloc'd). */
/* True once *cancel is set: a long load gives up between two steps. */
static bool cancelled(const atomic_bool *cancel)
{
    return cancel != NULL && atomic_load(cancel);
}

static enum engine_error unxz(const char *path, const char *in, size_t in_len, const atomic_bool *cancel, char **out,
                              size_t *out_len, char *err, size_t errlen)
{
    lzma_stream s = LZMA_STREAM_INIT;
    size_t cap = in_len * 6 + 4096, len = 0;
    char *buf = xmalloc(cap);
    lzma_ret r = lzma_stream_decoder(&s, UINT64_MAX, LZMA_CONCATENATED);
    s.next_in = (const uint8_t *)in;
    s.avail_in = in_len;
    while (r == LZMA_OK && !cancelled(cancel)) {
        if (len == cap) {
            if (cap >= PACKAGES_MAX) {
                r = LZMA_MEMLIMIT_ERROR;
                break;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        /* A MiB at a time, so that a cancel is seen within one. */
        size_t room = cap - len < (1u << 20) ? cap - len : (1u << 20);
        s.next_out = (uint8_t *)buf + len;
        s.avail_out = room;
        r = lzma_code(&s, LZMA_FINISH);
        len += room - s.avail_out;
    }
    lzma_end(&s);
    if (r == LZMA_OK) { /* cancelled */
        free(buf);
        snprintf(err, errlen, "reading \"%s\" was interrupted", path);
        return ENGINE_E_INTERRUPTED;
    }
    if (r != LZMA_STREAM_END) {
        free(buf);
        snprintf(err, errlen, "\"%s\" is not a readable xz archive (liblzma error %d)", path, (int)r);
        return ENGINE_E_FAILED;
    }
    *out = buf;
    *out_len = len;
    return ENGINE_OK;
}

/* Reads dir/Packages.xz, checks it against the InRelease's hash for it, and decompresses it. */
static enum engine_error read_packages(const char *dir, const char *arch, const char *inrelease,
                                       const atomic_bool *cancel, char **out, size_t *out_len, char *err,
                                       size_t errlen)
{
    _cleanup_free_ char *path = xasprintf("%s/Packages.xz", dir);
    _cleanup_free_ char *listed = xasprintf("main/binary-%s/Packages.xz", arch);
    char want[65], have[65];
    if (resolve_release_hash(inrelease, listed, want) < 0) {
        snprintf(err, errlen, "the release file in \"%s\" does not list \"%s\"", dir, listed);
        return ENGINE_E_FAILED;
    }
    _cleanup_free_ char *xz = NULL;
    size_t xz_len;
    int rc = read_file(path, PACKAGES_XZ_MAX, &xz, &xz_len);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(-rc));
        return ENGINE_E_FAILED;
    }
    sha256_hex(xz, xz_len, have);
    if (strcmp(want, have) != 0) {
        snprintf(err, errlen, "\"%s\" does not have the SHA-256 its release file lists", path);
        return ENGINE_E_FAILED;
    }
    return unxz(path, xz, xz_len, cancel, out, out_len, err, errlen);
}

/* Offsets into the string storage while it grows; pointers once it is final. */
struct entry_offsets {
    size_t name, version, description;
};

struct parse {
    char *strings;
    size_t len, cap;
    struct entry_offsets *e;
    size_t n, cap_e;
};

static size_t store_string(struct parse *p, const char *s, size_t n)
{
    if (p->len + n + 1 > p->cap) {
        p->cap = (p->len + n + 1) * 2;
        p->strings = xrealloc(p->strings, p->cap);
    }
    size_t at = p->len;
    memcpy(p->strings + at, s, n);
    p->strings[at + n] = '\0';
    p->len += n + 1;
    return at;
}

/* The value of field name in one stanza [s, end): its first line; false when absent. */
static bool stanza_field(const char *s, const char *end, const char *name, const char **v, size_t *vlen)
{
    size_t nlen = strlen(name);
    for (const char *line = s; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        eol = eol ? eol : end;
        if ((size_t)(eol - line) > nlen + 1 && memcmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *val = line + nlen + 1;
            while (val < eol && *val == ' ')
                val++;
            *v = val;
            *vlen = (size_t)(eol - val);
            return true;
        }
        line = eol + 1;
    }
    return false;
}

static void parse_stanza(struct parse *p, const char *s, const char *end)
{
    const char *name, *version, *desc = "";
    size_t nlen, vlen, dlen = 0;
    if (!stanza_field(s, end, "Package", &name, &nlen) || !stanza_field(s, end, "Version", &version, &vlen))
        return;
    stanza_field(s, end, "Description", &desc, &dlen);
    if (p->n == p->cap_e) {
        p->cap_e = p->cap_e ? p->cap_e * 2 : 4096;
        p->e = xrealloc(p->e, p->cap_e * sizeof(*p->e));
    }
    struct entry_offsets *e = &p->e[p->n++];
    e->name = store_string(p, name, nlen);
    e->version = store_string(p, version, vlen);
    e->description = store_string(p, desc, dlen);
}

static int cmp_pkg(const void *a, const void *b)
{
    const struct pkgindex_pkg *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->version, y->version);
}

/* The stanzas of a Packages file into ix, sorted by name, one entry a name; false when cancelled. */
bool pkgindex_parse_packages(const char *text, size_t len, const atomic_bool *cancel, struct pkgindex *ix)
{
    struct parse p = {0};
    const char *s = text, *end = text + len;
    while (s < end) {
        if (p.n % 1024 == 0 && cancelled(cancel)) {
            free(p.e);
            free(p.strings);
            return false;
        }
        const char *blank = memmem(s, (size_t)(end - s), "\n\n", 2);
        const char *stop = blank ? blank + 1 : end;
        parse_stanza(&p, s, stop);
        s = blank ? blank + 2 : end;
    }
    ix->pkgs = xcalloc(p.n ? p.n : 1, sizeof(*ix->pkgs));
    ix->strings = p.strings;
    for (size_t i = 0; i < p.n; i++)
        ix->pkgs[i] = (struct pkgindex_pkg){p.strings + p.e[i].name, p.strings + p.e[i].version,
                                            p.strings + p.e[i].description};
    free(p.e);
    qsort(ix->pkgs, p.n, sizeof(*ix->pkgs), cmp_pkg);
    /*
     * A name listed twice keeps the entry whose version sorts first byte by
     * byte (strcmp, not Debian's version order, so not necessarily the
     * oldest or the newest): the same one every time, which is all
     * completion needs.
     */
    size_t kept = 0;
    for (size_t i = 0; i < p.n; i++)
        if (kept == 0 || strcmp(ix->pkgs[kept - 1].name, ix->pkgs[i].name) != 0)
            ix->pkgs[kept++] = ix->pkgs[i];
    ix->npkgs = kept;
    return true;
}

enum engine_error pkgindex_load(const char *dir, const char *arch, const atomic_bool *cancel, struct pkgindex *out,
                                char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    _cleanup_free_ char *inrelease = NULL, *packages = NULL;
    size_t len = 0;
    enum engine_error e = read_inrelease(dir, &out->info, &inrelease, err, errlen);
    if (e == ENGINE_OK)
        e = read_packages(dir, arch, inrelease, cancel, &packages, &len, err, errlen);
    if (e == ENGINE_OK && !pkgindex_parse_packages(packages, len, cancel, out)) {
        snprintf(err, errlen, "reading the index in \"%s\" was interrupted", dir);
        e = ENGINE_E_INTERRUPTED;
    }
    return e;
}

void pkgindex_release(struct pkgindex *ix)
{
    free(ix->pkgs);
    free(ix->strings);
    ix->pkgs = NULL;
    ix->strings = NULL;
    ix->npkgs = 0;
}

/* The first package whose name is not below q. */
static size_t lower_bound(const struct pkgindex *ix, const char *q)
{
    size_t lo = 0, hi = ix->npkgs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(ix->pkgs[mid].name, q) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t pkgindex_search(const struct pkgindex *ix, const char *q, size_t limit, const struct pkgindex_pkg **out)
{
    size_t n = 0, qlen = strlen(q);
    for (size_t i = lower_bound(ix, q); i < ix->npkgs && n < limit; i++) {
        if (strncmp(ix->pkgs[i].name, q, qlen) != 0)
            break;
        out[n++] = &ix->pkgs[i];
    }
    if (qlen == 0)
        return n;
    for (size_t i = 0; i < ix->npkgs && n < limit; i++) {
        const char *at = strstr(ix->pkgs[i].name, q);
        if (at != NULL && at != ix->pkgs[i].name)
            out[n++] = &ix->pkgs[i];
    }
    return n;
}
