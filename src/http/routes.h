#ifndef DEBATE_HTTP_ROUTES_H
#define DEBATE_HTTP_ROUTES_H

#include <stddef.h>

#include "http/router.h"

/* The server's routing table (static storage). */
const struct route *routes_table(size_t *n);

#endif
