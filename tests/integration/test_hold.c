/*
 * test_hold.c — a big file written through the mount in several steps,
 * with pauses a loaded machine or a slow producer makes, is hashed once,
 * after the writes stop, and its index entry is right (sync/hold.h).
 */
#include "tests/lib/harness.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct wmount m;
static char pm[PATH_MAX];
#define MNT(rel) (wm_path(pm, sizeof(pm), m.mnt, rel), pm)

static void setup(void)
{
    wm_setup(&m, "");
}

static void teardown(void)
{
    wm_teardown(&m);
}

static long long status_num(const char *key)
{
    return wm_status_num(&m, key);
}

static bool caught_up(void *arg)
{
    (void)arg;
    return wm_caught_up(&m);
}

/* The first write makes it big (16 MiB: smaller files are hashed as they
 * come, hold.h), then it grows by STEP at a time. */
enum { FIRST = 16 << 20, STEP = 4 << 20, STEPS = 6, TOTAL = FIRST + STEPS * STEP };

START_TEST(big_file_written_in_steps_is_hashed_once)
{
    /* Made (and indexed, empty) first: the create is not what is measured. */
    int fd = open(MNT("big.bin"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_msg(wm_poll(caught_up, NULL, 10000), "startup scan never finished");
    long long files_before = status_num("hashed_files");
    long long bytes_before = status_num("hashed_bytes");
    char *buf = malloc(FIRST);
    ck_assert_ptr_nonnull(buf);
    /* Its last byte first, as preallocating writers do: it is big from the
     * first write on, however slowly the rest of the first 16 MiB goes
     * through on a loaded machine. */
    char last = (char)((size_t)(FIRST - 1) * 2654435761u >> 13);
    ck_assert_int_eq(pwrite(fd, &last, 1, FIRST - 1), 1);
    size_t off = 0;
    for (int s = 0; s <= STEPS; s++) {
        size_t len = s == 0 ? FIRST : STEP;
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)((off + i) * 2654435761u >> 13);
        ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
        off += len;
        /* The writer pauses (long enough for the indexer to start a batch
         * each time: it waits for a few ms of quiet, hold.h aside). */
        usleep(150 * 1000);
    }
    /* While it is held, the daemon does not claim to have indexed it. */
    ck_assert_msg(!caught_up(NULL), "indexer claims the file being written is indexed");
    ck_assert_int_eq(close(fd), 0);
    ck_assert_msg(wm_poll(caught_up, NULL, 15000), "indexer never caught up");
    free(buf);

    long long files = status_num("hashed_files") - files_before;
    long long bytes = status_num("hashed_bytes") - bytes_before;
    ck_assert_msg(files == 1, "the file was hashed %lld times", files);
    ck_assert_msg(bytes == TOTAL, "%lld bytes hashed for a %d-byte file", bytes, TOTAL);

    /* Its entry is right: an offline check of SRC finds nothing to
     * re-hash and computes the same root. */
    char root[64], fresh[64];
    char *st = wm_sh_out(NULL, "'%s' status --json '%s'", wm_bin(), m.mnt);
    ck_assert(wm_json_str(st, "root", root, sizeof(root)));
    free(st);
    int status;
    char *out = wm_sh_out(&status, "'%s' index --json --check '%s'", wm_bin(), m.src);
    ck_assert_msg(status == 0, "wsync index --check: %s", out);
    ck_assert_int_eq(wm_json_num(out, "hashed"), 0);
    ck_assert(wm_json_str(out, "fresh_root", fresh, sizeof(fresh)));
    ck_assert_str_eq(root, fresh);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hold");
    TCase *tc = tcase_create("hold");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, big_file_written_in_steps_is_hashed_once);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
