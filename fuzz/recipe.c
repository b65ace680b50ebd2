/*
 * The recipe parser (recipe_parse), which reads what anyone may POST to
 * /builds. Beyond not crashing, an accepted recipe's canonical form must
 * itself be a recipe that parses back to the same bytes and config_hash:
 * the cache key depends on it.
 */
#include "fuzz.h"

#include "engine/recipe.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct recipe r, again;
    struct recipe_error err;
    char msg[512];
    if (recipe_parse((const char *)data, size, &r, &err) < 0) {
        recipe_error_format(&err, msg, sizeof(msg));
        fuzz_require(msg[0] != '\0');
        return 0;
    }
    int rc = recipe_parse(r.canonical, strlen(r.canonical), &again, &err);
    fuzz_require(rc == 0);
    fuzz_require(strcmp(again.canonical, r.canonical) == 0);
    fuzz_require(strcmp(again.config_hash, r.config_hash) == 0);
    recipe_release(&again);
    recipe_release(&r);
    return 0;
}
