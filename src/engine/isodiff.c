/*
 * Comparing two ISOs in the sandbox (isodiff.h). The host half copies the
 * images into a read-only input directory, runs the payload and reads the
 * report back; the payload, inside, lists both ISO 9660 trees with xorriso,
 * compares every file's bytes at its extents, the blocks outside every file,
 * and goes into the squashfs and the EFI image when they differ.
 */
#include "engine/isodiff.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "engine/sandbox.h"
#include "proc.h"
#include "util.h"
#include "banned.h"

/* Inside the sandbox: the two images (read-only) and the build disk. */
#define IN "/mnt/in"
#define DISK "/mnt/build"
#define BLOCK 2048LL
#define SYSTEM_AREA_BLOCKS 16 /* the MBR, the GPT and the isohybrid boot code before the volume descriptors */
#define MAX_EXTENTS 64
#define MAX_REPORT (16u << 20)
#define MAX_WALK_DEPTH 256

/* ---- inside: one ISO's tree --------------------------------------------------------------- */

struct extent {
    long long lba, blocks;
};

struct entry {
    char *path;
    const char *role; /* "the boot catalog", ...; or NULL */
    long long size;
    struct extent x[MAX_EXTENTS];
    size_t nx;
};

struct side {
    const char *name; /* "original" or "rebuilt" */
    const char *iso;  /* its path inside */
    int fd;
    long long size;
    struct entry *entries;
    size_t n, cap;
    long long cat_lba, cat_blocks;
    char *cat_path;
    struct {
        int n;
        char pltf[8];
        char *path;
    } boot[8];
    size_t nboot;
};

/* What the payload writes to: the report, one difference a line. */
struct diff {
    struct side a, b;
    FILE *report;
    size_t lines;
    const char *diffoscope; /* or NULL */
};

static void side_release(struct side *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->entries[i].path);
    free(s->entries);
    free(s->cat_path);
    for (size_t i = 0; i < s->nboot; i++)
        free(s->boot[i].path);
    if (s->fd >= 0)
        close(s->fd);
}

/* The text of a path from an image, safe on one line: control characters and backslashes as \xNN. */
static char *escape(const char *s)
{
    size_t n = strlen(s);
    char *out = xmalloc(4 * n + 1), *p = out;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c < 0x20 || *c == 0x7f || *c == '\\')
            p += snprintf(p, 5, "\\x%02x", *c);
        else
            *p++ = (char)*c;
    }
    *p = '\0';
    return out;
}

static void say(struct diff *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct diff *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(d->report, fmt, ap);
    va_end(ap);
    fputc('\n', d->report);
    d->lines++;
}

static struct entry *side_add(struct side *s, const char *path)
{
    if (s->n > 0 && strcmp(s->entries[s->n - 1].path, path) == 0)
        return &s->entries[s->n - 1]; /* the next extent of a file over 4 GiB */
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->entries = xrealloc(s->entries, s->cap * sizeof(*s->entries));
    }
    struct entry *e = &s->entries[s->n++];
    memset(e, 0, sizeof(*e));
    e->path = xstrdup(path);
    return e;
}

