/*
 * Dropping root for good: the identity `debate serve` gives its front door
 * (the process that parses requests from the network), and the steps that
 * take everything else away.
 *
 * privdrop_lookup picks the user: the configured one, else "debate" when
 * that user exists, else "nobody" (a fresh machine has no debate user and
 * `make run` must still work). privdrop_apply then, in this order: drops
 * every capability from the bounding set and clears the ambient set (both
 * need CAP_SETPCAP, so before the uid changes), sets the groups to the
 * user's primary group alone, the real, effective and saved gid and uid to
 * the user's, makes sure no capability is left in the permitted,
 * effective or inheritable sets, and sets no_new_privs, so that no
 * execve (setuid binary, file capabilities) can give any of it back.
 *
 * Threads: privdrop_apply changes the credentials of the calling thread
 * only (the kernel's view; glibc's setresuid signals the others, but the
 * capability calls do not): call it before any thread is started.
 *
 * Errors: 0, or -1 with a message in err. A process whose privdrop_apply
 * failed may hold some of its privileges still: it must exit.
 */
#ifndef DEBATE_PRIVDROP_H
#define DEBATE_PRIVDROP_H

#include <stddef.h>
#include <sys/types.h>

struct privdrop_user {
    char name[64];
    uid_t uid;
    gid_t gid;
    int fallback; /* 1: no user was configured and "debate" does not exist */
};

/* Resolves name ("" or NULL: "debate" if it exists, else "nobody") into *u. Refuses uid 0. */
int privdrop_lookup(const char *name, struct privdrop_user *u, char *err, size_t errlen);

/* Becomes u for good: see the top of this file. */
int privdrop_apply(const struct privdrop_user *u, char *err, size_t errlen);

#endif
