#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "http/tls.h"
#include "util.h"

/*
 * A leaf that must be renewed while the internal CA cannot be written (its
 * key's path is a directory): the start fails with the reason. It used to
 * free the stale leaf a second time, and a pointer never set, on the way out.
 */
TEST(a_ca_that_cannot_be_written_fails_the_start_with_its_reason)
{
    char dir[] = "/tmp/debate-tls-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    struct config cfg;
    config_init(&cfg);
    free(cfg.data_dir);
    cfg.data_dir = xstrdup(dir);
    char err[512] = "", *ca_path = NULL;
    SSL_CTX *ctx = tls_context_new(&cfg, &ca_path, err, sizeof(err));
    CHECK(ctx != NULL);
    SSL_CTX_free(ctx);
    free(ca_path);

    _cleanup_free_ char *san = xasprintf("%s/tls/server.san", dir), *ca = xasprintf("%s/tls/ca.pem", dir),
                       *ca_key = xasprintf("%s/tls/ca.key", dir);
    CHECK_INT(unlink(san), 0); /* the leaf no longer matches: it is renewed, and with it the CA */
    CHECK_INT(unlink(ca), 0);
    CHECK_INT(unlink(ca_key), 0);
    CHECK_INT(mkdir(ca_key, 0700), 0);
    ctx = tls_context_new(&cfg, &ca_path, err, sizeof(err));
    CHECK(ctx == NULL);
    CHECK(ca_path == NULL);
    CHECK(strstr(err, "cannot create the internal CA") != NULL);

    config_release(&cfg);
    _cleanup_free_ char *rm = xasprintf("rm -rf %s", dir);
    CHECK_INT(system(rm), 0);
}
