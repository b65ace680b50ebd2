/* The classic chroot escapes as a static program with raw system calls, so
 * that it runs where there is no interpreter (a busybox image):
 *
 * 1. chroot into a subdirectory with the working directory left outside it,
 *    climb with "..", chroot(".");
 * 2. open "/" first, chroot into a subdirectory, fchdir to that descriptor,
 *    climb with "..", chroot(".").
 *
 * Contained means every attempt ends with the root it started from: the same
 * names in "/" and "/mnt", the same answers for the paths that would give a
 * build's surroundings away (the build disk, the mirror, the host's
 * libseccomp). Everything it sees is printed, before and after.
 *
 * Compiled by test_sandbox.py (gcc -static -O1) and by test_build.py
 * (gcc -static -nostdlib -ffreestanding -DESCAPE_NOSTDLIB), which ships it
 * base64-encoded in a recipe's overlay and runs it from a hook.
 * Expected: RESULT: contained */

#define NR_write 1
#define NR_close 3
#define NR_chdir 80
#define NR_fchdir 81
#define NR_mkdir 83
#define NR_chroot 161
#define NR_getdents64 217
#define NR_exit_group 231
#define NR_openat 257
#define NR_newfstatat 262

#define AT_FDCWD_ (-100)
#define O_RDONLY_ 0
#define O_DIRECTORY_ 0200000
#define O_CLOEXEC_ 02000000
#define AT_SYMLINK_NOFOLLOW_ 0x100

static long sys4(long n, long a, long b, long c, long d)
{
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}

static long sys(long n, long a, long b, long c)
{
    return sys4(n, a, b, c, 0);
}

static unsigned long len_of(const char *s)
{
    unsigned long n = 0;
    while (s[n])
        n++;
    return n;
}

struct text {
    char buf[8192];
    unsigned long len;
};

static void add(struct text *t, const char *s)
{
    for (; *s && t->len < sizeof(t->buf) - 1; s++)
        t->buf[t->len++] = *s;
    t->buf[t->len] = '\0';
}

static void add_num(struct text *t, long v)
{
    char d[24];
    int i = sizeof(d) - 1;
    int neg = v < 0;
    d[i] = '\0';
    if (neg)
        v = -v;
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 1);
    if (neg)
        d[--i] = '-';
    add(t, d + i);
}

static void say(const char *s)
{
    sys(NR_write, 1, (long)s, (long)len_of(s));
}

static int same(const struct text *a, const struct text *b)
{
    if (a->len != b->len)
        return 0;
    for (unsigned long i = 0; i < a->len; i++)
        if (a->buf[i] != b->buf[i])
            return 0;
    return 1;
}

/* The names in dir, in the order the file system gives them. */
static void list(struct text *t, const char *dir)
{
    add(t, dir);
    add(t, ":");
    long fd = sys4(NR_openat, AT_FDCWD_, (long)dir, O_RDONLY_ | O_DIRECTORY_ | O_CLOEXEC_, 0);
    if (fd < 0) {
        add(t, " (error ");
        add_num(t, -fd);
        add(t, ")\n");
        return;
    }
    char buf[4096] __attribute__((aligned(8)));
    long n;
    while ((n = sys(NR_getdents64, fd, (long)buf, sizeof(buf))) > 0) {
        for (long off = 0; off < n;) {
            unsigned short reclen = *(unsigned short *)(buf + off + 16);
            const char *name = buf + off + 19;
            if (!(name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))) {
                add(t, " ");
                add(t, name);
            }
            off += reclen;
        }
    }
    sys(NR_close, fd, 0, 0);
    add(t, "\n");
}

static void view(struct text *t)
{
    static const char *const probes[] = {"/mnt/build", "/mnt/build/root", "/mnt/mirror", "/mnt/in",
                                         "/usr/lib/x86_64-linux-gnu/libseccomp.so.2", 0};
    t->len = 0;
    t->buf[0] = '\0';
    list(t, "/");
    list(t, "/mnt");
    for (int i = 0; probes[i]; i++) {
        long st[32];
        add(t, probes[i]);
        add(t, sys4(NR_newfstatat, AT_FDCWD_, (long)probes[i], (long)st, AT_SYMLINK_NOFOLLOW_) == 0 ? ": yes\n"
                                                                                                : ": no\n");
    }
}

static void report(const char *when, const struct text *t)
{
    say("--- ");
    say(when);
    say(" ---\n");
    say(t->buf);
}

static void refused(const char *what, long rc)
{
    static struct text t;
    t.len = 0;
    add(&t, what);
    add(&t, ": chroot refused, error ");
    add_num(&t, -rc);
    add(&t, "\n");
    say(t.buf);
}

static void climb(void)
{
    for (int i = 0; i < 64; i++)
        sys(NR_chdir, (long)"..", 0, 0);
}

static int run(void)
{
    static struct text before, after;
    int contained = 1;
    view(&before);
    report("before", &before);
    long outside = sys4(NR_openat, AT_FDCWD_, (long)"/", O_RDONLY_ | O_DIRECTORY_, 0);
    sys(NR_mkdir, (long)"/tmp/debate-jail", 0755, 0);
    sys(NR_mkdir, (long)"/tmp/debate-jail/inner", 0755, 0);

    /* 1: the working directory stays outside the new root. */
    sys(NR_chdir, (long)"/", 0, 0);
    long rc = sys(NR_chroot, (long)"/tmp/debate-jail", 0, 0);
    if (rc == 0) {
        climb();
        sys(NR_chroot, (long)".", 0, 0);
        view(&after);
        report("after the working-directory escape", &after);
        contained &= same(&before, &after);
    } else {
        refused("working-directory escape", rc);
    }

    /* 2: a descriptor opened before the chroot. */
    rc = sys(NR_chroot, (long)"/tmp/debate-jail/inner", 0, 0);
    if (rc == 0 && outside >= 0) {
        sys(NR_fchdir, outside, 0, 0);
        climb();
        sys(NR_chroot, (long)".", 0, 0);
        view(&after);
        report("after the descriptor escape", &after);
        contained &= same(&before, &after);
    } else {
        refused("descriptor escape", rc);
    }
    say(contained ? "RESULT: contained\n" : "RESULT: escaped\n");
    return 0;
}

#ifdef ESCAPE_NOSTDLIB
/* The kernel enters with the stack 16-byte aligned and no return address. */
__attribute__((force_align_arg_pointer, noreturn)) void _start(void)
{
    sys(NR_exit_group, run(), 0, 0);
    __builtin_unreachable();
}
#else
int main(void)
{
    return run();
}
#endif
