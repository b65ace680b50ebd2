#include "db/store.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "banned.h"

#define TS(col) "coalesce(to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '')"

/* The columns of struct build_record, in parse order. */
#define COLS                                                                                                           \
    "id::text, config_hash, build_key, status::text, stage, progress, recipe::text, lock::text, key_parts::text, "     \
    "coalesce(iso_sha256, ''), coalesce(iso_size, -1), error_code, error_message, attempts, max_attempts, "            \
    "lease_owner, cancel_requested, " TS("created_at") ", " TS("updated_at") ", " TS("started_at") ", "                \
    TS("finished_at") ", " TS("lease_expires_at") ", kind, coalesce(lock_hash, ''), boot_check, boot_verdict::text, "  \
    "coalesce(arch, ''), built_by, coalesce(verify_of::text, ''), verification::text, "                     \
    "EXISTS (SELECT 1 FROM builds v WHERE v.verify_of = builds.id AND v.status IN ('queued', 'running'))"

/* The same without the recipe and the lock (NULL): what the status routes show. */
#define COLS_BRIEF                                                                                                     \
    "id::text, config_hash, build_key, status::text, stage, progress, NULL::text, NULL::text, key_parts::text, "       \
    "coalesce(iso_sha256, ''), coalesce(iso_size, -1), error_code, error_message, attempts, max_attempts, "            \
    "lease_owner, cancel_requested, " TS("created_at") ", " TS("updated_at") ", " TS("started_at") ", "                \
    TS("finished_at") ", " TS("lease_expires_at") ", kind, coalesce(lock_hash, ''), boot_check, boot_verdict::text, "  \
    "coalesce(arch, ''), built_by, coalesce(verify_of::text, ''), verification::text, "                     \
    "EXISTS (SELECT 1 FROM builds v WHERE v.verify_of = builds.id AND v.status IN ('queued', 'running'))"

/* A lease is held by owner while it has not expired. */
#define HELD "id = $1::uuid AND status = 'running' AND lease_owner = $2 AND lease_expires_at > now()"

static const char *const statuses[] = {"queued", "running", "succeeded", "failed", "cancelled"};

void build_record_release(struct build_record *b)
{
    free(b->recipe);
    free(b->lock);
    free(b->key_parts);
    free(b->error_code);
    free(b->error_message);
    free(b->lease_owner);
    free(b->boot_verdict);
    free(b->built_by);
    free(b->verification);
    memset(b, 0, sizeof(*b));
}

static void copy_field(char *dst, size_t cap, PGresult *r, int row, int col)
{
    snprintf(dst, cap, "%s", PQgetvalue(r, row, col));
}

static char *dup_or_null(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : xstrdup(PQgetvalue(r, row, col));
}

static void parse_row(PGresult *r, int row, struct build_record *b)
{
    memset(b, 0, sizeof(*b));
    int i = 0;
    copy_field(b->id, sizeof(b->id), r, row, i++);
    copy_field(b->config_hash, sizeof(b->config_hash), r, row, i++);
    copy_field(b->build_key, sizeof(b->build_key), r, row, i++);
    copy_field(b->status, sizeof(b->status), r, row, i++);
    copy_field(b->stage, sizeof(b->stage), r, row, i++);
    b->progress = atoi(PQgetvalue(r, row, i++));
    b->recipe = dup_or_null(r, row, i++);
    b->lock = dup_or_null(r, row, i++);
    b->key_parts = dup_or_null(r, row, i++);
    copy_field(b->iso_sha256, sizeof(b->iso_sha256), r, row, i++);
    b->iso_size = atoll(PQgetvalue(r, row, i++));
    b->error_code = dup_or_null(r, row, i++);
    b->error_message = dup_or_null(r, row, i++);
    b->attempts = atoi(PQgetvalue(r, row, i++));
    b->max_attempts = atoi(PQgetvalue(r, row, i++));
    b->lease_owner = dup_or_null(r, row, i++);
    b->cancel_requested = PQgetvalue(r, row, i++)[0] == 't';
    copy_field(b->created_at, STORE_TIME_LEN, r, row, i++);
    copy_field(b->updated_at, STORE_TIME_LEN, r, row, i++);
    copy_field(b->started_at, STORE_TIME_LEN, r, row, i++);
    copy_field(b->finished_at, STORE_TIME_LEN, r, row, i++);
    copy_field(b->lease_expires_at, STORE_TIME_LEN, r, row, i++);
    copy_field(b->kind, sizeof(b->kind), r, row, i++);
    copy_field(b->lock_hash, sizeof(b->lock_hash), r, row, i++);
    b->boot_check = PQgetvalue(r, row, i++)[0] == 't';
    b->boot_verdict = dup_or_null(r, row, i++);
    copy_field(b->arch, sizeof(b->arch), r, row, i++);
    b->built_by = dup_or_null(r, row, i++);
    copy_field(b->verify_of, sizeof(b->verify_of), r, row, i++);
    b->verification = dup_or_null(r, row, i++);
    b->verifying = PQgetvalue(r, row, i++)[0] == 't';
}

static bool valid_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* Runs a statement with text parameters; on success *res holds the result. */
static enum db_status query(PGconn *c, const char *sql, int n, const char *const *params, PGresult **res, char *err,
                            size_t errlen)
{
    PGresult *r = db_exec_params(c, sql, n, params);
    enum db_status st = db_check(c, r, err, errlen);
    if (st != DB_OK) {
        PQclear(r);
        *res = NULL;
        return st;
    }
    *res = r;
    return DB_OK;
}

