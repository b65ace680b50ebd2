/* The server setting of the client commands: $DEBATE_SERVER, its default, its check. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "util.h"

extern char **environ;

/* Every DEBATE_* variable out of the way, so that the runner's own cannot interfere. */
static void clear_debate_env(void)
{
    for (char **env = environ; *env != NULL;) {
        if (strncmp(*env, "DEBATE_", 7) != 0) {
            env++;
            continue;
        }
        _cleanup_free_ char *name = xstrndup(*env, (size_t)(strchr(*env, '=') - *env));
        unsetenv(name);
    }
}

static int load(struct config *c, char *err, size_t errlen)
{
    config_init(c);
    return config_load(c, NULL, err, errlen);
}

TEST(server_defaults_to_the_local_server)
{
    clear_debate_env();
    struct config c;
    char err[2048];
    CHECK_INT(load(&c, err, sizeof(err)), 0);
    CHECK_STR(c.server, "https://localhost:8443");
    config_release(&c);
}

TEST(debate_server_is_a_setting_not_an_unknown_variable)
{
    clear_debate_env();
    setenv("DEBATE_SERVER", "https://builds.example:9443", 1);
    struct config c;
    char err[2048];
    CHECK_INT(load(&c, err, sizeof(err)), 0);
    CHECK_STR(c.server, "https://builds.example:9443");
    config_release(&c);
}

TEST(debate_server_must_be_an_http_url)
{
    clear_debate_env();
    setenv("DEBATE_SERVER", "builds.example:9443", 1);
    struct config c;
    char err[2048];
    CHECK_INT(load(&c, err, sizeof(err)), -1);
    CHECK(strstr(err, "\"server\" must be an https:// (or http://) URL") != NULL);
    CHECK(strstr(err, "(got \"builds.example:9443\")") != NULL);
    config_release(&c);
}

TEST(a_misspelt_debate_server_names_the_setting)
{
    clear_debate_env();
    setenv("DEBATE_SERVRE", "https://builds.example", 1);
    struct config c;
    char err[2048];
    CHECK_INT(load(&c, err, sizeof(err)), -1);
    CHECK(strstr(err, "unknown setting \"DEBATE_SERVRE\" (did you mean \"DEBATE_SERVER\"?)") != NULL);
    config_release(&c);
}
