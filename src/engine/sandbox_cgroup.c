/*
 * The sandbox's cgroup: memory (swap included), process count and CPU
 * accounting for the whole tree. Each controller comes from cgroup v2 when
 * the unified hierarchy offers it to our cgroup, else from its v1
 * hierarchy (hybrid machines mix both); a controller found nowhere is an
 * error, never a silent "no limit".
 */
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/sandbox_int.h"
#include "util.h"
#include "banned.h"

enum ctl { CTL_MEMORY, CTL_PIDS, CTL_CPU, CTL_N };
static const char *const v1_names[CTL_N] = {"memory", "pids", "cpuacct"};
static const char *const v2_names[CTL_N] = {"memory", "pids", "cpu"};

struct sandbox_cgroup {
    char *dir[CTL_N]; /* the cgroup directory serving each controller */
    int version[CTL_N];
    char *unique[CTL_N + 1]; /* distinct directories, for attach and removal */
    size_t nunique;
    bool memory_sampled;            /* v2 without memory.peak: the peak is what watching saw */
    unsigned long long memory_seen; /* the largest memory.current sampled */
};


/* True when name is one of the comma-separated items of list. */
static bool in_list(const char *list, const char *name)
{
    _cleanup_free_ char *copy = xstrdup(list);
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save))
        if (strcmp(item, name) == 0)
            return true;
    return false;
}

/*
 * A mountinfo line's mount point when it is the v1 hierarchy holding
 * controller name, or cgroup2 (name NULL).
 */
static char *match_mount(char *line, const char *name)
{
    /* id parent maj:min root mountpoint options [optional...] - fstype source superoptions */
    char *sep = strstr(line, " - ");
    if (sep == NULL)
        return NULL;
    char mnt[1024], fstype[64], source[256], super[1024] = "";
    if (sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1 ||
        sscanf(sep + 3, "%63s %255s %1023s", fstype, source, super) < 2)
        return NULL;
    if (name == NULL)
        return strcmp(fstype, "cgroup2") == 0 ? xstrdup(mnt) : NULL;
    return strcmp(fstype, "cgroup") == 0 && in_list(super, name) ? xstrdup(mnt) : NULL;
}

/*
 * A /proc/self/cgroup line's path when it is the v1 hierarchy of name, or v2
 * (name NULL): "ID:CONTROLLERS:PATH", v2's ID 0 with no controllers.
 */
static char *match_cgroup(char *line, const char *name)
{
    line[strcspn(line, "\n")] = '\0';
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c2 == NULL)
        return NULL;
    *c1 = '\0';
    *c2 = '\0';
    const char *id = line, *ctls = c1 + 1, *path = c2 + 1;
    if (name == NULL)
        return strcmp(id, "0") == 0 && *ctls == '\0' ? xstrdup(path) : NULL;
    return in_list(ctls, name) ? xstrdup(path) : NULL;
}

/* The first line of file that match accepts, as match returns it (malloc'd); or NULL. */
static char *scan_file(const char *file, char *(*match)(char *line, const char *name), const char *name)
{
    FILE *f = fopen(file, "re");
    if (f == NULL)
        return NULL;
    char line[4096];
    char *found = NULL;
    while (found == NULL && fgets(line, sizeof(line), f) != NULL)
        found = match(line, name);
    fclose(f);
    return found;
}

/* The mount point of the v1 hierarchy holding controller name, or of cgroup2 (name NULL). */
static char *find_mount(const char *name)
{
    return scan_file("/proc/self/mountinfo", match_mount, name);
}

/* Our cgroup's path in the v1 hierarchy of name, or in v2 (name NULL). */
static char *own_path(const char *name)
{
    return scan_file("/proc/self/cgroup", match_cgroup, name);
}

static int write_knob(const char *dir, const char *knob, const char *value)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, knob);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, value, strlen(value));
    int saved = errno;
    close(fd);
    return n == (ssize_t)strlen(value) ? 0 : -(n < 0 ? saved : EIO);
}

