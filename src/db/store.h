/*
 * The queries the build service needs, over one connection the caller
 * holds (from the pool, on a database thread, or in a tool). Each function
 * is one statement or one short transaction, so a crash between two calls
 * loses nothing that was committed.
 *
 * Rules the schema enforces and these functions rely on:
 * - at most one queued or running build per build_key (identical
 *   submissions in flight merge into it);
 * - a worker changes a running build only while it holds the lease
 *   (lease_owner = worker and lease not expired): otherwise DB_LOST_LEASE;
 * - a build whose lease expired is requeued by store_build_sweep until it
 *   has used max_attempts, then failed with error_code "attempts_exhausted".
 *
 * Errors: enum db_status (db/pool.h), with a message in err for
 * DB_QUERY_ERROR and DB_UNAVAILABLE.
 */
#ifndef DEBATE_DB_STORE_H
#define DEBATE_DB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "db/pool.h"

#define STORE_TIME_LEN 32 /* "2026-11-30T00:41:26.309123Z" */

struct build_record {
    char id[37];
    char config_hash[65];
    char build_key[65];
    char status[12];
    char stage[32];
    int progress;
    char *recipe;    /* JSON text */
    char *lock;      /* JSON text, or NULL */
    char *key_parts; /* JSON text */
    char iso_sha256[65]; /* "" until succeeded */
    long long iso_size;  /* -1 until succeeded */
    char *error_code;    /* or NULL */
    char *error_message; /* or NULL */
    int attempts, max_attempts;
    char *lease_owner; /* or NULL */
    bool cancel_requested;
    char created_at[STORE_TIME_LEN], updated_at[STORE_TIME_LEN];
    char started_at[STORE_TIME_LEN], finished_at[STORE_TIME_LEN]; /* "" when not yet */
    char lease_expires_at[STORE_TIME_LEN];
    char kind[8];        /* "build", or "noop" (queue tests) */
    char lock_hash[65];  /* the lock the build used: "" until resolved */
    bool boot_check;     /* the submission asked for a boot check */
    char *boot_verdict;  /* its verdict as JSON text ({result, bios, uefi, seconds}), or NULL until it ran */
    char arch[16];       /* the builder identity it needs ("" for any worker) */
    char *built_by;      /* the worker that recorded its outcome, or NULL */
    char verify_of[37];  /* a rebuild that verifies: the build it verifies, else "" */
    char *verification;  /* the newest rebuild's verdict as JSON text ({result, build, sha256, worker, at}), or NULL */
    bool verifying;      /* a rebuild that verifies it is queued or running */
};

/*
 * What a worker builds with, and what a build needs: the architecture,
 * debate's version ("debate 0.9.0") and the SHA-256 of the versions of the
 * tools that write the image's bytes. Two workers with the same identity
 * make the same bytes from the same inputs; the cache key holds the
 * identity's builder and tools.
 */
struct builder_id {
    char arch[16];
    char builder[64];
    char tools[65];
};

void build_record_release(struct build_record *b);

struct build_new {
    const char *config_hash, *build_key;
    const char *key_parts; /* JSON object text */
    const char *recipe;    /* JSON text */
    const char *lock;      /* JSON text or NULL */
    const uint8_t *cancel_token_hash; /* 32 bytes */
    int max_attempts;
    const char *client; /* or NULL */
    const char *kind;   /* NULL: "build" */
    bool boot_check;    /* boot the ISO once built; merges only into a build in flight that does too */
    const struct builder_id *identity; /* the workers that may claim it; NULL: any */
};

/*
 * Queues a new build, or, when one with the same build_key and boot_check
 * is already queued or running, returns that one with *merged set. Wakes workers
 * (NOTIFY debate_queue) when a build was queued.
 */
enum db_status store_build_submit(PGconn *c, const struct build_new *in, struct build_record *out, bool *merged,
                                  char *err, size_t errlen);

/*
 * The newest succeeded build with this key (boot_checked: one whose boot
 * check ran, whatever its verdict): DB_OK or DB_NOT_FOUND.
 */
enum db_status store_build_find_cached(PGconn *c, const char *build_key, bool boot_checked,
                                       struct build_record *out, char *err, size_t errlen);

/* The queued or running build with this key and boot_check: DB_OK or DB_NOT_FOUND. */
enum db_status store_build_find_active(PGconn *c, const char *build_key, bool boot_check, struct build_record *out,
                                       char *err, size_t errlen);

/* A build's boot check console (*log malloc'd): DB_OK, or DB_NOT_FOUND for no such build or no check that ran. */
enum db_status store_build_boot_log(PGconn *c, const char *id, char **log, char *err, size_t errlen);

