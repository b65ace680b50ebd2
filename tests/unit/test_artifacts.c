/*
 * The artifact store against a real database: publishing by rename,
 * verification (a flipped byte is caught and the file removed), and
 * garbage collection (unreferenced first, then least recently downloaded
 * while over the budget).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/recipe.h"
#include "db/store.h"
#include "dbtest.h"
#include "harness.h"
#include "service/artifacts.h"
#include "digest.h"
#include "util.h"

static char *scratch(void)
{
    char *dir = xstrdup("/tmp/debate-artifacts-XXXXXX");
    if (mkdtemp(dir) == NULL)
        harness_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
    _cleanup_free_ char *tmp = xasprintf("%s/tmp", dir);
    mkdir(tmp, 0755);
    return dir;
}

/* Publishes an "ISO" of size bytes of byte fill; returns its SHA-256 in sha. */
static void publish(const char *dir, size_t size, int fill, char sha[65])
{
    char *data = xcalloc(1, size);
    memset(data, fill, size);
    sha256_hex(data, size, sha);
    _cleanup_free_ char *iso = xasprintf("%s/tmp/x.iso", dir), *man = xasprintf("%s/tmp/x.manifest.json", dir);
    CHECK_INT(write_file_atomic(iso, data, size, 0644), 0);
    CHECK_INT(write_file_atomic(man, "{}\n", 3, 0644), 0);
    free(data);
    char err[256];
    CHECK_INT(artifact_publish(dir, iso, man, sha, err, sizeof(err)), 0);
    CHECK(access(iso, F_OK) != 0);
}

static bool present(const char *dir, const char *sha)
{
    _cleanup_free_ char *p = artifact_iso_path(dir, sha);
    return access(p, F_OK) == 0;
}

/* serve's front door reads the store as another user: a worker's strict umask must not hide an ISO from it. */
TEST(a_published_artifact_is_readable_by_everyone)
{
    _cleanup_free_ char *dir = scratch();
    _cleanup_free_ char *iso = xasprintf("%s/tmp/y.iso", dir), *man = xasprintf("%s/tmp/y.manifest.json", dir);
    CHECK_INT(write_file_atomic(iso, "iso", 3, 0600), 0);
    CHECK_INT(write_file_atomic(man, "{}\n", 3, 0600), 0);
    char sha[65], err[256];
    sha256_hex("iso", 3, sha);
    CHECK_INT(artifact_publish(dir, iso, man, sha, err, sizeof(err)), 0);
    _cleanup_free_ char *final_iso = artifact_iso_path(dir, sha), *final_man = artifact_manifest_path(dir, sha);
    struct stat st;
    CHECK_INT(stat(final_iso, &st), 0);
    CHECK_INT(st.st_mode & 0777, 0644);
    CHECK_INT(stat(final_man, &st), 0);
    CHECK_INT(st.st_mode & 0777, 0644);
}

TEST(publish_then_verify_catches_a_flipped_byte)
{
    _cleanup_free_ char *dir = scratch();
    char sha[65];
    publish(dir, 4096, 'a', sha);
    CHECK(artifact_verify(dir, sha, 4096));
    CHECK(!artifact_verify(dir, sha, 4097)); /* wrong size: not this artifact */
    _cleanup_free_ char *path = artifact_iso_path(dir, sha);
    FILE *f = fopen(path, "r+");
    CHECK(f != NULL);
    fseek(f, 100, SEEK_SET);
    fputc('b', f);
    fclose(f);
    /* the stamp no longer matches (mtime changed), so it is hashed again, found bad and removed */
    CHECK(!artifact_verify(dir, sha, 4096));
    CHECK(!present(dir, sha));
    _cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", dir);
    CHECK_INT(system(cmd), 0);
}

TEST(open_gives_the_checked_bytes_or_says_why_not)
{
    _cleanup_free_ char *dir = scratch();
    char sha[65], other[65];
    publish(dir, 4096, 'a', sha);
    int fd = artifact_open(dir, sha, 4096);
    CHECK(fd >= 0);
    char buf[16];
    CHECK_INT((int)pread(fd, buf, sizeof(buf), 4000), (int)sizeof(buf));
    CHECK(buf[0] == 'a' && buf[15] == 'a');
    close(fd);
    CHECK_INT(artifact_open(dir, sha, 4095), -EBADMSG); /* another size: not this artifact */
    CHECK(present(dir, sha));
    memset(other, 'f', 64);
    other[64] = '\0';
    CHECK_INT(artifact_open(dir, other, 4096), -ENOENT);
    CHECK_INT(artifact_open(dir, "../etc/passwd", 4096), -EINVAL);
    /* changed behind the store, same size: hashed again, refused and removed */
    _cleanup_free_ char *path = artifact_iso_path(dir, sha);
    FILE *f = fopen(path, "r+");
    CHECK(f != NULL);
    fputc('b', f);
    fclose(f);
    CHECK_INT(artifact_open(dir, sha, 4096), -EBADMSG);
    CHECK(!present(dir, sha));
    _cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", dir);
    CHECK_INT(system(cmd), 0);
}

