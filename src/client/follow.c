/*
 * Following a build's event stream to its end (GET .../log with Accept:
 * text/event-stream), reconnecting with Last-Event-ID after a drop: a
 * server that stops (SIGTERM) closes its streams without `end` on purpose,
 * and its successor (or the same server restarted) goes on from the last
 * id seen, so nothing is missed and nothing comes twice.
 *
 * Only a drop is retried: until one connection has opened the stream, a
 * failure is the answer (an unreachable server, a 503), at once, as every
 * other command gives it.
 */
#include <string.h>

#include "client/client_int.h"
#include "client/sse_parser.h"
#include "util.h"
#include "banned.h"

/* Keep-alives come every 15 s of silence: three missed ones mean the stream is dead. */
#define STREAM_IDLE_S 45L

struct follow {
    const struct client_events *ev;
    struct sse_parser parser;
    json_t *final;           /* the end event's build */
    bool ended;
    bool news;               /* an event arrived on this connection: the server is alive */
    bool opened;             /* a connection has opened the stream (a 2xx head): a failure now is a drop */
    bool not_found;          /* the end event said the build does not exist */
    bool bad_end;            /* the end event was neither a build nor an error */
    char not_found_msg[256];
};

static void on_progress_event(const struct client_events *ev, const char *data)
{
    json_t *doc = json_loads(data, 0, NULL);
    const char *stage = json_string_value(json_object_get(doc, "stage"));
    const char *message = json_string_value(json_object_get(doc, "message"));
    json_int_t pct = json_integer_value(json_object_get(doc, "progress"));
    if (ev->progress != NULL && stage != NULL)
        ev->progress(ev->arg, stage, pct < 0 ? 0 : pct > 100 ? 100 : (int)pct, message ? message : "");
    json_decref(doc);
}

/* The end event: the final build, or an error object when there is no such build. */
static void on_end_event(struct follow *f, const char *data)
{
    json_t *doc = json_loads(data, 0, NULL);
    json_t *err = json_object_get(doc, "error");
    if (json_is_string(json_object_get(doc, "id"))) {
        f->final = doc;
        f->ended = true;
        return;
    }
    const char *msg = json_string_value(json_object_get(err, "message"));
    if (msg != NULL) {
        snprintf(f->not_found_msg, sizeof(f->not_found_msg), "%s", msg);
        f->not_found = true;
    } else {
        f->bad_end = true;
    }
    json_decref(doc);
}

static int on_message(void *arg, const struct sse_message *m)
{
    struct follow *f = arg;
    f->news = true;
    if (strcmp(m->event, "progress") == 0)
        on_progress_event(f->ev, m->data);
    else if (strcmp(m->event, "log") == 0 && f->ev->log != NULL)
        f->ev->log(f->ev->arg, m->data);
    else if (strcmp(m->event, "end") == 0)
        on_end_event(f, m->data);
    return f->ended || f->not_found || f->bad_end ? 1 : 0; /* after end, stop reading: the stream has said everything */
}

static bool follow_head(void *arg, const struct client_call *k)
{
    struct follow *f = arg;
    f->opened = true;
    return true;
}

static bool follow_sink(void *arg, const char *buf, size_t n)
{
    struct follow *f = arg;
    return sse_parser_feed(&f->parser, buf, n) == SSE_PARSE_OK;
}

/* A fresh parser for a new connection; the last id carries over (what Last-Event-ID resumes from). */
static void parser_restart(struct follow *f)
{
    char id[64];
    snprintf(id, sizeof(id), "%s", sse_parser_last_id(&f->parser));
    sse_parser_release(&f->parser);
    sse_parser_init(&f->parser, CLIENT_MAX_EVENT, on_message, f);
    sse_parser_resume(&f->parser, id);
}

/* One connection to the stream: what it said is in f, how it ended in the return. */
static enum client_status follow_once(struct client *c, const char *path, struct follow *f, struct client_error *e)
{
    parser_restart(f);
    f->news = false;
    const char *last = sse_parser_last_id(&f->parser);
    _cleanup_free_ char *resume = last[0] ? xasprintf("Last-Event-ID: %s", last) : NULL;
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: text/event-stream");
    if (resume != NULL)
        headers = curl_slist_append(headers, resume);
    struct client_call k = {.method = "GET", .path = path, .headers = headers, .on_head = follow_head,
                            .sink = follow_sink, .arg = f, .idle_s = STREAM_IDLE_S};
    enum client_status st = client_call_perform(c, &k, e);
    if (st == CLIENT_OK && f->parser.result == SSE_PARSE_TOO_BIG)
        st = client_error_set(e, CLIENT_BAD_REPLY, "the event stream of \"%s%s\" has a line over %d bytes",
                              client_server(c), path, CLIENT_MAX_EVENT);
    else if (st == CLIENT_OK && f->bad_end)
        st = client_error_set(e, CLIENT_BAD_REPLY, "the end event of \"%s%s\" is neither a build nor an error",
                              client_server(c), path);
    else if (st == CLIENT_OK && !f->ended && !f->not_found)
        st = client_error_set(e, CLIENT_NETWORK, "the server closed the event stream of \"%s%s\" before the build ended",
                              client_server(c), path);
    client_call_release(&k);
    curl_slist_free_all(headers);
    return st;
}

/* Worth another connection: a drop, a server that stopped or is not up yet. Not: a refusal, TLS, nonsense. */
static bool follow_should_retry(enum client_status st, const struct client_error *e)
{
    if (st == CLIENT_NETWORK)
        return true;
    return st == CLIENT_REFUSED && (e->http_status >= 500 || e->http_status == 429 || e->http_status == 408);
}

enum client_status client_follow(struct client *c, const char *id, const struct client_events *ev, json_t **final,
                                 struct client_error *e)
{
    _cleanup_free_ char *path = xasprintf("/api/v1/builds/%s/log", id);
    struct follow f = {.ev = ev};
    sse_parser_init(&f.parser, CLIENT_MAX_EVENT, on_message, &f);
    struct client_retry retry;
    client_retry_start(c, &retry);
    enum client_status st;
    for (;;) {
        st = follow_once(c, path, &f, e);
        if (f.ended || f.not_found || !f.opened || !follow_should_retry(st, e))
            break;
        if (f.news)
            client_retry_start(c, &retry);
        if (!client_retry_wait(c, &retry)) {
            if (client_interrupted(c)) /* else the last reason stands */
                st = client_error_set(e, CLIENT_INTERRUPTED, "interrupted");
            break;
        }
    }
    if (f.ended)
        st = CLIENT_OK;
    else if (f.not_found) {
        st = client_error_set(e, CLIENT_REFUSED, "%s", f.not_found_msg);
        e->http_status = 404;
        snprintf(e->code, sizeof(e->code), "not_found");
    }
    *final = f.final;
    sse_parser_release(&f.parser);
    return st;
}
