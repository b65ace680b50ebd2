/* debate list: the builds on a debate server, newest first. */
#include <stdio.h>
#include <string.h>

#include "cmd/remote.h"
#include "util.h"
#include "banned.h"

/* The API's page size at most: more builds take more pages. */
#define LIST_PAGE 100

const struct cmd_usage cmd_list_usage = {
    .name = "list",
    .synopsis = "[--status STATUS] [--limit N] [--json] " REMOTE_SYNOPSIS,
    .summary = "list the builds on a debate server, newest first",
    .options = "      --status STATUS  only builds in this state: queued, running, succeeded,\n"
               "                       failed, cancelled\n"
               "  -n, --limit N        at most N builds, 1 to 10000 (default: 20)\n"
               "      --json           print {\"builds\": [...], \"next\": CURSOR or null} as JSON\n"
               REMOTE_OPTIONS_USAGE,
    .notes = REMOTE_EXIT_NOTES,
};

static void list_row(const json_t *b)
{
    const char *created = json_string_value(json_object_get(b, "created_at"));
    cmd_print(stdout, "%-36s  %-9s  %-11s  %3lld%%  %s\n", json_string_value(json_object_get(b, "id")) ?: "?",
              json_string_value(json_object_get(b, "status")) ?: "?",
              json_string_value(json_object_get(b, "stage")) ?: "?",
              (long long)json_integer_value(json_object_get(b, "progress")), created ? created : "-");
}

static char *list_path(const char *status, unsigned limit, const char *after)
{
    _cleanup_free_ char *s = status ? client_query_escape(status) : NULL;
    _cleanup_free_ char *a = after ? client_query_escape(after) : NULL;
    return xasprintf("/api/v1/builds?limit=%u%s%s%s%s", limit, s ? "&status=" : "", s ? s : "", a ? "&after=" : "",
                     a ? a : "");
}

/* Pages through the list until limit builds (or the end); *next is the cursor after the last one. */
static int list_fetch(struct client *c, const char *status, unsigned limit, json_t *builds, json_t **next)
{
    _cleanup_free_ char *after = NULL;
    while (json_array_size(builds) < limit) {
        size_t want = limit - json_array_size(builds);
        _cleanup_free_ char *path = list_path(status, want < LIST_PAGE ? (unsigned)want : LIST_PAGE, after);
        json_t *page;
        struct client_error e;
        if (client_get_json(c, path, &page, &e) != CLIENT_OK)
            return remote_fail("list", &e);
        json_t *rows = json_object_get(page, "builds");
        const char *cursor = json_string_value(json_object_get(page, "next"));
        if (!json_is_array(rows)) {
            json_decref(page);
            fprintf(stderr, "debate list: the answer of \"%s%s\" has no list of builds\n", client_server(c), path);
            return REMOTE_EXIT_SERVER;
        }
        json_array_extend(builds, rows);
        free(after);
        after = cursor ? xstrdup(cursor) : NULL;
        json_decref(page);
        if (after == NULL || json_array_size(rows) == 0)
            break;
    }
    *next = after ? json_string(after) : json_null();
    return 0;
}

static int list_run(const struct remote *r, const char *status, unsigned limit, bool json)
{
    struct client *c;
    int rc = remote_open("list", r, &c);
    if (rc != 0)
        return rc;
    json_t *builds = json_array(), *next = NULL;
    rc = list_fetch(c, status, limit, builds, &next);
    if (rc == 0 && json) {
        json_t *doc = json_pack("{s:O, s:O}", "builds", builds, "next", next);
        remote_print_json(doc);
        json_decref(doc);
    } else if (rc == 0) {
        printf("%-36s  %-9s  %-11s  %4s  %s\n", "ID", "STATUS", "STAGE", "", "CREATED");
        for (size_t i = 0; i < json_array_size(builds); i++)
            list_row(json_array_get(builds, i));
    }
    json_decref(builds);
    json_decref(next);
    client_free(c);
    return rc;
}

int cmd_list(int argc, char **argv)
{
    static const struct option opts[] = {{"status", required_argument, NULL, 'S'},
                                         {"limit", required_argument, NULL, 'n'},
                                         {"json", no_argument, NULL, 'j'},
                                         REMOTE_OPTIONS,
                                         CMD_OPTION_HELP,
                                         {NULL, 0, NULL, 0}};
    struct remote r = {0};
    const char *status = NULL;
    unsigned limit = 20;
    bool ok = true, json = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "n:" REMOTE_OPTSTRING "h", opts, NULL)) != -1) {
        if (opt == 'h')
            return cmd_help(&cmd_list_usage);
        if (opt == 'S')
            status = optarg;
        else if (opt == 'n' && !cmd_parse_uint(optarg, 10000, &limit))
            return cmd_bad_number(&cmd_list_usage, "--limit", 10000, optarg);
        else if (opt == 'n')
            ; /* taken */
        else if (opt == 'j')
            json = true;
        else
            ok = remote_option(&r, opt, optarg) && ok;
    }
    if (!ok)
        return cmd_usage_error(&cmd_list_usage);
    int rc = cmd_operands(&cmd_list_usage, argc, argv, 0, NULL);
    return rc >= 0 ? rc : list_run(&r, status, limit, json);
}
