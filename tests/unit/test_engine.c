/*
 * The engine's failure causes, offline. Every cause has its API code and a
 * text. Resolution against mirrors the test makes (a file:// mirror signed
 * with a key of its own, the same mirror unsigned, a closed port) returns
 * the cause as a value: an unknown package, a bad signature, an unreachable
 * mirror; engine_build passes it on. An output whose directory does not
 * exist is refused before anything is fetched, and an interrupt while
 * resolving is the cause whatever apt said. apt's state outlives a
 * resolution (CACHE/apt/<key>/): the next one reuses it, sees a mirror
 * that published again, fails as the first would when a suite is gone, and
 * waits its turn when another resolves the same sources.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "engine/engine.h"
#include "engine/recipe.h"
#include "engine/resolve.h"
#include "harness.h"
#include "util.h"

#define CLOSED_PORT_MIRROR "http://127.0.0.1:9/debian"

/*
 * File:// mirrors of trixie in a scratch dir: m/ holds trixie (busybox-static
 * in main, firmware-test in non-free-firmware) and an empty trixie-updates;
 * s/, the security archive, holds trixie-security with a newer
 * busybox-static. Each suite is signed as the test says; the keyring holds
 * the key of SIGNED alone, so FOREIGN is a valid signature by a key the
 * archive does not trust. Every file carries the same time. A package
 * cache beside.
 */
enum signing { UNSIGNED, SIGNED, FOREIGN };

struct mirror {
    char *dir, *url, *security_url, *keyring, *cache;
};

static void run(const char *cmd)
{
    if (system(cmd) != 0)
        harness_fail(__FILE__, __LINE__, "command failed: %s", cmd);
}

#define SECURITY_BUSYBOX "1:1.35.0-4+deb13u1"
#define SECURITY_DATE "Mon, 02 Jan 2023 00:00:00 UTC"

static const char mirror_script[] =
    "set -e; top=$1; cd \"$top\"; export GNUPGHOME=\"$top/g\"\n"
    "if [ ! -d g ]; then mkdir -m 700 g g2\n"
    "gpg --batch --quiet --passphrase '' --quick-gen-key 'debate test <test@invalid>' ed25519 sign never\n"
    "gpg --batch --quiet --export > keyring.gpg\n"
    "GNUPGHOME=\"$top/g2\" gpg --batch --quiet --passphrase '' --quick-gen-key 'other <o@invalid>' ed25519 sign "
    "never; fi\n"
    "stanza() { printf 'Package: %s\\nVersion: %s\\nArchitecture: amd64\\nMaintainer: t <t@invalid>\\n"
    "Filename: %s\\nSize: 1\\nSHA256: 1111111111111111111111111111111111111111111111111111111111111111\\n"
    "Description: t\\n\\n' \"$1\" \"$2\" \"$3\"; }\n"
    "suite() {\n"
    "  d=\"$top/$1/dists/$2\"; date=$3; sign=$4; shift 4\n"
    "  for c in main non-free-firmware; do mkdir -p \"$d/$c/binary-amd64\"; : > \"$d/$c/binary-amd64/Packages\"; done\n"
    "  while [ $# -ge 4 ]; do stanza \"$2\" \"$3\" \"$4\" >> \"$d/$1/binary-amd64/Packages\"; shift 4; done\n"
    "  cd \"$d\"\n"
    "  for c in main non-free-firmware; do f=$c/binary-amd64/Packages; xz -kf $f; mkdir -p $c/binary-amd64/by-hash/SHA256\n"
    "    cp $f.xz $c/binary-amd64/by-hash/SHA256/$(sha256sum $f.xz | cut -d' ' -f1); done\n"
    "  { printf 'Origin: debate-test\\nSuite: %s\\nCodename: %s\\nDate: %s\\nArchitectures: amd64\\n' \"${d##*/}\" "
    "\"${d##*/}\" \"$date\"\n"
    "    printf 'Components: main non-free-firmware\\nSHA256:\\n'\n"
    "    for f in */binary-amd64/Packages */binary-amd64/Packages.xz; do\n"
    "      printf ' %s %s %s\\n' $(sha256sum $f | cut -d' ' -f1) $(stat -c %s $f) $f; done; } > Release\n"
    "  case $sign in 1) gpg --batch --quiet --yes --clearsign -o InRelease Release;;\n"
    "    2) GNUPGHOME=\"$top/g2\" gpg --batch --quiet --yes --clearsign -o InRelease Release;; esac\n"
    "  cd \"$top\"\n"
    "}\n"
    "bb=${4:-1.35.0-4}\n"
    "suite m trixie 'Sun, 01 Jan 2023 00:00:00 UTC' $2 main busybox-static $bb "
    "pool/main/b/busybox/busybox-static_${bb}_amd64.deb non-free-firmware firmware-test 1.0 "
    "pool/non-free-firmware/f/firmware-test/firmware-test_1.0_amd64.deb\n"
    "suite m trixie-updates 'Sun, 01 Jan 2023 00:00:00 UTC' $2\n"
    "suite s trixie-security '" SECURITY_DATE "' $3 main busybox-static '" SECURITY_BUSYBOX "' "
    "pool/updates/main/b/busybox/busybox-static_1.35.0-4+deb13u1_amd64.deb\n"
    "find m s -exec touch -d '2023-01-01 00:00:00 UTC' {} +\n"
    "gpgconf --kill gpg-agent; GNUPGHOME=\"$top/g2\" gpgconf --kill gpg-agent\n";

