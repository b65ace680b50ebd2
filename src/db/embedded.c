#include "db/embedded.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "log.h"
#include "proc.h"
#include "util.h"
#include "banned.h"

#define DB_NAME "debate"
#define DB_SUPERUSER "debate"

char *embedded_find_bindir(const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->pg_bindir[0] != '\0')
        return xstrdup(cfg->pg_bindir);
    DIR *d = opendir("/usr/lib/postgresql");
    long best = -1;
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char *end;
            long v = strtol(e->d_name, &end, 10);
            if (*end != '\0' || v <= best)
                continue;
            _cleanup_free_ char *ctl = xasprintf("/usr/lib/postgresql/%ld/bin/pg_ctl", v);
            if (access(ctl, X_OK) == 0)
                best = v;
        }
        closedir(d);
    }
    if (best < 0) {
        snprintf(err, errlen,
                 "no PostgreSQL server found under /usr/lib/postgresql (install postgresql, or set pg_bindir, "
                 "or database_url)");
        return NULL;
    }
    return xasprintf("/usr/lib/postgresql/%ld/bin", best);
}

static int run(struct embedded_pg *pg, const char *const argv[], char *err, size_t errlen)
{
    struct proc_opts o = {.user = pg->user};
    int rc = proc_run(argv, &o, err, errlen);
    if (rc != 0) {
        size_t n = strlen(err);
        /* The program's own words are the useful part of the message. */
        char *tail = o.tail;
        size_t tl = strlen(tail);
        if (tl > 600)
            tail += tl - 600;
        snprintf(err + n, errlen - n, ": %s", tail);
        return -1;
    }
    return 0;
}

/* Hands the tree to the cluster's user (when root); keeps DATA_DIR traversable. */
static int prepare_dirs(struct embedded_pg *pg, const struct config *cfg, char *err, size_t errlen)
{
    int rc;
    if ((rc = mkdir_p(pg->root, 0700)) < 0 || (rc = mkdir_p(pg->sockdir, 0700)) < 0) {
        snprintf(err, errlen, "cannot create \"%s\": %s", pg->root, strerror(-rc));
        return -1;
    }
    if (pg->user == NULL)
        return 0;
    uid_t uid;
    gid_t gid;
    if (proc_user_ids(pg->user, &uid, &gid, err, errlen) < 0)
        return -1;
    const char *paths[] = {pg->root, pg->sockdir};
    for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
        if (chown(paths[i], uid, gid) < 0) {
            snprintf(err, errlen, "cannot hand \"%s\" to user \"%s\": %s", paths[i], pg->user, strerror(errno));
            return -1;
        }
    }
    /* The cluster's user must reach DATA_DIR/pg: search, not read, permission. */
    if (chmod(cfg->data_dir, 0711) < 0) {
        snprintf(err, errlen, "cannot chmod \"%s\": %s", cfg->data_dir, strerror(errno));
        return -1;
    }
    const char *argv[] = {"/usr/bin/test", "-x", pg->root, NULL};
    struct proc_opts o = {.user = pg->user};
    char ignored[256];
    if (proc_run(argv, &o, ignored, sizeof(ignored)) != 0) {
        snprintf(err, errlen,
                 "the embedded PostgreSQL runs as user \"%s\", which cannot reach \"%s\": give it search "
                 "permission on the parent directories (chmod o+x or setfacl -m u:%s:x), choose a data_dir it can "
                 "reach (such as /var/lib/debate), or set database_url",
                 pg->user, pg->root, pg->user);
        return -1;
    }
    return 0;
}

static int initdb(struct embedded_pg *pg, char *err, size_t errlen)
{
    _cleanup_free_ char *bin = xasprintf("%s/initdb", pg->bindir);
    const char *argv[] = {bin, "-D", pg->datadir, "-U", DB_SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C",
                          "--no-instructions", NULL};
    log_infox("creating the embedded PostgreSQL cluster in \"%s\"", pg->datadir);
    if (run(pg, argv, err, errlen) < 0)
        return -1;
    pg->created = true;
    return 0;
}

