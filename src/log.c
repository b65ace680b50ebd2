#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

static enum log_level min_level = LOG_INFO;

/*
 * Event-loop threads buffer their lines and flush once per loop iteration,
 * so a busy server makes one write(2) per batch instead of one per request.
 */
static _Thread_local struct {
    bool on;
    size_t len;
    char buf[64 * 1024];
} tl;

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nowhere to report a failing log */
        p += w;
        n -= (size_t)w;
    }
}

void log_buffer_start(void)
{
    tl.on = true;
    tl.len = 0;
}

void log_flush(void)
{
    if (tl.len > 0)
        write_all(tl.buf, tl.len);
    tl.len = 0;
}

static void emit(const char *line, size_t n)
{
    if (!tl.on) {
        write_all(line, n);
        return;
    }
    if (tl.len + n > sizeof(tl.buf))
        log_flush();
    memcpy(tl.buf + tl.len, line, n);
    tl.len += n;
}
static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
    min_level = level;
}

int log_level_parse(const char *s)
{
    for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void log_format_time(char out[48], unsigned long long wall_ms)
{
    /* The date and time change once a second: format them once a second. */
    static _Thread_local unsigned long long cached_secs = ~0ULL;
    static _Thread_local char cached[80];
    unsigned long long secs = wall_ms / 1000;
    if (secs != cached_secs) {
        time_t t = (time_t)secs;
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_secs = secs;
    }
    unsigned ms = (unsigned)(wall_ms % 1000);
    size_t n = strnlen(cached, 40);
    memcpy(out, cached, n);
    out[n] = '.';
    out[n + 1] = (char)('0' + ms / 100);
    out[n + 2] = (char)('0' + ms / 10 % 10);
    out[n + 3] = (char)('0' + ms % 10);
    out[n + 4] = 'Z';
    out[n + 5] = '\0';
}

/* Formats v in decimal at the end of buf[32]; returns the first digit. */
static char *format_u64(char buf[32], unsigned long long v)
{
    char *p = buf + 31;
    *p = '\0';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return p;
}

void log_fields_init(struct log_fields *f)
{
    f->len = 0;
    f->buf[0] = '\0';
}

static void put(struct log_fields *f, const char *s, size_t n)
{
    size_t room = sizeof(f->buf) - 1 - f->len;
    if (n > room)
        n = room;
    memcpy(f->buf + f->len, s, n);
    f->len += n;
    f->buf[f->len] = '\0';
}

static bool needs_quotes(const char *v, size_t len)
{
    if (len == 0)
        return true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
            return true;
    }
    return false;
}

static void put_escaped(struct log_fields *f, const char *v, size_t len)
{
    put(f, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        char tmp[8];
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            put(f, tmp, 2);
        } else if (c < ' ' || c >= 0x7f) {
            snprintf(tmp, sizeof(tmp), "\\x%02x", c);
            put(f, tmp, 4);
        } else {
            put(f, (const char *)&c, 1);
        }
    }
    put(f, "\"", 1);
}

void log_field_str(struct log_fields *f, const char *key, const char *val, size_t len)
{
    if (f->len > 0)
        put(f, " ", 1);
    put(f, key, strlen(key));
    put(f, "=", 1);
    if (val == NULL)
        put(f, "-", 1);
    else if (needs_quotes(val, len))
        put_escaped(f, val, len);
    else
        put(f, val, len);
}

void log_field_cstr(struct log_fields *f, const char *key, const char *val)
{
    log_field_str(f, key, val, val ? strlen(val) : 0);
}

void log_field_int(struct log_fields *f, const char *key, long long val)
{
    char tmp[32];
    char *p = format_u64(tmp, val < 0 ? 0ULL - (unsigned long long)val : (unsigned long long)val);
    if (val < 0)
        *--p = '-';
    log_field_str(f, key, p, (size_t)(tmp + 31 - p));
}

void log_field_us_as_ms(struct log_fields *f, const char *key, unsigned long long us)
{
    char tmp[40];
    char *p = format_u64(tmp, us / 1000);
    size_t n = (size_t)(tmp + 31 - p);
    memmove(tmp, p, n);
    unsigned frac = (unsigned)(us % 1000);
    tmp[n] = '.';
    tmp[n + 1] = (char)('0' + frac / 100);
    tmp[n + 2] = (char)('0' + frac / 10 % 10);
    tmp[n + 3] = (char)('0' + frac % 10);
    log_field_str(f, key, tmp, n + 4);
}

void log_msg(enum log_level level, const char *msg, const char *fields)
{
    if (level < min_level)
        return;
    char ts[48];
    log_format_time(ts, clock_wall_ms());
    struct log_fields line;
    log_fields_init(&line);
    log_field_cstr(&line, "ts", ts);
    log_field_cstr(&line, "level", level_names[level]);
    log_field_cstr(&line, "msg", msg);
    if (fields != NULL && fields[0] != '\0') {
        put(&line, " ", 1);
        put(&line, fields, strlen(fields));
    }
    if (line.len == sizeof(line.buf) - 1)
        line.len--;
    line.buf[line.len++] = '\n';
    emit(line.buf, line.len);
}

static void log_vmsg(enum log_level level, const char *suffix, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void log_vmsg(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
    char msg[768];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (suffix != NULL && n >= 0 && (size_t)n < sizeof(msg))
        snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", suffix);
    log_msg(level, msg, NULL);
}

#define DEFINE_LOGX(name, level, with_errno)                                                                           \
    void name(const char *fmt, ...)                                                                                    \
    {                                                                                                                  \
        const char *suffix = with_errno ? strerror(errno) : NULL;                                                      \
        va_list ap;                                                                                                    \
        va_start(ap, fmt);                                                                                             \
        log_vmsg(level, suffix, fmt, ap);                                                                              \
        va_end(ap);                                                                                                    \
    }

DEFINE_LOGX(log_infox, LOG_INFO, false)
DEFINE_LOGX(log_warnx, LOG_WARN, false)
DEFINE_LOGX(log_warn, LOG_WARN, true)
DEFINE_LOGX(log_errorx, LOG_ERROR, false)
