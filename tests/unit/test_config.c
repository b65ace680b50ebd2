#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
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

/* Removes every DEBATE_* variable the test inherited, so that only its own count. */
static void clear_debate_env(void)
{
    for (;;) {
        char **env = environ;
        while (*env != NULL && strncmp(*env, "DEBATE_", 7) != 0)
            env++;
        if (*env == NULL)
            return;
        _cleanup_free_ char *name = xstrndup(*env, strcspn(*env, "="));
        unsetenv(name);
    }
}

/* Loads the configuration from the environment (and file, if not NULL); returns config_load's result. */
static int load(struct config *c, const char *file, char *err, size_t errlen)
{
    config_init(c);
    return config_load(c, file, err, errlen);
}

TEST(misspelt_variable_is_refused_with_the_closest_name)
{
    clear_debate_env();
    setenv("DEBATE_HTTPS_PORTS", "9443", 1);
    struct config c;
    char err[2048];
    CHECK_INT(load(&c, NULL, err, sizeof(err)), -1);
    CHECK(strstr(err, "unknown setting \"DEBATE_HTTPS_PORTS\" (did you mean \"DEBATE_HTTPS_PORT\"?)") != NULL);
    config_release(&c);
}

TEST(variable_in_lower_case_is_refused_with_the_right_spelling)
{
    clear_debate_env();
    setenv("DEBATE_rate_limit", "5", 1);
    struct config c;
    char err[2048];
    CHECK_INT(load(&c, NULL, err, sizeof(err)), -1);
    CHECK(strstr(err, "unknown setting \"DEBATE_rate_limit\" (did you mean \"DEBATE_RATE_LIMIT\"?)") != NULL);
    config_release(&c);
}

TEST(unknown_variable_far_from_every_setting_gets_no_suggestion)
{
    clear_debate_env();
    setenv("DEBATE_ZZZZZZZZZZZZ", "1", 1);
    struct config c;
    char err[2048];
    CHECK_INT(load(&c, NULL, err, sizeof(err)), -1);
    CHECK(strstr(err, "unknown setting \"DEBATE_ZZZZZZZZZZZZ\"\n") != NULL);
    CHECK(strstr(err, "did you mean") == NULL);
    config_release(&c);
}

TEST(variables_that_are_not_settings_are_allowed)
{
    clear_debate_env();
    setenv("DEBATE_CONFIG", "", 1);
    setenv("DEBATE_BIN", "/usr/local/bin/debate", 1);
    setenv("DEBATE_NOOP_MS", "150", 1);
    setenv("DEBATE_TEST_ANYTHING", "1", 1);
    setenv("DEBATE_RATE_LIMIT", "5", 1);
    struct config c;
    char err[2048];
    CHECK_INT(load(&c, NULL, err, sizeof(err)), 0);
    CHECK_INT(c.rate_limit, 5);
    config_release(&c);
}

TEST(misspelt_file_key_is_refused_with_the_closest_name)
{
    clear_debate_env();
    _cleanup_free_ char *path = write_tmp("https_ports = 9443\nqqqqqqqqqqqq = 1\n");
    struct config c;
    char err[2048];
    CHECK_INT(load(&c, path, err, sizeof(err)), -1);
    CHECK(strstr(err, ":1: unknown setting \"https_ports\" (did you mean \"https_port\"?)") != NULL);
    CHECK(strstr(err, ":2: unknown setting \"qqqqqqqqqqqq\"\n") != NULL);
    config_release(&c);
    unlink(path);
}

/* A fresh directory as the working directory; returns its path (malloc'd). */
static char *enter_tmp_dir(void)
{
    char *dir = xstrdup("/tmp/debate-cwd-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    CHECK(chdir(dir) == 0);
    return dir;
}

TEST(relative_paths_become_absolute)
{
    clear_debate_env();
    _cleanup_free_ char *dir = enter_tmp_dir();
    setenv("DEBATE_DATA_DIR", "./state/", 1);
    setenv("DEBATE_TLS_CERT", "tls/cert.pem", 1);
    setenv("DEBATE_TLS_KEY", "/etc/debate/key.pem", 1);
    setenv("DEBATE_PG_BINDIR", ".", 1);
    struct config c;
    char err[2048];
    CHECK_INT(load(&c, NULL, err, sizeof(err)), 0);
    _cleanup_free_ char *data = xasprintf("%s/state", dir);
    _cleanup_free_ char *cert = xasprintf("%s/tls/cert.pem", dir);
    _cleanup_free_ char *backups = xasprintf("%s/state/backups", dir);
    _cleanup_free_ char *cache = xasprintf("%s/state/cache", dir);
    _cleanup_free_ char *artifacts = xasprintf("%s/state/artifacts", dir);
    CHECK_STR(c.data_dir, data);
    CHECK_STR(c.tls_cert, cert);
    CHECK_STR(c.tls_key, "/etc/debate/key.pem");
    CHECK_STR(c.pg_bindir, dir);
    CHECK_STR(c.backup_dir, backups);
    CHECK_STR(c.cache_dir, cache);
    CHECK_STR(c.artifact_dir, artifacts);
    CHECK_STR(c.archive_keyring, "/usr/share/keyrings/debian-archive-keyring.gpg");
    config_release(&c);
    rmdir(dir);
}

TEST(default_data_dir_is_under_the_working_directory)
{
    clear_debate_env();
    _cleanup_free_ char *dir = enter_tmp_dir();
    _cleanup_free_ char *relative_backups = xstrdup("old/backups");
    setenv("DEBATE_BACKUP_DIR", relative_backups, 1);
    struct config c;
    char err[2048];
    CHECK_INT(load(&c, NULL, err, sizeof(err)), 0);
    _cleanup_free_ char *data = xasprintf("%s/data", dir);
    _cleanup_free_ char *backups = xasprintf("%s/old/backups", dir);
    CHECK_STR(c.data_dir, data);
    CHECK_STR(c.backup_dir, backups);
    config_release(&c);
    rmdir(dir);
}

/* The server setting of the client commands: $DEBATE_SERVER, its default, its check. */

TEST(server_defaults_to_the_local_server)
{
    clear_debate_env();
    struct config c;
    char err[2048];
    CHECK_INT(load(&c, NULL, err, sizeof(err)), 0);
    CHECK_STR(c.server, "https://localhost:8443");
    config_release(&c);
}

TEST(debate_server_is_a_setting_not_an_unknown_variable)
{
    clear_debate_env();
    setenv("DEBATE_SERVER", "https://builds.example:9443", 1);
    struct config c;
    char err[2048];
    CHECK_INT(load(&c, NULL, err, sizeof(err)), 0);
    CHECK_STR(c.server, "https://builds.example:9443");
    config_release(&c);
}

TEST(debate_server_must_be_an_http_url)
{
    clear_debate_env();
    setenv("DEBATE_SERVER", "builds.example:9443", 1);
    struct config c;
    char err[2048];
    CHECK_INT(load(&c, NULL, err, sizeof(err)), -1);
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
    CHECK_INT(load(&c, NULL, err, sizeof(err)), -1);
    CHECK(strstr(err, "unknown setting \"DEBATE_SERVRE\" (did you mean \"DEBATE_SERVER\"?)") != NULL);
    config_release(&c);
}
