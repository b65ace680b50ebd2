#include "http/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "banned.h"

static const int statuses[] = {200, 201, 202, 204, 206, 301, 304, 400, 401, 403, 404, 405,
                               409, 413, 415, 416, 422, 429, 431, 500, 501, 503, 504};
#define STATUS_OTHER ((int)ARRAY_SIZE(statuses))

/* Upper bounds in microseconds. */
static const uint64_t bucket_us[METRICS_BUCKETS] = {100,   250,    500,    1000,   2500,    5000,    10000,
                                                    25000, 50000, 100000, 250000, 500000, 1000000, 5000000};

static int status_index(int status)
{
    for (int i = 0; i < STATUS_OTHER; i++)
        if (statuses[i] == status)
            return i;
    return STATUS_OTHER;
}

void metrics_observe(struct metrics *m, int route, int status, uint64_t duration_us)
{
    int r = route >= 0 && route < METRICS_MAX_ROUTES ? route : METRICS_MAX_ROUTES;
    atomic_fetch_add_explicit(&m->requests[r][status_index(status)], 1, memory_order_relaxed);
    int b = 0;
    while (b < METRICS_BUCKETS && duration_us > bucket_us[b])
        b++;
    atomic_fetch_add_explicit(&m->latency_bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency_sum_us, duration_us, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency_count, 1, memory_order_relaxed);
}

static uint64_t load(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

char *metrics_render(struct metrics *m, const char *const *route_names, size_t nroutes, size_t *len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (f == NULL)
        abort();
    fputs("# HELP debate_http_requests_total HTTP requests answered, by route and status.\n"
          "# TYPE debate_http_requests_total counter\n",
          f);
    for (size_t r = 0; r <= METRICS_MAX_ROUTES; r++) {
        if (r < METRICS_MAX_ROUTES && r >= nroutes)
            continue;
        const char *name = r < nroutes ? route_names[r] : "other";
        for (int s = 0; s <= STATUS_OTHER; s++) {
            uint64_t v = load(&m->requests[r][s]);
            if (v == 0)
                continue;
            if (s < STATUS_OTHER)
                fprintf(f, "debate_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", name, statuses[s],
                        (unsigned long long)v);
            else
                fprintf(f, "debate_http_requests_total{route=\"%s\",status=\"other\"} %llu\n", name,
                        (unsigned long long)v);
        }
    }
    fputs("# HELP debate_http_request_duration_seconds Time from the first byte of a request to its log entry.\n"
          "# TYPE debate_http_request_duration_seconds histogram\n",
          f);
    uint64_t cum = 0;
    for (int b = 0; b < METRICS_BUCKETS; b++) {
        cum += load(&m->latency_bucket[b]);
        fprintf(f, "debate_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n", (double)bucket_us[b] / 1e6,
                (unsigned long long)cum);
    }
    cum += load(&m->latency_bucket[METRICS_BUCKETS]);
    fprintf(f, "debate_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    fprintf(f, "debate_http_request_duration_seconds_sum %.6f\n", (double)load(&m->latency_sum_us) / 1e6);
    fprintf(f, "debate_http_request_duration_seconds_count %llu\n", (unsigned long long)load(&m->latency_count));
    fprintf(f,
            "# HELP debate_http_ratelimit_rejections_total Requests refused with 429.\n"
            "# TYPE debate_http_ratelimit_rejections_total counter\n"
            "debate_http_ratelimit_rejections_total %llu\n"
            "# HELP debate_http_open_connections Client connections open now.\n"
            "# TYPE debate_http_open_connections gauge\n"
            "debate_http_open_connections %lld\n"
            "# HELP debate_http_connections_total Client connections accepted.\n"
            "# TYPE debate_http_connections_total counter\n"
            "debate_http_connections_total %llu\n"
            "# HELP debate_http_connections_refused_total Connections closed at once because the limit was reached.\n"
            "# TYPE debate_http_connections_refused_total counter\n"
            "debate_http_connections_refused_total %llu\n",
            (unsigned long long)load(&m->ratelimit_rejections),
            (long long)atomic_load_explicit(&m->open_connections, memory_order_relaxed),
            (unsigned long long)load(&m->connections_total), (unsigned long long)load(&m->connections_refused));
    fclose(f);
    *len = size;
    return buf;
}
