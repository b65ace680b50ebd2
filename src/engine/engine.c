#include "engine/engine.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "engine/cpio.h"
#include "engine/sandbox.h"
#include "proc.h"
#include "digest.h"
#include "util.h"
#include "banned.h"

/* Inside the sandbox: the build disk, and the local mirror of the lock (read-only). */
#define WORK "/mnt/build"
#define MIRROR "/mnt/mirror"
#define KEYRING MIRROR "/archive-keyring.gpg"

static const char *const stage_names[] = {"resolving",  "fetching", "rootfs",     "customizing", "kernel",
                                          "squashfs",   "bootloader", "assembling", "done"};
/* Overall percent at the start of each stage. */
static const int stage_start[] = {0, 5, 15, 35, 45, 70, 80, 90, 100};

/* Modules the busybox initramfs loads to find and mount the ISO (with their dependencies). */
static const char *const initramfs_modules[] = {"ata_piix", "ahci",     "sr_mod", "sd_mod", "isofs",
                                                "loop",     "squashfs", "overlay", NULL};

/* Host tools whose versions can change the bytes: recorded in the manifest. */
static const char *const tool_packages[] = {
    "mmdebstrap", "apt", "dpkg", "xorriso", "libisofs6", "libburn4", "libisoburn1", "squashfs-tools", "liblzma5",
    "libzstd1", "zstd", "mtools", "dosfstools", "grub-efi-amd64-bin", "grub-common", "isolinux", "syslinux-common",
    "kmod", "tar", NULL};

const char *engine_stage_name(enum engine_stage s)
{
    return s <= STAGE_DONE ? stage_names[s] : "unknown";
}

struct build {
    const struct recipe *r;
    const struct engine_opts *o;
    struct lock lock;
    long long epoch;
    char epoch_str[24];
    char *work;  /* the work directory, as the host sees it (the sandbox's work directory) */
    char *mirror_dir, *out_dir; /* work/mirror (read-only at MIRROR inside), work/out (results read back) */
    char label[33];
    const struct lock_pkg *kernel_pkg, *busybox_pkg;
    char *err;
    size_t errlen;
    int progress_fd; /* inside the sandbox: where progress lines go */
    char *line;      /* on the host: the sandbox's output, up to its next newline */
    size_t line_len;
    char *error;     /* on the host: the error the sandbox reported */
    char log_tail[2048]; /* on the host: the end of the build log (tools' and hooks' output) */
    char last_step[256];  /* on the host: the last progress message */
    size_t log_tail_len;
    char tool_line[1024]; /* inside: the running tool's output, up to its next newline */
    size_t tool_line_len;
    /* the tools' environment (tool_env) */
    const char *env[16];
    char env_sde[48], env_kept[6][256], env_preload[512];
};

static int fail(struct build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct build *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err, b->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void progress(struct build *b, enum engine_stage stage, int within, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void progress(struct build *b, enum engine_stage stage, int within, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int span = stage_start[stage + (stage < STAGE_DONE)] - stage_start[stage];
    int pct = stage_start[stage] + span * within / 100;
    if (b->progress_fd >= 0) {
        char line[800];
        int n = snprintf(line, sizeof(line), "P %d %d %s\n", stage, pct, msg);
        ssize_t unused = write(b->progress_fd, line, (size_t)n);
        (void)unused;
    } else if (b->o->progress != NULL) {
        b->o->progress(b->o->progress_arg, stage, pct, msg);
    }
}

/*
 * The environment every tool of the build sees: an allowlist. libfaketime's
 * variables pass so that determinism can be tested under a shifted clock.
 */
static const char **tool_env(struct build *b, bool with_epoch)
{
    static const char *const pass[] = {"FAKETIME", "FAKETIME_SHARED", "FAKETIME_NO_CACHE", "NO_FAKE_STAT",
                                       "DONT_FAKE_MONOTONIC", NULL};
    const char **env = b->env;
    size_t n = 0;
    for (size_t i = 0; sandbox_base_env[i] != NULL; i++) /* PATH, HOME, TZ, LC_ALL */
        env[n++] = sandbox_base_env[i];
    env[n++] = "DEBIAN_FRONTEND=noninteractive";
    env[n++] = "MTOOLS_SKIP_CHECK=1";
    if (with_epoch) {
        snprintf(b->env_sde, sizeof(b->env_sde), "SOURCE_DATE_EPOCH=%s", b->epoch_str);
        env[n++] = b->env_sde;
    }
    for (size_t i = 0; pass[i] != NULL; i++) {
        const char *v = getenv(pass[i]);
        if (v != NULL) {
            snprintf(b->env_kept[i], sizeof(b->env_kept[i]), "%s=%s", pass[i], v);
            env[n++] = b->env_kept[i];
        }
    }
    const char *preload = getenv("LD_PRELOAD");
    if (preload != NULL && strstr(preload, "faketime") != NULL) {
        snprintf(b->env_preload, sizeof(b->env_preload), "LD_PRELOAD=%s", preload);
        env[n++] = b->env_preload;
    }
    env[n] = NULL;
    return env;
}

/*
 * Inside the sandbox: a tool's output, line by line, as "L line" on the
 * progress pipe, so the build log survives a build the sandbox kills.
 */
static void log_output(void *arg, const char *buf, size_t n)
{
    struct build *b = arg;
    for (size_t i = 0; i < n; i++) {
        bool end = buf[i] == '\n';
        if (!end && b->tool_line_len < sizeof(b->tool_line) - 1)
            b->tool_line[b->tool_line_len++] = buf[i] == '\r' ? ' ' : buf[i];
        if (!end)
            continue;
        char line[sizeof(b->tool_line) + 3];
        int len = snprintf(line, sizeof(line), "L %.*s\n", (int)b->tool_line_len, b->tool_line);
        ssize_t unused = write(b->progress_fd, line, (size_t)len);
        (void)unused;
        b->tool_line_len = 0;
    }
}

/* The last line of a tool that did not end it. */
static void flush_log_line(struct build *b)
{
    if (b->tool_line_len > 0 && b->progress_fd >= 0)
        log_output(b, "\n", 1);
}

/* Runs one tool of the build; on failure the message names it and quotes its last words. */
static int tool(struct build *b, const char *what, const char *const argv[], struct proc_opts *o, bool with_epoch)
{
    o->env = tool_env(b, with_epoch);
    o->clean_env = true;
    if (b->progress_fd >= 0 && o->stdout_path == NULL) {
        o->on_output = log_output;
        o->output_arg = b;
        b->tool_line_len = 0;
    }
    char err[512];
    int rc = proc_run(argv, o, err, sizeof(err));
    flush_log_line(b);
    if (rc == 0)
        return 0;
    const char *tail = o->tail;
    size_t tl = strlen(tail);
    if (tl > 1500)
        tail += tl - 1500;
    if (strstr(o->tail, "No space left on device"))
        return fail(b, "%s: the disk is full (%s)", what, err);
    return fail(b, "%s: %s: %s", what, err, tail);
}

static int run_tool(struct build *b, const char *what, const char *const argv[], bool with_epoch)
{
    struct proc_opts o = {0};
    return tool(b, what, argv, &o, with_epoch);
}

static char *wpath(const char *rel)
{
    return xasprintf(WORK "/%s", rel);
}

static int write_text(struct build *b, const char *path, const char *text, unsigned mode)
{
    int rc = write_file_atomic(path, text, strlen(text), mode);
    if (rc < 0)
        return fail(b, "cannot write \"%s\": %s", path, rc == -ENOSPC ? "the disk is full" : strerror(-rc));
    return 0;
}

/* ---- stage: a local mirror of exactly the lock, from the cache ---------------------------- */

static int link_or_copy(struct build *b, const char *from, const char *to)
{
    _cleanup_free_ char *dir = xstrdup(to);
    int rc = mkdir_p(dirname(dir), 0755);
    if (rc < 0)
        return fail(b, "cannot create the directory of \"%s\": %s", to, strerror(-rc));
    if (link(from, to) == 0)
        return 0;
    const char *argv[] = {"/bin/cp", from, to, NULL};
    return run_tool(b, "copying a package", argv, false);
}

static int open_up_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type == FTW_D)
        return chmod(path, 0755) < 0 ? -1 : 0;
    /* hard links to the cache: already 0644 unless a copy inherited a strict umask */
    return type == FTW_F && (st->st_mode & 0444) != 0444 && chmod(path, 0644) < 0 ? -1 : 0;
}

