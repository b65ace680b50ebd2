#include "db/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "banned.h"

/* A constant key for pg_advisory_lock: "debate" in ASCII, then 1. */
#define MIGRATION_LOCK_KEY "110414178583553"

struct migration {
    int version;
    const char *name;
    const char *sql;
};

static const struct migration migrations[] = {
    {1, "builds",
     "CREATE TYPE build_status AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled');\n"
     "CREATE TABLE builds (\n"
     "    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),\n"
     "    config_hash text NOT NULL CHECK (config_hash ~ '^[0-9a-f]{64}$'),\n"
     "    build_key text NOT NULL CHECK (build_key ~ '^[0-9a-f]{64}$'),\n"
     "    key_parts jsonb NOT NULL DEFAULT '{}',\n"
     "    status build_status NOT NULL DEFAULT 'queued',\n"
     "    stage text NOT NULL DEFAULT 'queued',\n"
     "    progress smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),\n"
     "    recipe jsonb NOT NULL,\n"
     "    lock jsonb,\n"
     "    iso_sha256 text CHECK (iso_sha256 ~ '^[0-9a-f]{64}$'),\n"
     "    iso_size bigint CHECK (iso_size >= 0),\n"
     "    error_code text,\n"
     "    error_message text,\n"
     "    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),\n"
     "    max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts > 0),\n"
     "    lease_owner text,\n"
     "    lease_expires_at timestamptz,\n"
     "    cancel_token_hash bytea NOT NULL CHECK (length(cancel_token_hash) = 32),\n"
     "    cancel_requested boolean NOT NULL DEFAULT false,\n"
     "    client text,\n"
     "    created_at timestamptz NOT NULL DEFAULT now(),\n"
     "    updated_at timestamptz NOT NULL DEFAULT now(),\n"
     "    started_at timestamptz,\n"
     "    finished_at timestamptz,\n"
     "    CHECK (status <> 'succeeded' OR (iso_sha256 IS NOT NULL AND iso_size IS NOT NULL)),\n"
     "    CHECK (status <> 'running' OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))\n"
     ");\n"
     "-- The cache: the newest succeeded build for a key.\n"
     "CREATE INDEX builds_cache ON builds (build_key, finished_at DESC) WHERE status = 'succeeded';\n"
     "-- Identical submissions in flight merge: one active build per key.\n"
     "CREATE UNIQUE INDEX builds_active_key ON builds (build_key) WHERE status IN ('queued', 'running');\n"
     "-- The queue: the oldest queued build first.\n"
     "CREATE INDEX builds_queue ON builds (created_at, id) WHERE status = 'queued';\n"
     "-- Expired leases, for the sweep.\n"
     "CREATE INDEX builds_leases ON builds (lease_expires_at) WHERE status = 'running';\n"
     "-- Listing, newest first, keyset pagination.\n"
     "CREATE INDEX builds_list ON builds (created_at DESC, id DESC);\n"
     "CREATE INDEX builds_recipe ON builds (config_hash, created_at DESC);\n"},
    {2, "build service: events, artifacts, job kinds",
     "ALTER TABLE builds ADD COLUMN kind text NOT NULL DEFAULT 'build' CHECK (kind IN ('build', 'noop'));\n"
     "ALTER TABLE builds ADD COLUMN lock_hash text CHECK (lock_hash ~ '^[0-9a-f]{64}$');\n"
     "-- The build log: progress events and output lines, numbered per build (SSE ids).\n"
     "CREATE TABLE build_events (\n"
     "    build_id uuid NOT NULL REFERENCES builds (id) ON DELETE CASCADE,\n"
     "    seq bigint NOT NULL CHECK (seq > 0),\n"
     "    kind text NOT NULL CHECK (kind IN ('log', 'progress')),\n"
     "    body text NOT NULL,\n"
     "    at timestamptz NOT NULL DEFAULT now(),\n"
     "    PRIMARY KEY (build_id, seq)\n"
     ");\n"
     "-- The artifact store's index: one row per ISO in it, for verification and GC.\n"
     "CREATE TABLE artifacts (\n"
     "    sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),\n"
     "    size bigint NOT NULL CHECK (size >= 0),\n"
     "    created_at timestamptz NOT NULL DEFAULT now(),\n"
     "    last_download_at timestamptz NOT NULL DEFAULT now()\n"
     ");\n"
     "CREATE INDEX artifacts_lru ON artifacts (last_download_at);\n"
     "CREATE INDEX builds_iso ON builds (iso_sha256) WHERE iso_sha256 IS NOT NULL;\n"},
    {3, "boot check",
     "-- Asked for by the submission; the verdict ({result, bios, uefi, seconds}) and the console once it ran.\n"
     "ALTER TABLE builds ADD COLUMN boot_check boolean NOT NULL DEFAULT false;\n"
     "ALTER TABLE builds ADD COLUMN boot_verdict jsonb;\n"
     "ALTER TABLE builds ADD COLUMN boot_log text;\n"
     "-- A submission that asks for a boot check merges only into a build in flight that checks, and the\n"
     "-- other way round: one active build per key and boot_check.\n"
     "DROP INDEX builds_active_key;\n"
     "CREATE UNIQUE INDEX builds_active_key ON builds (build_key, boot_check) WHERE status IN ('queued', 'running');\n"},
    {4, "builder identities, rebuilds that verify",
     "-- The workers that run, with what they build: a build is claimed only by a worker of its identity.\n"
     "CREATE TABLE workers (\n"
     "    name text PRIMARY KEY,\n"
     "    arch text NOT NULL,\n"
     "    builder text NOT NULL,\n"
     "    tools text NOT NULL CHECK (tools ~ '^[0-9a-f]{64}$'),\n"
     "    started_at timestamptz NOT NULL DEFAULT now(),\n"
     "    seen_at timestamptz NOT NULL DEFAULT now()\n"
     ");\n"
     "CREATE INDEX workers_seen ON workers (seen_at);\n"
     "-- The identity a build needs (from its key); NULL: any worker (the no-op jobs of the queue tests).\n"
     "ALTER TABLE builds ADD COLUMN arch text;\n"
     "ALTER TABLE builds ADD COLUMN builder text;\n"
     "ALTER TABLE builds ADD COLUMN tools text;\n"
     "-- Builds from before: the identity their key names (what made them, or will make them).\n"
     "UPDATE builds SET arch = 'amd64', builder = key_parts->>'builder', tools = key_parts->>'tools' "
     "WHERE kind = 'build' AND key_parts ? 'builder' AND key_parts ? 'tools';\n"
     "-- The worker that recorded the outcome.\n"
     "ALTER TABLE builds ADD COLUMN built_by text;\n"
     "-- A rebuild that verifies a succeeded build: the build, and the worker it would rather not run on.\n"
     "ALTER TABLE builds ADD COLUMN verify_of uuid REFERENCES builds (id) ON DELETE CASCADE;\n"
     "ALTER TABLE builds ADD COLUMN verify_avoid text;\n"
     "-- On the verified build: the newest rebuild's verdict ({result, build, sha256, worker, at, error}).\n"
     "ALTER TABLE builds ADD COLUMN verification jsonb;\n"
     "CREATE UNIQUE INDEX builds_active_verify ON builds (verify_of) WHERE status IN ('queued', 'running');\n"
     "-- A rebuild neither merges with submissions nor serves cache hits.\n"
     "DROP INDEX builds_active_key;\n"
     "CREATE UNIQUE INDEX builds_active_key ON builds (build_key, boot_check) "
     "WHERE status IN ('queued', 'running') AND verify_of IS NULL;\n"
     "DROP INDEX builds_cache;\n"
     "CREATE INDEX builds_cache ON builds (build_key, finished_at DESC) WHERE status = 'succeeded' AND verify_of IS NULL;\n"
     "-- A rebuild that ends gives its build the verdict, whoever ended it (its worker, the sweep, a cancel).\n"
     "CREATE FUNCTION builds_verdict() RETURNS trigger LANGUAGE plpgsql AS $$\n"
     "BEGIN\n"
     "    UPDATE builds o SET verification = jsonb_build_object(\n"
     "        'result', CASE WHEN NEW.status <> 'succeeded' THEN NEW.status::text\n"
     "                       WHEN NEW.iso_sha256 = o.iso_sha256 THEN 'match' ELSE 'differs' END,\n"
     "        'build', NEW.id, 'sha256', NEW.iso_sha256, 'worker', NEW.built_by,\n"
     "        'at', to_char(NEW.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),\n"
     "        'error', NEW.error_message), updated_at = now()\n"
     "    WHERE o.id = NEW.verify_of;\n"
     "    RETURN NULL;\n"
     "END $$;\n"
     "CREATE TRIGGER builds_verdict AFTER UPDATE OF status ON builds FOR EACH ROW\n"
     "    WHEN (NEW.verify_of IS NOT NULL AND NEW.status IN ('succeeded', 'failed', 'cancelled')\n"
     "          AND OLD.status IS DISTINCT FROM NEW.status)\n"
     "    EXECUTE FUNCTION builds_verdict();\n"},
};

