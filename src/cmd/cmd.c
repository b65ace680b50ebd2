/* What the commands share: usage, the configuration, recipes, numbers, signals. */
#include "cmd/cmd.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "banned.h"

void cmd_usage_print(const struct cmd_usage *u, FILE *out)
{
    fprintf(out, "usage: debate %s%s%s\n\n%s\n\noptions:\n%s", u->name, u->synopsis[0] ? " " : "", u->synopsis,
            u->summary, u->options);
    fputs("  -h, --help           print this text\n", out);
    if (u->notes != NULL)
        fprintf(out, "\n%s", u->notes);
}

int cmd_help(const struct cmd_usage *u)
{
    cmd_usage_print(u, stdout);
    return 0;
}

int cmd_usage_error(const struct cmd_usage *u)
{
    cmd_usage_print(u, stderr);
    return 2;
}

int cmd_usage_fail(const struct cmd_usage *u, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "debate %s: ", u->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n\n", stderr);
    return cmd_usage_error(u);
}

int cmd_operands(const struct cmd_usage *u, int argc, char **argv, int want, const char *what)
{
    if (argc - optind < want)
        return cmd_usage_fail(u, "%s is missing", what);
    if (argc - optind > want)
        return cmd_usage_fail(u, "unexpected argument \"%s\"", argv[optind + want]);
    return -1;
}

int cmd_bad_number(const struct cmd_usage *u, const char *option, unsigned long max, const char *text)
{
    return cmd_usage_fail(u, "%s wants a whole number from 1 to %lu (got \"%s\")", option, max, text);
}

int cmd_load_config(struct config *cfg, const char *file)
{
    char err[4096];
    config_init(cfg);
    if (file == NULL)
        file = getenv("DEBATE_CONFIG");
    if (file != NULL && file[0] == '\0')
        file = NULL;
    if (config_load(cfg, file, err, sizeof(err)) < 0) {
        fprintf(stderr, "debate: invalid configuration:\n%s", err);
        config_release(cfg);
        return -1;
    }
    log_set_level((enum log_level)cfg->log_level);
    return 0;
}

int cmd_load_recipe(const char *cmd, const char *path, struct recipe *r)
{
    struct recipe_error e;
    if (recipe_load(path, r, &e) < 0) {
        char msg[512];
        recipe_error_format(&e, msg, sizeof(msg));
        fprintf(stderr, "debate %s: %s: %s\n", cmd, path, msg);
        return -1;
    }
    return 0;
}

bool cmd_parse_uint(const char *text, unsigned long max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v == 0 || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

void cmd_printable(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
            s[i] = '?';
}

void cmd_print(FILE *out, const char *fmt, ...)
{
    _cleanup_free_ char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (len < 0)
        abort(); /* only out of memory: the policy of every allocation */
    size_t n = (size_t)len;
    if (isatty(fileno(out)))
        cmd_printable(text, n > 0 && text[n - 1] == '\n' ? n - 1 : n);
    fwrite(text, 1, n, out);
}

void cmd_trap_signals(void (*handler)(int), int sa_flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sa.sa_flags = sa_flags;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}
