/* The submission rules of service/submit.c that need no database. */
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "service/finished.h"
#include "service/submit.h"
#include "util.h"

#define TINY                                                                                                           \
    "{\"name\": \"tiny\", \"variant\": \"busybox\", \"packages\": [\"busybox-static\", \"linux-image-amd64\"], "     \
    "\"boot\": {\"bios\": true, \"uefi\": true, \"cmdline\": \"console=ttyS0\"}, \"compression\": \"zstd\"}"

static struct service svc(void)
{
    struct service s;
    memset(&s, 0, sizeof(s));
    static char mirror[] = "http://deb.debian.org/debian", security[] = "http://deb.debian.org/debian-security";
    s.mirror = mirror;
    s.security_mirror = security;
    memset(s.identity.tools, 'a', 64);
    snprintf(s.identity.builder, sizeof(s.identity.builder), "debate %s", DEBATE_VERSION);
    snprintf(s.identity.arch, sizeof(s.identity.arch), "amd64");
    return s;
}

static enum submit_error parse(const char *body, struct submission *sub, struct submit_problem *p)
{
    struct service s = svc();
    return submission_parse(&s, body, strlen(body), sub, p);
}

#define REFUSED(body, cause, want_field)                                                                               \
    do {                                                                                                               \
        struct submission sub_;                                                                                        \
        struct submit_problem p_;                                                                                      \
        CHECK_INT(parse(body, &sub_, &p_), cause);                                                                     \
        CHECK_INT(p_.error, cause);                                                                                    \
        CHECK_STR(p_.field, want_field);                                                                               \
        CHECK(p_.message[0] != '\0');                                                                                  \
    } while (0)

TEST(bad_bodies_are_refused_with_their_cause_and_field)
{
    REFUSED("{\"recipe\": ", SUBMIT_INVALID_JSON, "");
    REFUSED("[1]", SUBMIT_INVALID_REQUEST, "");
    REFUSED("{\"recipe\": " TINY ", \"surprise\": 1}", SUBMIT_INVALID_REQUEST, "surprise");
    REFUSED("{\"recipe\": \"tiny\"}", SUBMIT_INVALID_REQUEST, "recipe");
    REFUSED("{\"no_cache\": false}", SUBMIT_INVALID_REQUEST, "recipe");
    REFUSED("{\"recipe\": " TINY ", \"lock\": 3}", SUBMIT_INVALID_REQUEST, "lock");
    REFUSED("{\"recipe\": " TINY ", \"no_cache\": \"yes\"}", SUBMIT_INVALID_REQUEST, "no_cache");
    REFUSED("{\"recipe\": {\"name\": \"x\", \"packages\": [\"bad name!\"]}}", SUBMIT_INVALID_RECIPE,
            "recipe.packages[0]");
    REFUSED("{\"recipe\": " TINY ", \"lock\": {\"packages\": \"nope\"}}", SUBMIT_INVALID_LOCK, "lock");
    REFUSED("{\"recipe\": " TINY ", \"recipe\": " TINY "}", SUBMIT_INVALID_JSON, "");
}

TEST(causes_have_stable_api_codes)
{
    CHECK_STR(submit_error_code(SUBMIT_INVALID_JSON), "invalid_json");
    CHECK_STR(submit_error_code(SUBMIT_INVALID_REQUEST), "invalid_request");
    CHECK_STR(submit_error_code(SUBMIT_INVALID_RECIPE), "invalid_recipe");
    CHECK_STR(submit_error_code(SUBMIT_INVALID_LOCK), "invalid_lock");
    CHECK_STR(submit_error_code(SUBMIT_QUEUE_FULL), "queue_full");
}

TEST(the_key_names_every_input_and_hashes_to_the_build_key)
{
    struct submission sub;
    struct submit_problem p;
    CHECK_INT(parse("{\"recipe\": " TINY ", \"no_cache\": true}", &sub, &p), SUBMIT_OK);
    CHECK(sub.no_cache);
    CHECK(sub.lock == NULL);
    json_error_t je;
    json_t *key = json_loads(sub.key_parts, 0, &je);
    CHECK(key != NULL);
    CHECK_STR(json_string_value(json_object_get(key, "config_hash")), sub.config_hash);
    CHECK(json_is_null(json_object_get(key, "lock_hash")));
    CHECK_STR(json_string_value(json_object_get(key, "mirror")), "http://deb.debian.org/debian");
    CHECK_STR(json_string_value(json_object_get(key, "builder")), "debate " DEBATE_VERSION);
    CHECK_INT(strlen(json_string_value(json_object_get(key, "tools"))), 64);
    json_decref(key);
    CHECK(is_sha256_hex(sub.build_key));
    submission_release(&sub);
}

/*
 * The security mirror is an input of an unlocked recipe that takes
 * security fixes; a format 1 recipe takes none, and its key has the fields
 * it always had.
 */
TEST(the_security_mirror_is_in_the_key_when_the_recipe_uses_it)
{
    struct submission sub;
    struct submit_problem p;
    json_error_t je;
    CHECK_INT(parse("{\"recipe\": " TINY "}", &sub, &p), SUBMIT_OK);
    json_t *key = json_loads(sub.key_parts, 0, &je);
    CHECK_STR(json_string_value(json_object_get(key, "security_mirror")), "http://deb.debian.org/debian-security");
    json_decref(key);
    submission_release(&sub);
    CHECK_INT(parse("{\"recipe\": {\"format\": 1, \"name\": \"tiny\", \"variant\": \"busybox\"}}", &sub, &p),
              SUBMIT_OK);
    key = json_loads(sub.key_parts, 0, &je);
    CHECK(json_object_get(key, "security_mirror") == NULL);
    CHECK_INT((int)json_object_size(key), 5);
    json_decref(key);
    submission_release(&sub);
}

