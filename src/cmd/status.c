/* debate status: one build as the server sees it. */
#include <stdio.h>
#include <string.h>

#include "cmd/remote.h"
#include "util.h"
#include "banned.h"

const struct cmd_usage cmd_status_usage = {
    .name = "status",
    .synopsis = "ID [--json] " REMOTE_SYNOPSIS,
    .summary = "print a build's status, ISO or error from a debate server",
    .options = "      --json           print the build object of the API (docs/api.md) as JSON\n" REMOTE_OPTIONS_USAGE,
    .notes = "The exit status is 0 whenever the server answered, whatever the build's state.\n\n" REMOTE_EXIT_NOTES,
};

static const char *str(const json_t *b, const char *key)
{
    const char *s = json_string_value(json_object_get(b, key));
    return s ? s : "-";
}

/* The boot check: its verdict once it ran, "asked" before. */
static void status_print_boot(const json_t *b)
{
    const json_t *v = json_object_get(b, "boot_verdict");
    if (json_is_object(v))
        cmd_print(stdout, "boot      %s (bios %s, uefi %s, %lld s; console: %s)\n", str(v, "result"), str(v, "bios"),
                  str(v, "uefi"), (long long)json_integer_value(json_object_get(v, "seconds")),
                  str(b, "boot_log_url"));
    else if (json_is_true(json_object_get(b, "boot_check")))
        printf("boot      asked, not checked yet\n");
}

/* Who built it, and what an independent rebuild said; or what a rebuild verifies. */
static void status_print_verification(const json_t *b)
{
    const json_t *v = json_object_get(b, "verification");
    if (json_is_string(json_object_get(b, "built_by")))
        cmd_print(stdout, "built by  %s\n", str(b, "built_by"));
    if (json_is_string(json_object_get(b, "verify_of")))
        cmd_print(stdout, "verifies  %s\n", str(b, "verify_of"));
    if (json_is_true(json_object_get(b, "verifying")))
        printf("verified  a rebuild is under way\n");
    else if (json_is_object(v) && json_is_string(json_object_get(v, "error")))
        cmd_print(stdout, "verified  %s (rebuild %s by %s, %s: %s)\n", str(v, "result"), str(v, "build"), str(v, "worker"),
                  str(v, "at"), str(v, "error"));
    else if (json_is_object(v))
        cmd_print(stdout, "verified  %s (rebuild %s by %s, %s; sha256 %s)\n", str(v, "result"), str(v, "build"),
                  str(v, "worker"), str(v, "at"), str(v, "sha256"));
    if (json_is_string(json_object_get(b, "waiting")))
        cmd_print(stdout, "waiting   %s\n", str(b, "waiting"));
}

/* One "name  value" line per fact a person looks for. */
static void status_print(const json_t *b)
{
    cmd_print(stdout, "id        %s\n", str(b, "id"));
    cmd_print(stdout, "status    %s\n", str(b, "status"));
    cmd_print(stdout, "stage     %s (%lld%%)\n", str(b, "stage"),
              (long long)json_integer_value(json_object_get(b, "progress")));
    if (json_is_integer(json_object_get(b, "queue_position")))
        printf("queue     %lld (1: next to run)\n", (long long)json_integer_value(json_object_get(b, "queue_position")));
    cmd_print(stdout, "recipe    %s\n", str(b, "config_hash"));
    cmd_print(stdout, "created   %s\n", str(b, "created_at"));
    cmd_print(stdout, "started   %s\n", str(b, "started_at"));
    cmd_print(stdout, "finished  %s\n", str(b, "finished_at"));
    printf("attempts  %lld of %lld\n", (long long)json_integer_value(json_object_get(b, "attempts")),
           (long long)json_integer_value(json_object_get(b, "max_attempts")));
    if (json_is_string(json_object_get(b, "iso_sha256")))
        cmd_print(stdout, "iso       %s (%lld bytes)\n", str(b, "iso_sha256"),
                  (long long)json_integer_value(json_object_get(b, "iso_size")));
    status_print_boot(b);
    status_print_verification(b);
    json_t *err = json_object_get(b, "error");
    if (json_is_object(err))
        cmd_print(stdout, "error     %s: %s\n", str(err, "code"), str(err, "message"));
}

int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, REMOTE_OPTIONS, CMD_OPTION_HELP,
                                         {NULL, 0, NULL, 0}};
    struct remote r = {0};
    bool ok = true, json = false;
    int opt;
    while ((opt = getopt_long(argc, argv, REMOTE_OPTSTRING "h", opts, NULL)) != -1) {
        if (opt == 'h')
            return cmd_help(&cmd_status_usage);
        if (opt == 'j')
            json = true;
        else
            ok = remote_option(&r, opt, optarg) && ok;
    }
    if (!ok)
        return cmd_usage_error(&cmd_status_usage);
    int rc = cmd_operands(&cmd_status_usage, argc, argv, 1, "the build id");
    if (rc >= 0)
        return rc;
    const char *id = argv[optind];
    if (!remote_id_ok("status", id))
        return REMOTE_EXIT_USAGE;
    struct client *c;
    if ((rc = remote_open("status", &r, &c)) != 0)
        return rc;
    _cleanup_free_ char *path = xasprintf("/api/v1/builds/%s", id);
    json_t *b;
    struct client_error e;
    if (client_get_json(c, path, &b, &e) != CLIENT_OK)
        rc = remote_fail("status", &e);
    else if (json)
        remote_print_json(b);
    else
        status_print(b);
    json_decref(b);
    client_free(c);
    return rc;
}
