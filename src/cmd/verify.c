/*
 * debate verify: rebuilds an ISO from its manifest (the recipe and the lock
 * it records) in the sandbox, offline when the cache holds the lock, and
 * says whether the bytes are the same; when they are not, where they differ
 * (engine/isodiff.h). The ISO and its manifest are a local file and the
 * file beside it, or a build of a debate server, downloaded as debate
 * download does. With --on-server the server rebuilds instead (POST
 * /api/v1/builds/ID/verify, on another worker when it has one) and this
 * command follows the rebuild and prints the verdict the build records.
 * Exit statuses: VERIFY_EXIT_* below and docs/client.md.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "cmd/progress.h"
#include "cmd/remote.h"
#include "digest.h"
#include "engine/engine.h"
#include "engine/isodiff.h"
#include "engine/sandbox.h"
#include "proc.h"
#include "util.h"
#include "banned.h"

enum verify_exit {
    VERIFY_EXIT_MATCH = 0,
    VERIFY_EXIT_DIFFERS = 1,
    VERIFY_EXIT_USAGE = 2,    /* also: a manifest, an ISO or a build that cannot be verified */
    VERIFY_EXIT_SERVER = 3,   /* the server or the network (with --build) */
    VERIFY_EXIT_REBUILD = 4,  /* the rebuild or the comparison failed */
};

#define VERIFY_MANIFEST_MAX (64u << 20)
#define VERIFY_MANIFEST_FORMAT 1

const struct cmd_usage cmd_verify_usage = {
    .name = "verify",
    .synopsis = "{ISO [--manifest FILE] | --build ID [--on-server] [--server URL] [--cacert FILE]} "
                "[--diffoscope DIR] [--config FILE]",
    .summary = "rebuild an ISO from its manifest, compare the bytes; needs root",
    .options = "      --manifest FILE  the ISO's manifest (default: ISO.manifest.json)\n"
               "  -b, --build ID       verify a build of a debate server: its ISO and manifest\n"
               "                       are downloaded first\n"
               "      --on-server      with --build: the server rebuilds it (on another worker\n"
               "                       when it has one) and records the verdict; no root needed\n"
               "      --diffoscope DIR when the bytes differ, also write diffoscope's report\n"
               "                       (report.txt, report.html) to DIR (needs diffoscope)\n" REMOTE_OPTIONS_USAGE,
    .notes = "The rebuild uses the manifest's recipe and lock, the cache of the configuration\n"
             "(offline when it holds the lock's packages) and a work directory under\n"
             "DATA_DIR/verify, removed afterwards. Standard output says \"match\" or\n"
             "\"differs\" and the SHA-256, then where the images differ (with --on-server,\n"
             "the rebuild's SHA-256 and worker; compare the bytes with a local verify).\n\n"
             "exit status: 0 the rebuild is the same bytes; 1 it differs; 2 a usage error,\n"
             "an invalid configuration, a manifest or ISO that cannot be read, a build that\n"
             "did not succeed, --diffoscope without diffoscope; 3 the server or the network\n"
             "failed; 4 the rebuild or the comparison failed; 130 interrupted (143: SIGTERM).\n"
             "See docs/reproducibility.md.\n",
};

static volatile sig_atomic_t verify_interrupted;

static void verify_on_signal(int sig)
{
    verify_interrupted = sig;
}

/* What the command line asked for. */
struct verify_request {
    const char *iso;      /* the ISO operand, or NULL with --build */
    const char *manifest; /* --manifest, or NULL */
    const char *build;    /* --build, or NULL */
    const char *diffoscope_dir;
    bool on_server;
    struct remote remote;
};

/* One verification: the work directory and what was read from the manifest. */
struct verify {
    const struct verify_request *q;
    struct config cfg;
    char *work;             /* DATA_DIR/verify/XXXXXX */
    char *iso, *manifest;   /* the ISO and its manifest (local, or downloaded into work) */
    char *manifest_name;    /* the manifest as messages name it: its path, or "the manifest of build ID" */
    json_t *doc;            /* the manifest */
    struct recipe recipe;
    bool have_recipe;
    char sha256[65];        /* the ISO's */
};

