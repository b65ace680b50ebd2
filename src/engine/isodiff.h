/*
 * Where two ISOs that should be the same bytes differ (debate verify): the
 * files of the ISO 9660 tree, the El Torito boot catalog and boot images,
 * the GRUB image inside the EFI image, and inside the root filesystem's
 * squashfs the paths with their sizes and modes.
 *
 * Threat model: both images are untrusted (one came from elsewhere, the
 * other from a build of recipes and hooks), and so are the tools that read
 * them. The whole comparison runs in the sandbox (sandbox.h) with the
 * configured limits: xorriso -no_rc lists each ISO 9660 tree and its El
 * Torito catalog, the bytes of every file are compared at their extents in
 * the two images, a squashfs that differs is unpacked by unsquashfs on the
 * sandbox's build disk (a link in it points nowhere the host can see), the
 * two trees are walked without following links, and mtools reads the EFI
 * image. Nothing from either image is executed. Only text comes back: the
 * report, read beneath the build disk without following links (and, with
 * diffoscope_dir, diffoscope's two report files). Every path in the report
 * has its control characters and backslashes written as \xNN; a caller
 * that prints one still passes it through cmd_print.
 *
 * Errors: isodiff_compare returns 0 with the report (empty when the two
 * images hold the same bytes), or -1 with a message in err: the sandbox
 * could not be set up, a limit stopped it, a tool could not read an image,
 * or *cancel was set. Main thread; it forks the sandbox.
 */
#ifndef DEBATE_ENGINE_ISODIFF_H
#define DEBATE_ENGINE_ISODIFF_H

#include <signal.h>
#include <stddef.h>

#include "config.h"

struct isodiff_opts {
    const struct config *cfg;   /* the sandbox's limits and ids */
    const char *work;           /* an empty host directory the comparison fills; the caller removes it */
    const char *original;       /* the ISO being verified */
    const char *rebuilt;        /* its rebuild */
    const char *diffoscope_dir; /* an existing directory for diffoscope's report.txt and report.html; or NULL */
    volatile sig_atomic_t *cancel;
};

/* The differences, one line each (no newline), in the order found. isodiff_report_release frees them. */
struct isodiff_report {
    char **lines;
    size_t nlines;
};

int isodiff_compare(const struct isodiff_opts *o, struct isodiff_report *rep, char *err, size_t errlen);
void isodiff_report_release(struct isodiff_report *rep);

/* diffoscope's path when it is installed on this machine (and so in the sandbox's /usr), else NULL. Static. */
const char *isodiff_diffoscope(void);

#endif
