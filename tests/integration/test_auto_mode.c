/*
 * test_auto_mode.c — `auto`, the default mode of `wsync remote add`: A
 * mounts its tree with a remote on host B (a network namespace with its
 * own sshd, tests/lib/hosts.c) added without --mode.  When B runs its own
 * `wsync mount` of that tree the remote is two-way (an edit made on B
 * reaches A's mount); when it does not — a stale control socket left by a
 * dead mount included — it is a replica (B's direct edit is overwritten by
 * A's, and nothing comes back); and when B mounts later, the recheck
 * (WSYNC_AUTO_RECHECK_MS, short here) switches it to two-way, and back to
 * replica when B unmounts.  A far side too old to say is a replica; one
 * that cannot be reached gets no session at all until it answers.  Waits
 * are bounded polls on the outcome.
 */
#include "tests/lib/harness.h"
#include "tests/lib/pair.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define BOUND_MS 30000

static struct wpair P; /* A: P.a.src mounted at P.a.mnt; B: P.h.ns[1] */

static void setup(void)
{
    wpair_setup(&P);
    unsetenv("WSYNC_AUTO_RECHECK_MS");
}

static void teardown(void)
{
    wpair_teardown(&P);
}

static void mount_b(void)
{
    wpair_mount_b(&P);
}

/* A gets remote b with no --mode, and mounts. */
static void start_a(void)
{
    char *out;
    int st = wm_wsync(&out, "remote add -C '%s' --rsh '%s' --wsync-path '%s' b '%s'", P.a.src,
                      P.h.rsh, P.bwsync, P.dest);
    ck_assert_msg(st == 0 && strstr(out, "(auto: two-way while its tree is mounted there"),
                  "remote add: %s", out);
    free(out);
    char *ls = wm_sh_out(NULL, "'%s' remote ls -C '%s'", wm_bin(), P.a.src);
    ck_assert_msg(strstr(ls, "(auto"), "remote ls: %s", ls); /* the default, and listed */
    free(ls);
    wm_wsync_ok("mount '%s' '%s'", P.a.src, P.a.mnt);
    P.a.mounted = true;
}

/* Status says auto runs `arg` ("two-way" or "replica"), connected. */
static bool runs(void *arg)
{
    char want[64];
    snprintf(want, sizeof(want), "\"auto\":\"%s\"", (const char *)arg);
    char *st = wpair_status_b(&P);
    bool ok = st && strstr(st, "\"mode\":\"auto\"") && strstr(st, want) &&
              strstr(st, "\"connected\":true");
    free(st);
    return ok;
}

static void comes_to_run(const char *kind)
{
    if (wm_poll(runs, (void *)kind, BOUND_MS))
        return;
    char *st = wpair_status_b(&P);
    ck_assert_msg(0, "auto never ran %s: %s", kind, st ? st : "(no status)");
}

START_TEST(mounted_far_tree_runs_two_way)
{
    mount_b();
    start_a();
    comes_to_run("two-way");
    wm_put(P.a.mnt, "a.c", "int a;\n");
    wm_appears(P.bmnt, "a.c", "int a;\n", BOUND_MS);
    /* the rule of issue 7: an edit on the robot flows back */
    wm_put(P.btree, "tuned.yaml", "gain: 7\n");
    wm_appears(P.a.mnt, "tuned.yaml", "gain: 7\n", BOUND_MS);
    wm_put(P.bmnt, "a.c", "int a = 2; /* B's mount */\n");
    wm_appears(P.a.mnt, "a.c", "int a = 2; /* B's mount */\n", BOUND_MS);
    char *text = wm_sh_out(NULL, "'%s' status '%s'", wm_bin(), P.a.mnt);
    ck_assert_msg(strstr(text, "(auto: two-way, far tree is mounted)") && strstr(text, "rounds"),
                  "status: %s", text);
    free(text);
    char *st = wpair_status_b(&P);
    ck_assert_msg(st && wm_json_num(st, "auto_switches") == 0 && wm_json_num(st, "pulled") >= 2,
                  "status: %s", st ? st : "(none)");
    free(st);
    ck_assert_int_eq(wm_conflict_copies(P.a.src, "a"), 0);
}
END_TEST

/* A unix socket file nobody listens on: what a mount killed by SIGKILL
 * leaves behind in its state directory. */
