/* test_hold.c — which entries sync/hold.c keeps back, merges and releases,
 * on real files in a temp dir with their mtimes set. */
#include "sync/hold.h"

#include "tests/lib/harness.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[PATH_MAX];
static int dfd = -1;
static const int64_t T0 = 1700000000000; /* ms: the files' mtime */

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/wsync-hold-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    dfd = open(dir, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(dfd, 0);
}

static void teardown(void)
{
    close(dfd);
    wm_rm_rf(dir);
}

/* A file of `size` bytes (sparse) with mtime T0. */
static void make(const char *name, off_t size)
{
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, size), 0);
    struct timespec ts[2] = {{.tv_sec = T0 / 1000}, {.tv_sec = T0 / 1000}};
    ck_assert_int_eq(futimens(fd, ts), 0);
    close(fd);
}

static struct change_entry entry(const char *path, uint32_t kinds, uint64_t seq, off_t lo, off_t hi)
{
    return (struct change_entry){.path = strdup(path),
                                 .kinds = kinds,
                                 .first_seq = seq,
                                 .last_seq = seq,
                                 .nevents = 1,
                                 .lo = lo,
                                 .hi = hi};
}

START_TEST(big_recent_write_is_held_then_released_merged)
{
    make("big", HOLD_MIN_BYTES);
    make("small", HOLD_MIN_BYTES - 1);
    struct hold *h = hold_new(dfd);
    size_t n = 3;
    struct change_entry *e = malloc(n * sizeof(*e));
    e[0] = entry("big", CHANGE_WRITE, 5, 0, 100);
    e[1] = entry("small", CHANGE_WRITE, 6, 0, 100);
    e[2] = entry("gone", CHANGE_WRITE, 7, 0, 100);
    ck_assert_int_eq(hold_filter(h, &e, &n, T0 + 500, false), 0);
    ck_assert_uint_eq(n, 2); /* small and gone go on */
    ck_assert_str_eq(e[0].path, "small");
    ck_assert_str_eq(e[1].path, "gone");
    ck_assert_uint_eq(hold_count(h), 1);
    ck_assert_uint_eq(hold_min_seq(h), 5);
    change_entries_free(e, n);

    /* More writes to it while still recent: merged into the held one. */
    n = 1;
    e = malloc(sizeof(*e));
    e[0] = entry("big", CHANGE_WRITE, 9, 1000, 2000);
    ck_assert_int_eq(hold_filter(h, &e, &n, T0 + 900, false), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(hold_count(h), 1);
    ck_assert_uint_eq(hold_min_seq(h), 5);
    change_entries_free(e, n);

    /* Still for HOLD_RECENT_MS: released with one merged entry. */
    n = 0;
    e = NULL;
    ck_assert_int_eq(hold_filter(h, &e, &n, T0 + HOLD_RECENT_MS, false), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(e[0].path, "big");
    ck_assert_uint_eq(e[0].first_seq, 5);
    ck_assert_uint_eq(e[0].nevents, 2);
    ck_assert_int_eq(e[0].lo, 0);
    ck_assert_int_eq(e[0].hi, 2000);
    ck_assert_uint_eq(hold_count(h), 0);
    ck_assert_uint_eq(hold_min_seq(h), 0);
    change_entries_free(e, n);
    hold_free(h);
}
END_TEST

START_TEST(only_plain_data_changes_are_held)
{
    make("big", HOLD_MIN_BYTES);
    struct hold *h = hold_new(dfd);
    const uint32_t never[] = {CHANGE_RENAME_TO, CHANGE_DELETE, CHANGE_LOCAL, CHANGE_OUTSIDE,
                              CHANGE_MKDIR};
    for (size_t k = 0; k < sizeof(never) / sizeof(never[0]); k++) {
        size_t n = 1;
        struct change_entry *e = malloc(sizeof(*e));
        e[0] = entry("big", CHANGE_WRITE | never[k], 1, 0, 1);
        ck_assert_int_eq(hold_filter(h, &e, &n, T0, false), 0);
        ck_assert_msg(n == 1, "kinds %x held", CHANGE_WRITE | never[k]);
        change_entries_free(e, n);
    }
    /* No write at all (a chmod): nothing to wait for. */
    size_t n = 1;
    struct change_entry *e = malloc(sizeof(*e));
    e[0] = entry("big", CHANGE_ATTR, 1, 0, 0);
    ck_assert_int_eq(hold_filter(h, &e, &n, T0, false), 0);
    ck_assert_uint_eq(n, 1);
    change_entries_free(e, n);
    ck_assert_uint_eq(hold_count(h), 0);
    hold_free(h);
}
END_TEST

START_TEST(held_no_longer_than_max_or_past_release_all)
{
    make("big", HOLD_MIN_BYTES);
    struct hold *h = hold_new(dfd);
    size_t n = 1;
    struct change_entry *e = malloc(sizeof(*e));
    e[0] = entry("big", CHANGE_WRITE, 3, 0, 1);
    ck_assert_int_eq(hold_filter(h, &e, &n, T0, false), 0);
    ck_assert_uint_eq(n, 0);
    free(e);
    /* The file keeps being written (mtime stays recent)... */
    for (int64_t t = T0 + 100; t < T0 + HOLD_MAX_MS; t += 1000) {
        make("big", HOLD_MIN_BYTES);
        struct timespec ts[2] = {{.tv_sec = t / 1000, .tv_nsec = (t % 1000) * 1000000},
                                 {.tv_sec = t / 1000, .tv_nsec = (t % 1000) * 1000000}};
        ck_assert_int_eq(utimensat(dfd, "big", ts, 0), 0);
        e = NULL;
        n = 0;
        ck_assert_int_eq(hold_filter(h, &e, &n, t + 10, false), 0);
        ck_assert_uint_eq(n, 0);
        free(e);
    }
    /* ...but after HOLD_MAX_MS it goes to the index anyway. */
    struct timespec ts[2] = {{.tv_sec = (T0 + HOLD_MAX_MS) / 1000},
                             {.tv_sec = (T0 + HOLD_MAX_MS) / 1000}};
    ck_assert_int_eq(utimensat(dfd, "big", ts, 0), 0);
    e = NULL;
    n = 0;
    ck_assert_int_eq(hold_filter(h, &e, &n, T0 + HOLD_MAX_MS + 10, false), 0);
    ck_assert_uint_eq(n, 1);
    change_entries_free(e, n);

    /* release_all (shutdown, rescan) empties the hold at once. */
    n = 1;
    e = malloc(sizeof(*e));
    e[0] = entry("big", CHANGE_WRITE, 4, 0, 1);
    ck_assert_int_eq(hold_filter(h, &e, &n, T0 + HOLD_MAX_MS + 20, false), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(hold_count(h), 1);
    ck_assert_int_eq(hold_filter(h, &e, &n, T0 + HOLD_MAX_MS + 30, true), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(hold_count(h), 0);
    change_entries_free(e, n);
    hold_free(h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hold_unit");
    TCase *tc = tcase_create("hold");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, big_recent_write_is_held_then_released_merged);
    tcase_add_test(tc, only_plain_data_changes_are_held);
    tcase_add_test(tc, held_no_longer_than_max_or_past_release_all);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
