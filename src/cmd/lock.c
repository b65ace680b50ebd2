/* debate lock: resolve a recipe's packages against the mirror into a lock (and, with --fetch, cache them). */
#include <stdio.h>
#include <stdlib.h>

#include "cmd/cmd.h"
#include "engine/lockdiff.h"
#include "engine/resolve.h"
#include "util.h"
#include "banned.h"

const struct cmd_usage cmd_lock_usage = {
    .name = "lock",
    .synopsis = "RECIPE [--mirror URL] [--security-mirror URL] [--against OLD] [--fetch] [--config FILE]",
    .summary = "resolve the recipe's packages and print the lock",
    .options = "  -c, --config FILE    read settings from FILE (default: $DEBATE_CONFIG)\n"
               "  -m, --mirror URL     the Debian mirror (default: the mirror setting, else\n"
               "                       apt's)\n"
               "      --security-mirror URL\n"
               "                       the security archive (default: the security_mirror\n"
               "                       setting, else apt's)\n"
               "      --against OLD    also print (on standard error) the packages that changed\n"
               "                       since OLD, a lock or a build's manifest\n"
               "      --fetch          download the packages into cache_dir too\n",
};

/* One package of a change: "1.2-3 (trixie-security)". */
static void print_side(const struct lock_pkg *p)
{
    fprintf(stderr, "%s (%s)", p->version, p->suite);
}

/* What changed since old (read from path): each package with its old and new version and suite. */
static void print_changes(const struct lock *old, const struct lock *now, const char *path)
{
    struct lock_change *changes;
    size_t n = lock_diff(old, now, &changes);
    if (n == 0)
        fprintf(stderr, "debate lock: no package changed since \"%s\"\n", path);
    else
        fprintf(stderr, "debate lock: %zu package%s changed since \"%s\":\n", n, n == 1 ? "" : "s", path);
    for (size_t i = 0; i < n; i++) {
        const struct lock_change *c = &changes[i];
        fprintf(stderr, "  %-8s %s ", c->old && c->new ? "changed" : c->new ? "added" : "removed",
                (c->new ? c->new : c->old)->name);
        if (c->old)
            print_side(c->old);
        if (c->old && c->new)
            fputs(" -> ", stderr);
        if (c->new)
            print_side(c->new);
        fputc('\n', stderr);
    }
    free(changes);
}

static int lock_run(const struct config *cfg, const struct recipe *r, const char *mirror, const char *security,
                    const char *against, bool fetch)
{
    char msg[2048];
    _cleanup_free_ char *default_mirror = resolve_default_mirror();
    _cleanup_free_ char *default_security = resolve_default_security_mirror();
    struct resolve_mirrors m = {
        .mirror = mirror ? mirror : cfg->mirror[0] ? cfg->mirror : default_mirror,
        .security_mirror = security ? security : cfg->security_mirror[0] ? cfg->security_mirror : default_security,
        .keyring = cfg->archive_keyring,
    };
    struct lock l, old = {0};
    /* The lock to compare with is read first: a wrong path is an error before anything is resolved. */
    if (against != NULL && lock_load_against(against, &old, msg, sizeof(msg)) < 0) {
        fprintf(stderr, "debate lock: --against %s\n", msg);
        return 1;
    }
    if (resolve_lock(r, &m, cfg->cache_dir, &l, msg, sizeof(msg)) != ENGINE_OK) {
        fprintf(stderr, "debate lock: %s\n", msg);
        lock_release(&old);
        return 1;
    }
    printf("%s\n", l.json);
    fprintf(stderr, "debate lock: %zu packages, lock_hash %s\n", l.npkgs, l.hash);
    if (against != NULL)
        print_changes(&old, &l, against);
    lock_release(&old);
    int rc = 0, fetched = 0;
    if (fetch && resolve_fetch(&l, cfg->cache_dir, &fetched, msg, sizeof(msg)) != ENGINE_OK) {
        fprintf(stderr, "debate lock: %s\n", msg);
        rc = 1;
    } else if (fetch) {
        fprintf(stderr, "debate lock: %d packages downloaded into \"%s/debs\"\n", fetched, cfg->cache_dir);
    }
    lock_release(&l);
    return rc;
}

int cmd_lock(int argc, char **argv)
{
    static const struct option opts[] = {{"mirror", required_argument, NULL, 'm'},
                                         {"security-mirror", required_argument, NULL, 's'},
                                         {"against", required_argument, NULL, 'a'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"fetch", no_argument, NULL, 'f'},
                                         CMD_OPTION_HELP,
                                         {NULL, 0, NULL, 0}};
    const char *mirror = NULL, *security = NULL, *against = NULL, *file = NULL;
    bool fetch = false;
    int c;
    while ((c = getopt_long(argc, argv, "m:c:h", opts, NULL)) != -1) {
        if (c == 'h')
            return cmd_help(&cmd_lock_usage);
        if (c == 'm')
            mirror = optarg;
        else if (c == 's')
            security = optarg;
        else if (c == 'a')
            against = optarg;
        else if (c == 'f')
            fetch = true;
        else if (c == 'c')
            file = optarg;
        else
            return cmd_usage_error(&cmd_lock_usage);
    }
    int rc = cmd_operands(&cmd_lock_usage, argc, argv, 1, "the recipe");
    if (rc >= 0)
        return rc;
    struct config cfg;
    struct recipe r;
    if (cmd_load_config(&cfg, file) < 0)
        return CMD_EXIT_CONFIG;
    rc = 1;
    if (cmd_load_recipe("lock", argv[optind], &r) == 0) {
        rc = lock_run(&cfg, &r, mirror, security, against, fetch);
        recipe_release(&r);
    }
    config_release(&cfg);
    return rc;
}
