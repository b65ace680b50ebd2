#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/cpio.h"
#include "harness.h"
#include "util.h"

static char *make_tree(void)
{
    char *dir = xstrdup("/tmp/debate-cpio-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    _cleanup_free_ char *sub = xasprintf("%s/b-dir", dir), *file = xasprintf("%s/b-dir/file", dir),
                       *top = xasprintf("%s/a-file", dir), *lnk = xasprintf("%s/c-link", dir);
    CHECK_INT(mkdir(sub, 0755), 0);
    CHECK_INT(write_file_atomic(file, "hello\n", 6, 0644), 0);
    CHECK_INT(write_file_atomic(top, "x", 1, 0755), 0);
    CHECK_INT(symlink("b-dir/file", lnk), 0);
    return dir;
}

TEST(archives_are_byte_identical_whatever_the_files_times)
{
    char *d1 = make_tree(), *d2 = make_tree();
    /* Different mtimes on disk must not matter. */
    _cleanup_free_ char *f = xasprintf("%s/b-dir/file", d2);
    struct timespec ts[2] = {{1000, 0}, {1000, 0}};
    CHECK_INT(utimensat(AT_FDCWD, f, ts, 0), 0);
    _cleanup_free_ char *o1 = xasprintf("%s.cpio", d1), *o2 = xasprintf("%s.cpio", d2);
    char err[256];
    CHECK_INT(cpio_write_tree(d1, o1, 1700000000, err, sizeof(err)), 0);
    CHECK_INT(cpio_write_tree(d2, o2, 1700000000, err, sizeof(err)), 0);
    char *a, *b;
    size_t la, lb;
    CHECK_INT(read_file(o1, 1 << 20, &a, &la), 0);
    CHECK_INT(read_file(o2, 1 << 20, &b, &lb), 0);
    CHECK_INT(la, lb);
    CHECK(memcmp(a, b, la) == 0);
    /* newc magic, sorted names, the link's target, the trailer. */
    CHECK(memcmp(a, "070701", 6) == 0);
    char *p1 = memmem(a, la, "a-file", 6), *p2 = memmem(a, la, "b-dir/file", 10), *p3 = memmem(a, la, "c-link", 6);
    CHECK(p1 != NULL && p2 != NULL && p3 != NULL && p1 < p2 && p2 < p3);
    CHECK(memmem(a, la, "hello\n", 6) != NULL);
    CHECK(memmem(a, la, "TRAILER!!!", 10) != NULL);
    CHECK_INT(la % 4, 0);
    /* mtime field (8 hex digits at offset 46) of the first entry is the epoch. */
    CHECK(memcmp(a + 46, "6553F100", 8) == 0);
    free(a);
    free(b);
    _cleanup_free_ char *rm = xasprintf("rm -rf %s %s %s %s", d1, d2, o1, o2);
    CHECK_INT(system(rm), 0);
    free(d1);
    free(d2);
}

TEST(special_files_are_refused)
{
    char *d = make_tree();
    _cleanup_free_ char *fifo = xasprintf("%s/pipe", d), *out = xasprintf("%s.cpio", d);
    CHECK_INT(mkfifo(fifo, 0644), 0);
    char err[256];
    CHECK_INT(cpio_write_tree(d, out, 0, err, sizeof(err)), -1);
    CHECK(strstr(err, "is not a file, directory or link") != NULL);
    _cleanup_free_ char *rm = xasprintf("rm -rf %s %s", d, out);
    CHECK_INT(system(rm), 0);
    free(d);
}

/* An empty tree is an archive of the trailer alone (the empty list was handed to qsort as NULL). */
TEST(an_empty_tree_is_the_trailer_alone)
{
    char d[] = "/tmp/debate-cpio-XXXXXX";
    CHECK(mkdtemp(d) != NULL);
    _cleanup_free_ char *out = xasprintf("%s.cpio", d);
    char err[256];
    CHECK_INT(cpio_write_tree(d, out, 0, err, sizeof(err)), 0);
    _cleanup_free_ char *a = NULL;
    size_t la;
    CHECK_INT(read_file(out, 1 << 20, &a, &la), 0);
    CHECK_INT(la, 124); /* 110 + "TRAILER!!!" and its NUL, padded to 4 */
    CHECK(memcmp(a + 110, "TRAILER!!!", 11) == 0);
    _cleanup_free_ char *rm = xasprintf("rm -rf %s %s", d, out);
    CHECK_INT(system(rm), 0);
}

/*
 * A file named TRAILER!!! at the top would end the archive early for any
 * reader, the kernel's included: refused, naming it.
 */
TEST(a_file_named_like_the_trailer_is_refused)
{
    char *d = make_tree();
    _cleanup_free_ char *t = xasprintf("%s/TRAILER!!!", d), *nested = xasprintf("%s/b-dir/TRAILER!!!", d),
                       *out = xasprintf("%s.cpio", d);
    CHECK_INT(write_file_atomic(nested, "", 0, 0644), 0);
    char err[256];
    CHECK_INT(cpio_write_tree(d, out, 0, err, sizeof(err)), 0); /* below the top it is just a name */
    CHECK_INT(write_file_atomic(t, "", 0, 0644), 0);
    CHECK_INT(cpio_write_tree(d, out, 0, err, sizeof(err)), -1);
    CHECK(strstr(err, "TRAILER!!!\": the name that ends a cpio archive") != NULL);
    _cleanup_free_ char *rm = xasprintf("rm -rf %s %s", d, out);
    CHECK_INT(system(rm), 0);
    free(d);
}