static int make_mirror(struct build *b)
{
    const struct config *cfg = b->o->cfg;
    const struct lock *l = &b->lock;
    _cleanup_free_ char *idx = xasprintf("%s/indexes/%s", cfg->cache_dir, l->inrelease_sha256);
    _cleanup_free_ char *dists = xasprintf("%s/dists/%s", b->mirror_dir, l->release);
    _cleanup_free_ char *bin = xasprintf("%s/main/binary-%s", dists, l->arch);
    _cleanup_free_ char *src_in = xasprintf("%s/InRelease", idx), *dst_in = xasprintf("%s/InRelease", dists);
    _cleanup_free_ char *src_xz = xasprintf("%s/Packages.xz", idx), *dst_xz = xasprintf("%s/Packages.xz", bin);
    if (link_or_copy(b, src_in, dst_in) < 0 || link_or_copy(b, src_xz, dst_xz) < 0)
        return -1;
    for (size_t i = 0; i < l->npkgs; i++) {
        _cleanup_free_ char *from = xasprintf("%s/debs/%s.deb", cfg->cache_dir, l->pkgs[i].sha256);
        _cleanup_free_ char *to = xasprintf("%s/%s", b->mirror_dir, l->pkgs[i].filename);
        struct stat st;
        if (stat(from, &st) < 0 || st.st_size != l->pkgs[i].size)
            return fail(b, "the package cache has no verified copy of \"%s\" %s", l->pkgs[i].name,
                        l->pkgs[i].version);
        if (link_or_copy(b, from, to) < 0)
            return -1;
    }
    /* The keyring too: the sandbox sees no host path outside /usr. */
    _cleanup_free_ char *keyring = xasprintf("%s/archive-keyring.gpg", b->mirror_dir);
    if (link_or_copy(b, cfg->archive_keyring, keyring) < 0)
        return -1;
    /* Readable by the sandbox's ids whatever the caller's umask made of it. */
    if (nftw(b->mirror_dir, open_up_one, 32, FTW_PHYS) != 0)
        return fail(b, "cannot open up \"%s\" to the build: %s", b->mirror_dir, strerror(errno));
    return 0;
}

/* ---- stage: root filesystem -------------------------------------------------------------- */

static bool is_live(const struct build *b)
{
    return strcmp(b->r->variant, "live") == 0;
}

/* "a,b,c" of the recipe's packages; the busybox variant takes its kernel from the package instead. */
static char *include_list(struct build *b)
{
    char *include = NULL;
    for (size_t i = 0; i < b->r->npackages; i++) {
        if (!is_live(b) && strncmp(b->r->packages[i], "linux-image-", 12) == 0)
            continue;
        char *next = include ? xasprintf("%s,%s", include, b->r->packages[i]) : xstrdup(b->r->packages[i]);
        free(include);
        include = next;
    }
    return include;
}

static int rootfs(struct build *b)
{
    const char *keyring = KEYRING;
    _cleanup_free_ char *kr = xasprintf("--keyring=%s", keyring);
    _cleanup_free_ char *include = include_list(b);
    if (include == NULL && !is_live(b))
        return fail(b, "packages: the busybox variant needs at least busybox-static");
    _cleanup_free_ char *inc = xasprintf("--include=%s", include ? include : "");
    _cleanup_free_ char *source = xasprintf("deb [signed-by=%s] copy://" MIRROR " %s main", keyring,
                                            b->lock.release);
    if (is_live(b)) {
        /* minbase plus the recipe's packages; maintainer scripts run (initramfs included). */
        const char *argv[] = {"/usr/bin/mmdebstrap", "--quiet", "--variant=minbase", "--mode=root",
                              "--architectures=amd64", inc, kr, "--aptopt=APT::Sandbox::User \"root\"",
                              b->lock.release, WORK "/root", source, NULL};
        return run_tool(b, "mmdebstrap", argv, true);
    }
    const char *argv[] = {"/usr/bin/mmdebstrap", "--quiet", "--variant=extract", "--mode=root",
                          "--architectures=amd64", inc, kr, "--aptopt=APT::Sandbox::User \"root\"",
                          "--extract-hook=mkdir -p \"$1/bin\" \"$1/sbin\" \"$1/usr/bin\" \"$1/usr/sbin\" && "
                          "chroot \"$1\" /bin/busybox --install -s",
                          b->lock.release, WORK "/root", source, NULL};
    return run_tool(b, "mmdebstrap", argv, true);
}

/* ---- stage: customizing ----------------------------------------------------------------- */

/* Opens path inside root, resolving every link as if root were "/": nothing escapes it. */
static int open_in_root(int rootfd, const char *path, int flags, mode_t mode)
{
    struct open_how how = {.flags = (uint64_t)flags | O_CLOEXEC, .mode = mode, .resolve = RESOLVE_IN_ROOT};
    return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
}

