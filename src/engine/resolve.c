#include "engine/resolve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "proc.h"
#include "digest.h"
#include "util.h"
#include "banned.h"

/*
 * A private apt: its own configuration, state, lists and binary caches,
 * under dir = CACHE/apt/<key>, one directory a source set (the key hashes
 * the sources and apt's settings). The directory outlives the resolution so
 * that the next one revalidates the lists with the mirror instead of
 * fetching them and building apt's caches from nothing. lock_fd holds an
 * exclusive flock on CACHE/apt/<key>.lock from apt_init to apt_release:
 * apt's own locks are off (Debug::NoLocking), and two resolvers of the same
 * sources (worker threads, processes) take turns.
 */
struct apt {
    char *dir, *conf;
    int lock_fd;
    bool kept; /* lists from an earlier resolution, to revalidate */
};

/*
 * Present while apt-get update runs, and left behind when it failed or
 * was killed: lists of a suite may then belong to another InRelease than
 * the one beside them, so the next resolution starts from nothing.
 */
#define APT_UPDATING "state/updating"
/* The InRelease hashes apt's binary caches were built from (see apt_check_caches). */
#define APT_BUILT_FROM "cache/built-from"

static void apt_release(struct apt *a)
{
    if (a->lock_fd >= 0)
        close(a->lock_fd); /* releases the flock */
    free(a->dir);
    free(a->conf);
}

/* apt's settings, the same for every directory: part of the directory's key. */
static char *apt_settings(const char *arch)
{
    return xasprintf("APT::Architecture \"%1$s\";\n"
                     "APT::Architectures { \"%1$s\"; };\n"
                     "APT::Install-Recommends \"false\";\n"
                     "APT::Sandbox::User \"root\";\n"
                     "Acquire::Languages \"none\";\n"
                     "Acquire::AllowInsecureRepositories \"false\";\n"
                     "Acquire::IndexTargets::deb::Packages::KeepCompressed \"false\";\n"
                     "Acquire::CompressionTypes::Order { \"xz\"; };\n"
                     "Acquire::Retries \"2\";\n"
                     "Acquire::http::Timeout \"20\";\n"
                     "Debug::NoLocking \"true\";\n",
                     arch);
}

/* The whole apt.conf: every Dir:: below dir (absolute: apt reads relative ones against Dir), then settings. */
static char *apt_conf_text(const char *dir, const char *settings)
{
    return xasprintf("Dir \"%1$s/\";\n"
                     "Dir::State \"%1$s/state/\";\n"
                     "Dir::State::status \"%1$s/state/status\";\n"
                     "Dir::Cache \"%1$s/cache/\";\n"
                     "Dir::Etc \"%1$s/etc/\";\n"
                     "Dir::Etc::SourceList \"%1$s/etc/sources.list\";\n"
                     "Dir::Etc::SourceParts \"%1$s/etc/sources.list.d/\";\n"
                     "Dir::Etc::Parts \"%1$s/etc/apt.conf.d/\";\n"
                     "Dir::Etc::Preferences \"%1$s/etc/preferences\";\n"
                     "Dir::Etc::PreferencesParts \"%1$s/etc/preferences.d/\";\n"
                     "Dir::Etc::Trusted \"%1$s/etc/trusted.gpg\";\n"
                     "Dir::Etc::TrustedParts \"%1$s/etc/trusted.gpg.d/\";\n"
                     "Dir::Log \"%1$s/log/\";\n"
                     "%2$s",
                     dir, settings);
}

/* Waits for the exclusive flock on path (created when missing): the fd, or -errno. */
static int lock_wait(const char *path)
{
    _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    int rc;
    while ((rc = flock(fd, LOCK_EX)) < 0 && errno == EINTR)
        ;
    return rc < 0 ? -errno : steal_fd(&fd);
}

/*
 * Writes text to path unless it holds it already: apt takes a sources.list
 * newer than its caches as a reason to rebuild them, so an unchanged file
 * keeps its time. 0 or -errno.
 */
static int write_if_changed(const char *path, const char *text)
{
    _cleanup_free_ char *old = NULL;
    size_t len;
    if (read_file(path, 1 << 20, &old, &len) == 0 && len == strlen(text) && memcmp(old, text, len) == 0)
        return 0;
    return write_file_atomic(path, text, strlen(text), 0600);
}

static enum engine_error apt_mkdirs(struct apt *a, char *err, size_t errlen)
{
    const char *subdirs[] = {"etc/apt.conf.d", "etc/sources.list.d", "etc/preferences.d", "etc/trusted.gpg.d",
                             "state/lists/partial", "cache/archives/partial", "log"};
    for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", a->dir, subdirs[i]);
        int rc = mkdir_p(p, 0700);
        if (rc < 0) {
            snprintf(err, errlen, "cannot create \"%s\": %s", p, strerror(-rc));
            return engine_errno_cause(-rc);
        }
    }
    return ENGINE_OK;
}

/* Forgets the lists and apt's caches built from them: the next update starts from nothing. */
static enum engine_error apt_wipe(struct apt *a, char *err, size_t errlen)
{
    _cleanup_free_ char *lists = xasprintf("%s/state/lists", a->dir);
    _cleanup_free_ char *caches = xasprintf("%s/cache", a->dir);
    const char *argv[] = {"/bin/rm", "-rf", "--one-file-system", lists, caches, NULL};
    struct proc_opts o = {0};
    if (proc_run(argv, &o, err, errlen) != 0) {
        snprintf(err, errlen, "cannot remove apt's lists in \"%s\": %s", a->dir, o.tail);
        return ENGINE_E_FAILED;
    }
    a->kept = false;
    return apt_mkdirs(a, err, errlen);
}

/* Whether the lists hold any release file: what an earlier update kept. */
static bool apt_has_lists(struct apt *a)
{
    _cleanup_free_ char *lists = xasprintf("%s/state/lists", a->dir);
    static const char tail[] = "_InRelease";
    DIR *d = opendir(lists);
    bool found = false;
    struct dirent *e;
    while (d != NULL && !found && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        found = n > strlen(tail) && strcmp(e->d_name + n - strlen(tail), tail) == 0;
    }
    if (d != NULL)
        closedir(d);
    return found;
}

/* Locks and opens CACHE/apt/<key>: the lists of an update that did not finish are dropped. */
static enum engine_error apt_open(struct apt *a, const char *base, const char *key, char *err, size_t errlen)
{
    _cleanup_free_ char *lock = xasprintf("%s/%s.lock", base, key);
    _cleanup_free_ char *dir = xasprintf("%s/%s", base, key);
    a->lock_fd = lock_wait(lock);
    if (a->lock_fd < 0) {
        snprintf(err, errlen, "cannot lock \"%s\": %s", lock, strerror(-a->lock_fd));
        return engine_errno_cause(-a->lock_fd);
    }
    int rc = mkdir_p(dir, 0700);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create \"%s\": %s", dir, strerror(-rc));
        return engine_errno_cause(-rc);
    }
    a->dir = realpath(dir, NULL);
    if (a->dir == NULL) {
        snprintf(err, errlen, "cannot resolve \"%s\": %s", dir, strerror(errno));
        return ENGINE_E_FAILED;
    }
    _cleanup_free_ char *updating = xasprintf("%s/%s", a->dir, APT_UPDATING);
    if (access(updating, F_OK) == 0)
        return apt_wipe(a, err, errlen);
    enum engine_error cause = apt_mkdirs(a, err, errlen);
    a->kept = cause == ENGINE_OK && apt_has_lists(a);
    return cause;
}

