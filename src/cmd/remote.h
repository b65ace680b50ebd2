/*
 * What the client commands share (submit, status, logs, list, cancel,
 * download): the options that say which server to talk to, opening the
 * client, and one mapping from outcomes to exit statuses, which scripts
 * rely on (docs/client.md):
 *
 *   0    done (with --wait, -o, --follow: the build succeeded)
 *   1    the build failed
 *   2    a usage error, an invalid configuration, recipe or lock, or a
 *        request the server refused as asked (4xx: an unknown build, a wrong
 *        cancel token, a build that has already ended, ...)
 *   3    the server or the network failed: no connection, TLS, a 5xx or
 *        429 answer, an answer that is not what the API promises, a
 *        download that does not match its record, a file that cannot be
 *        written
 *   4    the build was cancelled
 *   130  interrupted by SIGINT (143: by SIGTERM); the build goes on on the
 *        server. A second signal kills the command at once.
 *
 * Private to src/cmd. Main thread only.
 */
#ifndef DEBATE_CMD_REMOTE_H
#define DEBATE_CMD_REMOTE_H

#include <stdbool.h>

#include <jansson.h>

#include "client/client.h"
#include "cmd/cmd.h"

enum remote_exit {
    REMOTE_EXIT_OK = 0,
    REMOTE_EXIT_FAILED = 1,
    REMOTE_EXIT_USAGE = 2,
    REMOTE_EXIT_SERVER = 3,
    REMOTE_EXIT_CANCELLED = 4,
    REMOTE_EXIT_INTERRUPTED = 130, /* 128 + SIGINT; SIGTERM's is 143 */
};

/* The options every client command takes (their getopt letters: 's', 'A', 'c'). */
#define REMOTE_OPTIONS                                                                                                 \
    {"server", required_argument, NULL, 's'}, {"cacert", required_argument, NULL, 'A'},                              \
        {"config", required_argument, NULL, 'c'}
#define REMOTE_OPTSTRING "s:c:"
/* The same options in a synopsis. */
#define REMOTE_SYNOPSIS "[--server URL] [--cacert FILE] [--config FILE]"
#define REMOTE_OPTIONS_USAGE                                                                                           \
    "  -s, --server URL     the debate server (default: $DEBATE_SERVER, the server\n"                                 \
    "                       setting, else https://localhost:8443)\n"                                                  \
    "      --cacert FILE    trust the CA in FILE (default: DATA_DIR/tls/ca.pem for a\n"                               \
    "                       server on this machine or a named data directory, else\n"                                 \
    "                       the system's CAs)\n"                                                                      \
    "  -c, --config FILE    read settings from FILE (default: $DEBATE_CONFIG)\n"

#define REMOTE_EXIT_NOTES                                                                                              \
    "exit status: 0 done; 1 the build failed; 2 a usage error, an invalid\n"                                           \
    "configuration, recipe or lock, or a request the server refused (an unknown\n"                                     \
    "build, a wrong cancel token); 3 the server or the network failed (connection,\n"                                  \
    "TLS, 5xx, 429, a download that does not match); 4 the build was cancelled; 130\n"                                 \
    "interrupted (143: SIGTERM; the build goes on). See docs/client.md.\n"

struct remote {
    const char *server; /* --server, or NULL */
    const char *cacert; /* --cacert, or NULL */
    const char *config; /* --config, or NULL */
};

/* Takes opt when it is one of REMOTE_OPTIONS; false when it is not. */
bool remote_option(struct remote *r, int opt, const char *arg);

/*
 * Loads the configuration, picks the server and the CA, traps SIGINT and
 * SIGTERM (the first ends a transfer: exit 130 or 143; the second kills)
 * and makes the client. The CA is --cacert, else DATA_DIR/tls/ca.pem when
 * the server is on this machine or the data directory was named outright,
 * else the system's. Returns 0 with *out set (client_free it), or the exit
 * status after printing why.
 */
int remote_open(const char *cmd, const struct remote *r, struct client **out);

/*
 * Prints "debate CMD: MESSAGE (CODE)", or "(CODE, field FIELD)" when the
 * server blamed a field, for e on standard error; returns the exit status
 * it means. Server text reaches a terminal printable (cmd_print).
 */
int remote_fail(const char *cmd, const struct client_error *e);

/* Prints why a build that did not succeed ended; returns 0 succeeded, 1 failed, 4 cancelled. */
int remote_build_exit(const char *cmd, const json_t *build);

/* True when id looks like a build id; else prints why (the exit status is then 2). */
bool remote_id_ok(const char *cmd, const char *id);

/*
 * True when out can take a download, checked before any request (a build
 * of minutes must not end in an error that was plain at the start): its
 * directory is writable, and out, out.part and out.manifest.json are
 * regular files or not there, since the download renames over them. Else
 * prints why (the exit status is then 2).
 */
bool remote_output_ok(const char *cmd, const char *out);

/* Reads a JSON file (a recipe, a lock) of at most 16 MiB; NULL after printing "debate CMD: PATH: why". */
json_t *remote_load_json(const char *cmd, const char *path);

/*
 * Downloads the build's ISO to out (client_download), saying on standard
 * error when it resumed a partial download, and with print_sum printing
 * "SHA256  OUT" (sha256sum's format) on standard output once it is there.
 * Returns the exit status.
 */
int remote_download(const char *cmd, struct client *c, const json_t *build, const char *out, bool print_sum);

/* Prints doc as one line of compact JSON on standard output. */
void remote_print_json(const json_t *doc);

#endif
