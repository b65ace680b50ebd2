/* debate logs: a build's log, or (--follow) its events as they come until the build ends. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd/remote.h"
#include "util.h"
#include "banned.h"

const struct cmd_usage cmd_logs_usage = {
    .name = "logs",
    .synopsis = "ID [--follow] " REMOTE_SYNOPSIS,
    .summary = "print a build's log from a debate server, or follow it",
    .options = "  -f, --follow         print the log as it grows until the build ends\n"
               "                       (reconnecting after a drop); the exit status is then\n"
               "                       the build's\n" REMOTE_OPTIONS_USAGE,
    .notes = REMOTE_EXIT_NOTES,
};

/* The same lines the plain-text log has: progress as "[stage N%] message", the rest as it came. */
static void logs_progress(void *arg, const char *stage, int pct, const char *message)
{
    cmd_print(stdout, "[%s %d%%] %s\n", stage, pct, message);
    fflush(stdout);
}

static void logs_line(void *arg, const char *line)
{
    cmd_print(stdout, "%s\n", line);
    fflush(stdout);
}

/* The plain-text log as it arrives: as it is to a file or a pipe, printable on a terminal. */
static bool logs_write(void *arg, const char *buf, size_t n)
{
    const bool *tty = arg;
    if (!*tty)
        return fwrite(buf, 1, n, stdout) == n;
    _cleanup_free_ char *copy = xmalloc(n);
    memcpy(copy, buf, n);
    /* The line ends stay; every other control character is made printable. */
    for (char *line = copy, *end = copy + n; line < end;) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
        cmd_printable(line, len);
        line += len + 1;
    }
    return fwrite(copy, 1, n, stdout) == n;
}

static int logs_follow(struct client *c, const char *id)
{
    struct client_events ev = {.progress = logs_progress, .log = logs_line};
    struct client_error e;
    json_t *final = NULL;
    int rc;
    if (client_follow(c, id, &ev, &final, &e) != CLIENT_OK)
        rc = remote_fail("logs", &e);
    else
        rc = remote_build_exit("logs", final);
    json_decref(final);
    return rc;
}

int cmd_logs(int argc, char **argv)
{
    static const struct option opts[] = {{"follow", no_argument, NULL, 'f'}, REMOTE_OPTIONS, CMD_OPTION_HELP,
                                         {NULL, 0, NULL, 0}};
    struct remote r = {0};
    bool ok = true, follow = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "f" REMOTE_OPTSTRING "h", opts, NULL)) != -1) {
        if (opt == 'h')
            return cmd_help(&cmd_logs_usage);
        if (opt == 'f')
            follow = true;
        else
            ok = remote_option(&r, opt, optarg) && ok;
    }
    if (!ok)
        return cmd_usage_error(&cmd_logs_usage);
    int rc = cmd_operands(&cmd_logs_usage, argc, argv, 1, "the build id");
    if (rc >= 0)
        return rc;
    const char *id = argv[optind];
    if (!remote_id_ok("logs", id))
        return REMOTE_EXIT_USAGE;
    struct client *c;
    if ((rc = remote_open("logs", &r, &c)) != 0)
        return rc;
    if (follow) {
        rc = logs_follow(c, id);
    } else {
        _cleanup_free_ char *path = xasprintf("/api/v1/builds/%s/log", id);
        struct client_error e;
        bool tty = isatty(STDOUT_FILENO) != 0;
        if (client_get_text(c, path, logs_write, &tty, &e) != CLIENT_OK)
            rc = remote_fail("logs", &e);
        fflush(stdout);
    }
    client_free(c);
    return rc;
}
