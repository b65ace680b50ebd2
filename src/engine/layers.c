/*
 * The cache of layers, on the host: what a stage made from inputs no
 * recipe's overlay or hook can touch, kept so that a later build with the
 * same inputs skips the stage.
 *
 *   CACHE/bases/KEY/layer.tar.zst     the image's tree as the packages left it (tar, zstd)
 *   CACHE/kernels/KEY/vmlinuz, initrd.img
 *                                     the busybox variant's kernel and initramfs
 *   CACHE/{bases,kernels}/KEY/SHA256SUMS
 *                                     each file's SHA-256, written when it was kept
 *
 * A base layer's KEY is the SHA-256 of everything the tree depends on
 * (layers_key): the lock (every package and its version, the suites, the
 * release date that is SOURCE_DATE_EPOCH), the variant, the packages asked
 * for, the host tools that install them and this program's version. A
 * kernel layer's (layers_kernel_key): the kernel and busybox packages, the
 * volume label the init looks for, the epoch, the tools and the version.
 * An entry is written once, complete, by a rename of its directory; it is
 * verified against its sums every time before use, and a damaged one is
 * removed and made again. All entries together are kept under
 * cfg->base_cache_mb, the least recently used going first.
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

/* Bumped whenever the root filesystem or kernel stage makes a different result from the same inputs. */
#define LAYERS_FORMAT "1"

const struct layer_kind layer_base = {
    .dir = "bases", .what = "base layer", .files = {"layer.tar.zst", NULL}, .stage = STAGE_ROOTFS,
    .redo = "the packages are installed anew"};
const struct layer_kind layer_kernel = {
    .dir = "kernels", .what = "kernel layer", .files = {"vmlinuz", "initrd.img", NULL}, .stage = STAGE_KERNEL,
    .redo = "the kernel and initramfs are made anew"};
static const struct layer_kind *const kinds[] = {&layer_base, &layer_kernel};

static char *key_of(const char *text)
{
    char *key = xmalloc(65);
    sha256_hex(text, strlen(text), key);
    return key;
}

char *layers_key(const struct build *b, const char *tools)
{
    char *text = xasprintf("debate base layer %s\nbuilder debate " DEBATE_VERSION "\nlock %s\nvariant %s\narch %s\n",
                           LAYERS_FORMAT, b->lock.hash, b->r->variant, b->lock.arch);
    for (size_t i = 0; i < b->r->npackages; i++) {
        char *longer = xasprintf("%spackage %s\n", text, b->r->packages[i]);
        free(text);
        text = longer;
    }
    _cleanup_free_ char *all = xasprintf("%stools\n%s", text, tools);
    free(text);
    return key_of(all);
}

char *layers_kernel_key(const struct build *b, const char *tools)
{
    _cleanup_free_ char *all =
        xasprintf("debate kernel layer %s\nbuilder debate " DEBATE_VERSION "\nkernel %s\nbusybox %s\nlabel %s\n"
                  "epoch %lld\ntools\n%s",
                  LAYERS_FORMAT, b->kernel_pkg->sha256, b->busybox_pkg->sha256, b->label, b->epoch, tools);
    return key_of(all);
}

#define SUMS "SHA256SUMS"

/* Removes an entry (or a half-made one): renamed aside first, so no reader ever sees it half gone. */
static void remove_entry(const char *dir)
{
    _cleanup_free_ char *aside = xasprintf("%s.gone-%ld", dir, (long)getpid());
    const char *victim = rename(dir, aside) == 0 ? aside : dir;
    DIR *d = opendir(victim);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        _cleanup_free_ char *path = xasprintf("%s/%s", victim, e->d_name);
        if (e->d_name[0] != '.')
            unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(victim);
}

/* The SHA-256 SUMS records for name ("HEX  NAME" lines), into want; false when it has none. */
static bool recorded_sum(const char *sums, const char *name, char want[65])
{
    for (const char *line = sums; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        size_t n = strlen(name);
        if (strlen(line) > 66 + n && line[64] == ' ' && line[65] == ' ' && strncmp(line + 66, name, n) == 0 &&
            (line[66 + n] == '\n' || line[66 + n] == '\0')) {
            memcpy(want, line, 64);
            want[64] = '\0';
            return true;
        }
    }
    return false;
}

