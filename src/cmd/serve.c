/* debate serve: the HTTPS API, its database and its in-process build workers. */
#include <stdio.h>

#include "cmd/cmd.h"
#include "http/server.h"
#include "banned.h"

const struct cmd_usage cmd_serve_usage = {
    .name = "serve",
    .synopsis = "[--config FILE] [--check]",
    .summary = "run the HTTPS API (and the database and build workers it needs)",
    .options = "  -c, --config FILE    read settings from FILE (default: $DEBATE_CONFIG)\n"
               "  -n, --check          validate the configuration, print it and exit\n",
};

static int serve_run(const struct config *cfg)
{
    struct server srv;
    char err[2048];
    int rc = 1;
    if (server_init(&srv, cfg, err, sizeof(err)) < 0) {
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
    return rc;
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'n'}, CMD_OPTION_HELP, {NULL, 0, NULL, 0}};
    const char *file = NULL;
    bool check = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:nh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            file = optarg;
            break;
        case 'n':
            check = true;
            break;
        case 'h':
            return cmd_help(&cmd_serve_usage);
        default:
            return cmd_usage_error(&cmd_serve_usage);
        }
    }
    int rc = cmd_operands(&cmd_serve_usage, argc, argv, 0, NULL);
    if (rc >= 0)
        return rc;
    struct config cfg;
    if (cmd_load_config(&cfg, file) < 0)
        return CMD_EXIT_CONFIG;
    rc = 0;
    if (check) {
        config_print(&cfg, stdout);
        puts("configuration ok");
    } else {
        rc = serve_run(&cfg);
    }
    config_release(&cfg);
    return rc;
}
