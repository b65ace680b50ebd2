/*
 * The cache of base layers, on the host: the image's tree as the packages
 * left it, before any overlay or hook, kept as a tarball so that a later
 * build with the same packages skips installing them.
 *
 *   CACHE/bases/KEY/layer.tar.zst   the tree (tar, zstd), made inside the sandbox
 *   CACHE/bases/KEY/layer.sha256    its SHA-256, written when it was kept
 *
 * KEY is the SHA-256 of everything the tree depends on (layers_key): the
 * lock (every package and its version, the suites, the release date that
 * is SOURCE_DATE_EPOCH), the variant, the packages asked for, the host
 * tools that install them and this program's version. An entry is written
 * once, complete, by a rename of its directory; it is verified against its
 * SHA-256 every time before use, and a damaged one is removed and rebuilt.
 * The whole cache is kept under cfg->base_cache_mb, the least recently used
 * entries going first.
 */
#include "engine/engine_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "digest.h"
#include "util.h"
#include "banned.h"

/* Bumped whenever the root filesystem stage makes a different tree from the same inputs. */
#define LAYERS_FORMAT "1"

char *layers_key(const struct build *b, const char *tools)
{
    char *text = xasprintf("debate base layer %s\nbuilder debate " DEBATE_VERSION "\nlock %s\nvariant %s\narch %s\n",
                           LAYERS_FORMAT, b->lock.hash, b->r->variant, b->lock.arch);
    for (size_t i = 0; i < b->r->npackages; i++) {
        char *longer = xasprintf("%spackage %s\n", text, b->r->packages[i]);
        free(text);
        text = longer;
    }
    char *all = xasprintf("%stools\n%s", text, tools);
    free(text);
    char *key = xmalloc(65);
    sha256_hex(all, strlen(all), key);
    free(all);
    return key;
}

static char *bases_dir(const struct build *b)
{
    return xasprintf("%s/bases", b->o->cfg->cache_dir);
}

/* Removes an entry (or a half-made one): renamed aside first, so no reader ever sees it half gone. */
static void remove_entry(const char *dir)
{
    _cleanup_free_ char *aside = xasprintf("%s.gone-%ld", dir, (long)getpid());
    const char *victim = rename(dir, aside) == 0 ? aside : dir;
    _cleanup_free_ char *layer = xasprintf("%s/layer.tar.zst", victim), *sum = xasprintf("%s/layer.sha256", victim);
    unlink(layer);
    unlink(sum);
    rmdir(victim);
}

/* dest gets the layer's bytes: a hard link when the cache is on the same file system, else a copy. */
static int link_or_copy_file(const char *from, const char *dest)
{
    if (link(from, dest) == 0)
        return 0;
    _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0)
        return -errno;
    _cleanup_close_ int out = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0 || copy_fd(in, out) < 0)
        return -errno;
    return 0;
}

int layers_take(struct build *b, const char *key, const char *dest_dir)
{
    _cleanup_free_ char *dir = xasprintf("%s/bases/%s", b->o->cfg->cache_dir, key);
    _cleanup_free_ char *layer = xasprintf("%s/layer.tar.zst", dir), *sum_path = xasprintf("%s/layer.sha256", dir);
    _cleanup_free_ char *dest = xasprintf("%s/layer.tar.zst", dest_dir);
    _cleanup_free_ char *want = NULL;
    size_t len;
    if (access(dir, F_OK) != 0)
        return 0;
    int rc = mkdir_p(dest_dir, 0755);
    if (rc < 0)
        return build_fail(b, engine_errno_cause(-rc), "cannot create \"%s\": %s", dest_dir, strerror(-rc));
    rc = read_file(sum_path, 128, &want, &len);
    if (rc == 0 && (rc = link_or_copy_file(layer, dest)) == 0) {
        char got[65];
        rc = sha256_file(dest, got, NULL);
        if (rc == 0 && len >= 64 && memcmp(got, want, 64) == 0) {
            /* The least recently used go first when the cache is over its budget. */
            utimensat(AT_FDCWD, dir, NULL, 0);
            chmod(dest, 0644);
            return 1;
        }
        rc = rc < 0 ? rc : -EBADMSG;
    }
    unlink(dest);
    if (rc == -ENOENT && access(dir, F_OK) != 0)
        return 0; /* collected meanwhile: a miss */
    build_progress(b, STAGE_ROOTFS, 2, "the base layer %.12s is damaged (%s): removed, the packages are installed anew",
                   key, rc == -EBADMSG ? "its SHA-256 differs" : strerror(-rc));
    remove_entry(dir);
    return 0;
}