static enum engine_error apt_init(struct apt *a, const char *cache_dir, const char *src, const char *arch, char *err,
                                  size_t errlen)
{
    memset(a, 0, sizeof(*a));
    a->lock_fd = -1;
    _cleanup_free_ char *base = xasprintf("%s/apt", cache_dir);
    int rc = mkdir_p(base, 0700);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create \"%s\": %s", base, strerror(-rc));
        return engine_errno_cause(-rc);
    }
    _cleanup_free_ char *settings = apt_settings(arch);
    _cleanup_free_ char *keyed = xasprintf("%s%c%s", src, '\0', settings);
    char key[65];
    sha256_hex(keyed, strlen(src) + 1 + strlen(settings), key);
    enum engine_error cause = apt_open(a, base, key, err, errlen);
    if (cause != ENGINE_OK)
        return cause;
    _cleanup_free_ char *status = xasprintf("%s/state/status", a->dir);
    _cleanup_free_ char *sources = xasprintf("%s/etc/sources.list", a->dir);
    _cleanup_free_ char *conf = apt_conf_text(a->dir, settings);
    a->conf = xasprintf("%s/apt.conf", a->dir);
    /* The status stays empty: the closure is computed against an empty system. */
    if ((rc = write_if_changed(status, "")) < 0 || (rc = write_if_changed(sources, src)) < 0 ||
        (rc = write_if_changed(a->conf, conf)) < 0) {
        snprintf(err, errlen, "cannot write apt's configuration in \"%s\": %s", a->dir, strerror(-rc));
        return engine_errno_cause(-rc);
    }
    return ENGINE_OK;
}
/* Runs apt-get (or apt-cache) with the private configuration; output into out (malloc'd) when non-NULL. */
static int apt_run(struct apt *a, const char *const *args, char **out, struct proc_opts *o, char *err, size_t errlen)
{
    _cleanup_free_ char *env_conf = xasprintf("APT_CONFIG=%s", a->conf);
    const char *env[] = {env_conf, "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive", NULL};
    _cleanup_free_ char *out_path = out ? xasprintf("%s/output", a->dir) : NULL;
    o->env = env;
    o->stdout_path = out_path;
    int rc = proc_run(args, o, err, errlen);
    if (out != NULL) {
        size_t len;
        if (read_file(out_path, 64u << 20, out, &len) < 0)
            *out = xstrdup("");
        unlink(out_path); /* the directory outlives the run: no copy of an index left in it */
    }
    return rc;
}

/* The first http(s) URL of the host's apt sources that is (or is not) the security archive's, or NULL. */
static char *host_source(bool security)
{
    const char *files[] = {"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        if (read_file(files[i], 1 << 20, &text, &len) < 0)
            continue;
        for (char *line = text, *next; line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            char *url = NULL;
            if (strncmp(line, "URIs:", 5) == 0)
                url = line + 5;
            else if (strncmp(line, "deb ", 4) == 0)
                url = line + 4;
            if (url == NULL)
                continue;
            while (*url == ' ' || *url == '\t')
                url++;
            if (*url == '[') { /* deb [options] URL */
                char *close = strchr(url, ']');
                url = close ? close + 1 : url;
                while (*url == ' ')
                    url++;
            }
            size_t n = strcspn(url, " \t");
            url[n] = '\0';
            if (n > 7 && strncmp(url, "http", 4) == 0 && (strstr(url, "security") != NULL) == security)
                return xstrdup(url);
        }
    }
    return NULL;
}

char *resolve_default_mirror(void)
{
    char *url = host_source(false);
    return url ? url : xstrdup("http://deb.debian.org/debian");
}

char *resolve_default_security_mirror(void)
{
    char *url = host_source(true);
    return url ? url : xstrdup("http://deb.debian.org/debian-security");
}

/*
 * Why apt failed to fetch, from what it printed: apt is the only witness
 * and says it in words of its own (these are apt's, not debate's). The
 * first rule that matches wins; *why is the start of debate's message.
 */
static enum engine_error apt_failure(const char *output, const char *otherwise, const char **why)
{
    static const char sig[] = "the signature of the mirror's index is not valid";
    static const char unreachable[] = "the mirror is unreachable";
    static const struct {
        const char *needle;
        enum engine_error cause;
        const char *why;
    } rules[] = {
        {"No space left on device", ENGINE_E_DISK_FULL, "the disk is full"},
        {"NO_PUBKEY", ENGINE_E_SIGNATURE, sig},
        {"BADSIG", ENGINE_E_SIGNATURE, sig},
        {"signatures were invalid", ENGINE_E_SIGNATURE, sig},
        {"not signed", ENGINE_E_SIGNATURE, sig},
        {"Hash Sum mismatch", ENGINE_E_MIRROR, "a download did not match its checksum"},
        {"Could not resolve", ENGINE_E_MIRROR, unreachable},
        {"Failed to fetch", ENGINE_E_MIRROR, unreachable},
        {"Could not connect", ENGINE_E_MIRROR, unreachable},
        {"Connection", ENGINE_E_MIRROR, unreachable},
        {"timed out", ENGINE_E_MIRROR, unreachable},
    };
    for (size_t i = 0; i < ARRAY_SIZE(rules); i++) {
        if (strstr(output, rules[i].needle) != NULL) {
            *why = rules[i].why;
            return rules[i].cause;
        }
    }
    *why = otherwise;
    return ENGINE_E_FAILED;
}

/*
 * The name of the file in which apt keeps suite's release file
 * ("deb.debian.org_debian_dists_trixie-updates_InRelease"): 0 with name
 * filled, or -1 when it kept none. Suite names differ from one another, so
 * the end of the name is enough whatever apt made of the mirror's URL.
 */
static int find_inrelease(struct apt *a, const char *suite, char *name, size_t namelen)
{
    _cleanup_free_ char *lists = xasprintf("%s/state/lists", a->dir);
    _cleanup_free_ char *tail = xasprintf("_dists_%s_InRelease", suite);
    size_t tl = strlen(tail);
    DIR *d = opendir(lists);
    int rc = -1;
    struct dirent *e;
    while (d != NULL && rc < 0 && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > tl && strcmp(e->d_name + n - tl, tail) == 0 && strlen(e->d_name) < namelen) {
            snprintf(name, namelen, "%s", e->d_name);
            rc = 0;
        }
    }
    if (d != NULL)
        closedir(d);
    return rc;
}

/* The first suite of l whose release file apt did not keep, or NULL when it kept them all. */
static const struct lock_suite *missing_suite(struct apt *a, const struct lock *l)
{
    for (size_t i = 0; i < l->nsuites; i++) {
        char name[256];
        if (find_inrelease(a, l->suites[i].name, name, sizeof(name)) < 0)
            return &l->suites[i];
    }
    return NULL;
}

