/*
 * Private to the sandbox: what sandbox.c (namespaces, the root, the
 * supervisor), sandbox_cgroup.c (limits) and sandbox_filter.c (seccomp)
 * share. Nothing outside them includes this; the rest of debate sees only
 * sandbox.h.
 */
#ifndef DEBATE_ENGINE_SANDBOX_INT_H
#define DEBATE_ENGINE_SANDBOX_INT_H

#include <stdbool.h>
#include <sys/types.h>

#include "engine/sandbox.h"

/* Installs the seccomp filters (after no_new_privs). 0, or -1 with errno. */
int sandbox_filter_load(void);
/* Number of system calls the allowlist admits. */
unsigned sandbox_filter_count(void);

struct sandbox_cgroup;
/* Creates a cgroup with the limits; NULL with a message (fail closed). */
struct sandbox_cgroup *sandbox_cgroup_create(const struct sandbox_limits *l, char *err, size_t errlen);
int sandbox_cgroup_attach(struct sandbox_cgroup *cg, pid_t pid, char *err, size_t errlen);
/* Counters since creation. */
unsigned long long sandbox_cgroup_cpu_ns(struct sandbox_cgroup *cg);
unsigned long long sandbox_cgroup_oom_kills(struct sandbox_cgroup *cg);
unsigned long long sandbox_cgroup_pids_max_hits(struct sandbox_cgroup *cg);
/*
 * Memory: sample notes memory.current where the kernel keeps no peak of its
 * own (cgroup v2 before Linux 5.19), and does nothing elsewhere; call it as
 * the limits are polled. peak is the most the tree was charged since
 * creation (memory.peak, memory.max_usage_in_bytes, or the largest sample
 * and the current charge): read it once every process is gone, before
 * sandbox_cgroup_destroy. 0 when nothing can be read.
 */
void sandbox_cgroup_memory_sample(struct sandbox_cgroup *cg);
unsigned long long sandbox_cgroup_memory_peak(struct sandbox_cgroup *cg);
/* Kills whatever is still in the cgroup and waits (bounded) for it to be empty. */
bool sandbox_cgroup_empty(struct sandbox_cgroup *cg, int wait_ms);
void sandbox_cgroup_destroy(struct sandbox_cgroup *cg);
/* "cgroup v1 (memory, pids, cpuacct)" and the like. */
const char *sandbox_cgroup_layout(void);

#endif
