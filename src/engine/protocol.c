/*
 * The line protocol between a build's sandbox and its host (see
 * engine_int.h): the payload writes P, L and E lines to its standard
 * output; the host splits them back into progress callbacks, log lines and
 * the error, and keeps the tail of the log for a message when the sandbox
 * kills the build. A line longer than 8 KiB is cut: a hostile build cannot
 * make the host hoard memory.
 */
#include "engine/engine_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

/* Overall percent at the start of each stage. */
static const int stage_start[] = {0, 5, 15, 35, 45, 70, 80, 90, 95, 100};

void build_progress(struct build *b, enum engine_stage stage, int within, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int span = stage_start[stage + (stage < STAGE_DONE)] - stage_start[stage];
    int pct = stage_start[stage] + span * within / 100;
    if (b->progress_fd >= 0) {
        char line[800];
        int n = snprintf(line, sizeof(line), "P %d %d %s\n", stage, pct, msg);
        ssize_t unused = write(b->progress_fd, line, (size_t)n);
        (void)unused;
    } else if (b->o->progress != NULL) {
        b->o->progress(b->o->progress_arg, stage, pct, msg);
    }
}

/*
 * Inside the sandbox: a tool's output, line by line, as "L line" on the
 * progress pipe, so the build log survives a build the sandbox kills.
 */
void proto_log_output(void *arg, const char *buf, size_t n)
{
    struct build *b = arg;
    for (size_t i = 0; i < n; i++) {
        bool end = buf[i] == '\n';
        if (!end && b->tool_line_len < sizeof(b->tool_line) - 1)
            b->tool_line[b->tool_line_len++] = buf[i] == '\r' ? ' ' : buf[i];
        if (!end)
            continue;
        char line[sizeof(b->tool_line) + 3];
        int len = snprintf(line, sizeof(line), "L %.*s\n", (int)b->tool_line_len, b->tool_line);
        ssize_t unused = write(b->progress_fd, line, (size_t)len);
        (void)unused;
        b->tool_line_len = 0;
    }
}

/* The last line of a tool that did not end it. */
void proto_flush_log(struct build *b)
{
    if (b->tool_line_len > 0 && b->progress_fd >= 0)
        proto_log_output(b, "\n", 1);
}

void proto_emit_error(struct build *b, const char *err)
{
    char line[2100];
    int n = snprintf(line, sizeof(line), "E %d %s\n", (int)b->cause, err);
    ssize_t unused = write(b->progress_fd, line, (size_t)n);
    (void)unused;
}

/* One line of the sandbox's output, on the host: build_progress, or the start of the error. */
void proto_host_line(struct build *b, char *line)
{
    if (b->error != NULL) {
        char *grown = xasprintf("%s\n%s", b->error, line);
        free(b->error);
        b->error = grown;
    } else if (line[0] == 'L' && line[1] == ' ') {
        const char *text = line + 2;
        size_t n = strlen(text) + 1, cap = sizeof(b->log_tail) - 1;
        if (n > cap)
            text += n - cap, n = cap;
        if (b->log_tail_len + n > cap) { /* keep the end */
            size_t drop = b->log_tail_len + n - cap;
            memmove(b->log_tail, b->log_tail + drop, b->log_tail_len - drop);
            b->log_tail_len -= drop;
        }
        memcpy(b->log_tail + b->log_tail_len, text, n - 1);
        b->log_tail[b->log_tail_len + n - 1] = '\n';
        b->log_tail_len += n;
        b->log_tail[b->log_tail_len] = '\0';
        if (b->o->log != NULL)
            b->o->log(b->o->progress_arg, text);
    } else if (line[0] == 'E' && line[1] == ' ') {
        int cause = 0, off = 0;
        if (sscanf(line, "E %d %n", &cause, &off) < 1 || off == 0 || cause <= ENGINE_OK || cause > ENGINE_ERROR_MAX)
            cause = ENGINE_E_FAILED, off = 2;
        b->cause = (enum engine_error)cause;
        b->error = xstrdup(line + off); /* the error may span lines: everything that follows */
    } else if (line[0] == 'P') {
        int stage, pct, off = 0;
        if (sscanf(line, "P %d %d %n", &stage, &pct, &off) >= 2 && off > 0 && stage >= 0 && stage <= STAGE_DONE &&
            pct >= 0 && pct <= 100) {
            snprintf(b->last_step, sizeof(b->last_step), "%s", line + off);
            if (b->o->progress != NULL)
                b->o->progress(b->o->progress_arg, (enum engine_stage)stage, pct, line + off);
        }
    }
}

void proto_host_output(void *arg, const char *buf, size_t n)
{
    struct build *b = arg;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] != '\n') {
            if (b->line_len < 8192) { /* a longer line is cut: the sandbox cannot make us hoard */
                b->line = xrealloc(b->line, b->line_len + 2);
                b->line[b->line_len++] = buf[i];
            }
            continue;
        }
        b->line = xrealloc(b->line, b->line_len + 1);
        b->line[b->line_len] = '\0';
        proto_host_line(b, b->line);
        b->line_len = 0;
    }
}

void proto_host_finish(struct build *b)
{
    if (b->line_len > 0) {
        b->line[b->line_len] = '\0';
        proto_host_line(b, b->line);
        b->line_len = 0;
    }
}