static void stale_control_socket(const char *tree)
{
    char dir[PATH_MAX], path[PATH_MAX];
    wm_path(dir, sizeof(dir), tree, ".wsync");
    mkdir(dir, 0700);
    wm_path(path, sizeof(path), dir, "control.sock");
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(path), sizeof(a.sun_path));
    strcpy(a.sun_path, path);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_ge(s, 0);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    close(s);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert(S_ISSOCK(sb.st_mode));
}

START_TEST(unmounted_far_tree_runs_replica)
{
    stale_control_socket(P.btree);
    wm_put(P.a.src, "cfg.yaml", "rate: 10\n");
    start_a();
    comes_to_run("replica");
    wm_appears(P.btree, "cfg.yaml", "rate: 10\n", BOUND_MS);
    /* someone edits B's copy directly, and adds a file there */
    wm_put(P.btree, "cfg.yaml", "rate: 50 (robot)\n");
    wm_put(P.btree, "robot_only.txt", "made on B\n");
    /* A's next edit of the file wins on B, as a replica's does */
    wm_put(P.a.mnt, "cfg.yaml", "rate: 20 (laptop)\n");
    wm_appears(P.btree, "cfg.yaml", "rate: 20 (laptop)\n", BOUND_MS);
    wm_put(P.a.mnt, "barrier", "after\n");
    wm_appears(P.btree, "barrier", "after\n", BOUND_MS);
    /* and nothing came back: no pull, no conflict copy */
    char p[PATH_MAX];
    wm_path(p, sizeof(p), P.a.mnt, "robot_only.txt");
    ck_assert_int_eq(access(p, F_OK), -1);
    wm_path(p, sizeof(p), P.a.mnt, "cfg.yaml");
    char *a = wm_read(p, NULL);
    ck_assert_str_eq(a, "rate: 20 (laptop)\n");
    free(a);
    ck_assert_int_eq(wm_conflict_copies(P.a.mnt, "cfg"), 0);
    char *text = wm_sh_out(NULL, "'%s' status '%s'", wm_bin(), P.a.mnt);
    ck_assert_msg(strstr(text, "(auto: replica, far tree is not mounted)") &&
                      strstr(text, "batches"),
                  "status: %s", text);
    free(text);
}
END_TEST

START_TEST(far_tree_mounted_later_switches_to_two_way_and_back)
{
    setenv("WSYNC_AUTO_RECHECK_MS", "500", 1); /* A's daemon inherits it */
    start_a();
    comes_to_run("replica");
    wm_put(P.a.mnt, "a.c", "int a;\n");
    wm_appears(P.btree, "a.c", "int a;\n", BOUND_MS);
    mount_b();
    comes_to_run("two-way");
    char *st = wpair_status_b(&P);
    ck_assert_msg(st && wm_json_num(st, "auto_switches") == 1, "status: %s", st ? st : "(none)");
    free(st);
    /* the replica made both sides equal: the first two-way round keeps
     * them so, without conflict copies */
    wm_put(P.bmnt, "a.c", "int a = 2; /* B's mount */\n");
    wm_appears(P.a.mnt, "a.c", "int a = 2; /* B's mount */\n", BOUND_MS);
    ck_assert_int_eq(wm_conflict_copies(P.a.src, "a"), 0);
    wm_put(P.a.mnt, "b.c", "int b;\n");
    wm_appears(P.bmnt, "b.c", "int b;\n", BOUND_MS);
    /* B unmounts: replica again.  A file made on B just then is pulled
     * by the last two-way rounds, not deleted by the replica's catch-up. */
    wm_wsync_ok("unmount '%s'", P.bmnt);
    P.bmounted = false;
    wm_put(P.btree, "late.txt", "made on B as it unmounted\n");
    comes_to_run("replica");
    wm_appears(P.a.mnt, "late.txt", "made on B as it unmounted\n", BOUND_MS);
    wm_appears(P.btree, "late.txt", "made on B as it unmounted\n", BOUND_MS);
    st = wpair_status_b(&P);
    ck_assert_msg(st && wm_json_num(st, "auto_switches") == 2, "status: %s", st ? st : "(none)");
    free(st);
    wm_put(P.a.mnt, "c.c", "int c;\n");
    wm_appears(P.btree, "c.c", "int c;\n", BOUND_MS);
}
END_TEST

/* A far side older than the mounted= fact: B's wsync behind a wrapper
 * that drops it from the probe line (everything else is the real thing).
 * B is mounted, yet the remote must be a replica, as before auto. */
