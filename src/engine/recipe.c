#include "engine/recipe.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "digest.h"
#include "util.h"
#include "banned.h"

/* Validation context: the first error wins. */
struct ctx {
    struct recipe_error *err;
    bool failed;
};

static bool fail(struct ctx *c, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(struct ctx *c, const char *field, const char *fmt, ...)
{
    if (c->failed)
        return false;
    c->failed = true;
    snprintf(c->err->field, sizeof(c->err->field), "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err->message, sizeof(c->err->message), fmt, ap);
    va_end(ap);
    return false;
}

static bool in_set(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

/* [a-z0-9] first, then the given extra characters. */
static bool is_token(const char *s, const char *extra, size_t min, size_t max)
{
    size_t n = strlen(s);
    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (i > 0 && strchr(extra, ch) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

/* A string field: absent gives def (NULL: required). */
static bool get_string(struct ctx *c, json_t *obj, const char *key, const char *field, const char *def, char **out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        if (def == NULL)
            return fail(c, field, "is required");
        *out = xstrdup(def);
        return true;
    }
    if (!json_is_string(v))
        return fail(c, field, "must be a string, not %s", type_name(v));
    if (strlen(json_string_value(v)) != json_string_length(v))
        return fail(c, field, "must not contain NUL characters");
    *out = xstrdup(json_string_value(v));
    return true;
}

static bool get_bool(struct ctx *c, json_t *obj, const char *key, const char *field, bool def, bool *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        *out = def;
        return true;
    }
    if (!json_is_boolean(v))
        return fail(c, field, "must be true or false, not %s", type_name(v));
    *out = json_is_true(v);
    return true;
}

/* Refuses keys outside allowed. */
static bool only_keys(struct ctx *c, json_t *obj, const char *prefix, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (!in_set(key, allowed)) {
            char field[128];
            snprintf(field, sizeof(field), "%s%s", prefix, key);
            return fail(c, field, "is not a recipe field");
        }
    }
    return true;
}

/*
 * An optional array field of at most max entries: true with *out NULL when
 * absent, true with *out set when valid, false (error recorded) otherwise.
 */
static bool get_array(struct ctx *c, json_t *doc, const char *key, const char *what, size_t max, json_t **out)
{
    json_t *arr = json_object_get(doc, key);
    *out = NULL;
    if (arr == NULL)
        return true;
    if (!json_is_array(arr))
        return fail(c, key, "must be an array%s, not %s", what, type_name(arr));
    if (json_array_size(arr) > max)
        return fail(c, key, "has %zu entries; at most %zu are allowed", json_array_size(arr), max);
    *out = arr;
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool parse_packages(struct ctx *c, json_t *doc, struct recipe *r)
{
    json_t *arr;
    if (!get_array(c, doc, "packages", " of package names", RECIPE_MAX_PACKAGES, &arr) || arr == NULL)
        return !c->failed;
    r->packages = xcalloc(json_array_size(arr) + 1, sizeof(char *));
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        char field[32];
        snprintf(field, sizeof(field), "packages[%zu]", i);
        if (!json_is_string(v))
            return fail(c, field, "must be a string, not %s", type_name(v));
        const char *name = json_string_value(v);
        if (!is_token(name, "+-.", 2, 128))
            return fail(c, field,
                        "\"%.64s\" is not a Debian package name (lower-case letters, digits, '+', '-', '.'; at least "
                        "2 characters, starting with a letter or digit)",
                        name);
        r->packages[r->npackages++] = xstrdup(name);
    }
    qsort(r->packages, r->npackages, sizeof(char *), cmp_str);
    size_t out = 0;
    for (size_t k = 0; k < r->npackages; k++) {
        if (out > 0 && strcmp(r->packages[out - 1], r->packages[k]) == 0)
            free(r->packages[k]);
        else
            r->packages[out++] = r->packages[k];
    }
    r->npackages = out;
    return true;
}

static bool valid_overlay_path(struct ctx *c, const char *field, const char *p)
{
    static const char *const forbidden[] = {"/proc", "/sys", "/dev", NULL};
    size_t n = strlen(p);
    if (p[0] != '/')
        return fail(c, field, "\"%.64s\" must be an absolute path", p);
    if (n < 2 || n > 1024)
        return fail(c, field, "must name a file below / in at most 1024 characters");
    if (p[n - 1] == '/')
        return fail(c, field, "\"%.64s\" must name a file, not end in '/'", p);
    for (const char *s = p; *s; s++)
        if ((unsigned char)*s < ' ' || *s == 0x7f || *s == '\\')
            return fail(c, field, "must not contain control characters or backslashes");
    for (const char *seg = p + 1; *seg;) {
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (len == 0)
            return fail(c, field, "\"%.64s\" is not normalised (empty segment)", p);
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return fail(c, field, "\"%.64s\" must not contain \".\" or \"..\" segments", p);
        if (len > 255)
            return fail(c, field, "has a name longer than 255 characters");
        seg += len + (end ? 1 : 0);
    }
    for (int i = 0; forbidden[i]; i++) {
        size_t fl = strlen(forbidden[i]);
        if (strncmp(p, forbidden[i], fl) == 0 && (p[fl] == '/' || p[fl] == '\0'))
            return fail(c, field, "\"%.64s\" is under %s, which is not part of the image", p, forbidden[i]);
    }
    return true;
}

static int cmp_overlay(const void *a, const void *b)
{
    return strcmp(((const struct recipe_overlay *)a)->path, ((const struct recipe_overlay *)b)->path);
}

static bool parse_overlay(struct ctx *c, json_t *v, size_t i, struct recipe_overlay *o, size_t *total)
{
    static const char *const keys[] = {"path", "mode", "content", NULL};
    char prefix[48], field[64];
    snprintf(prefix, sizeof(prefix), "overlays[%zu].", i);
    if (!json_is_object(v)) {
        snprintf(field, sizeof(field), "overlays[%zu]", i);
        return fail(c, field, "must be an object with path, mode and content, not %s", type_name(v));
    }
    if (!only_keys(c, v, prefix, keys))
        return false;
    snprintf(field, sizeof(field), "%spath", prefix);
    if (!get_string(c, v, "path", field, NULL, &o->path) || !valid_overlay_path(c, field, o->path))
        return false;
    _cleanup_free_ char *mode = NULL;
    snprintf(field, sizeof(field), "%smode", prefix);
    if (!get_string(c, v, "mode", field, "0644", &mode))
        return false;
    if (strlen(mode) != 4 || mode[0] != '0' || strspn(mode, "01234567") != 4)
        return fail(c, field, "\"%.16s\" must be four octal digits from 0000 to 0777 (no setuid, setgid or sticky)",
                    mode);
    o->mode = (unsigned)strtoul(mode, NULL, 8);
    snprintf(field, sizeof(field), "%scontent", prefix);
    json_t *content = json_object_get(v, "content");
    if (content == NULL)
        return fail(c, field, "is required");
    if (!json_is_string(content))
        return fail(c, field, "must be a string, not %s", type_name(content));
    o->content_len = json_string_length(content);
    if (strlen(json_string_value(content)) != o->content_len)
        return fail(c, field, "must not contain NUL characters");
    *total += o->content_len;
    if (*total > RECIPE_MAX_OVERLAY_BYTES)
        return fail(c, field, "brings the overlays over %u bytes in all", RECIPE_MAX_OVERLAY_BYTES);
    o->content = xstrndup(json_string_value(content), o->content_len);
    return true;
}

static bool parse_overlays(struct ctx *c, json_t *doc, struct recipe *r)
{
    json_t *arr;
    if (!get_array(c, doc, "overlays", "", RECIPE_MAX_OVERLAYS, &arr) || arr == NULL)
        return !c->failed;
    r->overlays = xcalloc(json_array_size(arr) + 1, sizeof(*r->overlays));
    size_t i, total = 0;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!parse_overlay(c, v, i, &r->overlays[i], &total)) {
            free(r->overlays[i].path); /* not counted yet: recipe_release would miss them */
            free(r->overlays[i].content);
            memset(&r->overlays[i], 0, sizeof(r->overlays[i]));
            return false;
        }
        r->noverlays++;
    }
    qsort(r->overlays, r->noverlays, sizeof(*r->overlays), cmp_overlay);
    for (i = 1; i < r->noverlays; i++)
        if (strcmp(r->overlays[i - 1].path, r->overlays[i].path) == 0)
            return fail(c, "overlays", "\"%.64s\" appears more than once", r->overlays[i].path);
    return true;
}

