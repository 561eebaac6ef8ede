/*
 * test_passthrough.c — kernel FUSE passthrough (fs/passthrough.h): the
 * kernel reads and writes SRC's files itself, and still every write shows
 * in the change stream and reaches a mirror; suid/sgid are cleared as on a
 * native filesystem; handles of one file never mix modes (the kernel would
 * fail the open with EIO).  Skipped where the kernel refuses passthrough.
 */
#include "tests/lib/harness.h"

#include <check.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BOUND_MS 10000

static struct wmount m;
static char dst[PATH_MAX + 16]; /* a mirror's replica, for the mirror test */
static char pm[PATH_MAX], pd[PATH_MAX + 64];
#define MNT(rel) (wm_path(pm, sizeof(pm), m.mnt, rel), pm)
#define DST(rel) (snprintf(pd, sizeof(pd), "%s/%s", dst, rel), pd)

static void setup(void)
{
    wm_setup(&m, "");
}

static void setup_mirror(void)
{
    wm_prepare(&m);
    snprintf(dst, sizeof(dst), "%s/replica", m.root);
    wm_wsync_ok("mount --mirror '%s' '%s' '%s'", dst, m.src, m.mnt);
    m.mounted = true;
}

static void teardown(void)
{
    wm_teardown(&m);
}

static long long status_num(const char *key)
{
    return wm_status_num(&m, key);
}

/* "passthrough":true in status; false if the kernel refused it. */
static bool passthrough_on(void)
{
    char *out = wm_sh_out(NULL, "'%s' status --json '%s'", wm_bin(), m.mnt);
    bool on = strstr(out, "\"passthrough\":true") != NULL;
    free(out);
    return on;
}

/* Reading a file registers it with the kernel; then status knows whether
 * the kernel took it.  False (and the test returns) if it did not. */
static bool require_passthrough(void)
{
    wm_write(MNT(".probe"), "p");
    free(wm_read(MNT(".probe"), NULL));
    if (!passthrough_on()) {
        fprintf(stderr, "passthrough refused by this kernel: test skipped\n");
        return false;
    }
    return true;
}

static char *log_text(int n)
{
    return wm_sh_out(NULL, "'%s' log --events -n %d '%s'", wm_bin(), n, m.mnt);
}

/* Number of log lines containing needle. */
static int count_in_log(const char *needle)
{
    char *log = log_text(1000);
    int n = 0;
    for (const char *p = log; (p = strstr(p, needle)); p++)
        n++;
    free(log);
    return n;
}

static bool logged(void *arg)
{
    return count_in_log(arg) > 0;
}

static bool caught_up(void *arg)
{
    (void)arg;
    return wm_caught_up(&m);
}

START_TEST(status_reports_it)
{
    if (!require_passthrough())
        return;
    /* A write, and a read of a big file, are passed through; a read of a
     * small file is not (PASSTHROUGH_READ_MIN_BYTES). */
    long long before = status_num("passthrough_opens");
    wm_write(MNT("small"), "x");
    ck_assert_int_eq(status_num("passthrough_opens"), before + 1);
    free(wm_read(MNT("small"), NULL));
    ck_assert_int_eq(status_num("passthrough_opens"), before + 1);
    ck_assert_int_eq(wm_sh("head -c 300000 /dev/zero > '%s'", MNT("big")), 0);
    ck_assert_int_eq(status_num("passthrough_opens"), before + 2);
    free(wm_read(MNT("big"), NULL));
    ck_assert_int_eq(status_num("passthrough_opens"), before + 3);
    char *out = wm_sh_out(NULL, "'%s' status '%s'", wm_bin(), m.mnt);
    ck_assert_msg(strstr(out, "file I/O: kernel passthrough"), "status text:\n%s", out);
    free(out);
    out = wm_sh_out(NULL, "'%s' doctor --json", wm_bin());
    ck_assert_msg(strstr(out, "{\"check\":\"passthrough\",\"status\":\"ok\""),
                  "doctor says passthrough is not possible where it is on:\n%s", out);
    free(out);
}
END_TEST

