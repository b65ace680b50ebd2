/*
 * The sandbox: see sandbox.h for what it guarantees. Three processes:
 *
 *   caller   sandbox_run: relays the payload's output, passes a cancel on,
 *            reads the verdict.
 *   S        the supervisor, real root in a private mount namespace: the
 *            build disk, the root view, the cgroup, the id maps, the
 *            limits, the read-back. Its mount namespace (and with it the
 *            build disk) ends when it exits, whatever killed it.
 *   init     PID 1 of the sandbox's namespaces: finishes the setup from
 *            inside, forks the payload, reaps, reports the payload's wait
 *            status. When it exits the kernel kills the rest of its PID
 *            namespace.
 */
#include "engine/sandbox_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/loop.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "util.h"
#include "banned.h"

const char *const sandbox_base_env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TZ=UTC",
                                        "LC_ALL=C.UTF-8", NULL};

/* Every build disk gets the same identity, so directory order cannot vary between builds. */
#define DISK_UUID "64656261-7465-2d62-7569-6c642d646973"
#define MIN_DISK_MB 32u

void sandbox_limits_from_config(const struct config *cfg, struct sandbox_limits *l)
{
    l->memory_mb = cfg->sandbox_memory_mb;
    l->pids = cfg->sandbox_pids;
    l->cpu_s = cfg->sandbox_cpu_s;
    l->disk_mb = cfg->sandbox_disk_mb;
    l->wall_s = cfg->build_timeout;
}

/* What the supervisor tells the caller, once. */
struct verdict {
    int setup_failed;
    struct sandbox_result res;
    char err[768];
};

struct super {
    const struct sandbox_opts *o;
    char *disk_img, *disk, *view;
    unsigned long long disk_mb; /* the build disk's size, the limit or less */
    unsigned long long disk_base; /* bytes in use on the build disk when empty */
    unsigned long long disk_peak; /* the most the build had written to it at once */
    int out_w;                  /* the payload's output pipe */
    int go[2], st[2];           /* supervisor -> init: go; init -> supervisor: status */
    struct sandbox_cgroup *cg;
};

/*
 * How long sandbox_run waits for the supervisor's verdict past a cancel
 * (the supervisor needs about a second), and past twice the wall-time
 * limit (which the supervisor counts from the end of its setup, and
 * collecting the results comes after).
 */
#define SUPERVISOR_CANCEL_GRACE_S 10
#define SUPERVISOR_WALL_GRACE_S 60

static volatile sig_atomic_t term_requested;

static void on_term(int sig)
{
    (void)sig;
    term_requested = 1;
}

/* ---- the root view, built by the supervisor as real root ---------------------------------- */

static int fail_errno(char *err, size_t errlen, const char *what, const char *path)
{
    snprintf(err, errlen, "%s \"%s\": %s", what, path, strerror(errno));
    return -1;
}

static int bind_ro(const char *from, const char *to, unsigned long extra, char *err, size_t errlen)
{
    if (mount(from, to, NULL, MS_BIND | MS_REC, NULL) < 0)
        return fail_errno(err, errlen, "cannot bind-mount", from);
    if (mount(NULL, to, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | extra, NULL) < 0)
        return fail_errno(err, errlen, "cannot make read-only", to);
    return 0;
}

static int put_file(const char *dir, const char *name, const char *text)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
    return write_file_atomic(path, text, strlen(text), 0644);
}

/* Copies a host /etc entry into the view: links as links, small files as files. */
static void copy_etc(const char *etc, const char *name)
{
    _cleanup_free_ char *from = xasprintf("/etc/%s", name), *to = xasprintf("%s/%s", etc, name);
    char target[4096];
    ssize_t n = readlink(from, target, sizeof(target) - 1);
    if (n >= 0) {
        target[n] = '\0';
        if (symlink(target, to) < 0) {
            /* absent in the view is fine: the tool falls back */
        }
        return;
    }
    _cleanup_free_ char *data = NULL;
    size_t len;
    if (read_file(from, 16u << 20, &data, &len) == 0)
        write_file_atomic(to, data, len, 0644);
}

