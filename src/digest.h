/*
 * SHA-256, the one digest debate uses: of recipes (config_hash), locks,
 * cache keys, packages, ISOs and backups. Always written as 64 lower-case
 * hex digits (out[65], NUL-terminated).
 *
 * Errors: the file variants return 0 or -errno; nothing else fails (an
 * allocation failure inside OpenSSL aborts, as every allocation does).
 * Any thread may call these.
 */
#ifndef DEBATE_DIGEST_H
#define DEBATE_DIGEST_H

#include <stddef.h>

/* SHA-256 of data. */
void sha256_hex(const void *data, size_t len, char out[65]);
/* SHA-256 of the file at path, read in chunks; *size (when not NULL) gets its length. */
int sha256_file(const char *path, char out[65], long long *size);
/* The same, of what is left to read from fd (which stays open). */
int sha256_fd(int fd, char out[65], long long *size);

#endif