static void mirror_make_signed(struct mirror *m, enum signing main_suites, enum signing security)
{
    m->dir = xstrdup("/tmp/debate-engine-unit-XXXXXX");
    if (mkdtemp(m->dir) == NULL)
        harness_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
    m->url = xasprintf("file://%s/m", m->dir);
    m->security_url = xasprintf("file://%s/s", m->dir);
    m->keyring = xasprintf("%s/keyring.gpg", m->dir);
    m->cache = xasprintf("%s/cache", m->dir);
    _cleanup_free_ char *script = xasprintf("%s/make-mirror.sh", m->dir);
    if (write_file_atomic(script, mirror_script, strlen(mirror_script), 0700) < 0)
        harness_fail(__FILE__, __LINE__, "cannot write %s", script);
    _cleanup_free_ char *cmd = xasprintf("sh '%s' '%s' %d %d", script, m->dir, main_suites, security);
    run(cmd);
}

/* Publishes the mirror again, every suite signed, with busybox_version in trixie: new InRelease files. */
static void mirror_publish(struct mirror *m, const char *busybox_version)
{
    _cleanup_free_ char *cmd =
        xasprintf("sh '%s/make-mirror.sh' '%s' %d %d '%s'", m->dir, m->dir, SIGNED, SIGNED, busybox_version);
    run(cmd);
}

/* Every suite signed (sign) or unsigned. */
static void mirror_make(struct mirror *m, bool sign)
{
    mirror_make_signed(m, sign ? SIGNED : UNSIGNED, sign ? SIGNED : UNSIGNED);
}

static enum engine_error resolve(const struct mirror *m, const char *mirror, const char *security_mirror,
                                 const char *keyring, const struct recipe *r, struct lock *l, char *err,
                                 size_t errlen)
{
    struct resolve_mirrors mirrors = {mirror, security_mirror, keyring};
    return resolve_lock(r, &mirrors, m->cache, l, err, errlen);
}

static void mirror_remove(struct mirror *m)
{
    _cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", m->dir);
    run(cmd);
    free(m->dir);
    free(m->url);
    free(m->security_url);
    free(m->keyring);
    free(m->cache);
}

static void recipe_of(const char *json, struct recipe *r)
{
    struct recipe_error e;
    if (recipe_parse(json, strlen(json), r, &e) < 0) {
        char msg[512];
        recipe_error_format(&e, msg, sizeof(msg));
        harness_fail(__FILE__, __LINE__, "recipe: %s", msg);
    }
}

static const char unknown_recipe[] =
    "{\"name\":\"t\",\"variant\":\"busybox\",\"packages\":[\"busybox-static\",\"nosuch\"]}";

static void set(char **field, const char *value)
{
    free(*field);
    *field = xstrdup(value);
}

