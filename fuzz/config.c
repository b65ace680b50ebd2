/*
 * The configuration file (config_load), written to a memfd that
 * config_load reads by its /proc/self/fd path, as it reads any file. With
 * no DEBATE_* variable set, only the file decides. A file it accepts
 * leaves every path absolute and the worker count in range; one it
 * refuses says why.
 */
#include "fuzz.h"

#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "banned.h"

extern char **environ;

static int fd = -1;
static char path[64];
static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    for (char **e = environ; *e != NULL;) {
        if (strncmp(*e, "DEBATE_", 7) != 0) {
            e++;
            continue;
        }
        _cleanup_free_ char *name = xstrndup(*e, strcspn(*e, "="));
        unsetenv(name); /* environ shifts down: look at *e again */
    }
    fd = memfd_create("debate.conf", 0);
    fuzz_require(fd >= 0);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    devnull = fopen("/dev/null", "we");
    fuzz_require(devnull != NULL);
    return 0;
}

static void check_loaded(const struct config *cfg)
{
    const char *const paths[] = {cfg->data_dir, cfg->backup_dir, cfg->cache_dir, cfg->artifact_dir};
    for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
        fuzz_require(paths[i][0] == '/');
    fuzz_require(cfg->tls_cert[0] == '\0' || cfg->tls_cert[0] == '/');
    fuzz_require(cfg->nworkers <= 256);
    fuzz_require(cfg->trusted_hosts.count > 0);
    config_print(cfg, devnull);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_require(ftruncate(fd, 0) == 0);
    fuzz_require(pwrite(fd, data, size, 0) == (ssize_t)size);
    struct config cfg;
    char err[4096] = "";
    config_init(&cfg);
    if (config_load(&cfg, path, err, sizeof(err)) == 0)
        check_loaded(&cfg);
    else
        fuzz_require(err[0] != '\0' && strchr(err, '\n') != NULL);
    config_release(&cfg);
    return 0;
}
