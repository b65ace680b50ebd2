/*
 * The Packages paragraph parser (pkgindex_parse_packages), behind the
 * signature and hash checks that keep random input from reaching it
 * through pkgindex_load, and the completion search over what it read.
 * The index must come out sorted by name, one entry a name, and a search
 * must return matches only, at most as many as asked.
 */
#include "fuzz.h"

#include "engine/pkgindex.h"
#include "banned.h"

static void check_search(const struct pkgindex *ix, const char *q)
{
    const struct pkgindex_pkg *out[8];
    size_t n = pkgindex_search(ix, q, ARRAY_SIZE(out), out);
    fuzz_require(n <= ARRAY_SIZE(out));
    for (size_t i = 0; i < n; i++)
        fuzz_require(strstr(out[i]->name, q) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pkgindex ix;
    memset(&ix, 0, sizeof(ix));
    fuzz_require(pkgindex_parse_packages((const char *)data, size, NULL, &ix));
    for (size_t i = 1; i < ix.npkgs; i++)
        fuzz_require(strcmp(ix.pkgs[i - 1].name, ix.pkgs[i].name) < 0);
    for (size_t i = 0; i < ix.npkgs; i++)
        fuzz_require(ix.pkgs[i].version != NULL && ix.pkgs[i].description != NULL);
    check_search(&ix, "");
    check_search(&ix, "lib");
    if (ix.npkgs > 0)
        check_search(&ix, ix.pkgs[ix.npkgs / 2].name);
    pkgindex_release(&ix);
    return 0;
}