static int cmp_hook(const void *a, const void *b)
{
    return strcmp(((const struct recipe_hook *)a)->name, ((const struct recipe_hook *)b)->name);
}

static bool parse_hook(struct ctx *c, json_t *v, size_t i, struct recipe_hook *h)
{
    static const char *const keys[] = {"name", "script", NULL};
    char prefix[48], field[64];
    snprintf(prefix, sizeof(prefix), "hooks[%zu].", i);
    if (!json_is_object(v)) {
        snprintf(field, sizeof(field), "hooks[%zu]", i);
        return fail(c, field, "must be an object with name and script, not %s", type_name(v));
    }
    if (!only_keys(c, v, prefix, keys))
        return false;
    snprintf(field, sizeof(field), "%sname", prefix);
    if (!get_string(c, v, "name", field, NULL, &h->name))
        return false;
    if (!is_token(h->name, "._-", 1, 64))
        return fail(c, field, "\"%.64s\" must be 1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
                    h->name);
    snprintf(field, sizeof(field), "%sscript", prefix);
    if (!get_string(c, v, "script", field, NULL, &h->script))
        return false;
    if (strlen(h->script) > RECIPE_MAX_HOOK_BYTES)
        return fail(c, field, "is %zu bytes; at most %u are allowed", strlen(h->script), RECIPE_MAX_HOOK_BYTES);
    if (strncmp(h->script, "#!", 2) != 0)
        return fail(c, field, "must start with an interpreter line such as \"#!/bin/sh\"");
    return true;
}

