/*
 * The host side of a build: resolution and fetching (the only network
 * access), the lock's local mirror, the sandbox run of the stages
 * (stages.c), reading the results back, the manifest, and publishing the
 * ISO.
 */
#include "engine/engine.h"
#include "engine/engine_int.h"

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

static const char *const stage_names[] = {"resolving",  "fetching", "rootfs",     "customizing", "kernel",
                                          "squashfs",   "bootloader", "assembling", "booting", "done"};
/* Host tools whose versions can change the bytes: recorded in the manifest. */
static const char *const tool_packages[] = {
    "mmdebstrap", "apt", "dpkg", "xorriso", "libisofs6", "libburn4", "libisoburn1", "squashfs-tools", "liblzma5",
    "libzstd1", "zstd", "mtools", "dosfstools", "grub-efi-amd64-bin", "grub-common", "isolinux", "syslinux-common",
    "kmod", "tar", NULL};

const char *engine_stage_name(enum engine_stage s)
{
    return s <= STAGE_DONE ? stage_names[s] : "unknown";
}

/* Every cause's API code and text; the unit tests check that none is missing. */
static const struct {
    const char *code, *text;
} errors[] = {
    [ENGINE_OK] = {"ok", "no error"},
    [ENGINE_E_FAILED] = {"build_failed", "the build failed"},
    [ENGINE_E_INVALID_LOCK] = {"invalid_lock", "the lock is not valid for this recipe"},
    [ENGINE_E_UNKNOWN_PACKAGE] = {"unknown_package", "a package is not in the mirror"},
    [ENGINE_E_MIRROR] = {"mirror_unreachable", "the mirror could not be used"},
    [ENGINE_E_SIGNATURE] = {"bad_signature", "a release file's signature does not verify"},
    [ENGINE_E_HOOK] = {"hook_failed", "a hook failed"},
    [ENGINE_E_LIMIT] = {"limit_exceeded", "a sandbox limit stopped the build"},
    [ENGINE_E_DISK_FULL] = {"disk_full", "the disk is full"},
    [ENGINE_E_INTERRUPTED] = {"interrupted", "the build was interrupted"},
};

const char *engine_error_code(enum engine_error e)
{
    return (unsigned)e <= ENGINE_ERROR_MAX ? errors[e].code : "build_failed";
}

const char *engine_strerror(enum engine_error e)
{
    return (unsigned)e <= ENGINE_ERROR_MAX ? errors[e].text : "unknown error";
}

int build_fail(struct build *b, enum engine_error cause, const char *fmt, ...)
{
    b->cause = cause;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err, b->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/*
 * The environment every tool of the build sees: an allowlist. libfaketime's
 * variables pass so that determinism can be tested under a shifted clock.
 */
const char **build_tool_env(struct build *b, bool with_epoch)
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

/* Runs one tool of the build; on failure the message names it and quotes its last words. */
int build_tool(struct build *b, const char *what, const char *const argv[], struct proc_opts *o, bool with_epoch)
{
    o->env = build_tool_env(b, with_epoch);
    o->clean_env = true;
    if (b->progress_fd >= 0 && o->stdout_path == NULL) {
        o->on_output = proto_log_output;
        o->output_arg = b;
        b->tool_line_len = 0;
    }
    char err[512];
    int rc = proc_run(argv, o, err, sizeof(err));
    proto_flush_log(b);
    if (rc == 0)
        return 0;
    const char *tail = o->tail;
    size_t tl = strlen(tail);
    if (tl > 1500)
        tail += tl - 1500;
    if (strstr(o->tail, "No space left on device"))
        return build_fail(b, ENGINE_E_DISK_FULL, "%s: the disk is full (%s)", what, err);
    return build_fail(b, ENGINE_E_FAILED, "%s: %s: %s", what, err, tail);
}

int build_run_tool(struct build *b, const char *what, const char *const argv[], bool with_epoch)
{
    struct proc_opts o = {0};
    return build_tool(b, what, argv, &o, with_epoch);
}

int build_write_text(struct build *b, const char *path, const char *text, unsigned mode)
{
    int rc = write_file_atomic(path, text, strlen(text), mode);
    if (rc < 0)
        return build_fail(b, engine_errno_cause(-rc), "cannot write \"%s\": %s", path,
                          rc == -ENOSPC ? "the disk is full" : strerror(-rc));
    return 0;
}

/* ---- stage: a local mirror of exactly the lock, from the cache ---------------------------- */

static int link_or_copy(struct build *b, const char *from, const char *to)
{
    _cleanup_free_ char *dir = xstrdup(to);
    int rc = mkdir_p(dirname(dir), 0755);
    if (rc < 0)
        return build_fail(b, engine_errno_cause(-rc), "cannot create the directory of \"%s\": %s", to, strerror(-rc));
    if (link(from, to) == 0)
        return 0;
    const char *argv[] = {"/bin/cp", from, to, NULL};
    return build_run_tool(b, "copying a package", argv, false);
}

static int open_up_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type == FTW_D)
        return chmod(path, 0755) < 0 ? -1 : 0;
    /* hard links to the cache: already 0644 unless a copy inherited a strict umask */
    return type == FTW_F && (st->st_mode & 0444) != 0444 && chmod(path, 0644) < 0 ? -1 : 0;
}

