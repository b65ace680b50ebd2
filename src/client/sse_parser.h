/*
 * An incremental parser of text/event-stream (Server-Sent Events, as the
 * WHATWG HTML standard defines them), fed whatever the transfer delivers:
 * lines may end in LF, CRLF or CR, and a chunk may end anywhere, even
 * between a CR and its LF.
 *
 * For every event the parser calls fn with its id (the last id of a
 * complete event on the stream, "" when none yet), its type ("message"
 * when the event named none) and its data (the data lines joined by LF).
 * Comment lines (": keep-alive") and unknown fields are skipped; an event
 * without data is not dispatched, though its id still counts, as the
 * standard says.
 *
 * An id line takes effect at the blank line that ends its event, not when
 * it arrives (the standard's "last event ID buffer"): a stream that drops
 * in the middle of an event must be resumed from the event before, or the
 * unfinished one is never sent again.
 *
 * Limits: a line, an event's data, its type and its id are bounded (max
 * bytes; 63 for type and id), so a hostile stream cannot make the parser
 * hoard memory; going over ends the parse with SSE_PARSE_TOO_BIG.
 *
 * Pure: no I/O, no globals; one parser per stream and thread.
 */
#ifndef DEBATE_CLIENT_SSE_PARSER_H
#define DEBATE_CLIENT_SSE_PARSER_H

#include <stdbool.h>
#include <stddef.h>

enum sse_parse_result {
    SSE_PARSE_OK = 0,
    SSE_PARSE_TOO_BIG = -1,
    SSE_PARSE_STOPPED = -2,
};

struct sse_message {
    const char *id;
    const char *event;
    const char *data;
};

/* Called for each event; a non-zero return stops the parse (SSE_PARSE_STOPPED). */
typedef int (*sse_parser_fn)(void *arg, const struct sse_message *m);

struct sse_parser {
    size_t max;
    sse_parser_fn fn;
    void *arg;
    char *line;      /* the line being read (not NUL-terminated while read) */
    size_t line_len;
    char *data;      /* the event's data so far, each line followed by LF */
    size_t data_len;
    char event[64];
    char pending_id[64]; /* the id lines so far: it becomes id when an event ends */
    char id[64];     /* the last event id: it outlives the event, as the standard says */
    bool after_cr;   /* the last byte was a CR: an LF now ends no new line */
    enum sse_parse_result result; /* once not OK, the stream is not read further */
};

/* Starts a parser; max bounds a line and an event's data (in bytes). No allocation yet. */
void sse_parser_init(struct sse_parser *p, size_t max, sse_parser_fn fn, void *arg);
/* Frees the buffers. */
void sse_parser_release(struct sse_parser *p);

/* Parses len bytes. Returns SSE_PARSE_OK, or the reason the parse ended (then and after). */
enum sse_parse_result sse_parser_feed(struct sse_parser *p, const char *buf, size_t len);

/* The id of the last complete event ("" when none): what to send as Last-Event-ID on reconnecting. */
const char *sse_parser_last_id(const struct sse_parser *p);

/* Starts a parser of a new connection from the id the last one reached (id is copied; at most 63 bytes). */
void sse_parser_resume(struct sse_parser *p, const char *id);

#endif
