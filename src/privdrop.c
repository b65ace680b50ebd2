#include "privdrop.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

#define PRIVDROP_DEFAULT "debate"
#define PRIVDROP_FALLBACK "nobody"

static int lookup_one(const char *name, struct privdrop_user *u)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    if (getpwnam_r(name, &pw, buf, sizeof(buf), &found) != 0 || found == NULL)
        return -1;
    snprintf(u->name, sizeof(u->name), "%s", found->pw_name);
    u->uid = found->pw_uid;
    u->gid = found->pw_gid;
    return 0;
}

int privdrop_lookup(const char *name, struct privdrop_user *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    bool configured = name != NULL && name[0] != '\0';
    if (configured) {
        if (lookup_one(name, u) < 0) {
            snprintf(err, errlen, "no user \"%s\" on this system (the \"user\" setting)", name);
            return -1;
        }
    } else if (lookup_one(PRIVDROP_DEFAULT, u) < 0) {
        if (lookup_one(PRIVDROP_FALLBACK, u) < 0) {
            snprintf(err, errlen, "neither user \"" PRIVDROP_DEFAULT "\" nor \"" PRIVDROP_FALLBACK
                                  "\" exists: create a system user \"" PRIVDROP_DEFAULT "\" or set \"user\"");
            return -1;
        }
        u->fallback = 1;
    }
    if (u->uid == 0 || u->gid == 0) {
        snprintf(err, errlen, "user \"%s\" is root or in group root: the front door must run unprivileged", u->name);
        return -1;
    }
    return 0;
}

/* The highest capability this kernel knows (it may know more than the headers we were built with). */
static unsigned long cap_last(void)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    if (read_file("/proc/sys/kernel/cap_last_cap", 64, &text, &len) == 0)
        return strtoul(text, NULL, 10);
    return CAP_LAST_CAP;
}

/* Empties the bounding and ambient sets; needs CAP_SETPCAP, so runs while still root. */
static int drop_bounding(char *err, size_t errlen)
{
    unsigned long last = cap_last();
    for (unsigned long cap = 0; cap <= last; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
            snprintf(err, errlen, "cannot drop capability %lu from the bounding set: %s", cap, strerror(errno));
            return -1;
        }
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
        snprintf(err, errlen, "cannot clear the ambient capabilities: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Clears permitted, effective and inheritable (the uid change cleared the first two already; say so to the kernel). */
static int clear_sets(char *err, size_t errlen)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &hdr, data) < 0) {
        snprintf(err, errlen, "cannot clear the capability sets: %s", strerror(errno));
        return -1;
    }
    if (syscall(SYS_capget, &hdr, data) < 0 || data[0].effective || data[0].permitted || data[1].effective ||
        data[1].permitted) {
        snprintf(err, errlen, "capabilities remain after dropping them");
        return -1;
    }
    return 0;
}

int privdrop_apply(const struct privdrop_user *u, char *err, size_t errlen)
{
    if (drop_bounding(err, errlen) < 0)
        return -1;
    if (setgroups(1, &u->gid) < 0 || setresgid(u->gid, u->gid, u->gid) < 0 || setresuid(u->uid, u->uid, u->uid) < 0) {
        snprintf(err, errlen, "cannot become user \"%s\": %s", u->name, strerror(errno));
        return -1;
    }
    /* A way back would mean the drop did not happen. */
    if (setresuid(0, 0, 0) == 0 || geteuid() != u->uid || getegid() != u->gid) {
        snprintf(err, errlen, "the switch to user \"%s\" did not hold", u->name);
        return -1;
    }
    if (clear_sets(err, errlen) < 0)
        return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        snprintf(err, errlen, "cannot set no_new_privs: %s", strerror(errno));
        return -1;
    }
    return 0;
}
