/*
 * debate: one binary, several subcommands. This file only parses the
 * command line and hands over to the module that does the work.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/recipe.h"
#include "engine/resolve.h"
#include "engine/sandbox.h"
#include "config.h"
#include "db/backup.h"
#include "db/db.h"
#include "db/migrate.h"
#include "http/server.h"
#include "log.h"
#include "proc.h"
#include "service/worker.h"
#include "util.h"
#include "banned.h"

static void usage(FILE *out)
{
    fputs("usage: debate <command> [options]\n"
          "\n"
          "commands:\n"
          "  serve [--config FILE] [--check]   run the HTTPS API (--check: validate the configuration and exit)\n"
          "  worker [--config FILE] [--workers N]\n"
          "                                    run build workers only (other machines; same database and artifact_dir)\n"
          "  migrate [--config FILE]           bring the database schema up to date\n"
          "  backup [--config FILE] [--now TIME] [--prune-only]\n"
          "                                    dump the database, then apply the retention rule\n"
          "  restore-test [--config FILE]      restore the newest dump into a scratch database and compare\n"
          "  build RECIPE -o OUT.iso [--lock LOCK] [--mirror URL] [--hook-timeout SECONDS] [--timeout SECONDS]\n"
          "                                    build the ISO (and OUT.iso.manifest.json) in the sandbox; needs root\n"
          "  sandbox [--memory MB] [--pids N] [--cpu SECONDS] [--disk MB] [--timeout SECONDS] [--in DIR]\n"
          "          -- PROGRAM [ARGS...]      run PROGRAM in the sandbox every build runs in (DIR read-only\n"
          "                                    at /mnt/in); exit 125: a limit stopped it; needs root\n"
          "  hash RECIPE                        print the canonical recipe and its config_hash\n"
          "  lock RECIPE [--mirror URL] [--fetch]\n"
          "                                    resolve the recipe's packages, print the lock (--fetch: and cache them)\n"
          "  version                            print the version\n"
          "  help                               print this text\n"
          "\n"
          "Settings come from the file given with --config (or $DEBATE_CONFIG) and from\n"
          "DEBATE_* environment variables; see docs/configuration.md.\n",
          out);
}

static int load_config(struct config *cfg, const char *file)
{
    char err[4096];
    config_init(cfg);
    if (file == NULL)
        file = getenv("DEBATE_CONFIG");
    if (file != NULL && file[0] == '\0')
        file = NULL;
    if (config_load(cfg, file, err, sizeof(err)) < 0) {
        fprintf(stderr, "debate: invalid configuration:\n%s", err);
        return -1;
    }
    log_set_level((enum log_level)cfg->log_level);
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'n'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *file = NULL;
    int check = 0, c;
    while ((c = getopt_long(argc, argv, "c:nh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            file = optarg;
            break;
        case 'n':
            check = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "debate serve: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    struct config cfg;
    if (load_config(&cfg, file) < 0) {
        config_release(&cfg);
        return 1;
    }
    if (check) {
        config_print(&cfg, stdout);
        puts("configuration ok");
        config_release(&cfg);
        return 0;
    }
    struct server srv;
    char err[512];
    int rc = 1;
    if (server_init(&srv, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "debate serve: %s\n", err);
        goto out;
    }
    printf("debate serve: https://localhost:%u/\n", srv.https_port);
    printf("debate serve: http://localhost:%u/ redirects to https\n", srv.http_port);
    if (srv.ca_path != NULL)
        printf("debate serve: internal CA certificate at %s (trust it, or pass --cacert to curl)\n", srv.ca_path);
    fflush(stdout);
    rc = server_run(&srv);
out:
    server_release(&srv);
    config_release(&cfg);
    return rc;
}

/* The configuration and a recipe, for the commands that take one; messages name cmd. */
static int load_config_and_recipe(const char *cmd, const char *file, const char *path, struct config *cfg,
                                  struct recipe *r)
{
    if (load_config(cfg, file) < 0) {
        config_release(cfg);
        return -1;
    }
    struct recipe_error e;
    if (recipe_load(path, r, &e) < 0) {
        char msg[512];
        recipe_error_format(&e, msg, sizeof(msg));
        fprintf(stderr, "debate %s: %s: %s\n", cmd, path, msg);
        config_release(cfg);
        return -1;
    }
    return 0;
}

