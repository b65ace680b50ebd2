#include <stdint.h>

#include "harness.h"
#include "http/ratelimit.h"

#define MIN 60000ULL

static struct ratelimit_key key_of(unsigned n)
{
    struct ratelimit_key k = {{0}};
    k.addr[10] = k.addr[11] = 0xff;
    k.addr[12] = 10;
    k.addr[13] = (uint8_t)(n >> 16);
    k.addr[14] = (uint8_t)(n >> 8);
    k.addr[15] = (uint8_t)n;
    return k;
}

TEST(hundred_and_first_request_is_refused_with_exact_retry_after)
{
    struct ratelimit *rl = ratelimit_new(100, MIN, 1000);
    struct ratelimit_key k = key_of(1);
    struct ratelimit_result r;
    /* The first request at 0:10, the other 99 at 0:20, the 101st at 0:40. */
    ratelimit_check(rl, &k, 10000, &r);
    CHECK(r.allowed);
    CHECK_INT(r.remaining, 99);
    for (int i = 0; i < 99; i++) {
        ratelimit_check(rl, &k, 20000, &r);
        CHECK(r.allowed);
    }
    CHECK_INT(r.remaining, 0);
    ratelimit_check(rl, &k, 40000, &r);
    CHECK(!r.allowed);
    CHECK_INT(r.remaining, 0);
    /* The oldest request (0:10) leaves the window at 1:10: 30 s from 0:40. */
    CHECK_INT(r.retry_ms, 30000);
    CHECK_INT(ratelimit_seconds(r.retry_ms), 30);
    /* One millisecond before that it is still refused; at 1:10 one passes. */
    ratelimit_check(rl, &k, 69999, &r);
    CHECK(!r.allowed);
    CHECK_INT(r.retry_ms, 1);
    CHECK_INT(ratelimit_seconds(r.retry_ms), 1);
    ratelimit_check(rl, &k, 70000, &r);
    CHECK(r.allowed);
    ratelimit_check(rl, &k, 70000, &r);
    CHECK(!r.allowed);
    ratelimit_free(rl);
}

TEST(no_double_burst_across_a_window_edge)
{
    struct ratelimit *rl = ratelimit_new(100, MIN, 1000);
    struct ratelimit_key k = key_of(2);
    struct ratelimit_result r;
    int passed = 0;
    for (int i = 0; i < 100; i++) {
        ratelimit_check(rl, &k, 59000, &r); /* 100 at 0:59 */
        passed += r.allowed;
    }
    for (int i = 0; i < 100; i++) {
        ratelimit_check(rl, &k, 61000, &r); /* 100 at 1:01 */
        passed += r.allowed;
    }
    CHECK_INT(passed, 100);
    /* They pass again only once the 0:59 burst has left the window. */
    ratelimit_check(rl, &k, 118999, &r);
    CHECK(!r.allowed);
    ratelimit_check(rl, &k, 119000, &r);
    CHECK(r.allowed);
    ratelimit_free(rl);
}

TEST(clients_are_counted_separately)
{
    struct ratelimit *rl = ratelimit_new(2, MIN, 1000);
    struct ratelimit_key a = key_of(3), b = key_of(4);
    struct ratelimit_result r;
    ratelimit_check(rl, &a, 0, &r);
    ratelimit_check(rl, &a, 0, &r);
    ratelimit_check(rl, &a, 0, &r);
    CHECK(!r.allowed);
    ratelimit_check(rl, &b, 0, &r);
    CHECK(r.allowed);
    ratelimit_free(rl);
}

TEST(refused_requests_do_not_extend_the_block)
{
    struct ratelimit *rl = ratelimit_new(1, MIN, 1000);
    struct ratelimit_key k = key_of(5);
    struct ratelimit_result r;
    ratelimit_check(rl, &k, 0, &r);
    for (uint64_t t = 1000; t < MIN; t += 1000) {
        ratelimit_check(rl, &k, t, &r);
        CHECK(!r.allowed);
    }
    ratelimit_check(rl, &k, MIN, &r);
    CHECK(r.allowed);
    ratelimit_free(rl);
}

TEST(idle_clients_are_evicted)
{
    struct ratelimit *rl = ratelimit_new(100, MIN, 1000);
    struct ratelimit_result r;
    for (unsigned i = 0; i < 500; i++) {
        struct ratelimit_key k = key_of(i);
        ratelimit_check(rl, &k, 1000, &r);
    }
    CHECK_INT(ratelimit_clients(rl), 500);
    CHECK_INT(ratelimit_sweep(rl, 1000 + MIN - 1), 0); /* still inside the window */
    struct ratelimit_key late = key_of(9999);
    ratelimit_check(rl, &late, 30000, &r);
    CHECK_INT(ratelimit_sweep(rl, 1000 + MIN), 500);
    CHECK_INT(ratelimit_clients(rl), 1);
    ratelimit_free(rl);
}

TEST(memory_is_bounded_however_many_clients_appear)
{
    struct ratelimit *rl = ratelimit_new(100, MIN, 64);
    struct ratelimit_result r;
    for (unsigned i = 0; i < 100000; i++) {
        struct ratelimit_key k = key_of(i);
        ratelimit_check(rl, &k, i, &r);
        CHECK(r.allowed);
    }
    CHECK(ratelimit_clients(rl) <= 64);
    CHECK(ratelimit_clients(rl) >= 16);
    ratelimit_free(rl);
}

TEST(remaining_and_reset_describe_the_window)
{
    struct ratelimit *rl = ratelimit_new(3, MIN, 100);
    struct ratelimit_key k = key_of(6);
    struct ratelimit_result r;
    ratelimit_check(rl, &k, 5000, &r);
    CHECK_INT(r.limit, 3);
    CHECK_INT(r.remaining, 2);
    CHECK_INT(r.reset_ms, MIN);
    ratelimit_check(rl, &k, 15000, &r);
    CHECK_INT(r.remaining, 1);
    CHECK_INT(r.reset_ms, MIN - 10000);
    ratelimit_free(rl);
}

TEST(seconds_round_up)
{
    CHECK_INT(ratelimit_seconds(0), 0);
    CHECK_INT(ratelimit_seconds(1), 1);
    CHECK_INT(ratelimit_seconds(1000), 1);
    CHECK_INT(ratelimit_seconds(1001), 2);
}
