/*
 * debate sandbox: any program in the sandbox every build runs in, with the
 * configured limits (or the ones given), for checking a deployment.
 * Exit status: the program's, 128+N when signal N ended it, 125 when a
 * limit stopped it, 126 when the sandbox could not be set up, 127 when the
 * program could not be run.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "engine/sandbox.h"
#include "proc.h"
#include "util.h"
#include "banned.h"

const struct cmd_usage cmd_sandbox_usage = {
    .name = "sandbox",
    .synopsis = "[--memory MB] [--pids N] [--cpu SECONDS] [--disk MB] [--timeout SECONDS] [--in DIR] "
                "[--config FILE] -- PROGRAM [ARGS...]",
    .summary = "run PROGRAM in the sandbox of the builds; needs root",
    .options = "  -c, --config FILE    read settings from FILE (default: $DEBATE_CONFIG)\n"
               "      --memory MB      memory limit, swap included (default: sandbox_memory_mb)\n"
               "      --pids N         processes and threads at once (default: sandbox_pids)\n"
               "      --cpu SECONDS    CPU time (default: sandbox_cpu_s)\n"
               "      --disk MB        size of the build disk (default: sandbox_disk_mb)\n"
               "      --timeout SECONDS\n"
               "                       wall time (default: build_timeout)\n"
               "      --in DIR         DIR read-only at /mnt/in\n",
    .notes = "exit status: PROGRAM's own (128+N when signal N ended it); 125 a limit stopped\n"
             "it; 126 the sandbox could not be set up (or the configuration is invalid); 127\n"
             "PROGRAM was not found.\n",
};

static volatile sig_atomic_t sandbox_interrupted;

static void sandbox_on_signal(int sig)
{
    (void)sig;
    sandbox_interrupted = 1;
}

static void sandbox_forward_output(void *arg, const char *buf, size_t n)
{
    (void)arg;
    fwrite(buf, 1, n, stdout);
    fflush(stdout);
}

static int sandbox_exec_payload(void *arg)
{
    char **argv = arg;
    execvp(argv[0], argv);
    fprintf(stderr, "debate sandbox: cannot run \"%s\": %s\n", argv[0], strerror(errno));
    return 127;
}

/* What the command line asked for; zero limits come from the configuration. */
struct sandbox_request {
    const char *file;
    const char *in;
    struct sandbox_limits limits;
    char **program; /* NULL-terminated copies: the sandbox blanks our own argument area */
};

static void sandbox_request_release(struct sandbox_request *q)
{
    for (int i = 0; q->program != NULL && q->program[i] != NULL; i++)
        free(q->program[i]);
    free(q->program);
    q->program = NULL;
}

/* Parses the options into q; returns -1 to go on, else the exit status. */
static int sandbox_parse(int argc, char **argv, struct sandbox_request *q)
{
    static const struct option opts[] = {
        {"memory", required_argument, NULL, 'M'}, {"pids", required_argument, NULL, 'P'},
        {"cpu", required_argument, NULL, 'C'},    {"disk", required_argument, NULL, 'D'},
        {"timeout", required_argument, NULL, 'T'}, {"in", required_argument, NULL, 'i'},
        {"config", required_argument, NULL, 'c'}, CMD_OPTION_HELP,
        {NULL, 0, NULL, 0}};
    const unsigned long max = 1000000000ul;
    bool ok = true;
    int c;
    /* "+": options end at the program, whose own options are its business */
    while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
        if (c == 'h')
            return cmd_help(&cmd_sandbox_usage);
        if (c == 'M')
            ok = ok && cmd_parse_uint(optarg, max, &q->limits.memory_mb);
        else if (c == 'P')
            ok = ok && cmd_parse_uint(optarg, max, &q->limits.pids);
        else if (c == 'C')
            ok = ok && cmd_parse_uint(optarg, max, &q->limits.cpu_s);
        else if (c == 'D')
            ok = ok && cmd_parse_uint(optarg, max, &q->limits.disk_mb);
        else if (c == 'T')
            ok = ok && cmd_parse_uint(optarg, max, &q->limits.wall_s);
        else if (c == 'i')
            q->in = optarg;
        else if (c == 'c')
            q->file = optarg;
        else
            ok = false;
    }
    if (!ok || optind >= argc)
        return cmd_usage_error(&cmd_sandbox_usage);
    q->program = xcalloc((size_t)(argc - optind + 1), sizeof(char *));
    for (int i = optind; i < argc; i++)
        q->program[i - optind] = xstrdup(argv[i]);
    return -1;
}

