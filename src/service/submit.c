#include "service/submit.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "digest.h"
#include "engine/bootcheck.h"
#include "engine/recipe.h"
#include "engine/lockdiff.h"
#include "engine/resolve.h"
#include "service/artifacts.h"
#include "util.h"
#include "banned.h"

const char *submit_error_code(enum submit_error e)
{
    switch (e) {
    case SUBMIT_OK: return "ok";
    case SUBMIT_INVALID_JSON: return "invalid_json";
    case SUBMIT_INVALID_REQUEST: return "invalid_request";
    case SUBMIT_INVALID_RECIPE: return "invalid_recipe";
    case SUBMIT_INVALID_LOCK: return "invalid_lock";
    case SUBMIT_QUEUE_FULL: return "queue_full";
    case SUBMIT_DATABASE: return "database_unavailable";
    }
    return "internal_error";
}

const char *submit_strerror(enum submit_error e)
{
    switch (e) {
    case SUBMIT_OK: return "ok";
    case SUBMIT_INVALID_JSON: return "the body is not JSON";
    case SUBMIT_INVALID_REQUEST: return "the body is not a submission: {\"recipe\": {...}}";
    case SUBMIT_INVALID_RECIPE: return "the recipe is not valid (see docs/recipes.md)";
    case SUBMIT_INVALID_LOCK: return "the lock is not valid (from debate lock)";
    case SUBMIT_QUEUE_FULL: return "the build queue is full; try again later";
    case SUBMIT_DATABASE: return "the database is unavailable";
    }
    return "unknown submission error";
}

static enum submit_error refuse(struct submit_problem *p, enum submit_error e, const char *field, const char *fmt,
                                ...) __attribute__((format(printf, 4, 5)));
static enum submit_error refuse(struct submit_problem *p, enum submit_error e, const char *field, const char *fmt,
                                ...)
{
    p->error = e;
    snprintf(p->field, sizeof(p->field), "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->message, sizeof(p->message), fmt, ap);
    va_end(ap);
    return e;
}

/* The body's shape: an object of recipe (object), lock (object or null), no_cache (boolean), nothing else. */
static enum submit_error check_shape(const json_t *doc, struct submit_problem *p)
{
    if (!json_is_object(doc))
        return refuse(p, SUBMIT_INVALID_REQUEST, NULL, "the body must be an object: {\"recipe\": {...}}");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)doc, k, v) {
        if (strcmp(k, "recipe") != 0 && strcmp(k, "lock") != 0 && strcmp(k, "no_cache") != 0 &&
            strcmp(k, "boot_check") != 0)
            return refuse(p, SUBMIT_INVALID_REQUEST, k, "unknown field \"%.64s\" (recipe, lock, no_cache, boot_check)",
                          k);
    }
    const json_t *jr = json_object_get(doc, "recipe"), *jl = json_object_get(doc, "lock"),
                 *jn = json_object_get(doc, "no_cache"), *jb = json_object_get(doc, "boot_check");
    if (!json_is_object(jr))
        return refuse(p, SUBMIT_INVALID_REQUEST, "recipe", "\"recipe\" must be an object (see docs/recipes.md)");
    if (jl != NULL && !json_is_object(jl) && !json_is_null(jl))
        return refuse(p, SUBMIT_INVALID_REQUEST, "lock", "\"lock\" must be an object (from debate lock)");
    if (jn != NULL && !json_is_boolean(jn))
        return refuse(p, SUBMIT_INVALID_REQUEST, "no_cache", "\"no_cache\" must be true or false");
    if (jb != NULL && !json_is_boolean(jb))
        return refuse(p, SUBMIT_INVALID_REQUEST, "boot_check", "\"boot_check\" must be true or false");
    return SUBMIT_OK;
}

static enum submit_error parse_recipe(const json_t *jr, struct recipe *r, struct submit_problem *p)
{
    _cleanup_free_ char *text = json_dumps(jr, JSON_COMPACT);
    struct recipe_error rerr;
    if (recipe_parse(text, strlen(text), r, &rerr) == 0)
        return SUBMIT_OK;
    char msg[512];
    recipe_error_format(&rerr, msg, sizeof(msg));
    if (rerr.field[0] == '\0')
        return refuse(p, SUBMIT_INVALID_RECIPE, "recipe", "%s", msg);
    char field[sizeof(rerr.field) + 8];
    snprintf(field, sizeof(field), "recipe.%s", rerr.field);
    return refuse(p, SUBMIT_INVALID_RECIPE, field, "%s", msg);
}

