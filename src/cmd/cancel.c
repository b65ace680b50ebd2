/* debate cancel: stop a queued or running build with the token its submission printed. */
#include <stdio.h>
#include <string.h>

#include "cmd/remote.h"
#include "util.h"
#include "banned.h"

/* A cancel token as the server makes them: 32 random bytes in base64url, without padding. */
#define CANCEL_TOKEN_LEN 43

const struct cmd_usage cmd_cancel_usage = {
    .name = "cancel",
    .synopsis = "ID --token TOKEN " REMOTE_SYNOPSIS,
    .summary = "cancel a queued or running build on a debate server",
    .options = "  -t, --token TOKEN    the cancel token debate submit printed (required); \"-\"\n"
               "                       reads it from standard input, out of sight of ps and\n"
               "                       the shell's history\n"
               REMOTE_OPTIONS_USAGE,
    .notes = "A wrong token, an unknown build and a build that has already ended exit 2.\n\n" REMOTE_EXIT_NOTES,
};

/* The token must be one the server can have made: anything else is a typo, and must not reach the request. */
static bool cancel_token_ok(const char *t)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (strlen(t) == CANCEL_TOKEN_LEN && strspn(t, alphabet) == CANCEL_TOKEN_LEN)
        return true;
    fprintf(stderr, "debate cancel: the cancel token must be the %d characters of A-Z, a-z, 0-9, - and _ that "
            "debate submit printed\n", CANCEL_TOKEN_LEN);
    return false;
}

/* "--token -": one line of standard input, its line end dropped. */
static bool cancel_read_token(char *buf, size_t len)
{
    if (fgets(buf, (int)len, stdin) == NULL) {
        fprintf(stderr, "debate cancel: --token -: no token on standard input\n");
        return false;
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    return true;
}

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
    char line[256];
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
    if (!ok)
        return cmd_usage_error(&cmd_cancel_usage);
    int rc = cmd_operands(&cmd_cancel_usage, argc, argv, 1, "the build id");
    if (rc >= 0)
        return rc;
    if (token == NULL)
        return cmd_usage_fail(&cmd_cancel_usage, "--token is required");
    const char *id = argv[optind];
    if (!remote_id_ok("cancel", id))
        return REMOTE_EXIT_USAGE;
    if (strcmp(token, "-") == 0) {
        if (!cancel_read_token(line, sizeof(line)))
            return REMOTE_EXIT_USAGE;
        token = line;
    }
    if (!cancel_token_ok(token))
        return REMOTE_EXIT_USAGE;
    struct client *c;
    rc = remote_open("cancel", &r, &c);
    if (rc == 0)
        rc = cancel_run(c, id, token);
    client_free(c);
    return rc;
}
