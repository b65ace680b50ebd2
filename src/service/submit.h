/*
 * What a submission means: the one place that turns a submitted body into
 * a build, shared by every way in (the HTTP route, the page, the client
 * commands).
 *
 * Two steps:
 *   1. submission_parse (no I/O, any thread): the body's shape, the recipe
 *      and the optional lock validated, no_cache read; then the cache key
 *      (every input the ISO depends on: config_hash, lock_hash or mirror,
 *      builder, tools; dumped with sorted keys, build_key = its SHA-256)
 *      for this host's builder identity, and a one-time cancel token, of
 *      which only the hash is stored. Bad input stops here, so it never
 *      reaches the database.
 *   2. submission_store (one database connection, a database thread): the
 *      builder identity the build will run with (this host's when a live
 *      worker has it, else the one most live workers have: the key's
 *      builder and tools are then that identity's), a verified cache hit,
 *      else a merge into the identical build in flight, else a new queued
 *      build while the queue has room; and which parts of the key differ
 *      from the recipe's newest earlier build.
 *
 * Errors travel as values: enum submit_error is the cause, with its
 * stable API code (submit_error_code) and, for bad input, the field to
 * blame; callers map causes to their own answers (HTTP status codes) and
 * never read the message, which is for people.
 *
 * Ownership: a submission owns its strings (submission_release); a result
 * owns its record and differs (submit_result_release).
 */
#ifndef DEBATE_SERVICE_SUBMIT_H
#define DEBATE_SERVICE_SUBMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "db/store.h"
#include "service/service.h"

enum submit_error {
    SUBMIT_OK,
    SUBMIT_INVALID_JSON,    /* the body is not JSON */
    SUBMIT_INVALID_REQUEST, /* not a submission: wrong shape, an unknown or wrong-typed field */
    SUBMIT_INVALID_RECIPE,  /* the recipe does not validate (field: recipe.PATH) */
    SUBMIT_INVALID_LOCK,    /* the lock is malformed or for another recipe */
    SUBMIT_QUEUE_FULL,      /* queue_max builds wait and none in flight has this key */
    SUBMIT_DATABASE,        /* the database step failed: see the result's db status */
};

/* The stable API code of a cause ("invalid_recipe", "queue_full", ...). */
const char *submit_error_code(enum submit_error e);
/* A generic sentence for a cause (the problem's message says more). */
const char *submit_strerror(enum submit_error e);

/* Why a submission was refused. */
struct submit_problem {
    enum submit_error error;
    char field[160];   /* the field to blame ("recipe.packages[0]", "lock"), or "" */
    char message[512]; /* for people: names the field and what is wrong with it */
};

/* The one-time cancel token: 32 random bytes in base64url. */
#define SUBMIT_TOKEN_LEN 43

struct submission {
    char config_hash[65];
    char build_key[65];
    char *key_parts; /* the key as JSON text, sorted keys */
    char *recipe;    /* canonical JSON */
    char *lock;      /* canonical JSON, or NULL */
    bool no_cache;
    bool boot_check; /* boot the ISO once built; a cache hit only from a build whose check ran */
    char cancel_token[SUBMIT_TOKEN_LEN + 1]; /* shown once, to the submitter */
    uint8_t cancel_token_hash[32];           /* what is stored */
    char client[64]; /* who submitted, as text: the caller fills it in before storing ("" when unknown) */
    struct builder_id identity; /* the identity the key is for; a worker of it builds */
};

/*
 * Step 1: parses body (len bytes) as {"recipe": {...}, "lock": {...}?,
 * "no_cache": bool?, "boot_check": bool?}; boot_check for a recipe whose
 * console cannot be read (bootcheck_refusal) is SUBMIT_INVALID_REQUEST
 * with the field "boot_check". SUBMIT_OK with *s filled, or the cause with *p
 * filled and nothing to release.
 */
enum submit_error submission_parse(const struct service *svc, const char *body, size_t len, struct submission *s,
                                   struct submit_problem *p);
void submission_release(struct submission *s);

/* The hash stored for a cancel token (the cancel route compares it). */
void submit_token_hash(const char *token, uint8_t out[32]);
/*
 * The cache key of key_parts (JSON text of a key, as a build record keeps
 * it) made for the identity id: *parts (malloc'd, sorted keys) and its
 * build_key. -1 when key_parts is not a JSON object.
 */
int submit_key_for(const char *key_parts, const struct builder_id *id, char **parts, char build_key[65]);

/* A new cancel token and its hash. */
void submit_new_token(char token[SUBMIT_TOKEN_LEN + 1], uint8_t hash[32]);

/*
 * Checking a recipe without submitting it (the page's editor): the same
 * parser and the same errors as `debate hash`, nothing stored.
 */
struct recipe_check {
    bool valid;
    char config_hash[65]; /* valid */
    char *canonical;      /* valid: the canonical JSON text */
    char field[128];      /* not valid: the field to blame, relative to the recipe ("packages[3]"), or "" */
    char message[512];    /* not valid: "packages[3]: ...", as debate hash prints it */
};

/*
 * Parses body as {"recipe": {...}} and checks the recipe. SUBMIT_OK with
 * *c filled (valid or not: release it), or SUBMIT_INVALID_JSON /
 * SUBMIT_INVALID_REQUEST with *p filled and nothing to release. No I/O,
 * any thread.
 */
enum submit_error submission_check_recipe(const char *body, size_t len, struct recipe_check *c,
                                          struct submit_problem *p);
void recipe_check_release(struct recipe_check *c);

enum submit_outcome {
    SUBMIT_HIT,    /* a succeeded build with this key, its ISO verified (and boot-checked when asked) */
    SUBMIT_QUEUED, /* a new build: the submitter gets the cancel token */
    SUBMIT_MERGED, /* joined the identical build already queued or running */
};

struct submit_result {
    enum submit_outcome outcome;
    struct build_record rec; /* the build, as it is now */
    int queue_position;      /* 1 = next to run; 0 when not queued */
    json_t *differs;         /* queued or merged: the key parts that differ from the recipe's newest earlier build */
    json_t *lock_changes;    /* when lock_hash differs and both pinned a lock: the packages that changed
                                (lock_diff_json), else NULL */
    enum db_status db;       /* SUBMIT_DATABASE: what the database said (message in err) */
};

/*
 * Step 2, on connection c: SUBMIT_OK with *r filled, SUBMIT_QUEUE_FULL,
 * or SUBMIT_DATABASE with r->db and a message in err. *r must be released
 * whatever the answer.
 */
enum submit_error submission_store(const struct service *svc, struct submission *s, PGconn *c,
                                   struct submit_result *r, char *err, size_t errlen);
void submit_result_release(struct submit_result *r);

#endif