/* The lock, when one was sent: its canonical text into s->lock and its hash into lock_hash. */
static enum submit_error parse_lock(const json_t *jl, const struct recipe *r, struct submission *s,
                                    char lock_hash[65], struct submit_problem *p)
{
    lock_hash[0] = '\0';
    if (!json_is_object(jl))
        return SUBMIT_OK;
    _cleanup_free_ char *text = json_dumps(jl, JSON_COMPACT);
    struct lock lock;
    char err[512];
    if (lock_parse(text, strlen(text), r, &lock, err, sizeof(err)) < 0)
        return refuse(p, SUBMIT_INVALID_LOCK, "lock", "%s", err);
    memcpy(lock_hash, lock.hash, 65);
    s->lock = xstrdup(lock.json);
    lock_release(&lock);
    return SUBMIT_OK;
}

/* The key's text (malloc'd) and hash from its parts, with builder and tools from id. */
static char *seal_key(json_t *key, const struct builder_id *id, char build_key[65])
{
    json_object_set_new(key, "builder", json_string(id->builder));
    json_object_set_new(key, "tools", json_string(id->tools));
    char *text = json_dumps(key, JSON_COMPACT | JSON_SORT_KEYS);
    sha256_hex(text, strlen(text), build_key);
    return text;
}

int submit_key_for(const char *key_parts, const struct builder_id *id, char **parts, char build_key[65])
{
    json_error_t je;
    json_t *key = key_parts ? json_loads(key_parts, 0, &je) : NULL;
    *parts = NULL;
    if (!json_is_object(key)) {
        json_decref(key);
        return -1;
    }
    *parts = seal_key(key, id, build_key);
    json_decref(key);
    return 0;
}

/* The key for another builder identity (one a live worker has). */
static void rekey(struct submission *s, const struct builder_id *id)
{
    if (strcmp(id->builder, s->identity.builder) == 0 && strcmp(id->tools, s->identity.tools) == 0 &&
        strcmp(id->arch, s->identity.arch) == 0)
        return;
    char *parts;
    if (submit_key_for(s->key_parts, id, &parts, s->build_key) < 0)
        return; /* cannot happen: the text is ours */
    free(s->key_parts);
    s->key_parts = parts;
    s->identity = *id;
}

/* The cache key: every input the ISO depends on (docs/api.md), for this host's identity. */
static void compute_key(const struct service *svc, const struct recipe *r, const char *lock_hash,
                        struct submission *s)
{
    json_t *key = json_pack("{s:s, s:o, s:o}", "config_hash", r->config_hash, "lock_hash",
                            lock_hash[0] ? json_string(lock_hash) : json_null(), "mirror",
                            lock_hash[0] ? json_null() : json_string(svc->mirror));
    /*
     * An unlocked recipe with security fixes takes them from the security
     * mirror: another one is another input. Left out otherwise, so that the
     * keys of every other submission stay what they were.
     */
    if (!lock_hash[0] && r->security)
        json_object_set_new(key, "security_mirror", json_string(svc->security_mirror));
    s->identity = svc->identity;
    s->key_parts = seal_key(key, &s->identity, s->build_key);
    json_decref(key);
    memcpy(s->config_hash, r->config_hash, sizeof(s->config_hash));
}

void submit_token_hash(const char *token, uint8_t out[32])
{
    EVP_Digest(token, strlen(token), out, NULL, EVP_sha256(), NULL);
}

