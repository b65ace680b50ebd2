#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "util.h"
#include "banned.h"

/* T_PATH: a string that config_load makes absolute (relative to the working directory). */
enum setting_type { T_STRING, T_PATH, T_UINT, T_LIST, T_LEVEL };

struct setting {
    const char *name;
    enum setting_type type;
    size_t offset;
    const char *def;
    unsigned long min, max;
};

#define S(name, type, def, min, max) {#name, type, offsetof(struct config, name), def, min, max}

static const struct setting settings[] = {
    S(data_dir, T_PATH, "data", 0, 0),
    S(listen, T_STRING, "127.0.0.1", 0, 0),
    S(https_port, T_UINT, "8443", 0, 65535),
    S(http_port, T_UINT, "8080", 0, 65535),
    S(threads, T_UINT, "0", 0, 256),
    S(tls_cert, T_PATH, "", 0, 0),
    S(tls_key, T_PATH, "", 0, 0),
    S(trusted_hosts, T_LIST, "localhost,127.0.0.1,::1", 0, 0),
    S(cors_origins, T_LIST, "", 0, 0),
    S(trusted_proxies, T_LIST, "", 0, 0),
    S(rate_limit, T_UINT, "100", 1, 1000000000),
    S(rate_window, T_UINT, "60", 1, 86400),
    S(rate_clients, T_UINT, "10000", 16, 10000000),
    S(max_header_bytes, T_UINT, "16384", 1024, 262144),
    S(max_body_bytes, T_UINT, "16777216", 1, 1073741824),
    S(max_connections, T_UINT, "1024", 1, 1000000),
    S(request_timeout, T_UINT, "10", 1, 3600),
    S(drain_timeout, T_UINT, "30", 0, 3600),
    S(log_level, T_LEVEL, "info", 0, 0),
    S(database_url, T_STRING, "", 0, 0),
    S(db_pool_size, T_UINT, "10", 1, 1000),
    S(db_pool_overflow, T_UINT, "20", 0, 1000),
    S(db_acquire_timeout_ms, T_UINT, "2000", 1, 600000),
    S(db_statement_timeout_ms, T_UINT, "10000", 0, 3600000),
    S(pg_bindir, T_PATH, "", 0, 0),
    S(embedded_db_user, T_STRING, "postgres", 0, 0),
    S(user, T_STRING, "", 0, 0),
    S(backup_dir, T_PATH, "", 0, 0),
    S(backup_retention_days, T_UINT, "30", 1, 36500),
    S(ready_min_free_mb, T_UINT, "512", 0, 100000000),
    S(restore_test_max_age_days, T_UINT, "8", 1, 36500),
    S(mirror, T_STRING, "", 0, 0),
    S(security_mirror, T_STRING, "", 0, 0),
    S(archive_keyring, T_PATH, "/usr/share/keyrings/debian-archive-keyring.gpg", 0, 0),
    S(cache_dir, T_PATH, "", 0, 0),
    S(base_cache_mb, T_UINT, "8192", 0, 2000000000),
    S(sandbox_id_base, T_UINT, "100000", 1000, 2000000000),
    S(sandbox_memory_mb, T_UINT, "4096", 64, 16777216),
    S(sandbox_pids, T_UINT, "1024", 16, 4194304),
    S(sandbox_cpu_s, T_UINT, "7200", 1, 604800),
    S(sandbox_disk_mb, T_UINT, "16384", 32, 1073741824),
    S(build_timeout, T_UINT, "1200", 1, 604800),
    S(hook_timeout, T_UINT, "300", 1, 86400),
    S(boot_check_timeout, T_UINT, "300", 10, 86400),
    S(workers, T_STRING, "auto", 0, 0),
    S(lease_seconds, T_UINT, "30", 3, 3600),
    S(max_attempts, T_UINT, "3", 1, 100),
    S(artifact_dir, T_PATH, "", 0, 0),
    S(artifact_budget_mb, T_UINT, "51200", 1, 2000000000),
    S(queue_max, T_UINT, "100", 1, 1000000),
    S(submit_limit, T_UINT, "10", 1, 1000000),
    S(submit_window, T_UINT, "3600", 1, 604800),
    S(server, T_STRING, "https://localhost:8443", 0, 0),
};

struct errbuf {
    char *buf;
    size_t len, cap;
    int count;
};

