/*
 * A small unit-test runner: TEST(name) registers a function; each test runs
 * in its own process with a 10-second alarm, so a crash or a hang fails that
 * test alone. Output: "PASS name" / "FAIL name: why" lines, then
 * "N passed, N failed".
 */
#ifndef DEBATE_TEST_HARNESS_H
#define DEBATE_TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

void harness_register(const char *name, void (*fn)(void));
void harness_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));

#define TEST(name)                                                                                                     \
    static void name(void);                                                                                            \
    __attribute__((constructor)) static void register_##name(void)                                                    \
    {                                                                                                                  \
        harness_register(#name, name);                                                                                 \
    }                                                                                                                  \
    static void name(void)

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            harness_fail(__FILE__, __LINE__, "check failed: %s", #cond);                                               \
    } while (0)

#define CHECK_INT(a, b)                                                                                                \
    do {                                                                                                               \
        long long a_ = (long long)(a), b_ = (long long)(b);                                                            \
        if (a_ != b_)                                                                                                  \
            harness_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, a_, #b, b_);                       \
    } while (0)

#define CHECK_STR(a, b)                                                                                                \
    do {                                                                                                               \
        const char *a_ = (a), *b_ = (b);                                                                               \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                                                           \
            harness_fail(__FILE__, __LINE__, "%s == \"%s\", expected \"%s\"", #a, a_ ? a_ : "(null)",                  \
                         b_ ? b_ : "(null)");                                                                          \
    } while (0)

#endif