void submit_new_token(char token[SUBMIT_TOKEN_LEN + 1], uint8_t hash[32])
{
    uint8_t raw[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        abort();
    base64url_encode(token, raw, sizeof(raw));
    submit_token_hash(token, hash);
}

enum submit_error submission_parse(const struct service *svc, const char *body, size_t len, struct submission *s,
                                   struct submit_problem *p)
{
    memset(s, 0, sizeof(*s));
    memset(p, 0, sizeof(*p));
    struct recipe r;
    bool have_recipe = false;
    json_error_t je;
    json_t *doc = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    enum submit_error e;
    if (doc == NULL) {
        e = refuse(p, SUBMIT_INVALID_JSON, NULL, "the body is not JSON: %s (line %d, column %d)", je.text, je.line,
                   je.column);
        goto out;
    }
    if ((e = check_shape(doc, p)) != SUBMIT_OK)
        goto out;
    if ((e = parse_recipe(json_object_get(doc, "recipe"), &r, p)) != SUBMIT_OK)
        goto out;
    have_recipe = true;
    char lock_hash[65];
    if ((e = parse_lock(json_object_get(doc, "lock"), &r, s, lock_hash, p)) != SUBMIT_OK)
        goto out;
    s->no_cache = json_is_true(json_object_get(doc, "no_cache"));
    s->boot_check = json_is_true(json_object_get(doc, "boot_check"));
    const char *refusal = s->boot_check ? bootcheck_refusal(&r) : NULL;
    if (refusal != NULL) {
        e = refuse(p, SUBMIT_INVALID_REQUEST, "boot_check", "boot_check: %s", refusal);
        goto out;
    }
    s->recipe = xstrdup(r.canonical);
    compute_key(svc, &r, lock_hash, s);
    submit_new_token(s->cancel_token, s->cancel_token_hash);
out:
    if (e != SUBMIT_OK)
        submission_release(s);
    if (have_recipe)
        recipe_release(&r);
    json_decref(doc);
    return e;
}

/* The editor's body: an object with "recipe" (an object) and nothing else. */
static enum submit_error check_recipe_shape(const json_t *doc, struct submit_problem *p)
{
    if (!json_is_object(doc))
        return refuse(p, SUBMIT_INVALID_REQUEST, NULL, "the body must be an object: {\"recipe\": {...}}");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)doc, k, v) {
        if (strcmp(k, "recipe") != 0)
            return refuse(p, SUBMIT_INVALID_REQUEST, k, "unknown field \"%.64s\" (recipe)", k);
    }
    if (!json_is_object(json_object_get(doc, "recipe")))
        return refuse(p, SUBMIT_INVALID_REQUEST, "recipe", "\"recipe\" must be an object (see docs/recipes.md)");
    return SUBMIT_OK;
}

enum submit_error submission_check_recipe(const char *body, size_t len, struct recipe_check *c,
                                          struct submit_problem *p)
{
    memset(c, 0, sizeof(*c));
    memset(p, 0, sizeof(*p));
    json_error_t je;
    json_t *doc = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    enum submit_error e;
    if (doc == NULL)
        return refuse(p, SUBMIT_INVALID_JSON, NULL, "the body is not JSON: %s (line %d, column %d)", je.text,
                      je.line, je.column);
    if ((e = check_recipe_shape(doc, p)) == SUBMIT_OK) {
        _cleanup_free_ char *text = json_dumps(json_object_get(doc, "recipe"), JSON_COMPACT);
        struct recipe r;
        struct recipe_error rerr;
        c->valid = recipe_parse(text, strlen(text), &r, &rerr) == 0;
        if (c->valid) {
            c->canonical = xstrdup(r.canonical);
            memcpy(c->config_hash, r.config_hash, sizeof(c->config_hash));
            recipe_release(&r);
        } else {
            snprintf(c->field, sizeof(c->field), "%s", rerr.field);
            recipe_error_format(&rerr, c->message, sizeof(c->message));
        }
    }
    json_decref(doc);
    return e;
}

void recipe_check_release(struct recipe_check *c)
{
    free(c->canonical);
    c->canonical = NULL;
}

void submission_release(struct submission *s)
{
    free(s->key_parts);
    free(s->recipe);
    free(s->lock);
    s->key_parts = s->recipe = s->lock = NULL;
}

void submit_result_release(struct submit_result *r)
{
    build_record_release(&r->rec);
    if (r->differs != NULL)
        json_decref(r->differs);
    if (r->lock_changes != NULL)
        json_decref(r->lock_changes);
    r->differs = r->lock_changes = NULL;
}

/* The parts of the key that differ from the newest earlier build of the same recipe. */
static json_t *key_differences(const char *mine, const char *theirs)
{
    json_error_t je;
    json_t *a = json_loads(mine, 0, &je), *b = theirs ? json_loads(theirs, 0, &je) : NULL;
    json_t *out = json_array();
    const char *k;
    json_t *v;
    if (a != NULL && b != NULL)
        json_object_foreach(a, k, v) {
            if (!json_equal(v, json_object_get(b, k)))
                json_array_append_new(out, json_string(k));
        }
    json_decref(a);
    json_decref(b);
    return out;
}

/*
 * The packages that changed from the earlier build's lock to this
 * submission's, when both pinned one and the locks are what differs; else
 * NULL. An earlier lock this debate cannot read any more names nothing.
 */
