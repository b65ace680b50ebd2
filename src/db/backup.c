/*
 * Backups: pg_dump in the snapshot the row counts were taken in, a checksum
 * and a manifest beside each dump, retention that never loses the newest
 * good set, and a restore test that proves the newest set restores.
 *
 * Files live in backup_dir (0700, files 0600: a dump holds every secret the
 * database holds). Every command that writes or deletes there holds an
 * exclusive flock on backup_dir/.lock, so a prune never deletes a set that
 * a restore test is reading, and a backup never sees another one's
 * temporaries. These are command-line functions: they fork helpers, may
 * sleep waiting for the lock and touch the environment (PGPASSWORD).
 */
#include "db/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "db/pool.h"
#include "log.h"
#include "proc.h"
#include "digest.h"
#include "util.h"
#include "banned.h"

#define SET_PREFIX "debate-"
#define STAMP_LEN 16 /* YYYYMMDDTHHMMSSZ */
#define DAY_SECONDS 86400LL
#define MANIFEST_FORMAT 1
#define MANIFEST_MAX (16u << 20)
#define LOCK_WAIT_SECONDS 600
#define SCRATCH_PREFIX "debate_restore_test_"
#define RESTORE_RECORD "restore-test.json"
/* In DATA_DIR, 0644: the time of the last success alone, for a front door that cannot read backup_dir. */
#define RESTORE_SUCCESS "restore-test-success.json"

/* The three files of a set, in the order they are published. */
enum set_file { F_DUMP, F_SHA, F_MANIFEST, F_COUNT };
static const char *const suffixes[F_COUNT] = {".dump", ".dump.sha256", ".manifest.json"};

/* ---- names and times ---- */

/* t as a set's timestamp (20260131T020000Z) or, rfc3339, as 2026-01-31T02:00:00Z. */
static void format_utc(long long t, bool rfc3339, char *out, size_t outlen)
{
    time_t tt = (time_t)t;
    struct tm tm;
    size_t n = 0;
    if (gmtime_r(&tt, &tm) != NULL)
        n = rfc3339 ? strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) : strftime(out, outlen, "%Y%m%dT%H%M%SZ", &tm);
    if (n == 0)
        snprintf(out, outlen, "invalid-time");
}

/* Parses the YYYYMMDDTHHMMSSZ at the start of s; 0 or -1. */
static int parse_stamp(const char *s, long long *t)
{
    for (int i = 0; i < STAMP_LEN; i++) {
        bool want_digit = i != 8 && i != 15;
        char c = s[i];
        if (want_digit ? (c < '0' || c > '9') : c != (i == 8 ? 'T' : 'Z'))
            return -1;
    }
    char copy[STAMP_LEN + 1];
    memcpy(copy, s, STAMP_LEN);
    copy[STAMP_LEN] = '\0';
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(copy, "%Y%m%dT%H%M%SZ", &tm);
    if (end == NULL || *end != '\0')
        return -1;
    *t = (long long)timegm(&tm);
    return 0;
}

static char *set_path(const char *dir, const char *stamp, enum set_file f)
{
    return xasprintf("%s/" SET_PREFIX "%s%s", dir, stamp, suffixes[f]);
}

/* ---- files ---- */

/* Creates path (which must not exist) 0600 with data, fsynced. 0 or -errno. */
static int write_new_file(const char *path, const char *data, size_t len)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        data += n;
        len -= (size_t)n;
    }
    return fsync(fd) < 0 ? -errno : 0;
}

/* rename(2) that refuses to replace an existing file. 0 or -errno. */
static int rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -errno;
    /* A file system without RENAME_NOREPLACE: link(2) never replaces either. */
    if (link(from, to) < 0)
        return -errno;
    unlink(from);
    return 0;
}

/* SHA-256 of a whole file and its size; the error names the file. */
static int dump_sha256(const char *path, char hex[65], long long *size, char *err, size_t errlen)
{
    int rc = sha256_file(path, hex, size);
    if (rc < 0)
        snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(-rc));
    return rc < 0 ? -1 : 0;
}

/*
 * Takes the exclusive lock of the backup directory, waiting up to
 * LOCK_WAIT_SECONDS: timers that missed their time fire together at boot.
 */
static int lock_dir(const char *dir, int *lockfd, char *err, size_t errlen)
{
    _cleanup_free_ char *path = xasprintf("%s/.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open \"%s\": %s", path, strerror(errno));
        return -1;
    }
    for (int waited = 0;; waited++) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *lockfd = fd;
            return 0;
        }
        int e = errno;
        if (e != EWOULDBLOCK || waited >= LOCK_WAIT_SECONDS) {
            if (e == EWOULDBLOCK)
                snprintf(err, errlen, "another backup or restore test still holds \"%s\" after %d seconds", path,
                         waited);
            else
                snprintf(err, errlen, "cannot lock \"%s\": %s", path, strerror(e));
            close(fd);
            return -1;
        }
        if (waited == 0)
            log_infox("waiting for another backup or restore test to release \"%s\"", path);
        sleep(1);
    }
}

/* ---- the sets in the directory ---- */

struct set {
    char stamp[STAMP_LEN + 1];
    long long t;
    bool has[F_COUNT];
    char **extra; /* temporaries of this timestamp (file names) */
    size_t nextra;
};

struct setlist {
    struct set *v;
    size_t n, cap;
    char **stray; /* restore-test.json temporaries (file names) */
    size_t nstray;
};