/* xorriso quotes a path in '...', a quote in it as '"'"'; the text after the first quote, unquoted. */
static char *unquote(const char *q)
{
    size_t n = strlen(q);
    while (n > 0 && (q[n - 1] == '\n' || q[n - 1] == '\r'))
        n--;
    if (n < 2 || q[0] != '\'' || q[n - 1] != '\'')
        return NULL;
    char *out = xstrndup(q + 1, n - 2), *w = out;
    for (const char *r = out; *r;) {
        if (strncmp(r, "'\"'\"'", 5) == 0) {
            *w++ = '\'';
            r += 5;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return out;
}

static void chomp(char *s)
{
    s[strcspn(s, "\r\n")] = '\0';
}

/* One line of xorriso's report into s; unknown lines are skipped. */
static void side_parse_line(struct side *s, char *line)
{
    int xt, n, used = 0;
    long long lba, blocks, size;
    char pltf[8];
    if (sscanf(line, "File data lba: %d , %lld , %lld , %lld , %n", &xt, &lba, &blocks, &size, &used) == 4 &&
        used > 0) {
        _cleanup_free_ char *path = unquote(line + used);
        if (path == NULL)
            return;
        struct entry *e = side_add(s, path);
        if (e->nx < MAX_EXTENTS)
            e->x[e->nx++] = (struct extent){lba, blocks};
        e->size = size;
    } else if (sscanf(line, "El Torito catalog : %lld %lld", &lba, &blocks) == 2) {
        s->cat_lba = lba;
        s->cat_blocks = blocks;
    } else if (strncmp(line, "El Torito cat path : ", 21) == 0 && s->cat_path == NULL) {
        chomp(line);
        s->cat_path = xstrdup(line + 21);
    } else if (sscanf(line, "El Torito boot img : %d %7s", &n, pltf) == 2 && s->nboot < ARRAY_SIZE(s->boot)) {
        s->boot[s->nboot].n = n;
        snprintf(s->boot[s->nboot].pltf, sizeof(s->boot[0].pltf), "%s", pltf);
        s->nboot++;
    } else if (sscanf(line, "El Torito img path : %d %n", &n, &used) == 1 && used > 0) {
        chomp(line);
        for (size_t i = 0; i < s->nboot; i++)
            if (s->boot[i].n == n && s->boot[i].path == NULL)
                s->boot[i].path = xstrdup(line + used);
    }
}

static int by_path(const void *x, const void *y)
{
    return strcmp(((const struct entry *)x)->path, ((const struct entry *)y)->path);
}

/* The roles xorriso's El Torito report gives to paths; the catalog is no file of the tree, so it is added. */
static void side_roles(struct side *s)
{
    if (s->cat_blocks > 0) {
        struct entry *e = side_add(s, s->cat_path ? s->cat_path : "(boot catalog)");
        e->x[0] = (struct extent){s->cat_lba, s->cat_blocks};
        e->nx = 1;
        e->size = s->cat_blocks * BLOCK;
        e->role = "the El Torito boot catalog";
    }
    for (size_t i = 0; i < s->n; i++) {
        struct entry *e = &s->entries[i];
        for (size_t j = 0; j < s->nboot; j++) {
            if (e->role != NULL || s->boot[j].path == NULL || strcmp(s->boot[j].path, e->path) != 0)
                continue;
            e->role = strcmp(s->boot[j].pltf, "UEFI") == 0 ? "the El Torito EFI boot image"
                                                           : "the El Torito BIOS boot image";
        }
        size_t len = strlen(e->path);
        if (e->role == NULL && len > 9 && strcmp(e->path + len - 9, ".squashfs") == 0)
            e->role = "the root filesystem";
    }
    qsort(s->entries, s->n, sizeof(*s->entries), by_path);
}

/* Lists s's tree with xorriso (its own output in a file on the build disk) and reads it; -1 with why in err. */
static int side_scan(struct side *s, char *err, size_t errlen)
{
    _cleanup_free_ char *list = xasprintf(DISK "/%s.lba", s->name);
    const char *argv[] = {"/usr/bin/xorriso", "-no_rc", "-backslash_codes", "encode_output", "-indev", s->iso,
                          "-report_el_torito", "plain", "-find", "/", "-exec", "report_lba", "--", NULL};
    struct proc_opts po = {.stdout_path = list};
    char perr[256];
    int rc = proc_run(argv, &po, perr, sizeof(perr));
    if (rc != 0) {
        const char *tail = po.tail;
        size_t tl = strlen(tail);
        snprintf(err, errlen, "xorriso: %s: %.400s", rc < 0 ? perr : "it failed", tl > 400 ? tail + tl - 400 : tail);
        return -1;
    }
    FILE *f = fopen(list, "re");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read \"%s\": %s", list, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0)
        side_parse_line(s, line);
    free(line);
    fclose(f);
    side_roles(s);
    return 0;
}

static int side_open(struct side *s)
{
    s->fd = open(s->iso, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (s->fd < 0 || fstat(s->fd, &st) < 0) {
        fprintf(stderr, "cannot open the %s ISO: %s\n", s->name, strerror(errno));
        return -1;
    }
    s->size = st.st_size;
    return 0;
}

/* ---- inside: bytes ------------------------------------------------------------------------ */

/* Reads up to n bytes at off; what lies past the end reads as zeros. */
static void read_at(int fd, long long off, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + (long long)got));
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    memset(buf + got, 0, n - got);
}

