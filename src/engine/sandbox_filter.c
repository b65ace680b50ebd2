/*
 * The sandbox's seccomp filters, two of them (a process's filters all run;
 * the strictest answer wins):
 *
 * 1. An allowlist: the system calls package scripts and image tools use.
 *    Anything else answers ENOSYS (so programs fall back, as they do on
 *    older kernels), except a list of calls with no business in a build
 *    (module loading, kexec, bpf, perf, keys, ptrace, namespaces joined
 *    from outside, swap, reboot, clocks) which answer EPERM. clone3
 *    answers ENOSYS: its flags live in memory a filter cannot read, so
 *    libc falls back to clone, whose flags it can.
 * 2. Argument checks on allowed calls: TIOCSTI and TIOCLINUX refused
 *    whatever the upper 32 bits of the request say; a new user namespace
 *    refused through clone and unshare.
 *
 * pivot_root is allowed: the engine's hook runner pivots into the image to
 * give each hook its own root. sandbox_filter_lock_root adds a third filter
 * there, before the hook starts, that refuses it again (EPERM) to the hook
 * and everything it starts.
 *
 * Only the native x86-64 ABI passes: the 32-bit (int 0x80) and x32 entry
 * points kill the process (SIGSYS), since their numbers differ and would
 * dodge every rule above.
 */
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <sys/ioctl.h>

#include "engine/sandbox_int.h"
#include "util.h"
#include "banned.h"

static const char *const allowed[] = {
    /* files and directories */
    "read", "write", "open", "openat", "openat2", "close", "close_range", "creat", "stat", "fstat", "lstat",
    "newfstatat", "statx", "statfs", "fstatfs", "lseek", "pread64", "pwrite64", "readv", "writev", "preadv",
    "pwritev", "preadv2", "pwritev2", "access", "faccessat", "faccessat2", "dup", "dup2", "dup3", "pipe", "pipe2",
    "fcntl", "flock", "fsync", "fdatasync", "syncfs", "sync", "sync_file_range", "truncate", "ftruncate",
    "fallocate", "fadvise64", "readahead", "getdents", "getdents64", "getcwd", "chdir", "fchdir", "rename",
    "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "link", "linkat", "unlink", "unlinkat", "symlink",
    "symlinkat", "readlink", "readlinkat", "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown",
    "fchownat", "umask", "utime", "utimes", "utimensat", "futimesat", "mknod", "mknodat", "sendfile", "splice",
    "tee", "vmsplice", "copy_file_range", "setxattr", "lsetxattr", "fsetxattr", "getxattr", "lgetxattr",
    "fgetxattr", "listxattr", "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "memfd_create", "ioctl",
    "chroot", "mount", "umount2", "name_to_handle_at",
    /* the engine's hook runner makes the image a hook's root (sandbox_filter_lock_root refuses it again) */
    "pivot_root",
    /* memory */
    "brk", "mmap", "munmap", "mremap", "mprotect", "msync", "mincore", "madvise", "mlock", "mlock2", "munlock",
    "mlockall", "munlockall", "mbind", "set_mempolicy", "get_mempolicy", "remap_file_pages", "membarrier",
    "pkey_mprotect", "pkey_alloc", "pkey_free",
    /* processes, threads, signals */
    "clone", "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "kill", "tkill",
    "tgkill", "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid", "set_tid_address",
    "set_robust_list", "get_robust_list", "rseq", "arch_prctl", "prctl", "personality", "unshare", "seccomp",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait", "rt_sigqueueinfo",
    "rt_tgsigqueueinfo", "rt_sigsuspend", "sigaltstack", "pause", "restart_syscall", "pidfd_open",
    "pidfd_send_signal", "futex", "futex_waitv", "sched_yield", "sched_setparam", "sched_getparam",
    "sched_setscheduler", "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_setaffinity", "sched_getaffinity", "sched_setattr", "sched_getattr",
    "getpriority", "setpriority", "ioprio_get", "ioprio_set", "getrlimit", "setrlimit", "prlimit64", "getrusage",
    "times", "getcpu", "process_vm_readv",
    /* credentials (inside the user namespace) */
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "setuid", "setgid", "setreuid",
    "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid", "setgroups", "capget", "capset",
    /* time */
    "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time", "alarm", "getitimer",
    "setitimer", "timer_create", "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete",
    "timerfd_create", "timerfd_settime", "timerfd_gettime",
    /* waiting and events */
    "select", "pselect6", "poll", "ppoll", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
    "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4",
    /* sockets (the network namespace has lo only) */
    "socket", "socketpair", "connect", "accept", "accept4", "bind", "listen", "shutdown", "getsockname",
    "getpeername", "setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
    /* System V and POSIX IPC (the IPC namespace is the sandbox's) */
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl", "msgget", "msgsnd", "msgrcv",
    "msgctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
    /* the rest */
    "uname", "sysinfo", "getrandom", "sethostname", "setdomainname", "io_setup", "io_destroy", "io_getevents",
    "io_pgetevents", "io_submit", "io_cancel", "cachestat",
};