/* A reconnect of the worker re-asks at once (the far side may have been
 * remounted while the link was down); the periodic recheck is set to an
 * hour here, so only the reconnect can make the switch. */
START_TEST(reconnect_rechecks_at_once)
{
    setenv("WSYNC_AUTO_RECHECK_MS", "3600000", 1); /* A's daemon inherits it */
    start_a();
    comes_to_run("replica");
    mount_b();
    /* B's serve (connected: comes_to_run saw it) dies, as in a reboot or
     * a killed ssh; the replica finds out at its next send (it does not
     * read an idle stream) and reconnects */
    ck_assert_int_ge(hosts_kill_matching(&P.h, 1, P.btree), 1);
    wm_put(P.a.mnt, "poke", "p\n");
    wm_appears(P.btree, "poke", "p\n", BOUND_MS);
    ck_assert_msg(wm_poll(runs, "two-way", BOUND_MS), "still not two-way after the reconnect");
    wm_put(P.btree, "tuned.yaml", "gain: 7\n");
    wm_appears(P.a.mnt, "tuned.yaml", "gain: 7\n", BOUND_MS);
}
END_TEST

START_TEST(far_side_that_does_not_say_is_replica)
{
    char old[PATH_MAX + 16];
    snprintf(old, sizeof(old), "%s/old-wsync", P.a.root);
    FILE *f = fopen(old, "w");
    ck_assert_ptr_nonnull(f);
    /* stdout (the stream) passes through fd 3; stderr through sed. */
    fprintf(f,
            "#!/bin/bash\nset -o pipefail\n"
            "{ WSYNC_HOST=hostb '%s' \"$@\" 2>&1 1>&3 | sed 's/ mounted=[01]//' >&2; } 3>&1\n",
            wm_bin());
    fclose(f);
    ck_assert_int_eq(chmod(old, 0755), 0);
    mount_b();
    wm_wsync_ok("remote add -C '%s' --rsh '%s' --wsync-path '%s' b '%s'", P.a.src, P.h.rsh, old,
                P.dest);
    wm_wsync_ok("mount '%s' '%s'", P.a.src, P.a.mnt);
    P.a.mounted = true;
    comes_to_run("replica");
    wm_put(P.a.mnt, "a.c", "int a;\n");
    wm_appears(P.bmnt, "a.c", "int a;\n", BOUND_MS);
    char *st = wpair_status_b(&P);
    ck_assert_msg(st && strstr(st, "\"auto_why\":\"far side's wsync does not say\""), "status: %s",
                  st ? st : "(none)");
    free(st);
}
END_TEST

/* A far side that cannot be reached: no session of either kind starts
 * (a guessed replica could overwrite edits there); status says why. */
static bool asking_fails(void *arg)
{
    char *st = wpair_status_b(&P);
    bool ok = st && strstr(st, "\"auto\":null") && strstr(st, "\"running\":true") &&
              strstr(st, "cannot ask the far side whether it is mounted") &&
              wm_json_num(st, "retry_ms") > 0 && wm_json_num(st, "sessions") == 0;
    free(st);
    return ok;
}

START_TEST(unreachable_far_side_runs_nothing_yet)
{
    wm_wsync_ok("remote add -C '%s' --rsh false b host:/nowhere", P.a.src);
    wm_wsync_ok("mount '%s' '%s'", P.a.src, P.a.mnt);
    P.a.mounted = true;
    wm_put(P.a.mnt, "a.c", "int a;\n");
    if (!wm_poll(asking_fails, NULL, BOUND_MS)) {
        char *st = wpair_status_b(&P);
        ck_assert_msg(0, "status: %s", st ? st : "(none)");
    }
    char *text = wm_sh_out(NULL, "'%s' status '%s'", wm_bin(), P.a.mnt);
    ck_assert_msg(strstr(text, "(auto: undecided"), "status: %s", text);
    free(text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("auto_mode");
    TCase *tc = tcase_create("auto_mode");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, mounted_far_tree_runs_two_way);
    tcase_add_test(tc, unmounted_far_tree_runs_replica);
    tcase_add_test(tc, far_tree_mounted_later_switches_to_two_way_and_back);
    tcase_add_test(tc, far_side_that_does_not_say_is_replica);
    tcase_add_test(tc, reconnect_rechecks_at_once);
    tcase_add_test(tc, unreachable_far_side_runs_nothing_yet);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