static void setlist_release(struct setlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        for (size_t j = 0; j < l->v[i].nextra; j++)
            free(l->v[i].extra[j]);
        free(l->v[i].extra);
    }
    for (size_t i = 0; i < l->nstray; i++)
        free(l->stray[i]);
    free(l->stray);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static struct set *setlist_get(struct setlist *l, const char *stamp, long long t)
{
    for (size_t i = 0; i < l->n; i++)
        if (memcmp(l->v[i].stamp, stamp, STAMP_LEN) == 0)
            return &l->v[i];
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    struct set *s = &l->v[l->n++];
    memset(s, 0, sizeof(*s));
    memcpy(s->stamp, stamp, STAMP_LEN);
    s->t = t;
    return s;
}

static void setlist_add(struct setlist *l, const char *name)
{
    long long t;
    const char *stamp = name + strlen(SET_PREFIX);
    if (strncmp(name, RESTORE_RECORD ".tmp.", strlen(RESTORE_RECORD ".tmp.")) == 0) {
        l->stray = xrealloc(l->stray, (l->nstray + 1) * sizeof(*l->stray));
        l->stray[l->nstray++] = xstrdup(name);
        return;
    }
    if (strncmp(name, SET_PREFIX, strlen(SET_PREFIX)) != 0 || strlen(stamp) <= STAMP_LEN ||
        parse_stamp(stamp, &t) < 0)
        return;
    struct set *s = setlist_get(l, stamp, t);
    for (int f = 0; f < F_COUNT; f++) {
        if (strcmp(stamp + STAMP_LEN, suffixes[f]) == 0) {
            s->has[f] = true;
            return;
        }
    }
    s->extra = xrealloc(s->extra, (s->nextra + 1) * sizeof(*s->extra));
    s->extra[s->nextra++] = xstrdup(name);
}

static int set_cmp(const void *a, const void *b)
{
    return memcmp(((const struct set *)a)->stamp, ((const struct set *)b)->stamp, STAMP_LEN);
}

/* Lists the sets of dir, oldest first. A missing dir has none. */
static int setlist_scan(const char *dir, struct setlist *l, char *err, size_t errlen)
{
    memset(l, 0, sizeof(*l));
    DIR *d = opendir(dir);
    if (d == NULL && errno == ENOENT)
        return 0;
    if (d == NULL) {
        snprintf(err, errlen, "cannot list \"%s\": %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        setlist_add(l, e->d_name);
    closedir(d);
    if (l->n > 0)
        qsort(l->v, l->n, sizeof(*l->v), set_cmp);
    return 0;
}

/* ---- manifests and verification ---- */

/* Why a parsed manifest is unusable, or NULL. */
static const char *manifest_problem(json_t *m, const char *dump_name)
{
    if (!json_is_object(m))
        return "not a JSON object";
    if (json_integer_value(json_object_get(m, "format")) != MANIFEST_FORMAT)
        return "unknown \"format\" (want 1)";
    const char *dump = json_string_value(json_object_get(m, "dump"));
    if (dump == NULL || strcmp(dump, dump_name) != 0)
        return "\"dump\" does not name the dump beside it";
    json_t *size = json_object_get(m, "size");
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return "\"size\" is not a byte count";
    if (!is_sha256_hex(json_string_value(json_object_get(m, "sha256"))))
        return "\"sha256\" is not 64 lower-case hex digits";
    if (!json_is_integer(json_object_get(m, "schema_version")))
        return "\"schema_version\" is not an integer";
    json_t *tables = json_object_get(m, "tables");
    if (!json_is_object(tables))
        return "\"tables\" is not an object";
    const char *name;
    json_t *count;
    json_object_foreach(tables, name, count) {
        if (!json_is_integer(count) || json_integer_value(count) < 0)
            return "a row count in \"tables\" is not a non-negative integer";
    }
    return NULL;
}

static json_t *manifest_load(const char *dir, const struct set *s, char *err, size_t errlen)
{
    _cleanup_free_ char *path = set_path(dir, s->stamp, F_MANIFEST);
    _cleanup_free_ char *dump_name = xasprintf(SET_PREFIX "%s%s", s->stamp, suffixes[F_DUMP]);
    _cleanup_free_ char *text = NULL;
    size_t len;
    int rc = read_file(path, MANIFEST_MAX, &text, &len);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(-rc));
        return NULL;
    }
    json_error_t je;
    json_t *m = json_loadb(text, len, 0, &je);
    if (m == NULL) {
        snprintf(err, errlen, "manifest \"%s\" is not valid JSON: %s (line %d)", path, je.text, je.line);
        return NULL;
    }
    const char *problem = manifest_problem(m, dump_name);
    if (problem != NULL) {
        snprintf(err, errlen, "manifest \"%s\" is not valid: %s", path, problem);
        json_decref(m);
        return NULL;
    }
    return m;
}

/* The checksum file must name the manifest's checksum and the dump. */
static int check_sha_file(const char *dir, const struct set *s, const char *want, char *err, size_t errlen)
{
    _cleanup_free_ char *path = set_path(dir, s->stamp, F_SHA);
    _cleanup_free_ char *line = xasprintf("%s  " SET_PREFIX "%s%s\n", want, s->stamp, suffixes[F_DUMP]);
    _cleanup_free_ char *text = NULL;
    size_t len;
    int rc = read_file(path, 4096, &text, &len);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(-rc));
        return -1;
    }
    if (strcmp(text, line) != 0) {
        snprintf(err, errlen, "checksum mismatch: \"%s\" disagrees with the manifest", path);
        return -1;
    }
    return 0;
}