/* The newest build of the same recipe (config_hash) other than exclude_id: DB_OK or DB_NOT_FOUND. */
enum db_status store_build_find_previous(PGconn *c, const char *config_hash, const char *exclude_id,
                                         struct build_record *out, char *err, size_t errlen);

/* The same without recipe and lock (left NULL): cheaper, for status answers. */
enum db_status store_build_get_brief(PGconn *c, const char *id, struct build_record *out, char *err, size_t errlen);

/* One build by id (any text: a malformed id is DB_NOT_FOUND). */
enum db_status store_build_get(PGconn *c, const char *id, struct build_record *out, char *err, size_t errlen);

/*
 * Claims the oldest queued build for owner (FOR UPDATE SKIP LOCKED), marks
 * it running with a lease of lease_s seconds and counts the attempt.
 * DB_NOT_FOUND when the queue is empty.
 */
enum db_status store_build_claim(PGconn *c, const char *owner, unsigned lease_s, struct build_record *out, char *err,
                                 size_t errlen);

/*
 * How a worker claims: builds of one kind (NULL: any), of its identity (NULL:
 * any identity), and, after 30 seconds, a build (not a rebuild) of its
 * architecture whose identity no live worker has: the worker must then key
 * it for its own identity (store_build_rekey) before it builds. A rebuild
 * that verifies is left for 60 seconds to a live worker of the same
 * identity on another host than the one that made the build, else to
 * another worker than that one.
 */
struct claim_filter {
    const char *kind;
    const struct builder_id *identity;
    unsigned live_s; /* a worker seen within live_s seconds is live */
};

enum db_status store_build_claim_for(PGconn *c, const char *owner, unsigned lease_s, const struct claim_filter *f,
                                     struct build_record *out, char *err, size_t errlen);

/* The same, for builds of one kind only (NULL: any), of any identity. */
enum db_status store_build_claim_kind(PGconn *c, const char *owner, unsigned lease_s, const char *kind,
                                      struct build_record *out, char *err, size_t errlen);

/* ---- workers and their identities ---- */

/* Records that the worker name is running with identity id, now. */
enum db_status store_worker_seen(PGconn *c, const char *name, const struct builder_id *id, char *err, size_t errlen);
/* Forgets a worker that stops. */
enum db_status store_worker_gone(PGconn *c, const char *name, char *err, size_t errlen);
/*
 * A claimed build keyed again for the identity to (key_parts and build_key
 * made for it). DB_LOST_LEASE when not held; DB_CONFLICT when the same
 * recipe is already queued or running for that identity (the caller gives
 * the build back to the queue).
 */
enum db_status store_build_rekey(PGconn *c, const char *id, const char *owner, const struct builder_id *to,
                                 const char *key_parts, const char *build_key, char *err, size_t errlen);

/*
 * Fails the queued rebuilds whose identity no live worker (seen within
 * live_s) has had for stale_s seconds since they were queued: error
 * "no_builder"; the verified build gets a failed verdict.
 */
enum db_status store_build_sweep_rebuilds(PGconn *c, unsigned live_s, unsigned stale_s, int *failed, char *err,
                                          size_t errlen);

/* Forgets the workers not seen for older_s seconds (they died without saying so); *n of them. */
enum db_status store_workers_forget(PGconn *c, unsigned older_s, int *n, char *err, size_t errlen);

/*
 * The identity a new build of arch gets: mine when a live worker has it,
 * else the one most live workers of my debate version have, else mine (the
 * build then waits for a worker of it, or is taken over: see
 * store_build_claim_for). *out filled; DB_OK.
 */
enum db_status store_builder_pick(PGconn *c, const char *arch, const struct builder_id *mine, unsigned live_s,
                                  struct builder_id *out, char *err, size_t errlen);

/*
 * Why a queued build waits, when no live worker can take it: *reason
 * (malloc'd) names its identity and what the live workers have; NULL when
 * a live worker can (or the build needs no identity).
 */
enum db_status store_build_waiting(PGconn *c, const struct build_record *b, unsigned live_s, char **reason, char *err,
                                   size_t errlen);

/*
 * Queues a rebuild that verifies the succeeded build id from lock (its
 * manifest's, JSON text): the same recipe, key and identity, no boot check,
 * left for a while to another worker than the one that made it. The
 * rebuild in flight for that build, when there is one, with *existing set.
 * client is who asks for it (or NULL), as a submission's client is.
 * DB_NOT_FOUND: no such build; DB_CONFLICT: it did not succeed, or is a
 * rebuild itself.
 */
enum db_status store_build_verify(PGconn *c, const char *id, const char *lock, const uint8_t cancel_token_hash[32],
                                  int max_attempts, const char *client, struct build_record *out, bool *existing,
                                  char *err, size_t errlen);

