/*
 * The package index (engine/pkgindex.c) and the service's package
 * completion (service/packages.c) against indexes made here: an InRelease
 * naming a Packages.xz by its SHA-256, in a directory named by the
 * InRelease's, as resolve_lock leaves them.
 */
#include <ftw.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "digest.h"
#include "engine/pkgindex.h"
#include "harness.h"
#include "service/packages.h"
#include "util.h"

static const char packages_text[] =
    "Package: vim\nVersion: 2:9.0.1378-2\nArchitecture: amd64\nDescription: Vi IMproved - enhanced vi editor\n\n"
    "Package: neovim\nVersion: 0.7.2-7\nDescription: heavily refactored vim fork\n\n"
    "Package: vim-tiny\nVersion: 2:9.0.1378-2\nDescription: Vi IMproved - enhanced vi editor - compact version\n"
    " long description line\n\n"
    "Package: busybox\nVersion: 1:1.35.0-4\nDescription: Tiny utilities for small and embedded systems\n\n"
    "Package: gvim\nVersion: 1\nDescription: GUI vim\n\n"
    "Package: libvim-x\nVersion: 1\nDescription: contains vim, not at the start\n\n"
    "Package: vim\nVersion: 2:9.0.1378-3\nDescription: listed twice\n";

static char *xz(const char *text, size_t *len)
{
    size_t cap = strlen(text) + 4096, pos = 0;
    char *out = xmalloc(cap);
    if (lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, NULL, (const uint8_t *)text, strlen(text), (uint8_t *)out, &pos,
                                cap) != LZMA_OK)
        harness_fail(__FILE__, __LINE__, "xz failed");
    *len = pos;
    return out;
}

static void write_or_fail(const char *path, const void *data, size_t len)
{
    if (write_file_atomic(path, data, len, 0644) < 0)
        harness_fail(__FILE__, __LINE__, "cannot write %s", path);
}

