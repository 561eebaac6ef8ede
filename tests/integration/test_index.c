/*
 * test_index.c — the index follows SRC: the mount daemon indexes what
 * changes, a restart hashes only what changed while it was away, renames
 * move rows instead of re-hashing, the journal records content changes, and
 * a kill -9 during heavy writes leaves an index that converges to a
 * from-scratch computation.
 */
#include "tests/lib/harness.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct wmount m;
static char pm[PATH_MAX], ps[PATH_MAX], pm2[PATH_MAX];
#define MNT(rel) (wm_path(pm, sizeof(pm), m.mnt, rel), pm)
#define MNT2(rel) (wm_path(pm2, sizeof(pm2), m.mnt, rel), pm2)
#define SRC(rel) (wm_path(ps, sizeof(ps), m.src, rel), ps)

static void teardown(void)
{
    wm_teardown(&m);
}

/* The daemon has indexed every change noted so far. */
static bool caught_up(void *arg)
{
    (void)arg;
    return wm_caught_up(&m);
}

static void wait_caught_up(void)
{
    ck_assert_msg(wm_poll(caught_up, NULL, 10000), "indexer did not catch up in 10 s");
}

/* Run `wsync index --json [--check] SRC`; returns its output, asserts exit. */
static char *run_index(bool check, int want_status)
{
    int st;
    char *out = wm_sh_out(&st, "'%s' index --json %s '%s'", wm_bin(), check ? "--check" : "",
                          m.src);
    ck_assert_msg(st == want_status, "wsync index exit %d (want %d): %s", st, want_status, out);
    return out;
}

static void write_bytes(const char *path, size_t n, unsigned seed)
{
    char *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)((i * 2654435761u + seed) >> 11);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
    close(fd);
    free(buf);
}

START_TEST(mount_indexes_and_root_matches_fresh)
{
    wm_setup(&m, "");
    ck_assert_int_eq(mkdir(MNT("src"), 0755), 0);
    ck_assert_int_eq(mkdir(MNT("empty"), 0755), 0);
    write_bytes(MNT("src/big.bin"), 3 << 20, 1);
    wm_write(MNT("src/main.c"), "int main(void) { return 0; }\n");
    ck_assert_int_eq(symlink("src/main.c", MNT("link")), 0);
    wait_caught_up();
    char *st = wm_status_json(&m);
    ck_assert_int_eq(wm_json_num(st, "files"), 2);
    ck_assert_int_eq(wm_json_num(st, "dirs"), 2);
    ck_assert_int_eq(wm_json_num(st, "symlinks"), 1);
    ck_assert_int_eq(wm_json_num(st, "bytes"), (3 << 20) + 29);
    ck_assert_int_ge(wm_json_num(st, "chunks"), 2);
    char root[64], fresh[64];
    ck_assert(wm_json_str(st, "root", root, sizeof(root)));
    free(st);
    /* While mounted, an offline check sees nothing to do and agrees. */
    char *out = run_index(true, 0);
    ck_assert_int_eq(wm_json_num(out, "hashed"), 0);
    ck_assert(wm_json_str(out, "fresh_root", fresh, sizeof(fresh)));
    ck_assert_str_eq(root, fresh);
    free(out);
}
END_TEST

START_TEST(restart_hashes_only_what_changed)
{
    wm_prepare(&m);
    for (int i = 0; i < 200; i++) {
        char rel[32];
        snprintf(rel, sizeof(rel), "f%03d", i);
        write_bytes(SRC(rel), 1000 + (size_t)i, (unsigned)i);
    }
    char *out = run_index(false, 0);
    ck_assert_int_eq(wm_json_num(out, "hashed"), 200);
    ck_assert_int_eq(wm_json_num(out, "added"), 200);
    free(out);
    out = run_index(false, 0); /* unchanged: stat only, no file read */
    ck_assert_int_eq(wm_json_num(out, "hashed"), 0);
    ck_assert_int_eq(wm_json_num(out, "added") + wm_json_num(out, "modified"), 0);
    free(out);
    /* Edits made while nothing runs. */
    write_bytes(SRC("f007"), 1007, 99);
    ck_assert_int_eq(unlink(SRC("f008")), 0);
    wm_write(SRC("new"), "new");
    out = run_index(true, 0);
    ck_assert_int_eq(wm_json_num(out, "hashed"), 2);
    ck_assert_int_eq(wm_json_num(out, "modified"), 1);
    ck_assert_int_eq(wm_json_num(out, "added"), 1);
    ck_assert_int_eq(wm_json_num(out, "deleted"), 1);
    free(out);
    /* A mount picks up where the index left off, then the journal says so. */
    ck_assert_int_eq(wm_sh("'%s' mount '%s' '%s'", wm_bin(), m.src, m.mnt), 0);
    m.mounted = true;
    wait_caught_up();
    char *log = wm_sh_out(NULL, "'%s' log -n 5 '%s'", wm_bin(), m.mnt);
    ck_assert_msg(strstr(log, " modify f007\n") && strstr(log, " delete f008\n") &&
                      strstr(log, " add new\n"),
                  "journal lacks the offline edits:\n%s", log);
    free(log);
}
END_TEST

