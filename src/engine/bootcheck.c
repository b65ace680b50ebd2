/*
 * The boot check (bootcheck.h): the pure parts, the sandbox payload that
 * runs QEMU, and the host step that starts it and reads the verdict back.
 */
#include "engine/bootcheck.h"
#include "engine/engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/sandbox.h"
#include "proc.h"
#include "util.h"
#include "banned.h"

#define ISO_DIR "/mnt/iso"
#define QEMU "/usr/bin/qemu-system-x86_64"
#define OVMF_CODE "/usr/share/OVMF/OVMF_CODE_4M.fd"
#define OVMF_VARS "/usr/share/OVMF/OVMF_VARS_4M.fd"
/* Guest memory: the live variant's systemd wants more room than busybox. */
#define GUEST_MB_BUSYBOX 512u
#define GUEST_MB_LIVE 1024u
/* What QEMU itself needs beside its guest's memory (code buffers, firmware, threads). */
#define QEMU_OVERHEAD_MB 384u
/* The check's build disk holds a copy of OVMF's variables and the console logs. */
#define BOOT_DISK_MB 64u

static const char *const verdict_names[] = {
    [BOOT_SKIPPED] = "skipped",
    [BOOT_PASS] = "pass",
    [BOOT_FAIL] = "fail",
};

const char *bootcheck_verdict_name(enum boot_verdict v)
{
    return (unsigned)v < ARRAY_SIZE(verdict_names) ? verdict_names[v] : "fail";
}

bool bootcheck_passed(const struct bootcheck_result *r)
{
    return r->bios != BOOT_FAIL && r->uefi != BOOT_FAIL && (r->bios == BOOT_PASS || r->uefi == BOOT_PASS);
}

char *bootcheck_marker(const struct recipe *r)
{
    if (strcmp(r->variant, "live") == 0)
        return xstrdup("Reached target");
    return xasprintf("DEBATE-BOOTED %s", r->name);
}

/* The value of the last "console=" word of cmdline (up to its options), or "" when there is none. */
static void last_console(const char *cmdline, char *out, size_t outlen)
{
    out[0] = '\0';
    for (const char *p = cmdline; *p;) {
        size_t n = strcspn(p, " ");
        if (n > 8 && strncmp(p, "console=", 8) == 0) {
            size_t v = strcspn(p + 8, " ,");
            snprintf(out, outlen, "%.*s", (int)v, p + 8);
        }
        p += n;
        p += strspn(p, " ");
    }
}

static bool has_word(const char *cmdline, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = cmdline; *p;) {
        size_t n = strcspn(p, " ");
        if (n == wl && strncmp(p, word, wl) == 0)
            return true;
        p += n;
        p += strspn(p, " ");
    }
    return false;
}

const char *bootcheck_refusal(const struct recipe *r)
{
    char console[64];
    last_console(r->cmdline, console, sizeof(console));
    if (strcmp(console, "ttyS0") != 0)
        return "boot.cmdline: a boot check reads the console on the first serial port, so the command line "
               "must end its consoles with console=ttyS0 (the boot loader's command line is part of the ISO, "
               "which the check does not change)";
    if (strcmp(r->variant, "live") == 0 && has_word(r->cmdline, "quiet"))
        return "boot.cmdline: a boot check of the live variant reads systemd's status lines on the console, "
               "which quiet hides";
    if (!r->boot_bios && !r->boot_uefi)
        return "boot: the image boots with no firmware to check";
    return NULL;
}

void boot_console_init(struct boot_console *c, const char *marker, size_t cap)
{
    *c = (struct boot_console){.marker = marker, .cap = cap};
    c->buf = xmalloc(cap + 4096 + 1);
    c->buf[0] = '\0';
}

void boot_console_release(struct boot_console *c)
{
    free(c->buf);
    c->buf = NULL;
    c->len = 0;
}

