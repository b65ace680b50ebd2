/*
 * The Last-Event-ID header of a reconnecting build log stream
 * (sse_last_event_id). Never negative; exactly the number when the value
 * is 1 to 18 decimal digits, 0 otherwise.
 */
#include "fuzz.h"

#include "http/sse.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long long id = sse_last_event_id((const char *)data, size);
    fuzz_require(id >= 0);
    bool digits = size >= 1 && size <= 18;
    for (size_t i = 0; i < size && digits; i++)
        digits = data[i] >= '0' && data[i] <= '9';
    if (!digits) {
        fuzz_require(id == 0);
        return 0;
    }
    char text[24];
    snprintf(text, sizeof(text), "%.*s", (int)size, (const char *)data);
    fuzz_require(id == strtoll(text, NULL, 10));
    return 0;
}
