/*
 * Structured logging: one line per event on stderr, as key=value pairs
 * (logfmt): ts, level, msg, then the caller's fields. Values with spaces,
 * quotes or control characters are quoted and escaped, so a hostile path
 * or header cannot forge a log line.
 *
 * Thread-safe: each line is formatted into a local buffer and written with
 * one write(2), or batched per thread after log_buffer_start.
 */
#ifndef DEBATE_LOG_H
#define DEBATE_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);

/*
 * Makes this thread buffer its lines until log_flush (event loops call it
 * once per iteration). Lines from other threads are written at once.
 */
void log_buffer_start(void);
void log_flush(void);
/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int log_level_parse(const char *s);

/*
 * fields is a preformatted "k=v k=v" string built with log_field_*; msg is
 * a lower-case sentence.
 */
void log_msg(enum log_level level, const char *msg, const char *fields);
/* printf-style message with no fields. */
void log_infox(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* As log_warnx, with ": strerror(errno)" appended. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A field buffer: append key=value pairs, escaping as needed. Truncates
 * rather than overflowing.
 */
struct log_fields {
    char buf[1024];
    size_t len;
};

void log_fields_init(struct log_fields *f);
void log_field_str(struct log_fields *f, const char *key, const char *val, size_t len);
void log_field_cstr(struct log_fields *f, const char *key, const char *val);
void log_field_int(struct log_fields *f, const char *key, long long val);
/* Microseconds written as milliseconds with three decimals. */
void log_field_us_as_ms(struct log_fields *f, const char *key, unsigned long long us);

/* Formats ms since the epoch as RFC 3339 UTC with milliseconds (24 bytes + NUL). */
void log_format_time(char out[48], unsigned long long wall_ms);

#endif
