/*
 * test_change_events.c — the change stream seen through `wsync log`: each
 * mutating op yields the expected event with the right path, and bursts
 * coalesce into one pending entry per path (the daemon's write path; see
 * setup()).
 */
#include "tests/lib/harness.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static struct wmount m;
static char pm[PATH_MAX], pm2[PATH_MAX];
#define MNT(rel) (wm_path(pm, sizeof(pm), m.mnt, rel), pm)
#define MNT2(rel) (wm_path(pm2, sizeof(pm2), m.mnt, rel), pm2)

/* Per-write events with their ranges are what the daemon's own write path
 * notes, so these tests mount with --no-passthrough: with kernel
 * passthrough (the default where the kernel allows it) writes bypass the
 * daemon and are noted whole-file at close, tested in test_passthrough.c. */
static void setup(void)
{
    wm_setup(&m, "--no-passthrough");
}

static void teardown(void)
{
    wm_teardown(&m);
}

static char *log_text(int n)
{
    return wm_sh_out(NULL, "'%s' log --events -n %d '%s'", wm_bin(), n, m.mnt);
}

/* The log holds a line with this kind and path (and suffix, if given). */
static void assert_logged(const char *log, const char *kind, const char *path, const char *rest)
{
    char want[PATH_MAX];
    snprintf(want, sizeof(want), " %s %s%s", kind, path, rest ? rest : "");
    ck_assert_msg(strstr(log, want), "log lacks '%s':\n%s", want, log);
}

START_TEST(each_op_yields_its_event)
{
    wm_write(MNT("f"), "hello");
    ck_assert_int_eq(mkdir(MNT("d"), 0755), 0);
    ck_assert_int_eq(symlink("f", MNT("s")), 0);
    ck_assert_int_eq(link(MNT("f"), MNT2("d/h")), 0);
    ck_assert_int_eq(chmod(MNT("f"), 0600), 0);
    ck_assert_int_eq(truncate(MNT("f"), 2), 0);
    ck_assert_int_eq(setxattr(MNT("f"), "user.k", "v", 1, 0), 0);
    ck_assert_int_eq(rename(MNT("s"), MNT2("d/s2")), 0);
    ck_assert_int_eq(mkfifo(MNT("p"), 0644), 0);
    int fd = open(MNT("f"), O_WRONLY);
    ck_assert_int_eq(pwrite(fd, "xyz", 3, 100), 3);
    close(fd);
    ck_assert_int_eq(unlink(MNT("p")), 0);
    ck_assert_int_eq(mkdir(MNT("e"), 0755), 0);
    ck_assert_int_eq(rmdir(MNT("e")), 0);

    char *log = log_text(100);
    assert_logged(log, "create", "f", "\n");
    assert_logged(log, "write", "f", " [0+5]");
    assert_logged(log, "mkdir", "d", "\n");
    assert_logged(log, "symlink", "s", "\n");
    assert_logged(log, "link", "d/h", "\n");
    assert_logged(log, "attr", "f", "\n");
    assert_logged(log, "truncate", "f", "\n");
    assert_logged(log, "xattr", "f", "\n");
    assert_logged(log, "rename-from", "s", " -> d/s2");
    assert_logged(log, "rename-to", "d/s2", " <- s");
    assert_logged(log, "create", "p", "\n");
    assert_logged(log, "write", "f", " [100+3]");
    assert_logged(log, "delete", "p", "\n");
    assert_logged(log, "delete", "e", "\n");
    ck_assert_msg(!strstr(log, ".wsync"), "state dir leaked into the log:\n%s", log);
    ck_assert_msg(!strstr(log, "outside"), "own ops marked as outside edits:\n%s", log);
    free(log);
}
END_TEST

static long long status_num(const char *key)
{
    return wm_status_num(&m, key);
}

static bool indexer_caught_up(void *arg)
{
    (void)arg;
    return wm_caught_up(&m);
}

