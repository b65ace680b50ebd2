/*
 * Private to the engine: what engine.c (the host side of a build),
 * stages.c (the stages that run inside the sandbox) and protocol.c (the
 * lines between them) share. Nothing outside src/engine/ includes this.
 *
 * One struct build lives for one engine_build call. The host half fills
 * the lock, the epoch and the work directory; the sandbox's payload (a
 * fork of the host) sees a copy of it and writes progress, log and error
 * lines to its standard output, which the host reads back line by line:
 *
 *   P STAGE PERCENT TEXT   progress (enum engine_stage, overall percent)
 *   L TEXT                 one line a tool or hook printed
 *   E CAUSE TEXT...        the error (enum engine_error); every line after it belongs to it
 *
 * Errors: functions that can fail return 0, or -1 with the cause in
 * b->cause and the message in b->err (build_fail).
 */
#ifndef DEBATE_ENGINE_INT_H
#define DEBATE_ENGINE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "engine/engine.h"
#include "proc.h"

/* Inside the sandbox: the build disk, and the local mirror of the lock (read-only). */
#define WORK "/mnt/build"
#define MIRROR "/mnt/mirror"
#define KEYRING MIRROR "/archive-keyring.gpg"
/* Inside: the reused layers (read-only), and where a new base layer is written. */
#define BASE "/mnt/base"
#define BASE_LAYER BASE "/layer.tar.zst"
#define NEW_LAYER "base.tar.zst" /* under WORK */

struct build {
    const struct recipe *r;
    const struct engine_opts *o;
    struct lock lock;
    long long epoch;
    char epoch_str[24];
    char *output; /* o->output made absolute (the sandbox changes directory) */
    char *work;  /* the work directory beside output, as the host sees it (the sandbox's work directory) */
    char *mirror_dir, *out_dir; /* work/mirror (read-only at MIRROR inside), work/out (results read back) */
    char label[33];
    const struct lock_pkg *kernel_pkg, *busybox_pkg;
    char *err;
    size_t errlen;
    int progress_fd; /* inside the sandbox: where progress lines go */
    char *line;      /* on the host: the sandbox's output, up to its next newline */
    size_t line_len;
    enum engine_error cause; /* why the build failed (build_fail; on the host, also the sandbox's E line) */
    char *error;     /* on the host: the error the sandbox reported */
    char log_tail[2048]; /* on the host: the end of the build log (tools' and hooks' output) */
    char last_step[256];  /* on the host: the last progress message */
    size_t log_tail_len;
    char tool_line[1024]; /* inside: the running tool's output, up to its next newline */
    size_t tool_line_len;
    char *tools;      /* engine_tool_versions: in the manifest and the base layer's key */
    char *layer_key;  /* the base layer's key; NULL when base layers are off (base_cache_mb 0) */
    char *base_dir;   /* work/base: the reused layer (read-only at BASE inside) */
    bool base_reused; /* the root filesystem comes from the cached layer */
    bool base_save;   /* the root filesystem stage leaves WORK/base.tar.zst for the cache */
    char *kernel_key;   /* the kernel layer's key (busybox variant); NULL when none */
    bool kernel_reused; /* the kernel and initramfs come from the cached kernel layer (BASE) */
    bool kernel_save;   /* the kernel stage's results are kept in the cache */
    /* the tools' environment (build_tool_env) */
    const char *env[16];
    char env_sde[48], env_kept[6][256], env_preload[512];
};

static inline bool build_is_live(const struct build *b)
{
    return strcmp(b->r->variant, "live") == 0;
}