/* Present on the machine, no use to a build, worth a clear refusal. */
static const char *const refused[] = {
    "ptrace", "process_vm_writev", "kcmp", "pidfd_getfd", "setns", "init_module", "finit_module",
    "delete_module", "create_module", "kexec_load", "kexec_file_load", "bpf", "perf_event_open", "keyctl",
    "add_key", "request_key", "reboot", "swapon", "swapoff", "acct", "syslog", "iopl", "ioperm", "open_by_handle_at",
    "userfaultfd", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "quotactl", "quotactl_fd",
    "lookup_dcookie", "fanotify_init", "fanotify_mark", "vhangup", "uselib", "ustat", "sysfs", "_sysctl",
    "nfsservctl", "move_pages", "migrate_pages", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "fsopen", "fsconfig", "fsmount", "fspick", "open_tree", "move_mount", "mount_setattr", "modify_ldt",
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "memfd_secret", "process_madvise",
    "process_mrelease", "set_mempolicy_home_node",
};

static unsigned admitted;

unsigned sandbox_filter_count(void)
{
    return admitted ? admitted : (unsigned)ARRAY_SIZE(allowed);
}

static int add(scmp_filter_ctx ctx, uint32_t action, const char *name)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        return 0; /* unknown to this libseccomp: the default action refuses it */
    int rc = seccomp_rule_add(ctx, action, nr, 0);
    return rc == -EEXIST ? 0 : rc;
}

static int load_arguments_filter(void)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == NULL)
        return -ENOMEM;
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    /* ioctl's request is an unsigned int: compare the low 32 bits only. */
    rc = rc ?: seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                                SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI));
    rc = rc ?: seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                                SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX));
    rc = rc ?: seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
    rc = rc ?: seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
                                SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
    rc = rc ?: seccomp_load(ctx);
    seccomp_release(ctx);
    return rc;
}

static int load_allowlist(void)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(ENOSYS));
    if (ctx == NULL)
        return -ENOMEM;
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    unsigned n = 0;
    for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(allowed); i++) {
        rc = add(ctx, SCMP_ACT_ALLOW, allowed[i]);
        n += seccomp_syscall_resolve_name(allowed[i]) != __NR_SCMP_ERROR;
    }
    for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(refused); i++)
        rc = add(ctx, SCMP_ACT_ERRNO(EPERM), refused[i]);
    /* clone3 is in neither list: the default, ENOSYS. */
    rc = rc ?: seccomp_load(ctx);
    seccomp_release(ctx);
    admitted = n;
    return rc;
}

int sandbox_filter_lock_root(void)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == NULL) {
        errno = ENOMEM;
        return -1;
    }
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    rc = rc ?: seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(pivot_root), 0);
    rc = rc ?: seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    return 0;
}

int sandbox_filter_load(void)
{
    int rc = load_arguments_filter();
    rc = rc ?: load_allowlist();
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    return 0;
}