START_TEST(no_passthrough_turns_it_off)
{
    wm_teardown(&m);
    wm_setup(&m, "--no-passthrough");
    wm_write(MNT("f"), "x");
    free(wm_read(MNT("f"), NULL));
    ck_assert_msg(!passthrough_on(), "--no-passthrough still passes through");
    ck_assert_int_eq(status_num("passthrough_opens"), 0);
    /* The kernel refuses passthrough with the writeback cache: not asked. */
    wm_teardown(&m);
    wm_setup(&m, "--writeback");
    wm_write(MNT("f"), "x");
    char *got = wm_read(MNT("f"), NULL);
    ck_assert_str_eq(got, "x");
    free(got);
    ck_assert_msg(!passthrough_on(), "--writeback with passthrough");
    ck_assert_int_eq(status_num("passthrough_opens"), 0);
}
END_TEST

/* A write through a passed-through handle is noted, for the whole file,
 * by the time anything can ask after close() (`wsync log` here; a flush
 * and an unmount too): root's handles have no FLUSH, so the note comes
 * from the watcher or RELEASE, and the daemon syncs with the watcher
 * before it answers.  An open for writing that writes nothing notes
 * nothing; a write through a shared mapping is noted at close too. */
START_TEST(writes_are_noted_by_close)
{
    if (!require_passthrough())
        return;
    int fd = open(MNT("f"), O_WRONLY | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, "xyz", 3, 100), 3);
    ck_assert_int_eq(close(fd), 0);
    ck_assert_msg(count_in_log(" write f [0+103]\n") == 1, "no whole-file write event");
    ck_assert_int_eq(count_in_log("outside"), 0);

    fd = open(MNT("f"), O_RDWR);
    char b[4];
    ck_assert_int_eq(pread(fd, b, 3, 100), 3);
    ck_assert_int_eq(close(fd), 0);
    /* (" write f [": the close's notes; the watcher's carry no range) */
    ck_assert_msg(count_in_log(" write f [") == 1, "a handle that wrote nothing noted a write");

    fd = open(MNT("f"), O_RDWR);
    char *map = mmap(NULL, 103, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ck_assert_ptr_ne(map, MAP_FAILED);
    memcpy(map, "MM", 2);
    ck_assert_int_eq(msync(map, 103, MS_SYNC), 0);
    ck_assert_int_eq(munmap(map, 103), 0);
    ck_assert_int_eq(close(fd), 0);
    /* At least 2: the previous handle's RELEASE, which the kernel sends
     * after close() returns, may also see the mapped write and note it. */
    char *log = log_text(100);
    ck_assert_msg(count_in_log(" write f [0+103]\n") >= 2, "the mapped write was not noted:\n%s",
                  log);
    free(log);
    char ps[PATH_MAX];
    wm_path(ps, sizeof(ps), m.src, "f");
    size_t len;
    char *src = wm_read(ps, &len);
    ck_assert_ptr_nonnull(src);
    ck_assert_uint_eq(len, 103);
    ck_assert_msg(memcmp(src, "MM", 2) == 0 && memcmp(src + 100, "xyz", 3) == 0,
                  "SRC lacks the writes");
    free(src);
}
END_TEST

struct count_wait {
    const char *needle;
    int want;
};

static bool count_reached(void *arg)
{
    struct count_wait *w = arg;
    return count_in_log(w->needle) >= w->want;
}

/* A write through a shared mapping after its fd was closed is noted when
 * the mapping goes (the kernel's RELEASE). */
START_TEST(mapped_write_after_close_is_noted_at_munmap)
{
    if (!require_passthrough())
        return;
    wm_write(MNT("m"), "0123456789");
    int fd = open(MNT("m"), O_RDWR);
    ck_assert_int_ge(fd, 0);
    char *map = mmap(NULL, 10, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ck_assert_ptr_ne(map, MAP_FAILED);
    ck_assert_int_eq(close(fd), 0);
    int before = count_in_log(" write m"); /* the watcher's note has no range */
    memcpy(map, "AB", 2);
    ck_assert_int_eq(msync(map, 10, MS_SYNC), 0);
    ck_assert_int_eq(munmap(map, 10), 0);
    struct count_wait w = {" write m", before + 1};
    ck_assert_msg(wm_poll(count_reached, &w, BOUND_MS), "the write after close was never noted");
}
END_TEST

/* A file kept open shows its writes in the stream before it is closed:
 * the kernel's writes to SRC's file reach the watcher, which notes them
 * as the mount's own (not outside edits). */
START_TEST(writes_to_a_file_kept_open_show_before_close)
{
    if (!require_passthrough())
        return;
    long long outside = status_num("outside_events");
    int fd = open(MNT("log.txt"), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "line\n", 5), 5);
    ck_assert_msg(wm_poll(logged, " write log.txt", BOUND_MS), "write never noted while open");
    ck_assert_int_eq(close(fd), 0);
    ck_assert_int_eq(count_in_log("outside"), 0);
    ck_assert_int_eq(status_num("outside_events"), outside);
}
END_TEST

