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

enum setting_type { T_STRING, T_UINT, T_LIST, T_LEVEL };

struct setting {
    const char *name;
    enum setting_type type;
    size_t offset;
    const char *def;
    unsigned long min, max;
};

#define S(name, type, def, min, max) {#name, type, offsetof(struct config, name), def, min, max}

static const struct setting settings[] = {
    S(data_dir, T_STRING, "data", 0, 0),
    S(listen, T_STRING, "127.0.0.1", 0, 0),
    S(https_port, T_UINT, "8443", 0, 65535),
    S(http_port, T_UINT, "8080", 0, 65535),
    S(threads, T_UINT, "0", 0, 256),
    S(tls_cert, T_STRING, "", 0, 0),
    S(tls_key, T_STRING, "", 0, 0),
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
    S(pg_bindir, T_STRING, "", 0, 0),
    S(embedded_db_user, T_STRING, "postgres", 0, 0),
    S(backup_dir, T_STRING, "", 0, 0),
    S(backup_retention_days, T_UINT, "30", 1, 36500),
    S(ready_min_free_mb, T_UINT, "512", 0, 100000000),
    S(restore_test_max_age_days, T_UINT, "8", 1, 36500),
    S(mirror, T_STRING, "", 0, 0),
    S(archive_keyring, T_STRING, "/usr/share/keyrings/debian-archive-keyring.gpg", 0, 0),
    S(cache_dir, T_STRING, "", 0, 0),
    S(sandbox_id_base, T_UINT, "100000", 1000, 2000000000),
    S(sandbox_memory_mb, T_UINT, "4096", 64, 16777216),
    S(sandbox_pids, T_UINT, "1024", 16, 4194304),
    S(sandbox_cpu_s, T_UINT, "7200", 1, 604800),
    S(sandbox_disk_mb, T_UINT, "16384", 32, 1073741824),
    S(build_timeout, T_UINT, "1200", 1, 604800),
    S(hook_timeout, T_UINT, "300", 1, 86400),
    S(workers, T_STRING, "auto", 0, 0),
    S(lease_seconds, T_UINT, "30", 3, 3600),
    S(max_attempts, T_UINT, "3", 1, 100),
    S(artifact_dir, T_STRING, "", 0, 0),
    S(artifact_budget_mb, T_UINT, "51200", 1, 2000000000),
    S(queue_max, T_UINT, "100", 1, 1000000),
    S(submit_limit, T_UINT, "10", 1, 1000000),
    S(submit_window, T_UINT, "3600", 1, 604800),
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
        if (settings[i].type == T_STRING)
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
        if (st == NULL)
            err_add(e, "%s: unknown setting \"%s\"", where, name);
        else
            apply(cfg, st, value, where, e);
    }
}

static void load_env(struct config *cfg, struct errbuf *e)
{
    for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
        char var[64] = "DEBATE_";
        size_t n = strlen(var);
        for (const char *p = settings[i].name; *p && n + 1 < sizeof(var); p++)
            var[n++] = (char)toupper((unsigned char)*p);
        var[n] = '\0';
        const char *v = getenv(var);
        if (v != NULL)
            apply(cfg, &settings[i], v, var, e);
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
    for (size_t i = 0; i < cfg->trusted_proxies.count; i++)
        if (!is_ip(cfg->trusted_proxies.items[i]))
            err_add(e, "\"trusted_proxies\": \"%s\" is not an IP address", cfg->trusted_proxies.items[i]);
    for (size_t i = 0; i < cfg->cors_origins.count; i++) {
        const char *o = cfg->cors_origins.items[i];
        if (strncmp(o, "https://", 8) != 0 && strncmp(o, "http://", 7) != 0)
            err_add(e, "\"cors_origins\": \"%s\" must be an origin such as https://app.example", o);
        else if (strchr(strchr(o, ':') + 3, '/') != NULL)
            err_add(e, "\"cors_origins\": \"%s\" must not have a path", o);
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
    if (e.count == 0)
        validate(cfg, &e);
    if (e.count == 0 && cfg->backup_dir[0] == '\0') { /* derived defaults */
        free(cfg->backup_dir);
        cfg->backup_dir = xasprintf("%s/backups", cfg->data_dir);
    }
    if (e.count == 0 && cfg->cache_dir[0] == '\0') {
        free(cfg->cache_dir);
        cfg->cache_dir = xasprintf("%s/cache", cfg->data_dir);
    }
    if (e.count == 0 && cfg->artifact_dir[0] == '\0') {
        free(cfg->artifact_dir);
        cfg->artifact_dir = xasprintf("%s/artifacts", cfg->data_dir);
    }
    if (e.count == 0) {
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
            err_add(&e, "\"workers\" must be \"auto\" or a whole number from 0 to 256 (got \"%s\")", cfg->workers);
        }
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
