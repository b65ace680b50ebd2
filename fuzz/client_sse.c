/*
 * The client's event-stream parser (sse_parser_feed), which reads what a
 * server sends to `debate logs --follow` and `debate submit --follow`. The
 * input is fed twice: whole, then in pieces of 1 to 16 bytes (a stream
 * may be cut anywhere, even between CR and LF); both must give the same
 * events, the same last id and the same result.
 */
#include "fuzz.h"

#include "client/sse_parser.h"
#include "banned.h"

#define MAX 1024

struct seen {
    char *text; /* every event as "id\x1f event\x1f data\x1e" */
    size_t len;
};

static int on_event(void *arg, const struct sse_message *m)
{
    struct seen *s = arg;
    _cleanup_free_ char *one = xasprintf("%s\x1f%s\x1f%s\x1e", m->id, m->event, m->data);
    size_t n = strlen(one);
    s->text = xrealloc(s->text, s->len + n + 1);
    memcpy(s->text + s->len, one, n + 1);
    s->len += n;
    fuzz_require(strlen(m->id) < 64 && strlen(m->event) < 64 && strlen(m->data) <= MAX);
    return 0;
}

static enum sse_parse_result parse(const uint8_t *data, size_t size, bool pieces, struct seen *s, char id[64])
{
    struct sse_parser p;
    sse_parser_init(&p, MAX, on_event, s);
    enum sse_parse_result r = SSE_PARSE_OK;
    for (size_t at = 0; at < size;) {
        size_t n = pieces ? 1 + (data[at] % 16) : size;
        n = n < size - at ? n : size - at;
        r = sse_parser_feed(&p, (const char *)data + at, n);
        at += n;
    }
    snprintf(id, 64, "%s", sse_parser_last_id(&p));
    sse_parser_release(&p);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seen whole = {NULL, 0}, cut = {NULL, 0};
    char id_whole[64], id_cut[64];
    enum sse_parse_result a = parse(data, size, false, &whole, id_whole);
    enum sse_parse_result b = parse(data, size, true, &cut, id_cut);
    fuzz_require(a == b);
    fuzz_require(strcmp(id_whole, id_cut) == 0);
    fuzz_require(whole.len == cut.len && (whole.len == 0 || memcmp(whole.text, cut.text, whole.len) == 0));
    free(whole.text);
    free(cut.text);
    return 0;
}