struct entry {
    char *dir;
    long long bytes;
    struct timespec used;
};

static int by_use(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->used.tv_sec != y->used.tv_sec)
        return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
    return x->used.tv_nsec < y->used.tv_nsec ? -1 : x->used.tv_nsec > y->used.tv_nsec;
}

/* What a crash left: an entry half removed, or one half kept over an hour ago. */
static void sweep_leftover(const char *bases, const char *name)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", bases, name);
    struct stat st;
    bool stale = strncmp(name, ".new-", 5) == 0 && stat(path, &st) == 0 && st.st_mtime < time(NULL) - 3600;
    if (strstr(name, ".gone-") != NULL || stale)
        remove_entry(path);
}

/* Removes the least recently used entries until the cache holds at most budget_mb; keep stays. */
static void collect_garbage(const char *bases, unsigned budget_mb, const char *keep)
{
    DIR *d = opendir(bases);
    if (d == NULL)
        return;
    struct entry *v = NULL;
    size_t n = 0;
    long long total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_sha256_hex(e->d_name)) {
            sweep_leftover(bases, e->d_name);
            continue;
        }
        _cleanup_free_ char *layer = xasprintf("%s/%s/layer.tar.zst", bases, e->d_name);
        struct stat dst, lst;
        char *dir = xasprintf("%s/%s", bases, e->d_name);
        if (stat(dir, &dst) < 0 || stat(layer, &lst) < 0) {
            free(dir);
            continue;
        }
        v = xrealloc(v, (n + 1) * sizeof(*v));
        v[n++] = (struct entry){.dir = dir, .bytes = (long long)lst.st_size, .used = dst.st_mtim};
        total += (long long)lst.st_size;
    }
    closedir(d);
    qsort(v, n, sizeof(*v), by_use);
    long long budget = (long long)budget_mb << 20;
    for (size_t i = 0; i < n; i++) {
        const char *name = strrchr(v[i].dir, '/') + 1;
        if (total > budget && strcmp(name, keep) != 0) {
            remove_entry(v[i].dir);
            total -= v[i].bytes;
        }
        free(v[i].dir);
    }
    free(v);
}

void layers_keep(struct build *b, const char *key, const char *layer)
{
    const struct config *cfg = b->o->cfg;
    _cleanup_free_ char *bases = bases_dir(b);
    _cleanup_free_ char *dir = xasprintf("%s/%s", bases, key);
    _cleanup_free_ char *tmp = xasprintf("%s/.new-%s-%ld", bases, key, (long)gettid());
    _cleanup_free_ char *tmp_layer = xasprintf("%s/layer.tar.zst", tmp), *tmp_sum = xasprintf("%s/layer.sha256", tmp);
    char sum[65], line[80];
    long long size = 0;
    const char *why = NULL;
    int rc = mkdir_p(tmp, 0755);
    if (rc == 0 && (rc = sha256_file(layer, sum, &size)) == 0 && (rc = link_or_copy_file(layer, tmp_layer)) == 0) {
        snprintf(line, sizeof(line), "%s\n", sum);
        rc = write_file_atomic(tmp_sum, line, strlen(line), 0644);
    }
    if (rc == 0 && (rc = fsync_path(tmp_layer)) == 0 && rename(tmp, dir) < 0)
        rc = errno == EEXIST || errno == ENOTEMPTY ? 1 : -errno; /* another build kept the same layer first */
    if (rc != 0)
        remove_entry(tmp);
    if (rc < 0)
        why = strerror(-rc);
    if (why != NULL) {
        build_progress(b, STAGE_ASSEMBLING, 100, "the base layer %.12s was not kept: %s", key, why);
        return;
    }
    if (rc == 0)
        build_progress(b, STAGE_ASSEMBLING, 100, "kept the base layer %.12s (%lld MiB) for builds with the same packages",
                       key, (size + (1 << 20) - 1) >> 20);
    collect_garbage(bases, cfg->base_cache_mb, key);
}