/* A set is good when its dump has the manifest's size and SHA-256. */
static int set_verify(const char *dir, const struct set *s, json_t *m, char *err, size_t errlen)
{
    _cleanup_free_ char *path = set_path(dir, s->stamp, F_DUMP);
    const char *want = json_string_value(json_object_get(m, "sha256"));
    long long want_size = (long long)json_integer_value(json_object_get(m, "size"));
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(err, errlen, "cannot read the dump \"%s\": %s", path, strerror(errno));
        return -1;
    }
    if ((long long)st.st_size != want_size) {
        snprintf(err, errlen,
                 "size mismatch: the dump \"%s\" has %lld bytes, its manifest says %lld (truncated or damaged)", path,
                 (long long)st.st_size, want_size);
        return -1;
    }
    char hex[65];
    long long size;
    if (dump_sha256(path, hex, &size, err, errlen) < 0)
        return -1;
    if (strcmp(hex, want) != 0) {
        snprintf(err, errlen, "checksum mismatch: the dump is damaged (\"%s\" has SHA-256 %s, its manifest says %s)",
                 path, hex, want);
        return -1;
    }
    return check_sha_file(dir, s, want, err, errlen);
}

static bool set_is_good(const char *dir, const struct set *s)
{
    char err[1024];
    json_t *m = manifest_load(dir, s, err, sizeof(err));
    bool good = m != NULL && set_verify(dir, s, m, err, sizeof(err)) == 0;
    if (!good)
        log_warnx("backup \"" SET_PREFIX "%s\" is not usable: %s", s->stamp, err);
    json_decref(m);
    return good;
}

/* ---- retention ---- */

/* The index of the newest good set, or -1. Verifies newest first, stops at the first good one. */
static long newest_good(const char *dir, const struct setlist *l)
{
    for (size_t i = l->n; i-- > 0;)
        if (l->v[i].has[F_MANIFEST] && set_is_good(dir, &l->v[i]))
            return (long)i;
    return -1;
}

/* Whether a complete set is past the retention window: only then is the newest good one needed. */
static bool any_expired(const struct setlist *l, long long now, long long max_age)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].has[F_MANIFEST] && now - l->v[i].t > max_age)
            return true;
    return false;
}

static int remove_file(const char *dir, const char *name, char *err, size_t errlen)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot delete \"%s\": %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Deletes a set, the manifest first: a half-deleted set is incomplete, never "complete". */
static int set_delete(const char *dir, const struct set *s, char *err, size_t errlen)
{
    static const enum set_file order[] = {F_MANIFEST, F_DUMP, F_SHA};
    for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
        _cleanup_free_ char *name = xasprintf(SET_PREFIX "%s%s", s->stamp, suffixes[order[i]]);
        if (s->has[order[i]] && remove_file(dir, name, err, errlen) < 0)
            return -1;
    }
    for (size_t i = 0; i < s->nextra; i++)
        if (remove_file(dir, s->extra[i], err, errlen) < 0)
            return -1;
    return 0;
}

/* Temporaries of a kept set, from a run that died: gone after a day. */
static int delete_extras(const char *dir, const struct set *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->nextra; i++) {
        log_infox("deleting leftover temporary file \"%s/%s\"", dir, s->extra[i]);
        if (remove_file(dir, s->extra[i], err, errlen) < 0)
            return -1;
    }
    return 0;
}

static int prune_set(const char *dir, const struct set *s, bool keeper, long long now, long long max_age, int *deleted,
                     char *err, size_t errlen)
{
    long long age = now - s->t;
    bool complete = s->has[F_MANIFEST];
    if (complete && age > max_age && !keeper) {
        log_infox("deleting backup \"%s/" SET_PREFIX "%s\" (%lld days old)", dir, s->stamp, age / DAY_SECONDS);
    } else if (!complete && age > DAY_SECONDS) {
        log_infox("deleting incomplete backup \"%s/" SET_PREFIX "%s\" (no manifest, %lld days old)", dir, s->stamp,
                  age / DAY_SECONDS);
    } else {
        if (complete && age > max_age)
            log_infox("keeping backup \"%s/" SET_PREFIX "%s\" (%lld days old): it is the newest good one", dir,
                      s->stamp, age / DAY_SECONDS);
        return age > DAY_SECONDS ? delete_extras(dir, s, err, errlen) : 0;
    }
    if (set_delete(dir, s, err, errlen) < 0)
        return -1;
    (*deleted)++;
    return 0;
}

