/* debate build: one ISO from a recipe, built here in the sandbox, with its progress on the terminal. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/progress.h"
#include "engine/engine.h"
#include "engine/sandbox.h"
#include "util.h"
#include "banned.h"

const struct cmd_usage cmd_build_usage = {
    .name = "build",
    .synopsis = "RECIPE -o OUT.iso [--lock LOCK] [--mirror URL] [--security-mirror URL] [--hook-timeout SECONDS] "
                "[--timeout SECONDS] [--boot-check] [--cold] [--config FILE]",
    .summary = "build the ISO and its manifest in the sandbox; needs root",
    .options = "  -o, --output FILE    write the ISO to FILE, its manifest to FILE.manifest.json\n"
               "                       (required)\n"
               "  -c, --config FILE    read settings from FILE (default: $DEBATE_CONFIG)\n"
               "      --lock LOCK      install exactly the packages of this lock (debate lock)\n"
               "  -m, --mirror URL     the Debian mirror (default: the mirror setting, else\n"
               "                       apt's)\n"
               "      --security-mirror URL\n"
               "                       the security archive (default: the security_mirror\n"
               "                       setting, else apt's)\n"
               "      --hook-timeout SECONDS\n"
               "                       time limit of each hook, 1 to 86400 (default: 300)\n"
               "      --timeout SECONDS\n"
               "                       wall-time limit of the build (default: the\n"
               "                       build_timeout setting)\n"
               "      --boot-check     boot the ISO under QEMU with each firmware it is made\n"
               "                       for; its verdict goes to the manifest, its console to\n"
               "                       OUT.iso.boot.log; exit status 3 when a boot fails\n"
               "      --cold           install the packages even when a base layer of the same\n"
               "                       packages is cached (the package cache is still used)\n",
};

/* debate build's exit status when the ISO was built but did not boot. */
#define BUILD_EXIT_BOOT_FAILED 3
/* The console shown when a boot check fails: enough for a kernel panic's message and its call trace. */
#define BUILD_BOOT_TAIL 4096

static volatile sig_atomic_t build_interrupted;

static void build_on_signal(int sig)
{
    (void)sig;
    build_interrupted = 1;
}

/* The engine's events into the view: the bar on a terminal, else lines on standard output (docs/recipes.md). */
static void build_show_progress(void *arg, enum engine_stage stage, int pct, const char *message)
{
    progress_show(arg, engine_stage_name(stage), pct, message);
}

/* The boot check's verdict; when a boot failed, the end of its console on standard error. */
static int build_report_boot(const char *output, const struct bootcheck_result *boot)
{
    printf("boot check: bios %s, uefi %s (%lld s)\n", bootcheck_verdict_name(boot->bios),
           bootcheck_verdict_name(boot->uefi), boot->seconds);
    if (bootcheck_passed(boot))
        return 0;
    _cleanup_free_ char *path = xasprintf("%s.boot.log", output);
    _cleanup_free_ char *log = NULL;
    size_t len = 0;
    if (read_file(path, 1u << 20, &log, &len) < 0)
        log = xstrdup("");
    const char *tail = log;
    if (len > BUILD_BOOT_TAIL) {
        tail = log + len - BUILD_BOOT_TAIL;
        const char *nl = strchr(tail, '\n'); /* from the start of a line */
        tail = nl != NULL ? nl + 1 : tail;
    }
    fprintf(stderr, "debate build: the boot check failed (the ISO is at \"%s\", the console in \"%s\"); "
                    "the console's last lines:\n%s", output, path, tail);
    return BUILD_EXIT_BOOT_FAILED;
}

static int build_run(const struct config *cfg, const struct recipe *r, struct engine_opts *o)
{
    char msg[4096];
    sandbox_prepare_cgroups();
    cmd_trap_signals(build_on_signal, 0);
    struct progress view;
    progress_init(&view, "build", stdout);
    o->cfg = cfg;
    o->progress = build_show_progress;
    o->progress_arg = &view;
    o->interrupted = &build_interrupted;
    struct engine_result res;
    enum engine_error rc = engine_build(r, o, &res, msg, sizeof(msg));
    progress_end(&view);
    if (rc != ENGINE_OK) {
        fprintf(stderr, "debate build: %s\n", msg);
        return 1;
    }
    printf("%s  %s\n", res.iso_sha256, o->output);
    return res.boot.checked ? build_report_boot(o->output, &res.boot) : 0;
}

int cmd_build(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"mirror", required_argument, NULL, 'm'},
                                         {"security-mirror", required_argument, NULL, 's'},
                                         {"hook-timeout", required_argument, NULL, 't'},
                                         {"lock", required_argument, NULL, 'l'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {"boot-check", no_argument, NULL, 'B'},
                                         {"cold", no_argument, NULL, 'C'},
                                         CMD_OPTION_HELP,
                                         {NULL, 0, NULL, 0}};
    struct engine_opts o = {.hook_timeout_s = 300};
    const char *file = NULL;
    bool ok = true;
    int c;
    while ((c = getopt_long(argc, argv, "o:c:m:h", opts, NULL)) != -1) {
        if (c == 'h')
            return cmd_help(&cmd_build_usage);
        if (c == 'o')
            o.output = optarg;
        else if (c == 'c')
            file = optarg;
        else if (c == 'm')
            o.mirror = optarg;
        else if (c == 's')
            o.security_mirror = optarg;
        else if (c == 'l')
            o.lock_path = optarg;
        else if (c == 'B')
            o.boot_check = true;
        else if (c == 'C')
            o.cold = true;
        else if (c == 't' && !cmd_parse_uint(optarg, 86400, &o.hook_timeout_s))
            return cmd_bad_number(&cmd_build_usage, "--hook-timeout", 86400, optarg);
        else if (c == 'T' && !cmd_parse_uint(optarg, 1000000000, &o.timeout_s))
            return cmd_bad_number(&cmd_build_usage, "--timeout", 1000000000, optarg);
        else if (c != 't' && c != 'T')
            ok = false;
    }
    if (!ok)
        return cmd_usage_error(&cmd_build_usage);
    int rc = cmd_operands(&cmd_build_usage, argc, argv, 1, "the recipe");
    if (rc >= 0)
        return rc;
    if (o.output == NULL)
        return cmd_usage_fail(&cmd_build_usage, "-o OUT.iso is required");
    if (geteuid() != 0) {
        fprintf(stderr, "debate build: must run as root (it builds in namespaces of its own)\n");
        return 1;
    }
    struct config cfg;
    struct recipe r;
    if (cmd_load_config(&cfg, file) < 0)
        return CMD_EXIT_CONFIG;
    rc = 1;
    if (cmd_load_recipe("build", argv[optind], &r) == 0) {
        const char *refusal = o.boot_check ? bootcheck_refusal(&r) : NULL;
        if (refusal != NULL)
            fprintf(stderr, "debate build: --boot-check: %s\n", refusal);
        else
            rc = build_run(&cfg, &r, &o);
        recipe_release(&r);
    }
    config_release(&cfg);
    return rc;
}
