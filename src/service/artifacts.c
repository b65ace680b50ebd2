#include "service/artifacts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "engine/recipe.h"
#include "db/store.h"
#include "log.h"
#include "digest.h"
#include "util.h"
#include "banned.h"

char *artifact_iso_path(const char *dir, const char *sha256)
{
    return xasprintf("%s/%s.iso", dir, sha256);
}

char *artifact_manifest_path(const char *dir, const char *sha256)
{
    return xasprintf("%s/%s.manifest.json", dir, sha256);
}

static char *stamp_path(const char *dir, const char *sha256)
{
    return xasprintf("%s/%s.verified", dir, sha256);
}

static void write_stamp(const char *dir, const char *sha256, const struct stat *st)
{
    _cleanup_free_ char *path = stamp_path(dir, sha256);
    _cleanup_free_ char *text = xasprintf("%lld %lld.%09ld %llu\n", (long long)st->st_size, (long long)st->st_mtim.tv_sec,
                                          st->st_mtim.tv_nsec, (unsigned long long)st->st_ino);
    write_file_atomic(path, text, strlen(text), 0644);
}

static bool stamp_matches(const char *dir, const char *sha256, const struct stat *st)
{
    _cleanup_free_ char *path = stamp_path(dir, sha256), *text = NULL;
    size_t len;
    if (read_file(path, 256, &text, &len) < 0)
        return false;
    _cleanup_free_ char *want = xasprintf("%lld %lld.%09ld %llu\n", (long long)st->st_size,
                                          (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
                                          (unsigned long long)st->st_ino);
    return strcmp(text, want) == 0;
}

int artifact_publish(const char *dir, const char *iso, const char *manifest, const char *sha256, char *err,
                     size_t errlen)
{
    if (!is_sha256_hex(sha256)) {
        snprintf(err, errlen, "\"%s\" is not a SHA-256", sha256);
        return -1;
    }
    _cleanup_free_ char *final_iso = artifact_iso_path(dir, sha256);
    _cleanup_free_ char *final_manifest = artifact_manifest_path(dir, sha256);
    struct stat st;
    if (stat(iso, &st) < 0) {
        snprintf(err, errlen, "cannot read \"%s\": %s", iso, strerror(errno));
        return -1;
    }
    if (artifact_verify(dir, sha256, (long long)st.st_size)) {
        /* the same bytes are there already (another attempt, another worker) */
        unlink(iso);
        if (access(final_manifest, F_OK) == 0)
            unlink(manifest);
        else if (rename(manifest, final_manifest) < 0)
            unlink(manifest);
        return 0;
    }
    /* Readable by serve's unprivileged front door, whatever umask the worker runs with. */
    if (chmod(iso, 0644) < 0 || chmod(manifest, 0644) < 0) {
        snprintf(err, errlen, "cannot make \"%s\" readable: %s", iso, strerror(errno));
        return -1;
    }
    /* The manifest first: an ISO in the store always has its manifest beside it. */
    int rc = file_publish(manifest, final_manifest);
    if (rc == 0)
        rc = file_publish(iso, final_iso);
    if (rc < 0) {
        snprintf(err, errlen, "cannot move the artifact into \"%s\": %s", dir, strerror(-rc));
        return -1;
    }
    if (stat(final_iso, &st) == 0)
        write_stamp(dir, sha256, &st); /* the engine hashed these very bytes */
    return 0;
}

int artifact_open(const char *dir, const char *sha256, long long size)
{
    if (!is_sha256_hex(sha256))
        return -EINVAL;
    _cleanup_free_ char *path = artifact_iso_path(dir, sha256);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return -EBADMSG;
    /* Another size is not this artifact; the rebuild that follows replaces the file. */
    if ((long long)st.st_size != size)
        return -EBADMSG;
    if (stamp_matches(dir, sha256, &st))
        return steal_fd(&fd);
    char got[65];
    int rc = sha256_fd(fd, got, NULL);
    if (rc == 0 && strcmp(got, sha256) == 0) {
        write_stamp(dir, sha256, &st);
        return steal_fd(&fd);
    }
    /* serve's front door reads the store and cannot remove: the next worker to publish these bytes replaces them. */
    bool removed = unlink(path) == 0;
    log_warnx("artifact %s is damaged (its bytes hash to %s): %s", path, rc == 0 ? got : "(unreadable)",
              removed ? "removed from the store" : "left for a worker to replace");
    _cleanup_free_ char *stamp = stamp_path(dir, sha256);
    unlink(stamp);
    return -EBADMSG;
}

bool artifact_verify(const char *dir, const char *sha256, long long size)
{
    int fd = artifact_open(dir, sha256, size);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

int artifact_read_manifest(const char *dir, const char *sha256, char **body, size_t *len)
{
    _cleanup_free_ char *path = artifact_manifest_path(dir, sha256);
    _cleanup_free_ char *text = NULL;
    int rc = read_file(path, 64u << 20, &text, len);
    if (rc < 0)
        return rc;
    json_error_t je;
    json_t *doc = json_loadb(text, *len, 0, &je);
    const char *names = json_string_value(json_object_get(doc, "iso_sha256"));
    bool ok = names != NULL && strcmp(names, sha256) == 0;
    json_decref(doc);
    if (!ok) {
        log_warnx("artifact manifest %s does not name the ISO %s: not served", path, sha256);
        return -EBADMSG;
    }
    *body = steal_pointer(&text);
    return 0;
}

static void remove_artifact(const char *dir, const char *sha256)
{
    _cleanup_free_ char *iso = artifact_iso_path(dir, sha256), *man = artifact_manifest_path(dir, sha256),
                        *stamp = stamp_path(dir, sha256);
    unlink(iso);
    unlink(man);
    unlink(stamp);
}

/* Removes files in dir/tmp older than a day (a worker killed mid-publish). */
static void sweep_tmp(const char *dir)
{
    _cleanup_free_ char *tmp = xasprintf("%s/tmp", dir);
    DIR *d = opendir(tmp);
    struct dirent *e;
    time_t now = time(NULL);
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || strcmp(e->d_name, "..") == 0))
            continue;
        _cleanup_free_ char *path = xasprintf("%s/%s", tmp, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime > 86400)
            unlink(path);
    }
    if (d)
        closedir(d);
}

int artifact_gc(const char *dir, unsigned budget_mb, PGconn *c, struct artifact_gc_stats *gs, char *err,
                size_t errlen)
{
    memset(gs, 0, sizeof(*gs));
    struct artifact_row *rows;
    size_t n;
    enum db_status st = store_artifacts_lru(c, &rows, &n, err, errlen);
    if (st != DB_OK)
        return -1;
    long long total = 0;
    for (size_t i = 0; i < n; i++)
        total += rows[i].size;
    long long budget = (long long)budget_mb << 20;
    /* First what no build names, then the least recently downloaded while over budget. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            if (rows[i].size < 0)
                continue; /* gone already */
            bool drop = pass == 0 ? !rows[i].referenced : total > budget;
            if (!drop)
                continue;
            if (store_artifact_remove(c, rows[i].sha256, err, errlen) != DB_OK) {
                free(rows);
                return -1;
            }
            remove_artifact(dir, rows[i].sha256);
            log_infox("artifact %s (%lld bytes) garbage-collected: %s", rows[i].sha256, rows[i].size,
                      pass == 0 ? "no build names it" : "over the size budget, least recently downloaded");
            total -= rows[i].size;
            gs->removed++;
            gs->bytes_removed += rows[i].size;
            rows[i].size = -1;
        }
    }
    gs->bytes_kept = total;
    free(rows);
    sweep_tmp(dir);
    return 0;
}
