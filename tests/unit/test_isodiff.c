/*
 * The comparison of two ISOs (engine/isodiff.c), without the sandbox: how
 * xorriso's report is read (the El Torito catalog and images, files in
 * several extents, quoted and hostile names) and what the byte comparison
 * says for files, files on one side only and the system area. The file is
 * included to reach its static functions; the sandbox run and the squashfs
 * are covered by tests/integration/test_build.py on real images.
 */
#include "engine/isodiff.c"

#include <stdlib.h>

#include "harness.h"

static void parse(struct side *s, const char *const lines[])
{
    for (size_t i = 0; lines[i] != NULL; i++) {
        _cleanup_free_ char *line = xstrdup(lines[i]);
        side_parse_line(s, line);
    }
    side_roles(s);
}

static const struct entry *find(const struct side *s, const char *path)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->entries[i].path, path) == 0)
            return &s->entries[i];
    return NULL;
}

TEST(the_el_torito_report_names_the_catalog_and_both_boot_images)
{
    static const char *const lines[] = {
        "El Torito catalog  : 33  1\n",
        "El Torito cat path : /isolinux/boot.cat\n",
        "El Torito images   :   N  Pltf  B   Emul  Ld_seg  Hdpt  Ldsiz         LBA\n",
        "El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4         450\n",
        "El Torito boot img :   2  UEFI  y   none  0x0000  0x00   1664          34\n",
        "El Torito img path :   1  /isolinux/isolinux.bin\n",
        "El Torito img opts :   1  boot-info-table isohybrid-suitable\n",
        "El Torito img path :   2  /boot/grub/efi.img\n",
        "Report layout: xt , Startlba ,   Blocks , Filesize , ISO image path\n",
        "File data lba:  0 ,       34 ,      416 ,   851968 , '/boot/grub/efi.img'\n",
        "File data lba:  0 ,      450 ,       19 ,    38912 , '/isolinux/isolinux.bin'\n",
        "File data lba:  0 ,      529 ,      504 ,  1032192 , '/live/filesystem.squashfs'\n",
        "File data lba:  0 ,     1831 ,     4015 ,  8222656 , '/live/vmlinuz'\n",
        NULL};
    struct side s = {.fd = -1};
    parse(&s, lines);
    CHECK_INT(s.n, 5);
    const struct entry *cat = find(&s, "/isolinux/boot.cat");
    CHECK(cat != NULL);
    CHECK_STR(cat->role, "the El Torito boot catalog");
    CHECK_INT(cat->x[0].lba, 33);
    CHECK_INT(cat->size, 2048);
    CHECK_STR(find(&s, "/isolinux/isolinux.bin")->role, "the El Torito BIOS boot image");
    CHECK_STR(find(&s, "/boot/grub/efi.img")->role, "the El Torito EFI boot image");
    CHECK_STR(find(&s, "/live/filesystem.squashfs")->role, "the root filesystem");
    CHECK(find(&s, "/live/vmlinuz")->role == NULL);
    /* sorted by path, for the merge of the two sides */
    for (size_t i = 1; i < s.n; i++)
        CHECK(strcmp(s.entries[i - 1].path, s.entries[i].path) < 0);
    side_release(&s);
}

TEST(a_file_in_several_extents_is_one_entry_and_quotes_are_undone)
{
    static const char *const lines[] = {
        "File data lba:  0 ,       40 ,        2 ,     6000 , '/big'\n",
        "File data lba:  1 ,       90 ,        1 ,     6000 , '/big'\n",
        "File data lba:  0 ,      100 ,        1 ,        5 , 'it'\"'\"'s'\n",
        "File data lba:  0 ,      101 ,        1 ,        5 , '/no closing quote\n",
        "File data lba:  0 ,      102 ,        1 ,        5 , '/a\\nb'\n",
        NULL};
    struct side s = {.fd = -1};
    parse(&s, lines);
    CHECK_INT(s.n, 3);
    const struct entry *big = find(&s, "/big");
    CHECK(big != NULL);
    CHECK_INT(big->nx, 2);
    CHECK_INT(big->x[1].lba, 90);
    CHECK(find(&s, "it's") != NULL);
    CHECK(find(&s, "/a\\nb") != NULL); /* xorriso's backslash code stays text */
    side_release(&s);
}

TEST(paths_from_an_image_are_one_printable_line)
{
    _cleanup_free_ char *e = escape("/etc/a\nb\x1b[2J\\x\x7f");
    CHECK_STR(e, "/etc/a\\x0ab\\x1b[2J\\x5cx\\x7f");
}

/* An "image" of n blocks at path, filled with fill, with one byte changed at each of the offsets in flips. */
static int make_image(const char *path, long long n, char fill, const long long *flips, size_t nflips)
{
    size_t len = (size_t)(n * BLOCK);
    char *buf = xmalloc(len);
    memset(buf, fill, len);
    for (size_t i = 0; i < nflips; i++)
        buf[flips[i]] ^= 0x55;
    CHECK_INT(write_file_atomic(path, buf, len, 0644), 0);
    free(buf);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    return fd;
}

static void add(struct side *s, const char *path, long long lba, long long blocks, long long size)
{
    struct entry *e = side_add(s, path);
    e->x[e->nx++] = (struct extent){lba, blocks};
    e->size = size;
}

TEST(the_comparison_names_changed_files_files_on_one_side_and_the_system_area)
{
    char dir[] = "/tmp/debate-isodiff-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    _cleanup_free_ char *pa = xasprintf("%s/a.iso", dir), *pb = xasprintf("%s/b.iso", dir);
    /* /same at block 20, /changed at 21 (changed in its 5 bytes), a byte of the MBR, a byte past /changed's size
     * in its last block (not the file's), /only-a and /only-b on one side each. */
    long long flips[] = {100, 21 * BLOCK + 3, 21 * BLOCK + 100};
    struct diff d = {.a = {.name = "original", .fd = make_image(pa, 30, 'x', flips, 3)},
                     .b = {.name = "rebuilt", .fd = make_image(pb, 30, 'x', NULL, 0)}};
    d.a.size = d.b.size = 30 * BLOCK;
    add(&d.a, "/same", 20, 1, 10);
    add(&d.b, "/same", 20, 1, 10);
    add(&d.a, "/changed", 21, 1, 5);
    add(&d.b, "/changed", 21, 1, 5);
    add(&d.a, "/only-a", 22, 1, 7);
    add(&d.b, "/only-b", 23, 1, 8);
    char *text = NULL;
    size_t len = 0;
    d.report = open_memstream(&text, &len);
    compare_trees(&d);
    fclose(d.report);
    CHECK_STR(text, "iso  /changed: 5 bytes, rebuilt 5 bytes\n"
                    "iso  /only-a: only in the original (7 bytes)\n"
                    "iso  /only-b: only in the rebuild (8 bytes)\n"
                    "iso  the system area (MBR, GPT and isohybrid boot code, the first 32 KiB): 1 blocks differ\n");
    free(text);
    side_release(&d.a);
    side_release(&d.b);
    unlink(pa);
    unlink(pb);
    rmdir(dir);
}
