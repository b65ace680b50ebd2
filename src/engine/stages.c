/*
 * The stages of a build that run inside the sandbox: root filesystem,
 * overlays and hooks, kernel and initramfs, squashfs, bootloader and the
 * ISO itself. Everything here runs as the sandbox's payload, offline, on
 * the build disk (WORK) and the lock's local mirror (MIRROR); it reports
 * through the line protocol (protocol.c), never to the host directly.
 */
#include "engine/engine_int.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <libgen.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine/cpio.h"
#include "util.h"
#include "banned.h"

/* Modules the busybox initramfs loads to find and mount the ISO (with their dependencies). */
static const char *const initramfs_modules[] = {"ata_piix", "ahci",     "sr_mod", "sd_mod", "isofs",
                                                "loop",     "squashfs", "overlay", NULL};

static char *work_path(const char *rel)
{
    return xasprintf(WORK "/%s", rel);
}

/* ---- stage: root filesystem -------------------------------------------------------------- */

/* "a,b,c" of the recipe's packages; the busybox variant takes its kernel from the package instead. */
static char *include_list(struct build *b)
{
    char *include = NULL;
    for (size_t i = 0; i < b->r->npackages; i++) {
        if (!build_is_live(b) && strncmp(b->r->packages[i], "linux-image-", 12) == 0)
            continue;
        char *next = include ? xasprintf("%s,%s", include, b->r->packages[i]) : xstrdup(b->r->packages[i]);
        free(include);
        include = next;
    }
    return include;
}

/*
 * One sources.list line for each of the lock's suites, with its
 * components: from the local mirror (signed-by the keyring) for
 * mmdebstrap, or from the suites' own mirrors for the image. A format 1
 * lock's is "deb MIRROR RELEASE main", as it always was.
 */
static char *lock_source(const struct lock *l, size_t i, const char *keyring)
{
    char *comps = xstrdup("");
    for (size_t k = 0; k < l->ncomponents; k++) {
        char *longer = xasprintf("%s %s", comps, l->components[k]);
        free(comps);
        comps = longer;
    }
    char *line = keyring ? xasprintf("deb [signed-by=%s] copy://" MIRROR " %s%s", keyring, l->suites[i].name, comps)
                         : xasprintf("deb %s %s%s", l->suites[i].mirror, l->suites[i].name, comps);
    free(comps);
    return line;
}

static char *image_sources(const struct lock *l)
{
    char *text = xstrdup("");
    for (size_t i = 0; i < l->nsuites; i++) {
        _cleanup_free_ char *line = lock_source(l, i, NULL);
        char *longer = xasprintf("%s%s\n", text, line);
        free(text);
        text = longer;
    }
    return text;
}

/*
 * The busybox applets' links. A release with a merged /usr (trixie)
 * ships busybox in /usr/bin alone and the extract variant makes no /bin
 * link, so the hook finds it where it is.
 */
#define EXTRACT_HOOK                                                                                                   \
    "--extract-hook=mkdir -p \"$1/bin\" \"$1/sbin\" \"$1/usr/bin\" \"$1/usr/sbin\" && "                              \
    "if [ -e \"$1/bin/busybox\" ]; then chroot \"$1\" /bin/busybox --install -s; "                                   \
    "else chroot \"$1\" /usr/bin/busybox --install -s; fi"