TEST(the_same_recipe_gets_the_same_key_and_a_new_token)
{
    struct submission a, b;
    struct submit_problem p;
    CHECK_INT(parse("{\"recipe\": " TINY "}", &a, &p), SUBMIT_OK);
    CHECK_INT(parse("{\"no_cache\": false, \"recipe\": " TINY "}", &b, &p), SUBMIT_OK);
    CHECK_STR(a.build_key, b.build_key);
    CHECK_STR(a.key_parts, b.key_parts);
    CHECK_INT(strlen(a.cancel_token), SUBMIT_TOKEN_LEN);
    CHECK(strcmp(a.cancel_token, b.cancel_token) != 0);
    uint8_t h[32];
    submit_token_hash(a.cancel_token, h);
    CHECK(memcmp(h, a.cancel_token_hash, 32) == 0);
    submission_release(&a);
    submission_release(&b);
}

/* boot_check is read, is not part of the key, and needs a serial console. */
TEST(a_boot_check_is_asked_for_outside_the_key)
{
    struct submission a, b;
    struct submit_problem p;
    CHECK_INT(parse("{\"recipe\": " TINY ", \"boot_check\": true}", &a, &p), SUBMIT_OK);
    CHECK_INT(parse("{\"recipe\": " TINY "}", &b, &p), SUBMIT_OK);
    CHECK(a.boot_check);
    CHECK(!b.boot_check);
    CHECK_STR(a.build_key, b.build_key);
    submission_release(&a);
    submission_release(&b);
    REFUSED("{\"recipe\": " TINY ", \"boot_check\": 1}", SUBMIT_INVALID_REQUEST, "boot_check");
    struct submission c;
    const char *serial_less = "{\"boot_check\": true, \"recipe\": {\"name\": \"tiny\", \"variant\": \"busybox\", "
                              "\"packages\": [\"busybox-static\"], \"boot\": {\"cmdline\": \"console=tty0\"}}}";
    CHECK_INT(parse(serial_less, &c, &p), SUBMIT_INVALID_REQUEST);
    CHECK_STR(p.field, "boot_check");
    CHECK(strstr(p.message, "boot_check: boot.cmdline: ") == p.message);
    CHECK(strstr(p.message, "console=ttyS0") != NULL);
}

TEST(finished_table_keeps_only_what_it_was_given)
{
    struct finished *t = finished_new();
    const char *id = "6f1c1f8e-2f7e-4b55-9d7e-0b8a3f0d9c11";
    size_t len = 0;
    CHECK(finished_lookup(t, id, &len) == NULL);
    finished_store(t, id, "{\"a\":1}", 7, 0);
    char *got = finished_lookup(t, id, &len);
    CHECK(got != NULL);
    CHECK_INT(len, 7);
    CHECK(memcmp(got, "{\"a\":1}", 7) == 0);
    free(got);
    CHECK(finished_lookup(t, "6f1c1f8e-2f7e-4b55-9d7e-0b8a3f0d9c12", &len) == NULL);
    CHECK(finished_lookup(t, "short", &len) == NULL);
    finished_forget(t, id);
    CHECK(finished_lookup(t, id, &len) == NULL);
    /* what may still change is kept for its time only */
    finished_store(t, id, "{\"b\":2}", 7, 30);
    got = finished_lookup(t, id, &len);
    CHECK(got != NULL);
    free(got);
    usleep(60 * 1000);
    CHECK(finished_lookup(t, id, &len) == NULL);
    CHECK(finished_status_final("succeeded") && finished_status_final("failed") &&
          finished_status_final("cancelled"));
    CHECK(!finished_status_final("queued") && !finished_status_final("running"));
    finished_free(t);
}

TEST(checking_a_recipe_gives_the_parser_s_verdict)
{
    struct recipe_check c;
    struct submit_problem p;
    static const char good[] = "{\"recipe\": {\"name\": \"x\", \"packages\": [\"vim\"]}}";
    CHECK_INT(submission_check_recipe(good, strlen(good), &c, &p), SUBMIT_OK);
    CHECK(c.valid);
    CHECK(strlen(c.config_hash) == 64);
    CHECK(strstr(c.canonical, "\"packages\":[\"vim\"]") != NULL);
    recipe_check_release(&c);

    static const char bad[] = "{\"recipe\": {\"name\": \"x\", \"packages\": [\"vim\", \"Bad Name\"]}}";
    CHECK_INT(submission_check_recipe(bad, strlen(bad), &c, &p), SUBMIT_OK);
    CHECK(!c.valid);
    CHECK_STR(c.field, "packages[1]");
    CHECK(strncmp(c.message, "packages[1]: ", 13) == 0);
    recipe_check_release(&c);

    static const char extra[] = "{\"recipe\": {\"name\": \"x\"}, \"lock\": {}}";
    CHECK_INT(submission_check_recipe(extra, strlen(extra), &c, &p), SUBMIT_INVALID_REQUEST);
    CHECK_STR(p.field, "lock");
    static const char dup[] = "{\"recipe\": {\"name\": \"x\", \"name\": \"y\"}}";
    CHECK_INT(submission_check_recipe(dup, strlen(dup), &c, &p), SUBMIT_INVALID_JSON);
    CHECK_INT(submission_check_recipe("[]", 2, &c, &p), SUBMIT_INVALID_REQUEST);
    CHECK_INT(submission_check_recipe("{\"recipe\": 1}", 13, &c, &p), SUBMIT_INVALID_REQUEST);
    CHECK_STR(p.field, "recipe");
}
