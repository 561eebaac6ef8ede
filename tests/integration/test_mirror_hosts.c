/*
 * test_mirror_hosts.c — live mirroring between separate hosts: host A
 * mounts the project with remotes B and C (network namespaces joined to A
 * by veth links, each with its own sshd), and the mirrors travel over TCP.
 * An edit on A reaches B and C with equal tree roots and shows at once in
 * B's own mount of its replica; then the faults: the far serve killed
 * mid-transfer, the link cut for 10 s while edits go on, the far disk full
 * and freed, the mount daemon killed and remounted.  Each ends with equal
 * roots and no file ever seen torn on the far side.
 */
#include "tests/lib/harness.h"
#include "tests/lib/hosts.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BOUND_MS 30000

static struct wmount m;            /* A: src/ mounted at mnt/ */
static struct whosts h;            /* h.ns[0] = A, 1 = B, 2 = C */
static char rep[3][PATH_MAX + 16]; /* rep[1], rep[2]: the replicas on B and C */
static char dest[3][PATH_MAX + 64];

static void setup(void)
{
    wm_prepare(&m);
    hosts_setup(&h, 3);
    for (int i = 1; i <= 2; i++) {
        snprintf(rep[i], sizeof(rep[i]), "%s/%s", m.root, i == 1 ? "b" : "c");
        ck_assert_int_eq(mkdir(rep[i], 0755), 0);
        hosts_dest(&h, (size_t)i, rep[i], dest[i], sizeof(dest[i]));
    }
}

static void teardown(void)
{
    wm_teardown(&m);
    hosts_teardown(&h);
}

/* Remotes B and C in SRC's config, then mount: the mount starts both.
 * Replica by name: B mounts its tree, which would make an auto remote
 * (the default) two-way; these tests are about the replica worker. */
static void mount_a(void)
{
    for (int i = 1; i <= 2; i++)
        wm_wsync_ok("remote add -C '%s' --rsh '%s' --wsync-path '%s' --mode replica %s '%s'", m.src,
                    h.rsh, wm_bin(), i == 1 ? "b" : "c", dest[i]);
    wm_wsync_ok("mount '%s' '%s'", m.src, m.mnt);
    m.mounted = true;
}

static bool roots_equal(int i)
{
    return wm_sh("'%s' verify --rsh '%s' --wsync-path '%s' '%s' '%s' >/dev/null 2>&1", wm_bin(),
                 h.rsh, wm_bin(), m.src, dest[i]) == 0;
}

static bool both_equal(void *arg)
{
    return roots_equal(1) && roots_equal(2);
}

/* This remote's object inside `wsync status --json`; malloc'ed, or NULL. */
static char *remote_status(const char *name)
{
    char *all = wm_sh_out(NULL, "'%s' status --json '%s'", wm_bin(), m.mnt);
    char key[64];
    snprintf(key, sizeof(key), "{\"name\":\"%s\"", name);
    char *at = strstr(all, key);
    char *out = at ? strndup(at, strcspn(at, "}") + 1) : NULL;
    free(all);
    return out;
}

static bool b_reports_error(void *arg)
{
    char *st = remote_status("b");
    char err[1024] = "";
    bool ok = st && wm_json_str(st, "last_error", err, sizeof(err)) &&
              strstr(err, (const char *)arg) != NULL;
    free(st);
    return ok;
}

/* A file of `mib` MiB of random bytes, written through the mount under a
 * temporary name and renamed into place: `rel` itself only ever exists
 * complete, so any other content of it on a far side is a torn file. */
static void write_random(const char *rel, int mib)
{
    ck_assert_int_eq(wm_sh("head -c %dM /dev/urandom > '%s/.%s.tmp' && mv '%s/.%s.tmp' '%s/%s'",
                           mib, m.mnt, rel, m.mnt, rel, m.mnt, rel),
                     0);
}

/* The far copy of rel is absent or identical to ours: never torn. */
static void assert_not_torn(int i, const char *rel, const char *when)
{
    char far[PATH_MAX + 64];
    snprintf(far, sizeof(far), "%s/%s", rep[i], rel);
    if (access(far, F_OK) != 0)
        return;
    ck_assert_msg(wm_sh("cmp -s '%s/%s' '%s'", m.src, rel, far) == 0, "%s is torn on host %d %s",
                  rel, i, when);
}

/* Both replicas equal to SRC, or fail showing what status says. */
static void assert_converges(const char *when)
{
    if (wm_poll(both_equal, NULL, BOUND_MS))
        return;
    char *sb = remote_status("b"), *sc = remote_status("c");
    ck_abort_msg("no convergence %s; b: %s; c: %s", when, sb ? sb : "(none)", sc ? sc : "(none)");
}