static int cmd_hash(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: debate hash RECIPE\n");
        return 2;
    }
    struct recipe r;
    struct recipe_error e;
    if (recipe_load(argv[1], &r, &e) < 0) {
        char msg[512];
        recipe_error_format(&e, msg, sizeof(msg));
        fprintf(stderr, "debate hash: %s: %s\n", argv[1], msg);
        return 1;
    }
    printf("%s\n%s\n", r.canonical, r.config_hash);
    recipe_release(&r);
    return 0;
}

static int cmd_lock(int argc, char **argv)
{
    static const struct option opts[] = {{"mirror", required_argument, NULL, 'm'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"fetch", no_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    const char *mirror = NULL, *file = NULL;
    int c, fetch = 0;
    while ((c = getopt_long(argc, argv, "m:c:", opts, NULL)) != -1) {
        if (c == 'm')
            mirror = optarg;
        else if (c == 'f')
            fetch = 1;
        else if (c == 'c')
            file = optarg;
        else
            return 2;
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "usage: debate lock RECIPE [--mirror URL] [--fetch]\n");
        return 2;
    }
    struct config cfg;
    struct recipe r;
    char msg[2048];
    int rc = 1;
    if (load_config_and_recipe("lock", file, argv[optind], &cfg, &r) < 0)
        return 1;
    _cleanup_free_ char *default_mirror = resolve_default_mirror();
    if (mirror == NULL)
        mirror = cfg.mirror[0] ? cfg.mirror : default_mirror;
    struct lock l;
    if (resolve_lock(&r, mirror, cfg.archive_keyring, cfg.cache_dir, &l, msg, sizeof(msg)) != ENGINE_OK) {
        fprintf(stderr, "debate lock: %s\n", msg);
    } else {
        printf("%s\n", l.json);
        fprintf(stderr, "debate lock: %zu packages, lock_hash %s\n", l.npkgs, l.hash);
        int fetched = 0;
        if (fetch && resolve_fetch(&l, cfg.cache_dir, &fetched, msg, sizeof(msg)) != ENGINE_OK)
            fprintf(stderr, "debate lock: %s\n", msg);
        else
            rc = 0;
        if (fetch && rc == 0)
            fprintf(stderr, "debate lock: %d packages downloaded into \"%s/debs\"\n", fetched, cfg.cache_dir);
        lock_release(&l);
    }
    recipe_release(&r);
    config_release(&cfg);
    return rc;
}

static bool parse_limit(const char *text, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v == 0 || v > 1000000000ul)
        return false;
    *out = (unsigned)v;
    return true;
}

static volatile sig_atomic_t build_interrupted;

static void on_build_signal(int sig)
{
    (void)sig;
    build_interrupted = 1;
}

struct progress_view {
    bool tty;
    int last_pct;
    enum engine_stage last_stage;
};