START_TEST(rename_moves_rows_without_rehashing)
{
    wm_setup(&m, "");
    ck_assert_int_eq(mkdir(MNT("dir"), 0755), 0);
    write_bytes(MNT("dir/a.bin"), 1 << 20, 5);
    write_bytes(MNT("dir/b.bin"), 1 << 20, 6);
    wait_caught_up();
    char *st = wm_status_json(&m);
    long long hashed = wm_json_num(st, "hashed_files");
    char root[64], after[64];
    ck_assert(wm_json_str(st, "root", root, sizeof(root)));
    free(st);
    ck_assert_int_eq(rename(MNT("dir"), MNT2("moved")), 0);
    ck_assert_int_eq(rename(MNT("moved/a.bin"), MNT2("moved/c.bin")), 0);
    wait_caught_up();
    st = wm_status_json(&m);
    ck_assert_int_eq(wm_json_num(st, "hashed_files"), hashed); /* nothing re-read */
    ck_assert(wm_json_str(st, "root", after, sizeof(after)));
    ck_assert_str_ne(root, after);
    free(st);
    char *out = run_index(true, 0);
    ck_assert_int_eq(wm_json_num(out, "hashed"), 0);
    free(out);
    char *log = wm_sh_out(NULL, "'%s' log -n 5 '%s'", wm_bin(), m.mnt);
    ck_assert_msg(strstr(log, " rename moved\n") && strstr(log, " rename moved/c.bin\n"),
                  "journal lacks the renames:\n%s", log);
    free(log);
}
END_TEST

START_TEST(kill_during_heavy_writes_converges)
{
    wm_setup(&m, "");
    char *st = wm_status_json(&m);
    pid_t daemon = (pid_t)wm_json_num(st, "pid");
    free(st);
    ck_assert_int_gt(daemon, 1);
    pid_t writer = fork();
    if (writer == 0) {
        /* Create, rewrite, rename and delete files as fast as we can. */
        char a[PATH_MAX + 32], b[PATH_MAX + 32];
        for (int i = 0;; i++) {
            snprintf(a, sizeof(a), "%s/w%d", m.mnt, i % 50);
            snprintf(b, sizeof(b), "%s/r%d", m.mnt, i % 37);
            int fd = open(a, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0)
                _exit(0); /* the mount died under us: done */
            char buf[8192];
            memset(buf, 'a' + i % 26, sizeof(buf));
            for (int k = 0; k < 1 + i % 8; k++)
                if (write(fd, buf, sizeof(buf)) < 0)
                    _exit(0);
            close(fd);
            if (i % 3 == 0)
                rename(a, b);
            if (i % 5 == 0)
                unlink(b);
        }
    }
    usleep(300 * 1000);
    ck_assert_int_eq(kill(daemon, SIGKILL), 0);
    int status;
    waitpid(writer, &status, 0);
    for (int i = 0; i < 5000 && kill(daemon, 0) == 0; i++)
        usleep(1000);
    ck_assert_int_eq(wm_sh("'%s' unmount '%s' 2>/dev/null", wm_bin(), m.mnt), 0);
    m.mounted = false;
    /* Restart: the index converges to what SRC holds. */
    char *out = run_index(true, 0);
    ck_assert_msg(strstr(out, "\"consistent\":true"), "index inconsistent after kill: %s", out);
    free(out);
    ck_assert_int_eq(wm_sh("'%s' mount '%s' '%s'", wm_bin(), m.src, m.mnt), 0);
    m.mounted = true;
    wait_caught_up();
    out = run_index(true, 0);
    ck_assert_int_eq(wm_json_num(out, "hashed"), 0);
    free(out);
}
END_TEST

