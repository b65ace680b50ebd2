/* debate cancel: stop a queued or running build with the token its submission printed. */
#include <stdio.h>
#include <string.h>

#include "cmd/remote.h"
#include "util.h"
#include "banned.h"

const struct cmd_usage cmd_cancel_usage = {
    .name = "cancel",
    .synopsis = "ID --token TOKEN [--server URL] [--cacert FILE]",
    .summary = "cancel a queued or running build on a debate server",
    .options = "  -t, --token TOKEN    the cancel token debate submit printed (required)\n" REMOTE_OPTIONS_USAGE,
    .notes = "A wrong token, an unknown build and a build that has already ended exit 2.\n\n" REMOTE_EXIT_NOTES,
};

static int cancel_run(struct client *c, const char *id, const char *token)
{
    _cleanup_free_ char *path = xasprintf("/api/v1/builds/%s/cancel", id);
    json_t *body = json_pack("{s:s}", "cancel_token", token);
    json_t *answer = NULL;
    long status;
    struct client_error e;
    int rc = 0;
    if (client_post_json(c, path, body, &status, &answer, &e) != CLIENT_OK) {
        rc = remote_fail("cancel", &e);
    } else {
        const char *now = json_string_value(json_object_get(json_object_get(answer, "build"), "status"));
        if (now != NULL && strcmp(now, "cancelled") == 0)
            fprintf(stderr, "debate cancel: build %s: cancelled\n", id);
        else
            fprintf(stderr, "debate cancel: build %s: stopping (it ends cancelled within a heartbeat)\n", id);
    }
    json_decref(answer);
    json_decref(body);
    return rc;
}

int cmd_cancel(int argc, char **argv)
{
    static const struct option opts[] = {{"token", required_argument, NULL, 't'}, REMOTE_OPTIONS, CMD_OPTION_HELP,
                                         {NULL, 0, NULL, 0}};
    struct remote r = {0};
    const char *token = NULL;
    bool ok = true;
    int opt;
    while ((opt = getopt_long(argc, argv, "t:" REMOTE_OPTSTRING "h", opts, NULL)) != -1) {
        if (opt == 'h')
            return cmd_help(&cmd_cancel_usage);
        if (opt == 't')
            token = optarg;
        else
            ok = remote_option(&r, opt, optarg) && ok;
    }
    if (!ok || optind + 1 != argc || token == NULL)
        return cmd_usage_error(&cmd_cancel_usage);
    const char *id = argv[optind];
    if (!remote_id_ok("cancel", id))
        return REMOTE_EXIT_USAGE;
    struct client *c;
    int rc = remote_open("cancel", &r, &c);
    if (rc == 0)
        rc = cancel_run(c, id, token);
    client_free(c);
    return rc;
}