/* Temporaries of restore-test.json that a dead run left, by their age. */
static int prune_stray(const char *dir, const struct setlist *l, long long now, char *err, size_t errlen)
{
    for (size_t i = 0; i < l->nstray; i++) {
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, l->stray[i]);
        struct stat st;
        if (lstat(path, &st) < 0 || now - (long long)st.st_mtime <= DAY_SECONDS)
            continue;
        log_infox("deleting leftover temporary file \"%s\"", path);
        if (remove_file(dir, l->stray[i], err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* The retention rule; the caller holds the lock. */
static int prune_locked(const struct config *cfg, long long now, int *deleted, char *err, size_t errlen)
{
    const char *dir = cfg->backup_dir;
    long long max_age = (long long)cfg->backup_retention_days * DAY_SECONDS;
    struct setlist l;
    int rc = -1;
    *deleted = 0;
    if (setlist_scan(dir, &l, err, errlen) < 0)
        goto out;
    long keep = any_expired(&l, now, max_age) ? newest_good(dir, &l) : -1;
    if (keep < 0 && any_expired(&l, now, max_age))
        log_warnx("no good backup in \"%s\": every set is incomplete or damaged", dir);
    for (size_t i = 0; i < l.n; i++)
        if (prune_set(dir, &l.v[i], (long)i == keep, now, max_age, deleted, err, errlen) < 0)
            goto out;
    if (prune_stray(dir, &l, now, err, errlen) < 0)
        goto out;
    if (*deleted > 0 && fsync_path(dir) < 0)
        log_warn("cannot fsync \"%s\"", dir);
    rc = 0;
out:
    setlist_release(&l);
    return rc;
}

int backup_prune(const struct config *cfg, long long now, int *deleted, char *err, size_t errlen)
{
    *deleted = 0;
    struct stat st;
    if (stat(cfg->backup_dir, &st) < 0 && errno == ENOENT)
        return 0; /* no backups yet: nothing to prune */
    _cleanup_close_ int lockfd = -1;
    if (lock_dir(cfg->backup_dir, &lockfd, err, errlen) < 0)
        return -1;
    return prune_locked(cfg, now, deleted, err, errlen);
}

/* ---- database helpers ---- */

/* Appends key='value' to *s, quoted as libpq wants. */
static void conninfo_append(char **s, const char *key, const char *val)
{
    size_t n = strlen(val);
    _cleanup_free_ char *q = xmalloc(2 * n + 1);
    char *p = q;
    for (size_t i = 0; i < n; i++) {
        if (val[i] == '\'' || val[i] == '\\')
            *p++ = '\\';
        *p++ = val[i];
    }
    *p = '\0';
    char *next = xasprintf("%s%s%s='%s'", *s, **s ? " " : "", key, q);
    free(*s);
    *s = next;
}

/*
 * Rewrites a connection string (key=value or URI) as key=value, with
 * dbname replaced when given and the password taken out into *password
 * (malloc'd, NULL when none): helpers get it through PGPASSWORD, not on a
 * command line every local user can read.
 */
static char *conninfo_rewrite(const char *conninfo, const char *dbname, char **password, char *err, size_t errlen)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    *password = NULL;
    if (opts == NULL) {
        snprintf(err, errlen, "cannot parse the database connection string: %s", perr ? perr : "out of memory");
        PQfreemem(perr);
        return NULL;
    }
    char *s = xstrdup("");
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL || o->val[0] == '\0' || (dbname != NULL && strcmp(o->keyword, "dbname") == 0))
            continue;
        if (strcmp(o->keyword, "password") == 0) {
            free(*password);
            *password = xstrdup(o->val);
            continue;
        }
        conninfo_append(&s, o->keyword, o->val);
    }
    if (dbname != NULL)
        conninfo_append(&s, "dbname", dbname);
    PQconninfoFree(opts);
    return s;
}

/* Opens a connection to conninfo with dbname replaced (NULL: kept). */
static PGconn *connect_to(const char *conninfo, const char *dbname, char *err, size_t errlen)
{
    _cleanup_free_ char *password = NULL;
    _cleanup_free_ char *ci = conninfo_rewrite(conninfo, dbname, &password, err, errlen);
    if (ci == NULL)
        return NULL;
    if (password != NULL)
        conninfo_append(&ci, "password", password);
    /* No statement timeout: counting a big table or dropping a big database takes what it takes. */
    return db_connect(ci, 0, err, errlen);
}

static int exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
    return db_exec(c, sql, err, errlen) == DB_OK ? 0 : -1;
}