/* engine_build of recipe against mirror (keyring and cache of m) into output; err holds its message. */
static enum engine_error build(const struct mirror *m, const char *mirror, const char *recipe, const char *output,
                               volatile sig_atomic_t *interrupted, char *err, size_t errlen)
{
    struct config cfg;
    config_init(&cfg);
    set(&cfg.archive_keyring, m->keyring);
    set(&cfg.cache_dir, m->cache);
    set(&cfg.security_mirror, m->security_url);
    struct recipe r;
    recipe_of(recipe, &r);
    struct engine_opts o = {.cfg = &cfg, .output = output, .mirror = mirror, .hook_timeout_s = 10,
                            .interrupted = interrupted};
    struct engine_result res;
    enum engine_error cause = engine_build(&r, &o, &res, err, errlen);
    recipe_release(&r);
    config_release(&cfg);
    return cause;
}

TEST(every_cause_has_a_code_and_a_text)
{
    for (int e = ENGINE_OK; e <= ENGINE_ERROR_MAX; e++) {
        const char *code = engine_error_code((enum engine_error)e), *text = engine_strerror((enum engine_error)e);
        if (code == NULL || code[0] == '\0' || text == NULL || text[0] == '\0')
            harness_fail(__FILE__, __LINE__, "cause %d has no code or no text", e);
        for (int other = ENGINE_OK; other < e; other++)
            if (strcmp(code, engine_error_code((enum engine_error)other)) == 0)
                harness_fail(__FILE__, __LINE__, "causes %d and %d share the code \"%s\"", other, e, code);
    }
    CHECK_STR(engine_error_code((enum engine_error)(ENGINE_ERROR_MAX + 1)), "build_failed");
    CHECK_STR(engine_strerror((enum engine_error)(ENGINE_ERROR_MAX + 1)), "unknown error");
}

/* The codes docs/api.md promises for a failed build. */
TEST(the_codes_are_the_api_s)
{
    static const struct {
        enum engine_error e;
        const char *code;
    } want[] = {{ENGINE_E_FAILED, "build_failed"},      {ENGINE_E_INVALID_LOCK, "invalid_lock"},
                {ENGINE_E_UNKNOWN_PACKAGE, "unknown_package"}, {ENGINE_E_MIRROR, "mirror_unreachable"},
                {ENGINE_E_SIGNATURE, "bad_signature"},    {ENGINE_E_HOOK, "hook_failed"},
                {ENGINE_E_LIMIT, "limit_exceeded"},       {ENGINE_E_DISK_FULL, "disk_full"},
                {ENGINE_E_INTERRUPTED, "interrupted"}};
    CHECK_INT(sizeof(want) / sizeof(want[0]), ENGINE_ERROR_MAX);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CHECK_STR(engine_error_code(want[i].e), want[i].code);
}

TEST(resolving_an_unknown_package_names_it)
{
    struct mirror m;
    mirror_make(&m, true);
    struct recipe r;
    recipe_of(unknown_recipe, &r);
    struct lock l;
    char err[2048] = "";
    CHECK_INT(resolve(&m, m.url, m.security_url, m.keyring, &r, &l, err, sizeof(err)), ENGINE_E_UNKNOWN_PACKAGE);
    CHECK_STR(err, "unknown package \"nosuch\" in debian trixie");
    recipe_release(&r);
    mirror_remove(&m);
}

TEST(an_unsigned_mirror_is_a_bad_signature)
{
    struct mirror m;
    mirror_make(&m, false);
    struct recipe r;
    recipe_of(unknown_recipe, &r);
    struct lock l;
    char err[2048] = "";
    CHECK_INT(resolve(&m, m.url, m.security_url, m.keyring, &r, &l, err, sizeof(err)), ENGINE_E_SIGNATURE);
    CHECK(strncmp(err, "the signature of the mirror's index is not valid", 48) == 0);
    recipe_release(&r);
    mirror_remove(&m);
}

TEST(a_mirror_signed_by_a_key_not_in_the_keyring_is_a_bad_signature)
{
    struct mirror m, other;
    mirror_make(&m, true);
    mirror_make(&other, false); /* a key of its own */
    struct recipe r;
    recipe_of(unknown_recipe, &r);
    struct lock l;
    char err[2048] = "";
    CHECK_INT(resolve(&m, m.url, m.security_url, other.keyring, &r, &l, err, sizeof(err)), ENGINE_E_SIGNATURE);
    CHECK(strstr(err, "NO_PUBKEY") != NULL);
    recipe_release(&r);
    mirror_remove(&other);
    mirror_remove(&m);
}