/* Records the cause and formats the message into b->err; returns -1. */
int build_fail(struct build *b, enum engine_error cause, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reports progress: within percent of stage. Inside the sandbox as a P line, on the host through the callback. */
void build_progress(struct build *b, enum engine_stage stage, int within, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The environment every tool sees (an allowlist), with SOURCE_DATE_EPOCH when with_epoch. Points into b. */
const char **build_tool_env(struct build *b, bool with_epoch);

/* Runs one tool; on failure b->err names it and quotes its last output. o may set stdout_path, timeout. */
int build_tool(struct build *b, const char *what, const char *const argv[], struct proc_opts *o, bool with_epoch);
int build_run_tool(struct build *b, const char *what, const char *const argv[], bool with_epoch);

/* write_file_atomic with the error in b->err. */
int build_write_text(struct build *b, const char *path, const char *text, unsigned mode);

/* ---- protocol.c ---- */

/* Inside: a tool's output (proc_opts.on_output) forwarded as L lines. */
void proto_log_output(void *arg, const char *buf, size_t n);
/* Inside: the last line of a tool that did not end it. */
void proto_flush_log(struct build *b);
/* Inside: b->cause and the error as the final E line. */
void proto_emit_error(struct build *b, const char *err);
/* Host: bytes of the sandbox's output (sandbox_opts.on_output). */
void proto_host_output(void *arg, const char *buf, size_t n);
/* Host: the line still buffered when the sandbox ended. */
void proto_host_finish(struct build *b);

/* ---- stages.c ---- */

/* The sandbox's payload: every stage from rootfs to assembling; 0 when the ISO is at WORK/image.iso. */
int stages_payload(void *arg);

/* ---- layers.c: the cache of layers, on the host ---- */

struct layer_kind {
    const char *dir;         /* under the cache directory */
    const char *what;        /* in messages: "base layer" */
    const char *files[3];    /* an entry's files, NULL-terminated */
    enum engine_stage stage; /* where a damaged entry is reported */
    const char *redo;        /* what a damaged entry means for the build */
};
extern const struct layer_kind layer_base;   /* layer.tar.zst: the tree after the packages */
extern const struct layer_kind layer_kernel; /* vmlinuz, initrd.img: the busybox variant's kernel stage */

/* The key of the build's base layer (malloc'd hex): everything the tree after the packages depends on. */
char *layers_key(const struct build *b, const char *tools);
/* The key of the busybox variant's kernel layer (malloc'd hex); needs b->kernel_pkg, busybox_pkg, label, epoch. */
char *layers_kernel_key(const struct build *b, const char *tools);
/*
 * Puts the cached entry of key, verified, in dest_dir (its files by their
 * names, mode 0644, dest_dir 0755): 1. No such entry: 0. A damaged one (a
 * sum that differs, a file missing) is removed and reported (progress): 0.
 * One that cannot be read for another reason is reported and left: 0.
 * -1 with the cause when dest_dir cannot be made.
 */
int layers_take(struct build *b, const struct layer_kind *k, const char *key, const char *dest_dir);
/* Whether the cache has an entry for key (unchecked: layers_take checks it). */
bool layers_have(const struct build *b, const struct layer_kind *k, const char *key);
/* Keeps src_dir's files (copied out of the sandbox) as key's entry. Failures are reported, not fatal. */
void layers_keep(struct build *b, const struct layer_kind *k, const char *key, const char *src_dir);
/* Keeps the cache within base_cache_mb, the least recently used going first; the keys in keep (NULL-ended) stay. */
void layers_collect(struct build *b, const char *const *keep);

/* ---- bootcheck.c ---- */

/*
 * On the host, once the ISO is at b->out_dir/image.iso: boots it in a
 * sandbox of its own (bootcheck.h) and fills res->boot; the console log is
 * then at b->out_dir/boot.log. 0 whatever the verdict; -1 with the cause
 * when the check could not run or was interrupted.
 */
int bootcheck_run(struct build *b, struct engine_result *res);

/* ---- hook.c ---- */

/*
 * Inside the sandbox, after the overlays: runs the recipe's hooks in order,
 * each with the image (WORK/root) as the root of its own mount and PID
 * namespaces, until one fails. 0, or -1 with the cause (ENGINE_E_HOOK, or
 * ENGINE_E_LIMIT for a forbidden system call) and the message in b->err.
 * Progress and the hooks' output go out as P and L lines.
 */
int hook_run_all(struct build *b);

#endif
