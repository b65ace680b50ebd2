#include "engine/resolve.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "proc.h"
#include "digest.h"
#include "util.h"
#include "banned.h"

/* A private apt: its own configuration, state and lists, under dir. */
struct apt {
    char *dir, *conf;
    char inrelease_name[256]; /* in state/lists, once update has run */
};

static void apt_release(struct apt *a)
{
    if (a->dir != NULL) {
        const char *argv[] = {"/bin/rm", "-rf", a->dir, NULL};
        struct proc_opts o = {0};
        char err[128];
        proc_run(argv, &o, err, sizeof(err));
    }
    free(a->dir);
    free(a->conf);
}

static enum engine_error apt_init(struct apt *a, const char *cache_dir, const char *mirror, const char *keyring,
                                  const char *release, const char *arch, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    _cleanup_free_ char *base = xasprintf("%s/apt", cache_dir);
    int rc = mkdir_p(base, 0700);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create \"%s\": %s", base, strerror(-rc));
        return engine_errno_cause(-rc);
    }
    _cleanup_free_ char *tmpl = xasprintf("%s/run-XXXXXX", base);
    if (mkdtemp(tmpl) == NULL) {
        int saved = errno;
        snprintf(err, errlen, "cannot create a directory in \"%s\": %s", base, strerror(saved));
        return engine_errno_cause(saved);
    }
    /* apt reads relative Dir:: paths as relative to Dir: give it absolute ones. */
    a->dir = realpath(tmpl, NULL);
    if (a->dir == NULL) {
        snprintf(err, errlen, "cannot resolve \"%s\": %s", tmpl, strerror(errno));
        return ENGINE_E_FAILED;
    }
    const char *subdirs[] = {"etc/apt.conf.d", "etc/sources.list.d", "etc/preferences.d", "etc/trusted.gpg.d",
                             "state/lists/partial", "cache/archives/partial", "log"};
    for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", a->dir, subdirs[i]);
        if ((rc = mkdir_p(p, 0700)) < 0) {
            snprintf(err, errlen, "cannot create \"%s\": %s", p, strerror(-rc));
            return engine_errno_cause(-rc);
        }
    }
    _cleanup_free_ char *status = xasprintf("%s/state/status", a->dir);
    _cleanup_free_ char *sources = xasprintf("%s/etc/sources.list", a->dir);
    _cleanup_free_ char *src = xasprintf("deb [signed-by=%s] %s %s main\n", keyring, mirror, release);
    _cleanup_free_ char *conf = xasprintf(
        "Dir \"%1$s/\";\n"
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
        "APT::Architecture \"%2$s\";\n"
        "APT::Architectures { \"%2$s\"; };\n"
        "APT::Install-Recommends \"false\";\n"
        "APT::Sandbox::User \"root\";\n"
        "Acquire::Languages \"none\";\n"
        "Acquire::AllowInsecureRepositories \"false\";\n"
        "Acquire::IndexTargets::deb::Packages::KeepCompressed \"true\";\n"
        "Acquire::CompressionTypes::Order { \"xz\"; };\n"
        "Acquire::Retries \"2\";\n"
        "Acquire::http::Timeout \"20\";\n"
        "Debug::NoLocking \"true\";\n",
        a->dir, arch);
    a->conf = xasprintf("%s/apt.conf", a->dir);
    if ((rc = write_file_atomic(status, "", 0, 0600)) < 0 || (rc = write_file_atomic(sources, src, strlen(src), 0600)) < 0 ||
        (rc = write_file_atomic(a->conf, conf, strlen(conf), 0600)) < 0) {
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
    }
    return rc;
}

char *resolve_default_mirror(void)
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
            if (n > 7 && strncmp(url, "http", 4) == 0 && strstr(url, "security") == NULL)
                return xstrndup(url, n);
        }
    }
    return xstrdup("http://deb.debian.org/debian");
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

/* True when apt kept the release file: the definitive sign that update worked. */
static bool has_inrelease(struct apt *a)
{
    _cleanup_free_ char *lists = xasprintf("%s/state/lists", a->dir);
    DIR *d = opendir(lists);
    bool found = false;
    struct dirent *e;
    while (d != NULL && !found && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        found = n >= 10 && strcmp(e->d_name + n - 10, "_InRelease") == 0;
    }
    if (d != NULL)
        closedir(d);
    return found;
}