/*
 * One suite's signed files in the local mirror: dists/SUITE/InRelease and
 * each component's Packages.xz, from CACHE/indexes/<InRelease sha256>/.
 * The security archive's pool (pool/updates/...) does not meet the main
 * archive's (pool/main/...), so every suite shares one tree.
 */
static int mirror_suite(struct build *b, const struct lock_suite *s)
{
    const struct config *cfg = b->o->cfg;
    const struct lock *l = &b->lock;
    _cleanup_free_ char *idx = xasprintf("%s/indexes/%s", cfg->cache_dir, s->inrelease_sha256);
    _cleanup_free_ char *dists = xasprintf("%s/dists/%s", b->mirror_dir, s->name);
    _cleanup_free_ char *src_in = xasprintf("%s/InRelease", idx), *dst_in = xasprintf("%s/InRelease", dists);
    if (link_or_copy(b, src_in, dst_in) < 0)
        return -1;
    for (size_t i = 0; i < l->ncomponents; i++) {
        const char *c = l->components[i];
        _cleanup_free_ char *src_xz = strcmp(c, "main") == 0 ? xasprintf("%s/Packages.xz", idx)
                                                             : xasprintf("%s/%s.Packages.xz", idx, c);
        _cleanup_free_ char *dst_xz = xasprintf("%s/%s/binary-%s/Packages.xz", dists, c, l->arch);
        if (link_or_copy(b, src_xz, dst_xz) < 0)
            return -1;
    }
    return 0;
}