/* 10000 small writes through one handle: noted, coalesced, hashed a
 * handful of times, journaled, and in SRC. */
START_TEST(burst_of_writes_is_noted_and_coalesced)
{
    if (!require_passthrough())
        return;
    ck_assert(wm_poll(caught_up, NULL, BOUND_MS));
    long long hashed_before = status_num("hashed_files");
    int fd = open(MNT("burst"), O_WRONLY | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    for (int i = 0; i < 10000; i++)
        ck_assert_int_eq(pwrite(fd, "z", 1, i), 1);
    ck_assert_int_eq(close(fd), 0);
    ck_assert_msg(count_in_log(" write burst [0+10000]\n") == 1, "close did not note the burst");
    ck_assert_msg(wm_poll(caught_up, NULL, BOUND_MS), "indexer never caught up");
    long long hashed = status_num("hashed_files") - hashed_before;
    ck_assert_msg(hashed >= 1 && hashed <= 50, "burst hashed %lld times", hashed);
    char *journal = wm_sh_out(NULL, "'%s' log -n 100 '%s'", wm_bin(), m.mnt);
    ck_assert_msg(strstr(journal, " add burst\n"), "journal lacks the burst:\n%s", journal);
    free(journal);
}
END_TEST

/* The close's event names the file where it is now, after renames of the
 * file and its parent while it was open. */
START_TEST(close_notes_the_current_path)
{
    if (!require_passthrough())
        return;
    ck_assert_int_eq(mkdir(MNT("d"), 0755), 0);
    int fd = open(MNT("d/f"), O_WRONLY | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, "a", 1, 0), 1);
    char to[PATH_MAX];
    wm_path(to, sizeof(to), m.mnt, "d/g");
    ck_assert_int_eq(rename(MNT("d/f"), to), 0);
    wm_path(to, sizeof(to), m.mnt, "e");
    ck_assert_int_eq(rename(MNT("d"), to), 0);
    ck_assert_int_eq(pwrite(fd, "b", 1, 1), 1);
    ck_assert_int_eq(close(fd), 0);
    ck_assert_msg(count_in_log(" write e/g [0+2]\n") == 1, "close's write not at e/g");
}
END_TEST

/* Run fn(arg) in a child as uid/gid 65534 with no groups; its exit status. */
static int as_nobody(int (*fn)(void *), void *arg)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
            _exit(90);
        _exit(fn(arg));
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
}

static int append_y(void *path)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    if (fd < 0)
        return 1;
    int r = write(fd, "y", 1) == 1 ? 0 : 2;
    return close(fd) == 0 ? r : 3;
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_mode & 07777;
}

/* A non-root write to a suid file clears suid (its handle is served by
 * the daemon); if the file is already open passed through (a root reader
 * holds it), the open still works, and clears suid at once.  Either way
 * no open fails for mixing modes. */