static bool same_range(int fa, long long oa, int fb, long long ob, long long len)
{
    static char x[1 << 16], y[1 << 16];
    while (len > 0) {
        size_t n = len < (long long)sizeof(x) ? (size_t)len : sizeof(x);
        read_at(fa, oa, x, n);
        read_at(fb, ob, y, n);
        if (memcmp(x, y, n) != 0)
            return false;
        oa += (long long)n;
        ob += (long long)n;
        len -= (long long)n;
    }
    return true;
}

/* The file's bytes, extent by extent, each up to what is left of its size. */
static bool same_content(const struct side *a, const struct entry *ea, const struct side *b, const struct entry *eb)
{
    if (ea->size != eb->size || ea->nx != eb->nx)
        return false;
    long long left = ea->size;
    for (size_t i = 0; i < ea->nx && left > 0; i++) {
        long long len = ea->x[i].blocks * BLOCK;
        if (len != eb->x[i].blocks * BLOCK)
            return false;
        len = len < left ? len : left;
        if (!same_range(a->fd, ea->x[i].lba * BLOCK, b->fd, eb->x[i].lba * BLOCK, len))
            return false;
        left -= len;
    }
    return true;
}

/* Copies the file's bytes out of the image to path, for a tool that wants a file. */
static int extract(const struct side *s, const struct entry *e, const char *path)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    static char buf[1 << 16];
    long long left = e->size;
    for (size_t i = 0; i < e->nx && left > 0; i++) {
        long long off = e->x[i].lba * BLOCK, len = e->x[i].blocks * BLOCK;
        len = len < left ? len : left;
        left -= len;
        while (len > 0) {
            size_t n = len < (long long)sizeof(buf) ? (size_t)len : sizeof(buf);
            read_at(s->fd, off, buf, n);
            if (write(fd, buf, n) != (ssize_t)n)
                return -1;
            off += (long long)n;
            len -= (long long)n;
        }
    }
    return 0;
}

/* ---- inside: the squashfs ---------------------------------------------------------------- */

struct node {
    char *path; /* "/etc/motd" */
    struct stat st;
    char *target; /* a link's */
};

struct tree {
    int rootfd;
    struct node *nodes;
    size_t n, cap;
};

static void tree_release(struct tree *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->nodes[i].path);
        free(t->nodes[i].target);
    }
    free(t->nodes);
    if (t->rootfd >= 0)
        close(t->rootfd);
}

/* Every entry under dirfd, links not followed; rel is dirfd's path in the tree ("" for the root). */
static void tree_walk(struct tree *t, int dirfd, const char *rel, int depth)
{
    int dup_fd = dup(dirfd);
    DIR *dir = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (dir == NULL) {
        if (dup_fd >= 0)
            close(dup_fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct node nd = {.path = xasprintf("%s/%s", rel, de->d_name)};
        if (fstatat(dirfd, de->d_name, &nd.st, AT_SYMLINK_NOFOLLOW) < 0) {
            free(nd.path);
            continue;
        }
        if (S_ISLNK(nd.st.st_mode)) {
            char buf[4096];
            ssize_t r = readlinkat(dirfd, de->d_name, buf, sizeof(buf) - 1);
            nd.target = xstrndup(buf, r > 0 ? (size_t)r : 0);
        }
        if (t->n == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 256;
            t->nodes = xrealloc(t->nodes, t->cap * sizeof(*t->nodes));
        }
        t->nodes[t->n++] = nd;
        if (S_ISDIR(nd.st.st_mode) && depth < MAX_WALK_DEPTH) {
            _cleanup_close_ int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                tree_walk(t, sub, nd.path, depth + 1);
        }
    }
    closedir(dir);
}

static int node_by_path(const void *x, const void *y)
{
    return strcmp(((const struct node *)x)->path, ((const struct node *)y)->path);
}

static const char *kind_of(mode_t m)
{
    return S_ISREG(m) ? "file" : S_ISDIR(m) ? "directory" : S_ISLNK(m) ? "link" : S_ISCHR(m) ? "character device"
         : S_ISBLK(m) ? "block device" : S_ISFIFO(m) ? "fifo" : "socket";
}

/* "file 0644 0:0 18 bytes", "link 0777 0:0 -> /bin/busybox" */
static char *describe(const struct node *nd)
{
    const struct stat *st = &nd->st;
    _cleanup_free_ char *target = nd->target ? escape(nd->target) : NULL;
    char what[64] = "";
    if (S_ISREG(st->st_mode))
        snprintf(what, sizeof(what), " %lld bytes", (long long)st->st_size);
    else if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode))
        snprintf(what, sizeof(what), " %u,%u", major(st->st_rdev), minor(st->st_rdev));
    return xasprintf("%s %04o %u:%u%s%s%s", kind_of(st->st_mode), (unsigned)(st->st_mode & 07777),
                     (unsigned)st->st_uid, (unsigned)st->st_gid, what, target ? " -> " : "", target ? target : "");
}

