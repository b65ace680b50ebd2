/* debate worker: build workers without the HTTP front door (other machines, same database). */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "db/db.h"
#include "engine/sandbox.h"
#include "log.h"
#include "service/service.h"
#include "service/worker.h"
#include "banned.h"

const struct cmd_usage cmd_worker_usage = {
    .name = "worker",
    .synopsis = "[--config FILE] [--workers N]",
    .summary = "run build workers only, on other machines; needs root",
    .options = "  -c, --config FILE    read settings from FILE (default: $DEBATE_CONFIG)\n"
               "      --workers N      run N workers, 1 to 256 (default: the workers setting, at\n"
               "                       least 1)\n",
};

static atomic_int worker_stop;

static void worker_on_signal(int sig)
{
    (void)sig;
    atomic_store(&worker_stop, 1);
}

static int workers_run(const struct config *cfg, unsigned count)
{
    struct db db;
    char err[1024];
    if (db_open(&db, cfg, DB_OPEN_MIGRATE | DB_OPEN_WAIT, err, sizeof(err)) < 0) {
        fprintf(stderr, "debate worker: %s\n", err);
        return 1;
    }
    if (count == 0)
        count = cfg->nworkers ? cfg->nworkers : 1;
    cmd_trap_signals(worker_on_signal, 0);
    signal(SIGPIPE, SIG_IGN);
    sandbox_prepare_cgroups();
    struct builder_id identity;
    service_identity(cfg, &identity);
    struct worker_pool pool;
    worker_pool_start(&pool, cfg, db.conninfo, count, &worker_stop, NULL, NULL, &identity);
    log_infox("%u build workers started (%s, tools %.12s, %s); artifacts in %s", count, identity.builder,
              identity.tools, identity.arch, cfg->artifact_dir);
    worker_pool_join(&pool);
    log_infox("workers stopped");
    db_close(&db);
    return 0;
}

int cmd_worker(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"workers", required_argument, NULL, 'w'},
                                         CMD_OPTION_HELP,
                                         {NULL, 0, NULL, 0}};
    const char *file = NULL;
    unsigned count = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (c == 'h')
            return cmd_help(&cmd_worker_usage);
        if (c == 'c')
            file = optarg;
        else if (c != 'w')
            return cmd_usage_error(&cmd_worker_usage);
        else if (!cmd_parse_uint(optarg, 256, &count))
            return cmd_bad_number(&cmd_worker_usage, "--workers", 256, optarg);
    }
    int rc = cmd_operands(&cmd_worker_usage, argc, argv, 0, NULL);
    if (rc >= 0)
        return rc;
    if (geteuid() != 0) {
        fprintf(stderr, "debate worker: must run as root (builds run in a sandbox it sets up)\n");
        return 1;
    }
    struct config cfg;
    if (cmd_load_config(&cfg, file) < 0)
        return CMD_EXIT_CONFIG;
    rc = workers_run(&cfg, count);
    config_release(&cfg);
    return rc;
}
