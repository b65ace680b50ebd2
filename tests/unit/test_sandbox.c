/*
 * The sandbox's C interface: reading results back without following links
 * out of the build disk, and sandbox_run's verdicts for payloads that are C
 * functions (exit codes, a planted link, a wall-time limit, a cancel, the
 * peaks of memory and disk use).
 * The escape corpus (tests/sandbox/) attacks the same sandbox through
 * `debate sandbox`. sandbox_run needs root; as another user its tests are
 * skipped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/sandbox.h"
#include "harness.h"
#include "util.h"

static char *scratch(void)
{
    char *dir = xstrdup("/tmp/debate-sandbox-unit-XXXXXX");
    if (mkdtemp(dir) == NULL)
        harness_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
    return dir;
}

static void remove_dir(const char *dir)
{
    _cleanup_free_ char *cmd = xasprintf("rm -rf --one-file-system '%s'", dir);
    if (system(cmd) != 0)
        harness_fail(__FILE__, __LINE__, "cannot remove %s", dir);
}

TEST(open_beneath_refuses_every_way_out)
{
    _cleanup_free_ char *dir = scratch();
    _cleanup_free_ char *file = xasprintf("%s/file", dir), *sub = xasprintf("%s/sub", dir);
    _cleanup_free_ char *link = xasprintf("%s/link", dir), *inner = xasprintf("%s/sub/up", dir);
    CHECK_INT(write_file_atomic(file, "x", 1, 0644), 0);
    CHECK_INT(mkdir(sub, 0755), 0);
    CHECK_INT(symlink("/etc/passwd", link), 0);
    CHECK_INT(symlink("../file", inner), 0);
    int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK(dfd >= 0);
    int fd = sandbox_open_beneath(dfd, "file", O_RDONLY);
    CHECK(fd >= 0);
    close(fd);
    CHECK_INT(sandbox_open_beneath(dfd, "link", O_RDONLY), -1);
    CHECK_INT(errno, ELOOP);
    CHECK_INT(sandbox_open_beneath(dfd, "sub/up", O_RDONLY), -1); /* even a link that stays inside */
    CHECK_INT(errno, ELOOP);
    CHECK_INT(sandbox_open_beneath(dfd, "../etc/passwd", O_RDONLY), -1);
    CHECK_INT(errno, EXDEV);
    CHECK_INT(sandbox_open_beneath(dfd, "/etc/passwd", O_RDONLY), -1);
    CHECK_INT(errno, EXDEV);
    CHECK_INT(sandbox_open_beneath(dfd, "sub/../../etc/passwd", O_RDONLY), -1);
    close(dfd);
    remove_dir(dir);
}

static int exit_three(void *arg)
{
    (void)arg;
    return 3;
}

static int plant_link(void *arg)
{
    (void)arg;
    /* the build disk is the working directory */
    return symlink("/etc/shadow", "image.iso") == 0 ? 0 : 1;
}

static int write_result(void *arg)
{
    (void)arg;
    return write_file_atomic("result", "hello from inside", 17, 0644) == 0 ? 0 : 1;
}

static int sleep_long(void *arg)
{
    (void)arg;
    sleep(30);
    return 0;
}

static int do_nothing(void *arg)
{
    (void)arg;
    return 0;
}

#define MIB (1ull << 20)