static bool has_word(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = text; (p = strstr(p, word)) != NULL; p += n)
        if ((p == text || p[-1] == ' ' || p[-1] == '\n') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

/* Our own cgroup's directory in the unified hierarchy (malloc'd), or NULL. */
static char *v2_own_dir(void)
{
    _cleanup_free_ char *mnt = find_mount(NULL), *path = own_path(NULL);
    if (mnt == NULL || path == NULL)
        return NULL;
    return xasprintf("%s%s", mnt, strcmp(path, "/") == 0 ? "" : path);
}

/* Whether the v2 cgroup dir could give controller name to children: it has it to give. */
static bool v2_offers(const char *dir, const char *name)
{
    _cleanup_free_ char *path = xasprintf("%s/cgroup.controllers", dir), *ctls = NULL;
    size_t len;
    return read_file(path, 4096, &ctls, &len) == 0 && has_word(ctls, name);
}

/* Whether dir's children get controller name, enabling it in its subtree_control when needed. */
static bool v2_hands_out(const char *dir, const char *name)
{
    if (!v2_offers(dir, name))
        return false;
    _cleanup_free_ char *path = xasprintf("%s/cgroup.subtree_control", dir), *sub = NULL;
    size_t len;
    if (read_file(path, 4096, &sub, &len) == 0 && has_word(sub, name))
        return true;
    _cleanup_free_ char *plus = xasprintf("+%s", name);
    return write_knob(dir, "cgroup.subtree_control", plus) == 0;
}

static bool v2_hands_out_all(const char *dir)
{
    bool all = true;
    for (int c = 0; c < CTL_N; c++)
        all = v2_hands_out(dir, v2_names[c]) && all;
    return all;
}

static bool v2_offers_all(const char *dir)
{
    for (int c = 0; c < CTL_N; c++)
        if (!v2_offers(dir, v2_names[c]))
            return false;
    return true;
}

/* Whether our process is the only one in the v2 cgroup dir. */
static bool alone_in(const char *dir)
{
    _cleanup_free_ char *path = xasprintf("%s/cgroup.procs", dir), *text = NULL;
    size_t len;
    if (read_file(path, 1 << 20, &text, &len) < 0)
        return false;
    char *end;
    long pid = strtol(text, &end, 10);
    while (*end == '\n')
        end++;
    return pid == (long)getpid() && *end == '\0';
}

/*
 * Where the builds' v2 cgroups go: NULL until sandbox_prepare_cgroups (or
 * the first build) chose. cgroup v2 gives controllers only to the children
 * of a cgroup that holds no process (the root excepted), and we are in our
 * own cgroup: so
 *   1. our own cgroup, when it is the root (which may hold processes);
 *   2. our own cgroup, after moving this process into a leaf of it
 *      (DEBATE_SELF_LEAF), when we are alone there and it offers every
 *      controller: a systemd service with Delegate=yes, as
 *      debate-worker.service;
 *   3. else a cgroup of our own below the root (V2_BUILDS), which holds no
 *      process: a root shell in a login session, whose scope is not ours.
 */
#define DEBATE_SELF_LEAF "debate-worker"
#define V2_BUILDS "debate-builds"
static char *v2_base;

static char *choose_v2_base(bool may_move)
{
    _cleanup_free_ char *own = v2_own_dir(), *mnt = find_mount(NULL);
    if (own == NULL || mnt == NULL || !v2_offers(mnt, v2_names[CTL_MEMORY]))
        return NULL; /* no unified hierarchy, or its controllers are on v1 (a hybrid machine) */
    if (strcmp(own, mnt) == 0 && v2_hands_out_all(own))
        return xstrdup(own);
    /*
     * Never write the cgroup.subtree_control of a cgroup that holds us: the
     * kernel would enable the threaded controllers (pids, cpu) there and
     * refuse memory, and a cgroup left so holding a process is a thread
     * root whose new children cannot take a process (EOPNOTSUPP). Move out
     * first; and only where all controllers are offered (delegated), so a
     * cgroup of systemd's that cannot give them all is left as it is.
     */
    if (may_move && v2_offers_all(own) && alone_in(own)) {
        _cleanup_free_ char *leaf = xasprintf("%s/%s", own, DEBATE_SELF_LEAF);
        char pid[24];
        snprintf(pid, sizeof(pid), "%ld", (long)getpid());
        if ((mkdir(leaf, 0755) == 0 || errno == EEXIST) && write_knob(leaf, "cgroup.procs", pid) == 0 &&
            v2_hands_out_all(own))
            return xstrdup(own);
    }
    if (!v2_hands_out_all(mnt))
        return NULL;
    char *builds = xasprintf("%s/%s", mnt, V2_BUILDS);
    if ((mkdir(builds, 0755) == 0 || errno == EEXIST) && v2_hands_out_all(builds))
        return builds;
    free(builds);
    return NULL;
}

/* The v2 directory the sandbox's cgroup is created in, when it can hand out controller name. */
static char *v2_parent_for(const char *name)
{
    if (v2_base == NULL)
        v2_base = choose_v2_base(false);
    if (v2_base == NULL || !v2_hands_out(v2_base, name))
        return NULL;
    return xstrdup(v2_base);
}

static char *v1_parent_for(const char *name)
{
    _cleanup_free_ char *mnt = find_mount(name), *path = own_path(name);
    if (mnt == NULL || path == NULL)
        return NULL;
    return xasprintf("%s%s", mnt, strcmp(path, "/") == 0 ? "" : path);
}

static unsigned long long counter;

static int make_dir(struct sandbox_cgroup *cg, enum ctl c, const char *parent, int version, char *err, size_t errlen)
{
    /* v2 controllers share one directory. */
    for (int i = 0; i < CTL_N; i++) {
        if (cg->dir[i] != NULL && cg->version[i] == 2 && version == 2) {
            cg->dir[c] = xstrdup(cg->dir[i]);
            cg->version[c] = 2;
            return 0;
        }
    }
    char *dir = xasprintf("%s/debate-sandbox-%ld-%llu", parent, (long)getpid(), ++counter);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create the cgroup \"%s\": %s", dir, strerror(errno));
        free(dir);
        return -1;
    }
    cg->dir[c] = dir;
    cg->version[c] = version;
    cg->unique[cg->nunique++] = xstrdup(dir);
    return 0;
}

