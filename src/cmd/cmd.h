/*
 * The commands of the debate binary, one file each (as git's builtin/).
 * Private to src/cmd and src/main.c.
 *
 * cmd_NAME(argc, argv) runs "debate NAME ...": argv[0] is "debate NAME"
 * (getopt's own messages then name the command), the options and arguments
 * follow. It runs on the main thread, before any other thread starts, and
 * returns the process's exit status: 0 done, 1 failed, 2 a usage error or
 * a configuration that does not load (sandbox keeps its own: 125 a limit,
 * 126 its setup, the configuration included, 127 no program).
 *
 * Every command answers -h and --help with its usage on standard output
 * (exit 0) before doing anything else, and a bad option or argument with
 * "debate NAME: what is wrong" and its usage on standard error (exit 2).
 */
#ifndef DEBATE_CMD_CMD_H
#define DEBATE_CMD_CMD_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "engine/recipe.h"

/* The exit status of a configuration that does not load, in every command but sandbox (126, its setup). */
#define CMD_EXIT_CONFIG 2

/* What "debate help" and "debate NAME --help" print about a command. */
struct cmd_usage {
    const char *name;     /* "serve" */
    const char *synopsis; /* the arguments after the name: "[--config FILE] [--check]" */
    const char *summary;  /* one lower-case line for the list of commands */
    const char *options;  /* "  -c, --config FILE  ...\n" lines, or "" */
    const char *notes;    /* paragraphs printed after the options (exit statuses), or NULL */
};

/* The option every command's getopt table ends with, before the NULL entry. */
#define CMD_OPTION_HELP {"help", no_argument, NULL, 'h'}

/* Prints "usage: debate NAME SYNOPSIS", the summary and the options to out. */
void cmd_usage_print(const struct cmd_usage *u, FILE *out);
/* For -h/--help: the usage on standard output; returns 0, the exit status. */
int cmd_help(const struct cmd_usage *u);
/* For a usage error getopt has named already: the usage on standard error; returns 2, the exit status. */
int cmd_usage_error(const struct cmd_usage *u);
/* For a usage error: "debate NAME: REASON", then the usage, on standard error; returns 2, the exit status. */
int cmd_usage_fail(const struct cmd_usage *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Checks that want (0 or 1) arguments follow the options, argv[optind...];
 * what names the one wanted ("the recipe"). Returns -1 when they do, else
 * the exit status of a usage error that says what is missing or too much.
 */
int cmd_operands(const struct cmd_usage *u, int argc, char **argv, int want, const char *what);

/* For a number option that cmd_parse_uint refused: says so (with the usage); returns 2. */
int cmd_bad_number(const struct cmd_usage *u, const char *option, unsigned long max, const char *text);

/*
 * Loads the configuration: file (NULL: $DEBATE_CONFIG when set and not
 * empty), then the DEBATE_* environment; sets the log level. Returns 0, or
 * -1 after printing every reason on standard error (cfg is then released).
 * On success the caller owns cfg and calls config_release.
 */
int cmd_load_config(struct config *cfg, const char *file);

/*
 * Loads the recipe at path. Returns 0 (the caller releases r), or -1 after
 * printing "debate CMD: PATH: reason" on standard error.
 */
int cmd_load_recipe(const char *cmd, const char *path, struct recipe *r);

/* Parses a whole number from 1 to max into *out; false when text is not one. */
bool cmd_parse_uint(const char *text, unsigned long max, unsigned *out);

/*
 * Text that came from elsewhere (a server's message, a build's log, a
 * hook's output) must not drive the terminal: an escape sequence could move
 * the cursor, rewrite what was printed or retitle the window. On a terminal
 * every byte below 0x20 but tab, and 0x7f, becomes '?'; to a file or a pipe
 * the text goes as it is.
 *
 * cmd_printable does that in place to n bytes; cmd_print formats, makes
 * printable all but a final newline when out is a terminal, and writes.
 */
void cmd_printable(char *s, size_t n);
void cmd_print(FILE *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Installs handler for SIGINT and SIGTERM, without SA_RESTART: blocking
 * waits end. sa_flags adds to that: SA_RESETHAND makes a second signal
 * kill the command, for commands whose steps do not all look at the flag
 * the handler sets.
 */
void cmd_trap_signals(void (*handler)(int), int sa_flags);

extern const struct cmd_usage cmd_serve_usage, cmd_worker_usage, cmd_migrate_usage, cmd_backup_usage,
    cmd_restore_test_usage, cmd_build_usage, cmd_sandbox_usage, cmd_hash_usage, cmd_lock_usage,
    cmd_version_usage, cmd_submit_usage, cmd_status_usage, cmd_logs_usage, cmd_list_usage, cmd_cancel_usage,
    cmd_download_usage, cmd_verify_usage;

int cmd_serve(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore_test(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_sandbox(int argc, char **argv);
int cmd_hash(int argc, char **argv);
int cmd_lock(int argc, char **argv);
int cmd_version(int argc, char **argv);
/* The client commands (cmd/remote.h): they talk to a debate server over its API. */
int cmd_submit(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_download(int argc, char **argv);
/* Rebuilds an ISO from its manifest and compares (a local ISO, or a server's build through the client). */
int cmd_verify(int argc, char **argv);

#endif
