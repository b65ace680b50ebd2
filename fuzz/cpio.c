/*
 * The initramfs writer (cpio_write_tree) over trees with hostile names:
 * the input is a list of entries separated by NUL bytes, each a type
 * ('d' directory, 'l' symbolic link, anything else a regular file), a
 * relative path (any bytes; '/' makes parents), and after a \001 byte the
 * file's content or the link's target. What the file system accepts is
 * made in a scratch directory; the archive is then read back: every
 * header well formed and aligned, the names those of the tree exactly,
 * in byte order, each file's bytes and each link's target as written, the
 * trailer last.
 */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/cpio.h"
#include "banned.h"

#define MAX_ENTRIES 64
#define MTIME 1700000000LL

struct made {
    char *path; /* relative */
    char type;  /* 'd', 'l' or 'f' */
    const char *data;
    size_t len;
};

struct tree {
    char root[80];
    struct made v[MAX_ENTRIES * 4];
    size_t n;
};

static struct tree tree;

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    return remove(path) < 0 ? -1 : 0;
}

static void remove_tree(const char *root)
{
    nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup(void)
{
    remove_tree(tree.root);
    _cleanup_free_ char *out = xasprintf("%s.cpio", tree.root);
    unlink(out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(tree.root, sizeof(tree.root), "%s/debate-fuzz-cpio-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    fuzz_require(mkdtemp(tree.root) != NULL);
    atexit(cleanup);
    return 0;
}

static void record(char type, const char *rel, const char *data, size_t len)
{
    fuzz_require(tree.n < ARRAY_SIZE(tree.v));
    tree.v[tree.n++] = (struct made){xstrdup(rel), type, data, len};
}

/* Makes rel's missing parents; false when one cannot be a directory. */
static bool make_parents(char *rel)
{
    for (char *slash = strchr(rel, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        _cleanup_free_ char *path = xasprintf("%s/%s", tree.root, rel);
        bool made = mkdir(path, 0755) == 0;
        struct stat st;
        bool ok = made || (errno == EEXIST && lstat(path, &st) == 0 && S_ISDIR(st.st_mode));
        if (made)
            record('d', rel, NULL, 0);
        *slash = '/';
        if (!ok)
            return false;
    }
    return true;
}

/* A path the tree can hold under that very name: no empty, "." or ".." segment. */
static bool plain_path(const char *rel)
{
    for (const char *seg = rel;;) {
        size_t n = strcspn(seg, "/");
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        if (seg[n] == '\0')
            return true;
        seg += n + 1;
    }
}

/* Whether the record has room for rel and every parent it may make. */
static bool room_for(const char *rel)
{
    size_t need = 1;
    for (const char *p = rel; *p; p++)
        need += *p == '/';
    return tree.n + need <= ARRAY_SIZE(tree.v);
}

static void make_entry(char type, char *rel, const char *data, size_t len)
{
    if (!plain_path(rel) || !room_for(rel) || !make_parents(rel))
        return;
    _cleanup_free_ char *path = xasprintf("%s/%s", tree.root, rel);
    _cleanup_free_ char *target = type == 'l' ? xstrndup(data, len) : NULL;
    if (type == 'd' && mkdir(path, 0755) == 0) {
        record('d', rel, NULL, 0);
    } else if (type == 'l' && target[0] != '\0' && symlink(target, path) == 0) {
        record('l', rel, data, strlen(target));
    } else if (type != 'd' && type != 'l') {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0 && write(fd, data, len) == (ssize_t)len)
            record('f', rel, data, len);
    }
}

static unsigned hex8(const char *p)
{
    char field[9];
    memcpy(field, p, 8);
    field[8] = '\0';
    for (int i = 0; i < 8; i++)
        fuzz_require(strchr("0123456789ABCDEF", field[i]) != NULL);
    return (unsigned)strtoul(field, NULL, 16);
}

static int cmp_made(const void *a, const void *b)
{
    return strcmp(((const struct made *)a)->path, ((const struct made *)b)->path);
}

/* Reads the archive back against what was made (sorted by path). */
static void check_archive(const char *a, size_t len)
{
    size_t at = 0, k = 0;
    for (;;) {
        fuzz_require(at % 4 == 0 && at + 110 <= len && memcmp(a + at, "070701", 6) == 0);
        unsigned mode = hex8(a + at + 14), size = hex8(a + at + 54), namesize = hex8(a + at + 94);
        const char *name = a + at + 110;
        fuzz_require(namesize >= 2 && at + 110 + namesize <= len && name[namesize - 1] == '\0');
        fuzz_require(strlen(name) == namesize - 1);
        size_t data = (at + 110 + namesize + 3) & ~(size_t)3;
        fuzz_require(data + size <= len);
        if (strcmp(name, "TRAILER!!!") == 0) { /* a reader stops here: it must be the end */
            fuzz_require(k == tree.n && ((data + size + 3) & ~(size_t)3) == len);
            return;
        }
        fuzz_require(k < tree.n && strcmp(name, tree.v[k].path) == 0);
        fuzz_require(hex8(a + at + 46) == (unsigned)MTIME);
        const struct made *m = &tree.v[k++];
        unsigned want = m->type == 'd' ? S_IFDIR : m->type == 'l' ? S_IFLNK : S_IFREG;
        fuzz_require((mode & S_IFMT) == want);
        fuzz_require(size == m->len && (size == 0 || memcmp(a + data, m->data, size) == 0));
        at = (data + size + 3) & ~(size_t)3;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t size)
{
    const char *p = (const char *)input, *end = p + size;
    for (size_t count = 0; p < end && count < MAX_ENTRIES; count++) {
        const char *stop = memchr(p, '\0', (size_t)(end - p));
        stop = stop ? stop : end;
        const char *sep = memchr(p, '\001', (size_t)(stop - p));
        const char *name_end = sep ? sep : stop, *data = sep ? sep + 1 : stop;
        if (name_end > p) {
            _cleanup_free_ char *rel = xstrndup(p + 1, (size_t)(name_end - p - 1));
            make_entry(p[0], rel, data, (size_t)(stop - data));
        }
        p = stop + 1;
    }
    qsort(tree.v, tree.n, sizeof(tree.v[0]), cmp_made);
    _cleanup_free_ char *out = xasprintf("%s.cpio", tree.root);
    char err[512] = "";
    int rc = cpio_write_tree(tree.root, out, MTIME, err, sizeof(err));
    char trailer[] = "TRAILER!!!";
    if (bsearch(&(struct made){.path = trailer}, tree.v, tree.n, sizeof(tree.v[0]), cmp_made) != NULL) {
        fuzz_require(rc == -1 && strstr(err, "the name that ends a cpio archive") != NULL);
    } else {
        fuzz_require(rc == 0);
        _cleanup_free_ char *archive = NULL;
        size_t len;
        fuzz_require(read_file(out, 64u << 20, &archive, &len) == 0);
        check_archive(archive, len);
    }
    for (size_t i = 0; i < tree.n; i++)
        free(tree.v[i].path);
    tree.n = 0;
    remove_tree(tree.root);
    fuzz_require(mkdir(tree.root, 0700) == 0);
    return 0;
}
