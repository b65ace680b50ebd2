/*
 * The recipe's hooks, run one after another inside the build's sandbox,
 * each in a confinement of its own that ends with it.
 *
 * A hook starts as PID 1's child in new PID and mount namespaces. PID 1 is
 * a small init of ours (hook_init), a raw clone of the stages. Before the
 * hook exists, the init:
 *
 *   1. keeps only its standard output and error (the hook's output pipe)
 *      and the report pipe: the stages' progress pipe and their descriptor
 *      of the image are closed;
 *   2. makes every mount private, binds the image (WORK/root) onto itself,
 *      mounts a fresh /proc (of the hook's PID namespace) on the image's
 *      /proc and a small tmpfs on its /dev holding the sandbox's null,
 *      zero, full, random and urandom, the fd and std* links and a shm
 *      directory; every mount point is opened without following a link,
 *      so a link an earlier hook planted cannot move a mount;
 *   3. pivots into the image and detaches the old root: from then on the
 *      image is the root of the namespace, and nothing of the build around
 *      it (the build disk, the mirror, the host's /usr) is reachable by any
 *      path, "..", or descriptor;
 *   4. writes the hook's script to the image's /tmp, becomes non-dumpable
 *      (no one in the namespace may open its descriptors or memory through
 *      /proc), refuses pivot_root from then on, and forks the hook, which
 *      keeps descriptors 0-2 only.
 *
 * The hook is over when its own process exits. The init then kills
 * whatever the hook left running (everything else in the namespace),
 * counts it, removes the script and reports the hook's wait status, the
 * count, or the setup step that failed, through the report pipe. The
 * namespace's /proc and /dev die with it: the image never holds either.
 *
 * Threat model: the hook is root of the sandbox's user namespace, with
 * every capability in it. It can mount, chroot and unshare (not a user
 * namespace), so its confinement rests on its root being the real root
 * of its mount namespace with nothing outside left mounted or open, and on
 * the sandbox around it (seccomp, limits, no host ids) for everything else.
 */
#include "engine/engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/sandbox.h"
#include "util.h"
#include "banned.h"

/* The image's root, as the stages see it. */
#define HOOK_IMAGE WORK "/root"
/* The init's end of the report pipe, once it has sorted its descriptors. */
#define HOOK_REPORT_FD 3
/* How much of a failing hook's output its message quotes. */
#define HOOK_TAIL 800

/* The steps of a hook's setup, each named in the message when it fails. */
enum hook_step {
    HOOK_STEP_NONE,
    HOOK_STEP_PRIVATE,
    HOOK_STEP_BIND,
    HOOK_STEP_PROC,
    HOOK_STEP_DEV,
    HOOK_STEP_PIVOT,
    HOOK_STEP_SCRIPT,
    HOOK_STEP_CONFINE,
    HOOK_STEP_FORK,
};

static const char *const hook_step_what[] = {
    [HOOK_STEP_NONE] = "run it",
    [HOOK_STEP_PRIVATE] = "make its mounts private",
    [HOOK_STEP_BIND] = "bind the image",
    [HOOK_STEP_PROC] = "mount /proc in the image",
    [HOOK_STEP_DEV] = "mount /dev in the image",
    [HOOK_STEP_PIVOT] = "make the image its root",
    [HOOK_STEP_SCRIPT] = "write its script to the image's /tmp",
    [HOOK_STEP_CONFINE] = "restrict its system calls",
    [HOOK_STEP_FORK] = "start its process",
};

/* What the init tells the stages when the hook is over: one write, smaller than PIPE_BUF, so atomic. */
struct hook_report {
    int step;      /* enum hook_step: the setup step that failed, or HOOK_STEP_NONE */
    int err;       /* that step's errno */
    int status;    /* the hook's wait status */
    unsigned left; /* processes still running when the hook exited, all killed */
};

/* What the init needs; a copy in its own memory (it is a fork). */
struct hook_ctx {
    const char *script;
    const char *path; /* the script's path in the image */
    const char *const *env;
    int out_w, report_w;
};

/* ---- the init, inside the hook's namespaces -------------------------------------------- */

/* Mounts onto the directory name in dirfd, never through a link: the mount goes on the opened directory. */
static int hook_mount_on(int dirfd, const char *name, const char *src, const char *type, unsigned long flags,
                         const char *data)
{
    _cleanup_close_ int fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char via[64];
    snprintf(via, sizeof(via), "/proc/self/fd/%d", fd);
    return mount(src, via, type, flags, data);
}