static enum engine_error apt_update(struct apt *a, const char *mirror, char *err, size_t errlen)
{
    const char *args[] = {"/usr/bin/apt-get", "-q", "update", NULL};
    struct proc_opts o = {0};
    _cleanup_free_ char *out = NULL;
    int rc = apt_run(a, args, &out, &o, err, errlen);
    /* apt-get update exits 0 when a fetch fails ("W: Failed to fetch"): check what it kept. */
    if (rc == 0 && has_inrelease(a) && strstr(o.tail, "E: ") == NULL)
        return ENGINE_OK;
    _cleanup_free_ char *all = xasprintf("%s\n%s", out, o.tail);
    const char *why;
    enum engine_error cause = apt_failure(all, "apt-get update failed", &why);
    size_t tl = strlen(o.tail);
    snprintf(err, errlen, "%s (%s): %s", why, mirror, tl > 400 ? o.tail + tl - 400 : o.tail);
    return cause;
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

/* 'URI' name_version_arch.deb SIZE HASH: the closure; hashes come from the index. */
static int parse_uri_line(const char *line, const char *mirror, struct lock_pkg *p)
{
    memset(p, 0, sizeof(*p));
    if (line[0] != '\'')
        return -1;
    const char *uri_end = strchr(line + 1, '\'');
    if (uri_end == NULL)
        return -1;
    size_t mlen = strlen(mirror);
    const char *uri = line + 1;
    if ((size_t)(uri_end - uri) <= mlen + 1 || strncmp(uri, mirror, mlen) != 0)
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

/* Fills sha256, size and filename of every package from the signed index (apt-cache show). */
static enum engine_error index_metadata(struct apt *a, struct lock *l, char *err, size_t errlen)
{
    const char **args = xcalloc(l->npkgs + 4, sizeof(*args));
    char **specs = xcalloc(l->npkgs + 1, sizeof(*specs));
    size_t argc = 0;
    args[argc++] = "/usr/bin/apt-cache";
    args[argc++] = "show";
    args[argc++] = "--no-all-versions";
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
}

static enum engine_error closure(struct apt *a, const struct recipe *r, const char *mirror, struct lock *l, char *err,
                                 size_t errlen)
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
    if (rc != 0) {
        /* apt's words: it names the package it cannot find */
        const char *missing = strstr(o.tail, "Unable to locate package ");
        if (missing == NULL) {
            snprintf(err, errlen, "cannot resolve the packages: %s", o.tail);
            return ENGINE_E_FAILED;
        }
        missing += strlen("Unable to locate package ");
        snprintf(err, errlen, "unknown package \"%.*s\" in %s %s", (int)strcspn(missing, "\n "), missing,
                 r->distribution, r->release);
        return ENGINE_E_UNKNOWN_PACKAGE;
    }
    for (char *line = out, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        struct lock_pkg p;
        if (parse_uri_line(line, mirror, &p) < 0) {
            lock_pkg_release(&p);
            snprintf(err, errlen, "unexpected line from apt-get: \"%.200s\"", line);
            return ENGINE_E_FAILED;
        }
        l->pkgs = xrealloc(l->pkgs, (l->npkgs + 1) * sizeof(*l->pkgs));
        l->pkgs[l->npkgs++] = p;
    }
    qsort(l->pkgs, l->npkgs, sizeof(*l->pkgs), cmp_pkg);
    return index_metadata(a, l, err, errlen);
}

/* The saved InRelease: its hash and Date. */
static enum engine_error read_inrelease(struct apt *a, struct lock *l, char *err, size_t errlen)
{
    _cleanup_free_ char *lists = xasprintf("%s/state/lists", a->dir);
    DIR *d = opendir(lists);
    if (d == NULL) {
        snprintf(err, errlen, "cannot read \"%s\": %s", lists, strerror(errno));
        return ENGINE_E_FAILED;
    }
    struct dirent *e;
    enum engine_error rc = ENGINE_E_FAILED;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 10 || strcmp(e->d_name + n - 10, "_InRelease") != 0)
            continue;
        snprintf(a->inrelease_name, sizeof(a->inrelease_name), "%s", e->d_name);
        _cleanup_free_ char *path = xasprintf("%s/%s", lists, e->d_name);
        _cleanup_free_ char *text = NULL;
        size_t len;
        if (read_file(path, 16 << 20, &text, &len) < 0)
            break;
        sha256_hex(text, len, l->inrelease_sha256);
        const char *date = strstr(text, "\nDate: ");
        l->date = date ? xstrndup(date + 7, strcspn(date + 7, "\n")) : xstrdup("");
        rc = ENGINE_OK;
        break;
    }
    closedir(d);
    if (rc != ENGINE_OK)
        snprintf(err, errlen, "apt kept no InRelease in \"%s\"", lists);
    return rc;
}