static int make_mirror(struct build *b)
{
    const struct config *cfg = b->o->cfg;
    const struct lock *l = &b->lock;
    for (size_t i = 0; i < l->nsuites; i++)
        if (mirror_suite(b, &l->suites[i]) < 0)
            return -1;
    for (size_t i = 0; i < l->npkgs; i++) {
        _cleanup_free_ char *from = xasprintf("%s/debs/%s.deb", cfg->cache_dir, l->pkgs[i].sha256);
        _cleanup_free_ char *to = xasprintf("%s/%s", b->mirror_dir, l->pkgs[i].filename);
        struct stat st;
        if (stat(from, &st) < 0 || st.st_size != l->pkgs[i].size)
            return build_fail(b, ENGINE_E_FAILED, "the package cache has no verified copy of \"%s\" %s", l->pkgs[i].name,
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
        return build_fail(b, ENGINE_E_FAILED, "cannot open up \"%s\" to the build: %s", b->mirror_dir,
                          strerror(errno));
    return 0;
}

/*
 * A file the stages made for the cache (rel, beneath the build disk)
 * copied out to out/DIR/NAME, or nothing there: a layer that cannot be
 * copied is not kept (layers_keep says so), and the build goes on.
 */
static void collect_for_cache(int diskfd, struct build *b, const char *rel, const char *dir, const char *name)
{
    _cleanup_free_ char *to_dir = xasprintf("%s/%s", b->out_dir, dir), *path = xasprintf("%s/%s", to_dir, name);
    _cleanup_close_ int in = sandbox_open_beneath(diskfd, rel, O_RDONLY);
    struct stat st;
    if (in < 0 || fstat(in, &st) < 0 || !S_ISREG(st.st_mode) || (mkdir(to_dir, 0755) < 0 && errno != EEXIST))
        return;
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0 && copy_fd(in, fd) < 0)
        unlink(path); /* never a truncated layer */
}

/* The layers this build makes for later ones: out/base/layer.tar.zst, out/kernel/{vmlinuz,initrd.img}. */
static void collect_layers(int diskfd, struct build *b)
{
    if (b->base_save)
        collect_for_cache(diskfd, b, NEW_LAYER, "base", "layer.tar.zst");
    if (b->kernel_save) {
        collect_for_cache(diskfd, b, "iso/live/vmlinuz", "kernel", "vmlinuz");
        collect_for_cache(diskfd, b, "iso/live/initrd.img", "kernel", "initrd.img");
    }
}

/*
 * On the host, after the sandbox succeeded: the ISO copied out and the
 * squashfs hashed, both opened without following any link the build
 * planted. It runs in the sandbox's supervisor, a process of its own: when
 * it fails, the cause goes back to run_offline as a number in out, which
 * the sandbox returns whatever collect's verdict.
 */
static int offline_collect(int diskfd, void *arg, char *out, size_t outlen, char *err, size_t errlen)
{
    struct build *b = arg;
    _cleanup_close_ int sfs = sandbox_open_beneath(diskfd, "iso/live/filesystem.squashfs", O_RDONLY);
    _cleanup_close_ int iso = sandbox_open_beneath(diskfd, "image.iso", O_RDONLY);
    struct stat st;
    snprintf(out, outlen, "%d", (int)ENGINE_E_FAILED);
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
        int saved = errno;
        snprintf(err, errlen, "cannot copy the ISO to \"%s\": %s", path,
                 saved == ENOSPC ? "the disk is full" : strerror(saved));
        snprintf(out, outlen, "%d", (int)engine_errno_cause(saved));
        return -1;
    }
    collect_layers(diskfd, b);
    snprintf(out, outlen, "%s", sha);
    return 0;
}

