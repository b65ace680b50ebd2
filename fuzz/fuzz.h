/*
 * Shared pieces of the fuzz targets (fuzz/TARGET.c). Each target is a
 * libFuzzer LLVMFuzzerTestOneInput that hands its input to the real
 * parsing function; see docs/internals/testing.md.
 *
 * A target aborts (fuzz_require) when a parser breaks a promise its header
 * makes, so libFuzzer reports a broken invariant like a crash, with the
 * input that caused it.
 */
#ifndef DEBATE_FUZZ_H
#define DEBATE_FUZZ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Stops the run with a message naming the broken promise. */
#define fuzz_require(cond)                                                                                  \
    do {                                                                                                    \
        if (!(cond)) {                                                                                      \
            fprintf(stderr, "%s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond);                      \
            abort();                                                                                        \
        }                                                                                                   \
    } while (0)

/* The input as a NUL-terminated string (an input may hold NULs: the string then ends early). */
static inline char *fuzz_cstring(const uint8_t *data, size_t size)
{
    char *s = xmalloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
