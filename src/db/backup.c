#include "db/backup.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "util.h"
#include "banned.h"

long long backup_last_restore_test(const struct config *cfg)
{
    _cleanup_free_ char *path = xasprintf("%s/restore-test.json", cfg->backup_dir);
    json_error_t e;
    json_t *doc = json_load_file(path, 0, &e);
    if (doc == NULL)
        return 0;
    json_int_t t = json_integer_value(json_object_get(doc, "last_success"));
    json_decref(doc);
    return (long long)t;
}

/* Placeholder bodies until the backup module lands in this change. */
int backup_run(const struct config *cfg, struct db *db, long long now, char *err, size_t errlen)
{
    (void)cfg;
    (void)db;
    (void)now;
    snprintf(err, errlen, "backups are not implemented yet");
    return -1;
}

int backup_prune(const struct config *cfg, long long now, int *deleted, char *err, size_t errlen)
{
    (void)cfg;
    (void)now;
    *deleted = 0;
    snprintf(err, errlen, "backups are not implemented yet");
    return -1;
}

int backup_restore_test(const struct config *cfg, struct db *db, char *err, size_t errlen)
{
    (void)cfg;
    (void)db;
    snprintf(err, errlen, "backups are not implemented yet");
    return -1;
}