/* Runs a statement whose rows, if any, nobody reads. */
static enum db_status command(PGconn *c, const char *sql, int n, const char *const *params, char *err, size_t errlen)
{
    PGresult *r;
    enum db_status st = query(c, sql, n, params, &r, err, errlen);
    if (st == DB_OK)
        PQclear(r);
    return st;
}

/* Runs a statement returning at most one build row into out. */
static enum db_status query_one(PGconn *c, const char *sql, int n, const char *const *params, struct build_record *out,
                                char *err, size_t errlen)
{
    PGresult *r;
    enum db_status st = query(c, sql, n, params, &r, err, errlen);
    if (st != DB_OK)
        return st;
    if (PQntuples(r) == 0)
        st = DB_NOT_FOUND;
    else
        parse_row(r, 0, out);
    PQclear(r);
    return st;
}

static void hex32(char out[2 + 64 + 1], const uint8_t in[32])
{
    out[0] = '\\';
    out[1] = 'x';
    for (int i = 0; i < 32; i++) {
        out[2 + 2 * i] = "0123456789abcdef"[in[i] >> 4];
        out[3 + 2 * i] = "0123456789abcdef"[in[i] & 15];
    }
    out[66] = '\0';
}

/*
 * One try at a row that must be unique while in flight: insert_sql (an
 * INSERT ... ON CONFLICT DO NOTHING RETURNING COLS) queues a new one and
 * wakes the workers; when the conflict kept it out, active_sql reads the
 * one in flight, with *joined set. DB_NOT_FOUND when neither: the row in
 * flight ended between the two statements (try again), or the insert
 * chose no row.
 */
static enum db_status insert_or_join(PGconn *c, const char *insert_sql, int n_insert, const char *const *insert,
                                     const char *active_sql, int n_active, const char *const *active,
                                     struct build_record *out, bool *joined, char *err, size_t errlen)
{
    *joined = false;
    enum db_status st = query_one(c, insert_sql, n_insert, insert, out, err, errlen);
    if (st == DB_OK) {
        char ignored[64];
        db_exec(c, "NOTIFY debate_queue", ignored, sizeof(ignored));
        return DB_OK;
    }
    if (st != DB_NOT_FOUND)
        return st;
    st = query_one(c, active_sql, n_active, active, out, err, errlen);
    *joined = st == DB_OK;
    return st;
}

enum db_status store_build_submit(PGconn *c, const struct build_new *in, struct build_record *out, bool *merged,
                                  char *err, size_t errlen)
{
    char hash[67], attempts[16];
    hex32(hash, in->cancel_token_hash);
    snprintf(attempts, sizeof(attempts), "%d", in->max_attempts > 0 ? in->max_attempts : 3);
    const struct builder_id *id = in->identity;
    const char *ins[] = {in->config_hash, in->build_key, in->key_parts ? in->key_parts : "{}", in->recipe, in->lock,
                         hash, attempts, in->client, in->kind ? in->kind : "build", in->boot_check ? "t" : "f",
                         id ? id->arch : NULL, id ? id->builder : NULL, id ? id->tools : NULL};
    const char *key[] = {in->build_key, in->boot_check ? "t" : "f"};
    /* A build that finishes between the two statements frees the key: try again. */
    for (int tries = 0; tries < 3; tries++) {
        enum db_status st = insert_or_join(
            c,
            "INSERT INTO builds (config_hash, build_key, key_parts, recipe, lock, cancel_token_hash, max_attempts, "
            "client, kind, boot_check, arch, builder, tools) VALUES ($1, $2, $3::jsonb, $4::jsonb, $5::jsonb, "
            "$6::bytea, $7, $8, $9, $10::boolean, $11, $12, $13) ON CONFLICT (build_key, boot_check) "
            "WHERE status IN ('queued', 'running') AND verify_of IS NULL DO NOTHING RETURNING " COLS,
            13, ins,
            "SELECT " COLS " FROM builds WHERE build_key = $1 AND boot_check = $2::boolean "
            "AND status IN ('queued', 'running') AND verify_of IS NULL",
            2, key, out, merged, err, errlen);
        if (st != DB_NOT_FOUND)
            return st;
    }
    snprintf(err, errlen, "the build for this key kept changing state; try again");
    return DB_CONFLICT;
}

enum db_status store_build_find_cached(PGconn *c, const char *build_key, bool boot_checked,
                                       struct build_record *out, char *err, size_t errlen)
{
    const char *p[] = {build_key, boot_checked ? "t" : "f"};
    return query_one(c,
                     "SELECT " COLS " FROM builds WHERE build_key = $1 AND status = 'succeeded' AND verify_of IS NULL "
                     "AND (NOT $2::boolean OR boot_verdict IS NOT NULL) ORDER BY finished_at DESC LIMIT 1",
                     2, p, out, err, errlen);
}

enum db_status store_build_get_brief(PGconn *c, const char *id, struct build_record *out, char *err, size_t errlen)
{
    if (!valid_uuid(id))
        return DB_NOT_FOUND;
    const char *p[] = {id};
    return query_one(c, "SELECT " COLS_BRIEF " FROM builds WHERE id = $1::uuid", 1, p, out, err, errlen);
}

enum db_status store_build_find_active(PGconn *c, const char *build_key, bool boot_check, struct build_record *out,
                                       char *err, size_t errlen)
{
    const char *p[] = {build_key, boot_check ? "t" : "f"};
    return query_one(c,
                     "SELECT " COLS " FROM builds WHERE build_key = $1 AND boot_check = $2::boolean "
                     "AND status IN ('queued', 'running') AND verify_of IS NULL",
                     2, p, out, err, errlen);
}