/* The log's length before a start: pg_ctl -l appends, and what an earlier start wrote is not this start's reason. */
static off_t log_length(const char *logfile)
{
    struct stat st;
    return stat(logfile, &st) == 0 ? st.st_size : 0;
}

/*
 * The last FATAL or PANIC line that this start wrote to the cluster's log
 * (what came after byte from; of that, the last 4 KiB), into line (empty
 * when there is none): why postgres did not start, in its words.
 */
static void last_fatal_line(const char *logfile, off_t from, char *line, size_t linelen)
{
    char buf[4096];
    line[0] = '\0';
    _cleanup_close_ int fd = open(logfile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < from)
        from = 0; /* the log was replaced in between: all of it is new */
    if (size - from > (off_t)sizeof(buf) - 1)
        from = size - (off_t)sizeof(buf) + 1;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
    if (n <= 0)
        return;
    buf[n] = '\0';
    for (char *l = buf, *next; l != NULL; l = next) {
        next = strchr(l, '\n');
        if (next != NULL)
            *next++ = '\0';
        const char *what = strstr(l, "FATAL:");
        if (what == NULL)
            what = strstr(l, "PANIC:");
        if (what != NULL)
            snprintf(line, linelen, "%s", what);
    }
}

/*
 * pg_ctl start. When it fails, the message starts with the log's name and
 * the last fatal line this start wrote there (pg_ctl itself only says to
 * examine the log), ahead of pg_ctl's words, so that a short buffer keeps
 * them.
 */
static int start_cluster(struct embedded_pg *pg, char *err, size_t errlen)
{
    _cleanup_free_ char *bin = xasprintf("%s/pg_ctl", pg->bindir);
    _cleanup_free_ char *opts = xasprintf(
        "-c listen_addresses='' -c unix_socket_directories='%s' -c unix_socket_permissions=0777", pg->sockdir);
    const char *argv[] = {bin, "start", "-D", pg->datadir, "-l", pg->logfile, "-w", "-t", "120", "-o", opts, NULL};
    char why[1024];
    off_t before = log_length(pg->logfile);
    if (run(pg, argv, why, sizeof(why)) == 0)
        return 0;
    char fatal[512];
    last_fatal_line(pg->logfile, before, fatal, sizeof(fatal));
    snprintf(err, errlen, "the embedded PostgreSQL did not start (its log is \"%s\")%s%s\n%s", pg->logfile,
             fatal[0] ? ": " : "", fatal, why);
    return -1;
}

static bool is_running(struct embedded_pg *pg)
{
    _cleanup_free_ char *bin = xasprintf("%s/pg_ctl", pg->bindir);
    const char *argv[] = {bin, "status", "-D", pg->datadir, NULL};
    char err[256];
    struct proc_opts o = {.user = pg->user};
    return proc_run(argv, &o, err, sizeof(err)) == 0;
}

/*
 * After a crash postmaster.pid may name a process that is gone or, worse,
 * a new unrelated process that reuses the pid (even another postgres, such
 * as the system's cluster after a reboot); pg_ctl would then think the
 * cluster runs, or postgres would refuse to start. The pid is ours only if
 * it is a postgres whose working directory is this data directory.
 */
static void remove_stale_pidfile(struct embedded_pg *pg)
{
    _cleanup_free_ char *path = xasprintf("%s/postmaster.pid", pg->datadir);
    _cleanup_free_ char *text = NULL;
    size_t len;
    if (read_file(path, 65536, &text, &len) < 0)
        return;
    long pid = strtol(text, NULL, 10);
    _cleanup_free_ char *comm_path = xasprintf("/proc/%ld/comm", pid);
    _cleanup_free_ char *cwd_path = xasprintf("/proc/%ld/cwd", pid);
    _cleanup_free_ char *comm = NULL;
    _cleanup_free_ char *want = realpath(pg->datadir, NULL);
    char cwd[4096];
    ssize_t n = readlink(cwd_path, cwd, sizeof(cwd) - 1);
    if (n >= 0)
        cwd[n] = '\0';
    bool ours = pid > 0 && read_file(comm_path, 256, &comm, &len) == 0 && strncmp(comm, "postgres", 8) == 0 &&
                n >= 0 && want != NULL && strcmp(cwd, want) == 0;
    if (ours)
        return;
    log_warnx("removing stale \"%s\" (pid %ld is not this cluster's postgres)", path, pid);
    unlink(path);
}