/* chmod of a directory inside root, never through a link out of it. */
static int chmod_in_root(int rootfd, const char *path, mode_t mode)
{
    int fd = open_in_root(rootfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
    if (fd < 0)
        return -1;
    int rc = fchmod(fd, mode);
    close(fd);
    return rc;
}

static int mkdirs_in_root(int rootfd, const char *path)
{
    _cleanup_free_ char *p = xstrdup(path);
    for (char *s = strchr(p + 1, '/'); s != NULL; s = strchr(s + 1, '/')) {
        *s = '\0';
        int fd = open_in_root(rootfd, p, O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0) {
            _cleanup_free_ char *parent = xstrdup(p), *base = xstrdup(p);
            int pfd = open_in_root(rootfd, dirname(parent), O_RDONLY | O_DIRECTORY, 0);
            if (pfd < 0 || (mkdirat(pfd, basename(base), 0755) < 0 && errno != EEXIST)) {
                if (pfd >= 0)
                    close(pfd);
                return -1;
            }
            close(pfd);
        } else {
            close(fd);
        }
        *s = '/';
    }
    return 0;
}

static int write_in_root(struct build *b, int rootfd, const char *path, const char *data, size_t len, unsigned mode)
{
    if (mkdirs_in_root(rootfd, path) < 0)
        return fail(b, "cannot create the directories of \"%s\" in the image: %s", path, strerror(errno));
    int fd = open_in_root(rootfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode);
    if (fd < 0)
        return fail(b, "cannot write \"%s\" in the image: %s", path, strerror(errno));
    ssize_t n = write(fd, data, len);
    int saved = errno;
    if (fchmod(fd, mode) < 0 || fchown(fd, 0, 0) < 0 || n != (ssize_t)len) {
        close(fd);
        return fail(b, "cannot write \"%s\" in the image: %s", path,
                    saved == ENOSPC ? "the disk is full" : strerror(saved ? saved : errno));
    }
    close(fd);
    return 0;
}

static char *rcs_script(const struct recipe *r)
{
    return xasprintf("#!/bin/sh\n"
                     "mount -t proc proc /proc\n"
                     "mount -t sysfs sysfs /sys\n"
                     "hostname -F /etc/hostname\n"
                     "echo \"DEBATE-BOOTED %s\"\n"
                     "[ -f /etc/debate-marker ] && echo \"marker: $(cat /etc/debate-marker)\"\n"
                     "[ -f /etc/motd ] && cat /etc/motd\n"
                     "exit 0\n",
                     r->name);
}

/*
 * The hooks' /dev: the sandbox's null, zero, full, random and urandom,
 * bound onto empty files in the image's /dev for as long as the hooks run
 * (mounted through descriptors opened inside the image's root, so a planted
 * link cannot move them), and gone again before the image is packed.
 */
static const char *const hook_devs[] = {"null", "zero", "full", "random", "urandom"};

static void hook_dev_down(int rootfd, const bool *made)
{
    for (size_t i = 0; i < ARRAY_SIZE(hook_devs); i++) {
        if (!made[i])
            continue;
        _cleanup_free_ char *rel = xasprintf("/dev/%s", hook_devs[i]);
        int fd = open_in_root(rootfd, rel, O_PATH | O_NOFOLLOW, 0);
        if (fd >= 0) {
            char via[64];
            snprintf(via, sizeof(via), "/proc/self/fd/%d", fd);
            umount2(via, MNT_DETACH);
            close(fd);
        }
        int dfd = open_in_root(rootfd, "/dev", O_RDONLY | O_DIRECTORY, 0);
        if (dfd >= 0) {
            unlinkat(dfd, hook_devs[i], 0);
            close(dfd);
        }
    }
}

static int hook_dev_up(struct build *b, int rootfd, bool *made)
{
    for (size_t i = 0; i < ARRAY_SIZE(hook_devs); i++) {
        _cleanup_free_ char *rel = xasprintf("/dev/%s", hook_devs[i]), *host = xasprintf("/dev/%s", hook_devs[i]);
        int fd = open_in_root(rootfd, rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0666);
        if (fd < 0) {
            if (errno == EEXIST)
                continue; /* the image has its own */
            hook_dev_down(rootfd, made);
            return fail(b, "cannot prepare /dev/%s for the hooks: %s", hook_devs[i], strerror(errno));
        }
        made[i] = true;
        char via[64];
        snprintf(via, sizeof(via), "/proc/self/fd/%d", fd);
        int rc = mount(host, via, NULL, MS_BIND, NULL);
        int saved = errno;
        close(fd);
        if (rc < 0) {
            hook_dev_down(rootfd, made);
            return fail(b, "cannot bind /dev/%s for the hooks: %s", hook_devs[i], strerror(saved));
        }
    }
    return 0;
}

static int run_hook(struct build *b, int rootfd, size_t i)
{
    const struct recipe_hook *h = &b->r->hooks[i];
    progress(b, STAGE_CUSTOMIZING, 50 + (int)(50 * i / b->r->nhooks), "hook \"%s\"", h->name);
    _cleanup_free_ char *inside = xasprintf("/tmp/debate-hook-%s", h->name);
    /* Through the image's root, like the overlays: an earlier hook may have planted links. */
    if (write_in_root(b, rootfd, inside, h->script, strlen(h->script), 0755) < 0)
        return -1;
    const char *argv[] = {"/usr/sbin/chroot", WORK "/root", inside, NULL};
    struct proc_opts o = {.timeout_s = b->o->hook_timeout_s, .on_output = log_output, .output_arg = b};
    b->tool_line_len = 0;
    o.env = tool_env(b, true);
    o.clean_env = true;
    char err[256];
    int rc = proc_run(argv, &o, err, sizeof(err));
    flush_log_line(b);
    int dirfd = open_in_root(rootfd, "/tmp", O_RDONLY | O_DIRECTORY, 0);
    if (dirfd >= 0) {
        unlinkat(dirfd, inside + strlen("/tmp/"), 0);
        close(dirfd);
    }
    if (rc == 0)
        return 0;
    const char *tail = o.tail;
    size_t tl = strlen(tail);
    if (tl > 800)
        tail += tl - 800;
    if (o.timed_out)
        return fail(b, "hook \"%s\" ran longer than %u seconds and was stopped; its last output:\n%s", h->name,
                    b->o->hook_timeout_s, tail);
    if (rc == 128 + SIGSYS)
        return fail(b, "hook \"%s\" was killed for a system call the sandbox forbids; its last output:\n%s", h->name,
                    tail);
    return fail(b, "hook \"%s\" failed with exit code %d; its last output:\n%s", h->name, rc, tail);
}

static int run_hooks(struct build *b, int rootfd)
{
    bool made[ARRAY_SIZE(hook_devs)] = {false};
    if (b->r->nhooks == 0)
        return 0;
    if (hook_dev_up(b, rootfd, made) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < b->r->nhooks; i++)
        rc = run_hook(b, rootfd, i);
    hook_dev_down(rootfd, made);
    return rc;
}

static int customize(struct build *b)
{
    const struct recipe *r = b->r;
    int rootfd = open(WORK "/root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return fail(b, "cannot open the root filesystem: %s", strerror(errno));
    static const char *const dirs[] = {"/proc/", "/sys/", "/dev/", "/run/", "/tmp/", "/root/", "/mnt/", "/etc/"};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        if (mkdirs_in_root(rootfd, dirs[i]) < 0) {
            close(rootfd);
            return fail(b, "cannot create \"%s\" in the image: %s", dirs[i], strerror(errno));
        }
    }
    if (chmod_in_root(rootfd, "/tmp", 01777) < 0 || chmod_in_root(rootfd, "/root", 0700) < 0) {
        close(rootfd);
        return fail(b, "cannot set the modes of /tmp and /root in the image: %s", strerror(errno));
    }
    unlinkat(rootfd, "etc/resolv.conf", 0); /* the host's must not leak in; absent is fine */
    /* mmdebstrap records the mirror it used: write the canonical one instead. */
    _cleanup_free_ char *sources = xasprintf("deb %s %s main\n", b->lock.mirror, b->lock.release);
    _cleanup_free_ char *hostname = xasprintf("%s\n", r->hostname);
    _cleanup_free_ char *hosts = xasprintf("127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n",
                                           r->hostname);
    _cleanup_free_ char *rcs = rcs_script(r);
    static const char inittab[] = "::sysinit:/etc/init.d/rcS\n::askfirst:-/bin/sh\n::shutdown:/bin/umount -a -r\n";
    int rc = write_in_root(b, rootfd, "/etc/apt/sources.list", sources, strlen(sources), 0644);
    rc = rc ?: write_in_root(b, rootfd, "/etc/hostname", hostname, strlen(hostname), 0644);
    rc = rc ?: write_in_root(b, rootfd, "/etc/hosts", hosts, strlen(hosts), 0644);
    if (!is_live(b)) {
        rc = rc ?: write_in_root(b, rootfd, "/etc/inittab", inittab, strlen(inittab), 0644);
        rc = rc ?: write_in_root(b, rootfd, "/etc/init.d/rcS", rcs, strlen(rcs), 0755);
    }
    for (size_t i = 0; rc == 0 && i < r->noverlays; i++)
        rc = write_in_root(b, rootfd, r->overlays[i].path, r->overlays[i].content, r->overlays[i].content_len,
                           r->overlays[i].mode);
    if (rc == 0)
        progress(b, STAGE_CUSTOMIZING, 50, "%zu overlays written", r->noverlays);
    if (rc == 0 && sethostname(r->hostname, strlen(r->hostname)) < 0)
        rc = fail(b, "cannot set the host name for the hooks: %s", strerror(errno));
    rc = rc ?: run_hooks(b, rootfd);
    close(rootfd);
    if (sethostname("debate-build", 12) < 0 && rc == 0)
        return fail(b, "cannot reset the build's host name: %s", strerror(errno));
    return rc;
}

/* ---- stage: kernel and initramfs --------------------------------------------------------- */

static int extract_deb(struct build *b, const struct lock_pkg *p, const char *dest, const char *const *members)
{
    _cleanup_free_ char *deb = xasprintf(MIRROR "/%s", p->filename);
    _cleanup_free_ char *tar = xasprintf(WORK "/%s.tar", p->name);
    const char *argv[] = {"/usr/bin/dpkg-deb", "--fsys-tarfile", deb, NULL};
    struct proc_opts o = {.stdout_path = tar};
    if (tool(b, "dpkg-deb", argv, &o, false) < 0)
        return -1;
    int rc = mkdir_p(dest, 0755);
    if (rc < 0)
        return fail(b, "cannot create \"%s\": %s", dest, strerror(-rc));
    const char *targv[64] = {"/bin/tar", "-x", "-f", tar, "-C", dest, "--wildcards", NULL};
    size_t n = 7;
    for (size_t i = 0; members[i] != NULL && n < ARRAY_SIZE(targv) - 1; i++)
        targv[n++] = members[i];
    targv[n] = NULL;
    rc = run_tool(b, "tar", targv, false);
    unlink(tar);
    return rc;
}

/* The kernel's version directory under K/lib/modules. */
static char *kernel_version(const char *kdir)
{
    _cleanup_free_ char *mods = xasprintf("%s/lib/modules", kdir);
    DIR *d = opendir(mods);
    char *kv = NULL;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            kv = xstrdup(e->d_name);
    if (d)
        closedir(d);
    return kv;
}

/* Appends the modules needed for name, in load order, to list (no duplicates). */
static int module_closure(struct build *b, const char *kdir, const char *kv, const char *name, char **list)
{
    const char *argv[] = {"/sbin/modprobe", "-d", kdir, "-S", kv, "--show-depends", name, NULL};
    _cleanup_free_ char *out_path = wpath("modprobe.out");
    struct proc_opts o = {.stdout_path = out_path};
    if (tool(b, "modprobe", argv, &o, false) < 0)
        return -1;
    _cleanup_free_ char *out = NULL;
    size_t len;
    if (read_file(out_path, 1 << 20, &out, &len) < 0)
        return fail(b, "cannot read modprobe's output");
    _cleanup_free_ char *prefix = xasprintf("insmod %s/lib/modules/%s/", kdir, kv);
    for (char *line = out, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, "builtin ", 8) == 0)
            continue;
        if (strncmp(line, prefix, strlen(prefix)) != 0)
            return fail(b, "unexpected modprobe output: \"%.200s\"", line);
        char *rel = line + strlen(prefix);
        rel[strcspn(rel, " ")] = '\0';
        _cleanup_free_ char *needle = xasprintf("\n%s\n", rel);
        _cleanup_free_ char *hay = xasprintf("\n%s", *list);
        if (strstr(hay, needle) != NULL)
            continue;
        char *grown = xasprintf("%s%s\n", *list, rel);
        free(*list);
        *list = grown;
    }
    return 0;
}

