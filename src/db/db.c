#include "db/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/migrate.h"
#include "log.h"
#include "util.h"
#include "banned.h"

int db_open(struct db *db, const struct config *cfg, unsigned flags, char *err, size_t errlen)
{
    memset(db, 0, sizeof(*db));
    db->statement_timeout_ms = cfg->db_statement_timeout_ms;
    db->own_cluster = (flags & DB_OPEN_OWN) != 0;
    if (cfg->database_url[0] == '\0') {
        db->embedded = true;
        if (embedded_start(&db->pg, cfg, err, errlen) < 0)
            goto fail;
        db->conninfo = embedded_conninfo(&db->pg);
    } else {
        db->conninfo = xstrdup(cfg->database_url);
    }
    db->pool = db_pool_new(db->conninfo, cfg->db_pool_size, cfg->db_pool_overflow, cfg->db_statement_timeout_ms);

    PGconn *c = NULL;
    for (int attempt = 0;; attempt++) {
        c = db_connect(db->conninfo, cfg->db_statement_timeout_ms, err, errlen);
        if (c != NULL || !(flags & DB_OPEN_WAIT) || attempt >= 30)
            break;
        if (attempt == 0)
            log_warnx("%s; retrying for 30 seconds", err);
        sleep(1);
    }
    if (c == NULL) {
        /* An adopted cluster we cannot reach is not ours to stop. */
        if (db->embedded && db->pg.adopted)
            db->own_cluster = false;
        goto fail;
    }
    if (flags & DB_OPEN_MIGRATE) {
        int applied;
        enum db_status st = migrate_run(c, &applied, err, errlen);
        PQfinish(c);
        if (st != DB_OK)
            goto fail;
        if (applied == 0)
            log_infox("database schema is current (version %d)", migrate_latest_version());
    } else {
        PQfinish(c);
    }
    return 0;
fail:
    db_close(db);
    return -1;
}

void db_close(struct db *db)
{
    db_pool_free(db->pool);
    db->pool = NULL;
    if (db->embedded) {
        char err[1024];
        if (embedded_stop(&db->pg, db->own_cluster, err, sizeof(err)) < 0)
            log_warnx("stopping the embedded PostgreSQL: %s", err);
        embedded_release(&db->pg);
    }
    free(db->conninfo);
    memset(db, 0, sizeof(*db));
}

void db_forget_cluster(struct db *db)
{
    db->own_cluster = false;
    db->pg.started = false;
}

int db_grant_client(struct db *db, gid_t gid, char *err, size_t errlen)
{
    if (!db->embedded || db->pg.user == NULL)
        return 0; /* a cluster elsewhere, or one of our own user: nothing to open */
    return embedded_grant(&db->pg, gid, err, errlen);
}
