/* The client's pure parts: the event-stream parser, build ids, query escaping. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "client/client.h"
#include "client/sse_parser.h"
#include "util.h"

/* What the parser reported, as "id|event|data" lines. */
struct seen {
    char text[4096];
    int count;
    int stop_after; /* return non-zero after this many events (0: never) */
};

static int record(void *arg, const struct sse_message *m)
{
    struct seen *s = arg;
    size_t len = strlen(s->text);
    snprintf(s->text + len, sizeof(s->text) - len, "%s|%s|%s\n", m->id, m->event, m->data);
    s->count++;
    return s->stop_after != 0 && s->count >= s->stop_after;
}

/* Feeds text in pieces of step bytes, as a transfer might cut it. */
static enum sse_parse_result feed_in_steps(struct sse_parser *p, const char *text, size_t step)
{
    enum sse_parse_result r = SSE_PARSE_OK;
    size_t n = strlen(text);
    for (size_t i = 0; i < n && r == SSE_PARSE_OK; i += step)
        r = sse_parser_feed(p, text + i, n - i < step ? n - i : step);
    return r;
}

static const char stream[] = ": debate build log\n"
                             "\n"
                             "id: 17\n"
                             "event: progress\n"
                             "data: {\"stage\":\"rootfs\",\"progress\":16}\n"
                             "\n"
                             "id: 18\r\n"
                             "event: log\r\n"
                             "data:I: running apt-get update...\r\n"
                             "\r\n"
                             ": keep-alive\r"
                             "\r"
                             "event: end\n"
                             "data: {\"id\":\"x\"}\n"
                             "\n";

static const char expected[] = "17|progress|{\"stage\":\"rootfs\",\"progress\":16}\n"
                               "18|log|I: running apt-get update...\n"
                               "18|end|{\"id\":\"x\"}\n";

TEST(sse_parser_reads_events_whatever_the_line_ends_and_the_cuts)
{
    for (size_t step = 1; step <= sizeof(stream); step++) {
        struct seen s = {0};
        struct sse_parser p;
        sse_parser_init(&p, 1024, record, &s);
        CHECK_INT(feed_in_steps(&p, stream, step), SSE_PARSE_OK);
        if (strcmp(s.text, expected) != 0)
            harness_fail(__FILE__, __LINE__, "cut every %zu bytes, the parser saw:\n%s", step, s.text);
        CHECK_STR(sse_parser_last_id(&p), "18");
        sse_parser_release(&p);
    }
}

TEST(sse_parser_joins_data_lines_and_defaults_the_type)
{
    struct seen s = {0};
    struct sse_parser p;
    sse_parser_init(&p, 1024, record, &s);
    CHECK_INT(feed_in_steps(&p, "data: one\ndata\ndata: three\nretry: 5\nfoo: bar\n\n", 7), SSE_PARSE_OK);
    CHECK_STR(s.text, "|message|one\n\nthree\n");
    sse_parser_release(&p);
}

TEST(sse_parser_keeps_the_id_of_an_event_without_data)
{
    struct seen s = {0};
    struct sse_parser p;
    sse_parser_init(&p, 1024, record, &s);
    CHECK_INT(feed_in_steps(&p, "id: 41\nevent: log\n\n", 100), SSE_PARSE_OK);
    CHECK_INT(s.count, 0);
    CHECK_STR(sse_parser_last_id(&p), "41");
    /* An event whose type was set but had no data leaves no type behind. */
    CHECK_INT(feed_in_steps(&p, "data: x\n\n", 100), SSE_PARSE_OK);
    CHECK_STR(s.text, "41|message|x\n");
    sse_parser_release(&p);
}

TEST(sse_parser_refuses_a_line_over_its_limit)
{
    struct seen s = {0};
    struct sse_parser p;
    sse_parser_init(&p, 64, record, &s);
    char line[200];
    memset(line, 'a', sizeof(line));
    CHECK_INT(sse_parser_feed(&p, "data: ", 6), SSE_PARSE_OK);
    CHECK_INT(sse_parser_feed(&p, line, sizeof(line)), SSE_PARSE_TOO_BIG);
    /* Once over, it stays over: nothing after is read. */
    CHECK_INT(sse_parser_feed(&p, "\n\ndata: x\n\n", 11), SSE_PARSE_TOO_BIG);
    CHECK_INT(s.count, 0);
    sse_parser_release(&p);
}

TEST(sse_parser_refuses_an_event_whose_data_grows_over_the_limit)
{
    struct seen s = {0};
    struct sse_parser p;
    sse_parser_init(&p, 64, record, &s);
    enum sse_parse_result r = SSE_PARSE_OK;
    /* Short lines, but endless data lines without a blank line between. */
    for (int i = 0; i < 100 && r == SSE_PARSE_OK; i++)
        r = sse_parser_feed(&p, "data: 0123456789\n", 17);
    CHECK_INT(r, SSE_PARSE_TOO_BIG);
    CHECK_INT(s.count, 0);
    sse_parser_release(&p);
}

