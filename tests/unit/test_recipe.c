#include <stdlib.h>
#include <string.h>

#include "engine/recipe.h"
#include "harness.h"
#include "digest.h"
#include "util.h"

/* config_hash of examples/tiny.json as debate computed it before recipe format 2 existed. */
#define TINY_FORMAT_1_HASH "eb473152524efebf775135c2a4ba73dbe4b72533be380c67b763c2fdc42b389d"

struct fixture {
    const char *name;
    const char *json;
    const char *error; /* NULL: valid; else the exact formatted error */
};

static const struct fixture fixtures[] = {
    {"minimal valid", "{\"name\":\"x1\"}", NULL},
    {"full valid",
     "{\"format\":1,\"name\":\"rescue\",\"distribution\":\"debian\",\"release\":\"bookworm\",\"architecture\":"
     "\"amd64\",\"variant\":\"live\",\"packages\":[\"linux-image-amd64\",\"g++\",\"libc6.1\"],\"overlays\":[{\"path\":"
     "\"/etc/motd\",\"mode\":\"0600\",\"content\":\"hi\\n\"}],\"hooks\":[{\"name\":\"10-ssh\",\"script\":\"#!/bin/sh\\n"
     "true\\n\"}],\"boot\":{\"bios\":true,\"uefi\":false,\"cmdline\":\"quiet console=ttyS0\"},\"hostname\":\"box\","
     "\"compression\":\"xz\"}",
     NULL},
    {"not json", "{\"name\":", "line 1, column 8: unexpected token near end of file"},
    {"trailing garbage", "{\"name\":\"x\"} x", "line 1, column 14: end of file expected near 'x'"},
    {"not an object", "[1,2]", "a recipe must be a JSON object, not an array"},
    {"unknown field", "{\"name\":\"x\",\"colour\":\"red\"}", "colour: is not a recipe field"},
    {"unknown nested field", "{\"name\":\"x\",\"boot\":{\"grub\":true}}", "boot.grub: is not a recipe field"},
    {"duplicate key", "{\"name\":\"x\",\"name\":\"y\"}", "line 1, column 18: duplicate object key near '\"name\"'"},
    {"missing name", "{}", "name: is required"},
    {"name wrong type", "{\"name\":42}", "name: must be a string, not an integer"},
    {"bad name", "{\"name\":\"My Image\"}",
     "name: \"My Image\" must be 1-63 of a-z, 0-9 and inner '-', starting with a letter or digit"},
    {"format 2", "{\"name\":\"x\",\"format\":2}", NULL},
    {"format 3", "{\"name\":\"x\",\"format\":3}", NULL},
    {"format 4", "{\"name\":\"x\",\"format\":4}", "format: must be 1, 2 or 3 (leave it out for 3, the current one)"},
    {"unsupported release", "{\"name\":\"x\",\"release\":\"sid\"}",
     "release: \"sid\" is not supported (\"trixie\" or \"bookworm\")"},
    {"format 1 has bookworm alone", "{\"name\":\"x\",\"format\":1,\"release\":\"trixie\"}",
     "release: \"trixie\" is not supported (only \"bookworm\")"},
    {"format 1 has no components", "{\"name\":\"x\",\"format\":1,\"components\":[\"main\"]}",
     "components: is not a field of recipe format 1 (leave out \"format\" to use it)"},
    {"format 1 has no security", "{\"name\":\"x\",\"format\":1,\"security\":false}",
     "security: is not a field of recipe format 1 (leave out \"format\" to use it)"},
    {"bookworm in format 2", "{\"name\":\"x\",\"release\":\"bookworm\",\"updates\":false}", NULL},
    {"all components",
     "{\"name\":\"x\",\"components\":[\"non-free-firmware\",\"main\",\"contrib\",\"non-free\"]}", NULL},
    {"unknown component", "{\"name\":\"x\",\"components\":[\"main\",\"restricted\"]}",
     "components[1]: \"restricted\" is not a Debian component (\"main\", \"contrib\", \"non-free\" or "
     "\"non-free-firmware\")"},
    {"duplicate component", "{\"name\":\"x\",\"components\":[\"main\",\"contrib\",\"main\"]}",
     "components[2]: \"main\" is listed twice"},
    {"components without main", "{\"name\":\"x\",\"components\":[\"non-free-firmware\"]}",
     "components: must include \"main\" (the release's own packages)"},
    {"components not an array", "{\"name\":\"x\",\"components\":\"main\"}",
     "components: must be an array of archive components, not a string"},
    {"component not a string", "{\"name\":\"x\",\"components\":[\"main\",1]}",
     "components[1]: must be a string, not an integer"},
    {"security not a boolean", "{\"name\":\"x\",\"security\":\"no\"}",
     "security: must be true or false, not a string"},
    {"packages not array", "{\"name\":\"x\",\"packages\":\"vim\"}",
     "packages: must be an array of package names, not a string"},
    {"package wrong type", "{\"name\":\"x\",\"packages\":[\"vim\",3]}", "packages[1]: must be a string, not an integer"},
    {"bad package name", "{\"name\":\"x\",\"packages\":[\"vim\",\"bash\",\"Evil;rm\"]}",
     "packages[2]: \"Evil;rm\" is not a Debian package name (lower-case letters, digits, '+', '-', '.'; at least 2 "
     "characters, starting with a letter or digit)"},
    {"package option injection", "{\"name\":\"x\",\"packages\":[\"--allow-unauthenticated\"]}",
     "packages[0]: \"--allow-unauthenticated\" is not a Debian package name (lower-case letters, digits, '+', '-', "
     "'.'; at least 2 characters, starting with a letter or digit)"},
    {"dotdot overlay", "{\"name\":\"x\",\"overlays\":[{\"path\":\"/etc/../../root/x\",\"content\":\"\"}]}",
     "overlays[0].path: \"/etc/../../root/x\" must not contain \".\" or \"..\" segments"},
    {"relative overlay", "{\"name\":\"x\",\"overlays\":[{\"path\":\"etc/motd\",\"content\":\"\"}]}",
     "overlays[0].path: \"etc/motd\" must be an absolute path"},
    {"overlay under proc", "{\"name\":\"x\",\"overlays\":[{\"path\":\"/proc/sys/x\",\"content\":\"\"}]}",
     "overlays[0].path: \"/proc/sys/x\" is under /proc, which is not part of the image"},
    {"overlay double slash", "{\"name\":\"x\",\"overlays\":[{\"path\":\"/etc//motd\",\"content\":\"\"}]}",
     "overlays[0].path: \"/etc//motd\" is not normalised (empty segment)"},
    {"overlay setuid mode", "{\"name\":\"x\",\"overlays\":[{\"path\":\"/x\",\"mode\":\"4755\",\"content\":\"\"}]}",
     "overlays[0].mode: \"4755\" must be four octal digits from 0000 to 0777 (no setuid, setgid or sticky)"},
    {"overlay missing content", "{\"name\":\"x\",\"overlays\":[{\"path\":\"/x\"}]}", "overlays[0].content: is required"},
    {"overlay duplicate path",
     "{\"name\":\"x\",\"overlays\":[{\"path\":\"/x\",\"content\":\"a\"},{\"path\":\"/x\",\"content\":\"b\"}]}",
     "overlays: \"/x\" appears more than once"},
    {"hook without shebang", "{\"name\":\"x\",\"hooks\":[{\"name\":\"a\",\"script\":\"rm -rf /\"}]}",
     "hooks[0].script: must start with an interpreter line such as \"#!/bin/sh\""},
    {"hook bad name", "{\"name\":\"x\",\"hooks\":[{\"name\":\"../a\",\"script\":\"#!/bin/sh\"}]}",
     "hooks[0].name: \"../a\" must be 1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"},
    {"no boot", "{\"name\":\"x\",\"boot\":{\"bios\":false,\"uefi\":false}}", "boot: must enable bios, uefi or both"},
    {"boot bool type", "{\"name\":\"x\",\"boot\":{\"bios\":\"yes\"}}", "boot.bios: must be true or false, not a string"},
    {"cmdline injection", "{\"name\":\"x\",\"boot\":{\"cmdline\":\"quiet'; reboot\"}}",
     "boot.cmdline: must be printable ASCII without quotes, backslashes or ';'"},
    {"bad compression", "{\"name\":\"x\",\"compression\":\"lz4\"}", "compression: \"lz4\" must be \"zstd\" or \"xz\""},
    {"real number", "{\"name\":\"x\",\"format\":1.0}", "format: must be 1, 2 or 3 (leave it out for 3, the current one)"},
};

