/*
 * The boot check's pure parts: the marker each variant prints, which
 * command lines can be checked, the console capture (the marker found
 * across chunks and after the log was cut, the log capped to its end), the
 * verdict's JSON and the verdict line the sandbox hands back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bootcheck.h"
#include "engine/recipe.h"
#include "harness.h"
#include "util.h"

static void parse(struct recipe *r, const char *variant, const char *cmdline)
{
    char *json = xasprintf("{\"name\": \"tiny\", \"variant\": \"%s\", \"packages\": [\"busybox-static\"], "
                           "\"boot\": {\"cmdline\": \"%s\"}}",
                           variant, cmdline);
    struct recipe_error e;
    if (recipe_parse(json, strlen(json), r, &e) != 0)
        harness_fail(__FILE__, __LINE__, "recipe: %s: %s", e.field, e.message);
    free(json);
}

TEST(the_marker_is_the_variants)
{
    struct recipe r;
    parse(&r, "busybox", "console=ttyS0");
    char *m = bootcheck_marker(&r);
    CHECK_STR(m, "DEBATE-BOOTED tiny");
    free(m);
    recipe_release(&r);
    parse(&r, "live", "console=ttyS0");
    m = bootcheck_marker(&r);
    CHECK_STR(m, "Reached target");
    free(m);
    recipe_release(&r);
}

TEST(only_a_serial_console_can_be_checked)
{
    static const struct {
        const char *variant, *cmdline;
        bool ok;
    } cases[] = {
        {"busybox", "console=ttyS0", true},
        {"busybox", "console=ttyS0,115200n8", true},
        {"busybox", "console=tty0 console=ttyS0", true},
        {"busybox", "", false},
        {"busybox", "console=ttyS0 console=tty0", false},
        {"busybox", "console=ttyS1", false},
        {"busybox", "xconsole=ttyS0", false},
        {"busybox", "console=ttyS0 quiet", true},
        {"live", "console=ttyS0", true},
        {"live", "quiet console=ttyS0", false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct recipe r;
        parse(&r, cases[i].variant, cases[i].cmdline);
        const char *why = bootcheck_refusal(&r);
        if ((why == NULL) != cases[i].ok)
            harness_fail(__FILE__, __LINE__, "%s \"%s\": %s", cases[i].variant, cases[i].cmdline,
                         why ? why : "accepted");
        if (why != NULL)
            CHECK(strncmp(why, "boot.cmdline: ", 14) == 0);
        recipe_release(&r);
    }
}

TEST(the_marker_is_seen_across_chunks)
{
    struct boot_console c;
    boot_console_init(&c, "DEBATE-BOOTED tiny", 64);
    boot_console_feed(&c, "[    1.0] Run /sbin/init\r\nDEBATE-BOO", 36);
    CHECK(!c.seen);
    boot_console_feed(&c, "TED tiny\r\n", 10);
    CHECK(c.seen);
    CHECK(strstr(c.buf, "\r") == NULL);
    boot_console_release(&c);
}

TEST(a_partial_marker_is_not_a_pass)
{
    struct boot_console c;
    boot_console_init(&c, "DEBATE-BOOTED tiny", 64);
    boot_console_feed(&c, "DEBATE-BOOTED tin", 17);
    boot_console_feed(&c, "\nKernel panic - not syncing: Attempted to kill init!\n", 52);
    CHECK(!c.seen);
    boot_console_release(&c);
}

TEST(the_log_keeps_its_end)
{
    struct boot_console c;
    boot_console_init(&c, "MARK", 16);
    char big[10000];
    memset(big, 'x', sizeof(big));
    memcpy(big + 5000, "MARK", 4);
    memcpy(big + sizeof(big) - 6, "-end-\n", 6);
    boot_console_feed(&c, big, sizeof(big));
    CHECK(c.seen); /* seen, though cut from the log since */
    CHECK_INT((long)c.len, 16);
    CHECK_STR(c.buf, "xxxxxxxxxx-end-\n");
    boot_console_release(&c);
}

TEST(the_verdict_as_json)
{
    struct bootcheck_result r = {.checked = true, .bios = BOOT_PASS, .uefi = BOOT_FAIL, .seconds = 42};
    json_t *j = bootcheck_json(&r);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK_STR(text, "{\"bios\":\"pass\",\"result\":\"fail\",\"seconds\":42,\"uefi\":\"fail\"}");
    free(text);
    json_decref(j);
    r.uefi = BOOT_SKIPPED;
    j = bootcheck_json(&r);
    CHECK_STR(json_string_value(json_object_get(j, "result")), "pass");
    CHECK_STR(json_string_value(json_object_get(j, "uefi")), "skipped");
    json_decref(j);
}

TEST(the_verdict_line_reads_back)
{
    struct bootcheck_result r = {0};
    CHECK_INT(bootcheck_parse_verdict("bios=pass uefi=skipped\n", &r), 0);
    CHECK(r.checked);
    CHECK_INT(r.bios, BOOT_PASS);
    CHECK_INT(r.uefi, BOOT_SKIPPED);
    CHECK_INT(bootcheck_parse_verdict("bios=fail uefi=pass", &r), 0);
    CHECK_INT(r.bios, BOOT_FAIL);
    struct bootcheck_result bad = {0};
    CHECK_INT(bootcheck_parse_verdict("", &bad), -1);
    CHECK_INT(bootcheck_parse_verdict("bios=maybe uefi=pass", &bad), -1);
    CHECK_INT(bootcheck_parse_verdict("uefi=pass bios=pass", &bad), -1);
    CHECK(!bad.checked);
}
