/*
 * The OpenAPI document compiled into the binary against the routing table:
 * every route is described, and every described path and method is a route.
 */
#include <jansson.h>

#include "harness.h"
#include "http/assets.h"
#include "http/routes.h"

static json_t *document(void)
{
    const struct asset *a = assets_openapi();
    json_error_t je;
    json_t *doc = json_loadb(a->data, a->len, 0, &je);
    if (doc == NULL)
        harness_fail(__FILE__, __LINE__, "the document is not JSON: %s (line %d)", je.text, je.line);
    return doc;
}

static const struct {
    unsigned bit;
    const char *name;
} methods[] = {{METHOD_GET, "get"}, {METHOD_POST, "post"}, {METHOD_PUT, "put"}, {METHOD_PATCH, "patch"},
               {METHOD_DELETE, "delete"}};

TEST(every_route_is_described)
{
    json_t *doc = document();
    json_t *paths = json_object_get(doc, "paths");
    size_t n;
    const struct route *routes = routes_table(&n);
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_object_get(paths, routes[i].pattern);
        if (item == NULL)
            harness_fail(__FILE__, __LINE__, "route \"%s\" is not in the document", routes[i].pattern);
        for (size_t k = 0; k < sizeof(methods) / sizeof(methods[0]); k++)
            if ((routes[i].methods & methods[k].bit) && json_object_get(item, methods[k].name) == NULL)
                harness_fail(__FILE__, __LINE__, "%s %s is not in the document", methods[k].name, routes[i].pattern);
    }
    json_decref(doc);
}

/* The methods a path has in the table (GET brings HEAD). */
static unsigned route_methods(const struct route *routes, size_t n, const char *pattern)
{
    unsigned set = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(routes[i].pattern, pattern) == 0)
            set |= routes[i].methods & METHOD_GET ? routes[i].methods | METHOD_HEAD : routes[i].methods;
    return set;
}

TEST(every_described_operation_is_a_route)
{
    json_t *doc = document();
    size_t n;
    const struct route *routes = routes_table(&n);
    const char *path;
    json_t *item;
    json_object_foreach(json_object_get(doc, "paths"), path, item) {
        unsigned have = route_methods(routes, n, path);
        if (have == 0)
            harness_fail(__FILE__, __LINE__, "the document describes \"%s\", which is no route", path);
        const char *op;
        json_t *v;
        json_object_foreach(item, op, v) {
            unsigned bit = strcmp(op, "head") == 0 ? METHOD_HEAD : 0;
            for (size_t k = 0; k < sizeof(methods) / sizeof(methods[0]); k++)
                if (strcmp(op, methods[k].name) == 0)
                    bit = methods[k].bit;
            if (bit != 0 && !(have & bit))
                harness_fail(__FILE__, __LINE__, "the document describes %s %s, which is no route", op, path);
        }
    }
    json_decref(doc);
}

TEST(the_document_is_openapi_3_1_with_etag)
{
    json_t *doc = document();
    CHECK_STR(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    const struct asset *a = assets_openapi();
    CHECK_STR(a->content_type, "application/json");
    CHECK(strlen(a->etag) == 66 && a->etag[0] == '"');
    json_decref(doc);
}

TEST(the_page_is_embedded)
{
    const struct asset *index = assets_find("index.html", 10);
    CHECK(index != NULL);
    CHECK_STR(index->content_type, "text/html; charset=utf-8");
    CHECK(assets_find("nope.js", 7) == NULL);
    CHECK(assets_find("index.htm", 9) == NULL);
    /* The document is not a page asset: /assets/openapi.json must not serve it. */
    CHECK(assets_find("openapi.json", 12) == NULL);
}