enum db_status store_build_boot_log(PGconn *c, const char *id, char **log, char *err, size_t errlen)
{
    *log = NULL;
    if (!valid_uuid(id))
        return DB_NOT_FOUND;
    const char *p[] = {id};
    PGresult *r;
    enum db_status st =
        query(c, "SELECT boot_log FROM builds WHERE id = $1::uuid AND boot_log IS NOT NULL", 1, p, &r, err, errlen);
    if (st != DB_OK)
        return st;
    if (PQntuples(r) == 0)
        st = DB_NOT_FOUND;
    else
        *log = xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return st;
}

enum db_status store_build_find_previous(PGconn *c, const char *config_hash, const char *exclude_id,
                                         struct build_record *out, char *err, size_t errlen)
{
    const char *p[] = {config_hash, valid_uuid(exclude_id) ? exclude_id : NULL};
    return query_one(c,
                     "SELECT " COLS " FROM builds WHERE config_hash = $1 AND ($2::uuid IS NULL OR id <> $2::uuid) "
                     "AND verify_of IS NULL "
                     "ORDER BY created_at DESC LIMIT 1",
                     2, p, out, err, errlen);
}

enum db_status store_build_get(PGconn *c, const char *id, struct build_record *out, char *err, size_t errlen)
{
    if (!valid_uuid(id))
        return DB_NOT_FOUND;
    const char *p[] = {id};
    return query_one(c, "SELECT " COLS " FROM builds WHERE id = $1::uuid", 1, p, out, err, errlen);
}

enum db_status store_build_claim(PGconn *c, const char *owner, unsigned lease_s, struct build_record *out, char *err,
                                 size_t errlen)
{
    return store_build_claim_kind(c, owner, lease_s, NULL, out, err, errlen);
}

enum db_status store_build_claim_kind(PGconn *c, const char *owner, unsigned lease_s, const char *kind,
                                      struct build_record *out, char *err, size_t errlen)
{
    struct claim_filter f = {.kind = kind};
    return store_build_claim_for(c, owner, lease_s, &f, out, err, errlen);
}

static enum db_status update_held(PGconn *c, const char *sql, int n, const char *const *p, PGresult **r, char *err,
                                  size_t errlen);

/* How long a rebuild that verifies waits for another worker than the one that made its build. */
#define VERIFY_WAIT_S "60"
/* How long a build whose identity no live worker has waits before a worker of another identity takes it. */
#define TAKEOVER_S "30"
/* The host of a worker's name (host:pid:n). */
#define HOST(name) "split_part(" name ", ':', 1)"

/* Workers of the identity of row b (its arch, builder, tools) seen within $LIVE seconds. */
#define LIVE_OF(b, live)                                                                                               \
    "SELECT 1 FROM workers w WHERE w.arch = " b ".arch AND w.builder = " b ".builder AND w.tools = " b ".tools "        \
    "AND w.seen_at > now() - make_interval(secs => " live "::int)"

enum db_status store_build_claim_for(PGconn *c, const char *owner, unsigned lease_s, const struct claim_filter *f,
                                     struct build_record *out, char *err, size_t errlen)
{
    char lease[16], live[16];
    snprintf(lease, sizeof(lease), "%u", lease_s);
    snprintf(live, sizeof(live), "%u", f->live_s ? f->live_s : 3 * lease_s);
    const struct builder_id *id = f->identity;
    const char *p[] = {owner, lease, f->kind, id ? id->arch : NULL, id ? id->builder : NULL, id ? id->tools : NULL,
                       live};
    return query_one(
        c,
        "UPDATE builds SET status = 'running', attempts = attempts + 1, lease_owner = $1, "
        "lease_expires_at = now() + make_interval(secs => $2::int), started_at = coalesce(started_at, "
        "now()), stage = 'resolving', progress = 0, updated_at = now() "
        "WHERE id = (SELECT id FROM builds b WHERE status = 'queued' AND ($3::text IS NULL OR kind = $3) "
        "AND (b.tools IS NULL OR $6::text IS NULL OR (b.arch = $4 AND b.builder = $5 AND b.tools = $6) "
        /* a build whose identity no live worker has: taken, and keyed again for the taker's (not a rebuild) */
        "     OR (b.verify_of IS NULL AND b.arch = $4 AND b.updated_at < now() - interval '" TAKEOVER_S " seconds' "
        "         AND NOT EXISTS (" LIVE_OF("b", "$7") "))) "
        /* a rebuild: not on the host that made its build, nor on that very worker, while others can */
        "AND (b.verify_avoid IS NULL OR b.created_at < now() - interval '" VERIFY_WAIT_S " seconds' "
        "     OR " HOST("b.verify_avoid") " <> " HOST("$1") " "
        "     OR (NOT EXISTS (" LIVE_OF("b", "$7") " AND " HOST("w.name") " <> " HOST("b.verify_avoid") ") "
        "         AND (b.verify_avoid <> $1 OR NOT EXISTS (" LIVE_OF("b", "$7") " AND w.name <> $1)))) "
        "ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING " COLS,
        7, p, out, err, errlen);
}

enum db_status store_worker_seen(PGconn *c, const char *name, const struct builder_id *id, char *err, size_t errlen)
{
    const char *p[] = {name, id->arch, id->builder, id->tools};
    return command(c,
                              "INSERT INTO workers (name, arch, builder, tools) VALUES ($1, $2, $3, $4) "
                              "ON CONFLICT (name) DO UPDATE SET arch = $2, builder = $3, tools = $4, seen_at = now()",
                              4, p, err, errlen);
}

enum db_status store_worker_gone(PGconn *c, const char *name, char *err, size_t errlen)
{
    const char *p[] = {name};
    return command(c, "DELETE FROM workers WHERE name = $1", 1, p, err, errlen);
}