/* name (under dirfd, or AT_FDCWD) linked to dest, or copied across file systems. 0 or -errno. */
static int link_or_copy_at(int dirfd, const char *name, const char *dest)
{
    if (linkat(dirfd, name, AT_FDCWD, dest, 0) == 0)
        return 0;
    if (errno != EXDEV && errno != EPERM && errno != EMLINK)
        return -errno;
    _cleanup_close_ int in = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0)
        return -errno;
    _cleanup_close_ int out = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0 || copy_fd(in, out) < 0)
        return -errno;
    return 0;
}

/*
 * Each of the kind's files of the entry open at dirfd linked into dest_dir
 * (readable by the sandbox's ids) and checked against its SUMS: 0, or
 * -errno; -EBADMSG when a sum differs or is missing, -ENOENT when a file is.
 */
static int take_files(const struct layer_kind *k, int dirfd, const char *dest_dir)
{
    _cleanup_close_ int sfd = openat(dirfd, SUMS, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    char sums[1024];
    ssize_t n = sfd < 0 ? -1 : read(sfd, sums, sizeof(sums) - 1);
    if (n < 0)
        return -errno;
    sums[n] = '\0';
    int rc = 0;
    for (size_t i = 0; rc == 0 && k->files[i] != NULL; i++) {
        _cleanup_free_ char *dest = xasprintf("%s/%s", dest_dir, k->files[i]);
        char want[65], got[65];
        unlink(dest);
        if ((rc = link_or_copy_at(dirfd, k->files[i], dest)) == 0 && (rc = sha256_file(dest, got, NULL)) == 0 &&
            (!recorded_sum(sums, k->files[i], want) || strcmp(got, want) != 0))
            rc = -EBADMSG;
        if (rc == 0 && chmod(dest, 0644) < 0)
            rc = -errno;
    }
    return rc;
}

bool layers_have(const struct build *b, const struct layer_kind *k, const char *key)
{
    _cleanup_free_ char *dir = xasprintf("%s/%s/%s", b->o->cfg->cache_dir, k->dir, key);
    return access(dir, F_OK) == 0;
}

/* Whether path is still the directory open at dirfd (not one kept again since under the same name). */
static bool same_dir(int dirfd, const char *path)
{
    struct stat a, b;
    return fstat(dirfd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int layers_take(struct build *b, const struct layer_kind *k, const char *key, const char *dest_dir)
{
    _cleanup_free_ char *dir = xasprintf("%s/%s/%s", b->o->cfg->cache_dir, k->dir, key);
    /* Opened once: a collection and a new entry under the same name meanwhile cannot mix their files. */
    _cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dirfd < 0)
        return 0;
    /* The sandbox's ids must be able to enter it whatever the umask (debate.service's is 0077). */
    int rc = mkdir_p(dest_dir, 0755);
    if (rc < 0 || chmod(dest_dir, 0755) < 0)
        return build_fail(b, engine_errno_cause(rc < 0 ? -rc : errno), "cannot create \"%s\": %s", dest_dir,
                          strerror(rc < 0 ? -rc : errno));
    rc = take_files(k, dirfd, dest_dir);
    if (rc == 0) {
        /* The least recently used go first when the cache is over its budget. */
        futimens(dirfd, NULL);
        return 1;
    }
    for (size_t i = 0; k->files[i] != NULL; i++) {
        _cleanup_free_ char *dest = xasprintf("%s/%s", dest_dir, k->files[i]);
        unlink(dest);
    }
    if (!same_dir(dirfd, dir))
        return 0; /* collected (or kept again) meanwhile: a miss */
    if (rc != -EBADMSG && rc != -ENOENT) {
        /* Not the entry's fault (a full disk, no descriptors left): keep it, build without it. */
        build_progress(b, k->stage, 2, "the %s %.12s cannot be used (%s): %s", k->what, key, strerror(-rc), k->redo);
        return 0;
    }
    build_progress(b, k->stage, 2, "the %s %.12s is damaged (%s): removed, %s", k->what, key,
                   rc == -EBADMSG ? "its SHA-256 differs" : "a file is missing", k->redo);
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

/* Every entry of kind k into *v (with its size and last use); leftovers of a crash removed. */
static void list_entries(const char *dir, struct entry **v, size_t *n, long long *total)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (!is_sha256_hex(e->d_name)) {
            sweep_leftover(dir, e->d_name);
            continue;
        }
        char *entry = xasprintf("%s/%s", dir, e->d_name);
        struct stat st;
        long long bytes = 0;
        DIR *files = opendir(entry);
        struct dirent *f;
        while (files != NULL && (f = readdir(files)) != NULL) {
            _cleanup_free_ char *path = xasprintf("%s/%s", entry, f->d_name);
            if (f->d_name[0] != '.' && stat(path, &st) == 0)
                bytes += (long long)st.st_size;
        }
        if (files != NULL)
            closedir(files);
        if (stat(entry, &st) < 0) {
            free(entry);
            continue;
        }
        *v = xrealloc(*v, (*n + 1) * sizeof(**v));
        (*v)[(*n)++] = (struct entry){.dir = entry, .bytes = bytes, .used = st.st_mtim};
        *total += bytes;
    }
    if (d != NULL)
        closedir(d);
}

static bool is_kept(const char *name, const char *const *keep)
{
    for (size_t i = 0; keep[i] != NULL; i++)
        if (strcmp(name, keep[i]) == 0)
            return true;
    return false;
}

/* Removes the least recently used entries of every kind until they hold at most budget_mb together; keep stay. */
static void collect_garbage(const char *cache_dir, unsigned budget_mb, const char *const *keep)
{
    struct entry *v = NULL;
    size_t n = 0;
    long long total = 0;
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
        _cleanup_free_ char *dir = xasprintf("%s/%s", cache_dir, kinds[i]->dir);
        list_entries(dir, &v, &n, &total);
    }
    qsort(v, n, sizeof(*v), by_use);
    long long budget = (long long)budget_mb << 20;
    for (size_t i = 0; i < n; i++) {
        const char *name = strrchr(v[i].dir, '/') + 1;
        if (total > budget && !is_kept(name, keep)) {
            remove_entry(v[i].dir);
            total -= v[i].bytes;
        }
        free(v[i].dir);
    }
    free(v);
}

