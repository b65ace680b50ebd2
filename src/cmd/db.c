/*
 * The database commands: debate migrate, debate backup and debate
 * restore-test. Each opens the database (starting the embedded cluster
 * when that is configured, and stopping it again if it started it).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmd/cmd.h"
#include "db/backup.h"
#include "db/db.h"
#include "db/migrate.h"
#include "util.h"
#include "banned.h"

#define CONFIG_OPTION_HELP "  -c, --config FILE    read settings from FILE (default: $DEBATE_CONFIG)\n"

const struct cmd_usage cmd_migrate_usage = {
    .name = "migrate",
    .synopsis = "[--config FILE]",
    .summary = "bring the database schema up to date",
    .options = CONFIG_OPTION_HELP,
};

const struct cmd_usage cmd_backup_usage = {
    .name = "backup",
    .synopsis = "[--config FILE] [--now TIME] [--prune-only]",
    .summary = "dump the database into backup_dir, then apply the retention rule",
    .options = CONFIG_OPTION_HELP
    "      --now TIME       take TIME (UTC, like 2026-01-31T02:00:00Z) as the current\n"
    "                       time\n"
    "      --prune-only     apply the retention rule without dumping\n",
};

const struct cmd_usage cmd_restore_test_usage = {
    .name = "restore-test",
    .synopsis = "[--config FILE]",
    .summary = "restore the newest dump into a scratch database and check it",
    .options = CONFIG_OPTION_HELP,
};

/* What a database command was asked to do. */
enum db_action { DB_MIGRATE, DB_BACKUP, DB_RESTORE_TEST };

struct db_cmd {
    enum db_action action;
    const struct cmd_usage *usage;
    const char *file;
    long long now;
    bool prune_only;
};

static int db_parse_time(const char *s, long long *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == NULL || *end != '\0')
        return -1;
    *out = (long long)timegm(&tm);
    return 0;
}

/* Parses the options into o; returns -1 to go on, else the exit status. */
static int db_parse(int argc, char **argv, struct db_cmd *o)
{
    static const struct option all[] = {{"config", required_argument, NULL, 'c'},
                                        {"now", required_argument, NULL, 't'},
                                        {"prune-only", no_argument, NULL, 'p'},
                                        CMD_OPTION_HELP,
                                        {NULL, 0, NULL, 0}};
    static const struct option config_only[] = {{"config", required_argument, NULL, 'c'}, CMD_OPTION_HELP,
                                                {NULL, 0, NULL, 0}};
    const struct option *opts = o->action == DB_BACKUP ? all : config_only;
    int c;
    o->now = (long long)(clock_wall_ms() / 1000);
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (c == 'h')
            return cmd_help(o->usage);
        if (c == 'c') {
            o->file = optarg;
        } else if (c == 't') {
            if (db_parse_time(optarg, &o->now) < 0) {
                fprintf(stderr, "debate backup: --now wants a UTC time like 2026-01-31T02:00:00Z\n");
                return 2;
            }
        } else if (c == 'p') {
            o->prune_only = true;
        } else {
            return cmd_usage_error(o->usage);
        }
    }
    return cmd_operands(o->usage, argc, argv, 0, NULL);
}

/* Does what o asks with the database open; 0 or -1 with a message in err. */
static int db_act(const struct db_cmd *o, const struct config *cfg, char *err, size_t errlen)
{
    if (o->action == DB_BACKUP && o->prune_only) {
        int deleted;
        if (backup_prune(cfg, o->now, &deleted, err, errlen) < 0)
            return -1;
        printf("debate backup: %d old backup%s deleted\n", deleted, deleted == 1 ? "" : "s");
        return 0;
    }
    struct db db;
    if (db_open(&db, cfg, o->action == DB_MIGRATE ? DB_OPEN_MIGRATE : 0, err, errlen) < 0)
        return -1;
    int rc = 0;
    if (o->action == DB_MIGRATE)
        printf("debate migrate: the database schema is at version %d\n", migrate_latest_version());
    else if (o->action == DB_BACKUP)
        rc = backup_run(cfg, &db, o->now, err, errlen);
    else
        rc = backup_restore_test(cfg, &db, err, errlen);
    db_close(&db);
    return rc < 0 ? -1 : 0;
}

static int db_command(int argc, char **argv, struct db_cmd *o)
{
    int rc = db_parse(argc, argv, o);
    if (rc >= 0)
        return rc;
    struct config cfg;
    if (cmd_load_config(&cfg, o->file) < 0)
        return CMD_EXIT_CONFIG;
    char err[2048];
    rc = db_act(o, &cfg, err, sizeof(err)) < 0 ? 1 : 0;
    if (rc != 0)
        fprintf(stderr, "debate %s: %s\n", o->usage->name, err);
    config_release(&cfg);
    return rc;
}

int cmd_migrate(int argc, char **argv)
{
    struct db_cmd o = {.action = DB_MIGRATE, .usage = &cmd_migrate_usage};
    return db_command(argc, argv, &o);
}

int cmd_backup(int argc, char **argv)
{
    struct db_cmd o = {.action = DB_BACKUP, .usage = &cmd_backup_usage};
    return db_command(argc, argv, &o);
}

int cmd_restore_test(int argc, char **argv)
{
    struct db_cmd o = {.action = DB_RESTORE_TEST, .usage = &cmd_restore_test_usage};
    return db_command(argc, argv, &o);
}