START_TEST(rules_leave_paths_out_and_bad_rules_are_refused)
{
    wm_prepare(&m);
    /* Default rules: build/ and node_modules/ are local, *.swp ignored. */
    ck_assert_int_eq(mkdir(SRC("build"), 0755), 0);
    write_bytes(SRC("build/out.o"), 100000, 1);
    wm_write(SRC("notes.swp"), "x");
    wm_write(SRC("main.c"), "int x;\n");
    char *out = run_index(true, 0);
    ck_assert_int_eq(wm_json_num(out, "hashed"), 1); /* main.c only */
    ck_assert_msg(strstr(out, "\"consistent\":true"), "%s", out);
    char root1[64];
    ck_assert(wm_json_str(out, "root", root1, sizeof(root1)));
    free(out);
    write_bytes(SRC("build/out.o"), 100000, 2); /* local: the root does not move */
    out = run_index(false, 0);
    char root2[64];
    ck_assert(wm_json_str(out, "root", root2, sizeof(root2)));
    ck_assert_str_eq(root1, root2);
    free(out);

    /* A bad rules file names itself and the line, for index and mount. */
    wm_write(SRC(".wsyncrules"), "[local]\n/build/\n[bogus]\n");
    int st;
    out = wm_sh_out(&st, "'%s' index '%s' 2>&1", wm_bin(), m.src);
    ck_assert_int_eq(st, 1);
    ck_assert_msg(strstr(out, ".wsyncrules:3"), "no file:line in: %s", out);
    free(out);
    out = wm_sh_out(&st, "'%s' mount '%s' '%s' 2>&1", wm_bin(), m.src, m.mnt);
    ck_assert_int_eq(st, 1);
    ck_assert_msg(strstr(out, ".wsyncrules:3"), "no file:line in: %s", out);
    free(out);

    /* Rules written through the mount take effect: notes.swp becomes mirrored. */
    wm_write(SRC(".wsyncrules"), "[local]\n/build/\n");
    ck_assert_int_eq(wm_sh("'%s' mount '%s' '%s'", wm_bin(), m.src, m.mnt), 0);
    m.mounted = true;
    wait_caught_up();
    char *log = wm_sh_out(NULL, "'%s' log -n 20 '%s'", wm_bin(), m.mnt);
    ck_assert_msg(strstr(log, " add notes.swp\n"), "notes.swp not indexed:\n%s", log);
    ck_assert_msg(!strstr(log, "build/out.o"), "local path indexed:\n%s", log);
    free(log);
    wm_write(MNT(".wsyncrules"), "[ignore]\n*.swp\n[local]\n/build/\n");
    wait_caught_up();
    log = wm_sh_out(NULL, "'%s' log -n 20 '%s'", wm_bin(), m.mnt);
    ck_assert_msg(strstr(log, " delete notes.swp\n"), "rules change not applied:\n%s", log);
    free(log);
}
END_TEST

START_TEST(in_place_write_rehashes_only_its_chunk)
{
    wm_setup(&m, "");
    write_bytes(MNT("big.bin"), 64 << 20, 9);
    wait_caught_up();
    char *st = wm_status_json(&m);
    long long before = wm_json_num(st, "hashed_bytes");
    free(st);
    int fd = open(MNT("big.bin"), O_WRONLY);
    ck_assert_int_eq(pwrite(fd, "four kilobytes, more or less", 28, 30 << 20), 28);
    close(fd);
    wait_caught_up();
    st = wm_status_json(&m);
    long long read = wm_json_num(st, "hashed_bytes") - before;
    free(st);
    ck_assert_msg(read > 0 && read <= 2 << 20, "re-read %lld bytes for a 28-byte write", read);
    char *out = run_index(true, 0); /* and the partial result is exact */
    ck_assert_msg(strstr(out, "\"consistent\":true"), "%s", out);
    ck_assert_int_eq(wm_json_num(out, "hashed"), 0);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("index");
    TCase *tc = tcase_create("index");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, mount_indexes_and_root_matches_fresh);
    tcase_add_test(tc, restart_hashes_only_what_changed);
    tcase_add_test(tc, rename_moves_rows_without_rehashing);
    tcase_add_test(tc, kill_during_heavy_writes_converges);
    tcase_add_test(tc, rules_leave_paths_out_and_bad_rules_are_refused);
    tcase_add_test(tc, in_place_write_rehashes_only_its_chunk);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
