#include "http/sse.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "http/response.h"
#include "util.h"
#include "banned.h"

struct sse {
    h2o_generator_t super;
    h2o_req_t *req;
    struct sse_opts opts;
    h2o_loop_t *loop;
    h2o_timeout_t poll_timeout;
    h2o_timeout_entry_t timer;
    char *pending; /* formatted events not yet handed to h2o */
    size_t pending_len;
    char *out;     /* what h2o was handed last (ours, not the request pool's: a stream lives long) */
    bool sending;  /* h2o holds a buffer of ours: wait for proceed */
    bool polling;  /* a poll is in flight */
    bool ending;   /* the final send is due */
    bool ended;    /* the final send went out */
    bool stopped;  /* the client went away */
    uint64_t last_write_ms;
};

long long sse_last_event_id(const char *value, size_t len)
{
    if (len == 0 || len > 18) /* 18 digits always fit a long long */
        return 0;
    long long id = 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9')
            return 0;
        id = id * 10 + (value[i] - '0');
    }
    return id;
}

static bool draining(const struct sse *s)
{
    return s->opts.stopping != NULL && atomic_load_explicit(s->opts.stopping, memory_order_relaxed);
}

static void append(struct sse *s, const char *text, size_t n)
{
    s->pending = xrealloc(s->pending, s->pending_len + n + 1);
    memcpy(s->pending + s->pending_len, text, n);
    s->pending_len += n;
    s->pending[s->pending_len] = '\0';
}

static void append_str(struct sse *s, const char *text)
{
    append(s, text, strlen(text));
}

/* Hands what is pending to h2o, unless it still holds the previous buffer. */
static void flush(struct sse *s)
{
    if (s->sending || s->stopped || s->ended)
        return;
    if (s->pending_len == 0 && !s->ending)
        return;
    h2o_iovec_t buf = h2o_iovec_init(NULL, 0);
    if (s->pending_len > 0) {
        /* h2o is done with the last buffer (not sending): the pending text becomes the one in flight */
        free(s->out);
        s->out = s->pending;
        buf = h2o_iovec_init(s->out, s->pending_len);
        s->pending = NULL;
        s->pending_len = 0;
    }
    s->sending = true;
    s->last_write_ms = clock_monotonic_ms();
    if (s->ending)
        s->ended = true;
    h2o_send(s->req, &buf, buf.len ? 1 : 0, s->ending ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

/* The server drains: end the stream now rather than when its source does. */
static void end_for_drain(struct sse *s)
{
    append_str(s, ": the server is stopping; reconnect with Last-Event-ID\n\n");
    sse_end(s);
}

static void poll_now(struct sse *s)
{
    if (s->stopped || s->ending || s->polling)
        return;
    s->polling = true;
    s->opts.poll(s, s->opts.data);
}

/*
 * The timer only starts a poll; the stream ends from a poll's completion
 * (sse_poll_done), never here. A response finished inside h2o's timer run
 * can be disposed before the run returns, and with it this stream's
 * h2o_timeout_t, which the run is still walking.
 */
static void on_timer(h2o_timeout_entry_t *entry)
{
    struct sse *s = H2O_STRUCT_FROM_MEMBER(struct sse, timer, entry);
    poll_now(s);
}

static void on_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    struct sse *s = (struct sse *)g;
    s->sending = false;
    flush(s);
}

static void on_stop(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    struct sse *s = (struct sse *)g;
    s->stopped = true;
    if (h2o_timeout_is_linked(&s->timer))
        h2o_timeout_unlink(&s->timer);
}

static void on_dispose(void *p)
{
    struct sse *s = p;
    if (h2o_timeout_is_linked(&s->timer))
        h2o_timeout_unlink(&s->timer);
    h2o_timeout_dispose(s->loop, &s->poll_timeout);
    free(s->pending);
    free(s->out);
}

struct sse *sse_start(h2o_req_t *req, const struct sse_opts *o)
{
    struct sse *s = h2o_mem_alloc_shared(&req->pool, sizeof(*s), on_dispose);
    memset(s, 0, sizeof(*s));
    s->super.proceed = on_proceed;
    s->super.stop = on_stop;
    s->req = req;
    s->opts = *o;
    s->loop = req->conn->ctx->loop;
    h2o_timeout_init(s->loop, &s->poll_timeout, o->poll_ms);
    s->timer.cb = on_timer;
    req->res.status = 200;
    req->res.reason = "OK";
    http_add_header(req, "content-type", "text/event-stream", strlen("text/event-stream"));
    h2o_start_response(req, &s->super);
    if (o->greeting != NULL) {
        append_str(s, ": ");
        append_str(s, o->greeting);
        append_str(s, "\n\n");
    }
    flush(s);
    poll_now(s);
    return s;
}

h2o_req_t *sse_req(struct sse *s)
{
    return s->req;
}

void sse_event(struct sse *s, long long id, const char *event, const char *data)
{
    if (id >= 0) {
        char line[40];
        int n = snprintf(line, sizeof(line), "id: %lld\n", id);
        append(s, line, (size_t)n);
    }
    append_str(s, "event: ");
    append_str(s, event);
    append_str(s, "\ndata: ");
    append_str(s, data);
    append_str(s, "\n\n");
}

void sse_end(struct sse *s)
{
    s->ending = true;
    if (h2o_timeout_is_linked(&s->timer))
        h2o_timeout_unlink(&s->timer);
    flush(s);
}

void sse_poll_done(struct sse *s)
{
    s->polling = false;
    if (s->stopped || s->ended)
        return;
    if (!s->ending && draining(s)) {
        end_for_drain(s);
        return;
    }
    if (!s->ending && s->pending_len == 0 && clock_monotonic_ms() - s->last_write_ms >= s->opts.keepalive_ms)
        append_str(s, ": keep-alive\n\n");
    flush(s);
    if (!s->ending)
        h2o_timeout_link(s->loop, &s->poll_timeout, &s->timer);
}
