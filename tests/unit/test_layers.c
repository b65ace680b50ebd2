/*
 * The cache of layers on the host (src/engine/layers.c, included to reach
 * its static functions): an entry kept is taken back byte for byte; a
 * damaged or incomplete one is found, reported and removed; the cache
 * stays within its budget, the least recently used going first, and what a
 * crash left is swept. Real builds on real layers are
 * tests/integration/test_build.py's.
 */
#include "engine/layers.c"

#include <stdarg.h>
#include <sys/time.h>

#include "harness.h"

struct fixture {
    char dir[64];
    struct config cfg;
    struct engine_opts o;
    struct build b;
    char err[512];
    char said[1024]; /* the progress messages, one per line */
};

static void on_progress(void *arg, enum engine_stage stage, int pct, const char *message)
{
    (void)stage;
    (void)pct;
    struct fixture *f = arg;
    size_t n = strlen(f->said);
    snprintf(f->said + n, sizeof(f->said) - n, "%s\n", message);
}

static void setup(struct fixture *f, unsigned budget_mb)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/debate-layers-XXXXXX");
    CHECK(mkdtemp(f->dir) != NULL);
    f->cfg.cache_dir = f->dir;
    f->cfg.base_cache_mb = budget_mb;
    f->o = (struct engine_opts){.cfg = &f->cfg, .progress = on_progress, .progress_arg = f};
    f->b = (struct build){.o = &f->o, .err = f->err, .errlen = sizeof(f->err), .progress_fd = -1};
}

/* Called at the end of each test (a failed check leaves the directory to look at). */
static void teardown(struct fixture *f)
{
    const char *argv[] = {"/bin/rm", "-rf", f->dir, NULL};
    struct proc_opts o = {0};
    char err[128];
    CHECK(proc_run(argv, &o, err, sizeof(err)) == 0);
}

static void write_bytes(const char *path, size_t n, char fill)
{
    char *data = xmalloc(n);
    memset(data, fill, n);
    CHECK(write_file_atomic(path, data, n, 0644) == 0);
    free(data);
}

/* A layer made by a "build": WORK/src/layer.tar.zst of n bytes, kept under key; then the budget applied. */
static void keep_base(struct fixture *f, const char *key, size_t n, char fill)
{
    _cleanup_free_ char *src = xasprintf("%s/src-%s", f->dir, key), *file = xasprintf("%s/layer.tar.zst", src);
    CHECK(mkdir_p(src, 0755) == 0);
    write_bytes(file, n, fill);
    layers_keep(&f->b, &layer_base, key, src);
    const char *keep[] = {key, NULL};
    layers_collect(&f->b, keep); /* as engine_build does after keeping */
}

static char *key_for(char c)
{
    char *key = xmalloc(65);
    memset(key, c, 64);
    key[64] = '\0';
    return key;
}

static bool entry_exists(struct fixture *f, const char *kind, const char *key)
{
    _cleanup_free_ char *dir = xasprintf("%s/%s/%s", f->dir, kind, key);
    return access(dir, F_OK) == 0;
}

/* The entry's last use, as the budget sees it: its directory's mtime. */
static void set_used(struct fixture *f, const char *kind, const char *key, time_t when)
{
    _cleanup_free_ char *dir = xasprintf("%s/%s/%s", f->dir, kind, key);
    struct timespec ts[2] = {{when, 0}, {when, 0}};
    CHECK(utimensat(AT_FDCWD, dir, ts, 0) == 0);
}

TEST(a_kept_layer_is_taken_back_byte_for_byte)
{
    struct fixture f;
    setup(&f, 100);
    _cleanup_free_ char *key = key_for('a');
    keep_base(&f, key, 4096, 'x');
    CHECK(strstr(f.said, "kept the base layer aaaaaaaaaaaa (1 MiB)") != NULL);
    CHECK(layers_have(&f.b, &layer_base, key));
    _cleanup_free_ char *dest = xasprintf("%s/work", f.dir), *got = xasprintf("%s/layer.tar.zst", dest);
    CHECK_INT(layers_take(&f.b, &layer_base, key, dest), 1);
    _cleanup_free_ char *data = NULL;
    size_t len;
    CHECK(read_file(got, 1 << 20, &data, &len) == 0);
    CHECK_INT(len, 4096);
    CHECK(data[0] == 'x' && data[4095] == 'x');
    /* Another key is a miss, and says nothing. */
    _cleanup_free_ char *other = key_for('b');
    f.said[0] = '\0';
    CHECK_INT(layers_take(&f.b, &layer_base, other, dest), 0);
    CHECK_STR(f.said, "");
    teardown(&f);
}