/* apt-get update from nothing: every suite's InRelease fetched and verified, or the first that is not named. */
static enum engine_error apt_fetch_lists(struct apt *a, const struct lock *l, char *err, size_t errlen)
{
    const char *args[] = {"/usr/bin/apt-get", "-q", "-o", "pkgCacheFile::Generate=false", "update", NULL};
    struct proc_opts o = {0};
    _cleanup_free_ char *out = NULL;
    int rc = apt_run(a, args, &out, &o, err, errlen);
    /* apt-get update exits 0 when a fetch fails ("W: Failed to fetch"): check what it kept. */
    const struct lock_suite *missing = missing_suite(a, l);
    if (rc == 0 && missing == NULL && strstr(o.tail, "E: ") == NULL)
        return ENGINE_OK;
    if (missing == NULL)
        missing = &l->suites[0];
    _cleanup_free_ char *all = xasprintf("%s\n%s", out, o.tail);
    const char *why;
    enum engine_error cause = apt_failure(all, "apt-get update failed", &why);
    size_t tl = strlen(o.tail);
    snprintf(err, errlen, "%s (%s %s): %s", why, missing->mirror, missing->name,
             tl > 400 ? o.tail + tl - 400 : o.tail);
    return cause;
}

/*
 * apt-get update over the lists of an earlier resolution: apt asks the
 * mirror for what changed and fetches only that. When a fetch fails apt
 * keeps the suite's old lists and carries on ("old ones used instead"),
 * so the lists prove nothing then: --error-on=any makes any failure an
 * exit status, and whether it succeeded is all this says; a failure costs
 * an update from nothing, which retries (so this does not). It does not
 * build apt's caches (pkgCacheFile::Generate): apt-get update would
 * remove and rebuild them every time, the first apt-cache rebuilds them
 * only when the lists changed.
 */
static bool apt_revalidate(struct apt *a, const struct lock *l)
{
    const char *args[] = {"/usr/bin/apt-get", "-q", "--error-on=any", "-o", "pkgCacheFile::Generate=false",
                          "-o", "Acquire::Retries=0", "update", NULL};
    struct proc_opts o = {0};
    char ignored[256];
    int rc = apt_run(a, args, NULL, &o, ignored, sizeof(ignored));
    return rc == 0 && missing_suite(a, l) == NULL && strstr(o.tail, "E: ") == NULL;
}

/*
 * Every suite's InRelease fetched and verified. Kept lists are revalidated;
 * when that fails in any way, they are dropped and fetched from nothing, so
 * that the failure is found and named exactly as for a first resolution and
 * an old list is never used. The APT_UPDATING mark covers an update that
 * does not return (a kill): the next apt_open drops the lists.
 */
static enum engine_error apt_update(struct apt *a, const struct lock *l, char *err, size_t errlen)
{
    _cleanup_free_ char *updating = xasprintf("%s/%s", a->dir, APT_UPDATING);
    int rc = write_file_atomic(updating, "", 0, 0600);
    if (rc < 0) {
        snprintf(err, errlen, "cannot write \"%s\": %s", updating, strerror(-rc));
        return engine_errno_cause(-rc);
    }
    enum engine_error cause = ENGINE_OK;
    if (!a->kept || !apt_revalidate(a, l)) {
        cause = a->kept ? apt_wipe(a, err, errlen) : ENGINE_OK;
        cause = cause ?: apt_fetch_lists(a, l, err, errlen);
    }
    if (cause == ENGINE_OK)
        unlink(updating);
    return cause;
}

/*
 * apt decides whether its binary caches still match the lists by each
 * list's size and time, which a suite republished within the second may
 * share with the one before. The caches are dropped whenever the suites'
 * InRelease files are not those they were built from (read_inreleases
 * filled the hashes), so the next apt-cache builds them from these lists.
 */
static enum engine_error apt_check_caches(struct apt *a, const struct lock *l, char *err, size_t errlen)
{
    _cleanup_free_ char *want = xstrdup("");
    for (size_t i = 0; i < l->nsuites; i++) {
        char *longer = xasprintf("%s%s\n", want, l->suites[i].inrelease_sha256);
        free(want);
        want = longer;
    }
    _cleanup_free_ char *path = xasprintf("%s/%s", a->dir, APT_BUILT_FROM);
    _cleanup_free_ char *have = NULL;
    size_t len;
    if (read_file(path, 1 << 16, &have, &len) == 0 && strcmp(have, want) == 0)
        return ENGINE_OK;
    const char *bins[] = {"pkgcache.bin", "srcpkgcache.bin"};
    for (size_t i = 0; i < ARRAY_SIZE(bins); i++) {
        _cleanup_free_ char *bin = xasprintf("%s/cache/%s", a->dir, bins[i]);
        if (unlink(bin) < 0 && errno != ENOENT) {
            int saved = errno;
            snprintf(err, errlen, "cannot remove \"%s\": %s", bin, strerror(saved));
            return engine_errno_cause(saved);
        }
    }
    int rc = write_file_atomic(path, want, strlen(want), 0600);
    if (rc < 0) {
        snprintf(err, errlen, "cannot write \"%s\": %s", path, strerror(-rc));
        return engine_errno_cause(-rc);
    }
    return ENGINE_OK;
}

/*
 * Names of the packages a minbase root starts from: Essential or of
 * Priority required, from the index apt just fetched.
 */
static enum engine_error essential_packages(struct apt *a, char ***out_names, size_t *n, char *err, size_t errlen)
{
    const char *args[] = {"/usr/bin/apt-cache", "dumpavail", NULL};
    struct proc_opts o = {0};
    _cleanup_free_ char *out = NULL;
    *n = 0;
    *out_names = NULL;
    int rc = apt_run(a, args, &out, &o, err, errlen);
    if (rc != 0) {
        if (rc > 0)
            snprintf(err, errlen, "apt-cache dumpavail failed: %s", o.tail);
        return ENGINE_E_FAILED;
    }
    char **names = NULL;
    char *pkg = NULL;
    for (char *line = out, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, "Package: ", 9) == 0)
            pkg = line + 9;
        else if ((strcmp(line, "Essential: yes") == 0 || strcmp(line, "Priority: required") == 0) && pkg != NULL) {
            names = xrealloc(names, (*n + 1) * sizeof(*names));
            names[(*n)++] = xstrdup(pkg);
            pkg = NULL; /* once per stanza */
        }
    }
    *out_names = names;
    return ENGINE_OK;
}

