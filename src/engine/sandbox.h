/*
 * The sandbox: everything a recipe contains (package maintainer scripts,
 * hooks, overlays, the image tools that read them) runs inside it.
 *
 * sandbox_run forks a supervisor that, as real root and in a mount
 * namespace of its own, prepares the sandbox's root: a read-only tmpfs with
 * the host's /usr (read-only), a minimal /etc and /dev, the build disk (an
 * ext4 image of the disk limit, loop-mounted) at /mnt/build and any
 * read-only inputs. Those mounts are made before the sandbox's own
 * namespaces exist, so inside they are locked: read-only stays read-only.
 *
 * The supervisor then starts the sandbox's init in new user (root inside is
 * the first id of a 65536-id subordinate range outside), mount, PID,
 * network (lo only), IPC, UTS and cgroup namespaces, in a cgroup with
 * memory, process and CPU accounting. The init pivots into the prepared
 * root, starts a new session with no controlling terminal, keeps exactly
 * the allowlisted environment and the file descriptors handed in, sets
 * no_new_privs, loads the seccomp filters and forks the payload.
 *
 * The supervisor watches the limits (wall time, CPU time, memory, process
 * count, disk) and a cancel request; on any of them the whole tree dies.
 * When the payload succeeded, the caller's collect callback reads results
 * back through a directory descriptor of the build disk, with
 * sandbox_open_beneath (never following a link out of it). When the
 * supervisor exits, nothing of the build is left running or mounted.
 *
 * Errors: sandbox_run returns 0 when the payload ran (its fate is in the
 * result) and -1 with a message when the sandbox could not be set up; a
 * limit that cannot be enforced on this machine is a setup error (fail
 * closed).
 */
#ifndef DEBATE_ENGINE_SANDBOX_H
#define DEBATE_ENGINE_SANDBOX_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

#define SANDBOX_IDS 65536u

struct sandbox_limits {
    unsigned memory_mb; /* memory and swap of the whole tree */
    unsigned pids;      /* processes and threads alive at once */
    unsigned cpu_s;     /* CPU time of the whole tree */
    unsigned disk_mb;   /* size of the build disk */
    unsigned wall_s;    /* wall time */
};

/* The limits of configuration cfg. */
void sandbox_limits_from_config(const struct config *cfg, struct sandbox_limits *l);

struct sandbox_bind {
    const char *host;   /* a host directory */
    const char *inside; /* where it appears, read-only: /mnt/<name> */
};

enum sandbox_cause {
    SANDBOX_OK,        /* the payload exited 0 */
    SANDBOX_EXITED,    /* the payload exited non-zero (status) */
    SANDBOX_SIGNALED,  /* the payload was killed by a signal no limit explains (status) */
    SANDBOX_WALL,      /* limits: the whole tree was killed */
    SANDBOX_MEMORY,
    SANDBOX_PIDS,
    SANDBOX_CPU,
    SANDBOX_DISK,      /* the build disk filled up and the payload failed */
    SANDBOX_SYSCALL,   /* killed by the seccomp filter */
    SANDBOX_CANCELLED, /* *cancel was set */
    SANDBOX_COLLECT,   /* reading the results back failed (message) */
};

struct sandbox_result {
    enum sandbox_cause cause;
    int status;        /* exit code, or signal number for SANDBOX_SIGNALED */
    char message[512]; /* the cause in words, for limits and collect failures */
    char collected[256]; /* what collect wrote for the caller */
    /*
     * The build's high-water marks, whatever the cause; 0 when unknown
     * (the supervisor did not answer). memory_peak_bytes: the most memory
     * the whole tree was charged at once (anonymous memory, page cache,
     * tmpfs), as its cgroup recorded it, or as sampled every 100 ms where
     * the kernel records no peak. disk_peak_bytes: the most the build had
     * written to the build disk at once (space in use on it less what the
     * empty file system takes), sampled every 100 ms and after the end.
     */
    unsigned long long memory_peak_bytes, disk_peak_bytes;
};

struct sandbox_opts {
    const char *workdir;       /* an empty host directory the sandbox may fill; the caller removes it */
    const struct sandbox_bind *binds;
    size_t nbinds;
    struct sandbox_limits limits;
    uid_t id_base;             /* root inside is id_base outside */
    const char *const *env;    /* exactly the environment inside, NULL-terminated */
    const char *hostname;
    /* The payload's standard output and error, as they come (through a pipe); NULL: discarded. */
    void (*on_output)(void *arg, const char *buf, size_t n);
    void *output_arg;
    /*
     * Runs inside; its return value is the exit code. The sandbox blanks its
     * copy of the process's argument and environment areas (so /proc shows
     * none of the host's): arg must not point into argv[] or environ strings.
     */
    int (*payload)(void *arg);
    void *arg;
    /* After success, in the supervisor (host root): read the results back. */
    int (*collect)(int diskfd, void *arg, char *out, size_t outlen, char *err, size_t errlen);
    void *collect_arg;
    volatile sig_atomic_t *cancel; /* polled: set, the tree dies and the cause is SANDBOX_CANCELLED */
};

int sandbox_run(const struct sandbox_opts *o, struct sandbox_result *res, char *err, size_t errlen);

/* One line naming the settings sandbox_run enforces for o. */
void sandbox_describe(const struct sandbox_opts *o, char *buf, size_t len);

/*
 * Opens rel under dirfd for reading without following any link (and
 * without crossing a mount): a planted link fails with ELOOP. -1 and errno.
 */
int sandbox_open_beneath(int dirfd, const char *rel, int flags);

/*
 * Inside the sandbox, in a process that has made its own root (the hook
 * runner, after pivot_root into the image): adds a seccomp filter that
 * refuses pivot_root (EPERM) to it and everything it starts from then on.
 * 0, or -1 with errno.
 */
int sandbox_filter_lock_root(void);

/* The environment every sandbox starts from: PATH, HOME, TZ, LC_ALL. */
extern const char *const sandbox_base_env[];

/*
 * Once, before the first build of a process: chooses where the builds'
 * cgroups go (on cgroup v2 under systemd's Delegate=yes, moves this
 * process into a leaf of its own cgroup when it is alone there, so the
 * cgroup can hand controllers to the builds' cgroups beside it), and
 * removes cgroups of sandboxes whose supervisor died (kill -9).
 */
void sandbox_prepare_cgroups(void);

#endif