enum db_status store_workers_forget(PGconn *c, unsigned older_s, int *n, char *err, size_t errlen)
{
    char older[16];
    snprintf(older, sizeof(older), "%u", older_s);
    const char *p[] = {older};
    PGresult *r;
    *n = 0;
    enum db_status st = query(c, "DELETE FROM workers WHERE seen_at < now() - make_interval(secs => $1::int)", 1, p,
                              &r, err, errlen);
    if (st == DB_OK) {
        *n = atoi(PQcmdTuples(r));
        PQclear(r);
    }
    return st;
}

enum db_status store_build_rekey(PGconn *c, const char *id, const char *owner, const struct builder_id *to,
                                 const char *key_parts, const char *build_key, char *err, size_t errlen)
{
    const char *p[] = {id, owner, to->arch, to->builder, to->tools, key_parts, build_key};
    PGresult *r;
    enum db_status st = update_held(c,
                                    "UPDATE builds SET arch = $3, builder = $4, tools = $5, key_parts = $6::jsonb, "
                                    "build_key = $7, updated_at = now() WHERE " HELD " RETURNING 1",
                                    7, p, &r, err, errlen);
    if (st == DB_OK)
        PQclear(r);
    else if (st == DB_QUERY_ERROR && strstr(err, "builds_active_key") != NULL)
        st = DB_CONFLICT; /* the same recipe is in flight for that identity already */
    return st;
}

enum db_status store_build_sweep_rebuilds(PGconn *c, unsigned live_s, unsigned stale_s, int *failed, char *err,
                                          size_t errlen)
{
    char live[16], stale[16];
    snprintf(live, sizeof(live), "%u", live_s);
    snprintf(stale, sizeof(stale), "%u", stale_s);
    const char *p[] = {live, stale};
    PGresult *r;
    *failed = 0;
    enum db_status st = query(
        c,
        "UPDATE builds b SET status = 'failed', error_code = 'no_builder', error_message = 'no live worker has "
        "the identity of the build it verifies (' || b.builder || ', tools ' || left(b.tools, 12) || ') since ' || "
        "$2 || ' seconds after it was queued', finished_at = now(), updated_at = now() "
        "WHERE b.id IN (SELECT id FROM builds b WHERE b.status = 'queued' AND b.verify_of IS NOT NULL "
        "  AND b.tools IS NOT NULL AND b.created_at < now() - make_interval(secs => $2::int) "
        "  AND NOT EXISTS (" LIVE_OF("b", "$1") ") FOR UPDATE SKIP LOCKED) RETURNING 1",
        2, p, &r, err, errlen);
    if (st == DB_OK) {
        *failed = PQntuples(r);
        PQclear(r);
    }
    return st;
}

enum db_status store_builder_pick(PGconn *c, const char *arch, const struct builder_id *mine, unsigned live_s,
                                  struct builder_id *out, char *err, size_t errlen)
{
    *out = *mine;
    char live[16];
    snprintf(live, sizeof(live), "%u", live_s);
    const char *p[] = {arch, live, mine->builder, mine->tools};
    PGresult *r;
    enum db_status st = query(c,
                              "SELECT builder, tools FROM workers WHERE arch = $1 AND builder = $3 "
                              "AND seen_at > now() - make_interval(secs => $2::int) GROUP BY builder, tools "
                              "ORDER BY (tools = $4) DESC, count(*) DESC, max(seen_at) DESC, tools LIMIT 1",
                              4, p, &r, err, errlen);
    if (st != DB_OK)
        return st;
    if (PQntuples(r) == 1) {
        snprintf(out->arch, sizeof(out->arch), "%s", arch);
        copy_field(out->builder, sizeof(out->builder), r, 0, 0);
        copy_field(out->tools, sizeof(out->tools), r, 0, 1);
    }
    PQclear(r);
    return DB_OK;
}

enum db_status store_build_waiting(PGconn *c, const struct build_record *b, unsigned live_s, char **reason, char *err,
                                   size_t errlen)
{
    *reason = NULL;
    if (!valid_uuid(b->id))
        return DB_NOT_FOUND;
    char live[16];
    snprintf(live, sizeof(live), "%u", live_s);
    const char *p[] = {b->id, live};
    PGresult *r;
    enum db_status st = query(
        c,
        "SELECT b.arch, b.builder, b.tools, "
        "  (SELECT count(*) FROM workers w WHERE w.seen_at > now() - make_interval(secs => $2::int)), "
        "  (SELECT string_agg(DISTINCT w.builder || ', tools ' || left(w.tools, 12) || ' (' || w.arch || ')', '; ') "
        "     FROM workers w WHERE w.seen_at > now() - make_interval(secs => $2::int)) "
        "FROM builds b WHERE b.id = $1::uuid AND b.status = 'queued' AND b.tools IS NOT NULL "
        "AND NOT EXISTS (" LIVE_OF("b", "$2") ")",
        2, p, &r, err, errlen);
    if (st != DB_OK)
        return st;
    if (PQntuples(r) == 1) {
        long long n = atoll(PQgetvalue(r, 0, 3));
        const char *arch = PQgetvalue(r, 0, 0), *builder = PQgetvalue(r, 0, 1), *tools = PQgetvalue(r, 0, 2);
        bool rebuild = b->verify_of[0] != '\0';
        if (n == 0)
            *reason = xasprintf("no worker is running: this build needs one with %s, tools %.12s (%s)", builder,
                                tools, arch);
        else if (rebuild)
            *reason = xasprintf("no live worker can rebuild it: it needs the build's own identity, %s, tools %.12s "
                                "(%s); the %lld live worker%s ha%s %s",
                                builder, tools, arch, n, n == 1 ? "" : "s", n == 1 ? "s" : "ve",
                                PQgetvalue(r, 0, 4));
        else
            *reason = xasprintf("no live worker has the identity it was keyed for (%s, tools %.12s, %s): a worker "
                                "of another identity takes it after " TAKEOVER_S " seconds and keys it for its own; "
                                "the %lld live worker%s ha%s %s",
                                builder, tools, arch, n, n == 1 ? "" : "s", n == 1 ? "s" : "ve",
                                PQgetvalue(r, 0, 4));
    }
    PQclear(r);
    return DB_OK;
}

