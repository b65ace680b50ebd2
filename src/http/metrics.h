/*
 * Counters for GET /metrics, in Prometheus text format. Every counter is a
 * relaxed atomic, so any loop thread may update it without a lock.
 * Label sets are bounded: routes come from the routing table (unknown paths
 * count as "other"), statuses from a fixed list (others count as "other").
 */
#ifndef DEBATE_HTTP_METRICS_H
#define DEBATE_HTTP_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_ROUTES 32
#define METRICS_BUCKETS 14

struct metrics {
    _Atomic uint64_t requests[METRICS_MAX_ROUTES + 1][24];
    _Atomic uint64_t latency_bucket[METRICS_BUCKETS + 1];
    _Atomic uint64_t latency_sum_us;
    _Atomic uint64_t latency_count;
    _Atomic uint64_t ratelimit_rejections;
    _Atomic int64_t open_connections;
    _Atomic uint64_t connections_total;
    _Atomic uint64_t connections_refused;
};

/* route is an index into route_names (nroutes entries) or -1 for "other". */
void metrics_observe(struct metrics *m, int route, int status, uint64_t duration_us);

/* Renders the text exposition into a new buffer (*len bytes). */
char *metrics_render(struct metrics *m, const char *const *route_names, size_t nroutes, size_t *len);

#endif
