/*
 * debate: one binary, several commands. This file holds the table of
 * commands and hands the command line over to the one named; each lives in
 * src/cmd/ (see cmd/cmd.h for what they promise).
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "util.h"
#include "banned.h"

struct command {
    const struct cmd_usage *usage;
    int (*run)(int argc, char **argv);
};

static int main_help(int argc, char **argv);

static const struct cmd_usage help_usage = {
    .name = "help",
    .synopsis = "[COMMAND]",
    .summary = "print the list of commands, or a command's usage",
    .options = "",
};

static const struct command commands[] = {
    {&cmd_serve_usage, cmd_serve},
    {&cmd_worker_usage, cmd_worker},
    {&cmd_migrate_usage, cmd_migrate},
    {&cmd_backup_usage, cmd_backup},
    {&cmd_restore_test_usage, cmd_restore_test},
    {&cmd_build_usage, cmd_build},
    {&cmd_sandbox_usage, cmd_sandbox},
    {&cmd_hash_usage, cmd_hash},
    {&cmd_lock_usage, cmd_lock},
    {&cmd_version_usage, cmd_version},
    {&cmd_submit_usage, cmd_submit},
    {&cmd_status_usage, cmd_status},
    {&cmd_logs_usage, cmd_logs},
    {&cmd_list_usage, cmd_list},
    {&cmd_cancel_usage, cmd_cancel},
    {&cmd_download_usage, cmd_download},
    {&cmd_verify_usage, cmd_verify},
    {&help_usage, main_help},
};

static const struct command *main_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (strcmp(commands[i].usage->name, name) == 0)
            return &commands[i];
    return NULL;
}

static void main_usage(FILE *out)
{
    fputs("usage: debate <command> [options]\n\ncommands:\n", out);
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        fprintf(out, "  %-13s %s\n", commands[i].usage->name, commands[i].usage->summary);
    fputs("\n"
          "\"debate help COMMAND\" (or \"debate COMMAND --help\") prints a command's options.\n"
          "Settings come from the file given with --config (or $DEBATE_CONFIG) and from\n"
          "DEBATE_* environment variables; see docs/configuration.md.\n",
          out);
}

/* debate help [COMMAND]: the list of commands, or one command's usage. */
static int main_help(int argc, char **argv)
{
    if (argc == 1 || (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))) {
        main_usage(stdout);
        return 0;
    }
    const struct command *c = argc == 2 ? main_find(argv[1]) : NULL;
    if (c == NULL) {
        if (argc == 2)
            fprintf(stderr, "debate help: unknown command \"%s\"\n", argv[1]);
        main_usage(stderr);
        return 2;
    }
    if (c->run == main_help)
        main_usage(stdout);
    else
        cmd_usage_print(c->usage, stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        main_usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        name = "help";
    else if (strcmp(name, "--version") == 0)
        name = "version";
    const struct command *c = main_find(name);
    if (c == NULL) {
        fprintf(stderr, "debate: unknown command \"%s\"\n", name);
        main_usage(stderr);
        return 2;
    }
    /* The command's argv[0] names it, so that getopt's messages say "debate build: ...". */
    _cleanup_free_ char *prog = xasprintf("debate %s", c->usage->name);
    argv[1] = prog;
    return c->run(argc - 1, argv + 1);
}