static int verify_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int verify_fail(int rc, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cmd_print(stderr, "debate verify: %s\n", msg);
    return rc;
}

static int verify_parse(int argc, char **argv, struct verify_request *q)
{
    static const struct option opts[] = {{"manifest", required_argument, NULL, 'm'},
                                         {"build", required_argument, NULL, 'b'},
                                         {"diffoscope", required_argument, NULL, 'D'},
                                         {"on-server", no_argument, NULL, 'S'},
                                         REMOTE_OPTIONS,
                                         CMD_OPTION_HELP,
                                         {NULL, 0, NULL, 0}};
    bool ok = true, remote = false;
    int c;
    while ((c = getopt_long(argc, argv, "b:" REMOTE_OPTSTRING "h", opts, NULL)) != -1) {
        if (c == 'h')
            return cmd_help(&cmd_verify_usage);
        if (c == 'm')
            q->manifest = optarg;
        else if (c == 'b')
            q->build = optarg;
        else if (c == 'D')
            q->diffoscope_dir = optarg;
        else if (c == 'S')
            q->on_server = true;
        else if (remote_option(&q->remote, c, optarg))
            remote = remote || c != 'c';
        else
            ok = false;
    }
    if (!ok)
        return cmd_usage_error(&cmd_verify_usage);
    int rc = cmd_operands(&cmd_verify_usage, argc, argv, q->build ? 0 : 1, "the ISO");
    if (rc >= 0)
        return rc;
    if (q->build != NULL && q->manifest != NULL)
        return cmd_usage_fail(&cmd_verify_usage, "--manifest is for a local ISO; --build downloads the build's own");
    if (q->build == NULL && remote)
        return cmd_usage_fail(&cmd_verify_usage, "--server and --cacert go with --build ID");
    if (q->on_server && q->build == NULL)
        return cmd_usage_fail(&cmd_verify_usage, "--on-server goes with --build ID");
    if (q->on_server && q->diffoscope_dir != NULL)
        return cmd_usage_fail(&cmd_verify_usage, "--diffoscope compares bytes here; --on-server rebuilds on the server");
    if (q->build != NULL && !remote_id_ok("verify", q->build))
        return VERIFY_EXIT_USAGE;
    q->iso = q->build ? NULL : argv[optind];
    return -1;
}

/* A directory for diffoscope's report: made when missing; checked before the rebuild's minutes. */
static int verify_diffoscope_dir(const char *dir)
{
    if (dir == NULL)
        return 0;
    if (isodiff_diffoscope() == NULL)
        return verify_fail(VERIFY_EXIT_USAGE, "--diffoscope needs diffoscope, which is not installed "
                                              "(apt-get install diffoscope)");
    struct stat st;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return verify_fail(VERIFY_EXIT_USAGE, "cannot create \"%s\": %s", dir, strerror(errno));
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK) < 0)
        return verify_fail(VERIFY_EXIT_USAGE, "\"%s\" is not a writable directory", dir);
    return 0;
}

/* ---- the ISO and its manifest ----------------------------------------------------------- */

/* The build from the server: its ISO and manifest downloaded and checked into the work directory. */
static int verify_download(struct verify *v)
{
    struct client *c = NULL;
    int rc = remote_open("verify", &v->q->remote, &c);
    _cleanup_free_ char *path = xasprintf("/api/v1/builds/%s", v->q->build);
    json_t *b = NULL;
    struct client_error e;
    if (rc != 0)
        goto out;
    v->iso = xasprintf("%s/build.iso", v->work);
    if (client_get_json(c, path, &b, &e) != CLIENT_OK) {
        rc = remote_fail("verify", &e);
    } else if (json_is_null(json_object_get(b, "finished_at"))) {
        cmd_print(stderr, "debate verify: build %s has not ended (%s); wait with \"debate logs %s --follow\"\n",
                  v->q->build, json_string_value(json_object_get(b, "status")) ?: "?", v->q->build);
        rc = VERIFY_EXIT_USAGE;
    } else if (remote_build_exit("verify", b) != REMOTE_EXIT_OK) {
        rc = VERIFY_EXIT_USAGE; /* a build that did not succeed has no ISO to verify */
    } else {
        rc = remote_download("verify", c, b, v->iso, false);
        rc = rc == REMOTE_EXIT_USAGE ? VERIFY_EXIT_USAGE : rc;
    }
out:
    json_decref(b);
    client_free(c);
    return rc;
}