TEST(a_damaged_layer_is_reported_removed_and_not_used)
{
    struct fixture f;
    setup(&f, 100);
    _cleanup_free_ char *key = key_for('c');
    keep_base(&f, key, 8192, 'y');
    _cleanup_free_ char *file = xasprintf("%s/bases/%s/layer.tar.zst", f.dir, key);
    CHECK(unlink(file) == 0);
    write_bytes(file, 8192, 'z');
    _cleanup_free_ char *dest = xasprintf("%s/work", f.dir), *got = xasprintf("%s/layer.tar.zst", dest);
    f.said[0] = '\0';
    CHECK_INT(layers_take(&f.b, &layer_base, key, dest), 0);
    CHECK(strstr(f.said, "the base layer cccccccccccc is damaged (its SHA-256 differs): removed, the packages are "
                         "installed anew") != NULL);
    CHECK(!entry_exists(&f, "bases", key));
    CHECK(access(got, F_OK) != 0);
    teardown(&f);
}

TEST(an_entry_without_its_sums_is_damaged)
{
    struct fixture f;
    setup(&f, 100);
    _cleanup_free_ char *key = key_for('d');
    keep_base(&f, key, 100, 'q');
    _cleanup_free_ char *sums = xasprintf("%s/bases/%s/SHA256SUMS", f.dir, key);
    CHECK(write_file_atomic(sums, "", 0, 0644) == 0);
    _cleanup_free_ char *dest = xasprintf("%s/work", f.dir);
    CHECK_INT(layers_take(&f.b, &layer_base, key, dest), 0);
    CHECK(strstr(f.said, "is damaged") != NULL);
    CHECK(!entry_exists(&f, "bases", key));
    teardown(&f);
}

TEST(an_entry_missing_a_file_is_damaged)
{
    struct fixture f;
    setup(&f, 100);
    _cleanup_free_ char *key = key_for('f');
    keep_base(&f, key, 100, 'm');
    _cleanup_free_ char *file = xasprintf("%s/bases/%s/layer.tar.zst", f.dir, key);
    CHECK(unlink(file) == 0);
    _cleanup_free_ char *dest = xasprintf("%s/work", f.dir);
    CHECK_INT(layers_take(&f.b, &layer_base, key, dest), 0);
    CHECK(strstr(f.said, "the base layer ffffffffffff is damaged (a file is missing)") != NULL);
    CHECK(!entry_exists(&f, "bases", key));
    teardown(&f);
}

TEST(a_taken_layer_is_readable_by_the_sandbox_whatever_the_umask)
{
    struct fixture f;
    setup(&f, 100);
    mode_t old = umask(077);
    _cleanup_free_ char *key = key_for('9');
    keep_base(&f, key, 100, 'u');
    _cleanup_free_ char *dest = xasprintf("%s/work/base", f.dir), *got = xasprintf("%s/layer.tar.zst", dest);
    CHECK_INT(layers_take(&f.b, &layer_base, key, dest), 1);
    umask(old);
    struct stat st;
    CHECK(stat(dest, &st) == 0);
    CHECK_INT(st.st_mode & 07777, 0755);
    CHECK(stat(got, &st) == 0);
    CHECK_INT(st.st_mode & 07777, 0644);
    teardown(&f);
}

TEST(a_kernel_layer_checks_each_of_its_files)
{
    struct fixture f;
    setup(&f, 100);
    _cleanup_free_ char *key = key_for('e');
    _cleanup_free_ char *src = xasprintf("%s/kernel", f.dir);
    _cleanup_free_ char *vmlinuz = xasprintf("%s/vmlinuz", src), *initrd = xasprintf("%s/initrd.img", src);
    CHECK(mkdir_p(src, 0755) == 0);
    write_bytes(vmlinuz, 1000, 'k');
    write_bytes(initrd, 2000, 'i');
    layers_keep(&f.b, &layer_kernel, key, src);
    _cleanup_free_ char *dest = xasprintf("%s/work", f.dir);
    CHECK_INT(layers_take(&f.b, &layer_kernel, key, dest), 1);
    _cleanup_free_ char *kept = xasprintf("%s/kernels/%s/initrd.img", f.dir, key);
    CHECK(unlink(kept) == 0);
    write_bytes(kept, 2000, 'j');
    f.said[0] = '\0';
    CHECK_INT(layers_take(&f.b, &layer_kernel, key, dest), 0);
    CHECK(strstr(f.said, "the kernel layer eeeeeeeeeeee is damaged") != NULL);
    CHECK(!entry_exists(&f, "kernels", key));
    teardown(&f);
}