START_TEST(burst_of_writes_coalesces)
{
    ck_assert(wm_poll(indexer_caught_up, NULL, 10000));
    long long hashed_before = status_num("hashed_files");
    int fd = open(MNT("burst"), O_WRONLY | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    for (int i = 0; i < 10000; i++)
        ck_assert_int_eq(pwrite(fd, "z", 1, i), 1);
    close(fd);
    ck_assert_msg(wm_poll(indexer_caught_up, NULL, 10000), "indexer never caught up");
    /* 10001 events reached the stream... */
    char *log = log_text(8192);
    size_t writes = 0;
    for (char *p = log; (p = strstr(p, " write burst [")); p++)
        writes++;
    free(log);
    ck_assert_uint_eq(writes, 8192); /* the ring holds the newest 8192 events */
    /* ...but the file was hashed a handful of times, not 10000. */
    long long hashed = status_num("hashed_files") - hashed_before;
    ck_assert_msg(hashed >= 1 && hashed <= 50, "burst hashed %lld times", hashed);
    char *journal = wm_sh_out(NULL, "'%s' log -n 100 '%s'", wm_bin(), m.mnt);
    ck_assert_msg(strstr(journal, " add burst\n"), "journal lacks the burst:\n%s", journal);
    free(journal);
    char *src_copy = wm_read(MNT("burst"), NULL);
    ck_assert_uint_eq(strlen(src_copy), 10000);
    free(src_copy);
}
END_TEST

/* Count the log lines " write PATH [OFF+LEN]". */
static int count_writes(const char *log, const char *path, int off)
{
    char want[PATH_MAX];
    snprintf(want, sizeof(want), " write %s [%d+1]\n", path, off);
    int n = 0;
    for (const char *p = log; (p = strstr(p, want)); p++)
        n++;
    return n;
}

struct logged_wait {
    const char *needle;
};

static bool log_has(void *arg)
{
    struct logged_wait *w = arg;
    char *log = log_text(200);
    bool ok = strstr(log, w->needle) != NULL;
    free(log);
    return ok;
}

/* The mount keeps each open file's path for its write events (so a stream
 * of writes costs no path lookup each); a rename of the file, of a parent
 * directory, through the mount or directly in SRC, must show in the path
 * of the very next write. */
START_TEST(write_paths_follow_renames)
{
    static char ps[PATH_MAX], ps2[PATH_MAX];
    ck_assert_int_eq(mkdir(MNT("d"), 0755), 0);
    ck_assert_int_eq(mkdir(MNT("d/sub"), 0755), 0);
    int fd = open(MNT("d/sub/f"), O_WRONLY | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    int off = 0;
    ck_assert_int_eq(pwrite(fd, "a", 1, off++), 1);
    ck_assert_int_eq(pwrite(fd, "a", 1, off++), 1);
    ck_assert_int_eq(rename(MNT("d/sub/f"), MNT2("d/sub/g")), 0); /* the file */
    ck_assert_int_eq(pwrite(fd, "b", 1, off++), 1);
    ck_assert_int_eq(rename(MNT("d/sub"), MNT2("d/other")), 0); /* its parent */
    ck_assert_int_eq(pwrite(fd, "c", 1, off++), 1);
    ck_assert_int_eq(rename(MNT("d"), MNT2("top")), 0); /* its grandparent */
    ck_assert_int_eq(pwrite(fd, "d", 1, off++), 1);
    /* Directly in SRC: once the watcher has reported the rename. */
    wm_path(ps, sizeof(ps), m.src, "top/other");
    wm_path(ps2, sizeof(ps2), m.src, "top/moved");
    ck_assert_int_eq(rename(ps, ps2), 0);
    struct logged_wait w = {"+outside top/moved"};
    ck_assert_msg(wm_poll(log_has, &w, 5000), "the watcher never reported the outside rename");
    ck_assert_int_eq(pwrite(fd, "e", 1, off++), 1);
    /* Unlinked: a write to the open file names no path at all. */
    ck_assert_int_eq(unlink(MNT("top/moved/g")), 0);
    ck_assert_int_eq(pwrite(fd, "f", 1, off++), 1);
    close(fd);

    char *log = log_text(200);
    ck_assert_msg(count_writes(log, "d/sub/f", 0) == 1 && count_writes(log, "d/sub/f", 1) == 1,
                  "first writes not at d/sub/f:\n%s", log);
    ck_assert_msg(count_writes(log, "d/sub/g", 2) == 1, "write after file rename:\n%s", log);
    ck_assert_msg(count_writes(log, "d/other/g", 3) == 1, "write after dir rename:\n%s", log);
    ck_assert_msg(count_writes(log, "top/other/g", 4) == 1, "write after grandparent rename:\n%s",
                  log);
    ck_assert_msg(count_writes(log, "top/moved/g", 5) == 1, "write after outside rename:\n%s", log);
    ck_assert_msg(!strstr(log, "[6+1]"), "write to an unlinked file was noted:\n%s", log);
    free(log);
}
END_TEST

static void assert_not_logged(const char *log, const char *kind, const char *path)
{
    char bad[PATH_MAX];
    snprintf(bad, sizeof(bad), " %s %s\n", kind, path);
    ck_assert_msg(!strstr(log, bad), "stale path logged: '%s':\n%s", bad, log);
}

/* Entries made and removed in a directory are noted at a path built from
 * the directory's cached one (fs/path_cache.h: unlink keeps it); a rename
 * of the directory or of its parent, through the mount or directly in
 * SRC, must show in the very next entry's path. */
START_TEST(entry_paths_follow_dir_renames)
{
    static char ps[PATH_MAX], ps2[PATH_MAX];
    ck_assert_int_eq(mkdir(MNT("d"), 0755), 0);
    ck_assert_int_eq(mkdir(MNT("d/sub"), 0755), 0);
    wm_write(MNT("d/sub/a"), "a");
    ck_assert_int_eq(unlink(MNT("d/sub/a")), 0);
    wm_write(MNT("d/sub/b"), "b");
    ck_assert_int_eq(rename(MNT("d/sub"), MNT2("d/other")), 0); /* the dir */
    wm_write(MNT("d/other/c"), "c");
    ck_assert_int_eq(mkdir(MNT("d/other/m"), 0755), 0);
    ck_assert_int_eq(unlink(MNT("d/other/b")), 0);
    ck_assert_int_eq(rename(MNT("d"), MNT2("top")), 0); /* its parent */
    wm_write(MNT("top/other/e"), "e");
    /* Directly in SRC: once the watcher has reported the rename. */
    wm_path(ps, sizeof(ps), m.src, "top/other");
    wm_path(ps2, sizeof(ps2), m.src, "top/moved");
    ck_assert_int_eq(rename(ps, ps2), 0);
    struct logged_wait w = {"+outside top/moved"};
    ck_assert_msg(wm_poll(log_has, &w, 5000), "the watcher never reported the outside rename");
    wm_write(MNT("top/moved/f"), "f");
    ck_assert_int_eq(unlink(MNT("top/moved/c")), 0);
    ck_assert_int_eq(symlink("f", MNT("top/moved/s")), 0);
    ck_assert_int_eq(rmdir(MNT("top/moved/m")), 0);

    char *log = log_text(200);
    assert_logged(log, "create", "d/sub/a", "\n");
    assert_logged(log, "delete", "d/sub/a", "\n");
    assert_logged(log, "create", "d/sub/b", "\n");
    assert_logged(log, "create", "d/other/c", "\n");
    assert_logged(log, "mkdir", "d/other/m", "\n");
    assert_logged(log, "delete", "d/other/b", "\n");
    assert_logged(log, "create", "top/other/e", "\n");
    assert_logged(log, "create", "top/moved/f", "\n");
    assert_logged(log, "delete", "top/moved/c", "\n");
    assert_logged(log, "symlink", "top/moved/s", "\n");
    assert_logged(log, "delete", "top/moved/m", "\n");
    assert_not_logged(log, "create", "d/sub/c");
    assert_not_logged(log, "create", "d/other/e");
    assert_not_logged(log, "create", "top/other/f");
    assert_not_logged(log, "delete", "top/other/c");
    free(log);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("change_events");
    TCase *tc = tcase_create("events");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, each_op_yields_its_event);
    tcase_add_test(tc, burst_of_writes_coalesces);
    tcase_add_test(tc, write_paths_follow_renames);
    tcase_add_test(tc, entry_paths_follow_dir_renames);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