/* Makes CACHE/indexes/<sha>/ for codename with date; returns the directory (malloc'd). */
static char *make_index(const char *cache, const char *codename, const char *date, const char *packages)
{
    size_t xz_len;
    _cleanup_free_ char *data = xz(packages, &xz_len);
    char xz_hash[65], in_hash[65];
    sha256_hex(data, xz_len, xz_hash);
    _cleanup_free_ char *inrelease = xasprintf(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nSuite: stable\nCodename: %s\n"
        "Date: %s\nArchitectures: amd64\nSHA256:\n %s %zu main/binary-amd64/Packages.xz\n"
        "-----BEGIN PGP SIGNATURE-----\n\nxx\n-----END PGP SIGNATURE-----\n",
        codename, date, xz_hash, xz_len);
    sha256_hex(inrelease, strlen(inrelease), in_hash);
    char *dir = xasprintf("%s/indexes/%s", cache, in_hash);
    CHECK(mkdir_p(dir, 0700) == 0);
    _cleanup_free_ char *p1 = xasprintf("%s/InRelease", dir), *p2 = xasprintf("%s/Packages.xz", dir);
    write_or_fail(p1, inrelease, strlen(inrelease));
    write_or_fail(p2, data, xz_len);
    return dir;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Removes a test's cache directory (a failed test leaves it, to look at). */
static void remove_cache(const char *cache)
{
    nftw(cache, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *temp_cache(void)
{
    char tmpl[] = "/tmp/debate-test-packages-XXXXXX";
    if (mkdtemp(tmpl) == NULL)
        harness_fail(__FILE__, __LINE__, "mkdtemp failed");
    return xstrdup(tmpl);
}

TEST(a_cancelled_load_gives_up_and_holds_nothing)
{
    _cleanup_free_ char *cache = temp_cache();
    _cleanup_free_ char *dir = make_index(cache, "bookworm", "Sat, 11 Jul 2026 10:16:37 UTC", packages_text);
    struct pkgindex ix;
    char err[512];
    atomic_bool cancel;
    atomic_init(&cancel, true);
    CHECK_INT(pkgindex_load(dir, "amd64", &cancel, &ix, err, sizeof(err)), ENGINE_E_INTERRUPTED);
    CHECK(strstr(err, "interrupted") != NULL);
    CHECK_INT(ix.npkgs, 0);
    pkgindex_release(&ix);
}

TEST(index_loads_sorted_with_short_descriptions)
{
    _cleanup_free_ char *cache = temp_cache();
    _cleanup_free_ char *dir = make_index(cache, "bookworm", "Sat, 11 Jul 2026 10:16:37 UTC", packages_text);
    struct pkgindex ix;
    char err[512];
    CHECK_INT(pkgindex_load(dir, "amd64", NULL, &ix, err, sizeof(err)), ENGINE_OK);
    CHECK_STR(ix.info.codename, "bookworm");
    CHECK_STR(ix.info.date, "Sat, 11 Jul 2026 10:16:37 UTC");
    CHECK(ix.info.when > 0);
    CHECK_INT(ix.npkgs, 6); /* vim is listed twice: one entry */
    CHECK_STR(ix.pkgs[0].name, "busybox");
    CHECK_STR(ix.pkgs[5].name, "vim-tiny");
    CHECK_STR(ix.pkgs[5].description, "Vi IMproved - enhanced vi editor - compact version");
    const struct pkgindex_pkg *found[10];
    size_t n = pkgindex_search(&ix, "vim", 10, found);
    CHECK_INT(n, 5);
    CHECK_STR(found[0]->name, "vim"); /* the prefix matches first, in name order */
    CHECK_STR(found[0]->version, "2:9.0.1378-2");
    CHECK_STR(found[1]->name, "vim-tiny");
    CHECK_STR(found[2]->name, "gvim"); /* then the names that contain it */
    CHECK_STR(found[3]->name, "libvim-x");
    CHECK_STR(found[4]->name, "neovim");
    CHECK_INT(pkgindex_search(&ix, "vim", 2, found), 2);
    CHECK_INT(pkgindex_search(&ix, "zzz", 10, found), 0);
    CHECK_INT(pkgindex_search(&ix, "", 10, found), 6);
    pkgindex_release(&ix);
    remove_cache(cache);
}

TEST(index_with_altered_packages_is_refused)
{
    _cleanup_free_ char *cache = temp_cache();
    _cleanup_free_ char *dir = make_index(cache, "bookworm", "Sat, 11 Jul 2026 10:16:37 UTC", packages_text);
    size_t len;
    _cleanup_free_ char *other = xz("Package: evil\nVersion: 1\nDescription: not signed\n", &len);
    _cleanup_free_ char *path = xasprintf("%s/Packages.xz", dir);
    write_or_fail(path, other, len);
    struct pkgindex ix;
    char err[512];
    CHECK_INT(pkgindex_load(dir, "amd64", NULL, &ix, err, sizeof(err)), ENGINE_E_FAILED);
    CHECK(strstr(err, "does not have the SHA-256 its release file lists") != NULL);
    pkgindex_release(&ix);
    remove_cache(cache);
}

TEST(index_with_altered_inrelease_is_refused)
{
    _cleanup_free_ char *cache = temp_cache();
    _cleanup_free_ char *dir = make_index(cache, "bookworm", "Sat, 11 Jul 2026 10:16:37 UTC", packages_text);
    _cleanup_free_ char *path = xasprintf("%s/InRelease", dir);
    write_or_fail(path, "Codename: bookworm\n", 19);
    struct pkgindex_info info;
    char err[512];
    CHECK_INT(pkgindex_probe(dir, &info, err, sizeof(err)), ENGINE_E_FAILED);
    CHECK(strstr(err, "does not have the SHA-256 its directory is named by") != NULL);
    remove_cache(cache);
}

TEST(query_without_an_index_says_how_to_get_one)
{
    _cleanup_free_ char *cache = temp_cache();
    struct packages *p = packages_new(cache, "amd64");
    struct packages_result r;
    char msg[512];
    /* Before the loader's first pass: not known yet. */
    CHECK_INT(packages_query(p, "bookworm", "vim", 5, &r, msg, sizeof(msg)), PACKAGES_LOADING);
    packages_refresh(p);
    CHECK_INT(packages_query(p, "bookworm", "vim", 5, &r, msg, sizeof(msg)), PACKAGES_UNAVAILABLE);
    CHECK_STR(packages_error_code(PACKAGES_UNAVAILABLE), "index_unavailable");
    CHECK(strstr(msg, "debate lock") != NULL);
    packages_free(p);
    remove_cache(cache);
}

TEST(query_answers_from_the_newest_index_and_checks_its_input)
{
    _cleanup_free_ char *cache = temp_cache();
    _cleanup_free_ char *old = make_index(cache, "bookworm", "Sat, 10 Feb 2024 10:00:00 UTC", "Package: old\nVersion: 1\n");
    _cleanup_free_ char *dir = make_index(cache, "bookworm", "Sat, 11 Jul 2026 10:16:37 UTC", packages_text);
    _cleanup_free_ char *other = make_index(cache, "trixie", "Sun, 12 Jul 2026 10:00:00 UTC", "Package: new\nVersion: 1\n");
    struct packages *p = packages_new(cache, "amd64");
    packages_refresh(p);
    struct packages_result r;
    char msg[512];
    CHECK_INT(packages_query(p, "bookworm", "VIM", 3, &r, msg, sizeof(msg)), PACKAGES_OK);
    CHECK_STR(r.release, "bookworm");
    CHECK_STR(r.index, strrchr(dir, '/') + 1);
    CHECK_STR(r.date, "Sat, 11 Jul 2026 10:16:37 UTC");
    CHECK_INT(r.n, 3);
    CHECK_STR(r.matches[0].name, "vim");
    CHECK_STR(r.matches[2].name, "gvim");
    packages_result_release(&r);
    CHECK_INT(packages_query(p, "sid", "vim", 3, &r, msg, sizeof(msg)), PACKAGES_BAD_RELEASE);
    CHECK(strstr(msg, "\"sid\"") != NULL);
    CHECK_INT(packages_query(p, "bookworm", "vim tiny", 3, &r, msg, sizeof(msg)), PACKAGES_BAD_QUERY);
    CHECK_INT(packages_query(p, "bookworm", "<script>", 3, &r, msg, sizeof(msg)), PACKAGES_BAD_QUERY);
    char longq[PACKAGES_Q_MAX + 2];
    memset(longq, 'a', sizeof(longq) - 1);
    longq[sizeof(longq) - 1] = '\0';
    CHECK_INT(packages_query(p, "bookworm", longq, 3, &r, msg, sizeof(msg)), PACKAGES_BAD_QUERY);
    packages_free(p);
    remove_cache(cache);
}

TEST(a_broken_newest_index_falls_back_to_the_previous_one)
{
    _cleanup_free_ char *cache = temp_cache();
    _cleanup_free_ char *good = make_index(cache, "bookworm", "Sat, 10 Feb 2024 10:00:00 UTC", packages_text);
    _cleanup_free_ char *bad = make_index(cache, "bookworm", "Sat, 11 Jul 2026 10:16:37 UTC", packages_text);
    _cleanup_free_ char *xzpath = xasprintf("%s/Packages.xz", bad);
    write_or_fail(xzpath, "junk", 4);
    struct packages *p = packages_new(cache, "amd64");
    packages_refresh(p);
    struct packages_result r;
    char msg[512];
    CHECK_INT(packages_query(p, "bookworm", "busy", 3, &r, msg, sizeof(msg)), PACKAGES_OK);
    CHECK_STR(r.index, strrchr(good, '/') + 1);
    CHECK_INT(r.n, 1);
    packages_result_release(&r);
    packages_free(p);
    remove_cache(cache);
}

TEST(the_loader_thread_loads_and_stops)
{
    _cleanup_free_ char *cache = temp_cache();
    _cleanup_free_ char *dir = make_index(cache, "bookworm", "Sat, 11 Jul 2026 10:16:37 UTC", packages_text);
    struct packages *p = packages_new(cache, "amd64");
    packages_start(p);
    struct packages_result r;
    char msg[512];
    enum packages_error e = PACKAGES_LOADING;
    for (int i = 0; i < 500 && e == PACKAGES_LOADING; i++) {
        e = packages_query(p, "bookworm", "vim", 3, &r, msg, sizeof(msg));
        if (e == PACKAGES_LOADING)
            usleep(10 * 1000);
    }
    CHECK_INT(e, PACKAGES_OK);
    packages_result_release(&r);
    packages_free(p); /* stops and joins the thread */
    remove_cache(cache);
}

TEST(an_index_written_while_the_server_runs_is_picked_up_once_complete)
{
    _cleanup_free_ char *cache = temp_cache();
    struct packages *p = packages_new(cache, "amd64");
    packages_refresh(p); /* nothing resolved yet */
    struct packages_result r;
    char msg[512];
    CHECK_INT(packages_query(p, "bookworm", "vim", 3, &r, msg, sizeof(msg)), PACKAGES_UNAVAILABLE);
    /* A resolution in progress: the directory and its InRelease are there, the Packages.xz is on its way. */
    _cleanup_free_ char *dir = make_index(cache, "bookworm", "Sat, 11 Jul 2026 10:16:37 UTC", packages_text);
    _cleanup_free_ char *xzpath = xasprintf("%s/Packages.xz", dir);
    _cleanup_free_ char *xzdata = NULL;
    size_t xzlen;
    CHECK(read_file(xzpath, 1 << 20, &xzdata, &xzlen) == 0);
    CHECK(unlink(xzpath) == 0);
    packages_refresh(p);
    CHECK_INT(packages_query(p, "bookworm", "vim", 3, &r, msg, sizeof(msg)), PACKAGES_UNAVAILABLE);
    write_or_fail(xzpath, xzdata, xzlen);
    packages_refresh(p);
    CHECK_INT(packages_query(p, "bookworm", "vim", 3, &r, msg, sizeof(msg)), PACKAGES_OK);
    CHECK_STR(r.index, strrchr(dir, '/') + 1);
    CHECK_STR(r.matches[0].name, "vim");
    packages_result_release(&r);
    packages_free(p);
    remove_cache(cache);
}

TEST(an_unknown_release_is_named_with_the_ones_there_are)
{
    _cleanup_free_ char *cache = temp_cache();
    struct packages *p = packages_new(cache, "amd64");
    struct packages_result r;
    char msg[512];
    /* 31 bytes of 'x', then a two-byte character across the 32-byte cut: the quote stops before it. */
    CHECK_INT(packages_query(p, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\xc3\xa9z", "vim", 3, &r, msg, sizeof(msg)),
              PACKAGES_BAD_RELEASE);
    CHECK_STR(msg, "release \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\" is not one a recipe may name (\"trixie\" or "
                   "\"bookworm\")");
    packages_free(p);
    remove_cache(cache);
}

/* The default is the release of a current-format recipe that names none: trixie. */
TEST(no_release_means_the_default_one)
{
    _cleanup_free_ char *cache = temp_cache();
    _cleanup_free_ char *dir = make_index(cache, "trixie", "Sat, 11 Jul 2026 10:16:37 UTC", packages_text);
    struct packages *p = packages_new(cache, "amd64");
    packages_refresh(p);
    struct packages_result r;
    char msg[512];
    CHECK_INT(packages_query(p, NULL, "busy", 3, &r, msg, sizeof(msg)), PACKAGES_OK);
    CHECK_STR(r.release, "trixie");
    packages_result_release(&r);
    packages_free(p);
    remove_cache(cache);
}
