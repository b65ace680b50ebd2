/*
 * The HTTP client of debate's API (docs/api.md), on libcurl: what the
 * commands submit, status, logs, list, cancel and download stand on.
 *
 * A struct client holds one curl easy handle, so consecutive requests share
 * one TLS connection, and curl's in-memory cookie engine, which keeps the
 * CSRF cookie between the token's request and the POST that needs it.
 *
 * Errors travel as values: every call returns an enum client_status and
 * fills a struct client_error with the server's error code (when it sent
 * one) and a lower-case message that names the URL or the file, ready to
 * print after "debate CMD: ". Nothing here prints.
 *
 * Limits: a hostile or broken server cannot make the client hoard memory.
 * Response heads are capped at CLIENT_MAX_HEAD bytes, JSON bodies at
 * CLIENT_MAX_JSON, an event at CLIENT_MAX_EVENT, and an ISO at the size its
 * build record announced; of an error body the first 64 KiB are kept.
 *
 * Threads: a client belongs to the thread that made it. The interrupted
 * flag (set by a signal handler) ends a transfer within a second.
 */
#ifndef DEBATE_CLIENT_CLIENT_H
#define DEBATE_CLIENT_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#define CLIENT_MAX_HEAD (64 * 1024)
#define CLIENT_MAX_JSON (8 * 1024 * 1024)
#define CLIENT_MAX_EVENT (1024 * 1024)

enum client_status {
    CLIENT_OK,
    CLIENT_REFUSED,     /* the server answered with an error status: see http_status and code */
    CLIENT_NETWORK,     /* no (whole) answer: connection, name, timeout, a dropped transfer */
    CLIENT_TLS,         /* the TLS handshake failed: the certificate, the CA */
    CLIENT_BAD_REPLY,   /* an answer that is not what the API promises: not JSON, too big, wrong shape */
    CLIENT_MISMATCH,    /* a downloaded ISO does not match its build record */
    CLIENT_LOCAL,       /* a local file could not be read or written */
    CLIENT_INTERRUPTED, /* the interrupted flag was set */
};

struct client_error {
    enum client_status status;
    long http_status;  /* the HTTP status, when the server answered (else 0) */
    char code[64];     /* the server's error code ("invalid_recipe"), or "" */
    char field[128];   /* the field the server blamed, or "" */
    char message[1024];
};

struct client_opts {
    const char *server;                        /* base URL: "https://host:port" */
    const char *cacert;                        /* PEM file of the CA to trust, or NULL: the system's */
    const volatile sig_atomic_t *interrupted;  /* set by a signal handler to stop, or NULL */
    unsigned retry_window_s;                   /* how long a stream or download keeps reconnecting (0: 60 s) */
};

struct client;

/*
 * Makes a client; the strings in o are copied. Returns NULL with e filled
 * when the server URL is not an http or https URL.
 */
struct client *client_new(const struct client_opts *o, struct client_error *e);
void client_free(struct client *c);

/*
 * GET path (starting with '/') and parse the JSON answer into *out (the
 * caller's reference). 429 and 503 with a short Retry-After are retried.
 */
enum client_status client_get_json(struct client *c, const char *path, json_t **out, struct client_error *e);

/*
 * POST body as JSON to path, after fetching a CSRF token once per client
 * (GET /api/v1/csrf; curl keeps the cookie). A 2xx answer's JSON goes to
 * *out and its status to *http_status; anything else is CLIENT_REFUSED.
 * A NULL body (json_pack's answer to a string that is not UTF-8) is
 * CLIENT_LOCAL, before any request.
 */
enum client_status client_post_json(struct client *c, const char *path, const json_t *body, long *http_status,
                                     json_t **out, struct client_error *e);

/*
 * GET path as text/plain and hand the body to write as it arrives. write
 * returns false (errno set) when it cannot take the bytes: the call is
 * then CLIENT_LOCAL, or CLIENT_INTERRUPTED when the interrupted flag is set
 * (a signal that broke off a blocked write).
 */
enum client_status client_get_text(struct client *c, const char *path, bool (*write)(void *arg, const char *buf,
                                                                                      size_t n),
                                   void *arg, struct client_error *e);

/* What client_follow reports as the events arrive; any callback may be NULL. */
struct client_events {
    void (*progress)(void *arg, const char *stage, int pct, const char *message);
    void (*log)(void *arg, const char *line);
    void *arg;
};

/*
 * Follows the event stream of build id until its `end` event, reconnecting
 * with Last-Event-ID after a drop (or a server that stops) for up to the
 * retry window without news. Only a drop is retried: until a connection
 * has opened the stream, a failure is returned at once. *final gets the
 * end event's build object (the caller's reference). An unknown build is
 * CLIENT_REFUSED with code "not_found".
 */
enum client_status client_follow(struct client *c, const char *id, const struct client_events *ev, json_t **final,
                                 struct client_error *e);

/*
 * Downloads the ISO of a succeeded build (the build object) to out and its
 * manifest to out.manifest.json. The bytes go to out.part first, resumed
 * with Range when a part is there (left by a drop, or an earlier run), are
 * checked against the record's iso_size and iso_sha256 and the ETag, and
 * only then renamed to out: out is never a partial or a wrong ISO. A
 * download that fails for good leaves out.part to resume from, except when
 * its bytes failed the check (they are deleted) or it holds none. *resumed_at gets the byte the first resumed transfer started
 * from (a 206 answer), or -1 when every byte came from a whole transfer.
 */
enum client_status client_download(struct client *c, const json_t *build, const char *out, long long *resumed_at,
                                   struct client_error *e);

/* The server's base URL as the client uses it (no trailing slash). */
const char *client_server(const struct client *c);

/* True when url's host is this machine by name or address: localhost, 127.0.0.1 or [::1]. */
bool client_server_is_local(const char *url);

/* s percent-encoded for a query string (malloc'd). */
char *client_query_escape(const char *s);

/* True for a build id as the server makes them: a UUID in lower-case hex (false for NULL). */
bool client_id_valid(const char *id);

#endif