TEST(a_closed_port_is_an_unreachable_mirror)
{
    struct mirror m;
    mirror_make(&m, true);
    struct recipe r;
    recipe_of(unknown_recipe, &r);
    struct lock l;
    char err[2048] = "";
    CHECK_INT(resolve(&m, CLOSED_PORT_MIRROR, m.security_url, m.keyring, &r, &l, err, sizeof(err)), ENGINE_E_MIRROR);
    static const char want[] = "the mirror is unreachable (" CLOSED_PORT_MIRROR " trixie): ";
    CHECK(strncmp(err, want, strlen(want)) == 0);
    recipe_release(&r);
    mirror_remove(&m);
}

/* The release and updates are signed by the archive's key, the security suite by another: that suite is named. */
TEST(a_bad_signature_on_the_security_suite_alone_names_that_suite)
{
    struct mirror m;
    mirror_make_signed(&m, SIGNED, FOREIGN);
    struct recipe r;
    recipe_of("{\"name\":\"t\",\"variant\":\"busybox\",\"packages\":[\"busybox-static\"]}", &r);
    struct lock l;
    char err[2048] = "";
    CHECK_INT(resolve(&m, m.url, m.security_url, m.keyring, &r, &l, err, sizeof(err)), ENGINE_E_SIGNATURE);
    _cleanup_free_ char *want = xasprintf("the signature of the mirror's index is not valid (%s trixie-security): ",
                                          m.security_url);
    CHECK(strncmp(err, want, strlen(want)) == 0);
    recipe_release(&r);
    mirror_remove(&m);
}

TEST(an_unreachable_security_mirror_fails_unless_security_is_off)
{
    struct mirror m;
    mirror_make(&m, true);
    struct recipe r;
    recipe_of("{\"name\":\"t\",\"variant\":\"busybox\",\"packages\":[\"busybox-static\"]}", &r);
    struct lock l;
    char err[2048] = "";
    CHECK_INT(resolve(&m, m.url, CLOSED_PORT_MIRROR "-security", m.keyring, &r, &l, err, sizeof(err)),
              ENGINE_E_MIRROR);
    static const char want[] = "the mirror is unreachable (" CLOSED_PORT_MIRROR "-security trixie-security): ";
    CHECK(strncmp(err, want, strlen(want)) == 0);
    recipe_release(&r);
    recipe_of("{\"name\":\"t\",\"variant\":\"busybox\",\"packages\":[\"busybox-static\"],\"security\":false}", &r);
    CHECK_INT(resolve(&m, m.url, CLOSED_PORT_MIRROR "-security", m.keyring, &r, &l, err, sizeof(err)), ENGINE_OK);
    CHECK_INT((int)l.nsuites, 2);
    CHECK_STR(l.pkgs[0].version, "1.35.0-4");
    CHECK_STR(l.pkgs[0].suite, "trixie");
    lock_release(&l);
    recipe_release(&r);
    mirror_remove(&m);
}

/*
 * apt's rule across the suites: the security suite's newer busybox-static
 * wins, and the lock says where it came from; a firmware package comes
 * from non-free-firmware. The lock reads back to the same hash, and only
 * for a recipe with the same suites and components.
 */
TEST(the_highest_version_wins_and_the_lock_names_its_suite)
{
    struct mirror m;
    mirror_make(&m, true);
    struct recipe r, other;
    recipe_of("{\"name\":\"t\",\"variant\":\"busybox\",\"packages\":[\"busybox-static\",\"firmware-test\"],"
              "\"components\":[\"non-free-firmware\",\"main\"]}",
              &r);
    struct lock l, again;
    char err[2048] = "";
    CHECK_INT(resolve(&m, m.url, m.security_url, m.keyring, &r, &l, err, sizeof(err)), ENGINE_OK);
    CHECK_INT((int)l.npkgs, 2);
    CHECK_STR(l.pkgs[0].name, "busybox-static");
    CHECK_STR(l.pkgs[0].version, SECURITY_BUSYBOX);
    CHECK_STR(l.pkgs[0].suite, "trixie-security");
    CHECK_STR(l.pkgs[0].component, "main");
    CHECK_STR(l.pkgs[1].name, "firmware-test");
    CHECK_STR(l.pkgs[1].component, "non-free-firmware");
    CHECK_STR(l.pkgs[1].suite, "trixie");
    CHECK_STR(l.date, SECURITY_DATE); /* the newest suite's: SOURCE_DATE_EPOCH */
    CHECK(strstr(l.json, "\"suite\":\"trixie-security\"") != NULL);
    CHECK_INT(lock_parse(l.json, strlen(l.json), &r, &again, err, sizeof(err)), 0);
    CHECK_STR(again.hash, l.hash);
    lock_release(&again);
    recipe_of("{\"name\":\"t\",\"variant\":\"busybox\",\"packages\":[\"busybox-static\"],\"security\":false}", &other);
    CHECK_INT(lock_parse(l.json, strlen(l.json), &other, &again, err, sizeof(err)), -1);
    CHECK_STR(err, "lock: it resolves from trixie trixie-updates trixie-security (main non-free-firmware), the recipe "
                   "from trixie trixie-updates (main)");
    recipe_release(&other);
    lock_release(&l);
    recipe_release(&r);
    mirror_remove(&m);
}

