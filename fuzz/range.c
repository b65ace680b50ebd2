/*
 * The Range header of the ISO and manifest downloads (files_parse_range),
 * against files of several sizes. A range it accepts must lie inside the
 * file: first <= last < size.
 */
#include "fuzz.h"

#include <sys/types.h>

#include "http/files.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const off_t sizes[] = {0, 1, 4096, 700LL << 20, (off_t)1 << 40};
    for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
        off_t from = -1, to = -1;
        int r = files_parse_range((const char *)data, size, sizes[i], &from, &to);
        fuzz_require(r >= -1 && r <= 1);
        if (r == 1)
            fuzz_require(from >= 0 && from <= to && to < sizes[i]);
    }
    return 0;
}