static int install_packages(struct build *b)
{
    const char *keyring = KEYRING;
    _cleanup_free_ char *kr = xasprintf("--keyring=%s", keyring);
    _cleanup_free_ char *include = include_list(b);
    if (include == NULL && !build_is_live(b))
        return build_fail(b, ENGINE_E_FAILED, "packages: the busybox variant needs at least busybox-static");
    _cleanup_free_ char *inc = xasprintf("--include=%s", include ? include : "");
    bool live = build_is_live(b);
    /*
     * dpkg without fsync (force-unsafe-io): the build disk is thrown away
     * whatever happens, so a flush buys nothing. The option file it leaves
     * is removed again: the image is the same as without it.
     */
    const char *argv[20] = {"/usr/bin/mmdebstrap", "--quiet", live ? "--variant=minbase" : "--variant=extract",
                            "--mode=root", "--architectures=amd64", inc, kr, "--aptopt=APT::Sandbox::User \"root\"",
                            "--dpkgopt=force-unsafe-io",
                            "--customize-hook=rm -f \"$1/etc/dpkg/dpkg.cfg.d/99mmdebstrap\""};
    size_t argc = 10;
    /* live: minbase plus the recipe's packages; maintainer scripts run (initramfs included). */
    if (!live)
        argv[argc++] = EXTRACT_HOOK;
    argv[argc++] = b->lock.release;
    argv[argc++] = WORK "/root";
    char *sources[3] = {NULL, NULL, NULL};
    for (size_t i = 0; i < b->lock.nsuites && i < ARRAY_SIZE(sources); i++)
        argv[argc++] = sources[i] = lock_source(&b->lock, i, keyring);
    argv[argc] = NULL;
    int rc = build_run_tool(b, "mmdebstrap", argv, true);
    for (size_t i = 0; i < ARRAY_SIZE(sources); i++)
        free(sources[i]);
    return rc;
}

/*
 * The base layer: the tree as the packages left it, before any overlay or
 * hook, as a tarball with every owner, mode, link and extended attribute.
 * Times need not survive: squashfs stamps every file with the epoch.
 */
#define LAYER_TAR_OPTS "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls"

static int layer_extract(struct build *b)
{
    build_progress(b, STAGE_ROOTFS, 10, "reusing the base layer %.12s: no package is installed", b->layer_key);
    int rc = mkdir_p(WORK "/root", 0755);
    if (rc < 0)
        return build_fail(b, engine_errno_cause(-rc), "cannot create the root filesystem: %s", strerror(-rc));
    const char *argv[] = {"/bin/tar", "-x", "-p", LAYER_TAR_OPTS, "--zstd", "-f", BASE_LAYER, "-C", WORK "/root", NULL};
    return build_run_tool(b, "unpacking the base layer", argv, false);
}

/*
 * The base layer, unless the packages made what no other image may share:
 * private host keys (openssh-server's postinst) would go to every recipe
 * with the same packages. A layer that cannot be written is not kept; the
 * build goes on.
 */
static int layer_write(struct build *b)
{
    glob_t g;
    if (glob(WORK "/root/etc/ssh/ssh_host_*_key", GLOB_NOSORT, NULL, &g) == 0) {
        globfree(&g);
        build_progress(b, STAGE_ROOTFS, 90, "the base layer %.12s is not kept: the packages made private host keys "
                       "(/etc/ssh/ssh_host_*_key), which no other image may share", b->layer_key);
        return 0;
    }
    build_progress(b, STAGE_ROOTFS, 90, "writing the base layer %.12s for later builds", b->layer_key);
    const char *argv[] = {"/bin/tar", "-c", "--sort=name", LAYER_TAR_OPTS, "--use-compress-program=zstd -T0 -3",
                          "-f", WORK "/" NEW_LAYER, "-C", WORK "/root", ".", NULL};
    if (build_run_tool(b, "writing the base layer", argv, false) < 0) {
        build_progress(b, STAGE_ROOTFS, 95, "the base layer %.12s is not kept: %s", b->layer_key, b->err);
        unlink(WORK "/" NEW_LAYER);
        b->err[0] = '\0';
    }
    return 0;
}

