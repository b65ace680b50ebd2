#include <string.h>

#include "harness.h"
#include "http/files.h"

static int range(const char *v, off_t size, off_t *from, off_t *to)
{
    return files_parse_range(v, strlen(v), size, from, to);
}

TEST(range_first_last_and_open_ended)
{
    off_t a, b;
    CHECK_INT(range("bytes=100-1123", 5000, &a, &b), 1);
    CHECK_INT(a, 100);
    CHECK_INT(b, 1123);
    CHECK_INT(range("bytes=4990-", 5000, &a, &b), 1);
    CHECK_INT(a, 4990);
    CHECK_INT(b, 4999);
    CHECK_INT(range("bytes=10-99999", 5000, &a, &b), 1); /* a last byte past the end is the end */
    CHECK_INT(b, 4999);
}

TEST(range_suffix_is_the_last_bytes)
{
    off_t a, b;
    CHECK_INT(range("bytes=-10", 5000, &a, &b), 1);
    CHECK_INT(a, 4990);
    CHECK_INT(b, 4999);
    CHECK_INT(range("bytes=-99999", 5000, &a, &b), 1);
    CHECK_INT(a, 0);
    CHECK_INT(range("bytes=-0", 5000, &a, &b), -1);
}

TEST(range_past_the_end_is_unsatisfiable)
{
    off_t a, b;
    CHECK_INT(range("bytes=5000-5100", 5000, &a, &b), -1);
    CHECK_INT(range("bytes=0-", 0, &a, &b), -1);
}

TEST(range_junk_and_several_ranges_are_ignored)
{
    off_t a, b;
    CHECK_INT(range("bytes=0-1,5-6", 5000, &a, &b), 0);
    CHECK_INT(range("items=0-1", 5000, &a, &b), 0);
    CHECK_INT(range("bytes=5-1", 5000, &a, &b), 0);
    CHECK_INT(range("bytes=a-b", 5000, &a, &b), 0);
    CHECK_INT(range("bytes=", 5000, &a, &b), 0);
    CHECK_INT(range("bytes=-", 5000, &a, &b), 0);
    CHECK_INT(range("bytes=0-1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 5000, &a, &b), 0);
}
