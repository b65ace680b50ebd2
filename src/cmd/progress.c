/* A build's progress: a bar on a terminal, whole lines otherwise (see progress.h). */
#include "cmd/progress.h"

#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "banned.h"

/* The bar's share of the line: a third of what is left after the numbers, from 10 to 30 cells. */
#define BAR_MIN 10
#define BAR_MAX 30
/* "[" "] " "100% " and a stage of 11 and its space: what a line holds besides the bar and the message. */
#define LINE_FIXED 20
/* Wider than any terminal: a line this long in code points of at most 4 bytes fits LINE_MAX bytes. */
#define WIDTH_MAX 1000
#define LINE_MAX 4096

void progress_init(struct progress *p, const char *cmd, FILE *lines)
{
    memset(p, 0, sizeof(*p));
    p->cmd = cmd;
    p->lines = lines;
    p->bar = isatty(STDERR_FILENO) != 0;
}

/* Bytes of s that hold at most cols code points: the cut falls before a lead byte, never inside a sequence. */
static size_t utf8_prefix(const char *s, size_t cols)
{
    size_t i = 0, n = 0;
    for (; s[i] != '\0'; i++) {
        if (((unsigned char)s[i] & 0xc0) == 0x80)
            continue;
        if (n == cols)
            break;
        n++;
    }
    return i;
}

void progress_format(char *out, size_t outlen, int width, const char *stage, int pct, const char *message)
{
    width = width > WIDTH_MAX ? WIDTH_MAX : width;
    int cells = (width - LINE_FIXED) / 3;
    cells = cells < BAR_MIN ? BAR_MIN : cells > BAR_MAX ? BAR_MAX : cells;
    int filled = pct * cells / 100;
    char bar[BAR_MAX + 1];
    for (int i = 0; i < cells; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[cells] = '\0';
    char line[LINE_MAX];
    snprintf(line, sizeof(line), "[%s] %3d%% %-11s %s", bar, pct, stage, message);
    size_t keep = utf8_prefix(line, width > 1 ? (size_t)width - 1 : 0);
    line[keep] = '\0';
    cmd_printable(line, keep);
    snprintf(out, outlen, "%s", line);
}

/* The terminal's width, asked each time: it may have been resized since. */
static int terminal_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0)
        return 80;
    return ws.ws_col;
}

void progress_show(struct progress *p, const char *stage, int pct, const char *message)
{
    if (!p->bar) {
        cmd_print(p->lines, "debate %s: %3d%% %-11s %s\n", p->cmd, pct, stage, message);
        fflush(p->lines);
        return;
    }
    char line[LINE_MAX];
    progress_format(line, sizeof(line), terminal_width(), stage, pct, message);
    if (p->drawn && strcmp(stage, p->stage) != 0)
        fputc('\n', stderr); /* each stage keeps its own finished line */
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    snprintf(p->stage, sizeof(p->stage), "%s", stage);
    p->drawn = true;
}

void progress_end(struct progress *p)
{
    if (p->drawn)
        fputc('\n', stderr);
    p->drawn = false;
}