TEST(a_manifest_is_read_only_for_its_own_iso)
{
    _cleanup_free_ char *dir = scratch();
    char sha[65];
    publish(dir, 100, 'm', sha);
    _cleanup_free_ char *path = artifact_manifest_path(dir, sha);
    char *body = NULL;
    size_t len;
    CHECK_INT(artifact_read_manifest(dir, sha, &body, &len), -EBADMSG); /* "{}": names no ISO */
    _cleanup_free_ char *text = xasprintf("{\"iso_sha256\": \"%s\"}\n", sha);
    CHECK_INT(write_file_atomic(path, text, strlen(text), 0644), 0);
    CHECK_INT(artifact_read_manifest(dir, sha, &body, &len), 0);
    CHECK_INT((int)len, (int)strlen(text));
    free(body);
    unlink(path);
    CHECK_INT(artifact_read_manifest(dir, sha, &body, &len), -ENOENT);
    _cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", dir);
    CHECK_INT(system(cmd), 0);
}

TEST(publishing_the_same_bytes_twice_keeps_one)
{
    _cleanup_free_ char *dir = scratch();
    char a[65], b[65];
    publish(dir, 1000, 'z', a);
    publish(dir, 1000, 'z', b);
    CHECK_STR(a, b);
    CHECK(present(dir, a));
    _cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", dir);
    CHECK_INT(system(cmd), 0);
}

TEST(gc_removes_unreferenced_then_least_recently_downloaded)
{
    PGconn *c = dbtest_open();
    _cleanup_free_ char *dir = scratch();
    char s1[65], s2[65], s3[65], s4[65];
    char err[512];
    publish(dir, 600 * 1024, '1', s1);
    publish(dir, 600 * 1024, '2', s2);
    publish(dir, 600 * 1024, '3', s3);
    publish(dir, 600 * 1024, '4', s4);
    const char *all[] = {s1, s2, s3, s4};
    for (int i = 0; i < 4; i++)
        CHECK_INT(store_artifact_add(c, all[i], 600 * 1024, err, sizeof(err)), DB_OK);
    /* s1..s3 are named by builds; s4 is not (and is old enough to be collected) */
    for (int i = 0; i < 3; i++) {
        _cleanup_free_ char *sql = xasprintf(
            "INSERT INTO builds (config_hash, build_key, recipe, cancel_token_hash, status, iso_sha256, iso_size, "
            "finished_at) VALUES (repeat('c', 64), repeat('%d', 64), '{}', decode(repeat('00', 32), 'hex'), "
            "'succeeded', '%s', 614400, now())",
            i + 1, all[i]);
        dbtest_exec(c, sql);
    }
    dbtest_exec(c, "UPDATE artifacts SET created_at = now() - interval '2 hours'");
    /* download order, oldest first: s2, s1, s3 */
    _cleanup_free_ char *t1 = xasprintf("UPDATE artifacts SET last_download_at = now() - interval '3 days' "
                                        "WHERE sha256 = '%s'", s2);
    _cleanup_free_ char *t2 = xasprintf("UPDATE artifacts SET last_download_at = now() - interval '2 days' "
                                        "WHERE sha256 = '%s'", s1);
    dbtest_exec(c, t1);
    dbtest_exec(c, t2);
    /* budget 1 MiB: s4 goes (unreferenced), then s2 (oldest download) and s1; s3 stays */
    struct artifact_gc_stats gs;
    CHECK_INT(artifact_gc(dir, 1, c, &gs, err, sizeof(err)), 0);
    CHECK_INT(gs.removed, 3);
    CHECK(!present(dir, s4));
    CHECK(!present(dir, s2));
    CHECK(!present(dir, s1));
    CHECK(present(dir, s3));
    CHECK_INT(gs.bytes_kept, 600 * 1024);
    struct artifact_row *rows;
    size_t n;
    CHECK_INT(store_artifacts_lru(c, &rows, &n, err, sizeof(err)), DB_OK);
    CHECK_INT(n, 1);
    CHECK_STR(rows[0].sha256, s3);
    free(rows);
    /* a fresh artifact no build names yet (its build is finishing) is kept */
    char s5[65];
    publish(dir, 10, '5', s5);
    CHECK_INT(store_artifact_add(c, s5, 10, err, sizeof(err)), DB_OK);
    CHECK_INT(artifact_gc(dir, 1, c, &gs, err, sizeof(err)), 0);
    CHECK(present(dir, s5));
    _cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", dir);
    CHECK_INT(system(cmd), 0);
    dbtest_close(c);
}
