/*
 * The query string of a request: parameters by name, percent-decoded.
 * A route first checks the whole query (query_check: only names it
 * knows, each once, every value decodable to text without NUL bytes), so
 * that a typo or a hostile value is a 400 naming the parameter rather than
 * something silently ignored; then reads values with query_param.
 *
 * Call from the request's loop thread.
 */
#ifndef DEBATE_HTTP_QUERY_H
#define DEBATE_HTTP_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>

/*
 * True when every parameter of req's query is one of known (NULL-
 * terminated), none is given twice and every value decodes. Otherwise
 * false, with the offending parameter's name in bad (truncated to badlen)
 * and a sentence in msg.
 */
bool query_check(h2o_req_t *req, const char *const *known, char *bad, size_t badlen, char *msg, size_t msglen);

/* The value of parameter name (percent-decoded, '+' as space, malloc'd), or NULL when absent. */
char *query_param(h2o_req_t *req, const char *name);

#endif
