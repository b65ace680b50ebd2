#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "util.h"

TEST(defaults)
{
    struct config c;
    config_init(&c);
    char err[1024];
    unsetenv("DEBATE_RATE_LIMIT");
    CHECK_INT(config_load(&c, NULL, err, sizeof(err)), 0);
    CHECK_INT(c.rate_limit, 100);
    CHECK_INT(c.rate_window, 60);
    CHECK_INT(c.https_port, 8443);
    CHECK_STR(c.listen, "127.0.0.1");
    CHECK_INT(c.trusted_hosts.count, 3);
    CHECK_STR(c.trusted_hosts.items[2], "::1");
    config_release(&c);
}

static char *write_tmp(const char *text)
{
    char *path = xstrdup("/tmp/debate-conf-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    return path;
}

TEST(file_then_environment)
{
    _cleanup_free_ char *path = write_tmp("# comment\nrate_limit = 7\n  trusted_hosts = a.example , b.example\n"
                                          "listen=::1\n");
    setenv("DEBATE_RATE_LIMIT", "9", 1);
    struct config c;
    config_init(&c);
    char err[1024];
    CHECK_INT(config_load(&c, path, err, sizeof(err)), 0);
    CHECK_INT(c.rate_limit, 9);
    CHECK_INT(c.trusted_hosts.count, 2);
    CHECK_STR(c.trusted_hosts.items[1], "b.example");
    CHECK_STR(c.listen, "::1");
    config_release(&c);
    unlink(path);
}

TEST(errors_name_the_setting)
{
    _cleanup_free_ char *path = write_tmp("rate_limit = 7\nbogus = 1\nnot a setting\n");
    setenv("DEBATE_HTTPS_PORT", "70000", 1);
    setenv("DEBATE_RATE_WINDOW", "abc", 1);
    struct config c;
    config_init(&c);
    char err[2048];
    CHECK_INT(config_load(&c, path, err, sizeof(err)), -1);
    CHECK(strstr(err, "unknown setting \"bogus\"") != NULL);
    CHECK(strstr(err, ":3: expected") != NULL);
    CHECK(strstr(err, "DEBATE_HTTPS_PORT") != NULL);
    CHECK(strstr(err, "DEBATE_RATE_WINDOW") != NULL);
    config_release(&c);
    unlink(path);
}

TEST(validation)
{
    struct config c;
    char err[2048];
    config_init(&c);
    setenv("DEBATE_TLS_CERT", "/x.pem", 1);
    CHECK_INT(config_load(&c, NULL, err, sizeof(err)), -1);
    CHECK(strstr(err, "tls_key") != NULL);
    unsetenv("DEBATE_TLS_CERT");
    config_release(&c);

    config_init(&c);
    setenv("DEBATE_LISTEN", "localhost", 1);
    CHECK_INT(config_load(&c, NULL, err, sizeof(err)), -1);
    CHECK(strstr(err, "listen") != NULL);
    unsetenv("DEBATE_LISTEN");
    config_release(&c);

    config_init(&c);
    setenv("DEBATE_CORS_ORIGINS", "https://ok.example,https://bad.example/path", 1);
    CHECK_INT(config_load(&c, NULL, err, sizeof(err)), -1);
    CHECK(strstr(err, "bad.example/path") != NULL);
    unsetenv("DEBATE_CORS_ORIGINS");
    config_release(&c);

    config_init(&c);
    CHECK_INT(config_load(&c, "/nonexistent/debate.conf", err, sizeof(err)), -1);
    CHECK(strstr(err, "/nonexistent/debate.conf") != NULL);
    config_release(&c);
}