enum db_status store_build_verify(PGconn *c, const char *id, const char *lock, const uint8_t cancel_token_hash[32],
                                  int max_attempts, const char *client, struct build_record *out, bool *existing,
                                  char *err, size_t errlen)
{
    *existing = false;
    if (!valid_uuid(id))
        return DB_NOT_FOUND;
    /* A rebuild that ends between the two statements frees the build: try again. */
    char hash[67], attempts[16];
    hex32(hash, cancel_token_hash);
    snprintf(attempts, sizeof(attempts), "%d", max_attempts > 0 ? max_attempts : 3);
    const char *p[] = {id, lock, hash, attempts, client};
    const char *q[] = {id};
    for (int tries = 0; tries < 3; tries++) {
        enum db_status st = insert_or_join(
            c,
            "INSERT INTO builds (config_hash, build_key, key_parts, recipe, lock, lock_hash, cancel_token_hash, "
            "max_attempts, client, kind, boot_check, arch, builder, tools, verify_of, verify_avoid) "
            "SELECT config_hash, build_key, key_parts, recipe, $2::jsonb, lock_hash, $3::bytea, $4::int, $5, "
            "kind, false, arch, builder, tools, id, built_by FROM builds "
            "WHERE id = $1::uuid AND status = 'succeeded' AND verify_of IS NULL "
            "ON CONFLICT (verify_of) WHERE status IN ('queued', 'running') DO NOTHING RETURNING " COLS,
            5, p, "SELECT " COLS " FROM builds WHERE verify_of = $1::uuid AND status IN ('queued', 'running')", 1, q,
            out, existing, err, errlen);
        if (st != DB_NOT_FOUND)
            return st;
        /* no rebuild in flight: a build that cannot be verified, or one that ended meanwhile */
        st = query_one(c, "SELECT " COLS " FROM builds WHERE id = $1::uuid", 1, q, out, err, errlen);
        if (st != DB_OK)
            return st; /* DB_NOT_FOUND: no such build */
        bool verifiable = strcmp(out->status, "succeeded") == 0 && out->verify_of[0] == '\0';
        build_record_release(out);
        if (!verifiable) {
            snprintf(err, errlen, "only a succeeded build (not itself a rebuild) can be verified");
            return DB_CONFLICT;
        }
    }
    snprintf(err, errlen, "the build's rebuild kept changing state; try again");
    return DB_TIMEOUT;
}

/* For statements that update a held build: no row means the lease is gone. */
static enum db_status update_held(PGconn *c, const char *sql, int n, const char *const *p, PGresult **r, char *err,
                                  size_t errlen)
{
    if (!valid_uuid(p[0]))
        return DB_LOST_LEASE;
    enum db_status st = query(c, sql, n, p, r, err, errlen);
    if (st != DB_OK)
        return st;
    if (PQntuples(*r) == 0) {
        PQclear(*r);
        *r = NULL;
        return DB_LOST_LEASE;
    }
    return DB_OK;
}

enum db_status store_build_release(PGconn *c, const char *id, const char *owner, char *err, size_t errlen)
{
    const char *p[] = {id, owner};
    PGresult *r;
    enum db_status st = update_held(c,
                                    "UPDATE builds SET status = 'queued', attempts = greatest(attempts - 1, 0), "
                                    "lease_owner = NULL, lease_expires_at = NULL, stage = 'queued', progress = 0, "
                                    "updated_at = now() WHERE " HELD " RETURNING 1",
                                    2, p, &r, err, errlen);
    if (st == DB_OK) {
        PQclear(r);
        char ignored[64];
        db_exec(c, "NOTIFY debate_queue", ignored, sizeof(ignored));
    }
    return st;
}

enum db_status store_build_heartbeat(PGconn *c, const char *id, const char *owner, unsigned lease_s,
                                     bool *cancel_requested, char *err, size_t errlen)
{
    char lease[16];
    snprintf(lease, sizeof(lease), "%u", lease_s);
    const char *p[] = {id, owner, lease};
    PGresult *r;
    enum db_status st = update_held(c,
                                    "UPDATE builds SET lease_expires_at = now() + make_interval(secs => $3::int), "
                                    "updated_at = now() WHERE " HELD " RETURNING cancel_requested",
                                    3, p, &r, err, errlen);
    if (st != DB_OK)
        return st;
    *cancel_requested = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return DB_OK;
}

enum db_status store_build_progress(PGconn *c, const char *id, const char *owner, const char *stage, int progress,
                                    char *err, size_t errlen)
{
    char pct[16];
    snprintf(pct, sizeof(pct), "%d", progress < 0 ? 0 : progress > 100 ? 100 : progress);
    const char *p[] = {id, owner, stage, pct};
    PGresult *r;
    enum db_status st = update_held(
        c, "UPDATE builds SET stage = $3, progress = $4::int, updated_at = now() WHERE " HELD " RETURNING 1", 4, p, &r,
        err, errlen);
    if (st == DB_OK)
        PQclear(r);
    return st;
}

