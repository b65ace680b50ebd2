/*
 * A release's index as pkgindex_probe and pkgindex_load read it from the
 * package cache: the input is an InRelease, a NUL, then a Packages.xz,
 * written to CACHE/indexes/<the InRelease's SHA-256>/ in a scratch
 * directory. Random bytes stop at the Packages.xz hash the InRelease must
 * list; the seeds carry a matching pair (fuzz/packages.c and
 * fuzz/inrelease.c reach the parsers behind the check directly). An index
 * that loads is sorted, one entry a name.
 */
#include "fuzz.h"

#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "engine/pkgindex.h"
#include "banned.h"

static char scratch[64];

static void cleanup(void)
{
    rmdir(scratch);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* Memory, where there is a /dev/shm: every run writes two files. */
    snprintf(scratch, sizeof(scratch), "%s/debate-fuzz-pkgindex-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    fuzz_require(mkdtemp(scratch) != NULL);
    atexit(cleanup);
    return 0;
}

static void check_index(const char *dir)
{
    struct pkgindex_info info;
    struct pkgindex ix;
    char err[1024] = "";
    enum engine_error probed = pkgindex_probe(dir, &info, err, sizeof(err));
    fuzz_require(probed == ENGINE_OK);
    enum engine_error loaded = pkgindex_load(dir, "amd64", NULL, &ix, err, sizeof(err));
    if (loaded != ENGINE_OK) {
        fuzz_require(loaded == ENGINE_E_FAILED && err[0] != '\0');
        return;
    }
    fuzz_require(strcmp(ix.info.sha256, info.sha256) == 0);
    for (size_t i = 1; i < ix.npkgs; i++)
        fuzz_require(strcmp(ix.pkgs[i - 1].name, ix.pkgs[i].name) < 0);
    pkgindex_release(&ix);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t inrelease_len = nul ? (size_t)(nul - data) : size;
    const uint8_t *xz = nul ? nul + 1 : data + size;
    char sha[65];
    sha256_hex(data, inrelease_len, sha);
    _cleanup_free_ char *dir = xasprintf("%s/%s", scratch, sha);
    _cleanup_free_ char *inrelease = xasprintf("%s/InRelease", dir), *packages = xasprintf("%s/Packages.xz", dir);
    fuzz_require(mkdir(dir, 0700) == 0);
    fuzz_require(write_file_atomic(inrelease, data, inrelease_len, 0600) == 0);
    fuzz_require(write_file_atomic(packages, xz, size - (size_t)(xz - data), 0600) == 0);
    check_index(dir);
    unlink(inrelease);
    unlink(packages);
    rmdir(dir);
    return 0;
}