static char *init_script(const char *label, const char *kv)
{
    return xasprintf(
        "#!/bin/busybox sh\n"
        "LABEL=%s\n"
        "KV=%s\n"
        "/bin/busybox mount -t proc proc /proc\n"
        "/bin/busybox mount -t sysfs sysfs /sys\n"
        "/bin/busybox mount -t devtmpfs devtmpfs /dev\n"
        "exec </dev/console >/dev/console 2>&1\n"
        "/bin/busybox --install -s /bin\n"
        "export PATH=/bin\n"
        "fail() { echo \"DEBATE-INITRAMFS-FAIL: $*\"; sleep 1; poweroff -f; }\n"
        "while read -r m; do insmod \"/lib/modules/$KV/$m\" || echo \"insmod $m failed\"; done < /modules.list\n"
        "dev=; i=0\n"
        "while [ $i -lt 150 ]; do dev=$(findfs \"LABEL=$LABEL\" 2>/dev/null) && break; dev=; i=$((i+1)); sleep 0.1; done\n"
        "[ -n \"$dev\" ] || fail \"no device with label $LABEL\"\n"
        "mount -t iso9660 -o ro \"$dev\" /mnt/iso || fail \"mount $dev\"\n"
        "mount -t squashfs -o ro,loop /mnt/iso/live/filesystem.squashfs /mnt/ro || fail \"mount squashfs\"\n"
        "mount -t tmpfs -o mode=0755 tmpfs /mnt/rw && mkdir /mnt/rw/upper /mnt/rw/work\n"
        "mount -t overlay -o lowerdir=/mnt/ro,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work overlay /newroot "
        "|| fail \"mount overlay\"\n"
        "mount --move /dev /newroot/dev\n"
        "umount /proc /sys\n"
        "exec switch_root /newroot /sbin/init\n",
        label, kv);
}

static int copy_into(struct build *b, const char *from, const char *to, unsigned mode)
{
    _cleanup_free_ char *data = NULL;
    size_t len;
    int rc = read_file(from, 256u << 20, &data, &len);
    if (rc < 0)
        return fail(b, "cannot read \"%s\": %s", from, strerror(-rc));
    _cleanup_free_ char *dir = xstrdup(to);
    if ((rc = mkdir_p(dirname(dir), 0755)) < 0 || (rc = write_file_atomic(to, data, len, mode)) < 0)
        return fail(b, "cannot write \"%s\": %s", to, rc == -ENOSPC ? "the disk is full" : strerror(-rc));
    return 0;
}

