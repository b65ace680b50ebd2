/*
 * debate submit: a recipe to a debate server; with --wait, the build
 * followed to its end; with -o, its ISO and manifest downloaded and checked.
 */
#include <stdio.h>
#include <string.h>

#include "cmd/progress.h"
#include "cmd/remote.h"
#include "util.h"
#include "banned.h"

const struct cmd_usage cmd_submit_usage = {
    .name = "submit",
    .synopsis = "RECIPE [--wait] [-o OUT.iso] [--lock LOCK] [--no-cache] [--boot-check] [--json] " REMOTE_SYNOPSIS,
    .summary = "submit a recipe to a debate server; follow it, download its ISO",
    .options = "  -w, --wait           follow the build to its end, its progress on standard\n"
               "                       error\n"
               "  -o, --output FILE    download the ISO to FILE, its manifest to\n"
               "                       FILE.manifest.json, checked against the build (implies\n"
               "                       --wait)\n"
               "      --lock LOCK      build exactly the packages of this lock (debate lock)\n"
               "      --no-cache       build anew even when the server has this ISO already\n"
               "      --boot-check     boot the ISO under QEMU once built (debate status shows\n"
               "                       the verdict); a cached ISO answers only if it was\n"
               "                       boot-checked\n"
               "      --json           print the server's answer (and with --wait the final\n"
               "                       build) as one JSON line each on standard output\n" REMOTE_OPTIONS_USAGE,
    .notes = "Without --json, standard output gets the build id (and with -o, \"SHA256  FILE\");\n"
             "the cache outcome and the cancel token (shown once: keep it) go to standard\n"
             "error.\n\n" REMOTE_EXIT_NOTES,
};

struct submit_args {
    struct remote remote;
    const char *recipe, *lock, *output;
    bool wait, json, no_cache, boot_check;
};

static void submit_show_progress(void *arg, const char *stage, int pct, const char *message)
{
    progress_show(arg, stage, pct, message);
}

/* The build the answer names; NULL when it names none a client can use. */
static const char *submit_build_id(const json_t *answer)
{
    const char *id = json_string_value(json_object_get(json_object_get(answer, "build"), "id"));
    return client_id_valid(id) ? id : NULL;
}

/* What a person wants to know about the answer: which build, whether it was cached or joined, the token. */
static void submit_report(const json_t *answer, const char *id)
{
    json_t *b = json_object_get(answer, "build");
    const char *status = json_string_value(json_object_get(b, "status"));
    const char *cache = json_string_value(json_object_get(answer, "cache"));
    const char *token = json_string_value(json_object_get(answer, "cancel_token"));
    printf("%s\n", id);
    fflush(stdout);
    if (cache != NULL && strcmp(cache, "hit") == 0)
        fprintf(stderr, "debate submit: build %s: cache hit, the ISO is built already\n", id);
    else if (json_is_true(json_object_get(answer, "merged")))
        cmd_print(stderr, "debate submit: build %s: merged with the identical build already %s (its cancel token "
                  "went to the first submission)\n", id, status ? status : "queued");
    else
        cmd_print(stderr, "debate submit: build %s: %s (cache miss)\n", id, status ? status : "queued");
    if (token != NULL)
        cmd_print(stderr, "debate submit: cancel token %s (shown once: keep it to cancel the build)\n", token);
}

static json_t *submit_body(const struct submit_args *a)
{
    json_t *recipe = remote_load_json("submit", a->recipe);
    json_t *lock = a->lock ? remote_load_json("submit", a->lock) : NULL;
    if (recipe == NULL || (a->lock != NULL && lock == NULL)) {
        json_decref(recipe);
        json_decref(lock);
        return NULL;
    }
    json_t *body = json_pack("{s:o}", "recipe", recipe);
    if (lock != NULL)
        json_object_set_new(body, "lock", lock);
    if (a->no_cache)
        json_object_set_new(body, "no_cache", json_true());
    if (a->boot_check)
        json_object_set_new(body, "boot_check", json_true());
    return body;
}

