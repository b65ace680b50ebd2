/*
 * The build engine: a recipe and its lock in, a bootable ISO and its
 * manifest out, byte for byte the same for the same inputs.
 *
 * Stages, each reported through the progress callback: resolving,
 * fetching (the only ones with network access), then, offline in private
 * mount, UTS and network namespaces (loopback only) and a clean
 * environment: rootfs, customizing, kernel, squashfs, bootloader,
 * assembling. The ISO is built in a work directory beside the output and
 * renamed into place only when complete: the output path never holds a
 * partial ISO.
 *
 * SOURCE_DATE_EPOCH is the Date of the signed InRelease the lock pins, so
 * it is a function of the inputs alone; every timestamp in the image is
 * clamped to it.
 *
 * Paths: the output and the lock may be relative to the caller's working
 * directory. engine_build makes the output absolute first (its directory
 * through realpath, which must exist): the sandbox changes directory before
 * it reads the results back. The lock is read before anything else.
 *
 * The boot check (o->boot_check, bootcheck.h) runs after assembling, in a
 * sandbox of its own. Its verdict is in the result and in the manifest's
 * boot_check, its console in OUTPUT.boot.log. A boot that fails is not a
 * failed build: the ISO is published with its verdict, and the caller
 * decides what a failed check means to its user. A check that cannot run
 * (its sandbox, QEMU missing) fails the build: it was asked for.
 *
 * Errors: engine_build returns ENGINE_OK, or the cause of the failure (enum
 * engine_error, engine/error.h) with a message in err that says the rest:
 * the package, the hook and its exit code with the tail of its output, the
 * limit reached. Callers branch on the cause, never on the message's words.
 */
#ifndef DEBATE_ENGINE_ENGINE_H
#define DEBATE_ENGINE_ENGINE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine/bootcheck.h"
#include "engine/error.h"
#include "engine/recipe.h"
#include "engine/resolve.h"
#include "config.h"

/* Stage names, in order. */
enum engine_stage {
    STAGE_RESOLVING,
    STAGE_FETCHING,
    STAGE_ROOTFS,
    STAGE_CUSTOMIZING,
    STAGE_KERNEL,
    STAGE_SQUASHFS,
    STAGE_BOOTLOADER,
    STAGE_ASSEMBLING,
    STAGE_BOOTING, /* the boot check, when asked for */
    STAGE_DONE,
};

const char *engine_stage_name(enum engine_stage s);

/* A progress event: stage, overall percent, a line of text. */
typedef void (*engine_progress_cb)(void *arg, enum engine_stage stage, int percent, const char *message);

struct engine_opts {
    const struct config *cfg;
    const char *output;              /* the ISO's path (relative to the working directory, or absolute);
                                        the manifest goes to OUTPUT.manifest.json */
    const char *mirror;              /* NULL: cfg->mirror or the host's */
    const char *security_mirror;     /* NULL: cfg->security_mirror or the host's */
    const char *lock_path;           /* a lock to build exactly (no resolution, offline when cached); or NULL */
    unsigned hook_timeout_s;         /* per hook */
    unsigned timeout_s;              /* the whole sandboxed part; 0: cfg->build_timeout */
    bool boot_check;                 /* boot the ISO under QEMU once assembled (bootcheck.h) */
    bool cold;                       /* install the packages even when a base layer is cached (one is still kept) */
    unsigned boot_check_timeout_s;   /* per firmware; 0: cfg->boot_check_timeout */
    engine_progress_cb progress;
    void *progress_arg;
    void (*log)(void *progress_arg, const char *line); /* each line tools and hooks print; or NULL */
    volatile sig_atomic_t *interrupted; /* set by a signal handler: the build stops cleanly */
};

struct engine_result {
    char iso_sha256[65];
    char squashfs_sha256[65];
    long long iso_size;
    long long source_date_epoch;
    int fetched; /* packages downloaded */
    char lock_hash[65]; /* the lock built from */
    struct bootcheck_result boot; /* boot.checked when o->boot_check; the console log is at OUTPUT.boot.log */
    char base_layer[65]; /* the base layer's key; empty when base layers are off */
    bool base_reused;    /* the tree came from the cached base layer: no package was installed */
    unsigned long long memory_peak_bytes, disk_peak_bytes; /* the build's sandbox at most (sandbox_result) */
};

/* "package version" lines of the host tools that write the image (malloc'd); scratch_dir holds a temporary file. */
char *engine_tool_versions(const char *scratch_dir);

enum engine_error engine_build(const struct recipe *r, const struct engine_opts *o, struct engine_result *res,
                               char *err, size_t errlen);

#endif