static int set_limit(struct sandbox_cgroup *cg, enum ctl c, const char *knob, const char *value, bool required,
                     char *err, size_t errlen)
{
    int rc = write_knob(cg->dir[c], knob, value);
    if (rc < 0 && required) {
        snprintf(err, errlen, "cannot set %s/%s to %s: %s", cg->dir[c], knob, value, strerror(-rc));
        return -1;
    }
    return 0;
}

/* Whether the kernel keeps the v2 cgroup dir's memory high-water mark: memory.peak came with Linux 5.19. */
static bool v2_keeps_memory_peak(const char *dir)
{
    _cleanup_free_ char *path = xasprintf("%s/memory.peak", dir);
    return access(path, R_OK) == 0;
}

struct sandbox_cgroup *sandbox_cgroup_create(const struct sandbox_limits *l, char *err, size_t errlen)
{
    struct sandbox_cgroup *cg = xcalloc(1, sizeof(*cg));
    for (int c = 0; c < CTL_N; c++) {
        _cleanup_free_ char *parent = v2_parent_for(v2_names[c]);
        int version = 2;
        if (parent == NULL) {
            parent = v1_parent_for(v1_names[c]);
            version = 1;
        }
        if (parent == NULL) {
            snprintf(err, errlen,
                     "this machine offers no %s cgroup controller to debate (neither cgroup v2 nor v1): the "
                     "sandbox cannot enforce its %s limit, so nothing runs (on cgroup v2 under systemd, give "
                     "the service Delegate=yes)",
                     v1_names[c], c == CTL_MEMORY ? "memory" : c == CTL_PIDS ? "process" : "CPU-time");
            sandbox_cgroup_destroy(cg);
            return NULL;
        }
        if (make_dir(cg, (enum ctl)c, parent, version, err, errlen) < 0) {
            sandbox_cgroup_destroy(cg);
            return NULL;
        }
    }
    char mem[32], pids[32];
    snprintf(mem, sizeof(mem), "%llu", (unsigned long long)l->memory_mb << 20);
    snprintf(pids, sizeof(pids), "%u", l->pids);
    int rc = 0;
    if (cg->version[CTL_MEMORY] == 2) {
        rc = set_limit(cg, CTL_MEMORY, "memory.max", mem, true, err, errlen);
        rc = rc ?: set_limit(cg, CTL_MEMORY, "memory.swap.max", "0", false, err, errlen);
    } else {
        rc = set_limit(cg, CTL_MEMORY, "memory.limit_in_bytes", mem, true, err, errlen);
        rc = rc ?: set_limit(cg, CTL_MEMORY, "memory.memsw.limit_in_bytes", mem, false, err, errlen);
    }
    rc = rc ?: set_limit(cg, CTL_PIDS, "pids.max", pids, true, err, errlen);
    /* A lower CPU weight than the rest of the machine: the host stays responsive. */
    if (rc == 0 && cg->version[CTL_CPU] == 2) {
        set_limit(cg, CTL_CPU, "cpu.weight", "50", false, err, errlen);
    } else if (rc == 0) {
        _cleanup_free_ char *cpu = v1_parent_for("cpu");
        char *dir = cpu ? xasprintf("%s/debate-sandbox-%ld-%llu", cpu, (long)getpid(), counter) : NULL;
        if (dir != NULL && strncmp(dir, cg->dir[CTL_CPU], strlen(dir)) != 0 && mkdir(dir, 0755) == 0) {
            cg->unique[cg->nunique++] = dir; /* cpu apart from cpuacct: the weight lives beside */
            write_knob(dir, "cpu.shares", "256");
        } else {
            if (dir != NULL && strcmp(dir, cg->dir[CTL_CPU]) == 0)
                write_knob(dir, "cpu.shares", "256");
            free(dir);
        }
    }
    if (rc < 0) {
        sandbox_cgroup_destroy(cg);
        return NULL;
    }
    cg->memory_sampled = cg->version[CTL_MEMORY] == 2 && !v2_keeps_memory_peak(cg->dir[CTL_MEMORY]);
    return cg;
}