static long long clamp_epoch;
static int clamp_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    struct timespec ts[2] = {{clamp_epoch, 0}, {clamp_epoch, 0}};
    return utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) < 0 ? -1 : 0;
}

/* Sets every mtime in the tree to the epoch (links themselves, not their targets). */
static int clamp_tree(struct build *b, const char *dir)
{
    clamp_epoch = b->epoch;
    if (nftw(dir, clamp_one, 32, FTW_PHYS) != 0)
        return fail(b, "cannot set the times in \"%s\": %s", dir, strerror(errno));
    return 0;
}

/* The single file in root/boot starting with prefix (vmlinuz-, initrd.img-). */
static char *boot_file(struct build *b, const char *prefix)
{
    DIR *d = opendir(WORK "/root/boot");
    char *found = NULL;
    struct dirent *e;
    size_t n = strlen(prefix);
    while (d && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, n) != 0)
            continue;
        if (found != NULL) {
            free(found);
            closedir(d);
            fail(b, "the image has more than one kernel in /boot; install one linux-image package");
            return NULL;
        }
        found = xasprintf(WORK "/root/boot/%s", e->d_name);
    }
    if (d)
        closedir(d);
    if (found == NULL)
        fail(b, "the image has no /boot/%s*: add linux-image-amd64 (and live-boot) to the packages", prefix);
    return found;
}

/* live: the kernel and the live-boot initramfs the packages installed. */
static int kernel_live(struct build *b)
{
    _cleanup_free_ char *vmlinuz = boot_file(b, "vmlinuz-");
    if (vmlinuz == NULL)
        return -1;
    _cleanup_free_ char *initrd = boot_file(b, "initrd.img-");
    if (initrd == NULL)
        return -1;
    _cleanup_free_ char *scripts = xasprintf(WORK "/root/usr/share/initramfs-tools/scripts/live");
    if (access(scripts, F_OK) != 0)
        return fail(b, "packages: the live variant needs live-boot (its initramfs finds the image)");
    progress(b, STAGE_KERNEL, 50, "%s", strrchr(vmlinuz, '/') + 1);
    int rc = mkdir_p(WORK "/iso/live", 0755);
    if (rc < 0)
        return fail(b, "cannot create the ISO's directories: %s", strerror(-rc));
    return copy_into(b, vmlinuz, WORK "/iso/live/vmlinuz", 0644) ?: copy_into(b, initrd, WORK "/iso/live/initrd.img", 0644);
}

static int kernel(struct build *b)
{
    if (is_live(b))
        return kernel_live(b);
    static const char *const members[] = {
        "./boot/vmlinuz-*", "./lib/modules/*/modules.order", "./lib/modules/*/modules.builtin",
        "./lib/modules/*/modules.builtin.modinfo", "./lib/modules/*/kernel/drivers/ata/*",
        "./lib/modules/*/kernel/drivers/scsi/*", "./lib/modules/*/kernel/drivers/cdrom/*",
        "./lib/modules/*/kernel/drivers/block/loop.ko", "./lib/modules/*/kernel/block/*",
        "./lib/modules/*/kernel/lib/*", "./lib/modules/*/kernel/crypto/*", "./lib/modules/*/kernel/arch/x86/crypto/*",
        "./lib/modules/*/kernel/fs/isofs/*", "./lib/modules/*/kernel/fs/squashfs/*",
        "./lib/modules/*/kernel/fs/overlayfs/*", NULL};
    static const char *const bb_members[] = {"./bin/busybox", NULL};
    if (b->kernel_pkg == NULL)
        return fail(b, "packages: the image needs a kernel: add linux-image-amd64");
    if (extract_deb(b, b->kernel_pkg, WORK "/kernel", members) < 0)
        return -1;
    _cleanup_free_ char *kv = kernel_version(WORK "/kernel");
    if (kv == NULL)
        return fail(b, "the kernel package \"%s\" holds no modules", b->kernel_pkg->name);
    const char *depmod[] = {"/sbin/depmod", "-b", WORK "/kernel", kv, NULL};
    if (run_tool(b, "depmod", depmod, false) < 0)
        return -1;
    progress(b, STAGE_KERNEL, 40, "kernel %s", kv);
    char *list = xstrdup("");
    for (size_t i = 0; initramfs_modules[i]; i++) {
        if (module_closure(b, WORK "/kernel", kv, initramfs_modules[i], &list) < 0) {
            free(list);
            return -1;
        }
    }
    const char *I = WORK "/initrd";
    const char *dirs[] = {"bin", "dev", "proc", "sys", "run", "newroot", "mnt/iso", "mnt/ro", "mnt/rw"};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        _cleanup_free_ char *d = xasprintf("%s/%s", I, dirs[i]);
        mkdir_p(d, 0755);
    }
    int rc = extract_deb(b, b->busybox_pkg, WORK "/busybox", bb_members);
    rc = rc ?: copy_into(b, WORK "/busybox/bin/busybox", WORK "/initrd/bin/busybox", 0755);
    for (char *m = list, *next; rc == 0 && m && *m; m = next) {
        next = strchr(m, '\n');
        *next++ = '\0';
        _cleanup_free_ char *from = xasprintf(WORK "/kernel/lib/modules/%s/%s", kv, m);
        _cleanup_free_ char *to = xasprintf("%s/lib/modules/%s/%s", I, kv, m);
        rc = copy_into(b, from, to, 0644);
        next[-1] = '\n';
    }
    _cleanup_free_ char *init = init_script(b->label, kv);
    _cleanup_free_ char *list_path = xasprintf("%s/modules.list", I), *init_path = xasprintf("%s/init", I);
    rc = rc ?: write_text(b, list_path, list, 0644);
    rc = rc ?: write_text(b, init_path, init, 0755);
    free(list);
    if (rc < 0 || clamp_tree(b, I) < 0)
        return -1;
    char err[512];
    if (cpio_write_tree(I, WORK "/initrd.cpio", b->epoch, err, sizeof(err)) < 0)
        return fail(b, "initramfs: %s", err);
    const char *zstd[] = {"/usr/bin/zstd", "-q", "-9", "-T1", "-f", "-o", WORK "/initrd.img", WORK "/initrd.cpio", NULL};
    rc = run_tool(b, "zstd", zstd, false);
    rc = rc ?: mkdir_p(WORK "/iso/live", 0755);
    _cleanup_free_ char *vmlinuz = xasprintf(WORK "/kernel/boot/vmlinuz-%s", kv);
    rc = rc ?: copy_into(b, vmlinuz, WORK "/iso/live/vmlinuz", 0644);
    rc = rc ?: copy_into(b, WORK "/initrd.img", WORK "/iso/live/initrd.img", 0644);
    return rc;
}

/* ---- stages: squashfs, bootloader, assembling ------------------------------------------- */

