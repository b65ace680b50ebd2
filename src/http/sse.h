/*
 * Server-Sent Events responses (text/event-stream) fed by polling: the
 * stream calls its poll function at once and then poll_ms after each poll
 * has finished (sse_poll_done), until the poll ends it (sse_end). What is
 * polled, and from where, is the caller's: the build log polls the events
 * table through the executor.
 *
 * A comment line goes out after keepalive_ms of silence, so proxies and
 * clients can tell a quiet stream from a dead one. When the server drains
 * (*stopping set), the stream sends what it has, a comment saying so, and
 * ends: a client reconnects (to this server restarted, or another) with
 * Last-Event-ID and misses nothing, and the drain is not held up by a
 * stream that would otherwise last as long as its build.
 *
 * Ownership: the stream lives in the request's pool and goes with it. A
 * client that goes away stops the timer; a poll still in flight must then
 * not touch the stream (the executor's request guard skips its
 * completion). Threads: the request's loop thread only.
 */
#ifndef DEBATE_HTTP_SSE_H
#define DEBATE_HTTP_SSE_H

#include <stdatomic.h>
#include <stdint.h>

#include <h2o.h>

struct sse;

/* Called on the loop thread to fetch more; must end with sse_poll_done (now or from a completion). */
typedef void (*sse_poll_fn)(struct sse *s, void *data);

struct sse_opts {
    uint64_t poll_ms;       /* between the end of one poll and the next */
    uint64_t keepalive_ms;  /* silence before a keep-alive comment */
    sse_poll_fn poll;
    void *data;             /* handed to poll; owned by the caller (the request's pool, say) */
    const char *greeting;   /* a comment sent at once (without ": "), or NULL */
    const atomic_int *stopping; /* set when the server drains */
};

/*
 * A Last-Event-ID value (what a reconnecting client last saw): the id, or 0
 * (from the start) for anything but 1 to 18 decimal digits. Replaying from
 * the start on a value it cannot read costs the client repeated events; a
 * guess could cost it missing ones. Pure: any thread.
 */
long long sse_last_event_id(const char *value, size_t len);

/* Starts the 200 text/event-stream response on req and the first poll. */
struct sse *sse_start(h2o_req_t *req, const struct sse_opts *o);

/* The request the stream answers (to submit the poll's work against). */
h2o_req_t *sse_req(struct sse *s);

/* Queues an event: "id: ID" (when id >= 0), "event: NAME", "data: DATA" (one line). */
void sse_event(struct sse *s, long long id, const char *event, const char *data);

/* Ends the stream after what is queued; no more polls. */
void sse_end(struct sse *s);

/* The poll is over: sends what it queued (or a keep-alive) and schedules the next poll. */
void sse_poll_done(struct sse *s);

#endif
