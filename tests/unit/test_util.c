#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

TEST(base64url_round_trip)
{
    for (size_t n = 0; n < 40; n++) {
        uint8_t in[40], out[40];
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)(i * 37 + n);
        char enc[64];
        base64url_encode(enc, in, n);
        CHECK_INT(strlen(enc), base64url_len(n));
        CHECK_INT(base64url_decode(out, sizeof(out), enc, strlen(enc)), (ssize_t)n);
        CHECK(memcmp(in, out, n) == 0);
    }
}

TEST(base64url_rejects_bad_input)
{
    uint8_t out[8];
    CHECK_INT(base64url_decode(out, sizeof(out), "a", 1), -1);
    CHECK_INT(base64url_decode(out, sizeof(out), "ab+/", 4), -1);
    CHECK_INT(base64url_decode(out, sizeof(out), "ab=", 3), -1);
    /* Non-zero leftover bits: a second spelling of the same bytes. */
    CHECK_INT(base64url_decode(out, sizeof(out), "AB", 2), -1);
    CHECK_INT(base64url_decode(out, sizeof(out), "AA", 2), 1);
    /* Output larger than the buffer. */
    CHECK_INT(base64url_decode(out, 2, "AAAAAA", 6), -1);
}

TEST(read_file_reads_large_files_and_enforces_the_limit)
{
    char dir[] = "/tmp/debate-util-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    _cleanup_free_ char *path = xasprintf("%s/big", dir);
    size_t size = 100000;
    char *data = xmalloc(size);
    for (size_t i = 0; i < size; i++)
        data[i] = (char)('a' + i % 26);
    CHECK_INT(write_file_atomic(path, data, size, 0600), 0);
    char *got;
    size_t len;
    CHECK_INT(read_file(path, size, &got, &len), 0);
    CHECK_INT(len, size);
    CHECK(memcmp(got, data, size) == 0);
    free(got);
    CHECK_INT(read_file(path, 1 << 20, &got, &len), 0);
    CHECK_INT(len, size);
    free(got);
    CHECK_INT(read_file(path, size - 1, &got, &len), -EFBIG);
    CHECK_INT(read_file(path, 4096, &got, &len), -EFBIG);
    free(data);
    unlink(path);
    rmdir(dir);
}

TEST(ct_equal_compares)
{
    CHECK(ct_equal("abc", "abc", 3));
    CHECK(!ct_equal("abc", "abd", 3));
    CHECK(ct_equal("", "", 0));
}

TEST(atomic_write_replaces_whole_file_with_mode)
{
    char dir[] = "/tmp/debate-util-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    _cleanup_free_ char *path = xasprintf("%s/f", dir);
    CHECK_INT(write_file_atomic(path, "one", 3, 0600), 0);
    CHECK_INT(write_file_atomic(path, "second", 6, 0640), 0);
    char *data;
    size_t len;
    CHECK_INT(read_file(path, 100, &data, &len), 0);
    CHECK_INT(len, 6);
    CHECK_STR(data, "second");
    free(data);
    struct stat st;
    CHECK_INT(stat(path, &st), 0);
    CHECK_INT(st.st_mode & 0777, 0640);
    CHECK_INT(read_file(path, 3, &data, &len), -EFBIG);
    unlink(path);
    rmdir(dir);
}

TEST(mkdir_p_makes_parents)
{
    char dir[] = "/tmp/debate-util-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    _cleanup_free_ char *deep = xasprintf("%s/a/b/c", dir);
    CHECK_INT(mkdir_p(deep, 0700), 0);
    CHECK_INT(mkdir_p(deep, 0700), 0);
    struct stat st;
    CHECK_INT(stat(deep, &st), 0);
    CHECK(S_ISDIR(st.st_mode));
    _cleanup_free_ char *cmd = xasprintf("rm -rf %s", dir);
    CHECK_INT(system(cmd), 0);
}
