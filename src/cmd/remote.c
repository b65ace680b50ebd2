/* What the client commands share: which server, which CA, errors and exit statuses (see remote.h). */
#include "cmd/remote.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

/* A recipe or a lock is a request body: the server's max_body_bytes default bounds it too. */
#define REMOTE_JSON_MAX (16 * 1024 * 1024)

static volatile sig_atomic_t remote_interrupted;

static void remote_on_signal(int sig)
{
    (void)sig;
    remote_interrupted = 1;
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

/* The internal CA that "debate serve" made in the data directory, when this machine has one. */
static char *remote_default_ca(const struct config *cfg)
{
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
        return REMOTE_EXIT_USAGE;
    _cleanup_free_ char *ca = r->cacert ? xstrdup(r->cacert) : remote_default_ca(&cfg);
    struct client_opts o = {.server = r->server ? r->server : cfg.server, .cacert = ca,
                            .interrupted = &remote_interrupted};
    struct client_error e;
    *out = client_new(&o, &e);
    config_release(&cfg);
    if (*out == NULL) {
        fprintf(stderr, "debate %s: %s\n", cmd, e.message);
        return REMOTE_EXIT_USAGE;
    }
    cmd_trap_signals(remote_on_signal);
    return 0;
}

static bool is_usage_refusal(const struct client_error *e)
{
    return e->http_status >= 400 && e->http_status < 500 && e->http_status != 408 && e->http_status != 429;
}

/*
 * True when the message already names the field: the server's field is
 * the request's path ("recipe.packages[0]"), its message the recipe's
 * ("packages[0]: ..."), so either spelling counts.
 */
static bool remote_message_names(const char *message, const char *field)
{
    const char *dot = strchr(field, '.');
    return strstr(message, field) != NULL || (dot != NULL && dot[1] != '\0' && strstr(message, dot + 1) != NULL);
}

int remote_fail(const char *cmd, const struct client_error *e)
{
    if (e->status == CLIENT_INTERRUPTED) {
        fprintf(stderr, "debate %s: interrupted\n", cmd);
        return REMOTE_EXIT_INTERRUPTED;
    }
    if (e->status != CLIENT_REFUSED) {
        fprintf(stderr, "debate %s: %s\n", cmd, e->message);
        return REMOTE_EXIT_SERVER;
    }
    bool name_field = e->field[0] != '\0' && !remote_message_names(e->message, e->field);
    fprintf(stderr, "debate %s: %s%s%s (%s)\n", cmd, name_field ? e->field : "", name_field ? ": " : "", e->message,
            e->code[0] ? e->code : "no error code");
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
        fprintf(stderr, "debate %s: build %s was cancelled\n", cmd, id ? id : "?");
        return REMOTE_EXIT_CANCELLED;
    }
    fprintf(stderr, "debate %s: build %s %s: %s (%s)\n", cmd, id ? id : "?", status ? status : "ended", msg ? msg : "",
            code ? code : "no error code");
    return REMOTE_EXIT_FAILED;
}

bool remote_id_ok(const char *cmd, const char *id)
{
    if (client_id_valid(id))
        return true;
    fprintf(stderr, "debate %s: \"%s\" is not a build id (a UUID, as debate submit prints it)\n", cmd, id);
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

int remote_download(const char *cmd, struct client *c, const json_t *build, const char *out)
{
    struct client_error e;
    long long resumed_at;
    enum client_status st = client_download(c, build, out, &resumed_at, &e);
    if (resumed_at > 0)
        fprintf(stderr, "debate %s: resumed the download in \"%s.part\" at byte %lld\n", cmd, out, resumed_at);
    return st == CLIENT_OK ? REMOTE_EXIT_OK : remote_fail(cmd, &e);
}
