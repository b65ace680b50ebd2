/* The text/event-stream parser: lines into fields, fields into events (see sse_parser.h). */
#include "client/sse_parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "banned.h"

void sse_parser_init(struct sse_parser *p, size_t max, sse_parser_fn fn, void *arg)
{
    memset(p, 0, sizeof(*p));
    p->max = max;
    p->fn = fn;
    p->arg = arg;
}

void sse_parser_release(struct sse_parser *p)
{
    free(p->line);
    free(p->data);
    p->line = p->data = NULL;
    p->line_len = p->data_len = 0;
}

const char *sse_parser_last_id(const struct sse_parser *p)
{
    return p->id;
}

void sse_parser_resume(struct sse_parser *p, const char *id)
{
    snprintf(p->id, sizeof(p->id), "%s", id);
    memcpy(p->pending_id, p->id, sizeof(p->id));
}

/*
 * Appends n bytes to a buffer of capacity max + 1 (the room for a NUL),
 * allocated at that size on first use: the limit is the whole policy, and
 * a stream that never sends a long line costs one allocation a buffer.
 * False when the bytes would pass max.
 */
static bool append(char **buf, size_t *len, size_t max, const char *s, size_t n)
{
    if (n > max - *len)
        return false;
    if (*buf == NULL)
        *buf = xmalloc(max + 1);
    memcpy(*buf + *len, s, n);
    *len += n;
    return true;
}

/* Copies a field's value into a small fixed buffer; false when it does not fit. */
static bool set_small(char dst[64], const char *value, size_t n)
{
    if (n >= 64)
        return false;
    memcpy(dst, value, n);
    dst[n] = '\0';
    return true;
}

/* The blank line: the event is complete. */
static enum sse_parse_result dispatch(struct sse_parser *p)
{
    enum sse_parse_result r = SSE_PARSE_OK;
    memcpy(p->id, p->pending_id, sizeof(p->id));
    if (p->data_len > 0) {
        p->data[--p->data_len] = '\0'; /* the LF after the last data line */
        struct sse_message m = {p->id, p->event[0] ? p->event : "message", p->data};
        if (p->fn(p->arg, &m) != 0)
            r = SSE_PARSE_STOPPED;
    }
    p->data_len = 0;
    p->event[0] = '\0';
    return r;
}

/* One complete line (without its end). */
static enum sse_parse_result take_line(struct sse_parser *p, const char *line, size_t n)
{
    if (n == 0)
        return dispatch(p);
    if (line[0] == ':')
        return SSE_PARSE_OK;
    const char *colon = memchr(line, ':', n);
    size_t name_len = colon ? (size_t)(colon - line) : n;
    const char *value = colon ? colon + 1 : line + n;
    size_t value_len = (size_t)(line + n - value);
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }
    bool ok = true;
    if (name_len == 4 && memcmp(line, "data", 4) == 0)
        ok = append(&p->data, &p->data_len, p->max, value, value_len) && append(&p->data, &p->data_len, p->max, "\n", 1);
    else if (name_len == 5 && memcmp(line, "event", 5) == 0)
        ok = set_small(p->event, value, value_len);
    else if (name_len == 2 && memcmp(line, "id", 2) == 0 && memchr(value, '\0', value_len) == NULL)
        ok = set_small(p->pending_id, value, value_len);
    return ok ? SSE_PARSE_OK : SSE_PARSE_TOO_BIG;
}

/* The line buffer is complete: parse it and start the next. */
static enum sse_parse_result end_line(struct sse_parser *p)
{
    enum sse_parse_result r = take_line(p, p->line ? p->line : "", p->line_len);
    p->line_len = 0;
    return r;
}

enum sse_parse_result sse_parser_feed(struct sse_parser *p, const char *buf, size_t len)
{
    for (size_t i = 0; i < len && p->result == SSE_PARSE_OK; i++) {
        char ch = buf[i];
        if (ch == '\n' && p->after_cr) {
            p->after_cr = false; /* the LF of a CRLF: the line ended at the CR */
            continue;
        }
        p->after_cr = ch == '\r';
        if (ch == '\n' || ch == '\r') {
            p->result = end_line(p);
            continue;
        }
        /* Copy the run of ordinary bytes at once rather than one by one. */
        size_t j = i;
        while (j < len && buf[j] != '\n' && buf[j] != '\r')
            j++;
        if (!append(&p->line, &p->line_len, p->max, buf + i, j - i))
            p->result = SSE_PARSE_TOO_BIG;
        i = j - 1;
    }
    return p->result;
}