/* A text[] literal of n strings, each element quoted and escaped. */
static char *text_array(const char *const *items, size_t n)
{
    size_t cap = 3;
    for (size_t i = 0; i < n; i++)
        cap += 3 + 2 * strlen(items[i]);
    char *out = xcalloc(1, cap), *w = out;
    *w++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *w++ = ',';
        *w++ = '"';
        for (const char *q = items[i]; *q; q++) {
            if (*q == '"' || *q == '\\')
                *w++ = '\\';
            *w++ = *q;
        }
        *w++ = '"';
    }
    *w++ = '}';
    *w = '\0';
    return out;
}

/*
 * Appends events to build $1 held by $2: kinds in $3, bodies in $4 (text[]),
 * numbered after its last; the statement's own CTE "held" (the lease check
 * and the row's update, RETURNING id) must come first.
 */
#define EVENTS_AFTER_HELD                                                                                              \
    "base AS (SELECT coalesce(max(seq), 0) AS s FROM build_events WHERE build_id = $1::uuid), "                        \
    "ins AS (INSERT INTO build_events (build_id, seq, kind, body) "                                                    \
    "SELECT held.id, base.s + t.n, t.k, t.b FROM held, base, "                                                         \
    "unnest($3::text[], $4::text[]) WITH ORDINALITY AS t(k, b, n) RETURNING 1) "

enum db_status store_build_finish(PGconn *c, const char *id, const char *owner, const struct build_result *res,
                                  char *err, size_t errlen)
{
    bool ok = strcmp(res->status, "succeeded") == 0;
    if (!ok && strcmp(res->status, "failed") != 0 && strcmp(res->status, "cancelled") != 0) {
        snprintf(err, errlen, "\"%s\" is not a final status", res->status);
        return DB_QUERY_ERROR;
    }
    char size[32];
    snprintf(size, sizeof(size), "%lld", res->iso_size);
    _cleanup_free_ char *karr = text_array(res->event_kinds, res->nevents),
                        *barr = text_array(res->event_bodies, res->nevents);
    const char *p[] = {id,
                       owner,
                       karr,
                       barr,
                       res->status,
                       ok ? res->iso_sha256 : NULL,
                       ok ? size : NULL,
                       ok ? NULL : res->error_code,
                       ok ? NULL : res->error_message,
                       ok ? res->boot_verdict : NULL,
                       ok ? res->boot_log : NULL};
    PGresult *r;
    /* One statement, one commit: the lease check, the last events and the outcome together. */
    enum db_status st = update_held(
        c,
        "WITH held AS (UPDATE builds SET status = $5::build_status, iso_sha256 = $6, iso_size = $7::bigint, "
        "error_code = $8, error_message = $9, stage = CASE WHEN $5 = 'succeeded' THEN 'done' ELSE stage END, "
        "progress = CASE WHEN $5 = 'succeeded' THEN 100 ELSE progress END, lease_owner = NULL, "
        "lease_expires_at = NULL, finished_at = now(), built_by = $2, boot_verdict = $10::jsonb, boot_log = $11, "
        "updated_at = now() WHERE " HELD " RETURNING id), " EVENTS_AFTER_HELD "SELECT 1 FROM held",
        11, p, &r, err, errlen);
    if (st == DB_OK)
        PQclear(r);
    return st;
}

enum db_status store_build_sweep(PGconn *c, int *requeued, int *failed, char *err, size_t errlen)
{
    PGresult *r;
    *requeued = *failed = 0;
    enum db_status st = query(
        c,
        "WITH expired AS (SELECT id, attempts, max_attempts, cancel_requested FROM builds "
        "  WHERE status = 'running' AND lease_expires_at <= now() FOR UPDATE SKIP LOCKED), "
        "outcome AS (SELECT id, attempts, CASE WHEN cancel_requested THEN 'cancelled' "
        "  WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END AS status FROM expired) "
        "UPDATE builds b SET status = o.status::build_status, lease_owner = NULL, lease_expires_at = NULL, "
        "  stage = CASE WHEN o.status = 'queued' THEN 'queued' ELSE b.stage END, "
        "  progress = CASE WHEN o.status = 'queued' THEN 0 ELSE b.progress END, "
        "  error_code = CASE o.status WHEN 'failed' THEN 'attempts_exhausted' WHEN 'cancelled' THEN 'cancelled' END, "
        "  error_message = CASE o.status WHEN 'failed' THEN 'the build was started ' || o.attempts || "
        "    ' times and each time its worker stopped answering' WHEN 'cancelled' THEN 'cancelled by the submitter' "
        "    END, "
        "  finished_at = CASE WHEN o.status = 'queued' THEN NULL ELSE now() END, updated_at = now() "
        "FROM outcome o WHERE b.id = o.id RETURNING o.status",
        0, NULL, &r, err, errlen);
    if (st != DB_OK)
        return st;
    for (int i = 0; i < PQntuples(r); i++) {
        if (strcmp(PQgetvalue(r, i, 0), "queued") == 0)
            (*requeued)++;
        else
            (*failed)++;
    }
    PQclear(r);
    if (*requeued > 0) {
        char ignored[64];
        db_exec(c, "NOTIFY debate_queue", ignored, sizeof(ignored));
    }
    return DB_OK;
}

