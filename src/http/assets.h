/*
 * The files compiled into debate: the web page (every file of web/) and
 * the OpenAPI document (docs/openapi.json). scripts/embed-assets.py writes
 * their table into build/gen/web_assets.c at build time; nothing is read
 * from disk at run time, so the binary serves exactly the page it was
 * built with.
 *
 * Everything here is constant, static storage: any thread may read it and
 * nothing is freed.
 */
#ifndef DEBATE_HTTP_ASSETS_H
#define DEBATE_HTTP_ASSETS_H

#include <stddef.h>

struct asset {
    const char *name; /* the file name in web/ ("app.js"), or "openapi.json" */
    const char *data;
    size_t len;
    const char *gzip; /* the same bytes gzip-compressed, or NULL when that would not save enough */
    size_t gzip_len;
    const char *content_type; /* with "; charset=utf-8" for text */
    const char *etag;         /* strong: the SHA-256 of data, quoted */
    const char *gzip_etag;    /* the compressed copy's: the same hash with ".gz" */
};

/* The files of web/, sorted by name. */
const struct asset *assets_table(size_t *n);
/* The asset called name (len bytes), or NULL. */
const struct asset *assets_find(const char *name, size_t len);
/* The OpenAPI document. */
const struct asset *assets_openapi(void);

#endif