/* Appends up to 4096 bytes: the buffer holds cap bytes of the past and one chunk. */
static void console_append(struct boot_console *c, const char *data, size_t n)
{
    size_t mlen = strlen(c->marker);
    size_t from = !c->seen && c->len >= mlen ? c->len - mlen + 1 : 0;
    for (size_t i = 0; i < n; i++)
        if (data[i] != '\r' && data[i] != '\0')
            c->buf[c->len++] = data[i];
    c->buf[c->len] = '\0';
    if (!c->seen && strstr(c->buf + from, c->marker) != NULL)
        c->seen = true;
    if (c->len > c->cap) {
        memmove(c->buf, c->buf + c->len - c->cap, c->cap);
        c->len = c->cap;
        c->buf[c->len] = '\0';
    }
}

void boot_console_feed(struct boot_console *c, const char *data, size_t n)
{
    for (size_t off = 0; off < n; off += 4096)
        console_append(c, data + off, n - off < 4096 ? n - off : 4096);
}

json_t *bootcheck_json(const struct bootcheck_result *r)
{
    return json_pack("{s:s, s:s, s:s, s:I}", "result", bootcheck_passed(r) ? "pass" : "fail", "bios",
                     bootcheck_verdict_name(r->bios), "uefi", bootcheck_verdict_name(r->uefi), "seconds",
                     (json_int_t)r->seconds);
}

static int parse_one(const char *word, size_t n, enum boot_verdict *v)
{
    for (size_t i = 0; i < ARRAY_SIZE(verdict_names); i++)
        if (strlen(verdict_names[i]) == n && strncmp(word, verdict_names[i], n) == 0) {
            *v = (enum boot_verdict)i;
            return 0;
        }
    return -1;
}

int bootcheck_parse_verdict(const char *text, struct bootcheck_result *r)
{
    const char *bios = strstr(text, "bios="), *uefi = strstr(text, "uefi=");
    if (bios != text || uefi == NULL)
        return -1;
    bios += 5;
    uefi += 5;
    if (parse_one(bios, strcspn(bios, " "), &r->bios) < 0 || parse_one(uefi, strcspn(uefi, " \n"), &r->uefi) < 0)
        return -1;
    r->checked = true;
    return 0;
}

/* ---- inside the sandbox: QEMU ----------------------------------------------------------- */

struct boot_watch {
    struct boot_console con;
    struct proc_opts *po;
};

static void boot_watch_output(void *arg, const char *buf, size_t n)
{
    struct boot_watch *w = arg;
    boot_console_feed(&w->con, buf, n);
    if (w->con.seen && !w->po->stop) {
        w->po->stop_ms = BOOTCHECK_LINGER_MS;
        w->po->stop = true;
    }
}

static unsigned guest_mb(const struct build *b)
{
    return build_is_live(b) ? GUEST_MB_LIVE : GUEST_MB_BUSYBOX;
}

static unsigned boot_timeout(const struct build *b)
{
    return b->o->boot_check_timeout_s ? b->o->boot_check_timeout_s : b->o->cfg->boot_check_timeout;
}