static int make_etc(const char *view, char *err, size_t errlen)
{
    _cleanup_free_ char *etc = xasprintf("%s/etc", view), *alt = xasprintf("%s/etc/alternatives", view);
    if (mkdir(etc, 0755) < 0 || mkdir(alt, 0755) < 0)
        return fail_errno(err, errlen, "cannot create", etc);
    /* apt (run by mmdebstrap) reads these; empty, so that it need not warn */
    static const char *const apt_dirs[] = {"apt", "apt/apt.conf.d", "apt/preferences.d", "apt/sources.list.d",
                                           "apt/trusted.gpg.d"};
    for (size_t i = 0; i < ARRAY_SIZE(apt_dirs); i++) {
        _cleanup_free_ char *d = xasprintf("%s/%s", etc, apt_dirs[i]);
        if (mkdir(d, 0755) < 0)
            return fail_errno(err, errlen, "cannot create", d);
    }
    int rc = put_file(etc, "passwd", "root:x:0:0:root:/root:/bin/sh\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n"
                                     "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    rc = rc ?: put_file(etc, "group", "root:x:0:\nnogroup:x:65534:\n");
    rc = rc ?: put_file(etc, "hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n");
    rc = rc ?: put_file(etc, "nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files\n");
    if (rc < 0) {
        errno = -rc;
        return fail_errno(err, errlen, "cannot write into", etc);
    }
    static const char *const public[] = {"ld.so.cache", "ld.so.conf", "services", "protocols", "os-release",
                                         "debian_version", "mime.types"};
    for (size_t i = 0; i < ARRAY_SIZE(public); i++)
        copy_etc(etc, public[i]);
    _cleanup_free_ char *mtab = xasprintf("%s/mtab", etc);
    if (symlink("../proc/self/mounts", mtab) < 0)
        return fail_errno(err, errlen, "cannot create", mtab);
    /* /usr/bin/awk and friends point through /etc/alternatives. */
    DIR *d = opendir("/etc/alternatives");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        _cleanup_free_ char *name = xasprintf("alternatives/%s", e->d_name);
        copy_etc(etc, name);
    }
    if (d)
        closedir(d);
    return 0;
}

