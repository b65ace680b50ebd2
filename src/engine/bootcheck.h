/*
 * The boot check: proof that an assembled ISO boots. Once the ISO is out
 * of the build's sandbox, the engine starts a second sandbox (the same
 * limits, the ISO bound read-only at /mnt/iso) whose payload boots it under
 * QEMU, without network, once with SeaBIOS and once with OVMF, for each
 * firmware the recipe builds for, reading the serial console. A boot
 * passes when the live system's userspace prints its marker on the console
 * (bootcheck_marker) within boot_check_timeout seconds.
 *
 * The check never changes the image: the ISO is the same bytes with and
 * without it, and the verdict lives in the manifest and the build record.
 * The console has to be the serial port for the check to read it, and the
 * boot loader's command line is in the ISO: a recipe whose command line
 * does not end its consoles on ttyS0 cannot be checked (bootcheck_refusal).
 *
 * The pure parts (the marker, the refusal, the console's capped capture,
 * the verdict's text and JSON) need no sandbox and are what the unit tests
 * drive; bootcheck_run is engine_build's step (engine_int.h).
 */
#ifndef DEBATE_ENGINE_BOOTCHECK_H
#define DEBATE_ENGINE_BOOTCHECK_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "engine/recipe.h"

/* The console kept of each firmware's boot: its last 32 KiB (64 KiB for both). */
#define BOOTCHECK_LOG_CAP (32u << 10)
/* How long the console is still read once the marker appeared: the lines after it belong to the proof. */
#define BOOTCHECK_LINGER_MS 3000u

enum boot_verdict {
    BOOT_SKIPPED, /* the image is not made for this firmware (boot.bios or boot.uefi false) */
    BOOT_PASS,
    BOOT_FAIL,
};

struct bootcheck_result {
    bool checked; /* a boot check ran */
    enum boot_verdict bios, uefi;
    long long seconds; /* wall time of the whole check */
};

/* "pass", "fail", "skipped". */
const char *bootcheck_verdict_name(enum boot_verdict v);

/* true when every firmware checked passed. */
bool bootcheck_passed(const struct bootcheck_result *r);

/*
 * The line the image's userspace prints on its console once it runs
 * (malloc'd): "DEBATE-BOOTED NAME" from the busybox variant's rcS, and
 * systemd's "Reached target" status line for the live variant.
 */
char *bootcheck_marker(const struct recipe *r);

/* NULL when r can be boot-checked; else why not, a sentence naming boot.cmdline (static text). */
const char *bootcheck_refusal(const struct recipe *r);

/*
 * A boot's console as it comes: the last cap bytes are kept (carriage
 * returns and NUL bytes dropped), and whether the marker appeared, even
 * split across chunks or in output that was later cut.
 */
struct boot_console {
    char *buf;
    size_t len, cap;
    const char *marker; /* borrowed */
    bool seen;
};

void boot_console_init(struct boot_console *c, const char *marker, size_t cap);
void boot_console_feed(struct boot_console *c, const char *data, size_t n);
void boot_console_release(struct boot_console *c);

/* {"result": "pass"|"fail", "bios": ..., "uefi": ..., "seconds": N} (a new reference). */
json_t *bootcheck_json(const struct bootcheck_result *r);

/*
 * The payload's verdict line, "bios=VERDICT uefi=VERDICT", back into r
 * (checked set, seconds left alone): 0, or -1 when the text is not one.
 */
int bootcheck_parse_verdict(const char *text, struct bootcheck_result *r);

#endif