/* The configured limits, with the ones given on the command line instead. */
static void sandbox_apply_limits(const struct config *cfg, const struct sandbox_limits *asked,
                                 struct sandbox_opts *o)
{
    sandbox_limits_from_config(cfg, &o->limits);
    o->id_base = cfg->sandbox_id_base;
    if (asked->memory_mb)
        o->limits.memory_mb = asked->memory_mb;
    if (asked->pids)
        o->limits.pids = asked->pids;
    if (asked->cpu_s)
        o->limits.cpu_s = asked->cpu_s;
    if (asked->disk_mb)
        o->limits.disk_mb = asked->disk_mb;
    if (asked->wall_s)
        o->limits.wall_s = asked->wall_s;
}

/* The exit status for what happened to the program. */
static int sandbox_status(const struct sandbox_result *res)
{
    if (res->cause == SANDBOX_OK || res->cause == SANDBOX_EXITED)
        return res->status;
    if (res->cause == SANDBOX_SIGNALED)
        return 128 + res->status;
    fprintf(stderr, "debate sandbox: %s\n", res->message);
    return 125;
}

/* Runs the program in a fresh work directory under DATA_DIR/sandboxes, removed afterwards. */
static int sandbox_launch(struct sandbox_opts *o, const char *data_dir)
{
    _cleanup_free_ char *parent = xasprintf("%s/sandboxes", data_dir);
    int rc = mkdir_p(parent, 0700);
    _cleanup_free_ char *work = xasprintf("%s/XXXXXX", parent);
    if (rc < 0 || mkdtemp(work) == NULL) {
        fprintf(stderr, "debate sandbox: cannot create a work directory in \"%s\": %s\n", parent,
                strerror(rc < 0 ? -rc : errno));
        return 126;
    }
    o->workdir = work;
    cmd_trap_signals(sandbox_on_signal, 0);
    sandbox_prepare_cgroups();
    struct sandbox_result res;
    char err[1024];
    int code;
    if (sandbox_run(o, &res, err, sizeof(err)) < 0) {
        fprintf(stderr, "debate sandbox: %s\n", err);
        code = 126;
    } else {
        code = sandbox_status(&res);
    }
    const char *rm[] = {"/bin/rm", "-rf", "--one-file-system", work, NULL};
    struct proc_opts po = {0};
    proc_run(rm, &po, err, sizeof(err));
    return code;
}

static int sandbox_prepare(const struct sandbox_request *q, const struct config *cfg)
{
    struct sandbox_opts o = {.env = sandbox_base_env, .hostname = "debate-sandbox", .payload = sandbox_exec_payload,
                             .arg = q->program, .on_output = sandbox_forward_output, .cancel = &sandbox_interrupted};
    sandbox_apply_limits(cfg, &q->limits, &o);
    struct sandbox_bind bind = {.host = NULL, .inside = "/mnt/in"};
    char real_in[PATH_MAX];
    if (q->in != NULL) {
        if (realpath(q->in, real_in) == NULL) {
            fprintf(stderr, "debate sandbox: --in \"%s\": %s\n", q->in, strerror(errno));
            return 126;
        }
        bind.host = real_in;
        o.binds = &bind;
        o.nbinds = 1;
    }
    return sandbox_launch(&o, cfg->data_dir);
}

int cmd_sandbox(int argc, char **argv)
{
    struct sandbox_request q = {0};
    int rc = sandbox_parse(argc, argv, &q);
    if (rc >= 0)
        goto out;
    if (geteuid() != 0) {
        fprintf(stderr, "debate sandbox: must run as root (it maps a range of user ids and mounts the build disk)\n");
        rc = 126;
        goto out;
    }
    struct config cfg;
    rc = 126;
    if (cmd_load_config(&cfg, q.file) == 0) {
        rc = sandbox_prepare(&q, &cfg);
        config_release(&cfg);
    }
out:
    sandbox_request_release(&q);
    return rc;
}