/* OVMF writes its variables: each UEFI boot gets a fresh copy of the template. */
static int copy_vars(char *err, size_t errlen)
{
    _cleanup_close_ int in = open(OVMF_VARS, O_RDONLY | O_CLOEXEC);
    _cleanup_close_ int out = open(WORK "/ovmf-vars.fd", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (in < 0 || out < 0 || copy_fd(in, out) < 0) {
        snprintf(err, errlen, "cannot copy \"%s\": %s", OVMF_VARS, strerror(errno));
        return -1;
    }
    return 0;
}

/* One boot; its console, headed by the verdict, appended to log. */
static enum boot_verdict boot_one(struct build *b, bool uefi, FILE *log)
{
    const char *fw = uefi ? "uefi" : "bios";
    char mem[16], accel[32];
    snprintf(mem, sizeof(mem), "%u", guest_mb(b));
    /* /dev/kvm is reachable only when the sandbox hands it in; else software emulation. */
    snprintf(accel, sizeof(accel), "pc,accel=%s", access("/dev/kvm", R_OK | W_OK) == 0 ? "kvm" : "tcg");
    const char *argv[32] = {QEMU, "-machine", accel, "-m", mem, "-smp", "1", "-nic", "none", "-display", "none",
                            "-serial", "stdio", "-monitor", "none", "-no-reboot", "-boot", "d", "-drive",
                            "file=" ISO_DIR "/image.iso,media=cdrom,if=ide,readonly=on,format=raw"};
    size_t n = 20;
    if (uefi) {
        argv[n++] = "-drive";
        argv[n++] = "if=pflash,format=raw,unit=0,readonly=on,file=" OVMF_CODE;
        argv[n++] = "-drive";
        argv[n++] = "if=pflash,format=raw,unit=1,file=" WORK "/ovmf-vars.fd";
    }
    argv[n] = NULL;
    _cleanup_free_ char *marker = bootcheck_marker(b->r);
    struct proc_opts po = {.env = build_tool_env(b, false), .clean_env = true, .timeout_s = boot_timeout(b)};
    struct boot_watch w = {.po = &po};
    boot_console_init(&w.con, marker, BOOTCHECK_LOG_CAP);
    po.on_output = boot_watch_output;
    po.output_arg = &w;
    build_progress(b, STAGE_BOOTING, uefi ? 50 : 0, "booting with %s (%s)", uefi ? "OVMF" : "SeaBIOS", accel + 9);
    char err[512] = "";
    if (!uefi || copy_vars(err, sizeof(err)) == 0)
        proc_run(argv, &po, err, sizeof(err));
    enum boot_verdict v = w.con.seen ? BOOT_PASS : BOOT_FAIL;
    if (v == BOOT_PASS)
        fprintf(log, "== %s: pass (\"%s\" on the console) ==\n", fw, marker);
    else if (po.timed_out)
        fprintf(log, "== %s: fail (no \"%s\" on the console within %u seconds) ==\n", fw, marker, po.timeout_s);
    else
        fprintf(log, "== %s: fail (%s before \"%s\" appeared on the console) ==\n", fw, err, marker);
    fprintf(log, "%s%s", w.con.buf, w.con.len > 0 && w.con.buf[w.con.len - 1] != '\n' ? "\n" : "");
    build_progress(b, STAGE_BOOTING, uefi ? 100 : 50, "%s: %s", fw, bootcheck_verdict_name(v));
    boot_console_release(&w.con);
    return v;
}

/* The boot check's sandbox payload: boots, writes WORK/boot.log and WORK/verdict. */
static int bootcheck_payload(void *arg)
{
    struct build *b = arg;
    b->progress_fd = STDOUT_FILENO;
    char err[1024] = "";
    b->err = err;
    b->errlen = sizeof(err);
    FILE *log = fopen(WORK "/boot.log", "we");
    if (log == NULL) {
        build_fail(b, engine_errno_cause(errno), "cannot write \"%s\": %s", WORK "/boot.log", strerror(errno));
        proto_emit_error(b, err);
        return 1;
    }
    enum boot_verdict bios = b->r->boot_bios ? boot_one(b, false, log) : BOOT_SKIPPED;
    enum boot_verdict uefi = b->r->boot_uefi ? boot_one(b, true, log) : BOOT_SKIPPED;
    int rc = fclose(log);
    char verdict[64];
    snprintf(verdict, sizeof(verdict), "bios=%s uefi=%s\n", bootcheck_verdict_name(bios),
             bootcheck_verdict_name(uefi));
    if (rc != 0 || build_write_text(b, WORK "/verdict", verdict, 0644) < 0) {
        if (rc != 0)
            build_fail(b, engine_errno_cause(errno), "cannot write \"%s\": %s", WORK "/boot.log", strerror(errno));
        proto_emit_error(b, err);
        return 1;
    }
    return 0;
}

/* ---- on the host ----------------------------------------------------------------------- */

/* In the supervisor: the verdict into out, the console log to out_dir/boot.log, no link followed. */
static int bootcheck_collect(int diskfd, void *arg, char *out, size_t outlen, char *err, size_t errlen)
{
    struct build *b = arg;
    _cleanup_close_ int vfd = sandbox_open_beneath(diskfd, "verdict", O_RDONLY);
    _cleanup_close_ int lfd = sandbox_open_beneath(diskfd, "boot.log", O_RDONLY);
    if (vfd < 0 || lfd < 0) {
        snprintf(err, errlen, "the boot check left no verdict and console log: %s", strerror(errno));
        return -1;
    }
    ssize_t n = read(vfd, out, outlen - 1);
    out[n > 0 ? n : 0] = '\0';
    _cleanup_free_ char *path = xasprintf("%s/boot.log", b->out_dir);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || copy_fd(lfd, fd) < 0) {
        snprintf(err, errlen, "cannot copy the console log to \"%s\": %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* The sandbox's limits for the check: the configuration's, with time for both boots and a small disk. */
static int boot_limits(struct build *b, struct sandbox_limits *l)
{
    sandbox_limits_from_config(b->o->cfg, l);
    unsigned need = guest_mb(b) + QEMU_OVERHEAD_MB;
    if (l->memory_mb < need)
        return build_fail(b, ENGINE_E_LIMIT,
                          "the boot check needs sandbox_memory_mb of at least %u (QEMU's guest has %u MiB), not %u",
                          need, guest_mb(b), l->memory_mb);
    l->wall_s = 2 * boot_timeout(b) + 120;
    if (l->disk_mb > BOOT_DISK_MB)
        l->disk_mb = BOOT_DISK_MB;
    return 0;
}

static int boot_verdict(struct build *b, const struct sandbox_result *sr, struct engine_result *res)
{
    switch (sr->cause) {
    case SANDBOX_OK:
        if (bootcheck_parse_verdict(sr->collected, &res->boot) < 0)
            return build_fail(b, ENGINE_E_FAILED, "the boot check's verdict \"%s\" is not one", sr->collected);
        return 0;
    case SANDBOX_CANCELLED:
        return build_fail(b, ENGINE_E_INTERRUPTED, "interrupted: the build stopped during its boot check and "
                          "nothing was written to \"%s\"", b->o->output);
    case SANDBOX_EXITED:
        return build_fail(b, b->error ? b->cause : ENGINE_E_FAILED, "the boot check: %s",
                          b->error ? b->error : "it stopped");
    case SANDBOX_COLLECT:
        return build_fail(b, ENGINE_E_FAILED, "cannot read the boot check's results back: %s", sr->message);
    default:
        return build_fail(b, sr->cause == SANDBOX_SIGNALED ? ENGINE_E_FAILED : ENGINE_E_LIMIT,
                          "the boot check: %s; its last output:\n%s", sr->message, b->log_tail);
    }
}

int bootcheck_run(struct build *b, struct engine_result *res)
{
    struct sandbox_bind iso = {.host = b->out_dir, .inside = ISO_DIR};
    _cleanup_free_ char *work = xasprintf("%s/boot", b->work);
    if (mkdir(work, 0700) < 0)
        return build_fail(b, engine_errno_cause(errno), "cannot create \"%s\": %s", work, strerror(errno));
    /* The ISO is read by the sandbox's ids. */
    _cleanup_free_ char *image = xasprintf("%s/image.iso", b->out_dir);
    if (chmod(b->out_dir, 0755) < 0 || chmod(image, 0644) < 0)
        return build_fail(b, ENGINE_E_FAILED, "cannot open \"%s\" to the boot check: %s", image, strerror(errno));
    struct sandbox_opts so = {.workdir = work, .binds = &iso, .nbinds = 1, .id_base = b->o->cfg->sandbox_id_base,
                              .env = build_tool_env(b, false), .hostname = "debate-boot",
                              .payload = bootcheck_payload, .arg = b, .on_output = proto_host_output,
                              .output_arg = b, .collect = bootcheck_collect, .collect_arg = b,
                              .cancel = b->o->interrupted};
    if (boot_limits(b, &so.limits) < 0)
        return -1;
    char desc[768];
    sandbox_describe(&so, desc, sizeof(desc));
    build_progress(b, STAGE_BOOTING, 0, "boot check: %s", desc);
    uint64_t start = clock_monotonic_ms();
    struct sandbox_result sr;
    char serr[1024];
    if (sandbox_run(&so, &sr, serr, sizeof(serr)) < 0)
        return build_fail(b, ENGINE_E_FAILED, "the boot check's sandbox could not be set up: %s", serr);
    proto_host_finish(b);
    res->boot.seconds = (long long)((clock_monotonic_ms() - start + 500) / 1000);
    return boot_verdict(b, &sr, res);
}
