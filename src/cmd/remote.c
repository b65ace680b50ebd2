/* What the client commands share: which server, which CA, errors and exit statuses (see remote.h). */
#include "cmd/remote.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

/* A recipe or a lock is a request body: the server's max_body_bytes default bounds it too. */
#define REMOTE_JSON_MAX (16 * 1024 * 1024)

/* The signal that stopped the command (SIGINT, SIGTERM), or 0: the client looks at it as its flag. */
static volatile sig_atomic_t remote_interrupted;

static void remote_on_signal(int sig)
{
    remote_interrupted = sig;
}

bool remote_option(struct remote *r, int opt, const char *arg)
{
    if (opt == 's')
        r->server = arg;
    else if (opt == 'A')
        r->cacert = arg;
    else if (opt == 'c')
        r->config = arg;
    else
        return false;
    return true;
}

/* True when the data directory was named outright: $DEBATE_DATA_DIR, or a data_dir other than the default. */
static bool remote_data_dir_named(const struct config *cfg)
{
    const char *env = getenv("DEBATE_DATA_DIR");
    if (env != NULL && env[0] != '\0')
        return true;
    _cleanup_free_ char *cwd = get_current_dir_name();
    _cleanup_free_ char *fallback = cwd ? xasprintf("%s/data", cwd) : NULL;
    return fallback == NULL || strcmp(cfg->data_dir, fallback) != 0;
}

/*
 * The internal CA that "debate serve" made in the data directory, when
 * this machine has one. A CA is a trust anchor, so it is taken only where
 * it is meant: for a server on this machine (localhost, 127.0.0.1, ::1),
 * or from a data directory named outright. A data/tls/ca.pem that happens
 * to lie in the working directory must not vouch for https://builds.example
 * (whoever wrote that file could then stand in for any server).
 */
static char *remote_default_ca(const struct config *cfg, const char *server)
{
    if (!client_server_is_local(server) && !remote_data_dir_named(cfg))
        return NULL;
    char *path = xasprintf("%s/tls/ca.pem", cfg->data_dir);
    if (access(path, R_OK) == 0)
        return path;
    free(path);
    return NULL;
}

int remote_open(const char *cmd, const struct remote *r, struct client **out)
{
    *out = NULL;
    if (r->cacert != NULL && access(r->cacert, R_OK) < 0) {
        fprintf(stderr, "debate %s: --cacert \"%s\": %s\n", cmd, r->cacert, strerror(errno));
        return REMOTE_EXIT_USAGE;
    }
    struct config cfg;
    if (cmd_load_config(&cfg, r->config) < 0)
        return CMD_EXIT_CONFIG;
    const char *server = r->server ? r->server : cfg.server;
    _cleanup_free_ char *ca = r->cacert ? xstrdup(r->cacert) : remote_default_ca(&cfg, server);
    struct client_opts o = {.server = server, .cacert = ca, .interrupted = &remote_interrupted};
    struct client_error e;
    *out = client_new(&o, &e);
    config_release(&cfg);
    if (*out == NULL) {
        fprintf(stderr, "debate %s: %s\n", cmd, e.message);
        return REMOTE_EXIT_USAGE;
    }
    /* A second Ctrl-C ends the command at once, even in a step that does not look at the flag (a long hash). */
    cmd_trap_signals(remote_on_signal, SA_RESETHAND);
    return 0;
}

static bool is_usage_refusal(const struct client_error *e)
{
    return e->http_status >= 400 && e->http_status < 500 && e->http_status != 408 && e->http_status != 429;
}