static void assert_no_staging_left(int i)
{
    ck_assert_int_eq(wm_sh("test -z \"$(ls -A '%s/.wsync/staging' 2>/dev/null)\"", rep[i]), 0);
}

START_TEST(edit_on_a_reaches_b_and_c_and_bs_own_mount)
{
    /* B mounts its replica, as its containers would use it. */
    char bmnt[PATH_MAX + 16], seen[PATH_MAX + 64];
    snprintf(bmnt, sizeof(bmnt), "%s/bmnt", m.root);
    ck_assert_int_eq(mkdir(bmnt, 0755), 0);
    char args[PATH_MAX + 64];
    wm_wsync_ok("mount '%s' '%s'", rep[1], bmnt);
    mount_a();
    snprintf(seen, sizeof(seen), "%s/src.c", bmnt);
    struct stat st;
    ck_assert_int_eq(stat(seen, &st), -1); /* B's kernel now caches the absence */
    snprintf(args, sizeof(args), "%s/lib", m.mnt);
    ck_assert_int_eq(mkdir(args, 0755), 0);
    snprintf(args, sizeof(args), "%s/lib/util.h", m.mnt);
    wm_write(args, "#pragma once\n");
    snprintf(args, sizeof(args), "%s/src.c", m.mnt);
    wm_write(args, "int main(void) { return 0; }\n");
    bool shown = wm_poll_content(seen, "int main(void) { return 0; }\n", BOUND_MS);
    char cpath[PATH_MAX + 64];
    snprintf(cpath, sizeof(cpath), "%s/lib/util.h", rep[2]);
    bool on_c = wm_poll_content(cpath, "#pragma once\n", BOUND_MS);
    bool equal = wm_poll(both_equal, NULL, BOUND_MS);
    int ust = wm_sh("'%s' unmount '%s'", wm_bin(), bmnt);
    ck_assert_msg(shown, "B's mount never showed src.c from A");
    ck_assert_msg(on_c, "C never got lib/util.h");
    ck_assert_msg(equal, "roots of A, B and C never became equal");
    ck_assert_int_eq(ust, 0);
    /* status names both remotes, connected and caught up. */
    char *sb = remote_status("b"), *sc = remote_status("c");
    ck_assert_msg(sb && strstr(sb, "\"connected\":true") && strstr(sb, "\"lag_seq\":0"),
                  "status of b: %s", sb ? sb : "(missing)");
    ck_assert_msg(sc && strstr(sc, "\"connected\":true"), "status of c: %s", sc ? sc : "(none)");
    ck_assert_int_gt(wm_json_num(sb, "bytes_out"), 0);
    free(sb);
    free(sc);
}
END_TEST

START_TEST(far_serve_killed_mid_transfer)
{
    mount_a();
    assert_converges("at the start");
    write_random("big.bin", 48);
    /* Kill B's serve while the big file is on its way. */
    char needle[PATH_MAX + 32];
    snprintf(needle, sizeof(needle), "serve --stdio %s", rep[1]);
    int killed = 0;
    for (int tries = 0; tries < 20000 && !killed; tries++) {
        if (wm_sh("test -n \"$(ls -A '%s/.wsync/staging' 2>/dev/null)\"", rep[1]) == 0)
            killed = hosts_kill_matching(&h, 1, needle);
        else
            usleep(1000);
    }
    ck_assert_msg(killed > 0, "never caught B's serve with a file staged");
    assert_not_torn(1, "big.bin", "right after the kill");
    /* Edits go on; B reconnects and catches up. */
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/after", m.mnt);
    wm_write(p, "after the kill");
    assert_converges("after the kill");
    assert_not_torn(1, "big.bin", "after the catch-up");
    assert_no_staging_left(1);
    char *sb = remote_status("b");
    ck_assert_msg(sb && wm_json_num(sb, "sessions") >= 2, "no reconnect in status: %s", sb);
    free(sb);
}
END_TEST

static bool b_disconnected(void *arg)
{
    char *st = remote_status("b");
    bool ok = st && strstr(st, "\"connected\":false") && !strstr(st, "\"last_error\":\"\"");
    free(st);
    return ok;
}