static void err_add(struct errbuf *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void err_add(struct errbuf *e, const char *fmt, ...)
{
    e->count++;
    if (e->len + 1 >= e->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->buf + e->len, e->cap - e->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        e->len = e->len + (size_t)n < e->cap ? e->len + (size_t)n : e->cap - 1;
    if (e->len + 1 < e->cap) {
        e->buf[e->len++] = '\n';
        e->buf[e->len] = '\0';
    }
}

static void strlist_release(struct strlist *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static void strlist_parse(struct strlist *l, const char *s)
{
    strlist_release(l);
    while (*s) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        const char *a = s, *b = s + n;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a) {
            l->items = xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
            l->items[l->count++] = xstrndup(a, (size_t)(b - a));
        }
        s += n + (end ? 1 : 0);
    }
}

bool strlist_contains(const struct strlist *l, const char *s, size_t len)
{
    for (size_t i = 0; i < l->count; i++)
        if (str_ieq(s, len, l->items[i]))
            return true;
    return false;
}

static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned *out)
{
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static void apply(struct config *cfg, const struct setting *st, const char *value, const char *source,
                  struct errbuf *e)
{
    void *field = (char *)cfg + st->offset;
    switch (st->type) {
    case T_STRING:
    case T_PATH:
        free(*(char **)field);
        *(char **)field = xstrdup(value);
        break;
    case T_UINT:
        if (parse_uint(value, st->min, st->max, field) < 0)
            err_add(e, "%s: \"%s\" must be a whole number from %lu to %lu (got \"%s\")", source, st->name, st->min,
                    st->max, value);
        break;
    case T_LIST:
        strlist_parse(field, value);
        break;
    case T_LEVEL: {
        int lv = log_level_parse(value);
        if (lv < 0)
            err_add(e, "%s: \"%s\" must be one of debug, info, warn, error (got \"%s\")", source, st->name, value);
        else
            *(int *)field = lv;
        break;
    }
    }
}

static const struct setting *find_setting(const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_SIZE(settings); i++)
        if (strlen(settings[i].name) == len && strncmp(settings[i].name, name, len) == 0)
            return &settings[i];
    return NULL;
}

/* Edit distance of two names, ignoring case; SIZE_MAX when a is too long to be worth it. */
static size_t name_distance(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b), row[65];
    if (alen >= ARRAY_SIZE(row) || blen >= ARRAY_SIZE(row))
        return SIZE_MAX;
    for (size_t j = 0; j <= blen; j++)
        row[j] = j;
    for (size_t i = 1; i <= alen; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= blen; j++) {
            size_t up = row[j];
            bool same = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]);
            size_t best = diag + (same ? 0 : 1);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[blen];
}

/*
 * The setting a misspelt name most likely meant, or NULL when none is
 * close: at most a third of the name's letters (and one more) differ.
 */
static const struct setting *closest_setting(const char *name, size_t len)
{
    const struct setting *best = NULL;
    size_t best_d = len / 3 + 2;
    for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
        size_t d = name_distance(name, len, settings[i].name);
        if (d < best_d) {
            best = &settings[i];
            best_d = d;
        }
    }
    return best;
}

/* The environment variable of a setting: DEBATE_ and the name in upper case. */
static void setting_env_name(const struct setting *st, char *var, size_t varlen)
{
    size_t n = (size_t)snprintf(var, varlen, "DEBATE_");
    for (const char *p = st->name; *p && n + 1 < varlen; p++)
        var[n++] = (char)toupper((unsigned char)*p);
    var[n] = '\0';
}

void config_init(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    struct errbuf e = {NULL, 0, 0, 0};
    for (size_t i = 0; i < ARRAY_SIZE(settings); i++)
        apply(cfg, &settings[i], settings[i].def, "default", &e);
}

void config_release(struct config *cfg)
{
    for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
        void *field = (char *)cfg + settings[i].offset;
        if (settings[i].type == T_STRING || settings[i].type == T_PATH)
            free(*(char **)field);
        else if (settings[i].type == T_LIST)
            strlist_release(field);
    }
    memset(cfg, 0, sizeof(*cfg));
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static void load_file(struct config *cfg, const char *file, struct errbuf *e)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    int rc = read_file(file, 1 << 20, &text, &len);
    if (rc < 0) {
        err_add(e, "config file \"%s\": %s", file, strerror(-rc));
        return;
    }
    if (strlen(text) != len) {
        err_add(e, "config file \"%s\": contains a NUL byte", file);
        return;
    }
    int lineno = 0;
    for (char *line = text, *next; line != NULL; line = next) {
        lineno++;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            err_add(e, "%s:%d: expected \"name = value\"", file, lineno);
            continue;
        }
        *eq = '\0';
        char *name = trim(s), *value = trim(eq + 1);
        const struct setting *st = find_setting(name, strlen(name));
        char where[512];
        snprintf(where, sizeof(where), "%s:%d", file, lineno);
        const struct setting *near = st == NULL ? closest_setting(name, strlen(name)) : NULL;
        if (st != NULL)
            apply(cfg, st, value, where, e);
        else if (near != NULL)
            err_add(e, "%s: unknown setting \"%s\" (did you mean \"%s\"?)", where, name, near->name);
        else
            err_add(e, "%s: unknown setting \"%s\"", where, name);
    }
}

