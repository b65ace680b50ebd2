/*
 * Running helper programs (initdb, pg_ctl, pg_dump, pg_restore): fork and
 * exec with an argument vector, never a shell; optionally as another user
 * (when running as root: PostgreSQL refuses to run as root); standard
 * output and error captured, the last PROC_TAIL bytes kept for messages.
 *
 * Errors: proc_run returns the exit status (0-255), 128+signal for a
 * killed child, or -1 when it could not be started (message in err).
 */
#ifndef DEBATE_PROC_H
#define DEBATE_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PROC_TAIL 4096

struct proc_opts {
    const char *user;       /* switch to this user when running as root; NULL: stay */
    const char *stdout_path; /* write standard output to this file (created 0600); NULL: capture */
    const char *stdin_path;  /* read standard input from this file; NULL: /dev/null */
    const char *const *env;  /* extra NAME=value entries, NULL-terminated; NULL: none */
    bool clean_env;          /* the environment is env alone, nothing inherited */
    unsigned timeout_s;      /* kill the program's whole process group after this long; 0: none */
    bool timed_out;          /* out: it was killed for running too long */
    /* Also handed every chunk of captured output as it comes; NULL: only the tail is kept. */
    void (*on_output)(void *arg, const char *buf, size_t n);
    void *output_arg;
    /*
     * Set by on_output when the program has said enough: its whole process
     * group is killed stop_ms milliseconds later (what it prints meanwhile
     * still arrives), and proc_run returns 128+SIGKILL with stopped set.
     */
    unsigned stop_ms;
    bool stop;
    bool stopped;            /* out: killed because on_output asked */
    char tail[PROC_TAIL + 1]; /* out: the end of what the program printed */
};

int proc_run(const char *const argv[], struct proc_opts *o, char *err, size_t errlen);

/* Looks a user up: 0, or -1 with a message. */
int proc_user_ids(const char *user, uid_t *uid, gid_t *gid, char *err, size_t errlen);

#endif
