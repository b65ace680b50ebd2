/* privdrop: the front door's user, and the drop itself (in the test's own process, as root). */
#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "harness.h"
#include "privdrop.h"
#include "util.h"

/* A "Name:\tvalue" field of /proc/self/status (malloc'd). */
static char *status_field(const char *name)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    CHECK_INT(read_file("/proc/self/status", 1 << 16, &text, &len), 0);
    _cleanup_free_ char *key = xasprintf("\n%s:\t", name);
    char *at = strstr(text, key);
    CHECK(at != NULL);
    at += strlen(key);
    return xstrndup(at, strcspn(at, "\n"));
}

TEST(an_unknown_user_is_refused_by_name)
{
    struct privdrop_user u;
    char err[256];
    CHECK_INT(privdrop_lookup("no-such-user-here", &u, err, sizeof(err)), -1);
    CHECK_STR(err, "no user \"no-such-user-here\" on this system (the \"user\" setting)");
}

TEST(root_is_refused_as_the_front_doors_user)
{
    struct privdrop_user u;
    char err[256];
    CHECK_INT(privdrop_lookup("root", &u, err, sizeof(err)), -1);
    CHECK_STR(err, "user \"root\" is root or in group root: the front door must run unprivileged");
}

TEST(no_setting_means_debate_else_nobody)
{
    struct privdrop_user u;
    char err[256];
    CHECK_INT(privdrop_lookup("", &u, err, sizeof(err)), 0);
    CHECK(strcmp(u.name, "debate") == 0 || (strcmp(u.name, "nobody") == 0 && u.fallback));
    CHECK(u.uid != 0);
}

TEST(the_drop_leaves_no_capability_and_no_way_back)
{
    if (geteuid() != 0)
        SKIP("needs root");
    struct privdrop_user u;
    char err[256];
    CHECK_INT(privdrop_lookup("nobody", &u, err, sizeof(err)), 0);
    CHECK_INT(privdrop_apply(&u, err, sizeof(err)), 0);
    CHECK_INT(geteuid(), u.uid);
    CHECK_INT(getegid(), u.gid);
    CHECK(setresuid(0, 0, 0) < 0);
    CHECK(setgroups(0, NULL) < 0);
    const char *sets[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
    for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
        _cleanup_free_ char *v = status_field(sets[i]);
        CHECK_STR(v, "0000000000000000");
    }
    _cleanup_free_ char *nnp = status_field("NoNewPrivs");
    CHECK_STR(nnp, "1");
    CHECK_INT(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), 1);
}
