/* debate hash: a recipe in canonical form and its config_hash, as the service computes them. */
#include <stdio.h>

#include "cmd/cmd.h"
#include "banned.h"

const struct cmd_usage cmd_hash_usage = {
    .name = "hash",
    .synopsis = "RECIPE",
    .summary = "print the canonical recipe and its config_hash",
    .options = "",
};

/* Which format the recipe was read as, and what its defaults made of it: on standard error, beside the output. */
static void hash_tell_format(const struct recipe *r)
{
    char comps[96] = "", suites[160];
    for (size_t i = 0, n = 0; i < r->ncomponents; i++)
        n += (size_t)snprintf(comps + n, sizeof(comps) - n, "%s%s", i ? " " : "", r->components[i]);
    int n = snprintf(suites, sizeof(suites), "%s", r->release);
    if (r->updates)
        n += snprintf(suites + n, sizeof(suites) - (size_t)n, " %s-updates", r->release);
    if (r->security)
        snprintf(suites + n, sizeof(suites) - (size_t)n, " %s-security", r->release);
    fprintf(stderr, "debate hash: recipe format %d%s: %s %s, suites %s, components %s\n", r->format,
            r->format == RECIPE_FORMAT_CURRENT ? " (the current one)" : " (an earlier one, read as it always was)",
            r->distribution, r->release, suites, comps);
}

int cmd_hash(int argc, char **argv)
{
    static const struct option opts[] = {CMD_OPTION_HELP, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1)
        return c == 'h' ? cmd_help(&cmd_hash_usage) : cmd_usage_error(&cmd_hash_usage);
    int rc = cmd_operands(&cmd_hash_usage, argc, argv, 1, "the recipe");
    if (rc >= 0)
        return rc;
    struct recipe r;
    if (cmd_load_recipe("hash", argv[optind], &r) < 0)
        return 1;
    printf("%s\n%s\n", r.canonical, r.config_hash);
    hash_tell_format(&r);
    recipe_release(&r);
    return 0;
}
