#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define MAX_TESTS 256
#define SKIP_STATUS 77 /* automake's "skipped" exit status */
#define REASON_MAX 256

enum outcome { OUTCOME_PASS, OUTCOME_FAIL, OUTCOME_SKIP };

static struct {
    const char *name;
    void (*fn)(void);
} tests[MAX_TESTS];
static int ntests;

/* The write end of the skip pipe, in a test's process only. */
static int skip_fd = -1;

void harness_register(const char *name, void (*fn)(void))
{
    if (ntests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    ntests++;
}

void harness_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    _exit(1);
}

void harness_skip(const char *fmt, ...)
{
    char reason[REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    fflush(NULL);
    /* An empty reason would read as "no reason given", which the runner
     * treats as a failure: say something. */
    const char *text = reason[0] != '\0' ? reason : "skipped";
    if (skip_fd < 0 || write(skip_fd, text, strlen(text)) < 0) {
        fprintf(stderr, "SKIP called outside a test process: %s\n", text);
        _exit(1);
    }
    _exit(SKIP_STATUS);
}

/* Reads what the test wrote on the skip pipe; "" when it wrote nothing. */
static void read_reason(int fd, char *reason, size_t len)
{
    /* Non-blocking: a process the test left behind may still hold the write
     * end, and the reason, when there is one, is already in the pipe. */
    ssize_t n = read(fd, reason, len - 1);
    reason[n > 0 ? n : 0] = '\0';
    for (char *p = reason; *p != '\0'; p++)
        if (*p == '\n')
            *p = ' ';
}

static enum outcome judge(const char *name, int status, const char *reason)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return OUTCOME_PASS;
    if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP_STATUS && reason[0] != '\0')
        return OUTCOME_SKIP;
    if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP_STATUS)
        fprintf(stderr, "%s: exited with the skip status %d without calling SKIP\n", name, SKIP_STATUS);
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 1)
        fprintf(stderr, "%s: exited with status %d\n", name, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        fprintf(stderr, "%s: killed by signal %d%s\n", name, WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
    return OUTCOME_FAIL;
}

static enum outcome run_one(int i, char *reason, size_t len)
{
    enum outcome result = OUTCOME_FAIL;
    _cleanup_close_ int rd = -1;
    int fds[2];
    reason[0] = '\0';
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, "%s: pipe: %s\n", tests[i].name, strerror(errno));
        goto out;
    }
    rd = fds[0];
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        skip_fd = fds[1];
        alarm(10);
        tests[i].fn();
        fflush(NULL);
        _exit(0);
    }
    close(fds[1]);
    if (pid < 0) {
        fprintf(stderr, "%s: fork: %s\n", tests[i].name, strerror(errno));
        goto out;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "%s: waitpid: %s\n", tests[i].name, strerror(errno));
            goto out;
        }
    }
    read_reason(rd, reason, len);
    result = judge(tests[i].name, status, reason);
out:
    return result;
}

/* Without arguments every test but the fixtures; else the tests named. */
static bool selected(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return strncmp(name, "fixture_", strlen("fixture_")) != 0;
    for (int a = 1; a < argc; a++)
        if (strcmp(argv[a], name) == 0)
            return true;
    return false;
}

/* Counts the arguments that name no test, saying which on stderr. */
static int unknown_names(int argc, char **argv)
{
    int unknown = 0;
    for (int a = 1; a < argc; a++) {
        int i = 0;
        while (i < ntests && strcmp(argv[a], tests[i].name) != 0)
            i++;
        if (i == ntests) {
            fprintf(stderr, "no test named \"%s\"\n", argv[a]);
            unknown++;
        }
    }
    return unknown;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = unknown_names(argc, argv), skipped = 0;
    char reason[REASON_MAX];
    for (int i = 0; i < ntests; i++) {
        if (!selected(tests[i].name, argc, argv))
            continue;
        switch (run_one(i, reason, sizeof(reason))) {
        case OUTCOME_PASS:
            printf("PASS %s\n", tests[i].name);
            passed++;
            break;
        case OUTCOME_SKIP:
            printf("SKIP %s: %s\n", tests[i].name, reason);
            skipped++;
            break;
        case OUTCOME_FAIL:
            printf("FAIL %s\n", tests[i].name);
            failed++;
            break;
        }
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed == 0 && passed > 0 ? 0 : 1;
}