static int squashfs(struct build *b)
{
    /* mksquashfs refuses SOURCE_DATE_EPOCH together with these flags: run it without. */
    const char *argv[24] = {"/usr/bin/mksquashfs", WORK "/root", WORK "/iso/live/filesystem.squashfs", "-comp",
                            b->r->compression, "-reproducible", "-mkfs-time", b->epoch_str, "-all-time", b->epoch_str,
                            "-noappend", "-no-progress", "-quiet", NULL};
    if (strcmp(b->r->compression, "zstd") == 0) {
        /* Level 15: a third of level 19's time for 9% more size. */
        argv[13] = "-Xcompression-level";
        argv[14] = "15";
        argv[15] = NULL;
    }
    return run_tool(b, "mksquashfs", argv, false);
}

static int bootloader(struct build *b)
{
    const char *cmdline_extra = b->r->cmdline;
    _cleanup_free_ char *cmdline = xasprintf("%s%s%s", is_live(b) ? "boot=live" : "panic=5",
                                             cmdline_extra[0] ? " " : "", cmdline_extra);
    int rc = mkdir_p(WORK "/iso/isolinux", 0755);
    rc = rc ?: mkdir_p(WORK "/iso/boot/grub", 0755);
    if (rc < 0)
        return fail(b, "cannot create the ISO's directories: %s", strerror(-rc));
    if (b->r->boot_bios) {
        _cleanup_free_ char *cfg = xasprintf("SERIAL 0 115200\nDEFAULT live\nPROMPT 0\nTIMEOUT 0\nLABEL live\n"
                                             "  KERNEL /live/vmlinuz\n  APPEND initrd=/live/initrd.img %s\n",
                                             cmdline);
        rc = copy_into(b, "/usr/lib/ISOLINUX/isolinux.bin", WORK "/iso/isolinux/isolinux.bin", 0644);
        rc = rc ?: copy_into(b, "/usr/lib/syslinux/modules/bios/ldlinux.c32", WORK "/iso/isolinux/ldlinux.c32", 0644);
        rc = rc ?: write_text(b, WORK "/iso/isolinux/isolinux.cfg", cfg, 0644);
        if (rc < 0)
            return -1;
    }
    if (!b->r->boot_uefi)
        return 0;
    _cleanup_free_ char *embed = xasprintf("search --no-floppy --set=root --label %s\nlinux ($root)/live/vmlinuz %s\n"
                                           "initrd ($root)/live/initrd.img\nboot\n",
                                           b->label, cmdline);
    if (write_text(b, WORK "/grub-embed.cfg", embed, 0644) < 0)
        return -1;
    const char *mkimage[] = {"/usr/bin/grub-mkimage", "-O", "x86_64-efi", "-d", "/usr/lib/grub/x86_64-efi", "-p",
                             "/boot/grub", "-c", WORK "/grub-embed.cfg", "-o", WORK "/BOOTX64.EFI", "part_gpt",
                             "part_msdos", "iso9660", "fat", "search", "search_label", "linux", "normal", "echo",
                             "efi_gop", NULL};
    if (run_tool(b, "grub-mkimage", mkimage, false) < 0)
        return -1;
    struct timespec ts[2] = {{b->epoch, 0}, {b->epoch, 0}};
    struct stat st;
    if (utimensat(AT_FDCWD, WORK "/BOOTX64.EFI", ts, 0) < 0 || stat(WORK "/BOOTX64.EFI", &st) < 0)
        return fail(b, "cannot stamp the EFI image: %s", strerror(errno));
    char kb[32];
    snprintf(kb, sizeof(kb), "%lld", ((long long)st.st_size / 1024 + 256) / 64 * 64);
    const char *mkfs[] = {"/sbin/mkfs.fat", "-C", "--invariant", "-i", "DEB47E00", "-n", "EFIBOOT",
                          WORK "/iso/boot/grub/efi.img", kb, NULL};
    const char *mmd[] = {"/usr/bin/mmd", "-i", WORK "/iso/boot/grub/efi.img", "::/EFI", "::/EFI/BOOT", NULL};
    const char *mcopy[] = {"/usr/bin/mcopy", "-m", "-i", WORK "/iso/boot/grub/efi.img", WORK "/BOOTX64.EFI",
                           "::/EFI/BOOT/BOOTX64.EFI", NULL};
    if (run_tool(b, "mkfs.fat", mkfs, true) < 0)
        return -1;
    return run_tool(b, "mmd", mmd, true) ?: run_tool(b, "mcopy", mcopy, true);
}

static int assemble(struct build *b, const char *iso_out)
{
    if (clamp_tree(b, WORK "/iso") < 0)
        return -1;
    struct tm tm;
    time_t t = (time_t)b->epoch;
    gmtime_r(&t, &tm);
    char date[32];
    strftime(date, sizeof(date), "%Y%m%d%H%M%S00", &tm);
    _cleanup_free_ char *moddate = xasprintf("--modification-date=%s", date);
    const char *argv[40] = {"/usr/bin/xorriso", "-as", "mkisofs", "-o", iso_out, "-quiet", "-V", b->label,
                            "-iso-level", "3", "-r", moddate, "--set_all_file_dates", date, "--gpt_disk_guid",
                            "modification-date", NULL};
    size_t n = 16;
    if (b->r->boot_bios) {
        const char *bios[] = {"-isohybrid-mbr", "/usr/lib/ISOLINUX/isohdpfx.bin", "-b", "isolinux/isolinux.bin", "-c",
                              "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"};
        for (size_t i = 0; i < ARRAY_SIZE(bios); i++)
            argv[n++] = bios[i];
    }
    if (b->r->boot_uefi) {
        const char *efi[] = {"-eltorito-alt-boot", "-e", "boot/grub/efi.img", "-no-emul-boot",
                             "-isohybrid-gpt-basdat"};
        for (size_t i = 0; i < ARRAY_SIZE(efi); i++)
            argv[n++] = efi[i];
    }
    argv[n++] = WORK "/iso";
    argv[n] = NULL;
    return run_tool(b, "xorriso", argv, true);
}

/* ---- the offline part, in the sandbox -------------------------------------------------- */

static int offline_stages(struct build *b)
{
    static const struct {
        enum engine_stage stage;
        int within; /* percent of the stage when the step starts */
        const char *what;
        int (*fn)(struct build *);
    } steps[] = {{STAGE_ROOTFS, 5, "installing the packages", rootfs},
                 {STAGE_CUSTOMIZING, 0, "overlays and hooks", customize},
                 {STAGE_KERNEL, 0, "kernel and initramfs", kernel},
                 {STAGE_SQUASHFS, 0, "compressing the root filesystem", squashfs},
                 {STAGE_BOOTLOADER, 0, "BIOS and UEFI boot", bootloader}};
    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        progress(b, steps[i].stage, steps[i].within, "%s", steps[i].what);
        if (steps[i].fn(b) < 0)
            return -1;
    }
    progress(b, STAGE_ASSEMBLING, 0, "writing the ISO");
    return assemble(b, WORK "/image.iso");
}

/* The sandbox's payload: the stages; progress and the error go to standard output. */
static int offline_payload(void *arg)
{
    struct build *b = arg;
    b->progress_fd = STDOUT_FILENO;
    char err[2048] = "";
    b->err = err;
    b->errlen = sizeof(err);
    if (offline_stages(b) == 0)
        return 0;
    char line[2100];
    int n = snprintf(line, sizeof(line), "E %s\n", err);
    ssize_t unused = write(STDOUT_FILENO, line, (size_t)n);
    (void)unused;
    return 1;
}