static int create_database(struct embedded_pg *pg, char *err, size_t errlen)
{
    _cleanup_free_ char *conninfo = xasprintf("host=%s dbname=postgres user=" DB_SUPERUSER, pg->sockdir);
    PGconn *c = PQconnectdb(conninfo);
    int rc = -1;
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to the embedded cluster: %s", PQerrorMessage(c));
        goto out;
    }
    PGresult *r = PQexec(c, "SELECT 1 FROM pg_database WHERE datname = '" DB_NAME "'");
    bool exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    PQclear(r);
    if (!exists) {
        r = PQexec(c, "CREATE DATABASE " DB_NAME);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            snprintf(err, errlen, "cannot create database \"" DB_NAME "\": %s", PQerrorMessage(c));
            PQclear(r);
            goto out;
        }
        PQclear(r);
    }
    rc = 0;
out:
    PQfinish(c);
    return rc;
}

int embedded_start(struct embedded_pg *pg, const struct config *cfg, char *err, size_t errlen)
{
    memset(pg, 0, sizeof(*pg));
    if ((pg->bindir = embedded_find_bindir(cfg, err, errlen)) == NULL)
        return -1;
    pg->root = xasprintf("%s/pg", cfg->data_dir);
    pg->datadir = xasprintf("%s/data", pg->root);
    pg->sockdir = xasprintf("%s/run", pg->root);
    pg->logfile = xasprintf("%s/postgres.log", pg->root);
    pg->user = geteuid() == 0 ? cfg->embedded_db_user : NULL;
    struct sockaddr_un sun;
    if (strlen(pg->sockdir) + sizeof("/.s.PGSQL.5432") > sizeof(sun.sun_path)) {
        snprintf(err, errlen, "the data directory path is too long for a unix socket (\"%s\"); use a shorter data_dir",
                 pg->sockdir);
        return -1;
    }
    if (prepare_dirs(pg, cfg, err, errlen) < 0)
        return -1;
    _cleanup_free_ char *version = xasprintf("%s/PG_VERSION", pg->datadir);
    if (access(version, F_OK) != 0 && initdb(pg, err, errlen) < 0)
        return -1;
    remove_stale_pidfile(pg);
    if (is_running(pg)) {
        log_infox("adopting the embedded PostgreSQL cluster already running in \"%s\"", pg->datadir);
        pg->adopted = true;
    } else if (start_cluster(pg, err, errlen) < 0) {
        return -1;
    }
    pg->started = true;
    return create_database(pg, err, errlen);
}

int embedded_stop(struct embedded_pg *pg, bool stop_adopted, char *err, size_t errlen)
{
    if (!pg->started || (pg->adopted && !stop_adopted))
        return 0;
    _cleanup_free_ char *bin = xasprintf("%s/pg_ctl", pg->bindir);
    const char *argv[] = {bin, "stop", "-D", pg->datadir, "-m", "fast", "-w", "-t", "60", NULL};
    pg->started = false;
    return run(pg, argv, err, errlen);
}

int embedded_grant(struct embedded_pg *pg, gid_t gid, char *err, size_t errlen)
{
    if (chmod(pg->root, 0711) < 0 || chown(pg->sockdir, (uid_t)-1, gid) < 0 || chmod(pg->sockdir, 0750) < 0) {
        snprintf(err, errlen, "cannot open \"%s\" to group %ld: %s", pg->sockdir, (long)gid, strerror(errno));
        return -1;
    }
    return 0;
}

void embedded_release(struct embedded_pg *pg)
{
    free(pg->bindir);
    free(pg->root);
    free(pg->datadir);
    free(pg->sockdir);
    free(pg->logfile);
    memset(pg, 0, sizeof(*pg));
}

char *embedded_conninfo(const struct embedded_pg *pg)
{
    return xasprintf("host=%s dbname=" DB_NAME " user=" DB_SUPERUSER, pg->sockdir);
}
