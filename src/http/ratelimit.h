/*
 * Per-client rate limiting with an exact sliding window: a client may make
 * at most `limit` requests in any window of `window_ms`, measured at every
 * instant, so there is no double burst at a window edge. Each client keeps a
 * log of its accepted requests' times (a ring that grows on demand up to
 * `limit` entries); refused requests are not logged.
 *
 * Memory is bounded: at most `max_clients` clients are tracked. A client
 * whose log is empty (idle for a whole window) carries no state and is
 * evicted first; when the table is full of active clients the least
 * recently seen one is evicted.
 *
 * Thread-safe: the table is split into shards, each behind its own mutex.
 * Time is passed in by the caller (milliseconds, any monotonic origin), which
 * keeps the module testable with a fake clock.
 */
#ifndef DEBATE_RATELIMIT_H
#define DEBATE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ratelimit;

/* A client identity: an IPv6 address, or an IPv4 address in v4-mapped form. */
struct ratelimit_key {
    uint8_t addr[16];
};

struct ratelimit_result {
    bool allowed;
    unsigned limit;
    unsigned remaining;   /* requests left in the current window */
    uint64_t reset_ms;    /* until the oldest logged request leaves the window */
    uint64_t retry_ms;    /* when refused: until one request may pass */
};

struct ratelimit *ratelimit_new(unsigned limit, uint64_t window_ms, size_t max_clients);
void ratelimit_free(struct ratelimit *rl);

/* Counts a request by key at now_ms and says whether it may pass. */
void ratelimit_check(struct ratelimit *rl, const struct ratelimit_key *key, uint64_t now_ms,
                     struct ratelimit_result *out);

/* Evicts every client idle for a whole window; returns how many. */
size_t ratelimit_sweep(struct ratelimit *rl, uint64_t now_ms);

/* Number of clients currently tracked. */
size_t ratelimit_clients(struct ratelimit *rl);

/* Seconds to advertise in Retry-After / RateLimit-Reset: ms rounded up. */
unsigned ratelimit_seconds(uint64_t ms);

#endif