/* Gives a running build back to the queue, its attempt not counted (a worker shutting down). */
enum db_status store_build_release(PGconn *c, const char *id, const char *owner, char *err, size_t errlen);

/* Extends the lease; tells whether cancel was requested. DB_LOST_LEASE when not held. */
enum db_status store_build_heartbeat(PGconn *c, const char *id, const char *owner, unsigned lease_s,
                                     bool *cancel_requested, char *err, size_t errlen);

/* Records stage and percent. DB_LOST_LEASE when not held. */
enum db_status store_build_progress(PGconn *c, const char *id, const char *owner, const char *stage, int progress,
                                    char *err, size_t errlen);

struct build_result {
    const char *status; /* "succeeded", "failed" or "cancelled" */
    const char *iso_sha256; /* succeeded only */
    long long iso_size;
    const char *error_code, *error_message; /* failed / cancelled */
    const char *boot_verdict, *boot_log;    /* succeeded with a boot check: JSON text and the console; or NULL */
    /* Events not yet appended (the last log lines), written in the same statement as the outcome; or none. */
    const char *const *event_kinds, *const *event_bodies;
    size_t nevents;
};

/*
 * Ends a running build, with its last events (r->nevents of them) in the
 * same statement: a client that sees the outcome sees every line before it.
 * DB_LOST_LEASE when the lease is not held (nothing is written).
 */
enum db_status store_build_finish(PGconn *c, const char *id, const char *owner, const struct build_result *r,
                                  char *err, size_t errlen);

/* Requeues running builds whose lease expired, or fails them when out of attempts. */
enum db_status store_build_sweep(PGconn *c, int *requeued, int *failed, char *err, size_t errlen);

/*
 * Cancels with the token's hash (compared in constant time): a queued
 * build ends cancelled at once, a running one gets cancel_requested for its
 * worker. DB_NOT_FOUND for an unknown id and for a wrong token (so ids
 * cannot be probed); DB_CONFLICT, with *out filled, when the build had
 * already ended.
 */
enum db_status store_build_cancel(PGconn *c, const char *id, const uint8_t token_hash[32], struct build_record *out,
                                  char *err, size_t errlen);

/*
 * Lists builds newest first: status (or NULL for all), after = the cursor
 * of the last row of the previous page (or NULL), at most limit rows.
 * *out (malloc'd array, *n rows) and *next_cursor (malloc'd, or NULL on the
 * last page).
 */
enum db_status store_build_list(PGconn *c, const char *status, const char *after, unsigned limit,
                                struct build_record **out, size_t *n, char **next_cursor, char *err, size_t errlen);

/* Position in the queue (1 = next to run); 0 when not queued. */
enum db_status store_queue_position(PGconn *c, const char *id, int *position, char *err, size_t errlen);

/* ---- the build service ---- */

struct build_event {
    long long seq;
    bool progress; /* a progress event (body: JSON) or a log line (body: the line) */
    char *body;
};

/*
 * Appends events ("log" / "progress") in order, numbering them after the
 * last, and, when stage is not NULL, records stage and progress: one
 * statement. DB_LOST_LEASE when not held.
 */
enum db_status store_events_append(PGconn *c, const char *id, const char *owner, const char *const *kinds,
                                   const char *const *bodies, size_t n, const char *stage, int progress, char *err,
                                   size_t errlen);
/* Events with seq > after, in order, at most limit. */
enum db_status store_events_since(PGconn *c, const char *id, long long after, unsigned limit,
                                  struct build_event **out, size_t *n, char *err, size_t errlen);
void build_events_release(struct build_event *e, size_t n);

/* Records the lock a running build resolved. DB_LOST_LEASE when not held. */
enum db_status store_build_set_lock(PGconn *c, const char *id, const char *owner, const char *lock_json,
                                    const char *lock_hash, char *err, size_t errlen);

enum db_status store_queue_length(PGconn *c, long long *queued, char *err, size_t errlen);

struct artifact_row {
    char sha256[65];
    long long size;
    bool referenced; /* a build names it (or it is less than an hour old: its build is finishing) */
};

/* Records an artifact (or, if known, marks it used now). */
enum db_status store_artifact_add(PGconn *c, const char *sha256, long long size, char *err, size_t errlen);
/* Marks a download; *present false when the artifact is not in the index. */
enum db_status store_artifact_touch(PGconn *c, const char *sha256, bool *present, char *err, size_t errlen);
enum db_status store_artifact_remove(PGconn *c, const char *sha256, char *err, size_t errlen);
/* Every artifact, least recently downloaded first. */
enum db_status store_artifacts_lru(PGconn *c, struct artifact_row **out, size_t *n, char *err, size_t errlen);

#endif