static char *url_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            out[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static int cmp_pkg(const void *a, const void *b)
{
    return strcmp(((const struct lock_pkg *)a)->name, ((const struct lock_pkg *)b)->name);
}

/* Whether uri is below mirror. apt writes a file:///dir mirror's URIs as file:/dir/...: both are read as /dir. */
static bool below(const char *uri, size_t urilen, const char *mirror)
{
    if (strncmp(mirror, "file://", 7) == 0 && strncmp(uri, "file:/", 6) == 0 && strncmp(uri, "file://", 7) != 0) {
        mirror += 7;
        uri += 5;
        urilen -= 5;
    }
    size_t mlen = strlen(mirror);
    return urilen > mlen + 1 && strncmp(uri, mirror, mlen) == 0 && uri[mlen] == '/';
}

/* 'URI' name_version_arch.deb SIZE HASH: the closure; hashes come from the index. */
static int parse_uri_line(const char *line, const struct lock *l, struct lock_pkg *p)
{
    memset(p, 0, sizeof(*p));
    if (line[0] != '\'')
        return -1;
    const char *uri_end = strchr(line + 1, '\'');
    if (uri_end == NULL)
        return -1;
    const char *uri = line + 1;
    bool known = false;
    for (size_t i = 0; i < l->nsuites && !known; i++)
        known = below(uri, (size_t)(uri_end - uri), l->suites[i].mirror);
    if (!known)
        return -1;
    char file[512];
    long long size;
    if (sscanf(uri_end + 1, " %511s %lld", file, &size) != 2)
        return -1;
    p->size = size;
    /* name_version_arch.deb */
    char *u1 = strchr(file, '_'), *u2 = u1 ? strchr(u1 + 1, '_') : NULL, *dot = strrchr(file, '.');
    if (u1 == NULL || u2 == NULL || dot == NULL || dot < u2)
        return -1;
    p->name = xstrndup(file, (size_t)(u1 - file));
    p->version = url_decode(u1 + 1, (size_t)(u2 - u1 - 1));
    p->arch = xstrndup(u2 + 1, (size_t)(dot - u2 - 1));
    return 0;
}

/*
 * Fills sha256, size and filename of every package from the signed index
 * (apt-cache show). A name=version names one version whatever
 * --no-all-versions says, and without it apt-cache does not work out every
 * package's candidate first (its dependency cache, most of its time).
 */
static enum engine_error index_metadata(struct apt *a, struct lock *l, char *err, size_t errlen)
{
    const char **args = xcalloc(l->npkgs + 3, sizeof(*args));
    char **specs = xcalloc(l->npkgs + 1, sizeof(*specs));
    size_t argc = 0;
    args[argc++] = "/usr/bin/apt-cache";
    args[argc++] = "show";
    for (size_t i = 0; i < l->npkgs; i++) {
        specs[i] = xasprintf("%s=%s", l->pkgs[i].name, l->pkgs[i].version);
        args[argc++] = specs[i];
    }
    struct proc_opts o = {0};
    _cleanup_free_ char *out = NULL;
    int rc = apt_run(a, args, &out, &o, err, errlen);
    for (size_t i = 0; i < l->npkgs; i++)
        free(specs[i]);
    free(specs);
    free(args);
    if (rc != 0) {
        snprintf(err, errlen, "apt-cache show failed: %s", o.tail);
        return ENGINE_E_FAILED;
    }
    struct lock_pkg *cur = NULL;
    for (char *line = out, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, "Package: ", 9) == 0) {
            struct lock_pkg key = {.name = line + 9};
            cur = bsearch(&key, l->pkgs, l->npkgs, sizeof(*l->pkgs), cmp_pkg);
        } else if (cur != NULL && strncmp(line, "SHA256: ", 8) == 0 && strlen(line + 8) == 64) {
            memcpy(cur->sha256, line + 8, 65);
        } else if (cur != NULL && strncmp(line, "Size: ", 6) == 0) {
            cur->size = atoll(line + 6);
        } else if (cur != NULL && strncmp(line, "Filename: ", 10) == 0) {
            free(cur->filename);
            cur->filename = xstrdup(line + 10);
        }
    }
    for (size_t i = 0; i < l->npkgs; i++) {
        if (l->pkgs[i].sha256[0] == '\0' || l->pkgs[i].filename == NULL) {
            snprintf(err, errlen, "the index has no SHA-256 for \"%s\" %s", l->pkgs[i].name, l->pkgs[i].version);
            return ENGINE_E_FAILED;
        }
    }
    return ENGINE_OK;
}

static void lock_pkg_release(struct lock_pkg *p)
{
    free(p->name);
    free(p->version);
    free(p->arch);
    free(p->filename);
    free(p->suite);
    free(p->component);
}

static size_t suite_rank(const struct lock *l, const char *name)
{
    size_t i = 0;
    while (i < l->nsuites && strcmp(l->suites[i].name, name) != 0)
        i++;
    return i;
}

/*
 * Which suite and component each package of the closure came from, by
 * apt's own account (apt-cache madison: "name | version | URL
 * SUITE/COMPONENT arch Packages"). A version that several suites carry is
 * the same file in each; it is counted to the first of them (the release,
 * then updates, then security).
 */
static enum engine_error package_suites(struct apt *a, struct lock *l, char *err, size_t errlen)
{
    const char **args = xcalloc(l->npkgs + 3, sizeof(*args));
    size_t argc = 0;
    args[argc++] = "/usr/bin/apt-cache";
    args[argc++] = "madison";
    for (size_t i = 0; i < l->npkgs; i++)
        args[argc++] = l->pkgs[i].name;
    struct proc_opts o = {0};
    _cleanup_free_ char *out = NULL;
    int rc = apt_run(a, args, &out, &o, err, errlen);
    free(args);
    if (rc != 0) {
        snprintf(err, errlen, "apt-cache madison failed: %s", o.tail);
        return ENGINE_E_FAILED;
    }
    for (char *line = out, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char name[256], version[256], url[1024], where[256];
        if (sscanf(line, " %255s | %255s | %1023s %255s", name, version, url, where) != 4)
            continue;
        struct lock_pkg key = {.name = name};
        struct lock_pkg *p = bsearch(&key, l->pkgs, l->npkgs, sizeof(*l->pkgs), cmp_pkg);
        char *slash = strchr(where, '/');
        if (p == NULL || slash == NULL || strcmp(p->version, version) != 0)
            continue;
        *slash = '\0';
        size_t rank = suite_rank(l, where);
        if (rank == l->nsuites || (p->suite != NULL && suite_rank(l, p->suite) <= rank))
            continue;
        free(p->suite);
        free(p->component);
        p->suite = xstrdup(where);
        p->component = xstrdup(slash + 1);
    }
    for (size_t i = 0; i < l->npkgs; i++) {
        if (l->pkgs[i].suite == NULL) {
            snprintf(err, errlen, "apt names no suite for \"%s\" %s", l->pkgs[i].name, l->pkgs[i].version);
            return ENGINE_E_FAILED;
        }
    }
    return ENGINE_OK;
}

/*
 * Why apt could not compute the closure, from its words: it names a
 * package it has never heard of ("Unable to locate package x"), or one it
 * knows only as a name other packages mention, which the suites and
 * components resolved from do not carry ("Package 'x' has no installation
 * candidate": a firmware package without non-free-firmware).
 */
static enum engine_error closure_failure(const struct recipe *r, const char *tail, char *err, size_t errlen)
{
    const char *missing = strstr(tail, "Unable to locate package ");
    size_t len = 0;
    if (missing != NULL) {
        missing += strlen("Unable to locate package ");
        len = strcspn(missing, "\n ");
    } else if ((missing = strstr(tail, "E: Package '")) != NULL &&
               strstr(missing, "' has no installation candidate") != NULL) {
        missing += strlen("E: Package '");
        len = strcspn(missing, "'\n");
    }
    if (missing == NULL) {
        snprintf(err, errlen, "cannot resolve the packages: %s", tail);
        return ENGINE_E_FAILED;
    }
    snprintf(err, errlen, "unknown package \"%.*s\" in %s %s", (int)len, missing, r->distribution, r->release);
    return ENGINE_E_UNKNOWN_PACKAGE;
}