static enum db_status cancel_locked(PGconn *c, const char *id, const uint8_t token_hash[32], struct build_record *out,
                                    char *err, size_t errlen)
{
    const char *p[] = {id};
    PGresult *r;
    enum db_status st =
        query(c, "SELECT cancel_token_hash, status::text FROM builds WHERE id = $1::uuid FOR UPDATE", 1, p, &r, err,
              errlen);
    if (st != DB_OK)
        return st;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return DB_NOT_FOUND;
    }
    size_t len = 0;
    unsigned char *stored = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 0), &len);
    bool match = stored != NULL && len == 32 && ct_equal(stored, token_hash, 32);
    PQfreemem(stored);
    char status[16];
    snprintf(status, sizeof(status), "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    if (!match)
        return DB_NOT_FOUND;
    if (strcmp(status, "queued") == 0)
        return query_one(c,
                         "UPDATE builds SET status = 'cancelled', error_code = 'cancelled', error_message = "
                         "'cancelled by the submitter', finished_at = now(), updated_at = now() WHERE id = $1::uuid "
                         "RETURNING " COLS,
                         1, p, out, err, errlen);
    if (strcmp(status, "running") == 0)
        return query_one(c,
                         "UPDATE builds SET cancel_requested = true, updated_at = now() WHERE id = $1::uuid "
                         "RETURNING " COLS,
                         1, p, out, err, errlen);
    st = query_one(c, "SELECT " COLS " FROM builds WHERE id = $1::uuid", 1, p, out, err, errlen);
    return st == DB_OK ? DB_CONFLICT : st;
}

enum db_status store_build_cancel(PGconn *c, const char *id, const uint8_t token_hash[32], struct build_record *out,
                                  char *err, size_t errlen)
{
    if (!valid_uuid(id))
        return DB_NOT_FOUND;
    enum db_status st = db_exec(c, "BEGIN", err, errlen);
    if (st != DB_OK)
        return st;
    st = cancel_locked(c, id, token_hash, out, err, errlen);
    char ignored[64];
    if (st == DB_OK || st == DB_CONFLICT || st == DB_NOT_FOUND) {
        enum db_status cst = db_exec(c, "COMMIT", err, errlen);
        if (cst != DB_OK) {
            if (st == DB_OK || st == DB_CONFLICT)
                build_record_release(out);
            return cst;
        }
    } else {
        db_exec(c, "ROLLBACK", ignored, sizeof(ignored));
    }
    return st;
}

static bool valid_status(const char *s)
{
    for (size_t i = 0; i < ARRAY_SIZE(statuses); i++)
        if (strcmp(s, statuses[i]) == 0)
            return true;
    return false;
}

/* A cursor is "<created_at>_<id>", as store_build_list hands it out. */
static bool split_cursor(const char *cursor, char ts[STORE_TIME_LEN], char id[37])
{
    const char *us = strrchr(cursor, '_');
    if (us == NULL || (size_t)(us - cursor) >= STORE_TIME_LEN || !valid_uuid(us + 1))
        return false;
    for (const char *p = cursor; p < us; p++)
        if (!isdigit((unsigned char)*p) && strchr("-:.TZ", *p) == NULL)
            return false;
    snprintf(ts, STORE_TIME_LEN, "%.*s", (int)(us - cursor), cursor);
    snprintf(id, 37, "%s", us + 1);
    return ts[0] != '\0';
}

enum db_status store_build_list(PGconn *c, const char *status, const char *after, unsigned limit,
                                struct build_record **out, size_t *n, char **next_cursor, char *err, size_t errlen)
{
    char ts[STORE_TIME_LEN] = "", id[37] = "", lim[16];
    *out = NULL;
    *n = 0;
    *next_cursor = NULL;
    if (status != NULL && !valid_status(status)) {
        snprintf(err, errlen, "\"%s\" is not a build status (queued, running, succeeded, failed, cancelled)", status);
        return DB_CONFLICT;
    }
    if (after != NULL && !split_cursor(after, ts, id)) {
        snprintf(err, errlen, "the page cursor is malformed");
        return DB_CONFLICT;
    }
    snprintf(lim, sizeof(lim), "%u", limit + 1);
    const char *p[] = {status, after ? ts : NULL, after ? id : NULL, lim};
    PGresult *r;
    enum db_status st = query(c,
                              "SELECT " COLS " FROM builds WHERE ($1::build_status IS NULL OR status = "
                              "$1::build_status) AND ($2::timestamptz IS NULL OR (created_at, id) < "
                              "($2::timestamptz, $3::uuid)) ORDER BY created_at DESC, id DESC LIMIT $4::int",
                              4, p, &r, err, errlen);
    if (st != DB_OK)
        return st;
    size_t rows = (size_t)PQntuples(r);
    bool more = rows > limit;
    if (more)
        rows = limit;
    *out = xcalloc(rows ? rows : 1, sizeof(**out));
    for (size_t i = 0; i < rows; i++)
        parse_row(r, (int)i, &(*out)[i]);
    *n = rows;
    if (more && rows > 0)
        *next_cursor = xasprintf("%s_%s", (*out)[rows - 1].created_at, (*out)[rows - 1].id);
    PQclear(r);
    return DB_OK;
}

enum db_status store_queue_position(PGconn *c, const char *id, int *position, char *err, size_t errlen)
{
    *position = 0;
    if (!valid_uuid(id))
        return DB_NOT_FOUND;
    const char *p[] = {id};
    PGresult *r;
    enum db_status st =
        query(c,
              "SELECT CASE WHEN b.status = 'queued' THEN (SELECT count(*) FROM builds q WHERE q.status = 'queued' "
              "AND (q.created_at, q.id) <= (b.created_at, b.id)) ELSE 0 END FROM builds b WHERE b.id = $1::uuid",
              1, p, &r, err, errlen);
    if (st != DB_OK)
        return st;
    if (PQntuples(r) == 0)
        st = DB_NOT_FOUND;
    else
        *position = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return st;
}

