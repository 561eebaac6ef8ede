/*
 * test_outside_edits.c — edits made directly in SRC (an editor on the host,
 * git checkout) show through the mount at once, even where the kernel has
 * cached the old entry, attributes, pages or listing.  Every check is a
 * bounded poll: the watcher is asynchronous, but must be quick.
 */
#include "tests/lib/harness.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOUND_MS 2000

static struct wmount m;
static char pm[PATH_MAX], ps[PATH_MAX], ps2[PATH_MAX];
#define MNT(rel) (wm_path(pm, sizeof(pm), m.mnt, rel), pm)
#define SRC(rel) (wm_path(ps, sizeof(ps), m.src, rel), ps)
#define SRC2(rel) (wm_path(ps2, sizeof(ps2), m.src, rel), ps2)

static void setup(void)
{
    wm_setup(&m, "");
}

static void teardown(void)
{
    wm_teardown(&m);
}

/* Read through the mount once so the kernel caches entry, attrs and pages. */
static void warm(const char *rel)
{
    free(wm_read(MNT(rel), NULL));
    struct stat st;
    stat(MNT(rel), &st);
}

START_TEST(new_file_replaces_cached_negative_entry)
{
    struct stat st;
    ck_assert_int_eq(stat(MNT("late"), &st), -1); /* negative dentry cached */
    wm_write(SRC("late"), "arrived");
    ck_assert_msg(wm_poll_content(MNT("late"), "arrived", BOUND_MS), "new file not visible");
}
END_TEST

START_TEST(in_place_rewrite_same_size)
{
    wm_write(MNT("f"), "aaaaaaaa");
    warm("f");
    int fd = open(SRC("f"), O_WRONLY);
    ck_assert_int_eq(pwrite(fd, "bbbb", 4, 2), 4);
    close(fd);
    ck_assert_msg(wm_poll_content(MNT("f"), "aabbbbaa", BOUND_MS), "stale pages after rewrite");
}
END_TEST

START_TEST(append_truncate_chmod)
{
    wm_write(MNT("g"), "123");
    warm("g");
    int fd = open(SRC("g"), O_WRONLY | O_APPEND);
    ck_assert_int_eq(write(fd, "4567", 4), 4);
    close(fd);
    ck_assert_msg(wm_poll_content(MNT("g"), "1234567", BOUND_MS), "append not visible");
    ck_assert_int_eq(truncate(SRC("g"), 2), 0);
    ck_assert_msg(wm_poll_content(MNT("g"), "12", BOUND_MS), "truncate not visible");
    ck_assert_int_eq(chmod(SRC("g"), 0600), 0);
    struct stat st;
    bool ok = false;
    for (int i = 0; i < BOUND_MS && !ok; i++) {
        ok = stat(MNT("g"), &st) == 0 && (st.st_mode & 0777) == 0600;
        if (!ok)
            usleep(1000);
    }
    ck_assert_msg(ok, "chmod not visible: mode %o", st.st_mode & 0777);
}
END_TEST

START_TEST(delete_and_rename)
{
    wm_write(MNT("gone"), "x");
    wm_write(MNT("old"), "moving");
    warm("gone");
    warm("old");
    ck_assert_int_eq(unlink(SRC("gone")), 0);
    ck_assert_msg(wm_poll_content(MNT("gone"), NULL, BOUND_MS), "deleted file still visible");
    ck_assert_int_eq(rename(SRC("old"), SRC2("new")), 0);
    ck_assert_msg(wm_poll_content(MNT("new"), "moving", BOUND_MS), "renamed file not visible");
    ck_assert_msg(wm_poll_content(MNT("old"), NULL, BOUND_MS), "old name still visible");
}
END_TEST

static bool listing_has(void *arg)
{
    DIR *d = opendir(MNT("dir"));
    if (!d)
        return false;
    struct dirent *de;
    bool found = false;
    while ((de = readdir(d)))
        found |= strcmp(de->d_name, arg) == 0;
    closedir(d);
    return found;
}

