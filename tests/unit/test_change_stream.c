/* test_change_stream.c — coalescing, ranges, ring and take() of the dirty set. */
#include "fs/change_stream.h"

#include "tests/lib/harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct change_entry *find(struct change_entry *e, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].path, path) == 0)
            return &e[i];
    return NULL;
}

START_TEST(coalesces_by_path_and_merges_ranges)
{
    struct change_stream *cs = change_stream_new(16);
    change_stream_note(cs, CHANGE_CREATE, "a", NULL, 0, 0);
    for (int i = 0; i < 10000; i++)
        change_stream_note(cs, CHANGE_WRITE, "a", NULL, 100 + i * 10, 10);
    change_stream_note(cs, CHANGE_WRITE, "a", NULL, 50, 5);
    change_stream_note(cs, CHANGE_MKDIR, "d", NULL, 0, 0);

    struct change_entry *e;
    size_t n;
    ck_assert(!change_stream_take(cs, &e, &n));
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(e[0].path, "a"); /* sorted by first event */
    ck_assert_uint_eq(e[0].kinds, CHANGE_CREATE | CHANGE_WRITE);
    ck_assert_uint_eq(e[0].nevents, 10002);
    ck_assert_int_eq(e[0].lo, 50);
    ck_assert_int_eq(e[0].hi, 100 + 9999 * 10 + 10);
    ck_assert_str_eq(e[1].path, "d");
    change_entries_free(e, n);

    ck_assert(!change_stream_take(cs, &e, &n));
    ck_assert_uint_eq(n, 0); /* take() empties the set */
    ck_assert_uint_eq(change_stream_seq(cs), 10003);
    change_stream_free(cs);
}
END_TEST

START_TEST(rename_keeps_source)
{
    struct change_stream *cs = change_stream_new(4);
    change_stream_note(cs, CHANGE_RENAME_FROM, "old", "new", 0, 0);
    change_stream_note(cs, CHANGE_RENAME_TO, "new", "old", 0, 0);
    struct change_entry *e;
    size_t n;
    change_stream_take(cs, &e, &n);
    ck_assert_uint_eq(n, 2);
    struct change_entry *to = find(e, n, "new");
    ck_assert_ptr_nonnull(to);
    ck_assert_str_eq(to->renamed_from, "old");
    ck_assert_ptr_null(find(e, n, "old")->renamed_from);
    change_entries_free(e, n);
    change_stream_free(cs);
}
END_TEST

struct collected {
    char seen[64][32];
    size_t n;
};

static void collect(const struct change_event *ev, void *arg)
{
    struct collected *c = arg;
    snprintf(c->seen[c->n++], 32, "%llu:%s", (unsigned long long)ev->seq, ev->path);
}

START_TEST(ring_keeps_newest_in_order)
{
    struct change_stream *cs = change_stream_new(3);
    const char *paths[] = {"p1", "p2", "p3", "p4", "p5"};
    for (int i = 0; i < 5; i++)
        change_stream_note(cs, CHANGE_ATTR, paths[i], NULL, 0, 0);
    struct collected c = {0};
    change_stream_recent(cs, 10, collect, &c);
    ck_assert_uint_eq(c.n, 3);
    ck_assert_str_eq(c.seen[0], "3:p3");
    ck_assert_str_eq(c.seen[2], "5:p5");
    c.n = 0;
    change_stream_recent(cs, 1, collect, &c);
    ck_assert_uint_eq(c.n, 1);
    ck_assert_str_eq(c.seen[0], "5:p5");
    change_stream_free(cs);
}
END_TEST

START_TEST(many_paths_grow_the_table)
{
    struct change_stream *cs = change_stream_new(8);
    char p[32];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 20000; i++) {
            snprintf(p, sizeof(p), "dir/f%d", i);
            change_stream_note(cs, CHANGE_WRITE, p, NULL, round, 1);
        }
    struct change_entry *e;
    size_t n;
    change_stream_take(cs, &e, &n);
    ck_assert_uint_eq(n, 20000);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(e[i].nevents, 2);
        ck_assert_int_eq(e[i].lo, 0);
        ck_assert_int_eq(e[i].hi, 2);
    }
    change_entries_free(e, n);
    change_stream_free(cs);
}
END_TEST

START_TEST(wait_times_out_then_sees_note)
{
    struct change_stream *cs = change_stream_new(8);
    ck_assert(!change_stream_wait(cs, 20));
    change_stream_note(cs, CHANGE_DELETE, "x", NULL, 0, 0);
    ck_assert(change_stream_wait(cs, 20));
    change_stream_request_rescan(cs);
    struct change_entry *e;
    size_t n;
    ck_assert(change_stream_take(cs, &e, &n)); /* rescan flag reported once */
    change_entries_free(e, n);
    ck_assert(!change_stream_take(cs, &e, &n));
    change_stream_free(cs);
}
END_TEST

START_TEST(kinds_format)
{
    char buf[64];
    change_kinds_format(CHANGE_CREATE | CHANGE_WRITE | CHANGE_OUTSIDE, buf, sizeof(buf));
    ck_assert_str_eq(buf, "create+write+outside");
    change_kinds_format(CHANGE_RENAME_TO, buf, 4);
    ck_assert_uint_lt(strlen(buf), 4);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("change_stream");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, coalesces_by_path_and_merges_ranges);
    tcase_add_test(tc, rename_keeps_source);
    tcase_add_test(tc, ring_keeps_newest_in_order);
    tcase_add_test(tc, many_paths_grow_the_table);
    tcase_add_test(tc, wait_times_out_then_sees_note);
    tcase_add_test(tc, kinds_format);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