static int make_dev(const char *view, char *err, size_t errlen)
{
    _cleanup_free_ char *dev = xasprintf("%s/dev", view);
    if (mkdir(dev, 0755) < 0)
        return fail_errno(err, errlen, "cannot create", dev);
    if (mount("debate-dev", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") < 0)
        return fail_errno(err, errlen, "cannot mount a tmpfs on", dev);
    static const char *const nodes[] = {"null", "zero", "full", "random", "urandom"};
    for (size_t i = 0; i < ARRAY_SIZE(nodes); i++) {
        _cleanup_free_ char *host = xasprintf("/dev/%s", nodes[i]), *at = xasprintf("%s/%s", dev, nodes[i]);
        int fd = open(at, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0)
            return fail_errno(err, errlen, "cannot create", at);
        close(fd);
        if (mount(host, at, NULL, MS_BIND, NULL) < 0)
            return fail_errno(err, errlen, "cannot bind-mount", host);
        if (mount(NULL, at, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC, NULL) < 0)
            return fail_errno(err, errlen, "cannot restrict", at);
    }
    static const char *const links[][2] = {{"ptmx", "pts/ptmx"},       {"fd", "/proc/self/fd"},
                                           {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
                                           {"stderr", "/proc/self/fd/2"}};
    for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
        _cleanup_free_ char *at = xasprintf("%s/%s", dev, links[i][0]);
        if (symlink(links[i][1], at) < 0)
            return fail_errno(err, errlen, "cannot create", at);
    }
    _cleanup_free_ char *pts = xasprintf("%s/pts", dev), *shm = xasprintf("%s/shm", dev);
    if (mkdir(pts, 0755) < 0 || mkdir(shm, 01777) < 0)
        return fail_errno(err, errlen, "cannot create", pts);
    if (mount(NULL, dev, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") < 0)
        return fail_errno(err, errlen, "cannot make read-only", dev);
    return 0;
}

static int make_view(struct super *s, char *err, size_t errlen)
{
    const char *view = s->view;
    if (mkdir(view, 0755) < 0)
        return fail_errno(err, errlen, "cannot create", view);
    if (mount("debate-sandbox", view, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m") < 0)
        return fail_errno(err, errlen, "cannot mount a tmpfs on", view);
    static const char *const dirs[] = {"usr", "proc", "tmp", "root", "run", "mnt", "mnt/build"};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        _cleanup_free_ char *d = xasprintf("%s/%s", view, dirs[i]);
        if (mkdir(d, 0755) < 0)
            return fail_errno(err, errlen, "cannot create", d);
    }
    _cleanup_free_ char *usr = xasprintf("%s/usr", view);
    if (bind_ro("/usr", usr, 0, err, errlen) < 0)
        return -1;
    /* /bin, /lib...: links into /usr as on the host (merged /usr), or read-only copies of the mounts. */
    static const char *const top[] = {"bin", "sbin", "lib", "lib64", "lib32", "libx32"};
    for (size_t i = 0; i < ARRAY_SIZE(top); i++) {
        _cleanup_free_ char *host = xasprintf("/%s", top[i]), *at = xasprintf("%s/%s", view, top[i]);
        struct stat st;
        char target[256];
        if (lstat(host, &st) < 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(host, target, sizeof(target) - 1);
            if (n < 0)
                continue;
            target[n] = '\0';
            if (symlink(target, at) < 0)
                return fail_errno(err, errlen, "cannot create", at);
        } else if (S_ISDIR(st.st_mode)) {
            if (mkdir(at, 0755) < 0 || bind_ro(host, at, 0, err, errlen) < 0)
                return -1;
        }
    }
    if (make_etc(view, err, errlen) < 0 || make_dev(view, err, errlen) < 0)
        return -1;
    _cleanup_free_ char *build = xasprintf("%s/mnt/build", view);
    if (mount(s->disk, build, NULL, MS_BIND, NULL) < 0 ||
        mount(NULL, build, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, NULL) < 0)
        return fail_errno(err, errlen, "cannot bind-mount the build disk on", build);
    for (size_t i = 0; i < s->o->nbinds; i++) {
        const struct sandbox_bind *b = &s->o->binds[i];
        if (strncmp(b->inside, "/mnt/", 5) != 0 || strchr(b->inside + 5, '/') != NULL ||
            strcmp(b->inside, "/mnt/build") == 0) {
            snprintf(err, errlen, "a read-only input must appear as /mnt/NAME, not \"%s\"", b->inside);
            return -1;
        }
        _cleanup_free_ char *at = xasprintf("%s%s", view, b->inside);
        if (mkdir(at, 0755) < 0 || bind_ro(b->host, at, 0, err, errlen) < 0)
            return -1;
    }
    if (mount(NULL, view, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "mode=0755,size=4m") < 0)
        return fail_errno(err, errlen, "cannot make read-only", view);
    return 0;
}

/* ---- the build disk: an ext4 image of the disk limit, loop-mounted in the supervisor's namespace ---- */

static int attach_loop(const char *img, const char *workdir, char *dev, size_t devlen, char *err, size_t errlen)
{
    int imgfd = open(img, O_RDWR | O_CLOEXEC);
    if (imgfd < 0)
        return fail_errno(err, errlen, "cannot open", img);
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) {
        close(imgfd);
        return fail_errno(err, errlen, "cannot open", "/dev/loop-control");
    }
    int loopfd = -1;
    for (int tries = 0; loopfd < 0 && tries < 20; tries++) {
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0)
            break;
        snprintf(dev, devlen, "/dev/loop%d", n);
        int fd = open(dev, O_RDWR | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
            /* no device node (a static /dev): make a private one */
            snprintf(dev, devlen, "%s/loop", workdir);
            unlink(dev);
            if (mknod(dev, S_IFBLK | 0600, makedev(7, (unsigned)n)) == 0)
                fd = open(dev, O_RDWR | O_CLOEXEC);
        }
        if (fd < 0)
            break;
        struct loop_config lc;
        memset(&lc, 0, sizeof(lc));
        lc.fd = (unsigned)imgfd;
        lc.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        if (ioctl(fd, LOOP_CONFIGURE, &lc) == 0)
            loopfd = fd;
        else
            close(fd); /* taken meanwhile: another */
    }
    close(ctl);
    close(imgfd);
    if (loopfd < 0)
        return fail_errno(err, errlen, "cannot attach a loop device to", img);
    return loopfd;
}

/*
 * Bytes in use on the build disk, 0 when it cannot be inspected. Blocks
 * free, not available: the blocks ext4 holds back from writers are not in
 * use. (Its fixed metadata, the inode tables, is outside f_blocks.)
 */
static unsigned long long disk_used(struct super *s)
{
    struct statvfs vfs;
    if (statvfs(s->disk, &vfs) < 0)
        return 0;
    return (unsigned long long)(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
}

static int make_disk(struct super *s, char *err, size_t errlen)
{
    struct statvfs vfs;
    if (statvfs(s->o->workdir, &vfs) < 0)
        return fail_errno(err, errlen, "cannot inspect", s->o->workdir);
    unsigned long long avail_mb = (unsigned long long)vfs.f_bavail * vfs.f_frsize >> 20;
    s->disk_mb = s->o->limits.disk_mb;
    /* Sparse: it takes what the build writes. Never promise more than the host has. */
    if (avail_mb < s->disk_mb + 16)
        s->disk_mb = avail_mb > 16 ? avail_mb - 16 : 0;
    if (s->disk_mb < MIN_DISK_MB) {
        snprintf(err, errlen,
                 "the disk is full: \"%s\" has %llu MiB free and a build disk needs at least %u MiB",
                 s->o->workdir, avail_mb, MIN_DISK_MB);
        return -1;
    }
    int fd = open(s->disk_img, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail_errno(err, errlen, "cannot create", s->disk_img);
    int rc = ftruncate(fd, (off_t)(s->disk_mb << 20));
    close(fd);
    if (rc < 0)
        return fail_errno(err, errlen, "cannot size", s->disk_img);
    char owner[160];
    snprintf(owner, sizeof(owner), "root_owner=%u:%u,lazy_itable_init=1,nodiscard,hash_seed=" DISK_UUID,
             (unsigned)s->o->id_base, (unsigned)s->o->id_base);
    const char *argv[] = {"/sbin/mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-U", DISK_UUID,
                          "-E", owner, s->disk_img, NULL};
    static const char *const env[] = {"PATH=/usr/sbin:/usr/bin", NULL};
    struct proc_opts po = {.env = env, .clean_env = true, .timeout_s = 120};
    char perr[256];
    if (proc_run(argv, &po, perr, sizeof(perr)) != 0) {
        snprintf(err, errlen, "cannot make the build disk: %s: %.300s", perr, po.tail);
        return -1;
    }
    char dev[4096];
    int loopfd = attach_loop(s->disk_img, s->o->workdir, dev, sizeof(dev), err, errlen);
    if (loopfd < 0)
        return -1;
    if (mkdir(s->disk, 0755) < 0 && errno != EEXIST) {
        close(loopfd);
        return fail_errno(err, errlen, "cannot create", s->disk);
    }
    rc = mount(dev, s->disk, "ext4", MS_NOSUID | MS_NODEV | MS_NOATIME, NULL);
    int saved = errno;
    close(loopfd); /* the mount holds it now; autoclear frees it with the mount */
    if (dev[0] != '/' || strncmp(dev, "/dev/", 5) != 0)
        unlink(dev);
    if (rc < 0) {
        errno = saved;
        return fail_errno(err, errlen, "cannot mount the build disk on", s->disk);
    }
    _cleanup_free_ char *lost = xasprintf("%s/lost+found", s->disk);
    rmdir(lost); /* owned by host root: nothing inside could use it */
    /* What the empty file system already uses (its root directory) is not the build's. */
    s->disk_base = disk_used(s);
    return 0;
}

/* ---- init: PID 1 inside ------------------------------------------------------------------ */

static void init_fail(int st, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void init_fail(int st, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg + 2, sizeof(msg) - 3, fmt, ap);
    va_end(ap);
    msg[0] = 'F';
    msg[1] = ' ';
    size_t len = strlen(msg);
    (void)n;
    ssize_t unused = write(st, msg, len);
    (void)unused;
    _exit(127);
}

static void close_all_but(const int *keep, size_t n)
{
    int lo = 3;
    for (;;) {
        int next = -1;
        for (size_t i = 0; i < n; i++)
            if (keep[i] >= lo && (next < 0 || keep[i] < next))
                next = keep[i];
        if (next < 0) {
            syscall(SYS_close_range, (unsigned)lo, ~0u, 0u);
            return;
        }
        if (next > lo)
            syscall(SYS_close_range, (unsigned)lo, (unsigned)next - 1, 0u);
        lo = next + 1;
    }
}

static void bring_lo_up(int st)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        init_fail(st, "cannot inspect lo: %s", strerror(errno));
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        init_fail(st, "cannot bring lo up: %s", strerror(errno));
    close(fd);
}

/* A mount inside, relative to the view (the host's path to it is not the sandbox's to walk). */
static void inside_mount(int st, const char *what, const char *type, const char *at, unsigned long flags,
                         const char *data)
{
    if (mount(what, at, type, flags, data) < 0)
        init_fail(st, "cannot mount %s on %s inside the sandbox: %s", type, at, strerror(errno));
}

static void run_init(struct super *s) __attribute__((noreturn));
static void run_init(struct super *s)
{
    const struct sandbox_opts *o = s->o;
    int st = s->st[1];
    close(s->go[1]);
    close(s->st[0]);
    char go = 0;
    if (read(s->go[0], &go, 1) != 1 || go != 'G')
        _exit(127);
    if (setresgid(0, 0, 0) < 0 || setgroups(0, NULL) < 0 || setresuid(0, 0, 0) < 0)
        init_fail(st, "cannot become root of the user namespace: %s", strerror(errno));
    /* Credentials changed, so the parent-death signal is set now; then: is the supervisor still there? */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    struct pollfd pf = {.fd = s->go[0], .events = POLLIN};
    if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLHUP | POLLERR)))
        _exit(127);
    if (unshare(CLONE_NEWCGROUP) < 0)
        init_fail(st, "cannot create the cgroup namespace: %s", strerror(errno));
    /*
     * The view's mounts are locked here (made by the more privileged
     * supervisor): good for /usr, but pivot_root wants a root of our own.
     * A recursive bind of the view makes one; the locks stay beneath.
     */
    if (mount("root", "root", NULL, MS_BIND | MS_REC, NULL) < 0 || chdir("root") < 0)
        init_fail(st, "cannot take the sandbox's root: %s", strerror(errno));
    char memsize[40];
    snprintf(memsize, sizeof(memsize), "mode=1777,size=%um", o->limits.memory_mb);
    /* Before the host's /proc leaves this namespace: the kernel wants one fully visible. */
    inside_mount(st, "proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    inside_mount(st, "tmp", "tmpfs", "tmp", MS_NOSUID | MS_NODEV, memsize);
    inside_mount(st, "root", "tmpfs", "root", MS_NOSUID | MS_NODEV, "mode=0700,size=64m");
    inside_mount(st, "run", "tmpfs", "run", MS_NOSUID | MS_NODEV, "mode=0755,size=16m");
    inside_mount(st, "shm", "tmpfs", "dev/shm", MS_NOSUID | MS_NODEV, "mode=1777,size=64m");
    inside_mount(st, "devpts", "devpts", "dev/pts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
    if (syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
        init_fail(st, "cannot enter the sandbox's root: %s", strerror(errno));
    const char *host = o->hostname ? o->hostname : "debate-sandbox";
    if (sethostname(host, strlen(host)) < 0)
        init_fail(st, "cannot set the host name: %s", strerror(errno));
    bring_lo_up(st);
    /* No user namespace may be made inside (the filter refuses it too). */
    int fd = open("/proc/sys/user/max_user_namespaces", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1)
        init_fail(st, "cannot forbid nested user namespaces: %s", strerror(errno));
    close(fd);
    if (setsid() < 0)
        init_fail(st, "cannot start a new session: %s", strerror(errno));
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int out = s->out_w >= 0 ? s->out_w : null;
    if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        init_fail(st, "cannot set up standard input and output: %s", strerror(errno));
    int keep[] = {st, s->go[0]};
    close_all_but(keep, ARRAY_SIZE(keep));
    clearenv();
    for (size_t i = 0; o->env && o->env[i]; i++)
        putenv((char *)o->env[i]);
    umask(022);
    struct rlimit core = {0, 0};
    setrlimit(RLIMIT_CORE, &core);
    if (chdir("/mnt/build") < 0)
        init_fail(st, "cannot enter /mnt/build: %s", strerror(errno));
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        init_fail(st, "cannot set no_new_privs: %s", strerror(errno));
    if (sandbox_filter_load() < 0)
        init_fail(st, "cannot load the system-call filter: %s", strerror(errno));
    pid_t payload = fork();
    if (payload < 0)
        init_fail(st, "cannot start the payload: %s", strerror(errno));
    if (payload == 0) {
        close(st);
        close(s->go[0]);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int rc = o->payload(o->arg);
        fflush(NULL);
        _exit(rc & 0xff);
    }
    /* PID 1: reap everything; report the payload's status; leaving ends the namespace. */
    int status = 0;
    for (;;) {
        int wst;
        pid_t p = wait(&wst);
        if (p == payload) {
            status = wst;
            break;
        }
        if (p < 0 && errno != EINTR)
            break;
    }
    char line[32];
    int n = snprintf(line, sizeof(line), "S %d\n", status);
    ssize_t unused = write(st, line, (size_t)n);
    (void)unused;
    _exit(0);
}

/* ---- the supervisor ---------------------------------------------------------------------- */

static int write_map(pid_t pid, const char *which, uid_t base, char *err, size_t errlen)
{
    _cleanup_free_ char *path = xasprintf("/proc/%ld/%s", (long)pid, which);
    char map[64];
    int n = snprintf(map, sizeof(map), "0 %u %u\n", (unsigned)base, SANDBOX_IDS);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, map, (size_t)n) != n) {
        snprintf(err, errlen, "cannot write the sandbox's %s: %s", which, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static bool disk_full(struct super *s)
{
    struct statvfs vfs;
    if (statvfs(s->disk, &vfs) < 0)
        return false;
    unsigned long long free_b = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
    unsigned long long total = (unsigned long long)vfs.f_blocks * vfs.f_frsize;
    return free_b < (1ull << 20) || free_b < total / 100 || vfs.f_favail == 0;
}

/*
 * Notes what the build has written to its disk, when it is more than
 * before. ext4 counts blocks reserved for data still in the page cache as
 * used, so the figure needs no sync.
 */
static void disk_sample(struct super *s)
{
    unsigned long long used = disk_used(s);
    unsigned long long written = used > s->disk_base ? used - s->disk_base : 0;
    if (written > s->disk_peak)
        s->disk_peak = written;
}

static void describe_cause(struct super *s, struct sandbox_result *r)
{
    const struct sandbox_limits *l = &s->o->limits;
    switch (r->cause) {
    case SANDBOX_WALL:
        snprintf(r->message, sizeof(r->message), "wall-time limit of %u s reached", l->wall_s);
        break;
    case SANDBOX_MEMORY:
        snprintf(r->message, sizeof(r->message), "memory limit of %u MiB reached", l->memory_mb);
        break;
    case SANDBOX_PIDS:
        snprintf(r->message, sizeof(r->message), "process limit of %u reached", l->pids);
        break;
    case SANDBOX_CPU:
        snprintf(r->message, sizeof(r->message), "CPU-time limit of %u s reached", l->cpu_s);
        break;
    case SANDBOX_DISK:
        snprintf(r->message, sizeof(r->message), "disk limit of %llu MiB reached", s->disk_mb);
        break;
    case SANDBOX_SYSCALL:
        snprintf(r->message, sizeof(r->message), "killed for a system call the sandbox forbids");
        break;
    case SANDBOX_CANCELLED:
        snprintf(r->message, sizeof(r->message), "cancelled");
        break;
    case SANDBOX_EXITED:
        snprintf(r->message, sizeof(r->message), "exited with code %d", r->status);
        break;
    case SANDBOX_SIGNALED:
        snprintf(r->message, sizeof(r->message), "killed by signal %d (%s)", r->status, strsignal(r->status));
        break;
    case SANDBOX_OK:
    case SANDBOX_COLLECT:
        break;
    }
}

/* Watches the init until it exits or a limit ends it. */
static enum sandbox_cause watch(struct super *s, pid_t init, int *init_status)
{
    const struct sandbox_limits *l = &s->o->limits;
    uint64_t deadline = clock_monotonic_ms() + (uint64_t)l->wall_s * 1000;
    enum sandbox_cause cause = SANDBOX_OK;
    int pidfd = (int)syscall(SYS_pidfd_open, init, 0);
    for (;;) {
        if (waitpid(init, init_status, WNOHANG) == init)
            break;
        sandbox_cgroup_memory_sample(s->cg);
        disk_sample(s);
        if (term_requested)
            cause = SANDBOX_CANCELLED;
        else if (clock_monotonic_ms() >= deadline)
            cause = SANDBOX_WALL;
        else if (sandbox_cgroup_oom_kills(s->cg) > 0)
            cause = SANDBOX_MEMORY;
        else if (sandbox_cgroup_pids_max_hits(s->cg) > 0)
            cause = SANDBOX_PIDS;
        else if (sandbox_cgroup_cpu_ns(s->cg) >= (unsigned long long)l->cpu_s * 1000000000ull)
            cause = SANDBOX_CPU;
        else if (disk_full(s))
            cause = SANDBOX_DISK; /* whatever wrote last failed; the build cannot go on */
        if (cause != SANDBOX_OK) {
            kill(init, SIGKILL);
            while (waitpid(init, init_status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        if (pidfd >= 0) {
            struct pollfd pf = {.fd = pidfd, .events = POLLIN};
            poll(&pf, 1, 100);
        } else {
            struct timespec ts = {0, 100000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    return cause;
}

/*
 * The sandbox's processes are forks of debate, and /proc/PID/cmdline and
 * environ show whatever lies in their argument and environment areas:
 * overwrite this copy's (the caller's own are untouched), so the host's
 * command line and environment never show through. (environ is unreadable
 * inside anyway: these processes are not dumpable.)
 */
static void scrub_title(void)
{
    _cleanup_free_ char *stat = NULL;
    size_t len;
    if (read_file("/proc/self/stat", 4096, &stat, &len) < 0)
        return;
    const char *p = strrchr(stat, ')');
    unsigned long long field[52] = {0};
    /* fields from 3 (state) on; 48-51 are arg_start, arg_end, env_start, env_end */
    for (int n = 3; p != NULL && n <= 51; n++) {
        p = strchr(p + 1, ' ');
        if (p != NULL && n >= 48)
            field[n] = strtoull(p + 1, NULL, 10);
    }
    static const char title[] = "debate-sandbox";
    for (int pair = 48; pair <= 50; pair += 2) {
        char *start = (char *)(uintptr_t)field[pair], *end = (char *)(uintptr_t)field[pair + 1];
        if (start == NULL || end <= start || end - start > (1 << 24))
            continue;
        memset(start, 0, (size_t)(end - start));
        if (pair == 48 && (size_t)(end - start) > sizeof(title))
            memcpy(start, title, sizeof(title));
    }
}

static void supervise(const struct sandbox_opts *o, int out_w, int verdict_fd) __attribute__((noreturn));
static void supervise(const struct sandbox_opts *o, int out_w, int verdict_fd)
{
    struct verdict v;
    memset(&v, 0, sizeof(v));
    struct super s = {.o = o, .out_w = out_w};
    s.disk_img = xasprintf("%s/disk.img", o->workdir);
    s.disk = xasprintf("%s/disk", o->workdir);
    s.view = xasprintf("%s/root", o->workdir);
    char *err = v.err;
    size_t errlen = sizeof(v.err);
    pid_t init = -1;
    ssize_t unused;

    umask(022); /* the view's modes are the sandbox's, not the caller's */
    scrub_title();
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        snprintf(err, errlen, "cannot create the supervisor's mount namespace: %s", strerror(errno));
        goto setup_failed;
    }
    if (make_disk(&s, err, errlen) < 0 || make_view(&s, err, errlen) < 0)
        goto setup_failed;
    if ((s.cg = sandbox_cgroup_create(&o->limits, err, errlen)) == NULL)
        goto setup_failed;
    if (pipe2(s.go, O_CLOEXEC) < 0 || pipe2(s.st, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto setup_failed;
    }
    /* The init starts in the work directory, which it may search but not list. */
    if (chmod(o->workdir, 0711) < 0 || chdir(o->workdir) < 0) {
        snprintf(err, errlen, "cannot enter \"%s\": %s", o->workdir, strerror(errno));
        goto setup_failed;
    }
    init = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
                                         CLONE_NEWUTS | SIGCHLD,
                          NULL, NULL, NULL, 0);
    if (init == 0) {
        close(verdict_fd);
        run_init(&s);
    }
    if (init < 0) {
        snprintf(err, errlen, "cannot create the sandbox's namespaces: %s", strerror(errno));
        goto setup_failed;
    }
    close(s.go[0]);
    close(s.st[1]);
    if (out_w >= 0)
        close(out_w);
    if (write_map(init, "uid_map", o->id_base, err, errlen) < 0 || write_map(init, "gid_map", o->id_base, err, errlen) < 0 ||
        sandbox_cgroup_attach(s.cg, init, err, errlen) < 0 || write(s.go[1], "G", 1) != 1) {
        kill(init, SIGKILL);
        waitpid(init, NULL, 0);
        goto setup_failed;
    }

    int init_status = 0;
    struct sandbox_result *r = &v.res;
    r->cause = watch(&s, init, &init_status);
    /* The init is gone, so is its PID namespace; make sure of it. */
    if (!sandbox_cgroup_empty(s.cg, 5000))
        fprintf(stderr, "debate: warning: processes of a sandbox outlived it\n");
    /* Nothing runs any more: the peaks are final, and the cgroup still holds its counters. */
    disk_sample(&s);
    r->disk_peak_bytes = s.disk_peak;
    r->memory_peak_bytes = sandbox_cgroup_memory_peak(s.cg);
    char report[700] = "";
    ssize_t n = read(s.st[0], report, sizeof(report) - 1);
    report[n > 0 ? n : 0] = '\0';
    if (report[0] == 'F') {
        snprintf(err, errlen, "%s", report + 2);
        goto setup_failed;
    }
    if (r->cause == SANDBOX_OK) {
        int wst = 0;
        if (sscanf(report, "S %d", &wst) != 1)
            r->cause = SANDBOX_SIGNALED, r->status = WIFSIGNALED(init_status) ? WTERMSIG(init_status) : SIGKILL;
        else if (WIFSIGNALED(wst) && WTERMSIG(wst) == SIGSYS)
            r->cause = SANDBOX_SYSCALL, r->status = SIGSYS;
        else if (WIFSIGNALED(wst))
            r->cause = SANDBOX_SIGNALED, r->status = WTERMSIG(wst);
        else if (WEXITSTATUS(wst) != 0)
            r->cause = SANDBOX_EXITED, r->status = WEXITSTATUS(wst);
        /* A failure a limit explains is reported as that limit. */
        if (r->cause != SANDBOX_OK) {
            if (sandbox_cgroup_oom_kills(s.cg) > 0)
                r->cause = SANDBOX_MEMORY;
            else if (sandbox_cgroup_pids_max_hits(s.cg) > 0)
                r->cause = SANDBOX_PIDS;
            else if (disk_full(&s))
                r->cause = SANDBOX_DISK;
        }
    }
    if (r->cause == SANDBOX_OK && o->collect != NULL) {
        int dfd = open(s.disk, O_PATH | O_DIRECTORY | O_CLOEXEC);
        char cerr[400] = "";
        if (dfd < 0 || o->collect(dfd, o->collect_arg, r->collected, sizeof(r->collected), cerr, sizeof(cerr)) < 0) {
            r->cause = SANDBOX_COLLECT;
            snprintf(r->message, sizeof(r->message), "%s", dfd < 0 ? strerror(errno) : cerr);
        }
        if (dfd >= 0)
            close(dfd);
    }
    describe_cause(&s, r);
    sandbox_cgroup_destroy(s.cg);
    unused = write(verdict_fd, &v, sizeof(v));
    (void)unused;
    _exit(0);

setup_failed:
    if (init > 0)
        sandbox_cgroup_empty(s.cg, 5000);
    sandbox_cgroup_destroy(s.cg);
    v.setup_failed = 1;
    unused = write(verdict_fd, &v, sizeof(v));
    _exit(0);
}

/* ---- the caller's side ------------------------------------------------------------------- */

int sandbox_open_beneath(int dirfd, const char *rel, int flags)
{
    struct open_how how = {.flags = (uint64_t)flags | O_CLOEXEC | O_NOFOLLOW,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
    return (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
}

void sandbox_describe(const struct sandbox_opts *o, char *buf, size_t len)
{
    const struct sandbox_limits *l = &o->limits;
    snprintf(buf, len,
             "sandbox: root inside is uid %u outside (%u ids); own user, mount, PID, network (lo only), IPC, UTS "
             "and cgroup namespaces; root = build disk + read-only /usr; no_new_privs; seccomp allowlist of %u "
             "calls (clone3 ENOSYS, TIOCSTI/TIOCLINUX refused, 32-bit and x32 killed); limits: memory %u MiB, "
             "%u processes, CPU %u s, disk %u MiB, wall %u s; cgroups: %s",
             (unsigned)o->id_base, SANDBOX_IDS, sandbox_filter_count(), l->memory_mb, l->pids, l->cpu_s,
             l->disk_mb, l->wall_s, sandbox_cgroup_layout());
}

int sandbox_run(const struct sandbox_opts *o, struct sandbox_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof(*res));
    if (o->limits.memory_mb == 0 || o->limits.pids == 0 || o->limits.cpu_s == 0 || o->limits.wall_s == 0 ||
        o->limits.disk_mb == 0) {
        snprintf(err, errlen, "every sandbox limit must be set (memory, processes, CPU time, disk, wall time)");
        return -1;
    }
    int out[2], vp[2];
    if (pipe2(out, O_CLOEXEC) < 0)
        return fail_errno(err, errlen, "cannot create", "a pipe");
    if (pipe2(vp, O_CLOEXEC) < 0) {
        close(out[0]);
        close(out[1]);
        return fail_errno(err, errlen, "cannot create", "a pipe");
    }
    pid_t parent = getpid();
    /* SIGTERM is the cancel: held until the supervisor's handler is in place. */
    sigset_t term, saved;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, &saved);
    pid_t sup = fork();
    if (sup == 0) {
        close(out[0]);
        close(vp[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        signal(SIGINT, SIG_IGN); /* the caller decides; a terminal's ^C reaches us through it */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_term;
        sigaction(SIGTERM, &sa, NULL);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        sigprocmask(SIG_UNBLOCK, &term, NULL);
        supervise(o, out[1], vp[1]);
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    close(out[1]);
    close(vp[1]);
    if (sup < 0) {
        close(out[0]);
        close(vp[0]);
        return fail_errno(err, errlen, "cannot start", "the sandbox's supervisor");
    }
    struct verdict v;
    memset(&v, 0, sizeof(v));
    size_t got = 0;
    bool out_open = true, v_open = true, cancel_sent = false, killed = false;
    uint64_t out_deadline = 0;
    /*
     * The supervisor enforces the limits and answers a cancel within a
     * second; should it ever stop answering (it is a fork of a threaded
     * process), the caller still gets its thread back: SIGKILL past the
     * grace periods above. Its init dies with it
     * (PR_SET_PDEATHSIG), and so the whole PID namespace.
     */
    uint64_t hard_deadline = clock_monotonic_ms() + (2 * (uint64_t)o->limits.wall_s + SUPERVISOR_WALL_GRACE_S) * 1000;
    enum sandbox_cause killed_cause = SANDBOX_WALL;
    while (out_open || v_open) {
        if (o->cancel != NULL && *o->cancel && !cancel_sent) {
            kill(sup, SIGTERM);
            cancel_sent = true;
            uint64_t soon = clock_monotonic_ms() + SUPERVISOR_CANCEL_GRACE_S * 1000;
            if (soon < hard_deadline)
                hard_deadline = soon, killed_cause = SANDBOX_CANCELLED;
        }
        if (v_open && !killed && clock_monotonic_ms() > hard_deadline) {
            kill(sup, SIGKILL);
            killed = true;
        }
        if (!v_open && out_deadline == 0)
            out_deadline = clock_monotonic_ms() + 2000; /* the tree is dead: its output ends now */
        if (!v_open && clock_monotonic_ms() > out_deadline)
            break;
        struct pollfd pf[2] = {{.fd = out_open ? out[0] : -1, .events = POLLIN},
                               {.fd = v_open ? vp[0] : -1, .events = POLLIN}};
        if (poll(pf, 2, 100) < 0 && errno != EINTR)
            break;
        if (pf[0].revents) {
            char buf[4096];
            ssize_t n = read(out[0], buf, sizeof(buf));
            if (n > 0 && o->on_output != NULL)
                o->on_output(o->output_arg, buf, (size_t)n);
            else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                out_open = false;
        }
        if (pf[1].revents) {
            ssize_t n = read(vp[0], (char *)&v + got, sizeof(v) - got);
            if (n > 0)
                got += (size_t)n;
            else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                v_open = false;
        }
    }
    close(out[0]);
    close(vp[0]);
    int status;
    while (waitpid(sup, &status, 0) < 0 && errno == EINTR)
        ;
    if (killed && got != sizeof(v)) {
        res->cause = killed_cause;
        res->status = SIGKILL;
        snprintf(res->message, sizeof(res->message), "%s; the sandbox's supervisor did not answer and was killed",
                 killed_cause == SANDBOX_CANCELLED ? "cancelled" : "wall-time limit reached");
        return 0;
    }
    if (got != sizeof(v)) {
        snprintf(err, errlen, "the sandbox's supervisor died (wait status %d)", status);
        return -1;
    }
    if (v.setup_failed) {
        snprintf(err, errlen, "%s", v.err);
        return -1;
    }
    *res = v.res;
    return 0;
}
