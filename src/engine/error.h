/*
 * Why a build failed: one enum for every part of the engine (resolution,
 * fetching, the stages in the sandbox, the host side), so a cause travels
 * as a value from where it happens to the caller. engine_error_code() is
 * the stable code the API reports for a failed build (docs/api.md);
 * engine_strerror() a short description for people. Both are defined in
 * engine.c and take any value, also one out of range.
 *
 * Callers branch on the cause, never on a message's words: the message
 * that goes with a cause says the rest (the package, the hook, the limit).
 */
#ifndef DEBATE_ENGINE_ERROR_H
#define DEBATE_ENGINE_ERROR_H

#include <errno.h>

enum engine_error {
    ENGINE_OK = 0,
    ENGINE_E_FAILED,          /* anything not below: build_failed */
    ENGINE_E_INVALID_LOCK,    /* the lock does not parse or does not fit the recipe */
    ENGINE_E_UNKNOWN_PACKAGE, /* a package the mirror does not have */
    ENGINE_E_MIRROR,          /* the mirror could not be reached or answered wrongly */
    ENGINE_E_SIGNATURE,       /* a release file whose signature does not verify */
    ENGINE_E_HOOK,            /* a hook failed: its exit code, or its time limit */
    ENGINE_E_LIMIT,           /* a sandbox limit (memory, processes, CPU, disk, wall time, a forbidden call) */
    ENGINE_E_DISK_FULL,       /* the disk ran full outside the sandbox's own limit */
    ENGINE_E_INTERRUPTED,     /* a signal or a cancel stopped the build */
};
#define ENGINE_ERROR_MAX ENGINE_E_INTERRUPTED

const char *engine_error_code(enum engine_error e);
const char *engine_strerror(enum engine_error e);

/* The cause for a failed system call's errno: a full disk, or a plain failure. */
static inline enum engine_error engine_errno_cause(int errnum)
{
    return errnum == ENOSPC ? ENGINE_E_DISK_FULL : ENGINE_E_FAILED;
}

#endif