int sandbox_cgroup_attach(struct sandbox_cgroup *cg, pid_t pid, char *err, size_t errlen)
{
    char value[24];
    snprintf(value, sizeof(value), "%ld", (long)pid);
    for (size_t i = 0; i < cg->nunique; i++) {
        int rc = write_knob(cg->unique[i], "cgroup.procs", value);
        if (rc < 0) {
            snprintf(err, errlen, "cannot move the sandbox into \"%s\": %s", cg->unique[i], strerror(-rc));
            return -1;
        }
    }
    return 0;
}

/* The number after key in a "key value" file. */
static unsigned long long keyed(const char *dir, const char *file, const char *key)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, file), *text = NULL;
    size_t len;
    if (read_file(path, 65536, &text, &len) < 0)
        return 0;
    size_t n = strlen(key);
    for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, key, n) == 0 && line[n] == ' ')
            return strtoull(line + n + 1, NULL, 10);
    return 0;
}

/* The number a one-value file holds; 0 when it cannot be read. */
static unsigned long long number(const char *dir, const char *file)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, file), *text = NULL;
    size_t len;
    return read_file(path, 64, &text, &len) == 0 ? strtoull(text, NULL, 10) : 0;
}

unsigned long long sandbox_cgroup_cpu_ns(struct sandbox_cgroup *cg)
{
    if (cg->version[CTL_CPU] == 2)
        return keyed(cg->dir[CTL_CPU], "cpu.stat", "usage_usec") * 1000ull;
    return number(cg->dir[CTL_CPU], "cpuacct.usage");
}

void sandbox_cgroup_memory_sample(struct sandbox_cgroup *cg)
{
    if (!cg->memory_sampled)
        return;
    unsigned long long now = number(cg->dir[CTL_MEMORY], "memory.current");
    if (now > cg->memory_seen)
        cg->memory_seen = now;
}