static enum engine_error closure(struct apt *a, const struct recipe *r, struct lock *l, char *err, size_t errlen)
{
    size_t nes = 0;
    char **essential = NULL;
    bool live = strcmp(r->variant, "live") == 0;
    enum engine_error cause = live ? essential_packages(a, &essential, &nes, err, errlen) : ENGINE_OK;
    if (cause != ENGINE_OK)
        return cause;
    size_t argc = 0, cap = 8 + nes + r->npackages;
    const char **args = xcalloc(cap, sizeof(*args));
    args[argc++] = "/usr/bin/apt-get";
    args[argc++] = "-qq";
    args[argc++] = "--print-uris";
    args[argc++] = "install";
    if (live)
        args[argc++] = "apt";
    for (size_t i = 0; i < nes; i++)
        args[argc++] = essential[i];
    for (size_t i = 0; i < r->npackages; i++)
        args[argc++] = r->packages[i];
    args[argc] = NULL;
    struct proc_opts o = {0};
    _cleanup_free_ char *out = NULL;
    int rc = apt_run(a, args, &out, &o, err, errlen);
    free(args);
    for (size_t i = 0; i < nes; i++)
        free(essential[i]);
    free(essential);
    if (rc != 0)
        return closure_failure(r, o.tail, err, errlen);
    for (char *line = out, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        struct lock_pkg p;
        if (parse_uri_line(line, l, &p) < 0) {
            lock_pkg_release(&p);
            snprintf(err, errlen, "unexpected line from apt-get: \"%.200s\"", line);
            return ENGINE_E_FAILED;
        }
        l->pkgs = xrealloc(l->pkgs, (l->npkgs + 1) * sizeof(*l->pkgs));
        l->pkgs[l->npkgs++] = p;
    }
    qsort(l->pkgs, l->npkgs, sizeof(*l->pkgs), cmp_pkg);
    cause = index_metadata(a, l, err, errlen);
    return cause ?: package_suites(a, l, err, errlen);
}

/* A release file's Date ("Sat, 21 Nov 2026 09:15:44 UTC") as a time, or -1. */
static time_t release_time(const char *date)
{
    struct tm tm = {0};
    const char *end = strptime(date, "%a, %d %b %Y %H:%M:%S UTC", &tm);
    return end == NULL || *end != '\0' ? (time_t)-1 : timegm(&tm);
}

/* Every suite's saved InRelease: its hash and Date; the lock's date is the newest. */
static enum engine_error read_inreleases(struct apt *a, struct lock *l, char *err, size_t errlen)
{
    time_t newest = -1;
    for (size_t i = 0; i < l->nsuites; i++) {
        struct lock_suite *s = &l->suites[i];
        char name[256];
        _cleanup_free_ char *text = NULL;
        size_t len;
        if (find_inrelease(a, s->name, name, sizeof(name)) < 0) {
            snprintf(err, errlen, "apt kept no InRelease of \"%s\"", s->name);
            return ENGINE_E_FAILED;
        }
        _cleanup_free_ char *path = xasprintf("%s/state/lists/%s", a->dir, name);
        if (read_file(path, 16 << 20, &text, &len) < 0) {
            snprintf(err, errlen, "cannot read \"%s\"", path);
            return ENGINE_E_FAILED;
        }
        sha256_hex(text, len, s->inrelease_sha256);
        const char *date = strstr(text, "\nDate: ");
        s->date = date ? xstrndup(date + 7, strcspn(date + 7, "\n")) : xstrdup("");
        time_t when = release_time(s->date);
        if (i == 0 || when > newest) {
            free(l->date);
            l->date = xstrdup(s->date);
            newest = when;
        }
    }
    return ENGINE_OK;
}

static json_t *string_array(char *const *strs, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(strs[i]));
    return arr;
}

/*
 * Format 1, a format 1 recipe's: the release alone, main, its InRelease at
 * the top level, exactly the text debate wrote before suites existed.
 */
static json_t *lock_doc_v1(const struct lock *l)
{
    json_t *pkgs = json_array();
    for (size_t i = 0; i < l->npkgs; i++) {
        struct lock_pkg *p = &l->pkgs[i];
        json_array_append_new(pkgs, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "name", p->name, "version",
                                              p->version, "architecture", p->arch, "size", (json_int_t)p->size,
                                              "sha256", p->sha256, "filename", p->filename));
    }
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:o}", "format", 1, "mirror", l->mirror, "release", l->release,
                     "architecture", l->arch, "inrelease_sha256", l->suites[0].inrelease_sha256, "date", l->date,
                     "packages", pkgs);
}

static json_t *lock_doc_v2(const struct lock *l)
{
    json_t *pkgs = json_array(), *suites = json_array();
    for (size_t i = 0; i < l->npkgs; i++) {
        struct lock_pkg *p = &l->pkgs[i];
        json_array_append_new(pkgs, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s}", "name", p->name,
                                              "version", p->version, "architecture", p->arch, "size",
                                              (json_int_t)p->size, "sha256", p->sha256, "filename", p->filename,
                                              "suite", p->suite, "component", p->component));
    }
    for (size_t i = 0; i < l->nsuites; i++)
        json_array_append_new(suites, json_pack("{s:s, s:s, s:s, s:s}", "suite", l->suites[i].name, "mirror",
                                                l->suites[i].mirror, "inrelease_sha256",
                                                l->suites[i].inrelease_sha256, "date", l->suites[i].date));
    return json_pack("{s:i, s:s, s:s, s:s, s:o, s:o, s:s, s:o}", "format", 2, "mirror", l->mirror, "release",
                     l->release, "architecture", l->arch, "components",
                     string_array(l->components, l->ncomponents), "suites", suites, "date", l->date, "packages",
                     pkgs);
}

static void lock_to_json(struct lock *l)
{
    json_t *doc = l->format == 1 ? lock_doc_v1(l) : lock_doc_v2(l);
    l->json = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(doc);
    if (l->json == NULL)
        abort();
    sha256_hex(l->json, strlen(l->json), l->hash);
}

const struct lock_suite *lock_suite_find(const struct lock *l, const char *name)
{
    size_t i = suite_rank(l, name);
    return i < l->nsuites ? &l->suites[i] : NULL;
}

const struct lock_suite *lock_security_suite(const struct lock *l)
{
    _cleanup_free_ char *name = xasprintf("%s-security", l->release);
    return lock_suite_find(l, name);
}

int resolve_release_hash(const char *inrelease, const char *path, char out[65])
{
    const char *sec = strstr(inrelease, "\nSHA256:\n");
    if (sec == NULL)
        return -1;
    for (const char *line = sec + 9; *line == ' '; line = strchr(line, '\n') + 1) {
        char hash[80], name[256];
        long long size;
        if (sscanf(line, " %79s %lld %255s", hash, &size, name) == 3 && strcmp(name, path) == 0 &&
            strlen(hash) == 64) {
            memcpy(out, hash, 65);
            return 0;
        }
        if (strchr(line, '\n') == NULL)
            break;
    }
    return -1;
}

/* apt-helper download-file with (uri, target, SHA256:hash) triples; apt checks every hash. */
static enum engine_error download(const char *const *triples, size_t n, char *err, size_t errlen)
{
    const char **argv = xcalloc(n + 6, sizeof(*argv));
    size_t argc = 0;
    argv[argc++] = "/usr/lib/apt/apt-helper";
    argv[argc++] = "-o";
    argv[argc++] = "APT::Sandbox::User=root";
    argv[argc++] = "download-file";
    for (size_t i = 0; i < n; i++)
        argv[argc++] = triples[i];
    struct proc_opts o = {0};
    const char *env[] = {"LC_ALL=C", NULL};
    o.env = env;
    int rc = proc_run(argv, &o, err, errlen);
    free(argv);
    if (rc == 0)
        return ENGINE_OK;
    if (rc < 0) /* apt-helper did not start: err says why */
        return ENGINE_E_FAILED;
    const char *why;
    enum engine_error cause = apt_failure(o.tail, "a download failed", &why);
    size_t tl = strlen(o.tail);
    snprintf(err, errlen, "%s: %s", why, tl > 400 ? o.tail + tl - 400 : o.tail);
    return cause;
}