static bool parse_hooks(struct ctx *c, json_t *doc, struct recipe *r)
{
    json_t *arr;
    if (!get_array(c, doc, "hooks", "", RECIPE_MAX_HOOKS, &arr) || arr == NULL)
        return !c->failed;
    r->hooks = xcalloc(json_array_size(arr) + 1, sizeof(*r->hooks));
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!parse_hook(c, v, i, &r->hooks[i])) {
            free(r->hooks[i].name); /* not counted yet: recipe_release would miss them */
            free(r->hooks[i].script);
            memset(&r->hooks[i], 0, sizeof(r->hooks[i]));
            return false;
        }
        r->nhooks++;
    }
    qsort(r->hooks, r->nhooks, sizeof(*r->hooks), cmp_hook);
    for (i = 1; i < r->nhooks; i++)
        if (strcmp(r->hooks[i - 1].name, r->hooks[i].name) == 0)
            return fail(c, "hooks", "two hooks are named \"%s\"", r->hooks[i].name);
    return true;
}

static bool parse_boot(struct ctx *c, json_t *doc, struct recipe *r)
{
    static const char *const keys[] = {"bios", "uefi", "cmdline", NULL};
    json_t *boot = json_object_get(doc, "boot");
    json_t *empty = json_object();
    if (boot == NULL)
        boot = empty;
    bool ok = json_is_object(boot) || fail(c, "boot", "must be an object, not %s", type_name(boot));
    ok = ok && only_keys(c, boot, "boot.", keys) && get_bool(c, boot, "bios", "boot.bios", true, &r->boot_bios) &&
         get_bool(c, boot, "uefi", "boot.uefi", true, &r->boot_uefi) &&
         get_string(c, boot, "cmdline", "boot.cmdline", "", &r->cmdline);
    json_decref(empty);
    if (!ok)
        return false;
    if (!r->boot_bios && !r->boot_uefi)
        return fail(c, "boot", "must enable bios, uefi or both");
    if (strlen(r->cmdline) > 1024)
        return fail(c, "boot.cmdline", "is longer than 1024 characters");
    for (const char *s = r->cmdline; *s; s++)
        if ((unsigned char)*s < ' ' || (unsigned char)*s > '~' || *s == '\'' || *s == '"' || *s == '\\' || *s == ';')
            return fail(c, "boot.cmdline", "must be printable ASCII without quotes, backslashes or ';'");
    return true;
}

