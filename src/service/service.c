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
    service_identity(cfg, &svc->identity);
    svc->finished = finished_new();
    /* amd64: the only architecture a recipe may name (docs/recipes.md). */
    svc->packages = packages_new(cfg->cache_dir, "amd64");
}

void service_identity(const struct config *cfg, struct builder_id *id)
{
    memset(id, 0, sizeof(*id));
    snprintf(id->arch, sizeof(id->arch), "amd64"); /* the only architecture a recipe may name */
    snprintf(id->builder, sizeof(id->builder), "debate %s", DEBATE_VERSION);
    /* The tool probe writes scratch files there: without the directory the digest is of nothing. */
    _cleanup_free_ char *tools = mkdir_p(cfg->data_dir, 0700) == 0 ? engine_tool_versions(cfg->data_dir) : xstrdup("");
    sha256_hex(tools, strlen(tools), id->tools);
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