TEST(valid_and_invalid_recipes)
{
    for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
        struct recipe r;
        struct recipe_error e;
        int rc = recipe_parse(fixtures[i].json, strlen(fixtures[i].json), &r, &e);
        char msg[512] = "";
        if (rc < 0)
            recipe_error_format(&e, msg, sizeof(msg));
        if (fixtures[i].error == NULL && rc != 0)
            harness_fail(__FILE__, __LINE__, "\"%s\": unexpected error: %s", fixtures[i].name, msg);
        if (fixtures[i].error != NULL && (rc == 0 || strcmp(msg, fixtures[i].error) != 0))
            harness_fail(__FILE__, __LINE__, "\"%s\": got \"%s\", expected \"%s\"", fixtures[i].name,
                         rc == 0 ? "(valid)" : msg, fixtures[i].error);
        if (rc == 0)
            recipe_release(&r);
    }
}

TEST(oversized_parts_are_refused)
{
    /* 513 packages. */
    size_t cap = 64 * 1024;
    char *json = xmalloc(cap);
    size_t n = (size_t)snprintf(json, cap, "{\"name\":\"x\",\"packages\":[");
    for (int i = 0; i < 513; i++)
        n += (size_t)snprintf(json + n, cap - n, "%s\"pkg%d\"", i ? "," : "", i);
    n += (size_t)snprintf(json + n, cap - n, "]}");
    struct recipe r;
    struct recipe_error e;
    CHECK_INT(recipe_parse(json, n, &r, &e), -1);
    CHECK_STR(e.field, "packages");
    CHECK_STR(e.message, "has 513 entries; at most 512 are allowed");
    free(json);
    /* A hook over 64 KiB. */
    size_t big = RECIPE_MAX_HOOK_BYTES + 10;
    json = xmalloc(big + 200);
    n = (size_t)snprintf(json, 200, "{\"name\":\"x\",\"hooks\":[{\"name\":\"a\",\"script\":\"#!");
    memset(json + n, 'a', big);
    n += big;
    n += (size_t)snprintf(json + n, 200, "\"}]}");
    CHECK_INT(recipe_parse(json, n, &r, &e), -1);
    CHECK_STR(e.field, "hooks[0].script");
    free(json);
    /* Overlays over 8 MiB in all: two of 5 MiB. */
    size_t five = 5u << 20;
    json = xmalloc(2 * five + 400);
    n = (size_t)snprintf(json, 200, "{\"name\":\"x\",\"overlays\":[{\"path\":\"/a\",\"content\":\"");
    memset(json + n, 'a', five);
    n += five;
    n += (size_t)snprintf(json + n, 200, "\"},{\"path\":\"/b\",\"content\":\"");
    memset(json + n, 'b', five);
    n += five;
    n += (size_t)snprintf(json + n, 200, "\"}]}");
    CHECK_INT(recipe_parse(json, n, &r, &e), -1);
    CHECK_STR(e.field, "overlays[1].content");
    CHECK_STR(e.message, "brings the overlays over 8388608 bytes in all");
    free(json);
}