/*
 * What a recipe means when it leaves a field out depends on its format,
 * and a format's defaults never change: format 1 is bookworm's main suite
 * alone, format 2 the current stable release with its updates and
 * security fixes, format 3 the same with a faster squashfs setting. When
 * the next release comes, a new format will name it; a recipe that says
 * "format": 2 or 3 keeps meaning trixie. What a format writes (the
 * squashfs setting) is part of it too: a lock or a manifest of an earlier
 * format rebuilds to the same bytes.
 */
struct recipe_format {
    int number;
    const char *release;     /* the default release */
    bool updates, security;  /* the defaults of the suites beside the release */
    bool has_suites;         /* the fields "updates", "security" and "components" exist */
    const char *const *releases;
    const char *releases_text; /* for the message */
    unsigned squashfs_block_kib;
    int squashfs_zstd_level;
};

static const char *const format1_releases[] = {"bookworm", NULL};
static const char *const all_releases[] = {"trixie", "bookworm", NULL};

static const struct recipe_format formats[] = {
    {1, "bookworm", false, false, false, format1_releases, "only \"bookworm\"", 128, 15},
    {2, "trixie", true, true, true, all_releases, "\"trixie\" or \"bookworm\"", 128, 15},
    /* bench/squashfs: level 9 in 1 MiB blocks is 0.99 of level 15's size in 128 KiB blocks, in 0.09 of the time */
    {3, "trixie", true, true, true, all_releases, "\"trixie\" or \"bookworm\"", 1024, 9},
};

/* In the archive's order, which is the canonical form's. */
static const char *const components[] = {"main", "contrib", "non-free", "non-free-firmware", NULL};

const char *const *recipe_releases(void)
{
    return all_releases;
}

const char *recipe_default_release(void)
{
    return formats[RECIPE_FORMAT_CURRENT - 1].release;
}

static bool parse_format(struct ctx *c, json_t *doc, const struct recipe_format **out)
{
    json_t *format = json_object_get(doc, "format");
    *out = &formats[RECIPE_FORMAT_CURRENT - 1];
    if (format == NULL)
        return true;
    for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
        if (json_is_integer(format) && json_integer_value(format) == formats[i].number) {
            *out = &formats[i];
            return true;
        }
    }
    return fail(c, "format", "must be 1, 2 or 3 (leave it out for %d, the current one)", RECIPE_FORMAT_CURRENT);
}

static size_t component_rank(const char *name)
{
    size_t i = 0;
    while (components[i] != NULL && strcmp(components[i], name) != 0)
        i++;
    return i;
}

static int cmp_component(const void *a, const void *b)
{
    size_t ra = component_rank(*(char *const *)a), rb = component_rank(*(char *const *)b);
    return ra < rb ? -1 : ra > rb;
}

static bool parse_components(struct ctx *c, json_t *doc, struct recipe *r)
{
    json_t *arr;
    if (!get_array(c, doc, "components", " of archive components", ARRAY_SIZE(components) - 1, &arr))
        return false;
    r->components = xcalloc(ARRAY_SIZE(components), sizeof(char *));
    if (arr == NULL) {
        r->components[r->ncomponents++] = xstrdup("main");
        return true;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        char field[48];
        snprintf(field, sizeof(field), "components[%zu]", i);
        if (!json_is_string(v))
            return fail(c, field, "must be a string, not %s", type_name(v));
        const char *name = json_string_value(v);
        if (!in_set(name, components))
            return fail(c, field,
                        "\"%.32s\" is not a Debian component (\"main\", \"contrib\", \"non-free\" or "
                        "\"non-free-firmware\")",
                        name);
        for (size_t k = 0; k < r->ncomponents; k++)
            if (strcmp(r->components[k], name) == 0)
                return fail(c, field, "\"%s\" is listed twice", name);
        r->components[r->ncomponents++] = xstrdup(name);
    }
    if (!in_set("main", (const char *const *)r->components))
        return fail(c, "components", "must include \"main\" (the release's own packages)");
    qsort(r->components, r->ncomponents, sizeof(char *), cmp_component);
    return true;
}

