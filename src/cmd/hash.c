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
    recipe_release(&r);
    return 0;
}