static void show_progress(void *arg, enum engine_stage stage, int pct, const char *message)
{
    struct progress_view *v = arg;
    if (!v->tty) {
        printf("debate build: %3d%% %-11s %s\n", pct, engine_stage_name(stage), message);
        fflush(stdout);
        return;
    }
    char bar[31];
    int filled = pct * 30 / 100;
    for (int i = 0; i < 30; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[30] = '\0';
    if (stage != v->last_stage && v->last_pct >= 0)
        fputc('\n', stderr);
    fprintf(stderr, "\r[%s] %3d%% %-11s %-60.60s", bar, pct, engine_stage_name(stage), message);
    if (stage == STAGE_DONE)
        fputc('\n', stderr);
    v->last_pct = pct;
    v->last_stage = stage;
}

static int cmd_build(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"mirror", required_argument, NULL, 'm'},
                                         {"hook-timeout", required_argument, NULL, 't'},
                                         {"lock", required_argument, NULL, 'l'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {NULL, 0, NULL, 0}};
    const char *output = NULL, *file = NULL, *mirror = NULL, *lock = NULL;
    unsigned hook_timeout = 300, timeout = 0;
    bool ok = true;
    int c;
    while ((c = getopt_long(argc, argv, "o:c:m:", opts, NULL)) != -1) {
        if (c == 'o')
            output = optarg;
        else if (c == 'c')
            file = optarg;
        else if (c == 'm')
            mirror = optarg;
        else if (c == 't') {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            hook_timeout = *end == '\0' && v <= 86400 ? (unsigned)v : 0;
        }
        else if (c == 'l')
            lock = optarg;
        else if (c == 'T')
            ok = ok && parse_limit(optarg, &timeout);
        else
            return 2;
    }
    if (!ok || optind + 1 != argc || output == NULL || hook_timeout == 0) {
        fprintf(stderr, "usage: debate build RECIPE -o OUT.iso [--lock LOCK] [--mirror URL] [--hook-timeout SECONDS] "
                        "[--timeout SECONDS]\n");
        return 2;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "debate build: must run as root (it builds in namespaces of its own)\n");
        return 1;
    }
    struct config cfg;
    struct recipe r;
    char msg[4096];
    if (load_config_and_recipe("build", file, argv[optind], &cfg, &r) < 0)
        return 1;
    sandbox_sweep_cgroups();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_build_signal; /* no SA_RESTART: waits end, the build stops */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct progress_view view = {isatty(STDERR_FILENO) != 0, -1, STAGE_RESOLVING};
    struct engine_opts o = {.cfg = &cfg, .output = output, .mirror = mirror, .lock_path = lock,
                            .hook_timeout_s = hook_timeout, .timeout_s = timeout,
                            .progress = show_progress, .progress_arg = &view, .interrupted = &build_interrupted};
    struct engine_result res;
    enum engine_error rc = engine_build(&r, &o, &res, msg, sizeof(msg));
    if (view.tty && view.last_pct >= 0 && rc != ENGINE_OK)
        fputc('\n', stderr);
    if (rc != ENGINE_OK)
        fprintf(stderr, "debate build: %s\n", msg);
    else
        printf("%s  %s\n", res.iso_sha256, output);
    recipe_release(&r);
    config_release(&cfg);
    return rc != ENGINE_OK ? 1 : 0;
}

/* ---- debate sandbox: a program in the builds' sandbox, for checking a deployment ---- */

static void forward_output(void *arg, const char *buf, size_t n)
{
    (void)arg;
    fwrite(buf, 1, n, stdout);
    fflush(stdout);
}

static int exec_payload(void *arg)
{
    char **argv = arg;
    execvp(argv[0], argv);
    fprintf(stderr, "debate sandbox: cannot run \"%s\": %s\n", argv[0], strerror(errno));
    return 127;
}

