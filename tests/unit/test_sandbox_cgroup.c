/*
 * How the sandbox's cgroup code reads /proc/self/cgroup and
 * /proc/self/mountinfo lines: which line is the unified hierarchy (v2) and
 * which the v1 hierarchy of a controller; and which file gives the memory
 * peak (on a directory made to look like a cgroup, so that the cgroup v2
 * files are read on any machine). The file is included to reach
 * its static functions; choosing and creating the cgroups on a pure cgroup
 * v2 machine is tests/integration/test_cgroup2.py's (make test-cgroup2).
 */
#include "engine/sandbox_cgroup.c"

#include "harness.h"

/* match on a writable copy of line, as scan_file hands it over; NULL when it does not match. */
static char *match_line(char *(*match)(char *line, const char *name), const char *line, const char *name)
{
    _cleanup_free_ char *copy = xstrdup(line);
    return match(copy, name);
}

static void check_cgroup(const char *line, const char *name, const char *expected)
{
    _cleanup_free_ char *got = match_line(match_cgroup, line, name);
    if (expected == NULL)
        CHECK(got == NULL);
    else
        CHECK_STR(got != NULL ? got : "(no match)", expected);
}

TEST(the_unified_hierarchy_line_gives_our_v2_cgroup)
{
    check_cgroup("0::/system.slice/debate-worker.service\n", NULL, "/system.slice/debate-worker.service");
    check_cgroup("0::/\n", NULL, "/");
    check_cgroup("0::/user.slice/user-0.slice/session-3.scope", NULL, "/user.slice/user-0.slice/session-3.scope");
}

TEST(v1_lines_are_not_the_unified_hierarchy)
{
    check_cgroup("4:memory:/user.slice\n", NULL, NULL);
    check_cgroup("1:name=systemd:/init.scope\n", NULL, NULL);
    check_cgroup("10:0:/odd\n", NULL, NULL);
}

TEST(a_v1_line_gives_the_cgroup_of_its_controllers)
{
    check_cgroup("4:memory:/user.slice\n", "memory", "/user.slice");
    check_cgroup("7:cpu,cpuacct:/system.slice/x.service\n", "cpuacct", "/system.slice/x.service");
    check_cgroup("7:cpu,cpuacct:/system.slice/x.service\n", "cpu", "/system.slice/x.service");
    check_cgroup("7:cpu,cpuacct:/system.slice/x.service\n", "pids", NULL);
    check_cgroup("0::/system.slice/x.service\n", "memory", NULL);
    check_cgroup("garbage\n", NULL, NULL);
}

TEST(mountinfo_lines_give_the_hierarchies_mount_points)
{
    const char *v2 = "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
                     "rw,nsdelegate,memory_recursiveprot\n";
    const char *v1 = "40 31 0:35 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup "
                     "rw,memory\n";
    _cleanup_free_ char *a = match_line(match_mount, v2, NULL), *b = match_line(match_mount, v1, "memory");
    _cleanup_free_ char *c = match_line(match_mount, v1, NULL), *d = match_line(match_mount, v2, "memory");
    CHECK_STR(a != NULL ? a : "(no match)", "/sys/fs/cgroup");
    CHECK_STR(b != NULL ? b : "(no match)", "/sys/fs/cgroup/memory");
    CHECK(c == NULL);
    CHECK(d == NULL);
}

/* A directory standing for the build's memory cgroup, of cgroup version. */
static struct sandbox_cgroup *fake_cgroup(int version)
{
    struct sandbox_cgroup *cg = xcalloc(1, sizeof(*cg));
    cg->dir[CTL_MEMORY] = xstrdup("/tmp/debate-cgroup-unit-XXXXXX");
    cg->version[CTL_MEMORY] = version;
    if (mkdtemp(cg->dir[CTL_MEMORY]) == NULL)
        harness_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
    return cg;
}

static void set_file(struct sandbox_cgroup *cg, const char *name, const char *value)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", cg->dir[CTL_MEMORY], name);
    CHECK_INT(write_file_atomic(path, value, strlen(value), 0644), 0);
}

static void remove_fake(struct sandbox_cgroup *cg)
{
    _cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", cg->dir[CTL_MEMORY]);
    if (system(cmd) != 0)
        harness_fail(__FILE__, __LINE__, "cannot remove %s", cg->dir[CTL_MEMORY]);
    free(cg->dir[CTL_MEMORY]);
    free(cg);
}

TEST(v2_memory_peak_is_the_kernels_own_when_it_keeps_one)
{
    struct sandbox_cgroup *cg = fake_cgroup(2);
    set_file(cg, "memory.peak", "734003200\n");
    set_file(cg, "memory.current", "1048576\n");
    cg->memory_sampled = !v2_keeps_memory_peak(cg->dir[CTL_MEMORY]); /* as sandbox_cgroup_create decides */
    CHECK(!cg->memory_sampled);
    sandbox_cgroup_memory_sample(cg);
    CHECK_INT(sandbox_cgroup_memory_peak(cg), 734003200);
    remove_fake(cg);
}

TEST(v2_memory_peak_is_the_largest_sample_before_linux_5_19)
{
    struct sandbox_cgroup *cg = fake_cgroup(2);
    cg->memory_sampled = !v2_keeps_memory_peak(cg->dir[CTL_MEMORY]);
    CHECK(cg->memory_sampled);
    set_file(cg, "memory.current", "5000\n");
    sandbox_cgroup_memory_sample(cg);
    set_file(cg, "memory.current", "3000\n");
    sandbox_cgroup_memory_sample(cg);
    CHECK_INT(sandbox_cgroup_memory_peak(cg), 5000);
    /* the charge when it is read counts too */
    set_file(cg, "memory.current", "7000\n");
    CHECK_INT(sandbox_cgroup_memory_peak(cg), 7000);
    remove_fake(cg);
}

TEST(v1_memory_peak_is_max_usage_in_bytes)
{
    struct sandbox_cgroup *cg = fake_cgroup(1);
    set_file(cg, "memory.max_usage_in_bytes", "268435456\n");
    set_file(cg, "memory.usage_in_bytes", "4096\n");
    CHECK_INT(sandbox_cgroup_memory_peak(cg), 268435456);
    remove_fake(cg);
}

TEST(an_unreadable_memory_peak_is_unknown)
{
    struct sandbox_cgroup *cg = fake_cgroup(1);
    CHECK_INT(sandbox_cgroup_memory_peak(cg), 0);
    remove_fake(cg);
}
