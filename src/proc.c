#include "proc.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

extern char **environ;

int proc_user_ids(const char *user, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) != 0 || res == NULL) {
        snprintf(err, errlen, "no user \"%s\" on this system", user);
        return -1;
    }
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    return 0;
}

static void keep_tail(struct proc_opts *o, size_t *len, const char *data, size_t n)
{
    if (n >= PROC_TAIL) {
        memcpy(o->tail, data + n - PROC_TAIL, PROC_TAIL);
        *len = PROC_TAIL;
    } else {
        if (*len + n > PROC_TAIL) {
            size_t drop = *len + n - PROC_TAIL;
            memmove(o->tail, o->tail + drop, *len - drop);
            *len -= drop;
        }
        memcpy(o->tail + *len, data, n);
        *len += n;
    }
    o->tail[*len] = '\0';
}

/* In the child: never returns. Only async-signal-safe calls after fork. */
static void child(const char *const argv[], struct proc_opts *o, int out_fd, int err_fd, bool switch_user, uid_t uid,
                  gid_t gid, char **envp)
{
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setpgid(0, 0); /* a group of its own, so a timeout kills its children too */
    int in = open(o->stdin_path ? o->stdin_path : "/dev/null", O_RDONLY);
    if (in < 0 || dup2(in, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        _exit(126);
    if (switch_user && (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0))
        _exit(126);
    /* Nothing of ours leaks into the program: only standard input, output and error. */
    close_range(3, ~0u, 0);
    execve(argv[0], (char *const *)argv, envp);
    _exit(127);
}

static char **build_env(const char *const *extra, bool clean)
{
    size_t n = 0, m = 0;
    while (!clean && environ[n])
        n++;
    while (extra && extra[m])
        m++;
    char **env = xcalloc(n + m + 1, sizeof(*env));
    memcpy(env, environ, n * sizeof(*env));
    if (m > 0)
        memcpy(env + n, extra, m * sizeof(*env));
    return env;
}

int proc_run(const char *const argv[], struct proc_opts *o, char *err, size_t errlen)
{
    uid_t uid = 0;
    gid_t gid = 0;
    bool switch_user = o->user != NULL && geteuid() == 0;
    if (switch_user && proc_user_ids(o->user, &uid, &gid, err, errlen) < 0)
        return -1;
    o->tail[0] = '\0';
    int pipefd[2] = {-1, -1}, out_fd = -1;
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    if (o->stdout_path != NULL) {
        out_fd = open(o->stdout_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (out_fd < 0) {
            snprintf(err, errlen, "cannot write \"%s\": %s", o->stdout_path, strerror(errno));
            close(pipefd[0]);
            close(pipefd[1]);
            return -1;
        }
    }
    _cleanup_free_ char **envp = build_env(o->env, o->clean_env);
    o->timed_out = false;
    pid_t pid = fork();
    if (pid == 0)
        child(argv, o, out_fd >= 0 ? out_fd : pipefd[1], pipefd[1], switch_user, uid, gid, envp);
    close(pipefd[1]);
    if (out_fd >= 0)
        close(out_fd);
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(pipefd[0]);
        return -1;
    }
    size_t len = 0;
    char buf[4096];
    uint64_t deadline = o->timeout_s ? clock_monotonic_ms() + (uint64_t)o->timeout_s * 1000 : 0;
    uint64_t stop_at = 0;
    o->stop = o->stopped = false;
    for (;;) {
        if (o->stop && stop_at == 0)
            stop_at = clock_monotonic_ms() + o->stop_ms;
        uint64_t until = stop_at != 0 && (deadline == 0 || stop_at < deadline) ? stop_at : deadline;
        if (until) {
            struct pollfd pfd = {pipefd[0], POLLIN, 0};
            uint64_t now = clock_monotonic_ms();
            int ready = now >= until ? 0 : poll(&pfd, 1, (int)(until - now));
            if (ready < 0 && errno == EINTR)
                continue;
            if (ready == 0) {
                if (until == stop_at)
                    o->stopped = true;
                else
                    o->timed_out = true;
                kill(-pid, SIGKILL);
                kill(pid, SIGKILL);
                break;
            }
        }
        ssize_t n = read(pipefd[0], buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        keep_tail(o, &len, buf, (size_t)n);
        if (o->on_output != NULL)
            o->on_output(o->output_arg, buf, (size_t)n);
    }
    close(pipefd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (o->stopped) {
        snprintf(err, errlen, "\"%s\" was stopped once it had said enough", argv[0]);
        return 128 + SIGKILL;
    }
    if (o->timed_out) {
        snprintf(err, errlen, "\"%s\" ran longer than %u seconds and was killed", argv[0], o->timeout_s);
        return 124;
    }
    if (WIFEXITED(status)) {
        if (WEXITSTATUS(status) == 127)
            snprintf(err, errlen, "cannot run \"%s\"", argv[0]);
        else if (WEXITSTATUS(status) == 126)
            snprintf(err, errlen, "cannot set up \"%s\" (user \"%s\")", argv[0], o->user ? o->user : "-");
        else
            snprintf(err, errlen, "\"%s\" exited with status %d", argv[0], WEXITSTATUS(status));
        return WEXITSTATUS(status);
    }
    snprintf(err, errlen, "\"%s\" was killed by signal %d", argv[0], WTERMSIG(status));
    return 128 + WTERMSIG(status);
}
