/*
 * The release file's field parsers: the header fields (Codename, Suite,
 * Date) that pkgindex_parse_release reads from an InRelease, and the
 * SHA256 section that resolve_release_hash searches for the Packages.xz
 * it must check. A hash it returns is 64 characters.
 */
#include "fuzz.h"

#include "engine/pkgindex.h"
#include "engine/resolve.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    _cleanup_free_ char *text = fuzz_cstring(data, size);
    struct pkgindex_info info;
    memset(&info, 0, sizeof(info));
    pkgindex_parse_release(text, &info);
    fuzz_require(strlen(info.codename) < sizeof(info.codename) && strlen(info.date) < sizeof(info.date));
    fuzz_require(strpbrk(info.suite, "\r\n") == NULL);
    static const char *const paths[] = {"main/binary-amd64/Packages.xz", "main/binary-amd64/Packages",
                                        "main/binary-arm64/Packages.xz"};
    for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
        char hash[65];
        if (resolve_release_hash(text, paths[i], hash) == 0)
            fuzz_require(strlen(hash) == 64);
    }
    return 0;
}