static json_t *lock_changes(const json_t *differs, const char *mine, const char *theirs)
{
    bool lock_differs = false;
    size_t i;
    json_t *v;
    json_array_foreach(differs, i, v)
    {
        if (strcmp(json_string_value(v), "lock_hash") == 0)
            lock_differs = true;
    }
    if (!lock_differs || mine == NULL || theirs == NULL)
        return NULL;
    struct lock now, before;
    char err[256];
    if (lock_read(theirs, strlen(theirs), &before, err, sizeof(err)) < 0)
        return NULL;
    json_t *out = NULL;
    if (lock_read(mine, strlen(mine), &now, err, sizeof(err)) == 0) {
        struct lock_change *changes;
        size_t n = lock_diff(&before, &now, &changes);
        out = lock_diff_json(changes, n);
        free(changes);
        lock_release(&now);
    }
    lock_release(&before);
    return out;
}

/* A succeeded build with this key whose ISO verifies: DB_OK and r->rec, or DB_NOT_FOUND. */
static enum db_status find_hit(const struct service *svc, const struct submission *s, PGconn *c,
                               struct submit_result *r, char *err, size_t errlen)
{
    enum db_status st = store_build_find_cached(c, s->build_key, s->boot_check, &r->rec, err, errlen);
    if (st == DB_OK && artifact_verify(svc->cfg->artifact_dir, r->rec.iso_sha256, r->rec.iso_size))
        return DB_OK;
    build_record_release(&r->rec);
    return st == DB_OK ? DB_NOT_FOUND : st;
}

/* Queues s, or merges it into the build in flight with its key; a full queue only allows the merge. */
static enum submit_error queue(const struct service *svc, const struct submission *s, PGconn *c,
                               struct submit_result *r, char *err, size_t errlen)
{
    const struct config *cfg = svc->cfg;
    long long queued = 0;
    if ((r->db = store_queue_length(c, &queued, err, errlen)) != DB_OK)
        return SUBMIT_DATABASE;
    if (queued >= (long long)cfg->queue_max) {
        r->db = store_build_find_active(c, s->build_key, s->boot_check, &r->rec, err, errlen);
        if (r->db == DB_NOT_FOUND) {
            r->db = DB_OK;
            return SUBMIT_QUEUE_FULL;
        }
        r->outcome = SUBMIT_MERGED;
        return r->db == DB_OK ? SUBMIT_OK : SUBMIT_DATABASE;
    }
    struct build_new in = {.config_hash = s->config_hash, .build_key = s->build_key, .key_parts = s->key_parts,
                           .recipe = s->recipe, .lock = s->lock, .cancel_token_hash = s->cancel_token_hash,
                           .max_attempts = (int)cfg->max_attempts, .client = s->client,
                           .boot_check = s->boot_check, .identity = &s->identity};
    bool merged = false;
    r->db = store_build_submit(c, &in, &r->rec, &merged, err, errlen);
    r->outcome = merged ? SUBMIT_MERGED : SUBMIT_QUEUED;
    return r->db == DB_OK ? SUBMIT_OK : SUBMIT_DATABASE;
}

/* What the answer says besides the build: the key's differences and the queue position, best effort. */
static void describe(const struct submission *s, PGconn *c, struct submit_result *r)
{
    char err[256];
    struct build_record prev;
    enum db_status st = store_build_find_previous(c, s->config_hash, r->rec.id, &prev, err, sizeof(err));
    r->differs = key_differences(s->key_parts, st == DB_OK ? prev.key_parts : NULL);
    r->lock_changes = lock_changes(r->differs, s->lock, st == DB_OK ? prev.lock : NULL);
    if (st == DB_OK)
        build_record_release(&prev);
    store_queue_position(c, r->rec.id, &r->queue_position, err, sizeof(err));
    if (r->queue_position == 0 && strcmp(r->rec.status, "queued") == 0) {
        /* A worker claimed it meanwhile: answer with what it is now. */
        struct build_record now;
        if (store_build_get(c, r->rec.id, &now, err, sizeof(err)) == DB_OK) {
            build_record_release(&r->rec);
            r->rec = now;
        }
    }
}

enum submit_error submission_store(const struct service *svc, struct submission *s, PGconn *c,
                                   struct submit_result *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    struct builder_id id;
    r->db = store_builder_pick(c, s->identity.arch, &svc->identity, 3 * svc->cfg->lease_seconds, &id, err, errlen);
    if (r->db != DB_OK)
        return SUBMIT_DATABASE;
    rekey(s, &id);
    if (!s->no_cache) {
        r->db = find_hit(svc, s, c, r, err, errlen);
        if (r->db == DB_OK) {
            r->outcome = SUBMIT_HIT;
            return SUBMIT_OK;
        }
        if (r->db != DB_NOT_FOUND)
            return SUBMIT_DATABASE;
        r->db = DB_OK;
    }
    enum submit_error e = queue(svc, s, c, r, err, errlen);
    if (e == SUBMIT_OK)
        describe(s, c, r);
    return e;
}