/* Format 2's fields: which suites and components the packages come from. */
static bool parse_suites(struct ctx *c, json_t *doc, const struct recipe_format *f, struct recipe *r)
{
    if (!f->has_suites) {
        r->components = xcalloc(2, sizeof(char *));
        r->components[r->ncomponents++] = xstrdup("main");
        return true;
    }
    return get_bool(c, doc, "updates", "updates", f->updates, &r->updates) &&
           get_bool(c, doc, "security", "security", f->security, &r->security) && parse_components(c, doc, r);
}

static bool parse_top(struct ctx *c, json_t *doc, struct recipe *r)
{
    static const char *const keys1[] = {"format",   "name",     "distribution", "release",  "architecture",
                                        "variant",  "packages", "overlays",     "hooks",    "boot",
                                        "hostname", "compression", NULL};
    static const char *const keys2[] = {"format",   "name",        "distribution", "release",  "architecture",
                                        "variant",  "packages",    "overlays",     "hooks",    "boot",
                                        "hostname", "compression", "components",   "updates",  "security",
                                        NULL};
    static const char *const distributions[] = {"debian", NULL};
    static const char *const architectures[] = {"amd64", NULL};
    static const char *const variants[] = {"live", "busybox", NULL};
    static const char *const compressions[] = {"zstd", "xz", NULL};
    const struct recipe_format *f;
    if (!json_is_object(doc))
        return fail(c, "", "a recipe must be a JSON object, not %s", type_name(doc));
    if (!parse_format(c, doc, &f))
        return false;
    r->format = f->number;
    r->squashfs_block_kib = f->squashfs_block_kib;
    r->squashfs_zstd_level = f->squashfs_zstd_level;
    if (!only_keys(c, doc, "", f->has_suites ? keys2 : keys1)) {
        if (!f->has_suites && in_set(c->err->field, keys2))
            snprintf(c->err->message, sizeof(c->err->message), "is not a field of recipe format 1 (leave out "
                     "\"format\" to use it)");
        return false;
    }
    if (!get_string(c, doc, "name", "name", NULL, &r->name))
        return false;
    if (!is_token(r->name, "-", 1, 63) || r->name[strlen(r->name) - 1] == '-')
        return fail(c, "name", "\"%.64s\" must be 1-63 of a-z, 0-9 and inner '-', starting with a letter or digit",
                    r->name);
    if (!get_string(c, doc, "distribution", "distribution", "debian", &r->distribution) ||
        !get_string(c, doc, "release", "release", f->release, &r->release) ||
        !get_string(c, doc, "architecture", "architecture", "amd64", &r->architecture) ||
        !get_string(c, doc, "variant", "variant", "live", &r->variant) ||
        !get_string(c, doc, "compression", "compression", "zstd", &r->compression) ||
        !get_string(c, doc, "hostname", "hostname", r->name, &r->hostname))
        return false;
    if (!in_set(r->distribution, distributions))
        return fail(c, "distribution", "\"%.32s\" is not supported (only \"debian\")", r->distribution);
    if (!in_set(r->release, f->releases))
        return fail(c, "release", "\"%.32s\" is not supported (%s)", r->release, f->releases_text);
    if (!in_set(r->architecture, architectures))
        return fail(c, "architecture", "\"%.32s\" is not supported (only \"amd64\")", r->architecture);
    if (!in_set(r->variant, variants))
        return fail(c, "variant", "\"%.32s\" must be \"live\" or \"busybox\"", r->variant);
    if (!in_set(r->compression, compressions))
        return fail(c, "compression", "\"%.32s\" must be \"zstd\" or \"xz\"", r->compression);
    if (!is_token(r->hostname, "-", 1, 63) || r->hostname[strlen(r->hostname) - 1] == '-')
        return fail(c, "hostname", "\"%.64s\" must be a host name label: 1-63 of a-z, 0-9 and inner '-'",
                    r->hostname);
    return parse_suites(c, doc, f, r) && parse_packages(c, doc, r) && parse_overlays(c, doc, r) &&
           parse_hooks(c, doc, r) && parse_boot(c, doc, r);
}

