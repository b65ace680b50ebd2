/*
 * A reproducible initramfs archive: the "newc" cpio format of a directory
 * tree, entries in byte order of their paths, every owner 0:0, every mtime
 * the given epoch, inode numbers counted from 1, device numbers 0. The same
 * tree gives the same bytes whoever builds it, wherever, whenever.
 *
 * Regular files, directories and symbolic links only (anything else is an
 * error), and no file named TRAILER!!! at the top, the name that ends an
 * archive. Returns 0, or -1 with a message in err.
 */
#ifndef DEBATE_ENGINE_CPIO_H
#define DEBATE_ENGINE_CPIO_H

#include <stddef.h>

int cpio_write_tree(const char *dir, const char *out_path, long long mtime, char *err, size_t errlen);

#endif
