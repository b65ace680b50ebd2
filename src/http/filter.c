#include "http/filter.h"

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>

#include "util.h"
#include "banned.h"

static const char *const allowed[] = {
    /* reading files (assets are compiled in; the artifact store, the package indexes, /etc for libc) */
    "read", "write", "close", "fstat", "stat", "lstat", "newfstatat", "statx", "statfs", "fstatfs",
    "lseek", "pread64", "readv", "writev", "access", "faccessat", "faccessat2", "getdents64", "readlink",
    "readlinkat", "fcntl", "ioctl", "dup", "dup2", "dup3", "pipe", "pipe2", "eventfd", "eventfd2", "getcwd", "fadvise64",
    /* memory */
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
    /* threads and signals (the loops, the database threads, the package loader) */
    "clone", "exit", "exit_group", "futex", "set_robust_list", "get_robust_list", "rseq", "set_tid_address",
    "sched_yield", "sched_getaffinity", "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid",
    "getresuid", "getresgid", "getgroups", "tgkill", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
    "rt_sigtimedwait", "sigaltstack", "restart_syscall", "prctl", "getrlimit", "prlimit64", "getrusage", "getcpu",
    /* time */
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    /* waiting */
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect6",
    /* sockets: accepting clients, and libpq's connections (getaddrinfo binds a netlink socket) */
    "socket", "connect", "accept", "accept4", "bind", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg",
    "recvmmsg", "setsockopt", "getsockopt", "getsockname", "getpeername", "shutdown", "socketpair",
    /* the rest */
    "getrandom", "uname", "sysinfo", "membarrier",
};

#if defined(__SANITIZE_ADDRESS__)
/* LeakSanitizer's exit check: a tracer task stops and reads this process's threads. */
static const char *const sanitizer[] = {"ptrace", "getdents", "wait4", "waitid", "kill", "tkill", "sched_getparam",
                                        "process_vm_readv"};
#endif

static int add(scmp_filter_ctx ctx, uint32_t action, const char *name)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        return 0; /* unknown to this libseccomp: the default action refuses it */
    int rc = seccomp_rule_add(ctx, action, nr, 0);
    return rc == -EEXIST ? 0 : rc;
}

/* open and openat for reading only: the front door writes no file (it has its log on stderr already). */
static int add_read_only_open(scmp_filter_ctx ctx)
{
    const uint64_t writing = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND;
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, writing, 0));
    return rc ?: seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(open), 1, SCMP_A1(SCMP_CMP_MASKED_EQ, writing, 0));
}

int filter_install(char *err, size_t errlen)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot make the front door's seccomp filter: out of memory");
        return -1;
    }
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(allowed); i++)
        rc = add(ctx, SCMP_ACT_ALLOW, allowed[i]);
#if defined(__SANITIZE_ADDRESS__)
    for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(sanitizer); i++)
        rc = add(ctx, SCMP_ACT_ALLOW, sanitizer[i]);
#endif
    rc = rc ?: add_read_only_open(ctx);
    /* clone3's flags are out of a filter's reach: ENOSYS makes glibc use clone. */
    rc = rc ?: add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3");
    rc = rc ?: seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0) {
        snprintf(err, errlen, "cannot install the front door's seccomp filter: %s", strerror(-rc));
        return -1;
    }
    return 0;
}