TEST(fetching_a_lock_from_a_closed_port_is_an_unreachable_mirror)
{
    struct mirror m;
    mirror_make(&m, true);
    struct recipe r;
    recipe_of("{\"format\":1,\"name\":\"t\",\"variant\":\"busybox\",\"packages\":[\"busybox-static\",\"nosuch\"]}", &r);
    static const char lock_json[] =
        "{\"format\":1,\"mirror\":\"" CLOSED_PORT_MIRROR "\",\"release\":\"bookworm\",\"architecture\":\"amd64\","
        "\"inrelease_sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"date\":\"Sun, 01 Jan 2023 00:00:00 UTC\",\"packages\":["
        "{\"name\":\"busybox-static\",\"version\":\"1\",\"architecture\":\"amd64\",\"size\":1,"
        "\"sha256\":\"1111111111111111111111111111111111111111111111111111111111111111\",\"filename\":\"pool/b.deb\"},"
        "{\"name\":\"nosuch\",\"version\":\"1\",\"architecture\":\"amd64\",\"size\":1,"
        "\"sha256\":\"2222222222222222222222222222222222222222222222222222222222222222\","
        "\"filename\":\"pool/n.deb\"}]}";
    struct lock l;
    char err[2048] = "";
    CHECK_INT(lock_parse(lock_json, strlen(lock_json), &r, &l, err, sizeof(err)), 0);
    int fetched = -1;
    CHECK_INT(resolve_fetch(&l, m.cache, &fetched, err, sizeof(err)), ENGINE_E_MIRROR);
    CHECK(strstr(err, "the mirror no longer serves: the mirror is unreachable") != NULL);
    CHECK_INT(fetched, 0);
    lock_release(&l);
    recipe_release(&r);
    mirror_remove(&m);
}

TEST(a_build_with_an_unknown_package_fails_with_that_cause)
{
    struct mirror m;
    mirror_make(&m, true);
    _cleanup_free_ char *output = xasprintf("%s/x.iso", m.dir);
    char err[4096] = "";
    CHECK_INT(build(&m, m.url, unknown_recipe, output, NULL, err, sizeof(err)), ENGINE_E_UNKNOWN_PACKAGE);
    CHECK_STR(err, "unknown package \"nosuch\" in debian trixie");
    CHECK_STR(engine_error_code(ENGINE_E_UNKNOWN_PACKAGE), "unknown_package");
    struct stat st;
    CHECK(stat(output, &st) < 0 && errno == ENOENT);
    mirror_remove(&m);
}

/* Refused at once: nothing is resolved (the mirror would answer otherwise) for an ISO that has nowhere to go. */
TEST(a_build_into_a_missing_directory_is_refused_first)
{
    struct mirror m;
    mirror_make(&m, true);
    CHECK_INT(chdir(m.dir), 0);
    char err[4096] = "";
    CHECK_INT(build(&m, CLOSED_PORT_MIRROR, unknown_recipe, "rel/x.iso", NULL, err, sizeof(err)), ENGINE_E_FAILED);
    CHECK_STR(err, "the output's directory \"rel\" does not exist");
    CHECK_INT(build(&m, CLOSED_PORT_MIRROR, unknown_recipe, "rel/", NULL, err, sizeof(err)), ENGINE_E_FAILED);
    CHECK_STR(err, "the output \"rel/\" is a directory, not the ISO's file name");
    CHECK_INT(mkdir("rel", 0755), 0);
    CHECK_INT(build(&m, CLOSED_PORT_MIRROR, unknown_recipe, "rel", NULL, err, sizeof(err)), ENGINE_E_FAILED);
    CHECK_STR(err, "the output \"rel\" is a directory, not the ISO's file name");
    run("touch plain");
    CHECK_INT(build(&m, CLOSED_PORT_MIRROR, unknown_recipe, "plain/x.iso", NULL, err, sizeof(err)), ENGINE_E_FAILED);
    CHECK_STR(err, "the output's directory \"plain\" is not a directory");
    CHECK_INT(chdir("/"), 0);
    mirror_remove(&m);
}