static const char *hash_of(const char *json)
{
    static char out[65];
    struct recipe r;
    struct recipe_error e;
    if (recipe_parse(json, strlen(json), &r, &e) < 0)
        harness_fail(__FILE__, __LINE__, "invalid: %s", e.message);
    memcpy(out, r.config_hash, 65);
    recipe_release(&r);
    return out;
}

TEST(hash_ignores_key_order_whitespace_and_package_order)
{
    char a[65], b[65], c[65], d[65];
    snprintf(a, 65, "%s", hash_of("{\"name\":\"x\",\"packages\":[\"vim\",\"bash\"],\"compression\":\"zstd\"}"));
    snprintf(b, 65, "%s",
             hash_of("{\n  \"compression\": \"zstd\",\n  \"packages\": [\"bash\", \"vim\", \"bash\"],\n  \"name\": \"x\"\n}"));
    /* Defaults written out hash the same as defaults left out. */
    snprintf(c, 65, "%s",
             hash_of("{\"name\":\"x\",\"packages\":[\"bash\",\"vim\"],\"release\":\"trixie\",\"hostname\":\"x\","
                     "\"boot\":{\"bios\":true},\"format\":3,\"updates\":true,\"security\":true,"
                     "\"components\":[\"main\"]}"));
    CHECK_STR(a, b);
    CHECK_STR(a, c);
    /* A real difference changes it. */
    snprintf(d, 65, "%s", hash_of("{\"name\":\"x\",\"packages\":[\"vim\",\"bash\",\"zsh\"]}"));
    CHECK(strcmp(a, d) != 0);
    snprintf(d, 65, "%s", hash_of("{\"name\":\"x\",\"packages\":[\"vim\",\"bash\"],\"compression\":\"xz\"}"));
    CHECK(strcmp(a, d) != 0);
}

/*
 * A format 1 recipe keeps the canonical form, and so the config_hash, it
 * always had: the hash of examples/tiny.json before format 2 existed.
 */