/* The name of component's index in an index directory: main's is "Packages.xz", as it always was. */
static char *index_name(const char *dir, const char *component)
{
    return strcmp(component, "main") == 0 ? xasprintf("%s/Packages.xz", dir)
                                          : xasprintf("%s/%s.Packages.xz", dir, component);
}

/* Fetches component's Packages.xz that the release file inrelease names, by its hash, into dest. */
static enum engine_error fetch_component(const struct lock *l, const struct lock_suite *s, const char *component,
                                         const char *inrelease, const char *dest, char *err, size_t errlen)
{
    _cleanup_free_ char *xz = index_name(dest, component);
    if (access(xz, F_OK) == 0)
        return ENGINE_OK;
    char hash[65];
    _cleanup_free_ char *index = xasprintf("%s/binary-%s/Packages.xz", component, l->arch);
    if (resolve_release_hash(inrelease, index, hash) < 0) {
        snprintf(err, errlen, "the release file of \"%s\" does not list \"%s\"", s->name, index);
        return ENGINE_E_FAILED;
    }
    _cleanup_free_ char *uri = xasprintf("%s/dists/%s/%s/binary-%s/by-hash/SHA256/%s", s->mirror, s->name,
                                         component, l->arch, hash);
    _cleanup_free_ char *tmp = xasprintf("%s.tmp.%ld", xz, (long)getpid());
    _cleanup_free_ char *sum = xasprintf("SHA256:%s", hash);
    const char *triple[] = {uri, tmp, sum};
    enum engine_error cause = download(triple, 3, err, errlen);
    if (cause != ENGINE_OK)
        return cause;
    if (rename(tmp, xz) < 0) {
        int saved = errno;
        snprintf(err, errlen, "cannot rename into \"%s\": %s", xz, strerror(saved));
        unlink(tmp);
        return engine_errno_cause(saved);
    }
    return ENGINE_OK;
}

/*
 * Stores one suite's signed indexes for offline builds: CACHE/indexes/
 * <InRelease sha256>/ holds the InRelease (text) and the exact Packages.xz
 * of each of the lock's components it names, fetched by hash: what a local
 * mirror needs.
 */
static enum engine_error store_indexes(const struct lock *l, const struct lock_suite *s, const char *cache_dir,
                                       const char *inrelease, size_t len, char *err, size_t errlen)
{
    _cleanup_free_ char *dest = xasprintf("%s/indexes/%s", cache_dir, s->inrelease_sha256);
    /* Public, signed data that serve's unprivileged front door reads for the page's completion. */
    int rc = mkdir_p(dest, 0755);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create \"%s\": %s", dest, strerror(-rc));
        return engine_errno_cause(-rc);
    }
    _cleanup_free_ char *in_path = xasprintf("%s/InRelease", dest);
    if (access(in_path, F_OK) != 0 && (rc = write_file_atomic(in_path, inrelease, len, 0644)) < 0) {
        snprintf(err, errlen, "cannot write \"%s\": %s", in_path, strerror(-rc));
        return engine_errno_cause(-rc);
    }
    enum engine_error cause = ENGINE_OK;
    for (size_t i = 0; i < l->ncomponents && cause == ENGINE_OK; i++)
        cause = fetch_component(l, s, l->components[i], inrelease, dest, err, errlen);
    return cause;
}

/* Whether a suite's indexes are all in the cache already. */
static bool indexes_cached(const struct lock *l, const struct lock_suite *s, const char *cache_dir)
{
    _cleanup_free_ char *dir = xasprintf("%s/indexes/%s", cache_dir, s->inrelease_sha256);
    _cleanup_free_ char *in = xasprintf("%s/InRelease", dir);
    bool all = access(in, F_OK) == 0;
    for (size_t i = 0; i < l->ncomponents && all; i++) {
        _cleanup_free_ char *xz = index_name(dir, l->components[i]);
        all = access(xz, F_OK) == 0;
    }
    return all;
}

/* After resolution: the InRelease of every suite apt verified is in its lists. */
static enum engine_error keep_indexes(struct apt *a, const char *cache_dir, const struct lock *l, char *err,
                                      size_t errlen)
{
    enum engine_error cause = ENGINE_OK;
    for (size_t i = 0; i < l->nsuites && cause == ENGINE_OK; i++) {
        const struct lock_suite *s = &l->suites[i];
        char name[256];
        if (indexes_cached(l, s, cache_dir) || find_inrelease(a, s->name, name, sizeof(name)) < 0)
            continue;
        _cleanup_free_ char *src = xasprintf("%s/state/lists/%s", a->dir, name);
        _cleanup_free_ char *text = NULL;
        size_t len;
        if (read_file(src, 16 << 20, &text, &len) < 0) {
            snprintf(err, errlen, "cannot read \"%s\"", src);
            return ENGINE_E_FAILED;
        }
        cause = store_indexes(l, s, cache_dir, text, len, err, errlen);
    }
    return cause;
}

/*
 * For a lock made elsewhere: fetch the very InRelease a suite pins
 * (apt-helper checks its SHA-256; apt checks its signature when the build
 * reads the local mirror), then the indexes it names.
 */
static enum engine_error fetch_suite_indexes(const struct lock *l, const struct lock_suite *s, const char *cache_dir,
                                             char *err, size_t errlen)
{
    if (indexes_cached(l, s, cache_dir))
        return ENGINE_OK;
    _cleanup_free_ char *dir = xasprintf("%s/indexes", cache_dir);
    int rc = mkdir_p(dir, 0755); /* readable by serve's front door, as store_indexes says */
    if (rc < 0) {
        snprintf(err, errlen, "cannot create \"%s\": %s", dir, strerror(-rc));
        return engine_errno_cause(-rc);
    }
    _cleanup_free_ char *tmp = xasprintf("%s/.InRelease.%ld", dir, (long)getpid());
    _cleanup_free_ char *uri = xasprintf("%s/dists/%s/InRelease", s->mirror, s->name);
    _cleanup_free_ char *sum = xasprintf("SHA256:%s", s->inrelease_sha256);
    const char *triple[] = {uri, tmp, sum};
    enum engine_error cause = download(triple, 3, err, errlen);
    if (cause != ENGINE_OK) {
        char why[512];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen,
                 "the lock pins a release file of \"%s\" (InRelease %.12s) that is not in the cache and that the "
                 "mirror no longer serves: %s",
                 s->name, s->inrelease_sha256, why);
        return cause;
    }
    _cleanup_free_ char *text = NULL;
    size_t len;
    rc = read_file(tmp, 16 << 20, &text, &len);
    unlink(tmp);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read the fetched release file: %s", strerror(-rc));
        return ENGINE_E_FAILED;
    }
    return store_indexes(l, s, cache_dir, text, len, err, errlen);
}

static enum engine_error fetch_indexes(const struct lock *l, const char *cache_dir, char *err, size_t errlen)
{
    enum engine_error cause = ENGINE_OK;
    for (size_t i = 0; i < l->nsuites && cause == ENGINE_OK; i++)
        cause = fetch_suite_indexes(l, &l->suites[i], cache_dir, err, errlen);
    return cause;
}