/*
 * The kernel's own high-water mark where it keeps one: it sees every
 * charge, where sampling every 100 ms can miss a short burst.
 */
unsigned long long sandbox_cgroup_memory_peak(struct sandbox_cgroup *cg)
{
    if (cg->version[CTL_MEMORY] == 1)
        return number(cg->dir[CTL_MEMORY], "memory.max_usage_in_bytes");
    if (!cg->memory_sampled)
        return number(cg->dir[CTL_MEMORY], "memory.peak");
    sandbox_cgroup_memory_sample(cg);
    return cg->memory_seen;
}

unsigned long long sandbox_cgroup_oom_kills(struct sandbox_cgroup *cg)
{
    if (cg->version[CTL_MEMORY] == 2)
        return keyed(cg->dir[CTL_MEMORY], "memory.events", "oom_kill");
    return keyed(cg->dir[CTL_MEMORY], "memory.oom_control", "oom_kill");
}

unsigned long long sandbox_cgroup_pids_max_hits(struct sandbox_cgroup *cg)
{
    return keyed(cg->dir[CTL_PIDS], "pids.events", "max");
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

bool sandbox_cgroup_empty(struct sandbox_cgroup *cg, int wait_ms)
{
    for (int waited = 0;; waited += 20) {
        bool empty = true;
        for (size_t i = 0; i < cg->nunique; i++) {
            _cleanup_free_ char *path = xasprintf("%s/cgroup.procs", cg->unique[i]), *text = NULL;
            size_t len;
            if (read_file(path, 1 << 20, &text, &len) < 0 || len == 0)
                continue;
            empty = false;
            for (char *p = text; *p;) {
                long pid = strtol(p, &p, 10);
                if (pid > 0)
                    kill((pid_t)pid, SIGKILL);
                while (*p == '\n')
                    p++;
            }
        }
        if (empty)
            return true;
        if (waited >= wait_ms)
            return false;
        sleep_ms(20);
    }
}

void sandbox_cgroup_destroy(struct sandbox_cgroup *cg)
{
    if (cg == NULL)
        return;
    for (size_t i = 0; i < cg->nunique; i++) {
        for (int tries = 0; rmdir(cg->unique[i]) < 0 && errno == EBUSY && tries < 100; tries++)
            sleep_ms(20);
        free(cg->unique[i]);
    }
    for (int c = 0; c < CTL_N; c++)
        free(cg->dir[c]);
    free(cg);
}

static void sweep_dir(const char *parent)
{
    DIR *d = opendir(parent);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        long pid;
        if (sscanf(e->d_name, "debate-sandbox-%ld-", &pid) != 1 || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* its supervisor lives */
        _cleanup_free_ char *dir = xasprintf("%s/%s", parent, e->d_name);
        rmdir(dir); /* only an empty cgroup goes */
    }
    if (d)
        closedir(d);
}

void sandbox_prepare_cgroups(void)
{
    if (v2_base == NULL)
        v2_base = choose_v2_base(true);
    for (int c = 0; c < CTL_N; c++) {
        _cleanup_free_ char *v1 = v1_parent_for(v1_names[c]);
        if (v1)
            sweep_dir(v1);
    }
    _cleanup_free_ char *cpu = v1_parent_for("cpu"); /* the CPU weight's own v1 hierarchy */
    if (cpu)
        sweep_dir(cpu);
    if (v2_base != NULL)
        sweep_dir(v2_base);
}

const char *sandbox_cgroup_layout(void)
{
    static char layout[160];
    size_t off = 0;
    layout[0] = '\0';
    for (int c = 0; c < CTL_N; c++) {
        _cleanup_free_ char *v2 = v2_parent_for(v2_names[c]);
        _cleanup_free_ char *v1 = v2 ? NULL : v1_parent_for(v1_names[c]);
        int n = snprintf(layout + off, sizeof(layout) - off, "%s%s %s", c ? ", " : "", v1_names[c],
                         v2 ? "v2" : v1 ? "v1" : "missing");
        if (n > 0 && off + (size_t)n < sizeof(layout))
            off += (size_t)n;
    }
    return layout;
}
