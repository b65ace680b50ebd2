/*
 * Sending a file as a response: a stream of pread chunks with Range (one
 * range: 206, or 416 past the end), HEAD (the headers alone), and an
 * entity tag (If-None-Match: 304). Over TLS the bytes pass through user
 * space anyway to be encrypted, so sendfile would not save the copy.
 *
 * Call from the request's loop thread. The file is opened at once and read
 * as the client takes the bytes; it is closed when the request ends. A file
 * whose size or mtime changes while it is sent is cut off (the response
 * ends short of its Content-Length): a client never gets a whole response
 * of bytes that were not the file's when it started.
 */
#ifndef DEBATE_HTTP_FILES_H
#define DEBATE_HTTP_FILES_H

#include <stdbool.h>
#include <sys/types.h>

#include <h2o.h>

struct files_opts {
    const char *content_type;
    const char *etag;        /* the quoted entity tag, or NULL */
    const char *disposition; /* Content-Disposition, or NULL */
    const char *what;        /* the file in messages ("the ISO"), or NULL: "the file" */
};

/*
 * Answers req with the file at path. 0 when answered (200, 206, 304, 416);
 * -errno when the file cannot be opened, nothing sent: the caller answers.
 */
int files_send(h2o_req_t *req, const char *path, const struct files_opts *o);
/* The same with a file already open (checked, say): fd is the callee's in every case. */
int files_send_fd(h2o_req_t *req, int fd, const struct files_opts *o);

/*
 * Reads a Range value ("bytes=A-B", "bytes=A-", "bytes=-N") against a file
 * of size bytes: 1 with [*from, *to] (inclusive) to send, 0 to ignore it
 * (several ranges, junk: send the whole file), -1 when it cannot be
 * satisfied (416).
 */
int files_parse_range(const char *value, size_t len, off_t size, off_t *from, off_t *to);

#endif
