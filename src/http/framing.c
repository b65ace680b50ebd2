#include "http/framing.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "util.h"
#include "banned.h"

struct head_state {
    int content_length, transfer_encoding, host;
};

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return true;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void trim_ows(const char **v, size_t *n)
{
    while (*n > 0 && (**v == ' ' || **v == '\t')) {
        (*v)++;
        (*n)--;
    }
    while (*n > 0 && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
        (*n)--;
}

static enum framing_result check_content_length(const char *v, size_t n, struct head_state *st)
{
    if (++st->content_length > 1)
        return FRAMING_DUP_CONTENT_LENGTH;
    if (n == 0 || n > 18)
        return FRAMING_BAD_CONTENT_LENGTH;
    for (size_t i = 0; i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return FRAMING_BAD_CONTENT_LENGTH;
    return FRAMING_OK;
}

static enum framing_result check_header(const char *line, size_t n, struct head_state *st)
{
    if (line[0] == ' ' || line[0] == '\t')
        return FRAMING_OBS_FOLD;
    const char *colon = memchr(line, ':', n);
    if (colon == NULL || colon == line)
        return FRAMING_BAD_HEADER_NAME;
    size_t name_len = (size_t)(colon - line);
    for (size_t i = 0; i < name_len; i++)
        if (!is_tchar((unsigned char)line[i]))
            return FRAMING_BAD_HEADER_NAME;
    const char *v = colon + 1;
    size_t vn = n - name_len - 1;
    for (size_t i = 0; i < vn; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < ' ' && c != '\t') || c == 0x7f)
            return FRAMING_BAD_HEADER_VALUE;
    }
    trim_ows(&v, &vn);
    if (str_ieq(line, name_len, "content-length"))
        return check_content_length(v, vn, st);
    if (str_ieq(line, name_len, "transfer-encoding")) {
        if (++st->transfer_encoding > 1 || !str_ieq(v, vn, "chunked"))
            return FRAMING_BAD_TRANSFER_ENCODING;
    } else if (str_ieq(line, name_len, "host")) {
        if (++st->host > 1 || vn == 0)
            return FRAMING_BAD_HOST;
    }
    return FRAMING_OK;
}

/* Finds the end of the line at p; checks it ends in CRLF and has no lone CR. */
static enum framing_result next_line(const char *p, const char *end, size_t *line_len)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    if (lf == NULL)
        return FRAMING_INCOMPLETE;
    if (lf == p || lf[-1] != '\r')
        return FRAMING_BARE_LF;
    if (memchr(p, '\r', (size_t)(lf - 1 - p)) != NULL)
        return FRAMING_BARE_CR;
    *line_len = (size_t)(lf - 1 - p);
    return FRAMING_OK;
}

enum framing_result framing_check(const char *buf, size_t len, size_t max_head, size_t *head_len)
{
    const char *p = buf, *end = buf + (len < max_head + 1 ? len : max_head + 1);
    struct head_state st = {0, 0, 0};
    bool seen_request_line = false;
    for (;;) {
        size_t n;
        enum framing_result r = next_line(p, end, &n);
        if (r == FRAMING_INCOMPLETE)
            return len > max_head ? FRAMING_TOO_LARGE : FRAMING_INCOMPLETE;
        if (r != FRAMING_OK)
            return r;
        if (!seen_request_line)
            seen_request_line = n > 0; /* blank lines before it are skipped, as the parser does */
        else if (n == 0)
            break;
        else if ((r = check_header(p, n, &st)) != FRAMING_OK)
            return r;
        p += n + 2;
    }
    *head_len = (size_t)(p + 2 - buf);
    if (*head_len > max_head)
        return FRAMING_TOO_LARGE;
    if (st.transfer_encoding && st.content_length)
        return FRAMING_TE_AND_CL;
    if (st.host != 1)
        return FRAMING_BAD_HOST;
    return FRAMING_OK;
}

const char *framing_strerror(enum framing_result r)
{
    switch (r) {
    case FRAMING_OK:
        return "ok";
    case FRAMING_INCOMPLETE:
        return "the request head is incomplete";
    case FRAMING_TOO_LARGE:
        return "the request head is larger than the limit";
    case FRAMING_BARE_LF:
        return "a line ends in a bare LF; lines must end in CRLF";
    case FRAMING_BARE_CR:
        return "a line holds a bare CR";
    case FRAMING_OBS_FOLD:
        return "a header is folded over several lines (obs-fold)";
    case FRAMING_BAD_HEADER_NAME:
        return "a header name is empty or holds characters not allowed in a token";
    case FRAMING_BAD_HEADER_VALUE:
        return "a header value holds control characters";
    case FRAMING_DUP_CONTENT_LENGTH:
        return "Content-Length appears more than once";
    case FRAMING_BAD_CONTENT_LENGTH:
        return "Content-Length is not a plain decimal number";
    case FRAMING_TE_AND_CL:
        return "Transfer-Encoding and Content-Length are both present";
    case FRAMING_BAD_TRANSFER_ENCODING:
        return "Transfer-Encoding must be exactly \"chunked\", once";
    case FRAMING_BAD_HOST:
        return "the request must carry exactly one non-empty Host header";
    }
    return "malformed request";
}