TEST(an_interrupt_while_resolving_is_the_cause)
{
    struct mirror m;
    mirror_make(&m, true);
    _cleanup_free_ char *output = xasprintf("%s/x.iso", m.dir);
    volatile sig_atomic_t interrupted = 1; /* as if Ctrl-C came while apt ran */
    char err[4096] = "";
    CHECK_INT(build(&m, m.url, unknown_recipe, output, &interrupted, err, sizeof(err)), ENGINE_E_INTERRUPTED);
    _cleanup_free_ char *want =
        xasprintf("interrupted: the build stopped while resolving and nothing was written to \"%s\"", output);
    CHECK_STR(err, want);
    mirror_remove(&m);
}

/* The directories in CACHE/apt (apt's state, one a source set) and the lock files beside; *dir the last directory. */
static int apt_state_dirs(const struct mirror *m, int *locks, char **dir)
{
    _cleanup_free_ char *base = xasprintf("%s/apt", m->cache);
    DIR *d = opendir(base);
    if (d == NULL)
        harness_fail(__FILE__, __LINE__, "cannot open %s: %s", base, strerror(errno));
    int dirs = 0;
    *locks = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.')
            continue;
        if (n > 5 && strcmp(e->d_name + n - 5, ".lock") == 0) {
            (*locks)++;
            continue;
        }
        dirs++;
        free(*dir);
        *dir = xasprintf("%s/%s", base, e->d_name);
    }
    closedir(d);
    return dirs;
}

static const char busybox_recipe[] = "{\"name\":\"t\",\"variant\":\"busybox\",\"packages\":[\"busybox-static\"]}";

/*
 * The second resolution of the same sources gives the same lock from the
 * same state directory, whose apt caches it did not rebuild: the lists had
 * not changed.
 */
