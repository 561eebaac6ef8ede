/*
 * test_progress.c — the progress line: what it says at each phase (files,
 * bytes, rate, ETA from the chunks the far side still wants), and that
 * `wsync push` draws it on a terminal and never into a pipe.
 */
#include "cli/progress.h"
#include "tests/lib/harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSERT_HAS(text, needle)                                                                   \
    ck_assert_msg(strstr((text), (needle)), "'%s' lacks '%s'", (text), (needle))

START_TEST(data_phase_has_total_rate_and_eta)
{
    /* 10 of 40 chunks of 1 MiB sent in the 2 s since the data phase began. */
    struct push_progress pp = {.phase = "data",
                               .files = 7,
                               .chunks_sent = 10,
                               .chunks_wanted = 40,
                               .data_bytes = 10 << 20,
                               .seconds = 3};
    char buf[256];
    progress_format(&pp, 1.0, buf, sizeof(buf));
    ASSERT_HAS(buf, "7 files");
    ASSERT_HAS(buf, "10.0 MiB of 40.0 MiB");
    ASSERT_HAS(buf, "(10/40 chunks)");
    ASSERT_HAS(buf, "5.0 MiB/s");
    ASSERT_HAS(buf, "ETA 0:06"); /* 30 MiB left at 5 MiB/s */
}
END_TEST

START_TEST(long_etas_have_hours_and_unknown_is_a_question_mark)
{
    struct push_progress pp = {.phase = "data",
                               .chunks_sent = 1,
                               .chunks_wanted = 100001,
                               .data_bytes = 1 << 20,
                               .seconds = 11};
    char buf[256];
    progress_format(&pp, 1.0, buf, sizeof(buf)); /* 100000 MiB at 0.1 MiB/s */
    ASSERT_HAS(buf, "ETA 277:46:40");
    pp.chunks_sent = 0;
    pp.data_bytes = 0;
    progress_format(&pp, 1.0, buf, sizeof(buf));
    ASSERT_HAS(buf, "ETA ?");
}
END_TEST

START_TEST(other_phases_and_the_last_line_have_no_eta)
{
    struct push_progress pp = {.phase = "sending", .files = 1234, .seconds = 65};
    char buf[256];
    progress_format(&pp, -1, buf, sizeof(buf));
    ASSERT_HAS(buf, "sending");
    ASSERT_HAS(buf, "1234 files");
    ASSERT_HAS(buf, "1:05");
    ck_assert_ptr_null(strstr(buf, "ETA"));
    pp = (struct push_progress){.phase = "done",
                                .done = true,
                                .files = 3,
                                .chunks_sent = 4,
                                .chunks_wanted = 4,
                                .data_bytes = 3ull << 30,
                                .seconds = 4};
    progress_format(&pp, 1.0, buf, sizeof(buf));
    ASSERT_HAS(buf, "3.00 GiB sent, 1.00 GiB/s");
    ck_assert_ptr_null(strstr(buf, "ETA"));
}
END_TEST

START_TEST(push_draws_on_a_terminal_only)
{
    struct wmount m;
    wm_prepare(&m);
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/big", m.src);
    ck_assert_int_eq(wm_sh("head -c 3000000 /dev/urandom > '%s'", p), 0);
    int st;
    /* A terminal: script(1) gives push a pty. */
    char *out = wm_sh_out(&st, "script -qfec \"'%s' push '%s' '%s/tty'\" /dev/null", wm_bin(),
                          m.src, m.root);
    ck_assert_msg(st == 0, "push on a pty: exit %d: %s", st, out);
    ASSERT_HAS(out, "\rdone ");
    ASSERT_HAS(out, "MiB sent");
    free(out);
    /* A pipe: the summary only, no \r anywhere. */
    out = wm_sh_out(&st, "'%s' push '%s' '%s/pipe' 2>&1", wm_bin(), m.src, m.root);
    ck_assert_msg(st == 0, "push into a pipe: exit %d: %s", st, out);
    ck_assert_msg(strchr(out, '\r') == NULL, "a progress line in a pipe: %s", out);
    free(out);
    wm_teardown(&m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("progress");
    TCase *tc = tcase_create("progress");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, data_phase_has_total_rate_and_eta);
    tcase_add_test(tc, long_etas_have_hours_and_unknown_is_a_question_mark);
    tcase_add_test(tc, other_phases_and_the_last_line_have_no_eta);
    tcase_add_test(tc, push_draws_on_a_terminal_only);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
