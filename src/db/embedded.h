/*
 * The embedded PostgreSQL cluster: with no database_url configured, debate
 * runs a private cluster under DATA_DIR/pg (initdb at first use, a unix
 * socket in DATA_DIR/pg/run, no TCP listener, trust authentication over
 * that private socket). When debate runs as root the cluster runs as
 * embedded_db_user (PostgreSQL refuses to run as root).
 *
 * The socket is made 0777 and its directory (DATA_DIR/pg/run, the
 * cluster user's, 0700) is the gate: embedded_grant opens the directory
 * to one more group, the one serve's unprivileged front door runs in.
 *
 * A cluster left running by a process that died (kill -9) is adopted; a
 * stale postmaster.pid whose process is gone or is not a postgres is
 * removed before starting.
 *
 * Errors: functions return 0, or -1 with a message in err.
 */
#ifndef DEBATE_DB_EMBEDDED_H
#define DEBATE_DB_EMBEDDED_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

struct embedded_pg {
    char *bindir;
    char *root;     /* DATA_DIR/pg */
    char *datadir;  /* DATA_DIR/pg/data */
    char *sockdir;  /* DATA_DIR/pg/run */
    char *logfile;  /* DATA_DIR/pg/postgres.log */
    const char *user; /* the OS user running postgres, or NULL */
    bool started;   /* running because of this process: started or adopted */
    bool adopted;   /* it was already running (left by a server that died, or a live one) */
    bool created;   /* initdb ran in this process */
};

/* Finds pg_ctl's directory: pg_bindir, else the newest /usr/lib/postgresql/N/bin. */
char *embedded_find_bindir(const struct config *cfg, char *err, size_t errlen);

/*
 * Makes sure the cluster exists and runs. *started tells whether this call
 * started (or adopted) it. Returns 0 or -1.
 */
int embedded_start(struct embedded_pg *pg, const struct config *cfg, char *err, size_t errlen);
/*
 * Stops the cluster (fast shutdown, waits) if this process started it, or
 * if it adopted it and stop_adopted is set (serve owns the cluster; a
 * command-line tool running beside a live server must leave it alone).
 */
int embedded_stop(struct embedded_pg *pg, bool stop_adopted, char *err, size_t errlen);
/*
 * Lets processes of group gid connect: DATA_DIR/pg searchable (0711), the
 * socket directory group gid and 0750. Call as root. Returns 0 or -1.
 */
int embedded_grant(struct embedded_pg *pg, gid_t gid, char *err, size_t errlen);
void embedded_release(struct embedded_pg *pg);

/* The libpq connection string for the cluster (malloc'd). */
char *embedded_conninfo(const struct embedded_pg *pg);

#endif