/* An empty file at name in dirfd with the sandbox's /dev/NAME bound onto it. */
static int hook_dev_node(int devfd, const char *name)
{
    _cleanup_close_ int fd = openat(devfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0)
        return -1;
    char host[32], via[64];
    snprintf(host, sizeof(host), "/dev/%s", name);
    snprintf(via, sizeof(via), "/proc/self/fd/%d", fd);
    return mount(host, via, NULL, MS_BIND, NULL);
}

/* The hook's /dev: a tmpfs over the image's, so nothing of it is ever in the image. */
static int hook_dev(int rootfd)
{
    static const char *const nodes[] = {"null", "zero", "full", "random", "urandom"};
    static const char *const links[][2] = {{"fd", "/proc/self/fd"},
                                           {"stdin", "/proc/self/fd/0"},
                                           {"stdout", "/proc/self/fd/1"},
                                           {"stderr", "/proc/self/fd/2"}};
    if (hook_mount_on(rootfd, "dev", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64m") < 0)
        return -1;
    /* Opened again: the name now leads into the tmpfs. */
    _cleanup_close_ int devfd = openat(rootfd, "dev", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (devfd < 0)
        return -1;
    for (size_t i = 0; i < ARRAY_SIZE(nodes); i++)
        if (hook_dev_node(devfd, nodes[i]) < 0)
            return -1;
    for (size_t i = 0; i < ARRAY_SIZE(links); i++)
        if (symlinkat(links[i][1], devfd, links[i][0]) < 0)
            return -1;
    if (mkdirat(devfd, "shm", 01777) < 0 || fchmodat(devfd, "shm", 01777, 0) < 0)
        return -1;
    return 0;
}

/* Steps 2 and 3 of the header: the image becomes the root. HOOK_STEP_NONE, or the failed step with errno set. */
static enum hook_step hook_enter_image(void)
{
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return HOOK_STEP_PRIVATE;
    /* pivot_root wants a mount point of this namespace's own as the new root. */
    if (mount(HOOK_IMAGE, HOOK_IMAGE, NULL, MS_BIND | MS_REC, NULL) < 0)
        return HOOK_STEP_BIND;
    _cleanup_close_ int rootfd = open(HOOK_IMAGE, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (rootfd < 0)
        return HOOK_STEP_BIND;
    /* Before the sandbox's /proc leaves the namespace: the kernel wants one fully visible. */
    if (hook_mount_on(rootfd, "proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        return HOOK_STEP_PROC;
    if (hook_dev(rootfd) < 0)
        return HOOK_STEP_DEV;
    if (fchdir(rootfd) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
        chdir("/") < 0)
        return HOOK_STEP_PIVOT;
    return HOOK_STEP_NONE;
}

/* The script, owned by root and executable, in the image's /tmp (the image is the root now). */
static int hook_write_script(const struct hook_ctx *c)
{
    _cleanup_close_ int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0755);
    if (fd < 0)
        return -1;
    size_t len = strlen(c->script);
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, c->script + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return fchmod(fd, 0755) < 0 || fchown(fd, 0, 0) < 0 ? -1 : 0;
}

/* Only standard output (the hook's output) and the report pipe at HOOK_REPORT_FD stay open. */
static void hook_init_fds(const struct hook_ctx *c)
{
    if (dup2(c->out_w, STDOUT_FILENO) < 0 || dup2(c->out_w, STDERR_FILENO) < 0 ||
        (c->report_w != HOOK_REPORT_FD && dup2(c->report_w, HOOK_REPORT_FD) < 0))
        _exit(125);
    syscall(SYS_close_range, HOOK_REPORT_FD + 1u, ~0u, 0u);
}

/* The hook's process: a clean signal state, /dev/null as input, the output pipe, the script. */
static void hook_exec(const struct hook_ctx *c) __attribute__((noreturn));
static void hook_exec(const struct hook_ctx *c)
{
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setpgid(0, 0);
    int in = open("/dev/null", O_RDONLY);
    if (in < 0 || dup2(in, STDIN_FILENO) < 0)
        _exit(126);
    syscall(SYS_close_range, 3u, ~0u, 0u);
    const char *argv[] = {c->path, NULL};
    execve(c->path, (char *const *)argv, (char *const *)c->env);
    char msg[256];
    int n = snprintf(msg, sizeof(msg), "cannot run \"%s\": %s\n", c->path, strerror(errno));
    ssize_t unused = write(STDERR_FILENO, msg, (size_t)n);
    (void)unused;
    _exit(127);
}

/* Reaps until the hook itself has exited; its wait status. */
static int hook_wait(pid_t hook)
{
    for (;;) {
        int status;
        pid_t p = waitpid(-1, &status, 0);
        if (p == hook)
            return status;
        if (p < 0 && errno != EINTR)
            return 125 << 8; /* cannot happen while the hook lives: a failure, never a success */
    }
}

/*
 * Kills everything the hook left in the namespace and counts it. What had
 * already ended (an exited child of the hook's) is reaped first and not
 * counted. Every process here ends as the init's child (orphans reparent
 * to it), so ECHILD means the namespace is empty; kill(-1) is repeated so
 * a fork racing the first one cannot slip through.
 */
static unsigned hook_kill_rest(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    unsigned left = 0;
    for (;;) {
        kill(-1, SIGKILL);
        pid_t p = waitpid(-1, NULL, 0);
        if (p > 0)
            left++;
        else if (errno != EINTR)
            return left;
    }
}

static void hook_init_report(const struct hook_report *rep)
{
    ssize_t unused = write(HOOK_REPORT_FD, rep, sizeof(*rep));
    (void)unused;
}

/* PID 1 of the hook's namespaces (a raw clone of the stages): never returns. */
static void hook_init(const struct hook_ctx *c) __attribute__((noreturn));
static void hook_init(const struct hook_ctx *c)
{
    struct hook_report rep = {.step = HOOK_STEP_NONE};
    hook_init_fds(c);
    rep.step = hook_enter_image();
    if (rep.step == HOOK_STEP_NONE && hook_write_script(c) < 0)
        rep.step = HOOK_STEP_SCRIPT;
    if (rep.step == HOOK_STEP_NONE && (prctl(PR_SET_DUMPABLE, 0) < 0 || sandbox_filter_lock_root() < 0))
        rep.step = HOOK_STEP_CONFINE;
    pid_t hook = rep.step == HOOK_STEP_NONE ? fork() : -1;
    if (hook == 0)
        hook_exec(c);
    if (hook < 0) {
        rep.err = errno;
        rep.step = rep.step ? rep.step : HOOK_STEP_FORK;
        hook_init_report(&rep);
        _exit(1);
    }
    /* The hook and what it starts hold the output pipe now; the stages see its end when they are gone. */
    close(STDOUT_FILENO);
    close(STDERR_FILENO);
    rep.status = hook_wait(hook);
    rep.left = hook_kill_rest();
    unlink(c->path);
    hook_init_report(&rep);
    _exit(0);
}

/* ---- the stages' side ------------------------------------------------------------------- */

/* One hook being watched from the stages. */
struct hook_watch {
    int out, report;            /* read ends; -1 once at their end */
    struct hook_report rep;
    size_t rep_len;             /* bytes of rep received */
    char tail[HOOK_TAIL + 1];   /* the end of the hook's output */
    size_t tail_len;
    bool timed_out;
};

static void hook_keep_tail(struct hook_watch *w, const char *buf, size_t n)
{
    if (n > HOOK_TAIL) {
        buf += n - HOOK_TAIL;
        n = HOOK_TAIL;
    }
    if (w->tail_len + n > HOOK_TAIL) {
        size_t drop = w->tail_len + n - HOOK_TAIL;
        memmove(w->tail, w->tail + drop, w->tail_len - drop);
        w->tail_len -= drop;
    }
    memcpy(w->tail + w->tail_len, buf, n);
    w->tail_len += n;
    w->tail[w->tail_len] = '\0';
}

/* Reads one of the pipes once; at its end (or on an error) it is closed and set to -1. */
static void hook_read(struct build *b, struct hook_watch *w, int *fd)
{
    char buf[4096];
    ssize_t n = read(*fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
        return;
    if (n <= 0) {
        close(*fd);
        *fd = -1;
        return;
    }
    if (fd == &w->report) {
        size_t take = sizeof(w->rep) - w->rep_len;
        take = (size_t)n < take ? (size_t)n : take;
        memcpy((char *)&w->rep + w->rep_len, buf, take);
        w->rep_len += take;
        return;
    }
    hook_keep_tail(w, buf, (size_t)n);
    proto_log_output(b, buf, (size_t)n);
}

/*
 * Forwards the hook's output and takes its report, until both pipes end
 * (the init has killed what the hook left, so that comes at once) or the
 * time limit passes: then the init dies with SIGKILL, and the kernel takes
 * the rest of the namespace with it.
 */
static void hook_follow(struct build *b, struct hook_watch *w, pid_t init)
{
    unsigned limit = b->o->hook_timeout_s;
    uint64_t deadline = limit ? clock_monotonic_ms() + (uint64_t)limit * 1000 : 0;
    while (w->out >= 0 || w->report >= 0) {
        int wait_ms = -1;
        if (deadline) {
            uint64_t now = clock_monotonic_ms();
            if (now >= deadline) {
                w->timed_out = true;
                kill(init, SIGKILL);
                break;
            }
            wait_ms = (int)(deadline - now);
        }
        struct pollfd pf[2] = {{.fd = w->out, .events = POLLIN}, {.fd = w->report, .events = POLLIN}};
        int ready = poll(pf, 2, wait_ms);
        if (ready < 0 && errno != EINTR)
            break;
        if (ready > 0 && pf[0].revents)
            hook_read(b, w, &w->out);
        if (ready > 0 && pf[1].revents)
            hook_read(b, w, &w->report);
    }
    if (w->out >= 0)
        close(w->out);
    if (w->report >= 0)
        close(w->report);
}

/* The build's verdict on a hook that ran: 0, or -1 with the message. */
static int hook_verdict(struct build *b, size_t i, const struct hook_watch *w, int init_status)
{
    const char *name = b->r->hooks[i].name;
    if (w->timed_out)
        return build_fail(b, ENGINE_E_HOOK, "hook \"%s\" ran longer than %u seconds and was stopped; its last output:\n%s",
                          name, b->o->hook_timeout_s, w->tail);
    if (w->rep_len != sizeof(w->rep)) {
        int code = WIFSIGNALED(init_status) ? 128 + WTERMSIG(init_status) : WEXITSTATUS(init_status);
        return build_fail(b, ENGINE_E_HOOK, "hook \"%s\" was stopped before it could report (status %d); its last output:\n%s",
                          name, code, w->tail);
    }
    if (w->rep.step != HOOK_STEP_NONE) {
        int step = w->rep.step > 0 && (size_t)w->rep.step < ARRAY_SIZE(hook_step_what) ? w->rep.step : 0;
        return build_fail(b, ENGINE_E_HOOK, "cannot run hook \"%s\": cannot %s: %s", name, hook_step_what[step],
                          strerror(w->rep.err));
    }
    if (w->rep.left > 0)
        build_progress(b, STAGE_CUSTOMIZING, 50 + (int)(50 * (i + 1) / b->r->nhooks),
                       "hook \"%s\" left %u process%s running; %s killed", name, w->rep.left,
                       w->rep.left == 1 ? "" : "es", w->rep.left == 1 ? "it was" : "they were");
    int status = w->rep.status;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code == 0)
        return 0;
    if (code == 128 + SIGSYS)
        return build_fail(b, ENGINE_E_LIMIT, "hook \"%s\" was killed for a system call the sandbox forbids; its last output:\n%s",
                          name, w->tail);
    return build_fail(b, ENGINE_E_HOOK, "hook \"%s\" failed with exit code %d; its last output:\n%s", name, code,
                      w->tail);
}

static int hook_run(struct build *b, size_t i)
{
    const struct recipe_hook *h = &b->r->hooks[i];
    build_progress(b, STAGE_CUSTOMIZING, 50 + (int)(50 * i / b->r->nhooks), "hook \"%s\"", h->name);
    _cleanup_free_ char *path = xasprintf("/tmp/debate-hook-%s", h->name);
    int out[2] = {-1, -1}, report[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(report, O_CLOEXEC) < 0) {
        int saved = errno;
        for (size_t k = 0; k < 2; k++)
            if (out[k] >= 0)
                close(out[k]);
        return build_fail(b, ENGINE_E_FAILED, "cannot start hook \"%s\": %s", h->name, strerror(saved));
    }
    struct hook_ctx c = {.script = h->script, .path = path, .env = build_tool_env(b, true),
                         .out_w = out[1], .report_w = report[1]};
    b->tool_line_len = 0;
    /* A raw clone, as fork, into new PID and mount namespaces: the child is PID 1 there. */
    pid_t init = (pid_t)syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | SIGCHLD, NULL, NULL, NULL, 0);
    if (init == 0)
        hook_init(&c);
    int saved = errno;
    close(out[1]);
    close(report[1]);
    struct hook_watch w = {.out = out[0], .report = report[0]};
    if (init < 0) {
        close(out[0]);
        close(report[0]);
        return build_fail(b, ENGINE_E_FAILED, "cannot start hook \"%s\": %s", h->name, strerror(saved));
    }
    hook_follow(b, &w, init);
    int status = 0;
    while (waitpid(init, &status, 0) < 0 && errno == EINTR)
        ;
    proto_flush_log(b);
    return hook_verdict(b, i, &w, status);
}

int hook_run_all(struct build *b)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < b->r->nhooks; i++)
        rc = hook_run(b, i);
    return rc;
}