/* Touches 64 MiB of memory, then writes 32 MiB to the build disk (the working directory). */
static int fill_memory_and_disk(void *arg)
{
    (void)arg;
    size_t n = 64 * MIB;
    volatile char *mem = xmalloc(n);
    for (size_t i = 0; i < n; i += 4096)
        mem[i] = 1; /* volatile: every page is really touched */
    int fd = open("big", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return 1;
    for (size_t off = 0; off < 32 * MIB; off += MIB)
        if (write(fd, (const char *)mem + off, MIB) != (ssize_t)MIB)
            return 1;
    return close(fd) == 0 ? 0 : 1;
}

/* As fill_memory_and_disk, then takes memory until the memory limit ends it. */
static int fill_then_exhaust_memory(void *arg)
{
    if (fill_memory_and_disk(arg) != 0)
        return 1;
    for (;;) {
        volatile char *more = xmalloc(MIB);
        for (size_t i = 0; i < MIB; i += 4096)
            more[i] = 1;
    }
}

static int read_back(int diskfd, void *arg, char *out, size_t outlen, char *err, size_t errlen)
{
    const char *name = arg;
    int fd = sandbox_open_beneath(diskfd, name, O_RDONLY);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", name, strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, out, outlen - 1);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    return 0;
}

/* sandbox_run makes namespaces, mounts and cgroups: root only. */
static void need_root(void)
{
    if (geteuid() != 0)
        SKIP("sandbox_run needs root");
}

static volatile sig_atomic_t never, already = 1;

static int run_limited(int (*payload)(void *), const char *collect_name, struct sandbox_limits limits,
                       volatile sig_atomic_t *cancel, struct sandbox_result *res)
{
    _cleanup_free_ char *dir = scratch();
    struct sandbox_opts o = {.workdir = dir, .limits = limits, .id_base = 100000,
                             .env = sandbox_base_env, .payload = payload, .cancel = cancel};
    if (collect_name != NULL) {
        o.collect = read_back;
        o.collect_arg = (void *)collect_name;
    }
    char err[1024];
    int rc = sandbox_run(&o, res, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "sandbox_run: %s\n", err);
    remove_dir(dir);
    return rc;
}

static int run(int (*payload)(void *), const char *collect_name, unsigned wall, volatile sig_atomic_t *cancel,
               struct sandbox_result *res)
{
    return run_limited(payload, collect_name, (struct sandbox_limits){256, 64, 60, 64, wall}, cancel, res);
}

TEST(payload_exit_code_is_reported)
{
    need_root();
    struct sandbox_result res;
    CHECK_INT(run(exit_three, NULL, 60, &never, &res), 0);
    CHECK_INT(res.cause, SANDBOX_EXITED);
    CHECK_INT(res.status, 3);
}

TEST(results_are_read_back)
{
    need_root();
    struct sandbox_result res;
    CHECK_INT(run(write_result, "result", 60, &never, &res), 0);
    CHECK_INT(res.cause, SANDBOX_OK);
    CHECK_STR(res.collected, "hello from inside");
}

TEST(a_planted_link_is_not_followed_on_the_way_back)
{
    need_root();
    struct sandbox_result res;
    CHECK_INT(run(plant_link, "image.iso", 60, &never, &res), 0);
    CHECK_INT(res.cause, SANDBOX_COLLECT);
    CHECK(strstr(res.message, "Too many levels of symbolic links") != NULL);
    CHECK(strstr(res.collected, "root:") == NULL);
}

TEST(wall_time_limit_kills_the_payload)
{
    need_root();
    struct sandbox_result res;
    CHECK_INT(run(sleep_long, NULL, 1, &never, &res), 0);
    CHECK_INT(res.cause, SANDBOX_WALL);
    CHECK_STR(res.message, "wall-time limit of 1 s reached");
}

TEST(cancel_kills_the_payload)
{
    need_root();
    struct sandbox_result res;
    CHECK_INT(run(sleep_long, NULL, 60, &already, &res), 0);
    CHECK_INT(res.cause, SANDBOX_CANCELLED);
}

TEST(peaks_of_memory_and_disk_are_reported)
{
    need_root();
    struct sandbox_result res;
    CHECK_INT(run(fill_memory_and_disk, NULL, 60, &never, &res), 0);
    CHECK_INT(res.cause, SANDBOX_OK);
    CHECK(res.memory_peak_bytes >= 64 * MIB);
    CHECK(res.memory_peak_bytes < 1024 * MIB);
    CHECK(res.disk_peak_bytes >= 32 * MIB);
    CHECK(res.disk_peak_bytes < 1024 * MIB);
}

TEST(peaks_are_reported_when_a_limit_ends_the_build)
{
    need_root();
    struct sandbox_result res;
    CHECK_INT(run(fill_then_exhaust_memory, NULL, 60, &never, &res), 0);
    CHECK_INT(res.cause, SANDBOX_MEMORY);
    CHECK(res.memory_peak_bytes >= 64 * MIB);
    CHECK(res.memory_peak_bytes < 1024 * MIB);
    CHECK(res.disk_peak_bytes >= 32 * MIB);
    CHECK(res.disk_peak_bytes < 1024 * MIB);
}

/*
 * Only what the build wrote counts: not what the empty file system already
 * takes or holds back from writers (ext4 holds back 16 MiB of a 1 GiB disk).
 */
TEST(a_build_that_writes_nothing_has_a_small_disk_peak)
{
    need_root();
    struct sandbox_result res;
    CHECK_INT(run_limited(do_nothing, NULL, (struct sandbox_limits){256, 64, 60, 1024, 60}, &never, &res), 0);
    CHECK_INT(res.cause, SANDBOX_OK);
    CHECK(res.disk_peak_bytes < 8 * MIB);
    CHECK(res.memory_peak_bytes > 0);
}

/* The first child of this process that /proc shows (the sandbox's supervisor), or -1. */
static pid_t find_child(void)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return -1;
    pid_t found = -1;
    struct dirent *e;
    while (found < 0 && (e = readdir(d)) != NULL) {
        char path[300], buf[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *close_paren = strrchr(buf, ')');
        int ppid;
        if (close_paren != NULL && sscanf(close_paren + 2, "%*c %d", &ppid) == 1 && ppid == getpid())
            found = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return found;
}

static volatile sig_atomic_t stop_then_cancel;

/* Stops the supervisor once the payload runs, as a hung one would be, then cancels. */
static void *freeze_supervisor(void *arg)
{
    (void)arg;
    pid_t sup = -1;
    for (int i = 0; i < 200 && sup < 0; i++) {
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
        sup = find_child();
    }
    sleep(1);
    if (sup > 0)
        kill(sup, SIGSTOP);
    stop_then_cancel = 1;
    return NULL;
}

TEST(a_supervisor_that_stops_answering_is_killed_after_a_cancel)
{
    need_root();
    alarm(30); /* past the harness's 10 s: the grace period after a cancel is 10 s */
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, freeze_supervisor, NULL), 0);
    struct sandbox_result res;
    CHECK_INT(run(sleep_long, NULL, 600, &stop_then_cancel, &res), 0);
    pthread_join(t, NULL);
    CHECK_INT(res.cause, SANDBOX_CANCELLED);
    CHECK(strstr(res.message, "did not answer and was killed") != NULL);
}

TEST(unset_limits_are_refused)
{
    struct sandbox_opts o = {.workdir = "/nonexistent", .limits = {256, 0, 60, 64, 60}, .payload = exit_three};
    struct sandbox_result res;
    char err[256];
    CHECK_INT(sandbox_run(&o, &res, err, sizeof(err)), -1);
    CHECK(strstr(err, "every sandbox limit must be set") != NULL);
}
