#include "harness.h"
#include "http/framing.h"

struct fixture {
    const char *name;
    const char *head;
    enum framing_result want;
};

#define H "Host: localhost\r\n"

/* Request-smuggling and malformed-head fixtures (after llhttp's tables). */
static const struct fixture fixtures[] = {
    {"plain get", "GET / HTTP/1.1\r\n" H "\r\n", FRAMING_OK},
    {"post with length", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\nhello", FRAMING_OK},
    {"chunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", FRAMING_OK},
    {"chunked any case", "POST / HTTP/1.1\r\n" H "transfer-encoding: Chunked\r\n\r\n", FRAMING_OK},
    {"leading blank line", "\r\nGET / HTTP/1.1\r\n" H "\r\n", FRAMING_OK},
    {"ows around value", "POST / HTTP/1.1\r\n" H "Content-Length:  5 \r\n\r\n", FRAMING_OK},
    {"te and cl", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", FRAMING_TE_AND_CL},
    {"cl and te", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", FRAMING_TE_AND_CL},
    {"duplicate cl", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", FRAMING_DUP_CONTENT_LENGTH},
    {"conflicting cl", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", FRAMING_DUP_CONTENT_LENGTH},
    {"cl list", "POST / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\n", FRAMING_BAD_CONTENT_LENGTH},
    {"cl plus", "POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n", FRAMING_BAD_CONTENT_LENGTH},
    {"cl minus", "POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", FRAMING_BAD_CONTENT_LENGTH},
    {"cl hex", "POST / HTTP/1.1\r\n" H "Content-Length: 0x5\r\n\r\n", FRAMING_BAD_CONTENT_LENGTH},
    {"cl empty", "POST / HTTP/1.1\r\n" H "Content-Length: \r\n\r\n", FRAMING_BAD_CONTENT_LENGTH},
    {"cl huge", "POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999\r\n\r\n", FRAMING_BAD_CONTENT_LENGTH},
    {"te gzip chunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", FRAMING_BAD_TRANSFER_ENCODING},
    {"te chunked twice", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     FRAMING_BAD_TRANSFER_ENCODING},
    {"te xchunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n", FRAMING_BAD_TRANSFER_ENCODING},
    {"te identity", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n", FRAMING_BAD_TRANSFER_ENCODING},
    {"bare lf request line", "GET / HTTP/1.1\n" H "\r\n", FRAMING_BARE_LF},
    {"bare lf header", "GET / HTTP/1.1\r\nHost: localhost\n\r\n", FRAMING_BARE_LF},
    {"bare lf end", "GET / HTTP/1.1\r\n" H "\n", FRAMING_BARE_LF},
    {"bare cr", "GET / HTTP/1.1\r\nX-A: a\rb\r\n" H "\r\n", FRAMING_BARE_CR},
    {"obs-fold space", "GET / HTTP/1.1\r\n" H "X-A: a\r\n b\r\n\r\n", FRAMING_OBS_FOLD},
    {"obs-fold tab", "GET / HTTP/1.1\r\n" H "X-A: a\r\n\tb\r\n\r\n", FRAMING_OBS_FOLD},
    {"space before colon", "POST / HTTP/1.1\r\n" H "Content-Length : 5\r\n\r\n", FRAMING_BAD_HEADER_NAME},
    {"empty name", "GET / HTTP/1.1\r\n" H ": x\r\n\r\n", FRAMING_BAD_HEADER_NAME},
    {"no colon", "GET / HTTP/1.1\r\n" H "junk\r\n\r\n", FRAMING_BAD_HEADER_NAME},
    {"nul in value", "GET / HTTP/1.1\r\n" H "X-A: a\x01z\r\n\r\n", FRAMING_BAD_HEADER_VALUE},
    {"no host", "GET / HTTP/1.1\r\n\r\n", FRAMING_BAD_HOST},
    {"two hosts", "GET / HTTP/1.1\r\n" H H "\r\n", FRAMING_BAD_HOST},
    {"empty host", "GET / HTTP/1.1\r\nHost: \r\n\r\n", FRAMING_BAD_HOST},
    {"incomplete", "GET / HTTP/1.1\r\n" H, FRAMING_INCOMPLETE},
};

TEST(smuggling_and_malformed_fixtures)
{
    for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
        size_t head_len = 0;
        enum framing_result r = framing_check(fixtures[i].head, strlen(fixtures[i].head), 16384, &head_len);
        if (r != fixtures[i].want)
            harness_fail(__FILE__, __LINE__, "fixture \"%s\": got \"%s\", expected \"%s\"", fixtures[i].name,
                         framing_strerror(r), framing_strerror(fixtures[i].want));
    }
}

TEST(head_length_excludes_the_body)
{
    const char *req = "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\nhello";
    size_t head_len = 0;
    CHECK_INT(framing_check(req, strlen(req), 16384, &head_len), FRAMING_OK);
    CHECK_INT(head_len, strlen(req) - 5);
}

TEST(oversized_head_is_too_large)
{
    char big[40000];
    int n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\n" H "X-Big: ");
    memset(big + n, 'a', 30000);
    memcpy(big + n + 30000, "\r\n\r\n", 5);
    size_t head_len;
    CHECK_INT(framing_check(big, strlen(big), 16384, &head_len), FRAMING_TOO_LARGE);
    CHECK_INT(framing_check(big, strlen(big), 65536, &head_len), FRAMING_OK);
    /* Incomplete but already past the limit. */
    CHECK_INT(framing_check(big, 20000, 16384, &head_len), FRAMING_TOO_LARGE);
}