static json_t *canonical_doc(const struct recipe *r)
{
    json_t *packages = json_array(), *overlays = json_array(), *hooks = json_array();
    for (size_t i = 0; i < r->npackages; i++)
        json_array_append_new(packages, json_string(r->packages[i]));
    for (size_t i = 0; i < r->noverlays; i++) {
        char mode[8];
        snprintf(mode, sizeof(mode), "%04o", r->overlays[i].mode);
        json_array_append_new(overlays, json_pack("{s:s, s:s, s:s%}", "path", r->overlays[i].path, "mode", mode,
                                                  "content", r->overlays[i].content, r->overlays[i].content_len));
    }
    for (size_t i = 0; i < r->nhooks; i++)
        json_array_append_new(hooks, json_pack("{s:s, s:s}", "name", r->hooks[i].name, "script", r->hooks[i].script));
    json_t *boot = json_pack("{s:b, s:b, s:s}", "bios", r->boot_bios, "uefi", r->boot_uefi, "cmdline", r->cmdline);
    json_t *doc = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:s}", "format", r->format,
                            "name", r->name, "distribution", r->distribution, "release", r->release, "architecture",
                            r->architecture, "variant", r->variant, "packages", packages, "overlays", overlays,
                            "hooks", hooks, "boot", boot, "hostname", r->hostname, "compression", r->compression);
    /* Format 1 has none of these: its canonical form, and so its config_hash, stay what they were. */
    if (r->format >= 2) {
        json_t *comps = json_array();
        for (size_t i = 0; i < r->ncomponents; i++)
            json_array_append_new(comps, json_string(r->components[i]));
        json_object_set_new(doc, "components", comps);
        json_object_set_new(doc, "updates", json_boolean(r->updates));
        json_object_set_new(doc, "security", json_boolean(r->security));
    }
    return doc;
}

int recipe_parse(const char *text, size_t len, struct recipe *r, struct recipe_error *err)
{
    memset(r, 0, sizeof(*r));
    memset(err, 0, sizeof(*err));
    struct ctx c = {err, false};
    if (len > RECIPE_MAX_BYTES) {
        fail(&c, "", "the recipe is %zu bytes; at most %u are allowed", len, RECIPE_MAX_BYTES);
        return -1;
    }
    json_error_t je;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL) {
        err->line = je.line;
        err->column = je.column;
        snprintf(err->message, sizeof(err->message), "%s", je.text);
        return -1;
    }
    bool ok = parse_top(&c, doc, r);
    json_decref(doc);
    if (!ok) {
        recipe_release(r);
        return -1;
    }
    json_t *canon = canonical_doc(r);
    r->canonical = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(canon);
    if (r->canonical == NULL)
        abort();
    sha256_hex(r->canonical, strlen(r->canonical), r->config_hash);
    return 0;
}

int recipe_load(const char *path, struct recipe *r, struct recipe_error *err)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    memset(r, 0, sizeof(*r));
    memset(err, 0, sizeof(*err));
    int rc = read_file(path, RECIPE_MAX_BYTES, &text, &len);
    if (rc < 0) {
        snprintf(err->message, sizeof(err->message), "cannot read \"%.200s\": %s", path,
                 rc == -EFBIG ? "larger than 16 MiB" : strerror(-rc));
        return -1;
    }
    return recipe_parse(text, len, r, err);
}

void recipe_release(struct recipe *r)
{
    free(r->name);
    free(r->distribution);
    free(r->release);
    free(r->architecture);
    free(r->variant);
    for (size_t i = 0; i < r->npackages; i++)
        free(r->packages[i]);
    free(r->packages);
    for (size_t i = 0; i < r->noverlays; i++) {
        free(r->overlays[i].path);
        free(r->overlays[i].content);
    }
    free(r->overlays);
    for (size_t i = 0; i < r->nhooks; i++) {
        free(r->hooks[i].name);
        free(r->hooks[i].script);
    }
    free(r->hooks);
    free(r->cmdline);
    free(r->hostname);
    free(r->compression);
    for (size_t i = 0; i < r->ncomponents; i++)
        free(r->components[i]);
    free(r->components);
    free(r->canonical);
    memset(r, 0, sizeof(*r));
}

void recipe_error_format(const struct recipe_error *err, char *buf, size_t len)
{
    if (err->line > 0)
        snprintf(buf, len, "line %d, column %d: %s", err->line, err->column, err->message);
    else if (err->field[0] != '\0')
        snprintf(buf, len, "%s: %s", err->field, err->message);
    else
        snprintf(buf, len, "%s", err->message);
}
