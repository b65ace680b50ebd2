/*
 * What the files of src/client/ share: the client itself and one request
 * on its curl handle (a "call"). Private to src/client/ and its unit tests.
 *
 * A call sends method, path, headers and body, and collects the status,
 * a few headers and the body. A 2xx body goes to the call's sink when it
 * has one (an event parser, a file), else to buf; any other body goes to
 * buf, bounded, to be read as the server's JSON error.
 */
#ifndef DEBATE_CLIENT_CLIENT_INT_H
#define DEBATE_CLIENT_CLIENT_INT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/client.h"

struct client {
    CURL *curl;
    char *server;                              /* base URL without a trailing slash */
    char *cacert;                              /* NULL: the system's CAs */
    const volatile sig_atomic_t *interrupted;
    unsigned retry_window_s;
    char csrf[128];                            /* the CSRF token once fetched, else "" */
    char curl_err[CURL_ERROR_SIZE];
};

/* A body in memory, never over max bytes; an error body keeps its first max bytes and drops the rest. */
struct client_buf {
    char *data;
    size_t len, max;
    bool too_big;
};

struct client_call {
    /* the request */
    const char *method;          /* "GET" or "POST" */
    const char *path;            /* "/api/v1/..." */
    struct curl_slist *headers;  /* the caller's */
    const char *body;            /* POST only */
    size_t body_len;
    long idle_s;                 /* a stream or a download: abort after this long without a byte (0: a total limit) */
    /* For a 2xx answer: on_head once the head is in, sink for each piece of the body. Either returns
     * false to end the transfer (stopped is then set); the caller keeps its own reason. */
    bool (*on_head)(void *arg, const struct client_call *k);
    bool (*sink)(void *arg, const char *buf, size_t n);
    void *arg;
    /* the answer */
    long status;
    char etag[96];
    char content_range[96];
    char location[512];          /* a redirect's, to name it: the client follows none */
    unsigned retry_after;        /* seconds; 0 when absent */
    size_t head_bytes;
    bool head_too_big;
    bool stopped;
    struct client_buf buf;
};

/*
 * Runs the call once. CLIENT_OK for a 2xx answer, or when on_head or sink
 * stopped the transfer; CLIENT_REFUSED (e from the server's JSON error) for
 * any other status; else why no whole answer came. Release k after.
 */
enum client_status client_call_perform(struct client *c, struct client_call *k, struct client_error *e);
void client_call_release(struct client_call *k);

/* Fills e with status s and a formatted message. Returns s. */
enum client_status client_error_set(struct client_error *e, enum client_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True once the interrupted flag is set. */
bool client_interrupted(const struct client *c);
/* Sleeps ms milliseconds; false when interrupted (before or during). */
bool client_sleep(struct client *c, unsigned ms);

/* Gives up reconnecting once a window of silence has passed; a sign of life starts it again. */
struct client_retry {
    uint64_t deadline_ms;
    unsigned delay_ms;
};
void client_retry_start(struct client *c, struct client_retry *r);
/* Waits before the next attempt; false when the window is over or the wait was interrupted. */
bool client_retry_wait(struct client *c, struct client_retry *r);

#endif
