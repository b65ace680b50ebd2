/*
 * Strict checks of a raw HTTP/1.1 request head, made before routing.
 *
 * The HTTP/1 parser under h2o (picohttpparser) is lenient: it accepts bare
 * LF line ends and obs-fold, takes the first of two Content-Length headers
 * and prefers Transfer-Encoding when both are present. Each of those is a
 * request-smuggling vector when debate sits behind a proxy that reads the
 * bytes differently, so debate re-reads the head exactly as received and
 * refuses anything ambiguous (RFC 9112 sections 2.2, 5.2, 6.1, 6.3).
 *
 * framing_check is pure: it reads buf and touches nothing else.
 */
#ifndef DEBATE_HTTP_FRAMING_H
#define DEBATE_HTTP_FRAMING_H

#include <stddef.h>

enum framing_result {
    FRAMING_OK,
    FRAMING_INCOMPLETE,
    FRAMING_TOO_LARGE,
    FRAMING_BARE_LF,
    FRAMING_BARE_CR,
    FRAMING_OBS_FOLD,
    FRAMING_BAD_HEADER_NAME,
    FRAMING_BAD_HEADER_VALUE,
    FRAMING_DUP_CONTENT_LENGTH,
    FRAMING_BAD_CONTENT_LENGTH,
    FRAMING_TE_AND_CL,
    FRAMING_BAD_TRANSFER_ENCODING,
    FRAMING_BAD_HOST,
};

/*
 * Checks the head at the start of buf (len bytes available). On FRAMING_OK
 * *head_len is the length of the head including its blank line. A head
 * longer than max_head is FRAMING_TOO_LARGE.
 */
enum framing_result framing_check(const char *buf, size_t len, size_t max_head, size_t *head_len);
const char *framing_strerror(enum framing_result r);

#endif