static int cmd_sandbox(int argc, char **argv)
{
    static const struct option opts[] = {
        {"memory", required_argument, NULL, 'M'}, {"pids", required_argument, NULL, 'P'},
        {"cpu", required_argument, NULL, 'C'},    {"disk", required_argument, NULL, 'D'},
        {"timeout", required_argument, NULL, 'T'}, {"in", required_argument, NULL, 'i'},
        {"config", required_argument, NULL, 'c'}, {NULL, 0, NULL, 0}};
    const char *file = NULL, *in = NULL;
    unsigned memory = 0, pids = 0, cpu = 0, disk = 0, wall = 0;
    bool ok = true;
    int c;
    while ((c = getopt_long(argc, argv, "+c:", opts, NULL)) != -1) {
        if (c == 'M')
            ok = ok && parse_limit(optarg, &memory);
        else if (c == 'P')
            ok = ok && parse_limit(optarg, &pids);
        else if (c == 'C')
            ok = ok && parse_limit(optarg, &cpu);
        else if (c == 'D')
            ok = ok && parse_limit(optarg, &disk);
        else if (c == 'T')
            ok = ok && parse_limit(optarg, &wall);
        else if (c == 'i')
            in = optarg;
        else if (c == 'c')
            file = optarg;
        else
            ok = false;
    }
    if (!ok || optind >= argc) {
        fprintf(stderr, "usage: debate sandbox [--memory MB] [--pids N] [--cpu SECONDS] [--disk MB] "
                        "[--timeout SECONDS] [--in DIR] -- PROGRAM [ARGS...]\n");
        return 2;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "debate sandbox: must run as root (it maps a range of user ids and mounts the build disk)\n");
        return 126;
    }
    struct config cfg;
    if (load_config(&cfg, file) < 0)
        return 126;
    /* The sandbox blanks its copy of our argument area: the payload gets its own copies. */
    char **program = xcalloc((size_t)(argc - optind + 1), sizeof(char *));
    for (int i = optind; i < argc; i++)
        program[i - optind] = xstrdup(argv[i]);
    struct sandbox_opts o = {.env = sandbox_base_env, .hostname = "debate-sandbox", .payload = exec_payload,
                             .arg = program, .on_output = forward_output, .cancel = &build_interrupted};
    sandbox_limits_from_config(&cfg, &o.limits);
    o.id_base = cfg.sandbox_id_base;
    if (memory)
        o.limits.memory_mb = memory;
    if (pids)
        o.limits.pids = pids;
    if (cpu)
        o.limits.cpu_s = cpu;
    if (disk)
        o.limits.disk_mb = disk;
    if (wall)
        o.limits.wall_s = wall;
    struct sandbox_bind bind = {.host = in, .inside = "/mnt/in"};
    char real_in[PATH_MAX];
    if (in != NULL) {
        if (realpath(in, real_in) == NULL) {
            fprintf(stderr, "debate sandbox: --in \"%s\": %s\n", in, strerror(errno));
            config_release(&cfg);
            return 126;
        }
        bind.host = real_in;
        o.binds = &bind;
        o.nbinds = 1;
    }
    _cleanup_free_ char *parent = xasprintf("%s/sandboxes", cfg.data_dir);
    int rc = mkdir_p(parent, 0700);
    _cleanup_free_ char *work = xasprintf("%s/XXXXXX", parent);
    if (rc < 0 || mkdtemp(work) == NULL) {
        fprintf(stderr, "debate sandbox: cannot create a work directory in \"%s\": %s\n", parent,
                strerror(rc < 0 ? -rc : errno));
        config_release(&cfg);
        return 126;
    }
    o.workdir = work;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_build_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sandbox_sweep_cgroups();
    struct sandbox_result res;
    char err[1024];
    int code;
    if (sandbox_run(&o, &res, err, sizeof(err)) < 0) {
        fprintf(stderr, "debate sandbox: %s\n", err);
        code = 126;
    } else if (res.cause == SANDBOX_OK || res.cause == SANDBOX_EXITED) {
        code = res.status;
    } else if (res.cause == SANDBOX_SIGNALED) {
        code = 128 + res.status;
    } else {
        fprintf(stderr, "debate sandbox: %s\n", res.message);
        code = 125;
    }
    const char *rm[] = {"/bin/rm", "-rf", "--one-file-system", work, NULL};
    struct proc_opts po = {0};
    proc_run(rm, &po, err, sizeof(err));
    for (int i = 0; program[i] != NULL; i++)
        free(program[i]);
    free(program);
    config_release(&cfg);
    return code;
}

/* ---- debate worker: build workers without the HTTP front door ---- */

static atomic_int worker_stop;

static void on_worker_signal(int sig)
{
    (void)sig;
    atomic_store(&worker_stop, 1);
}

static int cmd_worker(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"workers", required_argument, NULL, 'w'},
                                         {NULL, 0, NULL, 0}};
    const char *file = NULL;
    unsigned count = 0;
    bool ok = true;
    int c;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (c == 'c')
            file = optarg;
        else if (c == 'w')
            ok = ok && parse_limit(optarg, &count) && count <= 256;
        else
            ok = false;
    }
    if (!ok || optind != argc) {
        fprintf(stderr, "usage: debate worker [--config FILE] [--workers N]\n");
        return 2;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "debate worker: must run as root (builds run in a sandbox it sets up)\n");
        return 1;
    }
    struct config cfg;
    if (load_config(&cfg, file) < 0)
        return 1;
    struct db db;
    char err[1024];
    if (db_open(&db, &cfg, DB_OPEN_MIGRATE | DB_OPEN_WAIT, err, sizeof(err)) < 0) {
        fprintf(stderr, "debate worker: %s\n", err);
        config_release(&cfg);
        return 1;
    }
    if (count == 0)
        count = cfg.nworkers ? cfg.nworkers : 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_worker_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sandbox_sweep_cgroups();
    struct worker_pool pool;
    worker_pool_start(&pool, &cfg, db.conninfo, count, &worker_stop, NULL, NULL);
    log_infox("%u build workers started; artifacts in %s", count, cfg.artifact_dir);
    worker_pool_join(&pool);
    log_infox("workers stopped");
    db_close(&db);
    config_release(&cfg);
    return 0;
}

