/* The progress bar's line (src/cmd/progress.c) and the printable rule (src/cmd/cmd.c). */
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/progress.h"
#include "harness.h"

/* Code points in s, and true when no sequence is cut short at its end. */
static size_t columns(const char *s, bool *whole)
{
    size_t n = 0, need = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xc0) == 0x80) {
            need -= need > 0;
            continue;
        }
        n++;
        need = *p >= 0xf0 ? 3 : *p >= 0xe0 ? 2 : *p >= 0xc0 ? 1 : 0;
    }
    *whole = need == 0;
    return n;
}

TEST(progress_line_fits_the_terminal_and_cuts_between_characters)
{
    char message[256] = "";
    for (int i = 0; i < 40; i++)
        strcat(message, i % 3 ? "\xc3\xa9" : "\xe2\x82\xac"); /* é and €: two and three bytes */
    for (int width = 1; width <= 200; width++) {
        char line[4096];
        bool whole;
        progress_format(line, sizeof(line), width, "squashfs", 72, message);
        size_t cols = columns(line, &whole);
        if (cols > (size_t)(width > 1 ? width - 1 : 0) || !whole)
            harness_fail(__FILE__, __LINE__, "%d columns: %zu columns, %s: \"%s\"", width, cols,
                         whole ? "whole" : "a character cut", line);
    }
}

TEST(progress_line_shows_bar_percent_stage_and_message)
{
    char line[4096];
    progress_format(line, sizeof(line), 120, "rootfs", 50, "installing");
    CHECK_STR(line, "[###############...............]  50% rootfs      installing");
    progress_format(line, sizeof(line), 80, "done", 100, "tiny.iso");
    CHECK_STR(line, "[####################] 100% done        tiny.iso");
}

TEST(progress_line_shows_control_characters_as_question_marks)
{
    char line[4096];
    progress_format(line, sizeof(line), 120, "ro\033tfs", 0, "a\033]0;x\007b\tc\177");
    CHECK_STR(line, "[..............................]   0% ro?tfs      a?]0;x?b\tc?");
}

TEST(cmd_printable_keeps_text_and_tab)
{
    char s[] = "caf\xc3\xa9\t\r\n\033[2J\177~";
    cmd_printable(s, strlen(s));
    CHECK_STR(s, "caf\xc3\xa9\t???[2J?~");
}