/* Runs the offline stages in the sandbox; forwards their build_progress; returns the verdict. */
static int run_offline(struct build *b, struct engine_result *res)
{
    const struct config *cfg = b->o->cfg;
    struct sandbox_bind binds[] = {{.host = b->mirror_dir, .inside = MIRROR}, {.host = b->base_dir, .inside = BASE}};
    struct sandbox_opts so = {.workdir = b->work, .binds = binds, .nbinds = b->base_reused || b->kernel_reused ? 2 : 1, .id_base = cfg->sandbox_id_base,
                              .env = build_tool_env(b, true), .hostname = "debate-build", .payload = stages_payload,
                              .arg = b, .on_output = proto_host_output, .output_arg = b, .collect = offline_collect,
                              .collect_arg = b, .cancel = b->o->interrupted};
    sandbox_limits_from_config(cfg, &so.limits);
    if (b->o->timeout_s != 0)
        so.limits.wall_s = b->o->timeout_s;
    char desc[768];
    sandbox_describe(&so, desc, sizeof(desc));
    build_progress(b, STAGE_ROOTFS, 0, "%s", desc);
    struct sandbox_result sr;
    char serr[1024];
    if (sandbox_run(&so, &sr, serr, sizeof(serr)) < 0)
        return build_fail(b, ENGINE_E_FAILED, "the build's sandbox could not be set up: %s", serr);
    proto_host_finish(b);
    res->memory_peak_bytes = sr.memory_peak_bytes;
    res->disk_peak_bytes = sr.disk_peak_bytes;
    const char *why = b->error ? b->error : "the build stopped";
    switch (sr.cause) {
    case SANDBOX_OK:
        snprintf(res->squashfs_sha256, sizeof(res->squashfs_sha256), "%.64s", sr.collected);
        return 0;
    case SANDBOX_CANCELLED:
        return build_fail(b, ENGINE_E_INTERRUPTED, "interrupted: the build stopped and nothing was written to \"%s\"",
                          b->o->output);
    case SANDBOX_EXITED: /* the stages failed and said why (E line) */
        return build_fail(b, b->error ? b->cause : ENGINE_E_FAILED, "%s", why);
    case SANDBOX_COLLECT: /* offline_collect left its cause in collected */
        return build_fail(b, atoi(sr.collected) == ENGINE_E_DISK_FULL ? ENGINE_E_DISK_FULL : ENGINE_E_FAILED,
                          "cannot read the build's results back: %s", sr.message);
    default: {
        /* a limit, or a signal no limit explains */
        enum engine_error cause = sr.cause == SANDBOX_SIGNALED ? ENGINE_E_FAILED : ENGINE_E_LIMIT;
        if (b->error != NULL)
            return build_fail(b, cause, "%s: %s", sr.message, b->error);
        /* killed from outside: the host's record of the log says where */
        return build_fail(b, cause, "%s during %s; its last output:\n%s", sr.message, b->last_step[0] ? b->last_step : "the build",
                    b->log_tail);
    }
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
    if (!build_is_live(b) && b->busybox_pkg == NULL)
        return build_fail(b, ENGINE_E_FAILED, "packages: the busybox variant needs busybox-static");
    return 0;
}

static int epoch_from_lock(struct build *b)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(b->lock.date, "%a, %d %b %Y %H:%M:%S UTC", &tm);
    if (end == NULL)
        return build_fail(b, ENGINE_E_FAILED, "cannot read the release date \"%s\"", b->lock.date);
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

static int write_manifest(struct build *b, const struct engine_result *res, const char *path)
{
    json_error_t je;
    json_t *recipe = json_loads(b->r->canonical, 0, &je);
    json_t *lock = json_loads(b->lock.json, 0, &je);
    json_t *tools = json_object();
    _cleanup_free_ char *versions = xstrdup(b->tools);
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
    /* Where the security fixes came from, when they did (it is in the lock too, with every suite). */
    const struct lock_suite *security = lock_security_suite(&b->lock);
    if (security != NULL)
        json_object_set_new(doc, "security_mirror", json_string(security->mirror));
    /* The verdict describes this build's check, not the image: the ISO's bytes do not depend on it. */
    if (res->boot.checked)
        json_object_set_new(doc, "boot_check", bootcheck_json(&res->boot));
    /* What the build's sandbox used at most (memory counts the page cache of what it wrote). */
    json_object_set_new(doc, "resources",
                        json_pack("{s:I, s:I}", "memory_peak_bytes", (json_int_t)res->memory_peak_bytes,
                                  "disk_peak_bytes", (json_int_t)res->disk_peak_bytes));
    /* How this build got its tree: the bytes are the same either way. */
    if (b->layer_key != NULL)
        json_object_set_new(doc, "base_layer",
                            json_pack("{s:s, s:b}", "key", b->layer_key, "reused", (int)b->base_reused));
    if (b->kernel_key != NULL)
        json_object_set_new(doc, "kernel_layer",
                            json_pack("{s:s, s:b}", "key", b->kernel_key, "reused", (int)b->kernel_reused));
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(doc);
    _cleanup_free_ char *with_nl = xasprintf("%s\n", text);
    free(text);
    return build_write_text(b, path, with_nl, 0644);
}

static int file_sha256(struct build *b, const char *path, char out[65], long long *size)
{
    int rc = sha256_file(path, out, size);
    if (rc < 0)
        return build_fail(b, ENGINE_E_FAILED, "cannot read \"%s\": %s", path, strerror(-rc));
    return 0;
}

static void remove_tree(const char *path)
{
    const char *argv[] = {"/bin/rm", "-rf", "--one-file-system", path, NULL};
    struct proc_opts o = {0};
    char err[128];
    proc_run(argv, &o, err, sizeof(err));
}

/*
 * OUTPUT.boot.log: the console of this build's boot check, or no such file
 * (an older one beside the output would speak of another build).
 */
static int publish_boot_log(struct build *b, const struct engine_result *res)
{
    _cleanup_free_ char *log = xasprintf("%s.boot.log", b->output);
    _cleanup_free_ char *log_tmp = xasprintf("%s/boot.log", b->out_dir);
    if (!res->boot.checked) {
        unlink(log);
        return 0;
    }
    int rc = file_publish(log_tmp, log);
    if (rc < 0)
        return build_fail(b, engine_errno_cause(-rc), "cannot write \"%s\": %s", log, strerror(-rc));
    return 0;
}

static int finish(struct build *b, struct engine_result *res)
{
    _cleanup_free_ char *iso = xasprintf("%s/image.iso", b->out_dir);
    if (file_sha256(b, iso, res->iso_sha256, &res->iso_size) < 0)
        return -1;
    _cleanup_free_ char *manifest = xasprintf("%s.manifest.json", b->output);
    _cleanup_free_ char *manifest_tmp = xasprintf("%s/manifest.json", b->out_dir);
    if (write_manifest(b, res, manifest_tmp) < 0)
        return -1;
    /* The ISO appears at its path whole or not at all, and never without its manifest. */
    int rc = file_publish(iso, b->output);
    if (rc < 0)
        return build_fail(b, engine_errno_cause(-rc), "cannot move the ISO to \"%s\": %s", b->output, strerror(-rc));
    if ((rc = file_publish(manifest_tmp, manifest)) < 0) {
        unlink(b->output);
        return build_fail(b, engine_errno_cause(-rc), "cannot write \"%s\": %s", manifest, strerror(-rc));
    }
    return publish_boot_log(b, res);
}

/*
 * The output as an absolute path (b->output): the sandbox's supervisor
 * changes directory before it reads the results back, so a path relative
 * to where the command started would lead elsewhere by then. Checked
 * before anything is downloaded: the output's directory must exist.
 */
static int absolute_output(struct build *b)
{
    const char *output = b->o->output;
    _cleanup_free_ char *dir_copy = xstrdup(output), *base_copy = xstrdup(output);
    const char *dir = dirname(dir_copy), *base = basename(base_copy);
    size_t len = strlen(output);
    if (len == 0 || output[len - 1] == '/' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return build_fail(b, ENGINE_E_FAILED, "the output \"%s\" is a directory, not the ISO's file name", output);
    _cleanup_free_ char *real = realpath(dir, NULL);
    if (real == NULL && errno == ENOENT)
        return build_fail(b, ENGINE_E_FAILED, "the output's directory \"%s\" does not exist", dir);
    if (real == NULL)
        return build_fail(b, ENGINE_E_FAILED, "cannot use the output's directory \"%s\": %s", dir, strerror(errno));
    struct stat st;
    if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode))
        return build_fail(b, ENGINE_E_FAILED, "the output's directory \"%s\" is not a directory", dir);
    b->output = xasprintf("%s/%s", strcmp(real, "/") == 0 ? "" : real, base);
    if (stat(b->output, &st) == 0 && S_ISDIR(st.st_mode))
        return build_fail(b, ENGINE_E_FAILED, "the output \"%s\" is a directory, not the ISO's file name", output);
    return 0;
}

