/*
 * debate serve: the HTTPS API, its database and its build workers, in
 * three processes (docs/security.md, "The process model").
 *
 * As root, this process is a small supervisor. It loads the configuration,
 * starts the embedded PostgreSQL, reads the TLS key, binds every listening
 * socket (server_init), then forks:
 *
 * - the front door, which becomes the unprivileged "user" (privdrop.h),
 *   installs its seccomp allowlist (http/filter.h) and only then starts
 *   its threads and accepts connections (server_run);
 * - the worker process, which stays root (the sandbox needs it) and runs
 *   the build workers; it accepts nothing and shares nothing with the
 *   front door but PostgreSQL and the artifact store.
 *
 * The supervisor then only waits. SIGTERM or SIGINT is passed on to both;
 * a child that exits on its own is an error: it is logged, the other is
 * stopped the same way, and serve exits 1 (a service manager restarts
 * the whole, which is simpler to reason about than a half). The embedded
 * PostgreSQL is stopped last, once both are gone. Both children die with
 * the supervisor (PR_SET_PDEATHSIG), as the one process did before.
 *
 * Started as any other user, there is nothing to drop: serve runs the
 * front door in this process, and no workers (they need root).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "db/backup.h"
#include "db/db.h"
#include "engine/sandbox.h"
#include "http/filter.h"
#include "http/server.h"
#include "log.h"
#include "privdrop.h"
#include "service/worker.h"
#include "util.h"
#include "banned.h"

const struct cmd_usage cmd_serve_usage = {
    .name = "serve",
    .synopsis = "[--config FILE] [--check]",
    .summary = "run the HTTPS API (and the database and build workers it needs)",
    .options = "  -c, --config FILE    read settings from FILE (default: $DEBATE_CONFIG)\n"
               "  -n, --check          validate the configuration, print it and exit\n",
};

/* What the supervisor keeps about its two children. */
struct supervisor {
    struct server *srv;
    struct privdrop_user user;
    pid_t parent;
    pid_t frontdoor, worker; /* 0: not running */
    bool stopping;
    int rc;
};

static void banner(const struct server *srv)
{
    printf("debate serve: https://localhost:%u/\n", srv->https_port);
    printf("debate serve: http://localhost:%u/ redirects to https\n", srv->http_port);
    if (srv->ca_path != NULL)
        printf("debate serve: internal CA certificate at %s (trust it, or pass --cacert to curl)\n", srv->ca_path);
    fflush(stdout);
}

static void term_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
}

/* ---- the front door ---- */

/*
 * In the child: the privileges go before any thread starts and before the
 * first byte from the network is read. A failure here exits: a front door
 * that could not drop must not serve.
 */
static int frontdoor_main(struct supervisor *sup)
{
    char err[512];
    db_forget_cluster(&sup->srv->db);
    if (privdrop_apply(&sup->user, err, sizeof(err)) < 0)
        goto fail;
    /* The uid change cleared any earlier death signal; and the parent may be gone already. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != sup->parent) {
        snprintf(err, sizeof(err), "the supervisor is gone");
        goto fail;
    }
#if defined(__SANITIZE_ADDRESS__)
    /* LeakSanitizer's exit check ptraces this process's threads, which a non-dumpable process forbids. */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
    if (filter_install(err, sizeof(err)) < 0)
        goto fail;
    log_infox("front door running as user \"%s\" (uid %ld), no capabilities", sup->user.name, (long)sup->user.uid);
    return server_run(sup->srv);
fail:
    log_errorx("front door: %s", err);
    return 1;
}

/* ---- the worker process ---- */

static int worker_main(struct supervisor *sup)
{
    const struct config *cfg = sup->srv->cfg;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != sup->parent)
        return 1;
    db_forget_cluster(&sup->srv->db);
    server_close_listeners(sup->srv);
    sigset_t set;
    term_signals(&set);
    signal(SIGPIPE, SIG_IGN);
    /* Cgroups left by a server that died mid-build would count against this one's limits. */
    sandbox_prepare_cgroups();
    atomic_int stop = 0;
    struct worker_pool pool;
    worker_pool_start(&pool, cfg, sup->srv->db.conninfo, cfg->nworkers, &stop, NULL, NULL,
                      &sup->srv->service.identity);
    log_infox("%u build workers started", cfg->nworkers);
    int sig = 0;
    sigwait(&set, &sig);
    /* Builds in progress go back to the queue: another worker (or this server, restarted) takes them. */
    atomic_store(&stop, 1);
    worker_pool_join(&pool);
    log_infox("build workers stopped");
    return 0;
}