static bool same_file(const struct tree *ta, const struct tree *tb, const char *path)
{
    _cleanup_close_ int fa = sandbox_open_beneath(ta->rootfd, path + 1, O_RDONLY);
    _cleanup_close_ int fb = sandbox_open_beneath(tb->rootfd, path + 1, O_RDONLY);
    struct stat sa, sb;
    if (fa < 0 || fb < 0 || fstat(fa, &sa) < 0 || fstat(fb, &sb) < 0 || sa.st_size != sb.st_size)
        return false;
    return same_range(fa, 0, fb, 0, sa.st_size);
}

static bool same_node(const struct tree *ta, const struct node *a, const struct tree *tb, const struct node *b)
{
    const struct stat *x = &a->st, *y = &b->st;
    if (x->st_mode != y->st_mode || x->st_uid != y->st_uid || x->st_gid != y->st_gid)
        return false;
    if (S_ISLNK(x->st_mode))
        return strcmp(a->target, b->target) == 0;
    if (S_ISCHR(x->st_mode) || S_ISBLK(x->st_mode))
        return x->st_rdev == y->st_rdev;
    return !S_ISREG(x->st_mode) || same_file(ta, tb, a->path);
}

/* Unpacks the squashfs at e's first extent of s's image to DISK/squashfs-NAME; the tree, walked and sorted. */
static int tree_unpack(struct diff *d, const struct side *s, const struct entry *e, struct tree *t)
{
    _cleanup_free_ char *dest = xasprintf(DISK "/squashfs-%s", s->name);
    char offset[32];
    snprintf(offset, sizeof(offset), "%lld", e->x[0].lba * BLOCK);
    /* -ignore-errors: a file it cannot write (a device node, in a user namespace) must not end the rest. */
    const char *argv[] = {"/usr/bin/unsquashfs", "-no-progress", "-quiet", "-no-xattrs", "-ignore-errors",
                          "-processors", "1", "-offset", offset, "-dest", dest, s->iso, NULL};
    struct proc_opts po = {0};
    char err[256];
    int rc = proc_run(argv, &po, err, sizeof(err));
    if (rc != 0 && rc != 2) {
        _cleanup_free_ char *tail = escape(po.tail);
        say(d, "squashfs  the %s ISO's squashfs cannot be unpacked whole (unsquashfs: %s): %s", s->name,
            rc < 0 ? err : "it failed", tail);
    }
    t->rootfd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (t->rootfd < 0)
        return -1;
    struct node root = {.path = xstrdup("/")};
    if (fstat(t->rootfd, &root.st) == 0) {
        t->nodes = xmalloc(sizeof(*t->nodes) * (t->cap = 256));
        t->nodes[t->n++] = root;
    } else {
        free(root.path);
    }
    tree_walk(t, t->rootfd, "", 0);
    qsort(t->nodes, t->n, sizeof(*t->nodes), node_by_path);
    return 0;
}

