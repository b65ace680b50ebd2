#include "service/service.h"

#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "engine/engine.h"
#include "engine/resolve.h"
#include "util.h"
#include "banned.h"

void service_init(struct service *svc, const struct config *cfg)
{
    memset(svc, 0, sizeof(*svc));
    svc->cfg = cfg;
    svc->mirror = cfg->mirror[0] ? xstrdup(cfg->mirror) : resolve_default_mirror();
    svc->security_mirror =
        cfg->security_mirror[0] ? xstrdup(cfg->security_mirror) : resolve_default_security_mirror();
    /* The tool probe writes scratch files there: without the directory the digest stays empty. */
    if (mkdir_p(cfg->data_dir, 0700) == 0) {
        _cleanup_free_ char *tools = engine_tool_versions(cfg->data_dir);
        sha256_hex(tools, strlen(tools), svc->tools_digest);
    }
    svc->finished = finished_new();
    /* amd64: the only architecture a recipe may name (docs/recipes.md). */
    svc->packages = packages_new(cfg->cache_dir, "amd64");
}

void service_start(struct service *svc)
{
    packages_start(svc->packages);
}

void service_stop(struct service *svc)
{
    packages_stop(svc->packages);
}

void service_release(struct service *svc)
{
    free(svc->mirror);
    svc->mirror = NULL;
    free(svc->security_mirror);
    svc->security_mirror = NULL;
    finished_free(svc->finished);
    svc->finished = NULL;
    packages_free(svc->packages);
    svc->packages = NULL;
}
