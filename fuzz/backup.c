/*
 * The backup manifest, read as backup_prune reads it: the input is the
 * manifest of the one backup set in a scratch backup directory, beside a
 * dump and its checksum file, past the retention window so that prune
 * verifies the set to decide whether it is the newest good one. A
 * manifest that vouches for the dump keeps the set; any other deletes it.
 * The input is also the restore test's record (restore-test.json), which
 * /ready and /metrics read through backup_last_restore_test.
 */
#include "fuzz.h"

#include <unistd.h>

#include "config.h"
#include "db/backup.h"
#include "digest.h"
#include "log.h"
#include "banned.h"

#define STAMP "20260101T020000Z"
#define SET "debate-" STAMP
#define DUMP "PGDMP fuzz\n"
#define NOW 1767232800LL /* 2026-01-01T02:00:00Z */

static struct config cfg;

static void cleanup(void)
{
    _cleanup_free_ char *lock = xasprintf("%s/.lock", cfg.backup_dir);
    unlink(lock);
    rmdir(cfg.backup_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    config_init(&cfg);
    free(cfg.backup_dir);
    cfg.backup_dir = xasprintf("%s/debate-fuzz-backup-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    fuzz_require(mkdtemp(cfg.backup_dir) != NULL);
    atexit(cleanup);
    log_set_level(LOG_ERROR); /* "not usable", "deleting": one each run */
    return 0;
}

static char *write_in(const char *name, const void *data, size_t len)
{
    char *path = xasprintf("%s/%s", cfg.backup_dir, name);
    fuzz_require(write_file_atomic(path, data, len, 0600) == 0);
    return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char sha[65];
    sha256_hex(DUMP, strlen(DUMP), sha);
    _cleanup_free_ char *sum = xasprintf("%s  " SET ".dump\n", sha);
    _cleanup_free_ char *dump = write_in(SET ".dump", DUMP, strlen(DUMP));
    _cleanup_free_ char *sha_file = write_in(SET ".dump.sha256", sum, strlen(sum));
    _cleanup_free_ char *manifest = write_in(SET ".manifest.json", data, size);
    _cleanup_free_ char *record = write_in("restore-test.json", data, size);
    int deleted = -1;
    char err[1024] = "";
    fuzz_require(backup_prune(&cfg, NOW + 100 * 86400LL, &deleted, err, sizeof(err)) == 0);
    fuzz_require(deleted == 0 || deleted == 1);
    fuzz_require((access(manifest, F_OK) == 0) == (deleted == 0));
    backup_last_restore_test(&cfg);
    unlink(dump);
    unlink(sha_file);
    unlink(manifest);
    unlink(record);
    return 0;
}