/* ---- the supervisor ---- */

/*
 * What the front door reads and must be able to reach as its user: the
 * data directory (search only), the artifact store (0755, files 0644 as
 * the workers publish them), the package indexes, the database socket.
 * Nothing in there becomes writable to it.
 */
static int share_dirs(struct supervisor *sup, char *err, size_t errlen)
{
    const struct config *cfg = sup->srv->cfg;
    _cleanup_free_ char *indexes = xasprintf("%s/indexes", cfg->cache_dir);
    const char *dirs[] = {cfg->artifact_dir, cfg->cache_dir, indexes};
    const unsigned modes[] = {0755, 0711, 0755};
    if (chmod(cfg->data_dir, 0711) < 0) {
        snprintf(err, errlen, "cannot chmod \"%s\": %s", cfg->data_dir, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        int rc = mkdir_p(dirs[i], modes[i]);
        if (rc < 0 || chmod(dirs[i], modes[i]) < 0) {
            snprintf(err, errlen, "cannot create \"%s\": %s", dirs[i], strerror(rc < 0 ? -rc : errno));
            return -1;
        }
    }
    /* Index directories made before they were made readable (the indexes are public, signed data). */
    DIR *d = opendir(indexes);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (is_sha256_hex(e->d_name) && fchmodat(dirfd(d), e->d_name, 0755, 0) < 0)
            log_warn("cannot chmod \"%s/%s\"", indexes, e->d_name);
    }
    if (d != NULL)
        closedir(d);
    /* A restore test that ran before this version wrote its time only in backup_dir. */
    int rc = backup_share_restore_success(cfg);
    if (rc < 0)
        log_warnx("cannot share the last restore test's time in \"%s\": %s", cfg->data_dir, strerror(-rc));
    return db_grant_client(&sup->srv->db, sup->user.gid, err, errlen);
}

/* Whether the front door's user can reach path: a child that becomes the user and looks. */
static bool user_reaches(const struct privdrop_user *u, const char *path)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        bool ok = setgroups(1, &u->gid) == 0 && setresgid(u->gid, u->gid, u->gid) == 0 &&
                  setresuid(u->uid, u->uid, u->uid) == 0 && access(path, X_OK) == 0;
        _exit(ok ? 0 : 1);
    }
    int status;
    return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int check_reach(struct supervisor *sup, char *err, size_t errlen)
{
    const struct server *srv = sup->srv;
    const char *paths[] = {srv->cfg->artifact_dir, srv->db.embedded ? srv->db.pg.sockdir : NULL};
    for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
        if (paths[i] != NULL && !user_reaches(&sup->user, paths[i])) {
            snprintf(err, errlen,
                     "the front door runs as user \"%s\", which cannot reach \"%s\": give it search permission on "
                     "the parent directories (chmod o+x), or choose a data_dir it can reach (such as "
                     "/var/lib/debate)",
                     sup->user.name, paths[i]);
            return -1;
        }
    }
    return 0;
}

/* Forks a child that runs fn: the parent gets its pid (or -1), the child 0 and fn's result in *child_rc. */
static pid_t spawn(struct supervisor *sup, int (*fn)(struct supervisor *), const sigset_t *orig, int *child_rc)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        log_warn("cannot fork");
    } else if (pid == 0) {
        sigset_t set;
        term_signals(&set);
        pthread_sigmask(SIG_SETMASK, orig, NULL);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        *child_rc = fn(sup);
    }
    return pid;
}

static const char *child_name(const struct supervisor *sup, pid_t pid)
{
    return pid == sup->frontdoor ? "the front door" : "the worker process";
}

static void stop_children(struct supervisor *sup)
{
    sup->stopping = true;
    if (sup->frontdoor > 0)
        kill(sup->frontdoor, SIGTERM);
    if (sup->worker > 0)
        kill(sup->worker, SIGTERM);
}