/* Options shared by the database commands. */
struct db_cmd {
    const char *file;
    long long now;
    int prune_only;
};

static int parse_time(const char *s, long long *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == NULL || *end != '\0')
        return -1;
    *out = (long long)timegm(&tm);
    return 0;
}

static int parse_db_cmd(int argc, char **argv, struct db_cmd *o, bool backup_opts)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"now", required_argument, NULL, 't'},
                                         {"prune-only", no_argument, NULL, 'p'},
                                         {NULL, 0, NULL, 0}};
    int c;
    o->now = (long long)(clock_wall_ms() / 1000);
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (c == 'c') {
            o->file = optarg;
        } else if (c == 't' && backup_opts) {
            if (parse_time(optarg, &o->now) < 0) {
                fprintf(stderr, "debate %s: --now wants a UTC time like 2026-01-31T02:00:00Z\n", argv[0]);
                return -1;
            }
        } else if (c == 'p' && backup_opts) {
            o->prune_only = 1;
        } else {
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "debate %s: unexpected argument \"%s\"\n", argv[0], argv[optind]);
        return -1;
    }
    return 0;
}

static int cmd_db(int argc, char **argv)
{
    const char *cmd = argv[0];
    bool is_backup = strcmp(cmd, "backup") == 0;
    struct db_cmd o = {NULL, 0, 0};
    if (parse_db_cmd(argc, argv, &o, is_backup) < 0)
        return 2;
    struct config cfg;
    if (load_config(&cfg, o.file) < 0) {
        config_release(&cfg);
        return 1;
    }
    char err[2048];
    int rc = 1;
    if (is_backup && o.prune_only) {
        int deleted;
        rc = backup_prune(&cfg, o.now, &deleted, err, sizeof(err)) < 0 ? 1 : 0;
        if (rc == 0)
            printf("debate backup: %d old backup%s deleted\n", deleted, deleted == 1 ? "" : "s");
        goto out;
    }
    struct db db;
    unsigned flags = strcmp(cmd, "migrate") == 0 ? DB_OPEN_MIGRATE : 0;
    if (db_open(&db, &cfg, flags, err, sizeof(err)) < 0)
        goto out;
    if (strcmp(cmd, "migrate") == 0) {
        printf("debate migrate: the database schema is at version %d\n", migrate_latest_version());
        rc = 0;
    } else if (is_backup) {
        rc = backup_run(&cfg, &db, o.now, err, sizeof(err)) < 0 ? 1 : 0;
    } else {
        rc = backup_restore_test(&cfg, &db, err, sizeof(err)) < 0 ? 1 : 0;
    }
    db_close(&db);
out:
    if (rc != 0)
        fprintf(stderr, "debate %s: %s\n", cmd, err);
    config_release(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "migrate") == 0 || strcmp(cmd, "backup") == 0 || strcmp(cmd, "restore-test") == 0)
        return cmd_db(argc - 1, argv + 1);
    if (strcmp(cmd, "hash") == 0)
        return cmd_hash(argc - 1, argv + 1);
    if (strcmp(cmd, "build") == 0)
        return cmd_build(argc - 1, argv + 1);
    if (strcmp(cmd, "lock") == 0)
        return cmd_lock(argc - 1, argv + 1);
    if (strcmp(cmd, "sandbox") == 0)
        return cmd_sandbox(argc - 1, argv + 1);
    if (strcmp(cmd, "worker") == 0)
        return cmd_worker(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        puts("debate " DEBATE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "debate: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