START_TEST(cached_listing_sees_new_entries)
{
    ck_assert_int_eq(mkdir(MNT("dir"), 0755), 0);
    wm_write(MNT("dir/one"), "1");
    ck_assert(!listing_has("two")); /* the listing is now cached */
    wm_write(SRC("dir/two"), "2");
    ck_assert_msg(wm_poll(listing_has, "two", BOUND_MS), "cached listing never refreshed");
    /* A whole new subtree made outside. */
    ck_assert_int_eq(wm_sh("mkdir -p '%s/a/b/c' && echo deep > '%s/a/b/c/file'", m.src, m.src),
                     0);
    ck_assert_msg(wm_poll_content(MNT("a/b/c/file"), "deep\n", BOUND_MS), "new subtree missing");
}
END_TEST

START_TEST(open_file_sees_outside_write)
{
    wm_write(MNT("open"), "version-1");
    int fd = open(MNT("open"), O_RDONLY);
    char buf[32] = {0};
    ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), 9);
    int w = open(SRC("open"), O_WRONLY);
    ck_assert_int_eq(pwrite(w, "version-2-longer", 16, 0), 16);
    close(w);
    bool ok = false;
    for (int i = 0; i < BOUND_MS && !ok; i++) {
        memset(buf, 0, sizeof(buf));
        ok = pread(fd, buf, sizeof(buf), 0) == 16 && strcmp(buf, "version-2-longer") == 0;
        if (!ok)
            usleep(1000);
    }
    close(fd);
    ck_assert_msg(ok, "open file still reads '%s'", buf);
}
END_TEST

START_TEST(editor_save_via_rename)
{
    wm_write(MNT("doc.txt"), "draft");
    warm("doc.txt");
    wm_write(SRC(".doc.txt.swp"), "final");
    ck_assert_int_eq(rename(SRC(".doc.txt.swp"), SRC2("doc.txt")), 0);
    ck_assert_msg(wm_poll_content(MNT("doc.txt"), "final", BOUND_MS), "editor save not visible");
}
END_TEST

START_TEST(outside_edits_are_journaled)
{
    wm_write(SRC("journaled"), "x");
    bool ok = false;
    for (int i = 0; i < BOUND_MS && !ok; i++) {
        char *out = wm_sh_out(NULL, "'%s' log --events -n 50 '%s'", wm_bin(), m.mnt);
        ok = strstr(out, "outside journaled") != NULL;
        free(out);
        if (!ok)
            usleep(1000);
    }
    ck_assert_msg(ok, "no outside event for 'journaled' in wsync log");
}
END_TEST

/* `wsync log` shows every edit made before it ran: the daemon syncs with
 * the watcher before it answers.  The watcher is made to lag 400 ms behind
 * (a test hook), so without that sync the edit would not be there yet. */
START_TEST(log_waits_for_the_watcher)
{
    wm_teardown(&m);
    setenv("WSYNC_WATCH_LAG_MS", "400", 1);
    wm_setup(&m, "");
    unsetenv("WSYNC_WATCH_LAG_MS");
    wm_write(SRC("lagged"), "x");
    char *out = wm_sh_out(NULL, "'%s' log --events -n 50 '%s'", wm_bin(), m.mnt);
    ck_assert_msg(strstr(out, "outside lagged") != NULL, "the edit is not in the log:\n%s", out);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("outside_edits");
    TCase *tc = tcase_create("watcher");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, new_file_replaces_cached_negative_entry);
    tcase_add_test(tc, in_place_rewrite_same_size);
    tcase_add_test(tc, append_truncate_chmod);
    tcase_add_test(tc, delete_and_rename);
    tcase_add_test(tc, cached_listing_sees_new_entries);
    tcase_add_test(tc, open_file_sees_outside_write);
    tcase_add_test(tc, editor_save_via_rename);
    tcase_add_test(tc, outside_edits_are_journaled);
    tcase_add_test(tc, log_waits_for_the_watcher);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