TEST(a_second_resolution_reuses_apt_s_state)
{
    struct mirror m;
    mirror_make(&m, true);
    struct recipe r;
    recipe_of(busybox_recipe, &r);
    struct lock first, second;
    char err[2048] = "";
    CHECK_INT(resolve(&m, m.url, m.security_url, m.keyring, &r, &first, err, sizeof(err)), ENGINE_OK);
    int locks;
    _cleanup_free_ char *dir = NULL;
    CHECK_INT(apt_state_dirs(&m, &locks, &dir), 1);
    CHECK_INT(locks, 1);
    _cleanup_free_ char *bin = xasprintf("%s/cache/pkgcache.bin", dir);
    struct stat before, after;
    CHECK_INT(stat(bin, &before), 0);
    CHECK_INT(resolve(&m, m.url, m.security_url, m.keyring, &r, &second, err, sizeof(err)), ENGINE_OK);
    CHECK_STR(second.json, first.json);
    CHECK_INT(apt_state_dirs(&m, &locks, &dir), 1);
    CHECK_INT(locks, 1);
    CHECK_INT(stat(bin, &after), 0);
    CHECK_INT(after.st_ino, before.st_ino);
    CHECK_INT(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    CHECK_INT(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
    lock_release(&second);
    lock_release(&first);
    recipe_release(&r);
    mirror_remove(&m);
}

/*
 * The mirror publishes trixie again with a newer busybox-static: an index
 * of the same size and time as before (every file of the test's mirrors
 * has one time), which apt alone would take for the one its caches were
 * built from. The next resolution pins the new version and InRelease.
 */
TEST(a_mirror_that_published_again_is_resolved_afresh)
{
    struct mirror m;
    mirror_make(&m, true);
    struct recipe r;
    recipe_of("{\"name\":\"t\",\"variant\":\"busybox\",\"packages\":[\"busybox-static\"],\"security\":false}", &r);
    struct lock first, second;
    char err[2048] = "";
    CHECK_INT(resolve(&m, m.url, m.security_url, m.keyring, &r, &first, err, sizeof(err)), ENGINE_OK);
    CHECK_STR(first.pkgs[0].version, "1.35.0-4");
    mirror_publish(&m, "1.35.0-5");
    CHECK_INT(resolve(&m, m.url, m.security_url, m.keyring, &r, &second, err, sizeof(err)), ENGINE_OK);
    CHECK_STR(second.pkgs[0].version, "1.35.0-5");
    CHECK_STR(second.pkgs[0].filename, "pool/main/b/busybox/busybox-static_1.35.0-5_amd64.deb");
    CHECK(strcmp(second.suites[0].inrelease_sha256, first.suites[0].inrelease_sha256) != 0);
    lock_release(&second);
    lock_release(&first);
    recipe_release(&r);
    mirror_remove(&m);
}

/*
 * After a good resolution the security archive goes away: apt would keep
 * its old lists and carry on, the resolution fails with the very error a
 * first resolution gives, and succeeds again once the archive is back.
 */
TEST(a_suite_gone_after_a_good_resolution_fails_as_a_first_resolution_does)
{
    struct mirror m;
    mirror_make(&m, true);
    struct recipe r;
    recipe_of(busybox_recipe, &r);
    struct lock l, again;
    char err[2048] = "", fresh_err[2048] = "";
    CHECK_INT(resolve(&m, m.url, m.security_url, m.keyring, &r, &l, err, sizeof(err)), ENGINE_OK);
    _cleanup_free_ char *s = xasprintf("%s/s", m.dir), *gone = xasprintf("%s/s.gone", m.dir);
    CHECK_INT(rename(s, gone), 0);
    enum engine_error cause = resolve(&m, m.url, m.security_url, m.keyring, &r, &again, err, sizeof(err));
    char *cache = m.cache;
    m.cache = xasprintf("%s/fresh-cache", m.dir);
    enum engine_error fresh = resolve(&m, m.url, m.security_url, m.keyring, &r, &again, fresh_err, sizeof(fresh_err));
    free(m.cache);
    m.cache = cache;
    CHECK_INT(cause, fresh);
    CHECK_STR(err, fresh_err);
    /* A file: mirror without the suite: apt finds no release file, which says nothing of the network. */
    CHECK_INT(cause, ENGINE_E_FAILED);
    _cleanup_free_ char *want =
        xasprintf("apt-get update failed (%s trixie-security): E: The repository ", m.security_url);
    CHECK(strncmp(err, want, strlen(want)) == 0);
    CHECK_INT(rename(gone, s), 0);
    CHECK_INT(resolve(&m, m.url, m.security_url, m.keyring, &r, &again, err, sizeof(err)), ENGINE_OK);
    CHECK_STR(again.json, l.json);
    lock_release(&again);
    lock_release(&l);
    recipe_release(&r);
    mirror_remove(&m);
}

/* A connection to 127.0.0.1:port: 0, or -1 when nothing listens. */
static int try_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    return rc;
}

/* An HTTP server of dir on a free loopback port (python's http.server): its pid, the port in *port. */
static pid_t http_serve(const char *dir, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        harness_fail(__FILE__, __LINE__, "cannot find a free port: %s", strerror(errno));
    close(fd);
    *port = ntohs(sa.sin_port);
    char number[16];
    snprintf(number, sizeof(number), "%d", *port);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        dup2(null, 1);
        dup2(null, 2);
        execlp("python3", "python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", dir, number,
               (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100 && try_connect(*port) < 0; i++)
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    if (try_connect(*port) < 0)
        harness_fail(__FILE__, __LINE__, "the HTTP server of %s did not start", dir);
    return pid;
}

/*
 * The security archive, served over HTTP, stops answering after a good
 * resolution: apt would warn and keep the old lists; the next resolution
 * fails as a first one does (the mirror is unreachable, that suite named).
 */
TEST(a_suite_unreachable_after_a_good_resolution_fails_as_a_first_resolution_does)
{
    struct mirror m;
    mirror_make(&m, true);
    struct recipe r;
    recipe_of(busybox_recipe, &r);
    int port;
    pid_t server = http_serve(m.dir, &port);
    _cleanup_free_ char *security = xasprintf("http://127.0.0.1:%d/s", port);
    struct lock l, again;
    char err[2048] = "";
    enum engine_error cause = resolve(&m, m.url, security, m.keyring, &r, &l, err, sizeof(err));
    kill(server, SIGTERM);
    waitpid(server, NULL, 0);
    if (cause != ENGINE_OK)
        harness_fail(__FILE__, __LINE__, "the first resolution failed: %s", err);
    CHECK_STR(l.pkgs[0].version, SECURITY_BUSYBOX);
    CHECK_INT(resolve(&m, m.url, security, m.keyring, &r, &again, err, sizeof(err)), ENGINE_E_MIRROR);
    _cleanup_free_ char *want = xasprintf("the mirror is unreachable (%s trixie-security): ", security);
    CHECK(strncmp(err, want, strlen(want)) == 0);
    lock_release(&l);
    recipe_release(&r);
    mirror_remove(&m);
}

/*
 * An update killed while apt moved the new lists into place (its mark is
 * left) may leave a suite's new InRelease beside its old index: here the
 * index of before the mirror published again. apt would take the lists as
 * current (the InRelease has not changed since); the next resolution
 * starts from nothing instead and pins the new version.
 */
TEST(lists_of_an_update_that_did_not_finish_are_not_used)
{
    struct mirror m;
    mirror_make(&m, true);
    struct recipe r;
    recipe_of("{\"name\":\"t\",\"variant\":\"busybox\",\"packages\":[\"busybox-static\"],\"security\":false}", &r);
    struct lock l;
    char err[2048] = "";
    CHECK_INT(resolve(&m, m.url, m.security_url, m.keyring, &r, &l, err, sizeof(err)), ENGINE_OK);
    lock_release(&l);
    int locks;
    _cleanup_free_ char *dir = NULL;
    CHECK_INT(apt_state_dirs(&m, &locks, &dir), 1);
    _cleanup_free_ char *save = xasprintf("cp %s/state/lists/*_dists_trixie_main_binary-amd64_Packages %s/old-index",
                                          dir, m.dir);
    run(save);
    mirror_publish(&m, "1.35.0-5");
    CHECK_INT(resolve(&m, m.url, m.security_url, m.keyring, &r, &l, err, sizeof(err)), ENGINE_OK);
    CHECK_STR(l.pkgs[0].version, "1.35.0-5");
    lock_release(&l);
    _cleanup_free_ char *kill = xasprintf("cd '%s' && touch state/updating && rm -f cache/*.bin && "
                                          "cp %s/old-index state/lists/*_dists_trixie_main_binary-amd64_Packages",
                                          dir, m.dir);
    run(kill);
    CHECK_INT(resolve(&m, m.url, m.security_url, m.keyring, &r, &l, err, sizeof(err)), ENGINE_OK);
    CHECK_STR(l.pkgs[0].version, "1.35.0-5");
    lock_release(&l);
    recipe_release(&r);
    mirror_remove(&m);
}

struct concurrent {
    const struct mirror *m;
    const struct recipe *r;
    struct lock l;
    enum engine_error cause;
    char err[2048];
};

static void *resolve_thread(void *arg)
{
    struct concurrent *c = arg;
    c->cause = resolve(c->m, c->m->url, c->m->security_url, c->m->keyring, c->r, &c->l, c->err, sizeof(c->err));
    return NULL;
}

/* Two resolutions of the same sources at once (two workers' threads): one waits for the other, both succeed. */
TEST(two_resolutions_at_once_both_succeed)
{
    struct mirror m;
    mirror_make(&m, true);
    struct recipe r;
    recipe_of(busybox_recipe, &r);
    struct concurrent c[2] = {{.m = &m, .r = &r}, {.m = &m, .r = &r}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHECK_INT(pthread_create(&t[i], NULL, resolve_thread, &c[i]), 0);
    for (int i = 0; i < 2; i++)
        CHECK_INT(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        if (c[i].cause != ENGINE_OK)
            harness_fail(__FILE__, __LINE__, "resolution %d: %s", i, c[i].err);
    }
    CHECK_STR(c[1].l.json, c[0].l.json);
    int locks;
    _cleanup_free_ char *dir = NULL;
    CHECK_INT(apt_state_dirs(&m, &locks, &dir), 1);
    lock_release(&c[1].l);
    lock_release(&c[0].l);
    recipe_release(&r);
    mirror_remove(&m);
}