/*
 * After a step on the host (resolving, fetching): a signal or a cancel
 * that came meanwhile stops the build here, and is the cause whatever the
 * step reported (apt dies of the same Ctrl-C); else the step's own cause,
 * whose message is already in b->err.
 */
static int host_step(struct build *b, enum engine_error cause, const char *step)
{
    if (b->o->interrupted != NULL && *b->o->interrupted)
        return build_fail(b, ENGINE_E_INTERRUPTED,
                          "interrupted: the build stopped while %s and nothing was written to \"%s\"", step,
                          b->o->output);
    b->cause = cause;
    return cause == ENGINE_OK ? 0 : -1;
}

/* The lock: read from o->lock_path (relative to the caller's directory, read before anything else), or resolved. */
static int obtain_lock(struct build *b)
{
    const struct engine_opts *o = b->o;
    if (o->lock_path == NULL) {
        _cleanup_free_ char *host_mirror = resolve_default_mirror();
        _cleanup_free_ char *host_security = resolve_default_security_mirror();
        struct resolve_mirrors m = {
            .mirror = o->mirror ? o->mirror : o->cfg->mirror[0] ? o->cfg->mirror : host_mirror,
            .security_mirror = o->security_mirror        ? o->security_mirror
                               : o->cfg->security_mirror[0] ? o->cfg->security_mirror
                                                            : host_security,
            .keyring = o->cfg->archive_keyring,
        };
        build_progress(b, STAGE_RESOLVING, 0, "resolving %zu packages against %s%s%s", b->r->npackages, m.mirror,
                       b->r->security ? " and " : "", b->r->security ? m.security_mirror : "");
        return host_step(b, resolve_lock(b->r, &m, o->cfg->cache_dir, &b->lock, b->err, b->errlen), "resolving");
    }
    _cleanup_free_ char *text = NULL;
    size_t len;
    int rc = read_file(o->lock_path, 64u << 20, &text, &len);
    if (rc < 0)
        return build_fail(b, ENGINE_E_FAILED, "cannot read the lock \"%s\": %s", o->lock_path, strerror(-rc));
    if (lock_parse(text, len, b->r, &b->lock, b->err, b->errlen) < 0)
        return host_step(b, ENGINE_E_INVALID_LOCK, "resolving");
    build_progress(b, STAGE_RESOLVING, 100, "using the lock \"%s\"", o->lock_path);
    return 0;
}