static bool is_final(const json_t *b)
{
    const char *s = json_string_value(json_object_get(b, "status"));
    return s != NULL && (strcmp(s, "succeeded") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0);
}

/* Follows the build to its end (at once when it has ended: a cache hit); its exit status. */
static int submit_wait(struct client *c, const struct submit_args *a, const json_t *answer, const char *id)
{
    json_t *b = json_object_get(answer, "build");
    json_t *final = is_final(b) ? json_incref(b) : NULL;
    struct client_error e;
    if (final == NULL) {
        struct progress view;
        progress_init(&view, "submit", stderr);
        struct client_events ev = {.progress = submit_show_progress, .arg = &view};
        enum client_status st = client_follow(c, id, &ev, &final, &e);
        progress_end(&view);
        if (st != CLIENT_OK) {
            int rc = remote_fail("submit", &e);
            fprintf(stderr, "debate submit: build %s goes on; follow it with \"debate logs %s --follow\"\n", id, id);
            return rc;
        }
    }
    if (a->json)
        remote_print_json(final);
    int rc = remote_build_exit("submit", final);
    if (rc == REMOTE_EXIT_OK && a->output != NULL)
        rc = remote_download("submit", c, final, a->output, !a->json);
    json_decref(final);
    return rc;
}

static int submit_run(const struct submit_args *a)
{
    struct client *c = NULL;
    json_t *answer = NULL, *body = NULL;
    long status;
    struct client_error e;
    int rc = a->output != NULL && !remote_output_ok("submit", a->output) ? REMOTE_EXIT_USAGE : 0;
    if (rc == 0)
        rc = remote_open("submit", &a->remote, &c);
    if (rc == 0 && (body = submit_body(a)) == NULL)
        rc = REMOTE_EXIT_USAGE;
    if (rc == 0 && client_post_json(c, "/api/v1/builds", body, &status, &answer, &e) != CLIENT_OK)
        rc = remote_fail("submit", &e);
    const char *id = rc == 0 ? submit_build_id(answer) : NULL;
    if (rc == 0 && id == NULL) {
        fprintf(stderr, "debate submit: the server's answer names no build\n");
        rc = REMOTE_EXIT_SERVER;
    }
    if (rc == 0) {
        if (a->json)
            remote_print_json(answer);
        else
            submit_report(answer, id);
        if (a->wait)
            rc = submit_wait(c, a, answer, id);
    }
    json_decref(answer);
    json_decref(body);
    client_free(c);
    return rc;
}

int cmd_submit(int argc, char **argv)
{
    static const struct option opts[] = {{"wait", no_argument, NULL, 'w'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"lock", required_argument, NULL, 'l'},
                                         {"no-cache", no_argument, NULL, 'N'},
                                         {"boot-check", no_argument, NULL, 'B'},
                                         {"json", no_argument, NULL, 'j'},
                                         REMOTE_OPTIONS,
                                         CMD_OPTION_HELP,
                                         {NULL, 0, NULL, 0}};
    struct submit_args a = {0};
    bool ok = true;
    int opt;
    while ((opt = getopt_long(argc, argv, "wo:" REMOTE_OPTSTRING "h", opts, NULL)) != -1) {
        if (opt == 'h')
            return cmd_help(&cmd_submit_usage);
        if (opt == 'w')
            a.wait = true;
        else if (opt == 'o')
            a.output = optarg, a.wait = true;
        else if (opt == 'l')
            a.lock = optarg;
        else if (opt == 'N')
            a.no_cache = true;
        else if (opt == 'B')
            a.boot_check = true;
        else if (opt == 'j')
            a.json = true;
        else
            ok = remote_option(&a.remote, opt, optarg) && ok;
    }
    if (!ok)
        return cmd_usage_error(&cmd_submit_usage);
    int rc = cmd_operands(&cmd_submit_usage, argc, argv, 1, "the recipe");
    if (rc >= 0)
        return rc;
    a.recipe = argv[optind];
    return submit_run(&a);
}