/* The paths of the two squashfs trees that differ, with their kind, mode, owner and size on each side. */
static void compare_squashfs(struct diff *d, const struct entry *ea, const struct entry *eb)
{
    struct tree ta = {.rootfd = -1}, tb = {.rootfd = -1};
    size_t before = d->lines;
    if (tree_unpack(d, &d->a, ea, &ta) == 0 && tree_unpack(d, &d->b, eb, &tb) == 0) {
        size_t i = 0, j = 0;
        while (i < ta.n || j < tb.n) {
            int c = i == ta.n ? 1 : j == tb.n ? -1 : strcmp(ta.nodes[i].path, tb.nodes[j].path);
            const struct node *na = c <= 0 ? &ta.nodes[i] : NULL, *nb = c >= 0 ? &tb.nodes[j] : NULL;
            _cleanup_free_ char *path = escape(na ? na->path : nb->path);
            _cleanup_free_ char *da = na ? describe(na) : NULL, *db = nb ? describe(nb) : NULL;
            if (na == NULL)
                say(d, "squashfs  %s: only in the rebuild (%s)", path, db);
            else if (nb == NULL)
                say(d, "squashfs  %s: only in the original (%s)", path, da);
            else if (!same_node(&ta, na, &tb, nb))
                say(d, "squashfs  %s: %s, rebuilt %s", path, da, db);
            i += c <= 0;
            j += c >= 0;
        }
    }
    if (d->lines == before)
        say(d, "squashfs  no path differs: the difference is in the squashfs's own metadata or compression");
    tree_release(&ta);
    tree_release(&tb);
}

/* ---- inside: the EFI image --------------------------------------------------------------- */