static int fetch_packages(struct build *b, struct engine_result *res)
{
    build_progress(b, STAGE_FETCHING, 0, "%zu packages in the lock (%.12s)", b->lock.npkgs, b->lock.hash);
    snprintf(res->lock_hash, sizeof(res->lock_hash), "%s", b->lock.hash);
    if (host_step(b, resolve_fetch(&b->lock, b->o->cfg->cache_dir, &res->fetched, b->err, b->errlen), "fetching") < 0)
        return -1;
    build_progress(b, STAGE_FETCHING, 100, "%d packages downloaded", res->fetched);
    if (find_packages(b) < 0 || epoch_from_lock(b) < 0)
        return -1;
    res->source_date_epoch = b->epoch;
    return 0;
}

/*
 * The layers: their keys, and the cached ones put in the work directory
 * (WORK/base, read-only inside) when there are some to reuse and the build
 * is not asked to be cold; otherwise the stages make them for the cache.
 */
static int prepare_layers(struct build *b, struct engine_result *res)
{
    b->tools = engine_tool_versions(b->out_dir);
    /* Without the tools' versions a key could not tell two hosts' trees apart: no layers then. */
    if (b->o->cfg->base_cache_mb == 0 || b->tools[0] == '\0')
        return 0;
    b->base_dir = xasprintf("%s/base", b->work);
    b->layer_key = layers_key(b, b->tools);
    snprintf(res->base_layer, sizeof(res->base_layer), "%s", b->layer_key);
    int rc = b->o->cold ? 0 : layers_take(b, &layer_base, b->layer_key, b->base_dir);
    if (rc < 0)
        return -1;
    b->base_reused = res->base_reused = rc == 1;
    b->base_save = !b->base_reused && !layers_have(b, &layer_base, b->layer_key); /* a cold build may find one */
    if (build_is_live(b) || b->kernel_pkg == NULL)
        return 0; /* the tree holds a live image's kernel; a recipe without one fails in the kernel stage */
    b->kernel_key = layers_kernel_key(b, b->tools);
    rc = b->o->cold ? 0 : layers_take(b, &layer_kernel, b->kernel_key, b->base_dir);
    if (rc < 0)
        return -1;
    b->kernel_reused = rc == 1;
    b->kernel_save = !b->kernel_reused && !layers_have(b, &layer_kernel, b->kernel_key);
    return 0;
}