TEST(sse_parser_refuses_a_long_id_or_type)
{
    char text[128];
    struct seen s = {0};
    struct sse_parser p;
    sse_parser_init(&p, 1024, record, &s);
    snprintf(text, sizeof(text), "id: %070d\n", 7);
    CHECK_INT(sse_parser_feed(&p, text, strlen(text)), SSE_PARSE_TOO_BIG);
    sse_parser_release(&p);
    sse_parser_init(&p, 1024, record, &s);
    snprintf(text, sizeof(text), "event: %070d\n", 7);
    CHECK_INT(sse_parser_feed(&p, text, strlen(text)), SSE_PARSE_TOO_BIG);
    sse_parser_release(&p);
}

TEST(sse_parser_stops_when_the_callback_says_so)
{
    struct seen s = {.stop_after = 1};
    struct sse_parser p;
    sse_parser_init(&p, 1024, record, &s);
    CHECK_INT(feed_in_steps(&p, "data: a\n\ndata: b\n\n", 100), SSE_PARSE_STOPPED);
    CHECK_INT(s.count, 1);
    sse_parser_release(&p);
}

TEST(client_id_valid_takes_only_lower_case_uuids)
{
    CHECK(client_id_valid("6f1c1f8e-2f7e-4b55-9d7e-0b8a3f0d9c11"));
    CHECK(!client_id_valid("6F1C1F8E-2F7E-4B55-9D7E-0B8A3F0D9C11"));
    CHECK(!client_id_valid("6f1c1f8e-2f7e-4b55-9d7e-0b8a3f0d9c1"));
    CHECK(!client_id_valid("6f1c1f8e-2f7e-4b55-9d7e-0b8a3f0d9c111"));
    CHECK(!client_id_valid("6f1c1f8e-2f7e-4b55-9d7e/../../csrf00"));
    CHECK(!client_id_valid("6f1c1f8e02f7e-4b55-9d7e-0b8a3f0d9c11"));
    CHECK(!client_id_valid(""));
}

TEST(client_query_escape_encodes_all_but_unreserved)
{
    _cleanup_free_ char *a = client_query_escape("succeeded");
    _cleanup_free_ char *b = client_query_escape("a b&c=d/%é");
    CHECK_STR(a, "succeeded");
    CHECK_STR(b, "a%20b%26c%3Dd%2F%25%C3%A9");
}

TEST(sse_parser_takes_an_id_only_when_its_event_ends)
{
    struct seen s = {0};
    struct sse_parser p;
    sse_parser_init(&p, 1024, record, &s);
    /* The stream drops in the middle of event 2: resuming must start after event 1, not 2. */
    CHECK_INT(feed_in_steps(&p, "id: 1\ndata: a\n\nid: 2\ndata: b\n", 3), SSE_PARSE_OK);
    CHECK_STR(s.text, "1|message|a\n");
    CHECK_STR(sse_parser_last_id(&p), "1");
    CHECK_INT(feed_in_steps(&p, "\n", 1), SSE_PARSE_OK);
    CHECK_STR(sse_parser_last_id(&p), "2");
    sse_parser_release(&p);
}

TEST(sse_parser_resumes_from_the_id_of_the_last_connection)
{
    struct seen s = {0};
    struct sse_parser p;
    sse_parser_init(&p, 1024, record, &s);
    sse_parser_resume(&p, "7");
    CHECK_STR(sse_parser_last_id(&p), "7");
    /* An event without an id line of its own keeps the id the stream had. */
    CHECK_INT(feed_in_steps(&p, "data: x\n\n", 100), SSE_PARSE_OK);
    CHECK_STR(s.text, "7|message|x\n");
    sse_parser_release(&p);
}

TEST(client_post_json_refuses_a_missing_body_before_any_request)
{
    /* Port 1 on loopback: were a request made, it would fail as CLIENT_NETWORK, not CLIENT_LOCAL. */
    struct client_opts o = {.server = "http://127.0.0.1:1"};
    struct client_error e;
    struct client *c = client_new(&o, &e);
    CHECK(c != NULL);
    json_t *out = NULL;
    long status = -1;
    CHECK_INT(client_post_json(c, "/api/v1/builds", NULL, &status, &out, &e), CLIENT_LOCAL);
    CHECK_STR(e.message, "no request body to post to \"http://127.0.0.1:1/api/v1/builds\"");
    CHECK(out == NULL);
    CHECK_INT(status, 0);
    client_free(c);
}