TEST(the_budget_removes_the_least_recently_used_first)
{
    struct fixture f;
    setup(&f, 1); /* 1 MiB: two layers of 400 KiB fit, three do not */
    _cleanup_free_ char *a = key_for('1'), *b = key_for('2'), *c = key_for('3');
    time_t now = time(NULL);
    keep_base(&f, a, 400 << 10, 'a');
    set_used(&f, "bases", a, now - 300);
    keep_base(&f, b, 400 << 10, 'b');
    set_used(&f, "bases", b, now - 200);
    /* a is used again: b is now the least recently used. */
    _cleanup_free_ char *dest = xasprintf("%s/work", f.dir);
    CHECK_INT(layers_take(&f.b, &layer_base, a, dest), 1);
    keep_base(&f, c, 400 << 10, 'c');
    CHECK(entry_exists(&f, "bases", a));
    CHECK(!entry_exists(&f, "bases", b));
    CHECK(entry_exists(&f, "bases", c));
    teardown(&f);
}

TEST(the_entry_just_kept_stays_even_over_the_budget)
{
    struct fixture f;
    setup(&f, 1);
    _cleanup_free_ char *a = key_for('4'), *b = key_for('5');
    keep_base(&f, a, 600 << 10, 'a');
    set_used(&f, "bases", a, time(NULL) - 60);
    keep_base(&f, b, 2 << 20, 'b');
    CHECK(!entry_exists(&f, "bases", a));
    CHECK(entry_exists(&f, "bases", b));
    teardown(&f);
}

TEST(the_layers_one_build_kept_stay_together_over_the_budget)
{
    struct fixture f;
    setup(&f, 1);
    _cleanup_free_ char *base = key_for('7'), *kernel = key_for('8');
    _cleanup_free_ char *src = xasprintf("%s/kernel", f.dir);
    _cleanup_free_ char *vmlinuz = xasprintf("%s/vmlinuz", src), *initrd = xasprintf("%s/initrd.img", src);
    CHECK(mkdir_p(src, 0755) == 0);
    write_bytes(vmlinuz, 600 << 10, 'k');
    write_bytes(initrd, 10, 'i');
    _cleanup_free_ char *bsrc = xasprintf("%s/base", f.dir), *layer = xasprintf("%s/layer.tar.zst", bsrc);
    CHECK(mkdir_p(bsrc, 0755) == 0);
    write_bytes(layer, 600 << 10, 'b');
    layers_keep(&f.b, &layer_base, base, bsrc);
    layers_keep(&f.b, &layer_kernel, kernel, src);
    const char *keep[] = {base, kernel, NULL};
    layers_collect(&f.b, keep);
    CHECK(entry_exists(&f, "bases", base));
    CHECK(entry_exists(&f, "kernels", kernel));
    teardown(&f);
}

TEST(what_a_crash_left_is_swept)
{
    struct fixture f;
    setup(&f, 100);
    _cleanup_free_ char *stale = xasprintf("%s/bases/.new-x-1", f.dir), *fresh = xasprintf("%s/bases/.new-y-2", f.dir);
    _cleanup_free_ char *gone = xasprintf("%s/bases/%s.gone-3", f.dir, "ab");
    CHECK(mkdir_p(stale, 0755) == 0 && mkdir_p(fresh, 0755) == 0 && mkdir_p(gone, 0755) == 0);
    _cleanup_free_ char *junk = xasprintf("%s/layer.tar.zst", stale);
    write_bytes(junk, 10, 'j');
    struct timespec old[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
    CHECK(utimensat(AT_FDCWD, stale, old, 0) == 0);
    _cleanup_free_ char *key = key_for('6');
    keep_base(&f, key, 10, 'k');
    CHECK(access(stale, F_OK) != 0);
    CHECK(access(gone, F_OK) != 0);
    CHECK(access(fresh, F_OK) == 0); /* another build may be keeping it right now */
    CHECK(entry_exists(&f, "bases", key));
    teardown(&f);
}