static const char *manifest_string(const json_t *doc, const char *key)
{
    return json_string_value(json_object_get(doc, key));
}

/* The manifest: its format, the recipe (parsed as debate build would) and its config_hash. Extra fields are fine. */
static int verify_read_manifest(struct verify *v)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    int rc = read_file(v->manifest, VERIFY_MANIFEST_MAX, &text, &len);
    if (rc < 0)
        return verify_fail(VERIFY_EXIT_USAGE, "cannot read the manifest %s: %s", v->manifest_name, strerror(-rc));
    json_error_t je;
    v->doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (v->doc == NULL)
        return verify_fail(VERIFY_EXIT_USAGE, "%s is not JSON: line %d: %s", v->manifest_name, je.line,
                           je.text);
    json_t *format = json_object_get(v->doc, "format");
    if (!json_is_object(v->doc) || !json_is_integer(format) || !json_is_object(json_object_get(v->doc, "recipe")) ||
        !json_is_object(json_object_get(v->doc, "lock")))
        return verify_fail(VERIFY_EXIT_USAGE, "%s is not a manifest of debate build (it wants format, recipe and lock)",
                           v->manifest_name);
    if (json_integer_value(format) != VERIFY_MANIFEST_FORMAT)
        return verify_fail(VERIFY_EXIT_USAGE, "%s has format %lld; this debate reads format %d",
                           v->manifest_name, (long long)json_integer_value(format), VERIFY_MANIFEST_FORMAT);
    _cleanup_free_ char *recipe = json_dumps(json_object_get(v->doc, "recipe"), JSON_COMPACT);
    struct recipe_error re;
    if (recipe_parse(recipe, strlen(recipe), &v->recipe, &re) < 0) {
        char msg[512];
        recipe_error_format(&re, msg, sizeof(msg));
        return verify_fail(VERIFY_EXIT_USAGE, "the manifest's recipe: %s", msg);
    }
    v->have_recipe = true;
    const char *hash = manifest_string(v->doc, "config_hash");
    if (hash != NULL && strcmp(hash, v->recipe.config_hash) != 0)
        return verify_fail(VERIFY_EXIT_USAGE, "the manifest's config_hash %s is not its recipe's (%s)", hash,
                           v->recipe.config_hash);
    return 0;
}