/* Moves the verified downloads (every triple's target) into the cache; rename makes concurrent builds safe. */
static enum engine_error move_into_cache(char **triples, size_t n, const char *tmp, const char *debs, int *fetched,
                                        char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i += 3) {
        _cleanup_free_ char *final = xasprintf("%s/%s", debs, triples[i + 1] + strlen(tmp) + 1);
        if (rename(triples[i + 1], final) < 0) {
            int saved = errno;
            snprintf(err, errlen, "cannot move \"%s\" into the cache: %s", triples[i + 1], strerror(saved));
            return engine_errno_cause(saved);
        }
        (*fetched)++;
    }
    return ENGINE_OK;
}

enum engine_error resolve_fetch(const struct lock *l, const char *cache_dir, int *fetched, char *err, size_t errlen)
{
    *fetched = 0;
    enum engine_error cause = fetch_indexes(l, cache_dir, err, errlen);
    if (cause != ENGINE_OK)
        return cause;
    _cleanup_free_ char *debs = xasprintf("%s/debs", cache_dir);
    _cleanup_free_ char *tmp = xasprintf("%s/.tmp-%ld", debs, (long)getpid());
    int rc = mkdir_p(tmp, 0700);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create \"%s\": %s", tmp, strerror(-rc));
        return engine_errno_cause(-rc);
    }
    char **strs = xcalloc(3 * l->npkgs + 1, sizeof(*strs));
    size_t n = 0;
    for (size_t i = 0; i < l->npkgs; i++) {
        const struct lock_pkg *p = &l->pkgs[i];
        _cleanup_free_ char *final = xasprintf("%s/%s.deb", debs, p->sha256);
        struct stat st;
        if (stat(final, &st) == 0 && st.st_size == p->size)
            continue;
        const struct lock_suite *s = lock_suite_find(l, p->suite);
        strs[n++] = xasprintf("%s/%s", s ? s->mirror : l->mirror, p->filename);
        strs[n++] = xasprintf("%s/%s.deb", tmp, p->sha256);
        strs[n++] = xasprintf("SHA256:%s", p->sha256);
    }
    cause = n > 0 ? download((const char *const *)strs, n, err, errlen) : ENGINE_OK;
    /* Verified by apt: each into place. */
    if (cause == ENGINE_OK)
        cause = move_into_cache(strs, n, tmp, debs, fetched, err, errlen);
    for (size_t i = 0; i < n; i++)
        free(strs[i]);
    free(strs);
    const char *argv[] = {"/bin/rm", "-rf", tmp, NULL};
    struct proc_opts o = {0};
    char ignored[128];
    proc_run(argv, &o, ignored, sizeof(ignored));
    return cause;
}

/* The suites r is resolved from, in order: the release, then updates, then security. */
static void recipe_suites(const struct recipe *r, const struct resolve_mirrors *m, struct lock *l)
{
    l->suites = xcalloc(3, sizeof(*l->suites));
    l->suites[l->nsuites].name = xstrdup(r->release);
    l->suites[l->nsuites++].mirror = xstrdup(m->mirror);
    if (r->updates) {
        l->suites[l->nsuites].name = xasprintf("%s-updates", r->release);
        l->suites[l->nsuites++].mirror = xstrdup(m->mirror);
    }
    if (r->security) {
        l->suites[l->nsuites].name = xasprintf("%s-security", r->release);
        l->suites[l->nsuites++].mirror = xstrdup(m->security_mirror);
    }
}

/* apt's sources: one line a suite, with the components; a format 1 lock's is the line it always was. */
static char *sources_list(const struct lock *l, const char *keyring)
{
    char *comps = xstrdup("");
    for (size_t i = 0; i < l->ncomponents; i++) {
        char *longer = xasprintf("%s %s", comps, l->components[i]);
        free(comps);
        comps = longer;
    }
    char *text = xstrdup("");
    for (size_t i = 0; i < l->nsuites; i++) {
        char *longer = xasprintf("%sdeb [signed-by=%s] %s %s%s\n", text, keyring, l->suites[i].mirror,
                                 l->suites[i].name, comps);
        free(text);
        text = longer;
    }
    free(comps);
    return text;
}

/* The lock's frame before resolution: its format, mirror, release, components and suites. */
static void lock_frame(const struct recipe *r, const struct resolve_mirrors *m, struct lock *l)
{
    l->format = r->format == 1 ? 1 : 2;
    l->mirror = xstrdup(m->mirror);
    l->release = xstrdup(r->release);
    l->arch = xstrdup(r->architecture);
    l->components = xcalloc(r->ncomponents + 1, sizeof(char *));
    for (size_t i = 0; i < r->ncomponents; i++)
        l->components[l->ncomponents++] = xstrdup(r->components[i]);
    recipe_suites(r, m, l);
}

enum engine_error resolve_lock(const struct recipe *r, const struct resolve_mirrors *m, const char *cache_dir,
                               struct lock *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    lock_frame(r, m, out);
    _cleanup_free_ char *sources = sources_list(out, m->keyring);
    struct apt a;
    enum engine_error cause = apt_init(&a, cache_dir, sources, r->architecture, err, errlen);
    if (cause != ENGINE_OK)
        goto done;
    cause = apt_update(&a, out, err, errlen);
    cause = cause ?: read_inreleases(&a, out, err, errlen);
    cause = cause ?: apt_check_caches(&a, out, err, errlen);
    cause = cause ?: closure(&a, r, out, err, errlen);
    cause = cause ?: keep_indexes(&a, cache_dir, out, err, errlen);
    if (cause == ENGINE_OK)
        lock_to_json(out);
done:
    apt_release(&a);
    if (cause != ENGINE_OK)
        lock_release(out);
    return cause;
}

static const char *get_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int parse_lock_pkg(const struct lock *l, json_t *v, size_t i, struct lock_pkg *p, char *err, size_t errlen)
{
    const char *name = get_str(v, "name"), *version = get_str(v, "version"), *arch = get_str(v, "architecture");
    const char *sha = get_str(v, "sha256"), *file = get_str(v, "filename");
    const char *suite = l->format == 1 ? l->release : get_str(v, "suite");
    const char *component = l->format == 1 ? "main" : get_str(v, "component");
    json_t *size = json_object_get(v, "size");
    if (name == NULL || version == NULL || arch == NULL || file == NULL || !is_sha256_hex(sha) || !json_is_integer(size) ||
        strstr(file, "..") != NULL || file[0] == '/' || suite == NULL || component == NULL) {
        snprintf(err, errlen, "lock: packages[%zu] is malformed", i);
        return -1;
    }
    if (lock_suite_find(l, suite) == NULL) {
        snprintf(err, errlen, "lock: packages[%zu] comes from \"%.64s\", a suite the lock does not pin", i, suite);
        return -1;
    }
    p->name = xstrdup(name);
    p->version = xstrdup(version);
    p->arch = xstrdup(arch);
    p->filename = xstrdup(file);
    p->suite = xstrdup(suite);
    p->component = xstrdup(component);
    p->size = (long long)json_integer_value(size);
    memcpy(p->sha256, sha, 65);
    return 0;
}

/* A format 1 lock's one suite: the release, from the top level. */
static int parse_suites_v1(json_t *doc, struct lock *l, char *err, size_t errlen)
{
    const char *inrel = get_str(doc, "inrelease_sha256");
    if (!is_sha256_hex(inrel)) {
        snprintf(err, errlen, "lock: not a lock printed by debate lock");
        return -1;
    }
    l->suites = xcalloc(1, sizeof(*l->suites));
    l->suites[0] = (struct lock_suite){xstrdup(l->release), xstrdup(l->mirror), "", xstrdup(l->date)};
    memcpy(l->suites[0].inrelease_sha256, inrel, 65);
    l->nsuites = 1;
    l->components = xcalloc(2, sizeof(char *));
    l->components[l->ncomponents++] = xstrdup("main");
    return 0;
}