/* ---- the build service: events, artifacts, the queue's length ---- */

enum db_status store_events_append(PGconn *c, const char *id, const char *owner, const char *const *kinds,
                                   const char *const *bodies, size_t n, const char *stage, int progress, char *err,
                                   size_t errlen)
{
    if (n == 0 && stage == NULL)
        return DB_OK;
    _cleanup_free_ char *karr = text_array(kinds, n), *barr = text_array(bodies, n);
    char pct[16];
    snprintf(pct, sizeof(pct), "%d", progress < 0 ? 0 : progress > 100 ? 100 : progress);
    const char *p[] = {id, owner, karr, barr, stage, stage ? pct : NULL};
    PGresult *r;
    /* One statement, one commit: the lease check, the progress and the events together. */
    enum db_status st = update_held(
        c,
        "WITH held AS (UPDATE builds SET stage = coalesce($5, stage), progress = coalesce($6::int, progress), "
        "updated_at = now() WHERE " HELD " RETURNING id), " EVENTS_AFTER_HELD "SELECT 1 FROM held",
        6, p, &r, err, errlen);
    if (st == DB_OK)
        PQclear(r);
    return st;
}

enum db_status store_events_since(PGconn *c, const char *id, long long after, unsigned limit,
                                  struct build_event **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!valid_uuid(id))
        return DB_NOT_FOUND;
    char a[32], l[16];
    snprintf(a, sizeof(a), "%lld", after);
    snprintf(l, sizeof(l), "%u", limit);
    const char *p[] = {id, a, l};
    PGresult *r;
    enum db_status st = query(c,
                              "SELECT seq, kind, body FROM build_events WHERE build_id = $1::uuid AND seq > $2::bigint "
                              "ORDER BY seq LIMIT $3::int",
                              3, p, &r, err, errlen);
    if (st != DB_OK)
        return st;
    size_t rows = (size_t)PQntuples(r);
    *out = xcalloc(rows ? rows : 1, sizeof(**out));
    for (size_t i = 0; i < rows; i++) {
        (*out)[i].seq = atoll(PQgetvalue(r, (int)i, 0));
        (*out)[i].progress = PQgetvalue(r, (int)i, 1)[0] == 'p';
        (*out)[i].body = xstrdup(PQgetvalue(r, (int)i, 2));
    }
    *n = rows;
    PQclear(r);
    return DB_OK;
}

void build_events_release(struct build_event *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].body);
    free(e);
}

enum db_status store_build_set_lock(PGconn *c, const char *id, const char *owner, const char *lock_json,
                                    const char *lock_hash, char *err, size_t errlen)
{
    const char *p[] = {id, owner, lock_json, lock_hash};
    PGresult *r;
    enum db_status st = update_held(c,
                                    "UPDATE builds SET lock = coalesce($3::jsonb, lock), lock_hash = $4, "
                                    "updated_at = now() WHERE " HELD
                                    " RETURNING 1",
                                    4, p, &r, err, errlen);
    if (st == DB_OK)
        PQclear(r);
    return st;
}

enum db_status store_queue_length(PGconn *c, long long *queued, char *err, size_t errlen)
{
    PGresult *r;
    enum db_status st = query(c, "SELECT count(*) FROM builds WHERE status = 'queued'", 0, NULL, &r, err, errlen);
    if (st != DB_OK)
        return st;
    *queued = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return DB_OK;
}

enum db_status store_artifact_add(PGconn *c, const char *sha256, long long size, char *err, size_t errlen)
{
    char sz[32];
    snprintf(sz, sizeof(sz), "%lld", size);
    const char *p[] = {sha256, sz};
    return command(c,
                              "INSERT INTO artifacts (sha256, size) VALUES ($1, $2::bigint) ON CONFLICT (sha256) DO "
                              "UPDATE SET last_download_at = now()",
                              2, p, err, errlen);
}

enum db_status store_artifact_touch(PGconn *c, const char *sha256, bool *present, char *err, size_t errlen)
{
    const char *p[] = {sha256};
    PGresult *r;
    enum db_status st = query(c, "UPDATE artifacts SET last_download_at = now() WHERE sha256 = $1 RETURNING 1", 1, p,
                              &r, err, errlen);
    if (st != DB_OK)
        return st;
    *present = PQntuples(r) > 0;
    PQclear(r);
    return DB_OK;
}

enum db_status store_artifact_remove(PGconn *c, const char *sha256, char *err, size_t errlen)
{
    const char *p[] = {sha256};
    return command(c, "DELETE FROM artifacts WHERE sha256 = $1", 1, p, err, errlen);
}

enum db_status store_artifacts_lru(PGconn *c, struct artifact_row **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    PGresult *r;
    enum db_status st = query(c,
                              "SELECT a.sha256, a.size, EXISTS (SELECT 1 FROM builds b WHERE b.iso_sha256 = a.sha256) "
                              "OR a.created_at > now() - interval '1 hour' "
                              "FROM artifacts a ORDER BY a.last_download_at, a.sha256",
                              0, NULL, &r, err, errlen);
    if (st != DB_OK)
        return st;
    size_t rows = (size_t)PQntuples(r);
    *out = xcalloc(rows ? rows : 1, sizeof(**out));
    for (size_t i = 0; i < rows; i++) {
        snprintf((*out)[i].sha256, sizeof((*out)[i].sha256), "%s", PQgetvalue(r, (int)i, 0));
        (*out)[i].size = atoll(PQgetvalue(r, (int)i, 1));
        (*out)[i].referenced = PQgetvalue(r, (int)i, 2)[0] == 't';
    }
    *n = rows;
    PQclear(r);
    return DB_OK;
}