int migrate_latest_version(void)
{
    return migrations[ARRAY_SIZE(migrations) - 1].version;
}

enum db_status migrate_current_version(PGconn *c, int *version, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    enum db_status st = db_check(c, r, err, errlen);
    if (st == DB_OK)
        *version = atoi(PQgetvalue(r, 0, 0));
    else if (strstr(err, "does not exist") != NULL) { /* a database debate never touched */
        *version = 0;
        st = DB_OK;
    }
    PQclear(r);
    return st;
}

static enum db_status apply(PGconn *c, const struct migration *m, char *err, size_t errlen)
{
    enum db_status st = db_exec(c, "BEGIN", err, errlen);
    if (st != DB_OK)
        return st;
    if ((st = db_exec(c, m->sql, err, errlen)) != DB_OK)
        goto fail;
    char v[16];
    snprintf(v, sizeof(v), "%d", m->version);
    const char *params[] = {v, m->name};
    PGresult *r = PQexecParams(c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, NULL, params,
                               NULL, NULL, 0);
    st = db_check(c, r, err, errlen);
    PQclear(r);
    if (st != DB_OK)
        goto fail;
    return db_exec(c, "COMMIT", err, errlen);
fail:;
    char ignored[64];
    db_exec(c, "ROLLBACK", ignored, sizeof(ignored));
    return st;
}