TEST(format_1_keeps_its_meaning_and_its_hash)
{
    static const char tiny[] =
        "{\"name\":\"tiny\",\"format\":1,\"variant\":\"busybox\",\"packages\":[\"busybox-static\","
        "\"linux-image-amd64\"],\"overlays\":[{\"path\":\"/etc/motd\",\"mode\":\"0644\",\"content\":"
        "\"debate tiny image\\n\"}],\"hooks\":[{\"name\":\"10-marker\",\"script\":\"#!/bin/sh\\nset -e\\n"
        "echo 'DEBATE-TINY-BOOTED' > /etc/debate-marker\\n\"}],\"boot\":{\"bios\":true,\"uefi\":true,"
        "\"cmdline\":\"console=ttyS0\"},\"compression\":\"zstd\"}";
    struct recipe r;
    struct recipe_error e;
    CHECK_INT(recipe_parse(tiny, strlen(tiny), &r, &e), 0);
    CHECK_INT(r.format, 1);
    CHECK_STR(r.release, "bookworm");
    CHECK(!r.updates && !r.security);
    CHECK_INT((int)r.ncomponents, 1);
    CHECK_STR(r.components[0], "main");
    CHECK_STR(r.config_hash, TINY_FORMAT_1_HASH);
    recipe_release(&r);
}

TEST(format_2_defaults_to_trixie_with_updates_and_security)
{
    const char *json = "{\"name\":\"x\",\"format\":2,\"components\":[\"non-free-firmware\",\"main\"]}";
    struct recipe r;
    struct recipe_error e;
    CHECK_INT(recipe_parse(json, strlen(json), &r, &e), 0);
    CHECK_INT(r.format, 2);
    CHECK_INT((int)r.squashfs_block_kib, 128);
    CHECK_INT(r.squashfs_zstd_level, 15);
    CHECK_STR(r.release, "trixie");
    CHECK(r.updates && r.security);
    CHECK(strstr(r.canonical, "\"components\":[\"main\",\"non-free-firmware\"]") != NULL);
    CHECK(strstr(r.canonical, "\"format\":2,") != NULL);
    CHECK(strstr(r.canonical, "\"security\":true") != NULL && strstr(r.canonical, "\"updates\":true") != NULL);
    recipe_release(&r);
}

TEST(canonical_form_is_sorted_and_complete)
{
    const char *json = "{\"name\":\"x\",\"format\":1,\"hooks\":[{\"name\":\"b\",\"script\":\"#!/bin/sh\"},{\"name\":\"a\",\"script\":"
                       "\"#!/bin/sh\"}],\"overlays\":[{\"path\":\"/z\",\"content\":\"\\u00e9\"},{\"path\":\"/a\","
                       "\"content\":\"1\"}]}";
    struct recipe r;
    struct recipe_error e;
    CHECK_INT(recipe_parse(json, strlen(json), &r, &e), 0);
    CHECK_STR(r.canonical,
              "{\"architecture\":\"amd64\",\"boot\":{\"bios\":true,\"cmdline\":\"\",\"uefi\":true},\"compression\":"
              "\"zstd\",\"distribution\":\"debian\",\"format\":1,\"hooks\":[{\"name\":\"a\",\"script\":\"#!/bin/sh\"},"
              "{\"name\":\"b\",\"script\":\"#!/bin/sh\"}],\"hostname\":\"x\",\"name\":\"x\",\"overlays\":[{\"content\":"
              "\"1\",\"mode\":\"0644\",\"path\":\"/a\"},{\"content\":\"\\u00E9\",\"mode\":\"0644\",\"path\":\"/z\"}],"
              "\"packages\":[],\"release\":\"bookworm\",\"variant\":\"live\"}");
    char again[65];
    sha256_hex(r.canonical, strlen(r.canonical), again);
    CHECK_STR(r.config_hash, again);
    recipe_release(&r);
}

/*
 * A recipe without "format" is format 3: format 2's fields and defaults,
 * its own squashfs setting, its own config_hash (a lock or manifest of
 * format 2 keeps rebuilding with format 2's setting).
 */
TEST(format_3_is_the_current_one_with_its_own_squashfs_setting)
{
    const char *bare = "{\"name\":\"x\"}", *two = "{\"name\":\"x\",\"format\":2}", *three = "{\"name\":\"x\",\"format\":3}";
    struct recipe r, r2, r3;
    struct recipe_error e;
    CHECK_INT(recipe_parse(bare, strlen(bare), &r, &e), 0);
    CHECK_INT(recipe_parse(two, strlen(two), &r2, &e), 0);
    CHECK_INT(recipe_parse(three, strlen(three), &r3, &e), 0);
    CHECK_INT(r.format, 3);
    CHECK_STR(r.release, "trixie");
    CHECK(r.updates && r.security);
    CHECK_INT((int)r.squashfs_block_kib, 1024);
    CHECK_INT(r.squashfs_zstd_level, 9);
    CHECK(strstr(r.canonical, "\"format\":3,") != NULL);
    CHECK_STR(r.config_hash, r3.config_hash);
    CHECK(strcmp(r.config_hash, r2.config_hash) != 0);
    recipe_release(&r);
    recipe_release(&r2);
    recipe_release(&r3);
}
