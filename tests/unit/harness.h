/*
 * A small unit-test runner: TEST(name) registers a function; each test runs
 * in its own process with a 10-second alarm, so a crash or a hang fails that
 * test alone.
 *
 * A test passes when its function returns, fails through CHECK*() or
 * harness_fail() (the reason goes to stderr), and is skipped through
 * SKIP("reason") when it cannot run here (not root, say): a test that did
 * not run must not count as passed. Only the test's process knows why it
 * skipped, so it hands the reason to the runner on a pipe of its own; an exit
 * with the skip status but no reason is a failure.
 *
 * Output: one "PASS name", "FAIL name" or "SKIP name: reason" line a test,
 * then "N passed, N failed, N skipped". The exit status is 0 when nothing
 * failed and at least one test passed.
 *
 * Arguments name the tests to run; without any, every test runs except those
 * named fixture_*, which exist to be run by name (the harness's own tests run
 * them in a child to see what the harness reports).
 */
#ifndef DEBATE_TEST_HARNESS_H
#define DEBATE_TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

void harness_register(const char *name, void (*fn)(void));
void harness_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));
/* Ends the calling test as skipped, with a printf-style reason. Test process only. */
void harness_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Skips the current test: SKIP("needs root"), SKIP("no %s here", tool). */
#define SKIP(...) harness_skip(__VA_ARGS__)

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