/* The GRUB image out of the EFI image at e of s, to DISK/grub-NAME.efi; its path, or NULL. */
static char *grub_extract(const struct side *s, const struct entry *e)
{
    _cleanup_free_ char *img = xasprintf(DISK "/efi-%s.img", s->name);
    char *out = xasprintf(DISK "/grub-%s.efi", s->name);
    const char *argv[] = {"/usr/bin/mcopy", "-n", "-i", img, "::/EFI/BOOT/BOOTX64.EFI", out, NULL};
    static const char *const env[] = {"MTOOLS_SKIP_CHECK=1", NULL};
    struct proc_opts po = {.env = env};
    char err[256];
    if (extract(s, e, img) < 0 || proc_run(argv, &po, err, sizeof(err)) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static void compare_grub(struct diff *d, const struct entry *ea, const struct entry *eb)
{
    _cleanup_free_ char *ga = grub_extract(&d->a, ea), *gb = grub_extract(&d->b, eb);
    _cleanup_free_ char *path = escape(ea->path);
    if (ga == NULL || gb == NULL) {
        say(d, "iso  %s:/EFI/BOOT/BOOTX64.EFI (the GRUB image): cannot be read from the %s", path,
            ga == NULL ? "original" : "rebuild");
        return;
    }
    _cleanup_close_ int fa = open(ga, O_RDONLY | O_CLOEXEC), fb = open(gb, O_RDONLY | O_CLOEXEC);
    struct stat sa, sb;
    if (fa < 0 || fb < 0 || fstat(fa, &sa) < 0 || fstat(fb, &sb) < 0)
        return;
    if (sa.st_size != sb.st_size || !same_range(fa, 0, fb, 0, sa.st_size))
        say(d, "iso  %s:/EFI/BOOT/BOOTX64.EFI (the GRUB image): %lld bytes, rebuilt %lld bytes", path,
            (long long)sa.st_size, (long long)sb.st_size);
}

/* ---- inside: the whole comparison -------------------------------------------------------- */

static void compare_entry(struct diff *d, const struct entry *ea, const struct entry *eb)
{
    if (same_content(&d->a, ea, &d->b, eb))
        return;
    _cleanup_free_ char *path = escape(ea->path);
    /* The rebuild's catalog says what a path is: the original's may be the very part that changed. */
    const char *role = eb->role ? eb->role : ea->role;
    say(d, "iso  %s%s%s%s: %lld bytes, rebuilt %lld bytes", path, role ? " (" : "", role ? role : "", role ? ")" : "",
        ea->size, eb->size);
    if (role != NULL && strcmp(role, "the root filesystem") == 0 && ea->nx > 0 && eb->nx > 0)
        compare_squashfs(d, ea, eb);
    else if (role != NULL && strcmp(role, "the El Torito EFI boot image") == 0)
        compare_grub(d, ea, eb);
}

/* Marks the blocks of s's files in covered (nblocks long). */
static void mark_covered(const struct side *s, bool *covered, long long nblocks)
{
    for (size_t i = 0; i < s->n; i++)
        for (size_t k = 0; k < s->entries[i].nx; k++) {
            const struct extent *x = &s->entries[i].x[k];
            for (long long blk = x->lba; blk >= 0 && blk < x->lba + x->blocks && blk < nblocks; blk++)
                covered[blk] = true;
        }
}

/* The blocks outside every file: the system area, and the ISO 9660 metadata and padding. */
static void compare_rest(struct diff *d)
{
    long long size = d->a.size > d->b.size ? d->a.size : d->b.size;
    long long nblocks = (size + BLOCK - 1) / BLOCK, system = 0, other = 0;
    bool *covered = xcalloc((size_t)nblocks + 1, sizeof(bool));
    mark_covered(&d->a, covered, nblocks);
    mark_covered(&d->b, covered, nblocks);
    for (long long blk = 0; blk < nblocks; blk++) {
        if (covered[blk] || same_range(d->a.fd, blk * BLOCK, d->b.fd, blk * BLOCK, BLOCK))
            continue;
        if (blk < SYSTEM_AREA_BLOCKS)
            system++;
        else
            other++;
    }
    free(covered);
    if (d->a.size != d->b.size)
        say(d, "iso  the size: %lld bytes, rebuilt %lld bytes", d->a.size, d->b.size);
    if (system > 0)
        say(d, "iso  the system area (MBR, GPT and isohybrid boot code, the first 32 KiB): %lld blocks differ",
            system);
    if (other > 0)
        say(d, "iso  the ISO 9660 metadata and padding (volume descriptors, directory records, the GPT's "
               "backup; outside every file): %lld blocks differ", other);
}

static void compare_trees(struct diff *d)
{
    size_t i = 0, j = 0;
    while (i < d->a.n || j < d->b.n) {
        int c = i == d->a.n ? 1 : j == d->b.n ? -1 : strcmp(d->a.entries[i].path, d->b.entries[j].path);
        if (c == 0) {
            compare_entry(d, &d->a.entries[i], &d->b.entries[j]);
        } else {
            const struct entry *e = c < 0 ? &d->a.entries[i] : &d->b.entries[j];
            _cleanup_free_ char *path = escape(e->path);
            say(d, "iso  %s: only in the %s (%lld bytes)", path, c < 0 ? "original" : "rebuild", e->size);
        }
        i += c <= 0;
        j += c >= 0;
    }
    compare_rest(d);
}

/* diffoscope's text and HTML reports on the build disk, for collect to copy out. */
static int run_diffoscope(struct diff *d)
{
    if (mkdir(DISK "/diffoscope", 0755) < 0 || mkdir(DISK "/tmp", 0700) < 0) {
        fprintf(stderr, "cannot prepare diffoscope's directories: %s\n", strerror(errno));
        return -1;
    }
    const char *argv[] = {d->diffoscope, "--no-progress", "--text", DISK "/diffoscope/report.txt", "--html",
                          DISK "/diffoscope/report.html", d->a.iso, d->b.iso, NULL};
    static const char *const env[] = {"TMPDIR=" DISK "/tmp", NULL};
    struct proc_opts po = {.env = env};
    char err[256];
    int rc = proc_run(argv, &po, err, sizeof(err));
    if (rc != 0 && rc != 1) { /* 1: it found differences */
        fprintf(stderr, "diffoscope failed (%s): %s\n", rc < 0 ? err : "exit status", po.tail);
        return -1;
    }
    return 0;
}

/* The sandbox's payload: the report at DISK/report; 0, or 1 with the reason on standard error. */
static int isodiff_payload(void *arg)
{
    struct diff *d = arg;
    int rc = 1;
    d->report = fopen(DISK "/report", "we");
    if (d->report == NULL) {
        fprintf(stderr, "cannot write the report: %s\n", strerror(errno));
        return 1;
    }
    if (side_open(&d->a) < 0 || side_open(&d->b) < 0)
        goto out;
    if (d->a.size == d->b.size && same_range(d->a.fd, 0, d->b.fd, 0, d->a.size))
        goto done;
    char err[1024];
    if (side_scan(&d->b, err, sizeof(err)) < 0) { /* the rebuild: debate's own image */
        fprintf(stderr, "cannot read the rebuilt ISO: %s\n", err);
        goto out;
    }
    if (side_scan(&d->a, err, sizeof(err)) < 0) {
        /* Whatever the original holds, the verdict is "differs": say why no file is named, count the blocks. */
        _cleanup_free_ char *why = escape(err);
        say(d, "iso  the original is no ISO 9660 image xorriso can read (%s)", why);
        compare_rest(d);
    } else {
        compare_trees(d);
    }
done:
    if (d->diffoscope != NULL && run_diffoscope(d) < 0)
        goto out;
    rc = fflush(d->report) == 0 ? 0 : 1;
    if (rc != 0)
        fprintf(stderr, "cannot write the report: %s\n", strerror(errno));
out:
    fclose(d->report);
    side_release(&d->a);
    side_release(&d->b);
    return rc;
}

/* ---- the host --------------------------------------------------------------------------- */

struct host {
    const struct isodiff_opts *o;
    char *out_dir;      /* where collect copies the report */
    char tail[1024];    /* the end of what the payload said */
    size_t tail_len;
};

static void host_output(void *arg, const char *buf, size_t n)
{
    struct host *h = arg;
    for (size_t i = 0; i < n; i++) {
        if (h->tail_len + 1 >= sizeof(h->tail)) {
            memmove(h->tail, h->tail + sizeof(h->tail) / 2, h->tail_len - sizeof(h->tail) / 2);
            h->tail_len -= sizeof(h->tail) / 2;
        }
        h->tail[h->tail_len++] = buf[i];
    }
    h->tail[h->tail_len] = '\0';
}

/* Copies rel from beneath the build disk to path (a new file): a link planted there is refused. */
static int collect_one(int diskfd, const char *rel, const char *path, char *err, size_t errlen)
{
    _cleanup_close_ int in = sandbox_open_beneath(diskfd, rel, O_RDONLY);
    struct stat st;
    if (in < 0 || fstat(in, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_REPORT * 64) {
        snprintf(err, errlen, "the comparison left no regular \"%s\": %s", rel, in < 0 ? strerror(errno) : "too large");
        return -1;
    }
    _cleanup_close_ int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (out < 0 || copy_fd(in, out) < 0) {
        snprintf(err, errlen, "cannot write \"%s\": %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int isodiff_collect(int diskfd, void *arg, char *out, size_t outlen, char *err, size_t errlen)
{
    struct host *h = arg;
    _cleanup_free_ char *report = xasprintf("%s/report", h->out_dir);
    if (collect_one(diskfd, "report", report, err, errlen) < 0)
        return -1;
    const char *dir = h->o->diffoscope_dir;
    if (dir == NULL)
        return 0;
    _cleanup_free_ char *txt = xasprintf("%s/report.txt", dir), *html = xasprintf("%s/report.html", dir);
    if (collect_one(diskfd, "diffoscope/report.txt", txt, err, errlen) < 0 ||
        collect_one(diskfd, "diffoscope/report.html", html, err, errlen) < 0)
        return -1;
    snprintf(out, outlen, "ok");
    return 0;
}

/* Makes dir/name a copy of (or a link to) from that the sandbox's ids can read. */
static int stage_input(const char *from, const char *dir, const char *name, char *err, size_t errlen)
{
    _cleanup_free_ char *to = xasprintf("%s/%s", dir, name);
    struct stat st;
    if (stat(from, &st) == 0 && (st.st_mode & 0444) == 0444 && link(from, to) == 0)
        return 0;
    _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
    _cleanup_close_ int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (in < 0 || out < 0 || copy_fd(in, out) < 0 || fchmod(out, 0644) < 0) {
        snprintf(err, errlen, "cannot copy \"%s\" for the comparison: %s", from, strerror(errno));
        return -1;
    }
    return 0;
}

static int host_read_report(struct host *h, struct isodiff_report *rep, char *err, size_t errlen)
{
    _cleanup_free_ char *path = xasprintf("%s/report", h->out_dir);
    _cleanup_free_ char *text = NULL;
    size_t len;
    int rc = read_file(path, MAX_REPORT, &text, &len);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read the comparison's report: %s", strerror(-rc));
        return -1;
    }
    for (char *line = text, *next; line < text + len; line = next) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        next = nl ? nl + 1 : text + len;
        rep->lines = xrealloc(rep->lines, (rep->nlines + 1) * sizeof(char *));
        rep->lines[rep->nlines++] = xstrndup(line, (size_t)((nl ? nl : text + len) - line));
    }
    return 0;
}

static int host_verdict(struct host *h, const struct sandbox_result *sr, char *err, size_t errlen)
{
    switch (sr->cause) {
    case SANDBOX_OK:
        return 0;
    case SANDBOX_CANCELLED:
        snprintf(err, errlen, "interrupted: the comparison stopped");
        return -1;
    case SANDBOX_EXITED:
        snprintf(err, errlen, "the comparison failed: %s", h->tail_len ? h->tail : "it said nothing");
        return -1;
    default:
        snprintf(err, errlen, "the comparison stopped: %s%s%s", sr->message, h->tail_len ? ": " : "", h->tail);
        return -1;
    }
}

int isodiff_compare(const struct isodiff_opts *o, struct isodiff_report *rep, char *err, size_t errlen)
{
    memset(rep, 0, sizeof(*rep));
    if (o->diffoscope_dir != NULL && isodiff_diffoscope() == NULL) {
        snprintf(err, errlen, "diffoscope is not installed");
        return -1;
    }
    struct host h = {.o = o, .out_dir = xasprintf("%s/out", o->work)};
    _cleanup_free_ char *in = xasprintf("%s/in", o->work), *box = xasprintf("%s/sandbox", o->work);
    struct diff d = {.a = {.name = "original", .iso = IN "/original.iso", .fd = -1},
                     .b = {.name = "rebuilt", .iso = IN "/rebuilt.iso", .fd = -1},
                     .diffoscope = o->diffoscope_dir ? isodiff_diffoscope() : NULL};
    struct sandbox_bind bind = {.host = in, .inside = IN};
    struct sandbox_opts so = {.workdir = box, .binds = &bind, .nbinds = 1, .id_base = o->cfg->sandbox_id_base,
                              .env = sandbox_base_env, .hostname = "debate-verify", .payload = isodiff_payload,
                              .arg = &d, .on_output = host_output, .output_arg = &h, .collect = isodiff_collect,
                              .collect_arg = &h, .cancel = o->cancel};
    sandbox_limits_from_config(o->cfg, &so.limits);
    struct sandbox_result sr;
    int rc = -1;
    if (mkdir(in, 0755) < 0 || chmod(in, 0755) < 0 || mkdir(box, 0755) < 0 || mkdir(h.out_dir, 0700) < 0) {
        snprintf(err, errlen, "cannot create the comparison's directories in \"%s\": %s", o->work, strerror(errno));
        goto out;
    }
    if (stage_input(o->original, in, "original.iso", err, errlen) < 0 ||
        stage_input(o->rebuilt, in, "rebuilt.iso", err, errlen) < 0)
        goto out;
    char serr[1024];
    if (sandbox_run(&so, &sr, serr, sizeof(serr)) < 0) {
        snprintf(err, errlen, "the comparison's sandbox could not be set up: %s", serr);
        goto out;
    }
    if (host_verdict(&h, &sr, err, errlen) == 0)
        rc = host_read_report(&h, rep, err, errlen);
out:
    free(h.out_dir);
    return rc;
}

void isodiff_report_release(struct isodiff_report *rep)
{
    for (size_t i = 0; i < rep->nlines; i++)
        free(rep->lines[i]);
    free(rep->lines);
    memset(rep, 0, sizeof(*rep));
}

const char *isodiff_diffoscope(void)
{
    static const char *const paths[] = {"/usr/bin/diffoscope", NULL};
    for (size_t i = 0; paths[i] != NULL; i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}
