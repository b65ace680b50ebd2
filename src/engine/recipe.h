/*
 * Recipes: strict parsing, validation, canonical form and config_hash. See
 * docs/recipes.md for the format.
 *
 * Formats: a recipe's "format" says what the fields it leaves out mean,
 * and a format keeps its meaning forever. Format 1 is Debian 12 bookworm,
 * the main component, the release's own suite alone; its canonical form
 * (and so its config_hash) has none of the later fields. Format 2 adds
 * "components", "updates" and "security", and defaults to trixie with the
 * updates and security suites. Format 3, the current one and what a
 * recipe without "format" is read as, has format 2's fields and defaults
 * and writes its squashfs with zstd level 9 in 1 MiB blocks (formats 1
 * and 2: level 15, 128 KiB blocks), as smaller an image in a tenth of the
 * time.
 *
 * Strict: unknown fields, wrong types, duplicate keys, non-integer numbers
 * and oversized values are errors. Every error names the field
 * ("packages[3]", "overlays[0].path") and says what is wrong.
 *
 * Canonical form: every field present (defaults filled in), packages
 * sorted and deduplicated, overlays sorted by path, hooks sorted by name
 * (the order they run in), keys sorted, no insignificant whitespace, ASCII
 * only (other characters as \u escapes). config_hash is the SHA-256 of
 * those bytes, in lower-case hex.
 */
#ifndef DEBATE_ENGINE_RECIPE_H
#define DEBATE_ENGINE_RECIPE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define RECIPE_MAX_BYTES (16u << 20)     /* the whole document */
#define RECIPE_MAX_PACKAGES 512
#define RECIPE_MAX_OVERLAY_BYTES (8u << 20) /* all overlay contents together */
#define RECIPE_MAX_OVERLAYS 1024
#define RECIPE_MAX_HOOKS 64
#define RECIPE_MAX_HOOK_BYTES (64u << 10)
#define RECIPE_FORMAT_CURRENT 3

struct recipe_error {
    char field[128];   /* "" for the document as a whole */
    char message[256];
    int line, column;  /* for syntax errors, else 0 */
};

struct recipe_overlay {
    char *path;
    unsigned mode;
    char *content;
    size_t content_len;
};

struct recipe_hook {
    char *name;
    char *script;
};

struct recipe {
    int format; /* 1, 2 or 3, as read (RECIPE_FORMAT_CURRENT when left out) */
    char *name;
    char *distribution;
    char *release;
    char *architecture;
    char *variant; /* "live" (live-boot, systemd) or "busybox" */
    char **packages;
    size_t npackages;
    struct recipe_overlay *overlays;
    size_t noverlays;
    struct recipe_hook *hooks;
    size_t nhooks;
    bool boot_bios, boot_uefi;
    char *cmdline;
    char *hostname;
    char *compression; /* "zstd" or "xz" */
    unsigned squashfs_block_kib; /* the squashfs block size: 128 (formats 1 and 2) or 1024 (format 3) */
    int squashfs_zstd_level;     /* with zstd: 15 (formats 1 and 2) or 9 (format 3) */
    char **components; /* in the archive's order, "main" first; format 1: "main" alone */
    size_t ncomponents;
    bool updates, security; /* RELEASE-updates and RELEASE-security too; format 1: neither */
    char *canonical;   /* canonical JSON */
    char config_hash[65];
};

/* Parses and validates. 0, or -1 with *err filled in. */
int recipe_parse(const char *text, size_t len, struct recipe *r, struct recipe_error *err);
/* Reads a file (at most RECIPE_MAX_BYTES) and parses it. */
int recipe_load(const char *path, struct recipe *r, struct recipe_error *err);
void recipe_release(struct recipe *r);

/* The releases a recipe may name, NULL-terminated ("trixie", "bookworm"; static). */
const char *const *recipe_releases(void);
/* The release of a current-format recipe that names none (static). */
const char *recipe_default_release(void);

/* "field: message" or "line L, column C: message" into buf. */
void recipe_error_format(const struct recipe_error *err, char *buf, size_t len);

#endif