/* Runs a query expecting one row; the result is the caller's (PQclear). */
static PGresult *query_row(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    if (db_check(c, r, err, errlen) != DB_OK || PQntuples(r) != 1) {
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            snprintf(err, errlen, "\"%s\" returned %d rows", sql, PQntuples(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

static int count_rows(PGconn *c, const char *table, long long *n, char *err, size_t errlen)
{
    char *id = PQescapeIdentifier(c, table, strlen(table));
    if (id == NULL) {
        snprintf(err, errlen, "cannot quote table name \"%s\": %s", table, PQerrorMessage(c));
        return -1;
    }
    _cleanup_free_ char *sql = xasprintf("SELECT count(*) FROM public.%s", id);
    PQfreemem(id);
    PGresult *r = query_row(c, sql, err, errlen);
    if (r == NULL)
        return -1;
    *n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

/* Row counts of every table in schema public, as {name: count}. */
static json_t *count_tables(PGconn *c, char *err, size_t errlen)
{
    json_t *tables = json_object();
    PGresult *r = PQexec(c, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename");
    if (db_check(c, r, err, errlen) != DB_OK)
        goto fail;
    for (int i = 0; i < PQntuples(r); i++) {
        long long n;
        const char *name = PQgetvalue(r, i, 0);
        if (count_rows(c, name, &n, err, errlen) < 0)
            goto fail;
        json_object_set_new(tables, name, json_integer((json_int_t)n));
    }
    PQclear(r);
    return tables;
fail:
    PQclear(r);
    json_decref(tables);
    return NULL;
}

/* max(version) of schema_migrations; 0 for a database debate never migrated. */
static int schema_version(PGconn *c, int *version, char *err, size_t errlen)
{
    PGresult *r = query_row(c, "SELECT to_regclass('public.schema_migrations') IS NOT NULL", err, errlen);
    if (r == NULL)
        return -1;
    bool exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    *version = 0;
    if (!exists)
        return 0;
    r = query_row(c, "SELECT coalesce(max(version), 0) FROM public.schema_migrations", err, errlen);
    if (r == NULL)
        return -1;
    *version = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

/* pg_dump or pg_restore matching the server: the cluster's own, else the newest installed. */
static char *tool_path(const struct config *cfg, const struct db *db, const char *tool, char *err, size_t errlen)
{
    char ignored[512];
    _cleanup_free_ char *bindir =
        db->embedded ? xstrdup(db->pg.bindir) : embedded_find_bindir(cfg, ignored, sizeof(ignored));
    char *path = bindir != NULL ? xasprintf("%s/%s", bindir, tool) : xasprintf("/usr/bin/%s", tool);
    if (access(path, X_OK) != 0) {
        snprintf(err, errlen, "cannot run \"%s\": %s (install postgresql-client, or set pg_bindir)", path,
                 strerror(errno));
        free(path);
        return NULL;
    }
    return path;
}

/*
 * Runs a PostgreSQL client program as ourselves (it only connects), with
 * the password, if any, in its environment. On failure err ends with what
 * the program printed.
 */
static int run_client(const char *const argv[], const char *password, struct proc_opts *o, char *err, size_t errlen)
{
    _cleanup_free_ char *pw = password != NULL ? xasprintf("PGPASSWORD=%s", password) : NULL;
    const char *env[] = {pw, NULL};
    if (pw != NULL)
        unsetenv("PGPASSWORD"); /* proc_run appends to the environment: an inherited one would win */
    o->env = env;
    int rc = proc_run(argv, o, err, errlen);
    o->env = NULL;
    if (rc == 0)
        return 0;
    size_t tl = strlen(o->tail);
    while (tl > 0 && (o->tail[tl - 1] == '\n' || o->tail[tl - 1] == ' '))
        o->tail[--tl] = '\0';
    const char *tail = tl > 800 ? o->tail + tl - 800 : o->tail;
    size_t n = strlen(err);
    if (tl > 0)
        snprintf(err + n, errlen - n, ": %s", tail);
    return -1;
}

/* ---- backup ---- */

struct backup {
    const struct config *cfg;
    struct db *db;
    long long now;
    char stamp[STAMP_LEN + 1];
    char *final[F_COUNT], *tmp[F_COUNT];
    bool published[F_COUNT];
    char *pg_dump;
    char *password;
    PGconn *conn;
    char *snapshot;
    json_t *tables;
    int schema_version;
    char sha256[65];
    long long size;
};

static void backup_init(struct backup *b, const struct config *cfg, struct db *db, long long now)
{
    memset(b, 0, sizeof(*b));
    b->cfg = cfg;
    b->db = db;
    b->now = now;
    format_utc(now, false, b->stamp, sizeof(b->stamp));
    for (int f = 0; f < F_COUNT; f++) {
        b->final[f] = set_path(cfg->backup_dir, b->stamp, f);
        b->tmp[f] = xasprintf("%s.tmp.%ld", b->final[f], (long)getpid());
    }
}

/* Removes what a failed run left; the files it already published too. */
static void backup_release(struct backup *b, bool failed)
{
    for (int f = F_COUNT; f-- > 0;) {
        if (failed && b->published[f])
            unlink(b->final[f]);
        if (b->tmp[f] != NULL)
            unlink(b->tmp[f]);
        free(b->final[f]);
        free(b->tmp[f]);
    }
    PQfinish(b->conn);
    free(b->pg_dump);
    free(b->password);
    free(b->snapshot);
    json_decref(b->tables);
    memset(b, 0, sizeof(*b));
}

/* Two runs in the same second must not overwrite each other. */
static int check_name_free(struct backup *b, char *err, size_t errlen)
{
    for (int f = 0; f < F_COUNT; f++) {
        if (access(b->final[f], F_OK) == 0) {
            snprintf(err, errlen,
                     "a backup named \"" SET_PREFIX "%s\" already exists in \"%s\" (two backups in the same second?); "
                     "not overwriting it",
                     b->stamp, b->cfg->backup_dir);
            return -1;
        }
    }
    return 0;
}

/*
 * Opens the transaction whose snapshot pg_dump will share: the row counts
 * and the schema version are read in it, so the manifest describes exactly
 * the dumped data.
 */
static int backup_snapshot(struct backup *b, char *err, size_t errlen)
{
    if ((b->conn = connect_to(b->db->conninfo, NULL, err, errlen)) == NULL)
        return -1;
    if (exec_ok(b->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, errlen) < 0)
        return -1;
    PGresult *r = query_row(b->conn, "SELECT pg_export_snapshot()", err, errlen);
    if (r == NULL)
        return -1;
    b->snapshot = xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    /* pg_dump may run for hours while this session sits idle in its transaction. */
    if (exec_ok(b->conn, "SET LOCAL idle_in_transaction_session_timeout = 0", err, errlen) < 0)
        return -1;
    if ((b->tables = count_tables(b->conn, err, errlen)) == NULL)
        return -1;
    return schema_version(b->conn, &b->schema_version, err, errlen);
}

static int backup_dump(struct backup *b, char *err, size_t errlen)
{
    _cleanup_free_ char *conninfo = conninfo_rewrite(b->db->conninfo, NULL, &b->password, err, errlen);
    if (conninfo == NULL)
        return -1;
    /* Created here, 0600, so that the dump is never readable by others, whatever the umask. */
    int rc = write_new_file(b->tmp[F_DUMP], "", 0);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create \"%s\": %s", b->tmp[F_DUMP], strerror(-rc));
        return -1;
    }
    _cleanup_free_ char *snap = xasprintf("--snapshot=%s", b->snapshot);
    _cleanup_free_ char *dbname = xasprintf("--dbname=%s", conninfo);
    const char *argv[] = {b->pg_dump, "--format=custom", "--no-password", snap, "--file", b->tmp[F_DUMP], dbname, NULL};
    struct proc_opts o = {0};
    if (run_client(argv, b->password, &o, err, errlen) < 0)
        return -1;
    /* The snapshot is no longer needed once pg_dump has finished. */
    if (exec_ok(b->conn, "COMMIT", err, errlen) < 0)
        return -1;
    if ((rc = fsync_path(b->tmp[F_DUMP])) < 0) {
        snprintf(err, errlen, "cannot fsync \"%s\": %s", b->tmp[F_DUMP], strerror(-rc));
        return -1;
    }
    return dump_sha256(b->tmp[F_DUMP], b->sha256, &b->size, err, errlen);
}

static char *pg_dump_version(struct backup *b)
{
    const char *argv[] = {b->pg_dump, "--version", NULL};
    struct proc_opts o = {0};
    char err[512];
    if (proc_run(argv, &o, err, sizeof(err)) != 0)
        return xstrdup("unknown");
    size_t n = strcspn(o.tail, "\n");
    return xstrndup(o.tail, n);
}

static char *manifest_text(struct backup *b)
{
    char created[32];
    format_utc(b->now, true, created, sizeof(created));
    const char *server = PQparameterStatus(b->conn, "server_version");
    _cleanup_free_ char *dump_version = pg_dump_version(b);
    _cleanup_free_ char *dump_name = xasprintf(SET_PREFIX "%s%s", b->stamp, suffixes[F_DUMP]);
    json_t *m = json_pack("{s:i, s:s, s:s, s:I, s:s, s:i, s:O, s:s, s:s}", "format", MANIFEST_FORMAT, "created_at",
                          created, "dump", dump_name, "size", (json_int_t)b->size, "sha256", b->sha256,
                          "schema_version", b->schema_version, "tables", b->tables, "server_version",
                          server ? server : "unknown", "pg_dump_version", dump_version);
    if (m == NULL)
        abort(); /* only out of memory, or a bug in the format above */
    char *text = json_dumps(m, JSON_SORT_KEYS | JSON_INDENT(2));
    json_decref(m);
    if (text == NULL)
        abort();
    char *out = xasprintf("%s\n", text);
    free(text);
    return out;
}

static int write_tmp(const char *path, const char *text, char *err, size_t errlen)
{
    int rc = write_new_file(path, text, strlen(text));
    if (rc < 0)
        snprintf(err, errlen, "cannot write \"%s\": %s", path, strerror(-rc));
    return rc < 0 ? -1 : 0;
}

static int publish(struct backup *b, enum set_file f, char *err, size_t errlen)
{
    int rc = rename_noreplace(b->tmp[f], b->final[f]);
    if (rc < 0) {
        snprintf(err, errlen, "cannot rename \"%s\" to \"%s\": %s", b->tmp[f], b->final[f],
                 rc == -EEXIST ? "another backup took that name in the same second" : strerror(-rc));
        return -1;
    }
    b->published[f] = true;
    return 0;
}

/* The checksum and the manifest, then every file into place, the manifest last. */
static int backup_finish(struct backup *b, char *err, size_t errlen)
{
    _cleanup_free_ char *sha = xasprintf("%s  " SET_PREFIX "%s%s\n", b->sha256, b->stamp, suffixes[F_DUMP]);
    _cleanup_free_ char *manifest = manifest_text(b);
    if (write_tmp(b->tmp[F_SHA], sha, err, errlen) < 0 || write_tmp(b->tmp[F_MANIFEST], manifest, err, errlen) < 0)
        return -1;
    if (publish(b, F_DUMP, err, errlen) < 0 || publish(b, F_SHA, err, errlen) < 0)
        return -1;
    /* The dump must be durable under its name before a manifest can vouch for it. */
    int rc = fsync_path(b->cfg->backup_dir);
    if (rc == 0 && publish(b, F_MANIFEST, err, errlen) < 0)
        return -1;
    if (rc == 0)
        rc = fsync_path(b->cfg->backup_dir);
    if (rc < 0) {
        snprintf(err, errlen, "cannot fsync \"%s\": %s", b->cfg->backup_dir, strerror(-rc));
        return -1;
    }
    return 0;
}

static int backup_prepare_dir(const char *dir, char *err, size_t errlen)
{
    int rc = mkdir_p(dir, 0700);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create \"%s\": %s", dir, strerror(-rc));
        return -1;
    }
    return 0;
}

int backup_run(const struct config *cfg, struct db *db, long long now, char *err, size_t errlen)
{
    uint64_t t0 = clock_monotonic_ms();
    struct backup b;
    _cleanup_close_ int lockfd = -1;
    int rc = -1;
    backup_init(&b, cfg, db, now);
    if (backup_prepare_dir(cfg->backup_dir, err, errlen) < 0 || lock_dir(cfg->backup_dir, &lockfd, err, errlen) < 0)
        goto out;
    if (check_name_free(&b, err, errlen) < 0)
        goto out;
    if ((b.pg_dump = tool_path(cfg, db, "pg_dump", err, errlen)) == NULL)
        goto out;
    if (backup_snapshot(&b, err, errlen) < 0 || backup_dump(&b, err, errlen) < 0 || backup_finish(&b, err, errlen) < 0)
        goto out;
    log_infox("backup \"%s\" written: %lld bytes, %zu tables, schema version %d, in %llu ms", b.final[F_DUMP], b.size,
              json_object_size(b.tables), b.schema_version, (unsigned long long)(clock_monotonic_ms() - t0));
    rc = 0;
    int deleted;
    char prune_err[1024];
    if (prune_locked(cfg, now, &deleted, prune_err, sizeof(prune_err)) < 0) {
        /* The backup stands; the caller hears why the pruning failed. */
        snprintf(err, errlen, "the backup was written, but pruning failed: %s", prune_err);
        rc = -1;
    }
out:
    backup_release(&b, rc < 0 && !b.published[F_MANIFEST]);
    return rc;
}

/* ---- restore test ---- */

struct restore {
    const struct config *cfg;
    struct db *db;
    const struct set *set;
    json_t *manifest;
    char *dump;    /* path */
    char scratch[64];
    PGconn *maint; /* the server's maintenance database */
    bool created;
    size_t ntables;
};

static int compare_tables(json_t *want, json_t *got, char *err, size_t errlen)
{
    const char *name;
    json_t *v;
    json_object_foreach(want, name, v) {
        json_t *g = json_object_get(got, name);
        if (g == NULL) {
            snprintf(err, errlen, "table \"%s\" is missing from the restored copy", name);
            return -1;
        }
        if (json_integer_value(g) != json_integer_value(v)) {
            snprintf(err, errlen, "table \"%s\" has %lld rows in the restored copy, the manifest says %lld", name,
                     (long long)json_integer_value(g), (long long)json_integer_value(v));
            return -1;
        }
    }
    json_object_foreach(got, name, v) {
        if (json_object_get(want, name) == NULL) {
            snprintf(err, errlen, "table \"%s\" is in the restored copy but not in the manifest", name);
            return -1;
        }
    }
    return 0;
}

/* Row counts and schema version of the scratch database against the manifest. */
static int restore_compare(struct restore *t, char *err, size_t errlen)
{
    int rc = -1, version = 0;
    json_t *got = NULL;
    PGconn *c = connect_to(t->db->conninfo, t->scratch, err, errlen);
    if (c == NULL || (got = count_tables(c, err, errlen)) == NULL || schema_version(c, &version, err, errlen) < 0)
        goto out;
    if (compare_tables(json_object_get(t->manifest, "tables"), got, err, errlen) < 0)
        goto out;
    int want = (int)json_integer_value(json_object_get(t->manifest, "schema_version"));
    if (version != want) {
        snprintf(err, errlen, "the restored copy has schema version %d, the manifest says %d", version, want);
        goto out;
    }
    t->ntables = json_object_size(got);
    rc = 0;
out:
    json_decref(got);
    PQfinish(c);
    return rc;
}

static int restore_load(struct restore *t, char *err, size_t errlen)
{
    _cleanup_free_ char *create = NULL;
    _cleanup_free_ char *conninfo = NULL;
    _cleanup_free_ char *password = NULL;
    _cleanup_free_ char *pg_restore = tool_path(t->cfg, t->db, "pg_restore", err, errlen);
    if (pg_restore == NULL)
        return -1;
    if ((t->maint = connect_to(t->db->conninfo, "postgres", err, errlen)) == NULL)
        return -1;
    /* template0: the restored copy must hold the dump and nothing else. */
    create = xasprintf("CREATE DATABASE %s TEMPLATE template0", t->scratch);
    if (exec_ok(t->maint, create, err, errlen) < 0)
        return -1;
    t->created = true;
    if ((conninfo = conninfo_rewrite(t->db->conninfo, t->scratch, &password, err, errlen)) == NULL)
        return -1;
    _cleanup_free_ char *dbname = xasprintf("--dbname=%s", conninfo);
    const char *argv[] = {pg_restore, "--exit-on-error", "--single-transaction", "--no-owner", "--no-password", dbname,
                          t->dump, NULL};
    struct proc_opts o = {0};
    if (run_client(argv, password, &o, err, errlen) < 0)
        return -1;
    return restore_compare(t, err, errlen);
}

/* Drops the scratch database, whatever happened before. */
static int restore_drop(struct restore *t, char *err, size_t errlen)
{
    if (!t->created)
        return 0;
    _cleanup_free_ char *sql = xasprintf("DROP DATABASE IF EXISTS %s%s", t->scratch,
                                         PQserverVersion(t->maint) >= 130000 ? " WITH (FORCE)" : "");
    t->created = false;
    if (exec_ok(t->maint, sql, err, errlen) < 0) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, " (dropping the scratch database \"%s\"; drop it by hand)", t->scratch);
        return -1;
    }
    return 0;
}

/*
 * backup_dir/restore-test.json: last_success, dump, duration_ms and tables
 * change only on success; a failure is recorded beside them in last_failure.
 */
static int record_result(const char *dir, const char *dump, uint64_t ms, size_t ntables, const char *failure,
                         char *err, size_t errlen)
{
    _cleanup_free_ char *path = xasprintf("%s/" RESTORE_RECORD, dir);
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    if (!json_is_object(doc)) {
        json_decref(doc);
        doc = json_object();
    }
    json_int_t now = (json_int_t)(clock_wall_ms() / 1000);
    if (failure == NULL) {
        json_object_set_new(doc, "last_success", json_integer(now));
        json_object_set_new(doc, "dump", json_string(dump));
        json_object_set_new(doc, "duration_ms", json_integer((json_int_t)ms));
        json_object_set_new(doc, "tables", json_integer((json_int_t)ntables));
    } else {
        json_object_set_new(doc, "last_failure",
                            json_pack("{s:I, s:s, s:I, s:s}", "time", now, "dump", dump, "duration_ms",
                                      (json_int_t)ms, "error", failure));
    }
    char *dumped = json_dumps(doc, JSON_SORT_KEYS | JSON_INDENT(2));
    json_decref(doc);
    if (dumped == NULL)
        abort();
    _cleanup_free_ char *text = xasprintf("%s\n", dumped);
    free(dumped);
    int rc = write_file_atomic(path, text, strlen(text), 0600);
    if (rc < 0)
        snprintf(err, errlen, "cannot record the result in \"%s\": %s", path, strerror(-rc));
    return rc < 0 ? -1 : 0;
}

/* The newest complete set, or NULL with a message. */
static const struct set *newest_complete(const struct config *cfg, const struct setlist *l, char *err, size_t errlen)
{
    for (size_t i = l->n; i-- > 0;)
        if (l->v[i].has[F_MANIFEST])
            return &l->v[i];
    snprintf(err, errlen, "no complete backup in \"%s\" (run debate backup first)", cfg->backup_dir);
    return NULL;
}

static int restore_run(struct restore *t, char *err, size_t errlen)
{
    if ((t->manifest = manifest_load(t->cfg->backup_dir, t->set, err, errlen)) == NULL)
        return -1;
    if (set_verify(t->cfg->backup_dir, t->set, t->manifest, err, errlen) < 0)
        return -1;
    snprintf(t->scratch, sizeof(t->scratch), SCRATCH_PREFIX "%ld", (long)getpid());
    int rc = restore_load(t, err, errlen);
    char drop_err[1024];
    if (restore_drop(t, drop_err, sizeof(drop_err)) < 0) {
        log_errorx("%s", drop_err);
        if (rc == 0)
            snprintf(err, errlen, "%s", drop_err);
        rc = -1;
    }
    return rc;
}

int backup_restore_test(const struct config *cfg, struct db *db, char *err, size_t errlen)
{
    uint64_t t0 = clock_monotonic_ms();
    struct setlist l = {0};
    struct restore t = {.cfg = cfg, .db = db};
    _cleanup_close_ int lockfd = -1;
    _cleanup_free_ char *name = NULL;
    int rc = -1;
    if (access(cfg->backup_dir, F_OK) == 0 && lock_dir(cfg->backup_dir, &lockfd, err, errlen) < 0)
        goto out;
    if (setlist_scan(cfg->backup_dir, &l, err, errlen) < 0 || (t.set = newest_complete(cfg, &l, err, errlen)) == NULL)
        goto out;
    name = xasprintf(SET_PREFIX "%s%s", t.set->stamp, suffixes[F_DUMP]);
    t.dump = set_path(cfg->backup_dir, t.set->stamp, F_DUMP);
    rc = restore_run(&t, err, errlen);
    uint64_t ms = clock_monotonic_ms() - t0;
    if (rc == 0) {
        log_infox("restore test of \"%s\" passed: %zu tables and schema version %d match the manifest, in %llu ms",
                  t.dump, t.ntables, (int)json_integer_value(json_object_get(t.manifest, "schema_version")),
                  (unsigned long long)ms);
    } else {
        log_errorx("restore test of \"%s\" failed after %llu ms: %s", t.dump, (unsigned long long)ms, err);
    }
    char rec_err[1024];
    int recorded = record_result(cfg->backup_dir, name, ms, t.ntables, rc == 0 ? NULL : err, rec_err, sizeof(rec_err));
    if (recorded < 0 && rc == 0) {
        snprintf(err, errlen, "%s", rec_err);
        rc = -1;
    } else if (recorded == 0 && rc == 0 && backup_share_restore_success(cfg) < 0) {
        log_warnx("cannot write \"%s/" RESTORE_SUCCESS "\": /metrics and /ready of a server started as root will "
                  "not see this restore test",
                  cfg->data_dir);
    }
out:
    PQfinish(t.maint);
    json_decref(t.manifest);
    free(t.dump);
    setlist_release(&l);
    return rc;
}

static long long read_last_success(const char *path)
{
    json_error_t e;
    json_t *doc = json_load_file(path, 0, &e);
    if (doc == NULL)
        return 0;
    json_int_t t = json_integer_value(json_object_get(doc, "last_success"));
    json_decref(doc);
    return (long long)t;
}

long long backup_last_restore_test(const struct config *cfg)
{
    _cleanup_free_ char *path = xasprintf("%s/" RESTORE_RECORD, cfg->backup_dir);
    if (access(path, R_OK) == 0 || errno != EACCES)
        return read_last_success(path);
    /* serve's unprivileged front door: backup_dir is root's alone. */
    _cleanup_free_ char *shared = xasprintf("%s/" RESTORE_SUCCESS, cfg->data_dir);
    return read_last_success(shared);
}

int backup_share_restore_success(const struct config *cfg)
{
    _cleanup_free_ char *path = xasprintf("%s/" RESTORE_RECORD, cfg->backup_dir);
    _cleanup_free_ char *shared = xasprintf("%s/" RESTORE_SUCCESS, cfg->data_dir);
    long long t = read_last_success(path);
    if (t <= 0)
        return 0;
    _cleanup_free_ char *text = xasprintf("{\"last_success\": %lld}\n", t);
    return write_file_atomic(shared, text, strlen(text), 0644);
}
