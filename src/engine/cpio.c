#include "engine/cpio.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

/* The last entry's name: a reader stops at the first entry of this name. */
#define TRAILER "TRAILER!!!"

struct entry {
    char *path; /* relative, without "./" */
};

/* nftw has no context argument: the walk fills this, one walk at a time. */
static struct {
    struct entry *v;
    size_t n, cap;
    size_t prefix;
} walk;

static int collect(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    if (ftw->level == 0)
        return 0;
    if (walk.n == walk.cap) {
        walk.cap = walk.cap ? walk.cap * 2 : 256;
        walk.v = xrealloc(walk.v, walk.cap * sizeof(*walk.v));
    }
    walk.v[walk.n++].path = xstrdup(path + walk.prefix + 1);
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

static int put(FILE *f, const void *data, size_t n)
{
    return fwrite(data, 1, n, f) == n ? 0 : -1;
}

static int pad4(FILE *f, size_t written)
{
    static const char zeros[4] = {0};
    size_t p = (4 - written % 4) % 4;
    return put(f, zeros, p);
}

static int header(FILE *f, unsigned ino, unsigned mode, unsigned nlink, long long mtime, size_t size,
                  const char *name)
{
    /* newc fields are 32-bit: files of 4 GiB or more, or times past 2106, do not fit. */
    size_t namesize = strlen(name) + 1;
    if (size > 0xffffffffu || mtime < 0 || mtime > 0xffffffffLL || namesize > 4096)
        return -1;
    char h[160];
    snprintf(h, sizeof(h), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino, mode, 0u, 0u, nlink,
             (unsigned)mtime, (unsigned)size, 0u, 0u, 0u, 0u, (unsigned)namesize, 0u);
    if (put(f, h, 110) < 0 || put(f, name, namesize) < 0)
        return -1;
    return pad4(f, 110 + namesize);
}

static int copy_file(FILE *f, const char *path, size_t size)
{
    FILE *in = fopen(path, "rbe");
    if (in == NULL)
        return -1;
    char buf[65536];
    size_t total = 0, n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        if (put(f, buf, n) < 0) {
            fclose(in);
            return -1;
        }
        total += n;
    }
    fclose(in);
    return total == size ? pad4(f, size) : -1;
}

static int write_entry(FILE *f, const char *dir, const char *rel, unsigned ino, long long mtime, char *err,
                       size_t errlen)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, rel);
    if (strcmp(rel, TRAILER) == 0) {
        snprintf(err, errlen, "\"%s\": the name that ends a cpio archive cannot be archived", path);
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) < 0) {
        snprintf(err, errlen, "cannot stat \"%s\": %s", path, strerror(errno));
        return -1;
    }
    unsigned perm = st.st_mode & 07777;
    if (S_ISDIR(st.st_mode))
        return header(f, ino, S_IFDIR | perm, 2, mtime, 0, rel);
    if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = readlink(path, target, sizeof(target));
        if (n < 0 || (size_t)n == sizeof(target)) {
            snprintf(err, errlen, "cannot read the link \"%s\"", path);
            return -1;
        }
        if (header(f, ino, S_IFLNK | 0777, 1, mtime, (size_t)n, rel) < 0 || put(f, target, (size_t)n) < 0)
            return -1;
        return pad4(f, (size_t)n);
    }
    if (S_ISREG(st.st_mode)) {
        if (header(f, ino, S_IFREG | perm, 1, mtime, (size_t)st.st_size, rel) < 0)
            return -1;
        return copy_file(f, path, (size_t)st.st_size);
    }
    snprintf(err, errlen, "\"%s\" is not a file, directory or link", path);
    return -1;
}

int cpio_write_tree(const char *dir, const char *out_path, long long mtime, char *err, size_t errlen)
{
    if (errlen > 0)
        err[0] = '\0';
    memset(&walk, 0, sizeof(walk));
    walk.prefix = strlen(dir);
    int rc = -1;
    FILE *f = NULL;
    if (nftw(dir, collect, 32, FTW_PHYS) != 0) {
        snprintf(err, errlen, "cannot walk \"%s\": %s", dir, strerror(errno));
        goto out;
    }
    if (walk.n > 0) /* qsort's array must not be NULL, even when empty */
        qsort(walk.v, walk.n, sizeof(*walk.v), cmp_entry);
    f = fopen(out_path, "wbe");
    if (f == NULL) {
        snprintf(err, errlen, "cannot write \"%s\": %s", out_path, strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < walk.n; i++) {
        if (write_entry(f, dir, walk.v[i].path, (unsigned)i + 1, mtime, err, errlen) < 0) {
            if (err[0] == '\0')
                snprintf(err, errlen, "cannot write \"%s\": %s", out_path, strerror(errno));
            goto out;
        }
    }
    if (header(f, 0, 0, 1, 0, 0, TRAILER) < 0) {
        snprintf(err, errlen, "cannot write \"%s\": %s", out_path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (f != NULL && fclose(f) != 0 && rc == 0) {
        snprintf(err, errlen, "cannot write \"%s\": %s", out_path, strerror(errno));
        rc = -1;
    }
    for (size_t i = 0; i < walk.n; i++)
        free(walk.v[i].path);
    free(walk.v);
    memset(&walk, 0, sizeof(walk));
    return rc;
}