START_TEST(suid_is_cleared_and_modes_never_mix)
{
    if (!require_passthrough())
        return;
    ck_assert_int_eq(chmod(m.root, 0755), 0);
    ck_assert_int_eq(chmod(m.mnt, 0777), 0);
    char a[PATH_MAX], b[PATH_MAX];
    wm_path(a, sizeof(a), m.mnt, "a");
    wm_path(b, sizeof(b), m.mnt, "b");
    wm_write(a, "x");
    wm_write(b, "x");
    ck_assert_int_eq(chmod(a, 06777), 0);
    ck_assert_int_eq(chmod(b, 06777), 0);

    /* a: nobody's write is served by the daemon, which clears suid; a root
     * reader opening meanwhile is not refused. */
    ck_assert_int_eq(as_nobody(append_y, a), 0);
    ck_assert_int_eq(mode_of(a), 0777);

    /* b: held open (passed through) by root; nobody's open joins it. */
    int fd = open(b, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(as_nobody(append_y, b), 0);
    ck_assert_int_eq(mode_of(b), 0777);
    char buf[4];
    ck_assert_int_eq(pread(fd, buf, 2, 0), 2);
    ck_assert_int_eq(memcmp(buf, "xy", 2), 0);
    ck_assert_int_eq(close(fd), 0);
}
END_TEST

struct held_write {
    const char *path;
    int go[2], ready[2];
};

/* As nobody: open, say so, wait, append, close. */
static int open_wait_append(void *arg)
{
    struct held_write *h = arg;
    int fd = open(h->path, O_WRONLY | O_APPEND);
    if (fd < 0)
        return 1;
    char c = 'r';
    if (write(h->ready[1], &c, 1) != 1 || read(h->go[0], &c, 1) != 1)
        return 2;
    if (write(fd, "y", 1) != 1)
        return 3;
    return close(fd) == 0 ? 0 : 4;
}

/* suid set by root while nobody holds the file open for writing (passed
 * through: it had no suid then) is gone once nobody's write is closed. */
START_TEST(suid_gained_while_open_is_cleared_by_close)
{
    if (!require_passthrough())
        return;
    ck_assert_int_eq(chmod(m.root, 0755), 0);
    ck_assert_int_eq(chmod(m.mnt, 0777), 0);
    char p[PATH_MAX];
    wm_path(p, sizeof(p), m.mnt, "c");
    wm_write(p, "x");
    ck_assert_int_eq(chmod(p, 0777), 0);
    struct held_write h = {.path = p};
    ck_assert_int_eq(pipe(h.go), 0);
    ck_assert_int_eq(pipe(h.ready), 0);
    pid_t pid = fork();
    if (pid == 0)
        _exit(as_nobody(open_wait_append, &h));
    char c;
    ck_assert_int_eq(read(h.ready[0], &c, 1), 1);
    ck_assert_int_eq(chmod(p, 06777), 0);
    ck_assert_int_eq(write(h.go[1], "g", 1), 1);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    ck_assert_int_eq(mode_of(p), 0777);
    wm_path(p, sizeof(p), m.src, "c");
    ck_assert_int_eq(mode_of(p), 0777);
}
END_TEST

/* Through a passed-through handle, to a mirror: a closed file, and one
 * still open. */
START_TEST(writes_reach_a_mirror)
{
    if (!require_passthrough())
        return;
    int fd = open(MNT("closed"), O_WRONLY | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, "hello", 5, 0), 5);
    ck_assert_int_eq(close(fd), 0);
    ck_assert_msg(wm_poll_content(DST("closed"), "hello", BOUND_MS), "closed file never arrived");
    fd = open(MNT("closed"), O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, "J", 1, 0), 1);
    ck_assert_msg(wm_poll_content(DST("closed"), "Jello", BOUND_MS),
                  "open file's write never arrived");
    ck_assert_int_eq(close(fd), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("passthrough");
    TCase *tc = tcase_create("passthrough");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, status_reports_it);
    tcase_add_test(tc, no_passthrough_turns_it_off);
    tcase_add_test(tc, writes_are_noted_by_close);
    tcase_add_test(tc, mapped_write_after_close_is_noted_at_munmap);
    tcase_add_test(tc, writes_to_a_file_kept_open_show_before_close);
    tcase_add_test(tc, burst_of_writes_is_noted_and_coalesced);
    tcase_add_test(tc, close_notes_the_current_path);
    tcase_add_test(tc, suid_is_cleared_and_modes_never_mix);
    tcase_add_test(tc, suid_gained_while_open_is_cleared_by_close);
    suite_add_tcase(s, tc);
    TCase *mc = tcase_create("mirror");
    tcase_add_checked_fixture(mc, setup_mirror, teardown);
    tcase_set_timeout(mc, 120);
    tcase_add_test(mc, writes_reach_a_mirror);
    suite_add_tcase(s, mc);
    return wm_run_suite(s);
}