/* One line of the sandbox's output, on the host: progress, or the start of the error. */
static void offline_line(struct build *b, char *line)
{
    if (b->error != NULL) {
        char *grown = xasprintf("%s\n%s", b->error, line);
        free(b->error);
        b->error = grown;
    } else if (line[0] == 'L' && line[1] == ' ') {
        const char *text = line + 2;
        size_t n = strlen(text) + 1, cap = sizeof(b->log_tail) - 1;
        if (n > cap)
            text += n - cap, n = cap;
        if (b->log_tail_len + n > cap) { /* keep the end */
            size_t drop = b->log_tail_len + n - cap;
            memmove(b->log_tail, b->log_tail + drop, b->log_tail_len - drop);
            b->log_tail_len -= drop;
        }
        memcpy(b->log_tail + b->log_tail_len, text, n - 1);
        b->log_tail[b->log_tail_len + n - 1] = '\n';
        b->log_tail_len += n;
        b->log_tail[b->log_tail_len] = '\0';
        if (b->o->log != NULL)
            b->o->log(b->o->progress_arg, text);
    } else if (line[0] == 'E' && line[1] == ' ') {
        b->error = xstrdup(line + 2); /* the error may span lines: everything that follows */
    } else if (line[0] == 'P') {
        int stage, pct, off = 0;
        if (sscanf(line, "P %d %d %n", &stage, &pct, &off) >= 2 && off > 0 && stage >= 0 && stage <= STAGE_DONE &&
            pct >= 0 && pct <= 100) {
            snprintf(b->last_step, sizeof(b->last_step), "%s", line + off);
            if (b->o->progress != NULL)
                b->o->progress(b->o->progress_arg, (enum engine_stage)stage, pct, line + off);
        }
    }
}

static void offline_output(void *arg, const char *buf, size_t n)
{
    struct build *b = arg;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] != '\n') {
            if (b->line_len < 8192) { /* a longer line is cut: the sandbox cannot make us hoard */
                b->line = xrealloc(b->line, b->line_len + 2);
                b->line[b->line_len++] = buf[i];
            }
            continue;
        }
        b->line = xrealloc(b->line, b->line_len + 1);
        b->line[b->line_len] = '\0';
        offline_line(b, b->line);
        b->line_len = 0;
    }
}

static int copy_fd(int in, int out)
{
    for (;;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
        if (n == 0)
            return 0;
        if (n > 0)
            continue;
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
            return -1;
        char buf[1 << 16];
        for (;;) {
            ssize_t r = read(in, buf, sizeof(buf));
            if (r == 0)
                return 0;
            if (r < 0 || write(out, buf, (size_t)r) != r)
                return -1;
        }
    }
}

/*
 * On the host, after the sandbox succeeded: the ISO copied out and the
 * squashfs hashed, both opened without following any link the build
 * planted.
 */
static int offline_collect(int diskfd, void *arg, char *out, size_t outlen, char *err, size_t errlen)
{
    struct build *b = arg;
    _cleanup_close_ int sfs = sandbox_open_beneath(diskfd, "iso/live/filesystem.squashfs", O_RDONLY);
    _cleanup_close_ int iso = sandbox_open_beneath(diskfd, "image.iso", O_RDONLY);
    struct stat st;
    if (sfs < 0 || iso < 0 || fstat(iso, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "the build left no regular image.iso and squashfs: %s", strerror(errno));
        return -1;
    }
    char sha[65];
    int rc = sha256_fd(sfs, sha, NULL);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read the squashfs: %s", strerror(-rc));
        return -1;
    }
    _cleanup_free_ char *path = xasprintf("%s/image.iso", b->out_dir);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || copy_fd(iso, fd) < 0) {
        snprintf(err, errlen, "cannot copy the ISO to \"%s\": %s", path,
                 errno == ENOSPC ? "the disk is full" : strerror(errno));
        return -1;
    }
    snprintf(out, outlen, "%s", sha);
    return 0;
}

/* Runs the offline stages in the sandbox; forwards their progress; returns the verdict. */
static int run_offline(struct build *b, struct engine_result *res)
{
    const struct config *cfg = b->o->cfg;
    struct sandbox_bind mirror = {.host = b->mirror_dir, .inside = MIRROR};
    struct sandbox_opts so = {.workdir = b->work, .binds = &mirror, .nbinds = 1, .id_base = cfg->sandbox_id_base,
                              .env = tool_env(b, true), .hostname = "debate-build", .payload = offline_payload,
                              .arg = b, .on_output = offline_output, .output_arg = b, .collect = offline_collect,
                              .collect_arg = b, .cancel = b->o->interrupted};
    sandbox_limits_from_config(cfg, &so.limits);
    if (b->o->timeout_s != 0)
        so.limits.wall_s = b->o->timeout_s;
    char desc[768];
    sandbox_describe(&so, desc, sizeof(desc));
    progress(b, STAGE_ROOTFS, 0, "%s", desc);
    struct sandbox_result sr;
    char serr[1024];
    if (sandbox_run(&so, &sr, serr, sizeof(serr)) < 0)
        return fail(b, "the build's sandbox could not be set up: %s", serr);
    if (b->line_len > 0) {
        b->line[b->line_len] = '\0';
        offline_line(b, b->line);
    }
    const char *why = b->error ? b->error : "the build stopped";
    switch (sr.cause) {
    case SANDBOX_OK:
        snprintf(res->squashfs_sha256, sizeof(res->squashfs_sha256), "%.64s", sr.collected);
        return 0;
    case SANDBOX_CANCELLED:
        return fail(b, "interrupted: the build stopped and nothing was written to \"%s\"", b->o->output);
    case SANDBOX_EXITED:
        return fail(b, "%s", why);
    case SANDBOX_COLLECT:
        return fail(b, "cannot read the build's results back: %s", sr.message);
    default:
        if (b->error != NULL)
            return fail(b, "%s: %s", sr.message, b->error);
        /* killed from outside: the host's record of the log says where */
        return fail(b, "%s during %s; its last output:\n%s", sr.message, b->last_step[0] ? b->last_step : "the build",
                    b->log_tail);
    }
}

/* ---- the whole build -------------------------------------------------------------------- */

static int find_packages(struct build *b)
{
    for (size_t i = 0; i < b->lock.npkgs; i++) {
        const struct lock_pkg *p = &b->lock.pkgs[i];
        if (strncmp(p->name, "linux-image-", 12) == 0 && isdigit((unsigned char)p->name[12]))
            b->kernel_pkg = p;
        if (strcmp(p->name, "busybox-static") == 0)
            b->busybox_pkg = p;
    }
    if (!is_live(b) && b->busybox_pkg == NULL)
        return fail(b, "packages: the busybox variant needs busybox-static");
    return 0;
}

static int epoch_from_lock(struct build *b)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(b->lock.date, "%a, %d %b %Y %H:%M:%S UTC", &tm);
    if (end == NULL)
        return fail(b, "cannot read the release date \"%s\"", b->lock.date);
    b->epoch = (long long)timegm(&tm);
    snprintf(b->epoch_str, sizeof(b->epoch_str), "%lld", b->epoch);
    return 0;
}