/* The layers this build made, kept for later builds; then the cache within its budget, these staying. */
static void keep_layers(struct build *b)
{
    _cleanup_free_ char *base = xasprintf("%s/base", b->out_dir), *kernel = xasprintf("%s/kernel", b->out_dir);
    if (b->base_save)
        layers_keep(b, &layer_base, b->layer_key, base);
    if (b->kernel_save)
        layers_keep(b, &layer_kernel, b->kernel_key, kernel);
    if (b->base_save || b->kernel_save) {
        const char *keep[] = {b->layer_key, b->kernel_key, NULL};
        layers_collect(b, keep);
    }
}

/* The work directory beside the output (the same file system: the ISO is renamed into place). */
static int make_work_dir(struct build *b)
{
    _cleanup_free_ char *out_copy = xstrdup(b->output);
    /* Unique: several builds (worker threads) may share an output directory. */
    char *work = xasprintf("%s/.debate-build-XXXXXX", dirname(out_copy));
    if (mkdtemp(work) == NULL) {
        int saved = errno;
        build_fail(b, engine_errno_cause(saved), "cannot create the work directory \"%s\": %s", work, strerror(saved));
        free(work);
        return -1;
    }
    b->work = work;
    b->mirror_dir = xasprintf("%s/mirror", b->work);
    b->out_dir = xasprintf("%s/out", b->work);
    if (mkdir(b->mirror_dir, 0755) < 0 || mkdir(b->out_dir, 0755) < 0)
        return build_fail(b, engine_errno_cause(errno), "cannot create the work directory \"%s\": %s", b->work,
                          strerror(errno));
    return 0;
}

enum engine_error engine_build(const struct recipe *r, const struct engine_opts *o, struct engine_result *res,
                               char *err, size_t errlen)
{
    struct build b = {.r = r, .o = o, .err = err, .errlen = errlen, .progress_fd = -1, .cause = ENGINE_E_FAILED};
    memset(res, 0, sizeof(*res));
    make_label(&b);
    if (absolute_output(&b) < 0 || obtain_lock(&b) < 0 || fetch_packages(&b, res) < 0 || make_work_dir(&b) < 0 ||
        prepare_layers(&b, res) < 0)
        goto out;
    build_progress(&b, STAGE_ROOTFS, 0, "local mirror of the lock");
    if (make_mirror(&b) < 0 || run_offline(&b, res) < 0 || (o->boot_check && bootcheck_run(&b, res) < 0) ||
        finish(&b, res) < 0)
        goto out;
    keep_layers(&b);
    build_progress(&b, STAGE_DONE, 100, "%s sha256 %s", o->output, res->iso_sha256);
    b.cause = ENGINE_OK;
out:
    if (b.work != NULL)
        remove_tree(b.work);
    free(b.work);
    free(b.mirror_dir);
    free(b.out_dir);
    free(b.output);
    free(b.tools);
    free(b.layer_key);
    free(b.kernel_key);
    free(b.base_dir);
    free(b.line);
    free(b.error);
    lock_release(&b.lock);
    return b.cause;
}
