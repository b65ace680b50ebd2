/* debate download: a succeeded build's ISO and manifest, checked, resumed after a drop. */
#include <stdio.h>
#include <string.h>

#include "cmd/remote.h"
#include "util.h"
#include "banned.h"

const struct cmd_usage cmd_download_usage = {
    .name = "download",
    .synopsis = "ID -o FILE " REMOTE_SYNOPSIS,
    .summary = "download a build's checked ISO and manifest from a debate server",
    .options = "  -o, --output FILE    the ISO goes to FILE, its manifest to FILE.manifest.json\n"
               "                       (required); FILE.part holds the bytes until they check\n"
               "                       out, and a later run resumes from it\n" REMOTE_OPTIONS_USAGE,
    .notes = "A build that failed exits 1, one that was cancelled 4, one that has not ended 2.\n\n"
             REMOTE_EXIT_NOTES,
};

static int download_run(struct client *c, const char *id, const char *out)
{
    _cleanup_free_ char *path = xasprintf("/api/v1/builds/%s", id);
    json_t *b = NULL;
    struct client_error e;
    int rc;
    if (client_get_json(c, path, &b, &e) != CLIENT_OK) {
        rc = remote_fail("download", &e);
    } else if (json_is_null(json_object_get(b, "finished_at"))) {
        cmd_print(stderr, "debate download: build %s has not ended (%s); wait with \"debate logs %s --follow\"\n",
                  id, json_string_value(json_object_get(b, "status")) ?: "?", id);
        rc = REMOTE_EXIT_USAGE;
    } else if ((rc = remote_build_exit("download", b)) == REMOTE_EXIT_OK) {
        rc = remote_download("download", c, b, out, true);
    }
    json_decref(b);
    return rc;
}

int cmd_download(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'}, REMOTE_OPTIONS, CMD_OPTION_HELP,
                                         {NULL, 0, NULL, 0}};
    struct remote r = {0};
    const char *out = NULL;
    bool ok = true;
    int opt;
    while ((opt = getopt_long(argc, argv, "o:" REMOTE_OPTSTRING "h", opts, NULL)) != -1) {
        if (opt == 'h')
            return cmd_help(&cmd_download_usage);
        if (opt == 'o')
            out = optarg;
        else
            ok = remote_option(&r, opt, optarg) && ok;
    }
    if (!ok)
        return cmd_usage_error(&cmd_download_usage);
    int rc = cmd_operands(&cmd_download_usage, argc, argv, 1, "the build id");
    if (rc >= 0)
        return rc;
    if (out == NULL)
        return cmd_usage_fail(&cmd_download_usage, "-o FILE is required");
    const char *id = argv[optind];
    if (!remote_id_ok("download", id) || !remote_output_ok("download", out))
        return REMOTE_EXIT_USAGE;
    struct client *c;
    rc = remote_open("download", &r, &c);
    if (rc == 0)
        rc = download_run(c, id, out);
    client_free(c);
    return rc;
}