static void load_env(struct config *cfg, struct errbuf *e)
{
    for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
        char var[64];
        setting_env_name(&settings[i], var, sizeof(var));
        const char *v = getenv(var);
        if (v != NULL)
            apply(cfg, &settings[i], v, var, e);
    }
}

/*
 * DEBATE_* variables that are not settings, so never "unknown": the
 * configuration file's name, and what the test suite and the backup
 * script pass through debate's environment (the binary under test, the
 * queue tool's no-op duration, and anything DEBATE_TEST_*).
 */
static const char *const env_not_settings[] = {"DEBATE_CONFIG", "DEBATE_BIN", "DEBATE_NOOP_MS"};
static const char env_test_prefix[] = "DEBATE_TEST_";

static bool env_is_allowed(const char *var, size_t len)
{
    if (len >= strlen(env_test_prefix) && strncmp(var, env_test_prefix, strlen(env_test_prefix)) == 0)
        return true;
    for (size_t i = 0; i < ARRAY_SIZE(env_not_settings); i++)
        if (strlen(env_not_settings[i]) == len && strncmp(var, env_not_settings[i], len) == 0)
            return true;
    return false;
}

/* True when var (len bytes) is exactly the variable of a setting. */
static bool env_is_setting(const char *var, size_t len)
{
    char want[64];
    for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
        setting_env_name(&settings[i], want, sizeof(want));
        if (strlen(want) == len && strncmp(var, want, len) == 0)
            return true;
    }
    return false;
}

/*
 * A misspelt variable would otherwise leave its setting at the default
 * without a word: every DEBATE_* variable must be a setting or allowed.
 */
static void check_env_names(struct errbuf *e)
{
    const size_t plen = strlen("DEBATE_");
    for (char **env = environ; *env != NULL; env++) {
        const char *var = *env, *eq = strchr(var, '=');
        size_t len = eq != NULL ? (size_t)(eq - var) : strlen(var);
        if (strncmp(var, "DEBATE_", plen) != 0 || env_is_allowed(var, len) || env_is_setting(var, len))
            continue;
        const struct setting *near = closest_setting(var + plen, len - plen);
        char suggestion[64];
        if (near == NULL) {
            err_add(e, "unknown setting \"%.*s\"", (int)len, var);
            continue;
        }
        setting_env_name(near, suggestion, sizeof(suggestion));
        err_add(e, "unknown setting \"%.*s\" (did you mean \"%s\"?)", (int)len, var, suggestion);
    }
}

static bool is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static void validate(const struct config *cfg, struct errbuf *e)
{
    if (!is_ip(cfg->listen))
        err_add(e, "\"listen\" must be an IPv4 or IPv6 address (got \"%s\")", cfg->listen);
    if ((cfg->tls_cert[0] == '\0') != (cfg->tls_key[0] == '\0'))
        err_add(e, "\"tls_cert\" and \"tls_key\" must be set together");
    if (cfg->data_dir[0] == '\0')
        err_add(e, "\"data_dir\" must not be empty");

    if (cfg->trusted_hosts.count == 0)
        err_add(e, "\"trusted_hosts\" must name at least one host");
    if (cfg->https_port != 0 && cfg->https_port == cfg->http_port)
        err_add(e, "\"https_port\" and \"http_port\" must differ");
    for (size_t i = 0; i < cfg->trusted_proxies.count; i++) {
        uint8_t range[16];
        unsigned bits;
        if (!ip_range_parse(cfg->trusted_proxies.items[i], range, &bits))
            err_add(e, "\"trusted_proxies\": \"%s\" is not an IP address or range (such as 10.0.0.0/8)",
                    cfg->trusted_proxies.items[i]);
    }
    if (strncmp(cfg->server, "https://", 8) != 0 && strncmp(cfg->server, "http://", 7) != 0)
        err_add(e, "\"server\" must be an https:// (or http://) URL such as https://localhost:8443 (got \"%s\")",
                cfg->server);
    for (size_t i = 0; i < cfg->cors_origins.count; i++) {
        const char *o = cfg->cors_origins.items[i];
        if (strncmp(o, "https://", 8) != 0 && strncmp(o, "http://", 7) != 0)
            err_add(e, "\"cors_origins\": \"%s\" must be an origin such as https://app.example", o);
        else if (strchr(strchr(o, ':') + 3, '/') != NULL)
            err_add(e, "\"cors_origins\": \"%s\" must not have a path", o);
    }
}