/* The ISO is there and a regular file: checked before its manifest, whose name derives from it. */
static int verify_check_iso(const struct verify *v)
{
    struct stat st;
    if (stat(v->iso, &st) < 0)
        return verify_fail(VERIFY_EXIT_USAGE, "cannot read the ISO \"%s\": %s", v->iso, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return verify_fail(VERIFY_EXIT_USAGE, "the ISO \"%s\" is not a regular file", v->iso);
    return 0;
}

/* The ISO's SHA-256; a note when it is not the one the manifest records (the rebuild decides all the same). */
static int verify_hash_iso(struct verify *v)
{
    int rc = sha256_file(v->iso, v->sha256, NULL);
    if (rc < 0)
        return verify_fail(VERIFY_EXIT_USAGE, "cannot read the ISO \"%s\": %s", v->iso, strerror(-rc));
    const char *recorded = manifest_string(v->doc, "iso_sha256");
    if (recorded != NULL && strcmp(recorded, v->sha256) != 0)
        cmd_print(stderr, "debate verify: note: the manifest records sha256 %s, not the ISO's\n", recorded);
    return 0;
}

/* Notes on what may legitimately change the bytes: another debate, other versions of the host tools. */
static void verify_note_tools(struct verify *v)
{
    const char *builder = manifest_string(v->doc, "builder");
    if (builder != NULL && strcmp(builder, "debate " DEBATE_VERSION) != 0)
        cmd_print(stderr, "debate verify: note: the ISO was built by \"%s\", this is debate %s\n", builder,
                  DEBATE_VERSION);
    json_t *tools = json_object_get(v->doc, "tools");
    _cleanup_free_ char *host = engine_tool_versions(v->work);
    const char *name;
    json_t *want;
    json_object_foreach(tools, name, want) {
        _cleanup_free_ char *line = xasprintf("%s %s\n", name, json_string_value(want) ?: "");
        bool at_start = strncmp(host, line, strlen(line)) == 0;
        _cleanup_free_ char *inner = xasprintf("\n%s", line);
        if (!at_start && strstr(host, inner) == NULL)
            cmd_print(stderr, "debate verify: note: the ISO was built with %s %s; this machine has another "
                              "version, which may change the bytes\n", name, json_string_value(want) ?: "?");
    }
}

/* ---- the rebuild and the comparison ----------------------------------------------------- */

static void verify_show_progress(void *arg, enum engine_stage stage, int pct, const char *message)
{
    progress_show(arg, engine_stage_name(stage), pct, message);
}

/* Rebuilds into out; its SHA-256 in sha. */
static int verify_rebuild(struct verify *v, const char *out, char sha[65])
{
    _cleanup_free_ char *lock = xasprintf("%s/lock.json", v->work);
    _cleanup_free_ char *text = json_dumps(json_object_get(v->doc, "lock"), JSON_COMPACT);
    int rc = write_file_atomic(lock, text, strlen(text), 0600);
    if (rc < 0)
        return verify_fail(VERIFY_EXIT_REBUILD, "cannot write \"%s\": %s", lock, strerror(-rc));
    struct progress view;
    progress_init(&view, "verify", stderr);
    struct engine_opts o = {.cfg = &v->cfg, .output = out, .lock_path = lock, .hook_timeout_s = 300,
                            .progress = verify_show_progress, .progress_arg = &view,
                            .interrupted = &verify_interrupted, .cold = true};
    struct engine_result res;
    char msg[4096];
    enum engine_error cause = engine_build(&v->recipe, &o, &res, msg, sizeof(msg));
    progress_end(&view);
    if (cause == ENGINE_OK) {
        memcpy(sha, res.iso_sha256, 65);
        return 0;
    }
    if (cause == ENGINE_E_INTERRUPTED)
        return verify_fail(128 + (verify_interrupted ? verify_interrupted : SIGINT), "%s", msg);
    int status = cause == ENGINE_E_INVALID_LOCK ? VERIFY_EXIT_USAGE : VERIFY_EXIT_REBUILD;
    return verify_fail(status, "the rebuild: %s", msg);
}

static int verify_compare(struct verify *v, const char *rebuilt, const char *sha)
{
    const char *shown = v->q->iso ? v->q->iso : v->q->build;
    if (strcmp(sha, v->sha256) == 0) {
        cmd_print(stdout, "match  %s  %s\n", v->sha256, shown);
        return VERIFY_EXIT_MATCH;
    }
    _cleanup_free_ char *work = xasprintf("%s/compare", v->work);
    if (mkdir(work, 0700) < 0)
        return verify_fail(VERIFY_EXIT_REBUILD, "cannot create \"%s\": %s", work, strerror(errno));
    struct isodiff_opts o = {.cfg = &v->cfg, .work = work, .original = v->iso, .rebuilt = rebuilt,
                             .diffoscope_dir = v->q->diffoscope_dir, .cancel = &verify_interrupted};
    struct isodiff_report rep;
    char err[2048];
    if (isodiff_compare(&o, &rep, err, sizeof(err)) < 0)
        return verify_interrupted ? verify_fail(128 + verify_interrupted, "%s", err)
                                  : verify_fail(VERIFY_EXIT_REBUILD, "%s", err);
    cmd_print(stdout, "differs  %s  %s  rebuilt %s\n", v->sha256, shown, sha);
    for (size_t i = 0; i < rep.nlines; i++)
        cmd_print(stdout, "  %s\n", rep.lines[i]);
    if (rep.nlines == 0)
        cmd_print(stdout, "  the comparison found no part that differs\n");
    if (v->q->diffoscope_dir != NULL)
        cmd_print(stdout, "  diffoscope's report: %s/report.txt, %s/report.html\n", v->q->diffoscope_dir,
                  v->q->diffoscope_dir);
    isodiff_report_release(&rep);
    return VERIFY_EXIT_DIFFERS;
}

/* DATA_DIR/verify/XXXXXX, private to this run. */
static int verify_make_work(struct verify *v)
{
    _cleanup_free_ char *parent = xasprintf("%s/verify", v->cfg.data_dir);
    int rc = mkdir_p(parent, 0700);
    v->work = xasprintf("%s/XXXXXX", parent);
    if (rc < 0 || mkdtemp(v->work) == NULL) {
        int saved = rc < 0 ? -rc : errno;
        free(v->work);
        v->work = NULL;
        return verify_fail(VERIFY_EXIT_REBUILD, "cannot create a work directory in \"%s\": %s", parent,
                           strerror(saved));
    }
    return 0;
}

static void verify_remove_work(const char *work)
{
    const char *argv[] = {"/bin/rm", "-rf", "--one-file-system", work, NULL};
    struct proc_opts o = {0};
    char err[128];
    proc_run(argv, &o, err, sizeof(err));
}

static int verify_run(struct verify *v)
{
    const struct verify_request *q = v->q;
    int rc = verify_make_work(v);
    if (rc != 0)
        return rc;
    if (q->build != NULL && (rc = verify_download(v)) != 0)
        return rc;
    cmd_trap_signals(verify_on_signal, 0);
    if (q->iso != NULL)
        v->iso = xstrdup(q->iso);
    v->manifest = q->manifest ? xstrdup(q->manifest) : xasprintf("%s.manifest.json", v->iso);
    v->manifest_name = q->build ? xasprintf("the manifest of build %s", q->build) : xasprintf("\"%s\"", v->manifest);
    if ((rc = verify_check_iso(v)) != 0 || (rc = verify_read_manifest(v)) != 0 || (rc = verify_hash_iso(v)) != 0)
        return rc;
    verify_note_tools(v);
    _cleanup_free_ char *dir = xasprintf("%s/rebuilt", v->work);
    _cleanup_free_ char *rebuilt = xasprintf("%s/%s.iso", dir, v->recipe.name);
    if (mkdir(dir, 0700) < 0)
        return verify_fail(VERIFY_EXIT_REBUILD, "cannot create \"%s\": %s", dir, strerror(errno));
    cmd_print(stderr, "debate verify: rebuilding \"%s\" from the manifest's lock\n", v->recipe.name);
    char sha[65];
    if ((rc = verify_rebuild(v, rebuilt, sha)) != 0)
        return rc;
    return verify_compare(v, rebuilt, sha);
}

/* ---- --on-server: the service rebuilds ------------------------------------------------------ */

static void verify_server_progress(void *arg, const char *stage, int pct, const char *message)
{
    progress_show(arg, stage, pct, message);
}

/* The verdict the build records for the rebuild rid, as a line and an exit status. */
static int verify_server_verdict(const char *id, const char *rid, const json_t *b)
{
    const json_t *v = json_object_get(b, "verification");
    const char *result = json_string_value(json_object_get(v, "result"));
    const char *worker = json_string_value(json_object_get(v, "worker")) ?: "?";
    const char *sha = json_string_value(json_object_get(b, "iso_sha256")) ?: "?";
    const char *of = json_string_value(json_object_get(v, "build"));
    if (result == NULL)
        return verify_fail(VERIFY_EXIT_SERVER, "build %s records no verdict after its rebuild ended", id);
    if (of == NULL || strcmp(of, rid) != 0)
        return verify_fail(VERIFY_EXIT_SERVER, "build %s records the verdict of rebuild %s, not of %s (another "
                           "rebuild ended after it)", id, of ? of : "?", rid);
    if (strcmp(result, "match") == 0) {
        cmd_print(stdout, "match  %s  %s  rebuilt by %s\n", sha, id, worker);
        return VERIFY_EXIT_MATCH;
    }
    if (strcmp(result, "differs") == 0) {
        cmd_print(stdout, "differs  %s  %s  rebuilt %s by %s\n", sha, id,
                  json_string_value(json_object_get(v, "sha256")) ?: "?", worker);
        cmd_print(stdout, "  where: debate verify --build %s (rebuilds here and compares the bytes)\n", id);
        return VERIFY_EXIT_DIFFERS;
    }
    return verify_fail(VERIFY_EXIT_REBUILD, "the rebuild %s on the server %s: %s",
                       json_string_value(json_object_get(v, "build")) ?: "?", result,
                       json_string_value(json_object_get(v, "error")) ?: "no error recorded");
}

static int verify_on_server(const struct verify_request *q)
{
    struct client *c = NULL;
    int rc = remote_open("verify", &q->remote, &c);
    if (rc != 0)
        return rc == REMOTE_EXIT_USAGE ? VERIFY_EXIT_USAGE : VERIFY_EXIT_SERVER;
    _cleanup_free_ char *path = xasprintf("/api/v1/builds/%s/verify", q->build);
    _cleanup_free_ char *record = xasprintf("/api/v1/builds/%s", q->build);
    json_t *body = json_object(), *answer = NULL, *final = NULL, *b = NULL;
    long status;
    struct client_error e;
    if (client_post_json(c, path, body, &status, &answer, &e) != CLIENT_OK) {
        rc = remote_fail("verify", &e);
        if (rc < 128)
            rc = rc == REMOTE_EXIT_USAGE || strcmp(e.code, "not_verifiable") == 0 ? VERIFY_EXIT_USAGE
                                                                                 : VERIFY_EXIT_SERVER;
        goto out;
    }
    const char *rid = json_string_value(json_object_get(json_object_get(answer, "build"), "id"));
    if (rid == NULL) {
        rc = verify_fail(VERIFY_EXIT_SERVER, "the server's answer names no rebuild");
        goto out;
    }
    cmd_print(stderr, "debate verify: build %s: rebuild %s %s on the server\n", q->build, rid,
              json_is_true(json_object_get(answer, "merged")) ? "was already under way" : "queued");
    struct progress view;
    progress_init(&view, "verify", stderr);
    struct client_events ev = {.progress = verify_server_progress, .arg = &view};
    enum client_status st = client_follow(c, rid, &ev, &final, &e);
    progress_end(&view);
    if (st != CLIENT_OK) {
        rc = remote_fail("verify", &e);
        rc = rc >= 128 ? rc : VERIFY_EXIT_SERVER;
        cmd_print(stderr, "debate verify: the rebuild goes on; its verdict will be in \"debate status %s\"\n",
                  q->build);
        goto out;
    }
    if (client_get_json(c, record, &b, &e) != CLIENT_OK) {
        rc = remote_fail("verify", &e);
        rc = rc >= 128 ? rc : VERIFY_EXIT_SERVER;
        goto out;
    }
    rc = verify_server_verdict(q->build, rid, b);
out:
    json_decref(body);
    json_decref(answer);
    json_decref(final);
    json_decref(b);
    client_free(c);
    return rc;
}

int cmd_verify(int argc, char **argv)
{
    struct verify_request q = {0};
    int rc = verify_parse(argc, argv, &q);
    if (rc >= 0)
        return rc;
    if (q.on_server)
        return verify_on_server(&q);
    if (geteuid() != 0)
        return verify_fail(VERIFY_EXIT_USAGE, "must run as root (the rebuild runs in namespaces of its own)");
    if ((rc = verify_diffoscope_dir(q.diffoscope_dir)) != 0)
        return rc;
    struct verify v = {.q = &q};
    if (cmd_load_config(&v.cfg, q.remote.config) < 0)
        return CMD_EXIT_CONFIG;
    sandbox_prepare_cgroups();
    rc = verify_run(&v);
    if (v.work != NULL)
        verify_remove_work(v.work);
    free(v.work);
    free(v.iso);
    free(v.manifest);
    free(v.manifest_name);
    json_decref(v.doc);
    if (v.have_recipe)
        recipe_release(&v.recipe);
    config_release(&v.cfg);
    return rc;
}