START_TEST(link_down_for_ten_seconds_while_edits_continue)
{
    mount_a();
    assert_converges("at the start");
    hosts_link(&h, 1, 0);
    char p[PATH_MAX + 64], c[PATH_MAX + 64];
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int i = 0;
    bool c_kept_up = true;
    long long max_retry = 0; /* B's reconnect backoff, as status shows it */
    /* Edits for 10 s; C (its link is up) must get each one meanwhile. */
    do {
        char body[32];
        snprintf(body, sizeof(body), "edit %d", i);
        snprintf(p, sizeof(p), "%s/during-%d", m.mnt, i);
        wm_write(p, body);
        snprintf(p, sizeof(p), "%s/log", m.mnt);
        wm_write(p, body); /* the same file rewritten again and again */
        snprintf(c, sizeof(c), "%s/during-%d", rep[2], i);
        c_kept_up &= wm_poll_content(c, body, BOUND_MS);
        char *sb = remote_status("b");
        long long retry = wm_json_num(sb, "retry_ms");
        max_retry = retry > max_retry ? retry : max_retry;
        free(sb);
        i++;
        usleep(500 * 1000); /* pacing the edits (~2 a second), not waiting for anything */
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (t.tv_sec - t0.tv_sec < 10);
    ck_assert_msg(c_kept_up, "C was held back by B's dead link");
    ck_assert_msg(max_retry >= 400 && max_retry <= 5000,
                  "backoff while B is down should grow, capped at 5 s: max %lld ms", max_retry);
    ck_assert_msg(wm_poll(b_disconnected, NULL, BOUND_MS), "status never said B is down");
    char *sb = remote_status("b");
    ck_assert_msg(sb && wm_json_num(sb, "pending_files") > 0 && wm_json_num(sb, "lag_seq") > 0,
                  "no lag shown for B while its link is down: %s", sb);
    free(sb);
    hosts_link(&h, 1, 1);
    assert_converges("after the link came back");
    snprintf(p, sizeof(p), "%s/log", rep[1]);
    char want[32];
    snprintf(want, sizeof(want), "edit %d", i - 1);
    ck_assert(wm_poll_content(p, want, BOUND_MS));
    assert_no_staging_left(1);
}
END_TEST

START_TEST(far_disk_full_then_freed)
{
    /* B's replica on a 3 MiB tmpfs. */
    ck_assert_int_eq(wm_sh("mount -t tmpfs -o size=3m wsync-test '%s'", rep[1]), 0);
    mount_a();
    assert_converges("at the start");
    write_random("too-big.bin", 8);
    ck_assert_msg(wm_poll(b_reports_error, "No space left", BOUND_MS),
                  "status never showed B's disk full");
    ck_assert_msg(!roots_equal(1), "B cannot hold the file yet");
    ck_assert_msg(roots_equal(2), "C was held back by B's full disk");
    assert_not_torn(1, "too-big.bin", "while the disk is full");
    /* Space is freed: B converges on its next retry. */
    ck_assert_int_eq(wm_sh("mount -o remount,size=64m '%s'", rep[1]), 0);
    bool ok = wm_poll(both_equal, NULL, BOUND_MS);
    char *sb = remote_status("b");
    wm_teardown(&m); /* unmount A before the tmpfs goes */
    int um = wm_sh("umount '%s'", rep[1]);
    ck_assert_msg(ok, "B never converged after space was freed: %s", sb);
    ck_assert_msg(strstr(sb, "\"last_error\":\"\""), "the error stayed after recovery: %s", sb);
    free(sb);
    ck_assert_int_eq(um, 0);
}
END_TEST

START_TEST(mount_daemon_killed_then_remounted)
{
    mount_a();
    assert_converges("at the start");
    char *st = wm_sh_out(NULL, "'%s' status --json '%s'", wm_bin(), m.mnt);
    long long pid = wm_json_num(st, "pid");
    free(st);
    ck_assert_int_gt(pid, 1);
    write_random("in-flight.bin", 16);
    ck_assert_int_eq(kill((pid_t)pid, SIGKILL), 0);
    /* Edits made directly in SRC while nothing runs. */
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/while-dead", m.src);
    wm_write(p, "made while the daemon was dead");
    assert_not_torn(1, "in-flight.bin", "after the daemon died");
    assert_not_torn(2, "in-flight.bin", "after the daemon died");
    wm_wsync_ok("unmount '%s'", m.mnt); /* the stale mount */
    m.mounted = false;
    wm_wsync_ok("mount '%s' '%s'", m.src, m.mnt);
    m.mounted = true;
    assert_converges("after the remount");
    assert_not_torn(1, "in-flight.bin", "after the remount");
    assert_no_staging_left(1);
    assert_no_staging_left(2);
}
END_TEST

/* One case per test, so CK_RUN_CASE=NAME runs just one. */
static void add(Suite *s, const char *name, const TTest *t)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
}

int main(void)
{
    Suite *s = suite_create("mirror_hosts");
    add(s, "three_hosts", edit_on_a_reaches_b_and_c_and_bs_own_mount);
    add(s, "serve_killed", far_serve_killed_mid_transfer);
    add(s, "link_down", link_down_for_ten_seconds_while_edits_continue);
    add(s, "disk_full", far_disk_full_then_freed);
    add(s, "daemon_killed", mount_daemon_killed_then_remounted);
    return wm_run_suite(s);
}