static void make_label(struct build *b)
{
    size_t n = 0;
    const char *prefix = "DEBATE_";
    for (const char *p = prefix; *p; p++)
        b->label[n++] = *p;
    for (const char *p = b->r->name; *p && n < 32; p++)
        b->label[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    b->label[n] = '\0';
}

char *engine_tool_versions(const char *scratch_dir)
{
    const char *argv[32] = {"/usr/bin/dpkg-query", "-W", "-f=${Package} ${Version}\\n"};
    size_t n = 3;
    for (size_t i = 0; tool_packages[i]; i++)
        argv[n++] = tool_packages[i];
    argv[n] = NULL;
    _cleanup_free_ char *path = xasprintf("%s/tools-%ld.txt", scratch_dir, (long)gettid());
    struct proc_opts o = {.stdout_path = path};
    char err[256];
    proc_run(argv, &o, err, sizeof(err));
    char *text = NULL;
    size_t len;
    if (read_file(path, 1 << 20, &text, &len) < 0)
        text = xstrdup("");
    unlink(path);
    return text;
}

static char *tool_versions(struct build *b)
{
    return engine_tool_versions(b->out_dir);
}

static int write_manifest(struct build *b, const struct engine_result *res, const char *path)
{
    json_error_t je;
    json_t *recipe = json_loads(b->r->canonical, 0, &je);
    json_t *lock = json_loads(b->lock.json, 0, &je);
    json_t *tools = json_object();
    _cleanup_free_ char *versions = tool_versions(b);
    for (char *line = versions, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *sp = strchr(line, ' ');
        if (sp) {
            *sp = '\0';
            json_object_set_new(tools, line, json_string(sp + 1));
        }
    }
    json_t *doc = json_pack("{s:i, s:o, s:s, s:o, s:s, s:o, s:I, s:s, s:s, s:I, s:s}", "format", 1, "recipe", recipe,
                            "config_hash", b->r->config_hash, "lock", lock, "lock_hash", b->lock.hash, "tools", tools,
                            "source_date_epoch", (json_int_t)b->epoch, "squashfs_sha256", res->squashfs_sha256,
                            "iso_sha256", res->iso_sha256, "iso_size", (json_int_t)res->iso_size, "builder",
                            "debate " DEBATE_VERSION);
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(doc);
    _cleanup_free_ char *with_nl = xasprintf("%s\n", text);
    free(text);
    return write_text(b, path, with_nl, 0644);
}

static int file_sha256(struct build *b, const char *path, char out[65], long long *size)
{
    int rc = sha256_file(path, out, size);
    if (rc < 0)
        return fail(b, "cannot read \"%s\": %s", path, strerror(-rc));
    return 0;
}

static void remove_tree(const char *path)
{
    const char *argv[] = {"/bin/rm", "-rf", "--one-file-system", path, NULL};
    struct proc_opts o = {0};
    char err[128];
    proc_run(argv, &o, err, sizeof(err));
}

static int finish(struct build *b, struct engine_result *res)
{
    _cleanup_free_ char *iso = xasprintf("%s/image.iso", b->out_dir);
    if (file_sha256(b, iso, res->iso_sha256, &res->iso_size) < 0)
        return -1;
    _cleanup_free_ char *manifest = xasprintf("%s.manifest.json", b->o->output);
    _cleanup_free_ char *manifest_tmp = xasprintf("%s/manifest.json", b->out_dir);
    if (write_manifest(b, res, manifest_tmp) < 0)
        return -1;
    /* The ISO appears at its path whole or not at all, and never without its manifest. */
    int rc = file_publish(iso, b->o->output);
    if (rc < 0)
        return fail(b, "cannot move the ISO to \"%s\": %s", b->o->output, strerror(-rc));
    if ((rc = file_publish(manifest_tmp, manifest)) < 0) {
        unlink(b->o->output);
        return fail(b, "cannot write \"%s\": %s", manifest, strerror(-rc));
    }
    return 0;
}

int engine_build(const struct recipe *r, const struct engine_opts *o, struct engine_result *res, char *err,
                 size_t errlen)
{
    struct build b = {.r = r, .o = o, .err = err, .errlen = errlen, .progress_fd = -1};
    memset(res, 0, sizeof(*res));
    make_label(&b);
    _cleanup_free_ char *out_copy = xstrdup(o->output);
    _cleanup_free_ char *host_mirror = resolve_default_mirror();
    const char *mirror = o->mirror ? o->mirror : o->cfg->mirror[0] ? o->cfg->mirror : host_mirror;
    int rc = -1;

    if (o->lock_path != NULL) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int frc = read_file(o->lock_path, 64u << 20, &text, &len);
        if (frc < 0)
            return fail(&b, "cannot read the lock \"%s\": %s", o->lock_path, strerror(-frc));
        if (lock_parse(text, len, r, &b.lock, err, errlen) < 0)
            return -1;
        progress(&b, STAGE_RESOLVING, 100, "using the lock \"%s\"", o->lock_path);
    } else {
        progress(&b, STAGE_RESOLVING, 0, "resolving %zu packages against %s", r->npackages, mirror);
        if (resolve_lock(r, mirror, o->cfg->archive_keyring, o->cfg->cache_dir, &b.lock, err, errlen) < 0)
            return -1;
    }
    progress(&b, STAGE_FETCHING, 0, "%zu packages in the lock (%.12s)", b.lock.npkgs, b.lock.hash);
    snprintf(res->lock_hash, sizeof(res->lock_hash), "%s", b.lock.hash);
    if (resolve_fetch(&b.lock, o->cfg->cache_dir, &res->fetched, err, errlen) < 0)
        goto out;
    progress(&b, STAGE_FETCHING, 100, "%d packages downloaded", res->fetched);
    if (find_packages(&b) < 0 || epoch_from_lock(&b) < 0)
        goto out;
    res->source_date_epoch = b.epoch;

    /* Unique: several builds (worker threads) may share an output directory. */
    b.work = xasprintf("%s/.debate-build-XXXXXX", dirname(out_copy));
    if (mkdtemp(b.work) == NULL) {
        fail(&b, "cannot create the work directory \"%s\": %s", b.work, strerror(errno));
        free(b.work);
        b.work = NULL;
        goto out;
    }
    b.mirror_dir = xasprintf("%s/mirror", b.work);
    b.out_dir = xasprintf("%s/out", b.work);
    if (mkdir(b.mirror_dir, 0755) < 0 || mkdir(b.out_dir, 0755) < 0) {
        fail(&b, "cannot create the work directory \"%s\": %s", b.work, strerror(errno));
        goto out;
    }
    progress(&b, STAGE_ROOTFS, 0, "local mirror of the lock");
    if (make_mirror(&b) < 0 || run_offline(&b, res) < 0 || finish(&b, res) < 0)
        goto out;
    progress(&b, STAGE_DONE, 100, "%s sha256 %s", o->output, res->iso_sha256);
    rc = 0;
out:
    if (b.work != NULL)
        remove_tree(b.work);
    free(b.work);
    free(b.mirror_dir);
    free(b.out_dir);
    free(b.line);
    free(b.error);
    lock_release(&b.lock);
    return rc;
}
