/*
 * The harness itself: what a run reports for tests that pass, fail and skip.
 * Each check runs this binary again on fixture_* tests (which a plain run
 * leaves out) and reads its output and exit status as tests/run.py would.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

#define OUTPUT_MAX 4096

TEST(fixture_passes)
{
}

TEST(fixture_fails)
{
    CHECK_INT(1 + 1, 3);
}

TEST(fixture_skips)
{
    SKIP("needs %d unicorns", 2);
}

TEST(fixture_exits_with_the_skip_status)
{
    fflush(NULL);
    _exit(77);
}

struct run {
    char out[OUTPUT_MAX];
    char err[OUTPUT_MAX];
    int status;
};

/* Reads what fd holds from its start, up to the buffer's size. */
static void slurp(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t n;
    while (len < cap - 1 && (n = pread(fd, buf + len, cap - 1 - len, (off_t)len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
}

/* Runs this test binary with the given test names; its stdout and stderr
 * land in memory files, read once it has exited. */
static void run_self(struct run *r, const char *const *names)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    CHECK(n > 0);
    self[n] = '\0';
    _cleanup_close_ int out = memfd_create("stdout", MFD_CLOEXEC);
    _cleanup_close_ int err = memfd_create("stderr", MFD_CLOEXEC);
    CHECK(out >= 0 && err >= 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char *argv[8] = {self};
        for (int i = 0; names[i] != NULL && i < 6; i++)
            argv[i + 1] = (char *)names[i];
        dup2(out, STDOUT_FILENO);
        dup2(err, STDERR_FILENO);
        execv(self, argv);
        _exit(127);
    }
    CHECK_INT(waitpid(pid, &r->status, 0), pid);
    CHECK(WIFEXITED(r->status));
    slurp(out, r->out, sizeof(r->out));
    slurp(err, r->err, sizeof(r->err));
}

TEST(a_skip_is_reported_with_its_reason_and_not_as_a_pass)
{
    struct run r;
    run_self(&r, (const char *const[]){"fixture_skips", NULL});
    CHECK_STR(r.out, "SKIP fixture_skips: needs 2 unicorns\n"
                     "0 passed, 0 failed, 1 skipped\n");
    CHECK_INT(WEXITSTATUS(r.status), 1); /* nothing passed: the run fails */
}

TEST(a_run_with_passes_and_skips_succeeds)
{
    struct run r;
    run_self(&r, (const char *const[]){"fixture_passes", "fixture_skips", NULL});
    CHECK_STR(r.out, "PASS fixture_passes\n"
                     "SKIP fixture_skips: needs 2 unicorns\n"
                     "1 passed, 0 failed, 1 skipped\n");
    CHECK_INT(WEXITSTATUS(r.status), 0);
}

TEST(a_failure_fails_the_run)
{
    struct run r;
    run_self(&r, (const char *const[]){"fixture_passes", "fixture_fails", "fixture_skips", NULL});
    CHECK_STR(r.out, "PASS fixture_passes\n"
                     "FAIL fixture_fails\n"
                     "SKIP fixture_skips: needs 2 unicorns\n"
                     "1 passed, 1 failed, 1 skipped\n");
    CHECK(strstr(r.err, "1 + 1 == 2, expected 3 == 3") != NULL);
    CHECK_INT(WEXITSTATUS(r.status), 1);
}

TEST(the_skip_status_without_a_reason_is_a_failure)
{
    struct run r;
    run_self(&r, (const char *const[]){"fixture_passes", "fixture_exits_with_the_skip_status", NULL});
    CHECK_STR(r.out, "PASS fixture_passes\n"
                     "FAIL fixture_exits_with_the_skip_status\n"
                     "1 passed, 1 failed, 0 skipped\n");
    CHECK(strstr(r.err, "fixture_exits_with_the_skip_status: exited with the skip status 77 without calling SKIP") !=
          NULL);
    CHECK_INT(WEXITSTATUS(r.status), 1);
}

TEST(an_unknown_test_name_fails_the_run)
{
    struct run r;
    run_self(&r, (const char *const[]){"fixture_passes", "no_such_test", NULL});
    CHECK_STR(r.out, "PASS fixture_passes\n"
                     "1 passed, 1 failed, 0 skipped\n");
    CHECK(strstr(r.err, "no test named \"no_such_test\"") != NULL);
    CHECK_INT(WEXITSTATUS(r.status), 1);
}