/*
 * Makes every path setting absolute, relative to the working directory the
 * command started in. A relative path would otherwise mean different
 * places to different programs: libpq takes a relative socket directory
 * for a host name, and postgres resolves paths from its own data directory.
 */
static void resolve_paths(struct config *cfg, struct errbuf *e)
{
    _cleanup_free_ char *cwd = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
        if (settings[i].type != T_PATH)
            continue;
        char **field = (char **)((char *)cfg + settings[i].offset);
        size_t len = strlen(*field);
        while (len > 1 && (*field)[len - 1] == '/') /* "data/" and "data" are one directory */
            (*field)[--len] = '\0';
        if (len == 0 || (*field)[0] == '/')
            continue;
        if (cwd == NULL && (cwd = get_current_dir_name()) == NULL) {
            err_add(e, "\"%s\": cannot make \"%s\" absolute: the working directory: %s", settings[i].name, *field,
                    strerror(errno));
            return;
        }
        _cleanup_free_ char *old = *field;
        const char *rel = old;
        while (strncmp(rel, "./", 2) == 0)
            rel += 2;
        *field = strcmp(rel, ".") == 0 ? xstrdup(cwd) : xasprintf("%s/%s", cwd, rel);
    }
}

/* An empty directory setting is a directory of that name under data_dir. */
static void derive_dir(char **field, const char *data_dir, const char *name)
{
    if ((*field)[0] != '\0')
        return;
    free(*field);
    *field = xasprintf("%s/%s", data_dir, name);
}

/* workers: "auto" (from cores and memory) or a number, into nworkers. */
static void resolve_workers(struct config *cfg, struct errbuf *e)
{
    char *end;
    unsigned long n = strtoul(cfg->workers, &end, 10);
    if (strcmp(cfg->workers, "auto") == 0) {
        /* a build wants about one core and 4 GiB */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN), pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        unsigned long by_cpu = cpus > 1 ? (unsigned long)cpus / 2 : 1;
        unsigned long by_mem = pages > 0 && psz > 0 ? (unsigned long)((double)pages * psz / (4.0 * (1 << 30))) : 1;
        n = by_cpu < by_mem ? by_cpu : by_mem;
        cfg->nworkers = n < 1 ? 1 : n > 16 ? 16 : (unsigned)n;
    } else if (cfg->workers[0] != '\0' && *end == '\0' && n <= 256) {
        cfg->nworkers = (unsigned)n;
    } else {
        err_add(e, "\"workers\" must be \"auto\" or a whole number from 0 to 256 (got \"%s\")", cfg->workers);
    }
}

int config_load(struct config *cfg, const char *file, char *err, size_t errlen)
{
    struct errbuf e = {err, 0, errlen, 0};
    if (errlen > 0)
        err[0] = '\0';
    if (file != NULL)
        load_file(cfg, file, &e);
    load_env(cfg, &e);
    check_env_names(&e);
    if (e.count == 0)
        validate(cfg, &e);
    if (e.count == 0)
        resolve_paths(cfg, &e);
    if (e.count == 0) {
        derive_dir(&cfg->backup_dir, cfg->data_dir, "backups");
        derive_dir(&cfg->cache_dir, cfg->data_dir, "cache");
        derive_dir(&cfg->artifact_dir, cfg->data_dir, "artifacts");
        resolve_workers(cfg, &e);
    }
    return e.count == 0 ? 0 : -1;
}

void config_print(const struct config *cfg, FILE *out)
{
    for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
        const struct setting *st = &settings[i];
        const void *field = (const char *)cfg + st->offset;
        fprintf(out, "%s = ", st->name);
        switch (st->type) {
        case T_STRING:
        case T_PATH:
            fprintf(out, "%s", *(char *const *)field);
            break;
        case T_UINT:
            fprintf(out, "%u", *(const unsigned *)field);
            break;
        case T_LEVEL:
            fprintf(out, "%s", st->type == T_LEVEL ? (const char *[]){"debug", "info", "warn", "error"}[*(const int *)field] : "");
            break;
        case T_LIST: {
            const struct strlist *l = field;
            for (size_t j = 0; j < l->count; j++)
                fprintf(out, "%s%s", j ? "," : "", l->items[j]);
            break;
        }
        }
        fputc('\n', out);
    }
}