static int rootfs(struct build *b)
{
    if (b->base_reused)
        return layer_extract(b);
    return install_packages(b) ?: (b->base_save ? layer_write(b) : 0);
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
        return build_fail(b, engine_errno_cause(errno), "cannot create the directories of \"%s\" in the image: %s",
                          path, strerror(errno));
    int fd = open_in_root(rootfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode);
    if (fd < 0)
        return build_fail(b, engine_errno_cause(errno), "cannot write \"%s\" in the image: %s", path, strerror(errno));
    ssize_t n = write(fd, data, len);
    int saved = errno;
    if (fchmod(fd, mode) < 0 || fchown(fd, 0, 0) < 0 || n != (ssize_t)len) {
        close(fd);
        return build_fail(b, engine_errno_cause(saved), "cannot write \"%s\" in the image: %s", path,
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

static int customize(struct build *b)
{
    const struct recipe *r = b->r;
    int rootfd = open(WORK "/root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return build_fail(b, ENGINE_E_FAILED, "cannot open the root filesystem: %s", strerror(errno));
    static const char *const dirs[] = {"/proc/", "/sys/", "/dev/", "/run/", "/tmp/", "/root/", "/mnt/", "/etc/"};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        if (mkdirs_in_root(rootfd, dirs[i]) < 0) {
            close(rootfd);
            return build_fail(b, engine_errno_cause(errno), "cannot create \"%s\" in the image: %s", dirs[i],
                              strerror(errno));
        }
    }
    if (chmod_in_root(rootfd, "/tmp", 01777) < 0 || chmod_in_root(rootfd, "/root", 0700) < 0) {
        close(rootfd);
        return build_fail(b, ENGINE_E_FAILED, "cannot set the modes of /tmp and /root in the image: %s", strerror(errno));
    }
    unlinkat(rootfd, "etc/resolv.conf", 0); /* the host's must not leak in; absent is fine */
    /* mmdebstrap records the mirror it used: write the canonical one instead. */
    _cleanup_free_ char *sources = image_sources(&b->lock);
    _cleanup_free_ char *hostname = xasprintf("%s\n", r->hostname);
    _cleanup_free_ char *hosts = xasprintf("127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n",
                                           r->hostname);
    _cleanup_free_ char *rcs = rcs_script(r);
    static const char inittab[] = "::sysinit:/etc/init.d/rcS\n::askfirst:-/bin/sh\n::shutdown:/bin/umount -a -r\n";
    int rc = write_in_root(b, rootfd, "/etc/apt/sources.list", sources, strlen(sources), 0644);
    rc = rc ?: write_in_root(b, rootfd, "/etc/hostname", hostname, strlen(hostname), 0644);
    rc = rc ?: write_in_root(b, rootfd, "/etc/hosts", hosts, strlen(hosts), 0644);
    if (!build_is_live(b)) {
        rc = rc ?: write_in_root(b, rootfd, "/etc/inittab", inittab, strlen(inittab), 0644);
        rc = rc ?: write_in_root(b, rootfd, "/etc/init.d/rcS", rcs, strlen(rcs), 0755);
    }
    for (size_t i = 0; rc == 0 && i < r->noverlays; i++)
        rc = write_in_root(b, rootfd, r->overlays[i].path, r->overlays[i].content, r->overlays[i].content_len,
                           r->overlays[i].mode);
    if (rc == 0)
        build_progress(b, STAGE_CUSTOMIZING, 50, "%zu overlays written", r->noverlays);
    if (rc == 0 && sethostname(r->hostname, strlen(r->hostname)) < 0)
        rc = build_fail(b, ENGINE_E_FAILED, "cannot set the host name for the hooks: %s", strerror(errno));
    rc = rc ?: hook_run_all(b);
    close(rootfd);
    if (sethostname("debate-build", 12) < 0 && rc == 0)
        return build_fail(b, ENGINE_E_FAILED, "cannot reset the build's host name: %s", strerror(errno));
    return rc;
}

/* ---- stage: kernel and initramfs --------------------------------------------------------- */

static int extract_deb(struct build *b, const struct lock_pkg *p, const char *dest, const char *const *members)
{
    _cleanup_free_ char *deb = xasprintf(MIRROR "/%s", p->filename);
    _cleanup_free_ char *tar = xasprintf(WORK "/%s.tar", p->name);
    const char *argv[] = {"/usr/bin/dpkg-deb", "--fsys-tarfile", deb, NULL};
    struct proc_opts o = {.stdout_path = tar};
    if (build_tool(b, "dpkg-deb", argv, &o, false) < 0)
        return -1;
    int rc = mkdir_p(dest, 0755);
    if (rc < 0)
        return build_fail(b, engine_errno_cause(-rc), "cannot create \"%s\": %s", dest, strerror(-rc));
    const char *targv[64] = {"/bin/tar", "-x", "-f", tar, "-C", dest, "--wildcards", NULL};
    size_t n = 7;
    for (size_t i = 0; members[i] != NULL && n < ARRAY_SIZE(targv) - 1; i++)
        targv[n++] = members[i];
    targv[n] = NULL;
    rc = build_run_tool(b, "tar", targv, false);
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

static int copy_into(struct build *b, const char *from, const char *to, unsigned mode);

/* A kernel whose modules are in /usr/lib/modules (trixie's): moved to lib/modules, where the rest looks. */
static int usr_modules_to_lib(struct build *b)
{
    if (access(WORK "/kernel/usr/lib/modules", F_OK) != 0)
        return 0;
    int rc = mkdir_p(WORK "/kernel/lib", 0755);
    if (rc < 0 || rename(WORK "/kernel/usr/lib/modules", WORK "/kernel/lib/modules") < 0)
        return build_fail(b, engine_errno_cause(rc < 0 ? -rc : errno), "cannot move the kernel's modules: %s",
                          strerror(rc < 0 ? -rc : errno));
    return 0;
}

static bool ends_with_xz(const char *s)
{
    size_t n = strlen(s);
    return n > 3 && strcmp(s + n - 3, ".xz") == 0;
}

/*
 * A module into the initramfs. Compressed ones (trixie's kernel ships
 * .ko.xz) are decompressed: busybox's insmod then needs no xz of its own,
 * and the bytes are xz's output, the same on every build.
 */
static int install_module(struct build *b, const char *from, const char *to)
{
    if (!ends_with_xz(from))
        return copy_into(b, from, to, 0644);
    _cleanup_free_ char *plain = xstrndup(to, strlen(to) - 3), *dir = xstrdup(to);
    int rc = mkdir_p(dirname(dir), 0755);
    if (rc < 0)
        return build_fail(b, engine_errno_cause(-rc), "cannot create the directory of \"%s\": %s", plain,
                          strerror(-rc));
    const char *argv[] = {"/usr/bin/xz", "-d", "-c", from, NULL};
    struct proc_opts o = {.stdout_path = plain};
    if (build_tool(b, "xz", argv, &o, false) < 0)
        return -1;
    return chmod(plain, 0644) < 0 ? build_fail(b, ENGINE_E_FAILED, "cannot chmod \"%s\": %s", plain, strerror(errno))
                                  : 0;
}

/* The module list's names as installed: ".xz" dropped at the end of each line. */
static void strip_xz(char *list)
{
    char *out = list;
    for (char *line = list, *next; *line; line = next) {
        next = strchr(line, '\n');
        size_t n = next ? (size_t)(next - line) : strlen(line);
        if (n > 3 && strncmp(line + n - 3, ".xz", 3) == 0)
            n -= 3;
        memmove(out, line, n);
        out += n;
        if (next == NULL)
            break;
        *out++ = '\n';
        next++;
    }
    *out = '\0';
}

/* Appends the modules needed for name, in load order, to list (no duplicates). */
static int module_closure(struct build *b, const char *kdir, const char *kv, const char *name, char **list)
{
    const char *argv[] = {"/sbin/modprobe", "-d", kdir, "-S", kv, "--show-depends", name, NULL};
    _cleanup_free_ char *out_path = work_path("modprobe.out");
    struct proc_opts o = {.stdout_path = out_path};
    if (build_tool(b, "modprobe", argv, &o, false) < 0)
        return -1;
    _cleanup_free_ char *out = NULL;
    size_t len;
    if (read_file(out_path, 1 << 20, &out, &len) < 0)
        return build_fail(b, ENGINE_E_FAILED, "cannot read modprobe's output");
    _cleanup_free_ char *prefix = xasprintf("insmod %s/lib/modules/%s/", kdir, kv);
    for (char *line = out, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, "builtin ", 8) == 0)
            continue;
        if (strncmp(line, prefix, strlen(prefix)) != 0)
            return build_fail(b, ENGINE_E_FAILED, "unexpected modprobe output: \"%.200s\"", line);
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
        return build_fail(b, ENGINE_E_FAILED, "cannot read \"%s\": %s", from, strerror(-rc));
    _cleanup_free_ char *dir = xstrdup(to);
    if ((rc = mkdir_p(dirname(dir), 0755)) < 0 || (rc = write_file_atomic(to, data, len, mode)) < 0)
        return build_fail(b, engine_errno_cause(-rc), "cannot write \"%s\": %s", to,
                          rc == -ENOSPC ? "the disk is full" : strerror(-rc));
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
        return build_fail(b, ENGINE_E_FAILED, "cannot set the times in \"%s\": %s", dir, strerror(errno));
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
            build_fail(b, ENGINE_E_FAILED, "the image has more than one kernel in /boot; install one linux-image package");
            return NULL;
        }
        found = xasprintf(WORK "/root/boot/%s", e->d_name);
    }
    if (d)
        closedir(d);
    if (found == NULL)
        build_fail(b, ENGINE_E_FAILED, "the image has no /boot/%s*: add linux-image-amd64 (and live-boot) to the packages", prefix);
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
        return build_fail(b, ENGINE_E_FAILED, "packages: the live variant needs live-boot (its initramfs finds the image)");
    build_progress(b, STAGE_KERNEL, 50, "%s", strrchr(vmlinuz, '/') + 1);
    int rc = mkdir_p(WORK "/iso/live", 0755);
    if (rc < 0)
        return build_fail(b, engine_errno_cause(-rc), "cannot create the ISO's directories: %s", strerror(-rc));
    return copy_into(b, vmlinuz, WORK "/iso/live/vmlinuz", 0644) ?: copy_into(b, initrd, WORK "/iso/live/initrd.img", 0644);
}

/* busybox: the kernel and initramfs an earlier build made from the same packages, label and epoch. */
static int kernel_reuse(struct build *b)
{
    build_progress(b, STAGE_KERNEL, 50, "reusing the kernel layer %.12s: the initramfs is not made again",
                   b->kernel_key);
    int rc = mkdir_p(WORK "/iso/live", 0755);
    if (rc < 0)
        return build_fail(b, engine_errno_cause(-rc), "cannot create the ISO's directories: %s", strerror(-rc));
    return copy_into(b, BASE "/vmlinuz", WORK "/iso/live/vmlinuz", 0644) ?:
           copy_into(b, BASE "/initrd.img", WORK "/iso/live/initrd.img", 0644);
}

static int kernel(struct build *b)
{
    if (build_is_live(b))
        return kernel_live(b);
    if (b->kernel_reused)
        return kernel_reuse(b);
    /* A '*' before lib: bookworm's kernel has its modules in /lib, trixie's in /usr/lib (tar's '*' matches '/'). */
    static const char *const members[] = {
        "./boot/vmlinuz-*", "./*lib/modules/*/modules.order", "./*lib/modules/*/modules.builtin",
        "./*lib/modules/*/modules.builtin.modinfo", "./*lib/modules/*/kernel/drivers/ata/*",
        "./*lib/modules/*/kernel/drivers/scsi/*", "./*lib/modules/*/kernel/drivers/cdrom/*",
        "./*lib/modules/*/kernel/drivers/block/loop.ko*", "./*lib/modules/*/kernel/block/*",
        "./*lib/modules/*/kernel/lib/*", "./*lib/modules/*/kernel/crypto/*",
        "./*lib/modules/*/kernel/arch/x86/crypto/*", "./*lib/modules/*/kernel/fs/isofs/*",
        "./*lib/modules/*/kernel/fs/squashfs/*", "./*lib/modules/*/kernel/fs/overlayfs/*", NULL};
    static const char *const bb_members[] = {"./*bin/busybox", NULL};
    if (b->kernel_pkg == NULL)
        return build_fail(b, ENGINE_E_FAILED, "packages: the image needs a kernel: add linux-image-amd64");
    if (extract_deb(b, b->kernel_pkg, WORK "/kernel", members) < 0 || usr_modules_to_lib(b) < 0)
        return -1;
    _cleanup_free_ char *kv = kernel_version(WORK "/kernel");
    if (kv == NULL)
        return build_fail(b, ENGINE_E_FAILED, "the kernel package \"%s\" holds no modules", b->kernel_pkg->name);
    const char *depmod[] = {"/sbin/depmod", "-b", WORK "/kernel", kv, NULL};
    if (build_run_tool(b, "depmod", depmod, false) < 0)
        return -1;
    build_progress(b, STAGE_KERNEL, 40, "kernel %s", kv);
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
    /* busybox-static has it in /bin up to bookworm, in /usr/bin from trixie on. */
    const char *bb = access(WORK "/busybox/bin/busybox", F_OK) == 0 ? WORK "/busybox/bin/busybox"
                                                                     : WORK "/busybox/usr/bin/busybox";
    rc = rc ?: copy_into(b, bb, WORK "/initrd/bin/busybox", 0755);
    for (char *m = list, *next; rc == 0 && m && *m; m = next) {
        next = strchr(m, '\n');
        *next++ = '\0';
        _cleanup_free_ char *from = xasprintf(WORK "/kernel/lib/modules/%s/%s", kv, m);
        _cleanup_free_ char *to = xasprintf("%s/lib/modules/%s/%s", I, kv, m);
        rc = install_module(b, from, to);
        next[-1] = '\n';
    }
    strip_xz(list);
    _cleanup_free_ char *init = init_script(b->label, kv);
    _cleanup_free_ char *list_path = xasprintf("%s/modules.list", I), *init_path = xasprintf("%s/init", I);
    rc = rc ?: build_write_text(b, list_path, list, 0644);
    rc = rc ?: build_write_text(b, init_path, init, 0755);
    free(list);
    if (rc < 0 || clamp_tree(b, I) < 0)
        return -1;
    char err[512];
    if (cpio_write_tree(I, WORK "/initrd.cpio", b->epoch, err, sizeof(err)) < 0)
        return build_fail(b, ENGINE_E_FAILED, "initramfs: %s", err);
    const char *zstd[] = {"/usr/bin/zstd", "-q", "-9", "-T1", "-f", "-o", WORK "/initrd.img", WORK "/initrd.cpio", NULL};
    rc = build_run_tool(b, "zstd", zstd, false);
    rc = rc ?: mkdir_p(WORK "/iso/live", 0755);
    _cleanup_free_ char *vmlinuz = xasprintf(WORK "/kernel/boot/vmlinuz-%s", kv);
    rc = rc ?: copy_into(b, vmlinuz, WORK "/iso/live/vmlinuz", 0644);
    rc = rc ?: copy_into(b, WORK "/initrd.img", WORK "/iso/live/initrd.img", 0644);
    return rc;
}

/* ---- stages: squashfs, bootloader, assembling ------------------------------------------- */

static int squashfs(struct build *b)
{
    /* The setting is the recipe format's (recipe.h): the same for every build of a lock. */
    char block[16], level[16];
    snprintf(block, sizeof(block), "%uK", b->r->squashfs_block_kib);
    snprintf(level, sizeof(level), "%d", b->r->squashfs_zstd_level);
    /* mksquashfs refuses SOURCE_DATE_EPOCH together with these flags: run it without. */
    const char *argv[24] = {"/usr/bin/mksquashfs", WORK "/root", WORK "/iso/live/filesystem.squashfs", "-comp",
                            b->r->compression, "-reproducible", "-mkfs-time", b->epoch_str, "-all-time", b->epoch_str,
                            "-noappend", "-no-progress", "-quiet", NULL};
    size_t n = 13;
    if (b->r->squashfs_block_kib != 128) { /* 128 KiB is mksquashfs's own: formats 1 and 2 never named it */
        argv[n++] = "-b";
        argv[n++] = block;
    }
    if (strcmp(b->r->compression, "zstd") == 0) {
        argv[n++] = "-Xcompression-level";
        argv[n++] = level;
    }
    argv[n] = NULL;
    return build_run_tool(b, "mksquashfs", argv, false);
}

static int bootloader(struct build *b)
{
    const char *cmdline_extra = b->r->cmdline;
    _cleanup_free_ char *cmdline = xasprintf("%s%s%s", build_is_live(b) ? "boot=live" : "panic=5",
                                             cmdline_extra[0] ? " " : "", cmdline_extra);
    int rc = mkdir_p(WORK "/iso/isolinux", 0755);
    rc = rc ?: mkdir_p(WORK "/iso/boot/grub", 0755);
    if (rc < 0)
        return build_fail(b, engine_errno_cause(-rc), "cannot create the ISO's directories: %s", strerror(-rc));
    if (b->r->boot_bios) {
        _cleanup_free_ char *cfg = xasprintf("SERIAL 0 115200\nDEFAULT live\nPROMPT 0\nTIMEOUT 0\nLABEL live\n"
                                             "  KERNEL /live/vmlinuz\n  APPEND initrd=/live/initrd.img %s\n",
                                             cmdline);
        rc = copy_into(b, "/usr/lib/ISOLINUX/isolinux.bin", WORK "/iso/isolinux/isolinux.bin", 0644);
        rc = rc ?: copy_into(b, "/usr/lib/syslinux/modules/bios/ldlinux.c32", WORK "/iso/isolinux/ldlinux.c32", 0644);
        rc = rc ?: build_write_text(b, WORK "/iso/isolinux/isolinux.cfg", cfg, 0644);
        if (rc < 0)
            return -1;
    }
    if (!b->r->boot_uefi)
        return 0;
    _cleanup_free_ char *embed = xasprintf("search --no-floppy --set=root --label %s\nlinux ($root)/live/vmlinuz %s\n"
                                           "initrd ($root)/live/initrd.img\nboot\n",
                                           b->label, cmdline);
    if (build_write_text(b, WORK "/grub-embed.cfg", embed, 0644) < 0)
        return -1;
    const char *mkimage[] = {"/usr/bin/grub-mkimage", "-O", "x86_64-efi", "-d", "/usr/lib/grub/x86_64-efi", "-p",
                             "/boot/grub", "-c", WORK "/grub-embed.cfg", "-o", WORK "/BOOTX64.EFI", "part_gpt",
                             "part_msdos", "iso9660", "fat", "search", "search_label", "linux", "normal", "echo",
                             "efi_gop", NULL};
    if (build_run_tool(b, "grub-mkimage", mkimage, false) < 0)
        return -1;
    struct timespec ts[2] = {{b->epoch, 0}, {b->epoch, 0}};
    struct stat st;
    if (utimensat(AT_FDCWD, WORK "/BOOTX64.EFI", ts, 0) < 0 || stat(WORK "/BOOTX64.EFI", &st) < 0)
        return build_fail(b, ENGINE_E_FAILED, "cannot stamp the EFI image: %s", strerror(errno));
    char kb[32];
    snprintf(kb, sizeof(kb), "%lld", ((long long)st.st_size / 1024 + 256) / 64 * 64);
    const char *mkfs[] = {"/sbin/mkfs.fat", "-C", "--invariant", "-i", "DEB47E00", "-n", "EFIBOOT",
                          WORK "/iso/boot/grub/efi.img", kb, NULL};
    const char *mmd[] = {"/usr/bin/mmd", "-i", WORK "/iso/boot/grub/efi.img", "::/EFI", "::/EFI/BOOT", NULL};
    const char *mcopy[] = {"/usr/bin/mcopy", "-m", "-i", WORK "/iso/boot/grub/efi.img", WORK "/BOOTX64.EFI",
                           "::/EFI/BOOT/BOOTX64.EFI", NULL};
    if (build_run_tool(b, "mkfs.fat", mkfs, true) < 0)
        return -1;
    return build_run_tool(b, "mmd", mmd, true) ?: build_run_tool(b, "mcopy", mcopy, true);
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
    return build_run_tool(b, "xorriso", argv, true);
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
        build_progress(b, steps[i].stage, steps[i].within, "%s", steps[i].what);
        if (steps[i].fn(b) < 0)
            return -1;
    }
    build_progress(b, STAGE_ASSEMBLING, 0, "writing the ISO");
    return assemble(b, WORK "/image.iso");
}

/* The sandbox's payload: the stages; progress and the error go to standard output. */
int stages_payload(void *arg)
{
    struct build *b = arg;
    b->progress_fd = STDOUT_FILENO;
    char err[2048] = "";
    b->err = err;
    b->errlen = sizeof(err);
    if (offline_stages(b) == 0)
        return 0;
    proto_emit_error(b, err);
    return 1;
}

