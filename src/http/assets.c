#include "http/assets.h"

#include <string.h>

#include "banned.h"

const struct asset *assets_find(const char *name, size_t len)
{
    size_t n;
    const struct asset *t = assets_table(&n);
    for (size_t i = 0; i < n; i++)
        if (strlen(t[i].name) == len && memcmp(t[i].name, name, len) == 0)
            return &t[i];
    return NULL;
}