/* The kind's files from src_dir into the new entry tmp, with their SHA256SUMS. 0 or -errno; *size their bytes. */
static int fill_entry(const struct layer_kind *k, const char *src_dir, const char *tmp, long long *size)
{
    char *sums = xstrdup("");
    int rc = mkdir_p(tmp, 0755);
    for (size_t i = 0; rc == 0 && k->files[i] != NULL; i++) {
        _cleanup_free_ char *from = xasprintf("%s/%s", src_dir, k->files[i]);
        _cleanup_free_ char *to = xasprintf("%s/%s", tmp, k->files[i]);
        char sum[65];
        long long bytes = 0;
        if ((rc = sha256_file(from, sum, &bytes)) == 0 && (rc = link_or_copy_at(AT_FDCWD, from, to)) == 0 &&
            (rc = fsync_path(to)) == 0) {
            char *longer = xasprintf("%s%s  %s\n", sums, sum, k->files[i]);
            free(sums);
            sums = longer;
            *size += bytes;
        }
    }
    _cleanup_free_ char *sums_path = xasprintf("%s/" SUMS, tmp);
    if (rc == 0)
        rc = write_file_atomic(sums_path, sums, strlen(sums), 0644);
    free(sums);
    return rc;
}

void layers_keep(struct build *b, const struct layer_kind *k, const char *key, const char *src_dir)
{
    _cleanup_free_ char *kind_dir = xasprintf("%s/%s", b->o->cfg->cache_dir, k->dir);
    _cleanup_free_ char *dir = xasprintf("%s/%s", kind_dir, key);
    _cleanup_free_ char *tmp = xasprintf("%s/.new-%s-%ld", kind_dir, key, (long)gettid());
    long long size = 0;
    int rc = fill_entry(k, src_dir, tmp, &size);
    if (rc == 0 && rename(tmp, dir) < 0)
        rc = errno == EEXIST || errno == ENOTEMPTY ? 1 : -errno; /* another build kept the same entry first */
    if (rc != 0)
        remove_entry(tmp);
    if (rc < 0) {
        build_progress(b, STAGE_ASSEMBLING, 100, "the %s %.12s was not kept: %s", k->what, key,
                       rc == -ENOENT ? "the build did not leave it" : strerror(-rc));
        return;
    }
    if (rc == 0)
        build_progress(b, STAGE_ASSEMBLING, 100, "kept the %s %.12s (%lld MiB) for later builds", k->what, key,
                       (size + (1 << 20) - 1) >> 20);
}

void layers_collect(struct build *b, const char *const *keep)
{
    collect_garbage(b->o->cfg->cache_dir, b->o->cfg->base_cache_mb, keep);
}
