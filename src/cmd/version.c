/* debate version: the version of this binary. */
#include <stdio.h>

#include "cmd/cmd.h"
#include "util.h"
#include "banned.h"

const struct cmd_usage cmd_version_usage = {
    .name = "version",
    .synopsis = "",
    .summary = "print the version",
    .options = "",
};

int cmd_version(int argc, char **argv)
{
    static const struct option opts[] = {CMD_OPTION_HELP, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1)
        return c == 'h' ? cmd_help(&cmd_version_usage) : cmd_usage_error(&cmd_version_usage);
    int rc = cmd_operands(&cmd_version_usage, argc, argv, 0, NULL);
    if (rc >= 0)
        return rc;
    puts("debate " DEBATE_VERSION);
    return 0;
}