static void lock_to_json(struct lock *l)
{
    json_t *pkgs = json_array();
    for (size_t i = 0; i < l->npkgs; i++) {
        struct lock_pkg *p = &l->pkgs[i];
        json_array_append_new(pkgs, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "name", p->name, "version",
                                              p->version, "architecture", p->arch, "size", (json_int_t)p->size,
                                              "sha256", p->sha256, "filename", p->filename));
    }
    json_t *doc = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:o}", "format", 1, "mirror", l->mirror, "release",
                            l->release, "architecture", l->arch, "inrelease_sha256", l->inrelease_sha256, "date",
                            l->date, "packages", pkgs);
    l->json = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(doc);
    if (l->json == NULL)
        abort();
    sha256_hex(l->json, strlen(l->json), l->hash);
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

/*
 * Stores the signed indexes for offline builds: CACHE/indexes/<InRelease
 * sha256>/ holds the InRelease (text) and the exact Packages.xz it names,
 * fetched by hash: what a local mirror needs.
 */
static enum engine_error store_indexes(const struct lock *l, const char *cache_dir, const char *inrelease, size_t len,
                                       char *err, size_t errlen)
{
    _cleanup_free_ char *dest = xasprintf("%s/indexes/%s", cache_dir, l->inrelease_sha256);
    _cleanup_free_ char *xz = xasprintf("%s/Packages.xz", dest);
    if (access(xz, F_OK) == 0)
        return ENGINE_OK;
    /* Public, signed data that serve's unprivileged front door reads for the page's completion. */
    int rc = mkdir_p(dest, 0755);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create \"%s\": %s", dest, strerror(-rc));
        return engine_errno_cause(-rc);
    }
    _cleanup_free_ char *in_path = xasprintf("%s/InRelease", dest);
    if ((rc = write_file_atomic(in_path, inrelease, len, 0644)) < 0) {
        snprintf(err, errlen, "cannot write \"%s\": %s", in_path, strerror(-rc));
        return engine_errno_cause(-rc);
    }
    char hash[65];
    _cleanup_free_ char *index = xasprintf("main/binary-%s/Packages.xz", l->arch);
    if (resolve_release_hash(inrelease, index, hash) < 0) {
        snprintf(err, errlen, "the release file does not list \"%s\"", index);
        return ENGINE_E_FAILED;
    }
    _cleanup_free_ char *uri = xasprintf("%s/dists/%s/main/binary-%s/by-hash/SHA256/%s", l->mirror, l->release,
                                         l->arch, hash);
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

/* After resolution: the InRelease apt verified is in its lists. */
static enum engine_error keep_indexes(struct apt *a, const char *cache_dir, const struct lock *l, char *err,
                                      size_t errlen)
{
    _cleanup_free_ char *src = xasprintf("%s/state/lists/%s", a->dir, a->inrelease_name);
    _cleanup_free_ char *text = NULL;
    size_t len;
    if (read_file(src, 16 << 20, &text, &len) < 0) {
        snprintf(err, errlen, "cannot read \"%s\"", src);
        return ENGINE_E_FAILED;
    }
    return store_indexes(l, cache_dir, text, len, err, errlen);
}

/*
 * For a lock made elsewhere: fetch the very InRelease it pins (apt-helper
 * checks its SHA-256; apt checks its signature when the build reads the
 * local mirror), then the index it names.
 */
