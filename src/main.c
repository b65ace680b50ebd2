/*
 * debate: one binary, several subcommands. This file only parses the
 * command line and hands over to the module that does the work.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http/server.h"
#include "log.h"
#include "util.h"
#include "banned.h"

static void usage(FILE *out)
{
    fputs("usage: debate <command> [options]\n"
          "\n"
          "commands:\n"
          "  serve [--config FILE] [--check]   run the HTTPS API (--check: validate the configuration and exit)\n"
          "  version                            print the version\n"
          "  help                               print this text\n"
          "\n"
          "Settings come from the file given with --config (or $DEBATE_CONFIG) and from\n"
          "DEBATE_* environment variables; see docs/configuration.md.\n",
          out);
}

static int load_config(struct config *cfg, const char *file)
{
    char err[4096];
    config_init(cfg);
    if (file == NULL)
        file = getenv("DEBATE_CONFIG");
    if (file != NULL && file[0] == '\0')
        file = NULL;
    if (config_load(cfg, file, err, sizeof(err)) < 0) {
        fprintf(stderr, "debate: invalid configuration:\n%s", err);
        return -1;
    }
    log_set_level((enum log_level)cfg->log_level);
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'n'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *file = NULL;
    int check = 0, c;
    while ((c = getopt_long(argc, argv, "c:nh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            file = optarg;
            break;
        case 'n':
            check = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "debate serve: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    struct config cfg;
    if (load_config(&cfg, file) < 0) {
        config_release(&cfg);
        return 1;
    }
    if (check) {
        config_print(&cfg, stdout);
        puts("configuration ok");
        config_release(&cfg);
        return 0;
    }
    struct server srv;
    char err[512];
    int rc = 1;
    if (server_init(&srv, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "debate serve: %s\n", err);
        goto out;
    }
    printf("debate serve: https://localhost:%u/\n", srv.https_port);
    printf("debate serve: http://localhost:%u/ redirects to https\n", srv.http_port);
    if (srv.ca_path != NULL)
        printf("debate serve: internal CA certificate at %s (trust it, or pass --cacert to curl)\n", srv.ca_path);
    fflush(stdout);
    rc = server_run(&srv);
out:
    server_release(&srv);
    config_release(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        puts("debate " DEBATE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "debate: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