int remote_fail(const char *cmd, const struct client_error *e)
{
    if (e->status == CLIENT_INTERRUPTED) {
        fprintf(stderr, "debate %s: interrupted\n", cmd);
        return 128 + (remote_interrupted ? remote_interrupted : SIGINT);
    }
    if (e->status != CLIENT_REFUSED) {
        cmd_print(stderr, "debate %s: %s\n", cmd, e->message);
        return REMOTE_EXIT_SERVER;
    }
    /* The field the server blamed goes in one place, after the code, whether or not the message names it too. */
    cmd_print(stderr, "debate %s: %s (%s%s%s)\n", cmd, e->message, e->code[0] ? e->code : "no error code",
              e->field[0] ? ", field " : "", e->field);
    return is_usage_refusal(e) ? REMOTE_EXIT_USAGE : REMOTE_EXIT_SERVER;
}

int remote_build_exit(const char *cmd, const json_t *b)
{
    const char *id = json_string_value(json_object_get(b, "id"));
    const char *status = json_string_value(json_object_get(b, "status"));
    json_t *err = json_object_get(b, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    if (status != NULL && strcmp(status, "succeeded") == 0)
        return REMOTE_EXIT_OK;
    if (status != NULL && strcmp(status, "cancelled") == 0) {
        cmd_print(stderr, "debate %s: build %s was cancelled\n", cmd, id ? id : "?");
        return REMOTE_EXIT_CANCELLED;
    }
    cmd_print(stderr, "debate %s: build %s %s: %s (%s)\n", cmd, id ? id : "?", status ? status : "ended",
              msg ? msg : "", code ? code : "no error code");
    return REMOTE_EXIT_FAILED;
}

bool remote_id_ok(const char *cmd, const char *id)
{
    if (client_id_valid(id))
        return true;
    cmd_print(stderr, "debate %s: \"%s\" is not a build id (a UUID, as debate submit prints it)\n", cmd, id);
    return false;
}

/* A file the download would replace must be a regular file: a rename over a fifo or a device replaces that. */
static bool remote_replaceable(const char *cmd, const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0 || S_ISREG(st.st_mode))
        return true; /* nothing there (or nothing to see): the download says why it cannot write */
    fprintf(stderr, "debate %s: \"%s\" exists and is not a regular file\n", cmd, path);
    return false;
}

bool remote_output_ok(const char *cmd, const char *out)
{
    _cleanup_free_ char *copy = xstrdup(out);
    const char *dir = dirname(copy);
    if (access(dir, W_OK) != 0) {
        fprintf(stderr, "debate %s: cannot write to \"%s\": the directory \"%s\" is missing or not writable\n", cmd,
                out, dir);
        return false;
    }
    _cleanup_free_ char *part = xasprintf("%s.part", out);
    _cleanup_free_ char *manifest = xasprintf("%s.manifest.json", out);
    return remote_replaceable(cmd, out) && remote_replaceable(cmd, part) && remote_replaceable(cmd, manifest);
}

json_t *remote_load_json(const char *cmd, const char *path)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    int rc = read_file(path, REMOTE_JSON_MAX, &text, &len);
    if (rc < 0) {
        fprintf(stderr, "debate %s: \"%s\": %s\n", cmd, path, rc == -EFBIG ? "larger than 16 MiB" : strerror(-rc));
        return NULL;
    }
    json_error_t je;
    json_t *doc = json_loadb(text, len, 0, &je);
    if (doc == NULL)
        fprintf(stderr, "debate %s: \"%s\": line %d: %s\n", cmd, path, je.line, je.text);
    return doc;
}

void remote_print_json(const json_t *doc)
{
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT);
    printf("%s\n", text ? text : "null");
    fflush(stdout);
}

int remote_download(const char *cmd, struct client *c, const json_t *build, const char *out, bool print_sum)
{
    struct client_error e;
    long long resumed_at;
    enum client_status st = client_download(c, build, out, &resumed_at, &e);
    if (resumed_at > 0)
        fprintf(stderr, "debate %s: resumed the download in \"%s.part\" at byte %lld\n", cmd, out, resumed_at);
    if (st != CLIENT_OK)
        return remote_fail(cmd, &e);
    if (print_sum)
        printf("%s  %s\n", json_string_value(json_object_get(build, "iso_sha256")), out);
    return REMOTE_EXIT_OK;
}