static int parse_suites_v2(json_t *doc, struct lock *l, char *err, size_t errlen)
{
    json_t *suites = json_object_get(doc, "suites"), *comps = json_object_get(doc, "components");
    if (!json_is_array(suites) || json_array_size(suites) == 0 || json_array_size(suites) > 3 ||
        !json_is_array(comps) || json_array_size(comps) == 0 || json_array_size(comps) > 4) {
        snprintf(err, errlen, "lock: not a lock printed by debate lock");
        return -1;
    }
    l->suites = xcalloc(json_array_size(suites), sizeof(*l->suites));
    l->components = xcalloc(json_array_size(comps) + 1, sizeof(char *));
    size_t i;
    json_t *v;
    json_array_foreach(suites, i, v)
    {
        const char *name = get_str(v, "suite"), *mirror = get_str(v, "mirror"), *date = get_str(v, "date");
        const char *inrel = get_str(v, "inrelease_sha256");
        if (name == NULL || mirror == NULL || date == NULL || !is_sha256_hex(inrel)) {
            snprintf(err, errlen, "lock: suites[%zu] is malformed", i);
            return -1;
        }
        l->suites[i] = (struct lock_suite){xstrdup(name), xstrdup(mirror), "", xstrdup(date)};
        memcpy(l->suites[i].inrelease_sha256, inrel, 65);
        l->nsuites++;
    }
    json_array_foreach(comps, i, v)
    {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "lock: components[%zu] is malformed", i);
            return -1;
        }
        l->components[l->ncomponents++] = xstrdup(json_string_value(v));
    }
    return 0;
}

/* Names of what l and r resolve from, "trixie trixie-updates trixie-security (main contrib)", to compare. */
static char *suites_text(char *const *suites, size_t nsuites, char *const *comps, size_t ncomps)
{
    char *out = xstrdup("");
    for (size_t i = 0; i < nsuites + ncomps; i++) {
        const char *word = i < nsuites ? suites[i] : comps[i - nsuites];
        const char *sep = i == 0 ? "" : i == nsuites ? " (" : " ";
        char *longer = xasprintf("%s%s%s%s", out, sep, word, i + 1 == nsuites + ncomps ? ")" : "");
        free(out);
        out = longer;
    }
    return out;
}

/* Whether the lock resolves from exactly the suites and components the recipe asks for. */
static int check_suites(const struct lock *l, const struct recipe *r, char *err, size_t errlen)
{
    struct resolve_mirrors none = {"", "", ""};
    struct lock want = {0};
    lock_frame(r, &none, &want);
    char **have_names = xcalloc(l->nsuites + 1, sizeof(char *)), **want_names = xcalloc(want.nsuites + 1, sizeof(char *));
    for (size_t i = 0; i < l->nsuites; i++)
        have_names[i] = l->suites[i].name;
    for (size_t i = 0; i < want.nsuites; i++)
        want_names[i] = want.suites[i].name;
    _cleanup_free_ char *have = suites_text(have_names, l->nsuites, l->components, l->ncomponents);
    _cleanup_free_ char *wanted = suites_text(want_names, want.nsuites, want.components, want.ncomponents);
    int rc = 0;
    if (strcmp(have, wanted) != 0) {
        snprintf(err, errlen, "lock: it resolves from %s, the recipe from %s", have, wanted);
        rc = -1;
    }
    free(have_names);
    free(want_names);
    lock_release(&want);
    return rc;
}

int lock_read(const char *text, size_t len, struct lock *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    json_error_t je;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL) {
        snprintf(err, errlen, "lock: line %d: %s", je.line, je.text);
        return -1;
    }
    int rc = -1;
    const char *mirror = get_str(doc, "mirror"), *release = get_str(doc, "release"), *arch = get_str(doc, "architecture");
    const char *date = get_str(doc, "date");
    json_t *pkgs = json_object_get(doc, "packages"), *format = json_object_get(doc, "format");
    int number = json_is_integer(format) ? (int)json_integer_value(format) : 0;
    if (mirror == NULL || release == NULL || arch == NULL || date == NULL || !json_is_array(pkgs) ||
        (number != 1 && number != 2)) {
        snprintf(err, errlen, "lock: not a lock printed by debate lock");
        goto out;
    }
    out->format = number;
    out->mirror = xstrdup(mirror);
    out->release = xstrdup(release);
    out->arch = xstrdup(arch);
    out->date = xstrdup(date);
    if ((number == 1 ? parse_suites_v1(doc, out, err, errlen) : parse_suites_v2(doc, out, err, errlen)) < 0)
        goto out;
    out->pkgs = xcalloc(json_array_size(pkgs) + 1, sizeof(*out->pkgs));
    size_t i;
    json_t *v;
    json_array_foreach(pkgs, i, v)
    {
        if (parse_lock_pkg(out, v, i, &out->pkgs[i], err, errlen) < 0)
            goto out;
        out->npkgs++;
    }
    qsort(out->pkgs, out->npkgs, sizeof(*out->pkgs), cmp_pkg);
    lock_to_json(out);
    rc = 0;
out:
    json_decref(doc);
    if (rc < 0)
        lock_release(out);
    return rc;
}

/* Whether the lock l can build r: its release, architecture, suites, components and packages. */
static int check_for_recipe(const struct lock *l, const struct recipe *r, char *err, size_t errlen)
{
    if (strcmp(l->release, r->release) != 0 || strcmp(l->arch, r->architecture) != 0) {
        snprintf(err, errlen, "lock: it is for %s %s, the recipe for %s %s", l->release, l->arch, r->release,
                 r->architecture);
        return -1;
    }
    if (check_suites(l, r, err, errlen) < 0)
        return -1;
    for (size_t k = 0; k < r->npackages; k++) {
        struct lock_pkg key = {.name = r->packages[k]};
        if (bsearch(&key, l->pkgs, l->npkgs, sizeof(*l->pkgs), cmp_pkg) == NULL) {
            snprintf(err, errlen, "lock: it does not pin the recipe's package \"%s\"", r->packages[k]);
            return -1;
        }
    }
    return 0;
}

int lock_parse(const char *text, size_t len, const struct recipe *r, struct lock *out, char *err, size_t errlen)
{
    if (lock_read(text, len, out, err, errlen) < 0)
        return -1;
    if (check_for_recipe(out, r, err, errlen) < 0) {
        lock_release(out);
        return -1;
    }
    return 0;
}

void lock_release(struct lock *l)
{
    for (size_t i = 0; i < l->npkgs; i++)
        lock_pkg_release(&l->pkgs[i]);
    free(l->pkgs);
    for (size_t i = 0; i < l->nsuites; i++) {
        free(l->suites[i].name);
        free(l->suites[i].mirror);
        free(l->suites[i].date);
    }
    free(l->suites);
    for (size_t i = 0; i < l->ncomponents; i++)
        free(l->components[i]);
    free(l->components);
    free(l->mirror);
    free(l->release);
    free(l->arch);
    free(l->date);
    free(l->json);
    memset(l, 0, sizeof(*l));
}
