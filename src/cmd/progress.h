/*
 * The progress of a build as a person watches it, for debate build (the
 * engine's events) and debate submit --wait (the server's): one helper, so
 * both look alike.
 *
 * When standard error is a terminal, a bar by stage on it: each stage keeps
 * its own line, redrawn in place ("\r" and erase to the end of the line),
 * cut to the terminal's width (TIOCGWINSZ, else 80 columns) at a UTF-8
 * boundary, so a narrow terminal never wraps it into a trail of copies.
 * Otherwise one whole line per event on the stream the command chose
 * ("debate build:  72% squashfs    message"): build's go to standard output
 * (docs/recipes.md), submit's to standard error (its standard output is
 * the build id).
 *
 * The stage and message are someone else's text: on a terminal their
 * control characters are shown as '?' (see cmd_printable).
 *
 * Main thread only. No allocation: init, show as often as events come, end.
 */
#ifndef DEBATE_CMD_PROGRESS_H
#define DEBATE_CMD_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct progress {
    const char *cmd; /* "build": the prefix of the plain lines */
    FILE *lines;     /* where the plain lines go */
    bool bar;        /* standard error is a terminal: draw the bar there */
    bool drawn;      /* a bar is on the line: progress_end ends it */
    char stage[32];  /* the stage the bar shows */
};

/* Starts the view of a build for "debate CMD"; plain lines go to lines when there is no bar. */
void progress_init(struct progress *p, const char *cmd, FILE *lines);
/* One event: pct from 0 to 100 of the whole build, in stage, saying message. */
void progress_show(struct progress *p, const char *stage, int pct, const char *message);
/* Ends the bar's line, so that what follows starts on a line of its own. */
void progress_end(struct progress *p);

/*
 * The bar's text (without "\r" and the erase) for a terminal width columns
 * wide, into out: "[####......]  42% rootfs      message", at most
 * width - 1 columns (the last column would wrap), a column a code point,
 * cut before a code point, never inside one; control characters as '?'.
 */
void progress_format(char *out, size_t outlen, int width, const char *stage, int pct, const char *message);

#endif