static void reap(struct supervisor *sup)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid != sup->frontdoor && pid != sup->worker)
            continue;
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!sup->stopping || !clean) {
            if (WIFSIGNALED(status))
                log_errorx("%s (pid %ld) was killed by signal %d%s", child_name(sup, pid), (long)pid,
                           WTERMSIG(status), sup->stopping ? "" : ": stopping the server");
            else
                log_errorx("%s (pid %ld) exited with status %d%s", child_name(sup, pid), (long)pid,
                           WIFEXITED(status) ? WEXITSTATUS(status) : -1, sup->stopping ? "" : ": stopping the server");
            sup->rc = 1;
        }
        if (pid == sup->frontdoor)
            sup->frontdoor = 0;
        else
            sup->worker = 0;
        if (!sup->stopping)
            stop_children(sup);
    }
}

/* Waits for both children; SIGTERM and SIGINT are passed on. */
static void supervise(struct supervisor *sup)
{
    sigset_t set;
    term_signals(&set);
    sigaddset(&set, SIGCHLD);
    while (sup->frontdoor > 0 || sup->worker > 0) {
        struct timespec tick = {1, 0};
        int sig = sigtimedwait(&set, NULL, &tick);
        if ((sig == SIGTERM || sig == SIGINT) && !sup->stopping) {
            log_infox("received %s: stopping the front door and the workers", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            stop_children(sup);
        }
        reap(sup);
    }
}

/* As root: the supervisor's exit status; in a forked child, the child's. */
static int serve_privsep(struct server *srv)
{
    struct supervisor sup = {.srv = srv, .parent = getpid()};
    char err[1024];
    if (privdrop_lookup(srv->cfg->user, &sup.user, err, sizeof(err)) < 0 || share_dirs(&sup, err, sizeof(err)) < 0 ||
        check_reach(&sup, err, sizeof(err)) < 0) {
        fprintf(stderr, "debate serve: %s\n", err);
        return 1;
    }
    if (sup.user.fallback)
        log_infox("no user \"debate\" on this system: the front door runs as \"%s\" (create a system user "
                  "\"debate\", or set \"user\")", sup.user.name);
    srv->service.nworkers = srv->cfg->nworkers;
    sigset_t set, orig;
    term_signals(&set);
    sigaddset(&set, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &set, &orig);
    int rc = 0;
    if (srv->cfg->nworkers > 0 && (sup.worker = spawn(&sup, worker_main, &orig, &rc)) == 0)
        return rc;
    if (sup.worker >= 0 && (sup.frontdoor = spawn(&sup, frontdoor_main, &orig, &rc)) == 0)
        return rc;
    server_close_listeners(srv);
    if (sup.worker < 0 || sup.frontdoor < 0) {
        sup.rc = 1;
        sup.worker = sup.worker < 0 ? 0 : sup.worker;
        sup.frontdoor = sup.frontdoor < 0 ? 0 : sup.frontdoor;
        stop_children(&sup);
    }
    supervise(&sup);
    log_infox("the front door and the worker process have stopped");
    return sup.rc;
}

/* Not root: nothing to drop, and no workers (the sandbox needs root). */
static int serve_unprivileged(struct server *srv)
{
    if (srv->cfg->nworkers > 0)
        log_warnx("not running as root: this server runs no build workers (builds wait for a debate worker); "
                  "set workers = 0 to say so");
    return server_run(srv);
}

static int serve_run(const struct config *cfg)
{
    struct server srv;
    char err[2048];
    int rc = 1;
    if (server_init(&srv, cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "debate serve: %s\n", err);
        goto out;
    }
    banner(&srv);
    rc = geteuid() == 0 ? serve_privsep(&srv) : serve_unprivileged(&srv);
out:
    /* In a child, server_release leaves the embedded PostgreSQL running: the supervisor stops it last. */
    server_release(&srv);
    return rc;
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'n'}, CMD_OPTION_HELP, {NULL, 0, NULL, 0}};
    const char *file = NULL;
    bool check = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:nh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            file = optarg;
            break;
        case 'n':
            check = true;
            break;
        case 'h':
            return cmd_help(&cmd_serve_usage);
        default:
            return cmd_usage_error(&cmd_serve_usage);
        }
    }
    int rc = cmd_operands(&cmd_serve_usage, argc, argv, 0, NULL);
    if (rc >= 0)
        return rc;
    struct config cfg;
    if (cmd_load_config(&cfg, file) < 0)
        return CMD_EXIT_CONFIG;
    rc = 0;
    if (check) {
        config_print(&cfg, stdout);
        puts("configuration ok");
    } else {
        rc = serve_run(&cfg);
    }
    config_release(&cfg);
    return rc;
}
