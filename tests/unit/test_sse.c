#include <string.h>

#include "harness.h"
#include "http/sse.h"

static long long last_id(const char *v)
{
    return sse_last_event_id(v, strlen(v));
}

TEST(last_event_id_reads_decimal_ids)
{
    CHECK_INT(last_id("42"), 42);
    CHECK_INT(last_id("0"), 0);
    CHECK_INT(last_id("000000000000000042"), 42);
    CHECK_INT(last_id("999999999999999999"), 999999999999999999LL);
}

/* Anything else replays from the start: repeated events, never missing ones. */
TEST(last_event_id_it_cannot_read_means_from_the_start)
{
    CHECK_INT(last_id(""), 0);
    CHECK_INT(last_id("-5"), 0);
    CHECK_INT(last_id("+5"), 0);
    CHECK_INT(last_id(" 5"), 0);
    CHECK_INT(last_id("12abc"), 0);
    CHECK_INT(last_id("9999999999999999999"), 0);
    CHECK_INT(last_id("99999999999999999999999999"), 0);
    CHECK_INT(sse_last_event_id("12\0" "3", 4), 0);
}
