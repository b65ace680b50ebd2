/*
 * The lock parser (lock_parse), which reads a lock a user hands to
 * `debate build --lock` against the recipe it is for. An accepted lock's
 * canonical JSON must parse back to the same bytes and lock_hash.
 */
#include "fuzz.h"

#include "engine/recipe.h"
#include "engine/resolve.h"
#include "banned.h"

/* examples/tiny.json's packages: a lock must pin both. */
static const char recipe_text[] = "{\"name\":\"tiny\",\"variant\":\"busybox\","
                                  "\"packages\":[\"busybox-static\",\"linux-image-amd64\"]}";
static struct recipe recipe;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct recipe_error err;
    fuzz_require(recipe_parse(recipe_text, strlen(recipe_text), &recipe, &err) == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lock l, again;
    char err[512] = "";
    if (lock_parse((const char *)data, size, &recipe, &l, err, sizeof(err)) < 0) {
        fuzz_require(strncmp(err, "lock: ", 6) == 0);
        return 0;
    }
    fuzz_require(is_sha256_hex(l.hash));
    fuzz_require(lock_parse(l.json, strlen(l.json), &recipe, &again, err, sizeof(err)) == 0);
    fuzz_require(strcmp(again.json, l.json) == 0);
    fuzz_require(strcmp(again.hash, l.hash) == 0);
    lock_release(&again);
    lock_release(&l);
    return 0;
}