static enum engine_error fetch_indexes(const struct lock *l, const char *cache_dir, char *err, size_t errlen)
{
    _cleanup_free_ char *xz = xasprintf("%s/indexes/%s/Packages.xz", cache_dir, l->inrelease_sha256);
    if (access(xz, F_OK) == 0)
        return ENGINE_OK;
    _cleanup_free_ char *dir = xasprintf("%s/indexes", cache_dir);
    int rc = mkdir_p(dir, 0755); /* readable by serve's front door, as store_indexes says */
    if (rc < 0) {
        snprintf(err, errlen, "cannot create \"%s\": %s", dir, strerror(-rc));
        return engine_errno_cause(-rc);
    }
    _cleanup_free_ char *tmp = xasprintf("%s/.InRelease.%ld", dir, (long)getpid());
    _cleanup_free_ char *uri = xasprintf("%s/dists/%s/InRelease", l->mirror, l->release);
    _cleanup_free_ char *sum = xasprintf("SHA256:%s", l->inrelease_sha256);
    const char *triple[] = {uri, tmp, sum};
    enum engine_error cause = download(triple, 3, err, errlen);
    if (cause != ENGINE_OK) {
        char why[512];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen,
                 "the lock pins a release file (InRelease %.12s) that is not in the cache and that the mirror no "
                 "longer serves: %s",
                 l->inrelease_sha256, why);
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
    return store_indexes(l, cache_dir, text, len, err, errlen);
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
        strs[n++] = xasprintf("%s/%s", l->mirror, p->filename);
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

enum engine_error resolve_lock(const struct recipe *r, const char *mirror, const char *keyring, const char *cache_dir,
                               struct lock *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct apt a;
    enum engine_error cause = apt_init(&a, cache_dir, mirror, keyring, r->release, r->architecture, err, errlen);
    if (cause != ENGINE_OK)
        goto done;
    out->mirror = xstrdup(mirror);
    out->release = xstrdup(r->release);
    out->arch = xstrdup(r->architecture);
    cause = apt_update(&a, mirror, err, errlen);
    cause = cause ?: read_inrelease(&a, out, err, errlen);
    cause = cause ?: closure(&a, r, mirror, out, err, errlen);
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

static int parse_lock_pkg(json_t *v, size_t i, struct lock_pkg *p, char *err, size_t errlen)
{
    const char *name = get_str(v, "name"), *version = get_str(v, "version"), *arch = get_str(v, "architecture");
    const char *sha = get_str(v, "sha256"), *file = get_str(v, "filename");
    json_t *size = json_object_get(v, "size");
    if (name == NULL || version == NULL || arch == NULL || file == NULL || !is_sha256_hex(sha) || !json_is_integer(size) ||
        strstr(file, "..") != NULL || file[0] == '/') {
        snprintf(err, errlen, "lock: packages[%zu] is malformed", i);
        return -1;
    }
    p->name = xstrdup(name);
    p->version = xstrdup(version);
    p->arch = xstrdup(arch);
    p->filename = xstrdup(file);
    p->size = (long long)json_integer_value(size);
    memcpy(p->sha256, sha, 65);
    return 0;
}

int lock_parse(const char *text, size_t len, const struct recipe *r, struct lock *out, char *err, size_t errlen)
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
    const char *inrel = get_str(doc, "inrelease_sha256"), *date = get_str(doc, "date");
    json_t *pkgs = json_object_get(doc, "packages");
    if (mirror == NULL || release == NULL || arch == NULL || !is_sha256_hex(inrel) || date == NULL ||
        !json_is_array(pkgs)) {
        snprintf(err, errlen, "lock: not a lock printed by debate lock");
        goto out;
    }
    if (strcmp(release, r->release) != 0 || strcmp(arch, r->architecture) != 0) {
        snprintf(err, errlen, "lock: it is for %s %s, the recipe for %s %s", release, arch, r->release,
                 r->architecture);
        goto out;
    }
    out->mirror = xstrdup(mirror);
    out->release = xstrdup(release);
    out->arch = xstrdup(arch);
    out->date = xstrdup(date);
    memcpy(out->inrelease_sha256, inrel, 65);
    out->pkgs = xcalloc(json_array_size(pkgs) + 1, sizeof(*out->pkgs));
    size_t i;
    json_t *v;
    json_array_foreach(pkgs, i, v)
    {
        if (parse_lock_pkg(v, i, &out->pkgs[i], err, errlen) < 0)
            goto out;
        out->npkgs++;
    }
    qsort(out->pkgs, out->npkgs, sizeof(*out->pkgs), cmp_pkg);
    for (size_t k = 0; k < r->npackages; k++) {
        struct lock_pkg key = {.name = r->packages[k]};
        if (bsearch(&key, out->pkgs, out->npkgs, sizeof(*out->pkgs), cmp_pkg) == NULL) {
            snprintf(err, errlen, "lock: it does not pin the recipe's package \"%s\"", r->packages[k]);
            goto out;
        }
    }
    lock_to_json(out);
    rc = 0;
out:
    json_decref(doc);
    if (rc < 0)
        lock_release(out);
    return rc;
}

void lock_release(struct lock *l)
{
    for (size_t i = 0; i < l->npkgs; i++)
        lock_pkg_release(&l->pkgs[i]);
    free(l->pkgs);
    free(l->mirror);
    free(l->release);
    free(l->arch);
    free(l->date);
    free(l->json);
    memset(l, 0, sizeof(*l));
}