static enum db_status migrate_locked(PGconn *c, int *applied, char *err, size_t errlen)
{
    enum db_status st = db_exec(c,
                                "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
                                "    version integer PRIMARY KEY,\n"
                                "    name text NOT NULL,\n"
                                "    applied_at timestamptz NOT NULL DEFAULT now())",
                                err, errlen);
    int current = 0;
    if (st != DB_OK || (st = migrate_current_version(c, &current, err, errlen)) != DB_OK)
        return st;
    if (current > migrate_latest_version()) {
        snprintf(err, errlen,
                 "the database schema is at version %d, newer than this debate knows (%d): upgrade debate, or "
                 "point it at another database",
                 current, migrate_latest_version());
        return DB_CONFLICT;
    }
    for (size_t i = 0; i < ARRAY_SIZE(migrations); i++) {
        if (migrations[i].version <= current)
            continue;
        if ((st = apply(c, &migrations[i], err, errlen)) != DB_OK) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, " (in migration %d \"%s\")", migrations[i].version, migrations[i].name);
            return st;
        }
        log_infox("applied database migration %d \"%s\"", migrations[i].version, migrations[i].name);
        (*applied)++;
    }
    return DB_OK;
}

enum db_status migrate_run(PGconn *c, int *applied, char *err, size_t errlen)
{
    *applied = 0;
    enum db_status st = db_exec(c, "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")", err, errlen);
    if (st != DB_OK)
        return st;
    st = migrate_locked(c, applied, err, errlen);
    char ignored[64];
    db_exec(c, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")", ignored, sizeof(ignored));
    return st;
}
