/*
 * test_live_sync.c — live two-way and safe mirroring between hosts: A
 * mounts its tree with a `two-way` (or `safe`) remote on host B (a network
 * namespace with its own sshd, tests/lib/hosts.c), and B mounts its own
 * tree too.  Edits made through A's mount reach B; edits made on B,
 * directly in its tree or through B's mount, show in A's mount; a link
 * flap while both sides edit ends with equal roots, one conflict copy on
 * each side for the file both edited, the edit kept against a delete, and
 * every written byte present.  Safe mode never overwrites B's edit.  A
 * randomized schedule (seed printed on failure; WSYNC_SEED overrides) cuts
 * the link, edits, renames and deletes on both sides, restores the link,
 * and checks that the trees converge and nothing is lost but what an edit
 * on the same side replaced.  Waits are bounded polls on the outcome.
 */
#include "tests/lib/edits.h"
#include "tests/lib/harness.h"
#include "tests/lib/pair.h"

#include <check.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOUND_MS 30000

static struct wpair P; /* A: P.a.src mounted at P.a.mnt; B: P.h.ns[1] */

static void setup(void)
{
    wpair_setup(&P);
}

static void teardown(void)
{
    wpair_teardown(&P);
}

/* B mounts its tree; A gets remote b in `mode` and mounts. */
static void start_pair(const char *mode)
{
    wpair_mount_b(&P);
    wm_wsync_ok("remote add -C '%s' --rsh '%s' --wsync-path '%s' --mode %s b '%s'", P.a.src,
                P.h.rsh, P.bwsync, mode, P.dest);
    wm_wsync_ok("mount '%s' '%s'", P.a.src, P.a.mnt);
    P.a.mounted = true;
}

static bool roots_equal(void *arg)
{
    return wm_sh("'%s' verify --rsh '%s' --wsync-path '%s' '%s' '%s' >/dev/null 2>&1", wm_bin(),
                 P.h.rsh, wm_bin(), P.a.src, P.dest) == 0;
}

/* Some regular file under root (not .wsync) holds exactly data. */
static bool held_somewhere(const char *root, const char *data)
{
    return wm_sh("cd '%s' && find . -path ./.wsync -prune -o -type f -print0 | "
                 "xargs -0 grep -lxF '%s' >/dev/null",
                 root, data) == 0;
}

struct holds {
    const char *root, *data;
};

static bool holds(void *arg)
{
    const struct holds *h2 = arg;
    return held_somewhere(h2->root, h2->data);
}

/* Poll: a write on B may be seen half way (truncated, not yet written);
 * the copy kept here then follows B's later state. */
static void comes_to_hold(const char *root, const char *data)
{
    struct holds h2 = {root, data};
    ck_assert_msg(wm_poll(holds, &h2, BOUND_MS), "%s never held %s", root, data);
}

static bool conflicts_reported(void *arg)
{
    char *st = wpair_status_b(&P);
    bool ok = st && wm_json_num(st, "conflicts") >= (long long)(intptr_t)arg;
    free(st);
    return ok;
}

static bool no_lag(void *arg)
{
    char *st = wpair_status_b(&P);
    bool ok = st && strstr(st, "\"lag_seq\":0,");
    free(st);
    return ok;
}

/* Journal entries of root whose line ends with suffix. */
static int journal_count(const char *root, const char *suffix)
{
    char *out =
        wm_sh_out(NULL, "'%s' log -n 1000000 '%s' | grep -c -- '%s$'", wm_bin(), root, suffix);
    int n = atoi(out);
    free(out);
    return n;
}

static long long rounds(void)
{
    char *st = wpair_status_b(&P);
    long long n = st ? wm_json_num(st, "rounds") : -1;
    free(st);
    return n;
}

/* Polled: each look writes a file through A's mount, which starts a round. */
static bool rounds_past(void *arg)
{
    static int tick;
    char data[32];
    snprintf(data, sizeof(data), "%d\n", tick++);
    wm_put(P.a.mnt, "tick", data);
    return rounds() >= (long long)(intptr_t)arg;
}

START_TEST(edits_flow_both_ways_through_both_mounts)
{
    start_pair("two-way");
    wm_put(P.a.mnt, "src/a.c", "int a;\n");
    wm_appears(P.btree, "src/a.c", "int a;\n", BOUND_MS);
    wm_appears(P.bmnt, "src/a.c", "int a;\n", BOUND_MS);
    /* made directly in B's tree */
    wm_put(P.btree, "src/a.c", "int a = 2; /* on B */\n");
    wm_appears(P.a.mnt, "src/a.c", "int a = 2; /* on B */\n", BOUND_MS);
    wm_put(P.btree, "tuned.yaml", "gain: 7\n");
    wm_appears(P.a.mnt, "tuned.yaml", "gain: 7\n", BOUND_MS);
    /* what a round pulled is not lag (well within the 10 s fallback round) */
    ck_assert_msg(wm_poll(no_lag, NULL, 5000), "status shows the pulled file as lag");
    /* made through B's own mount */
    wm_put(P.bmnt, "src/a.c", "int a = 3; /* B's mount */\n");
    wm_appears(P.a.mnt, "src/a.c", "int a = 3; /* B's mount */\n", BOUND_MS);
    /* No echo: later rounds do not send B's edit back as an edit of A's
     * (a push would replace B's file: a new inode). */
    struct stat before, after;
    char bp[PATH_MAX];
    int a_changes = journal_count(P.btree, " src/a.c");
    ck_assert_int_ge(a_changes, 1); /* the count sees B's edits */
    wm_path(bp, sizeof(bp), P.btree, "src/a.c");
    ck_assert_int_eq(stat(bp, &before), 0);
    long long r0 = rounds();
    ck_assert_msg(wm_poll(rounds_past, (void *)(intptr_t)(r0 + 2), BOUND_MS), "no more rounds");
    wm_put(P.a.mnt, "marker", "m\n"); /* and a round that pushes something */
    wm_appears(P.btree, "marker", "m\n", BOUND_MS);
    ck_assert_int_eq(stat(bp, &after), 0);
    ck_assert_msg(before.st_ino == after.st_ino && before.st_mtim.tv_nsec == after.st_mtim.tv_nsec,
                  "B's edit came back from A (echo)");
    /* and B's journal has no change of it after B's own edit */
    ck_assert_int_eq(journal_count(P.btree, " src/a.c"), a_changes);
    ck_assert_int_eq(wm_sh("rm '%s/tuned.yaml'", P.bmnt), 0);
    char p[PATH_MAX];
    wm_path(p, sizeof(p), P.a.mnt, "tuned.yaml");
    for (int i = 0; i < BOUND_MS / 20 && access(p, F_OK) == 0; i++)
        usleep(20000);
    ck_assert_msg(access(p, F_OK) != 0, "a delete on B never reached A's mount");
    /* and back: A's next edit is not undone by an echo */
    wm_put(P.a.mnt, "src/a.c", "int a = 4; /* A again */\n");
    wm_appears(P.bmnt, "src/a.c", "int a = 4; /* A again */\n", BOUND_MS);
    ck_assert_msg(wm_poll(roots_equal, NULL, BOUND_MS), "roots never equal");
    char *st = wpair_status_b(&P);
    ck_assert_msg(st && strstr(st, "\"mode\":\"two-way\"") && wm_json_num(st, "conflicts") == 0 &&
                      wm_json_num(st, "bytes_out") > 0,
                  "status: %s", st ? st : "(none)");
    free(st);
    ck_assert_int_eq(wm_conflict_copies(P.a.src, "a") + wm_conflict_copies(P.btree, "tuned"), 0);
}
END_TEST

START_TEST(link_flap_merges_and_keeps_both_versions)
{
    start_pair("two-way");
    wm_put(P.a.mnt, "param.yaml", "gain: 1\n");
    wm_put(P.a.mnt, "doomed.txt", "old\n");
    wm_put(P.a.mnt, "keep.txt", "keep\n");
    wm_put(P.a.mnt, "moved.txt", "before the move\n");
    wm_appears(P.btree, "param.yaml", "gain: 1\n", BOUND_MS);
    wm_appears(P.btree, "doomed.txt", "old\n", BOUND_MS);
    ck_assert_msg(wm_poll(roots_equal, NULL, BOUND_MS), "roots never equal");
    hosts_link(&P.h, 1, 0);
    /* both sides work while apart */
    wm_put(P.a.mnt, "param.yaml", "gain: 2 (laptop)\n");
    wm_put(P.bmnt, "param.yaml", "gain: 3 (robot)\n");
    ck_assert_int_eq(wm_sh("rm '%s/doomed.txt'", P.a.mnt), 0); /* deleted on A ... */
    wm_put(P.bmnt, "doomed.txt", "rescued on B\n");            /* ... edited on B */
    ck_assert_int_eq(wm_sh("mv '%s/moved.txt' '%s/renamed.txt'", P.a.mnt, P.a.mnt), 0);
    wm_put(P.btree, "moved.txt", "edited on B, moved on A\n"); /* rename vs edit */
    wm_put(P.a.mnt, "only_a.txt", "from A while apart\n");
    wm_put(P.btree, "only_b.txt", "from B while apart\n");
    /* long enough for the session to die (ServerAlive 1 s x 3) */
    char *st = NULL;
    for (int i = 0; i < 100; i++) {
        free(st);
        st = wpair_status_b(&P);
        if (st && strstr(st, "\"connected\":false"))
            break;
        usleep(100000);
    }
    ck_assert_msg(st && strstr(st, "\"connected\":false"), "never noticed the cut: %s", st);
    free(st);
    hosts_link(&P.h, 1, 1);
    ck_assert_msg(wm_poll(roots_equal, NULL, 60000), "roots never equal after the flap");
    wm_appears(P.a.mnt, "only_b.txt", "from B while apart\n", BOUND_MS);
    wm_appears(P.bmnt, "only_a.txt", "from A while apart\n", BOUND_MS);
    wm_appears(P.a.mnt, "doomed.txt", "rescued on B\n", BOUND_MS); /* the edit beats the delete */
    wm_appears(P.bmnt, "renamed.txt", "before the move\n", BOUND_MS); /* the rename is kept ... */
    wm_appears(P.a.mnt, "moved.txt", "edited on B, moved on A\n", BOUND_MS); /* ... and the edit */
    /* one copy of param on each side, both versions on both */
    ck_assert_int_eq(wm_conflict_copies(P.a.src, "param"), 1);
    ck_assert_int_eq(wm_conflict_copies(P.btree, "param"), 1);
    const char *versions[] = {"gain: 2 (laptop)", "gain: 3 (robot)"};
    for (int v = 0; v < 2; v++) {
        ck_assert_msg(held_somewhere(P.a.mnt, versions[v]), "A lost %s", versions[v]);
        ck_assert_msg(held_somewhere(P.btree, versions[v]), "B lost %s", versions[v]);
    }
    ck_assert_msg(wm_poll(conflicts_reported, (void *)(intptr_t)1, BOUND_MS),
                  "status never counted the conflict");
    char *list = wm_sh_out(NULL, "cd '%s' && '%s' conflicts", P.a.src, wm_bin());
    ck_assert_msg(strstr(list, "param"), "wsync conflicts: %s", list);
    free(list);
    char *text = wm_sh_out(NULL, "'%s' status '%s'", wm_bin(), P.a.mnt);
    ck_assert_msg(strstr(text, "(two-way)") && strstr(text, "conflicts 1"), "status: %s", text);
    free(text);
}
END_TEST

START_TEST(safe_mode_never_overwrites_an_edit_on_b)
{
    start_pair("safe");
    wm_put(P.a.mnt, "cfg.yaml", "rate: 10\n");
    wm_appears(P.btree, "cfg.yaml", "rate: 10\n", BOUND_MS);
    ck_assert_msg(wm_poll(roots_equal, NULL, BOUND_MS), "roots never equal");
    /* someone tunes it on the robot */
    wm_put(P.btree, "cfg.yaml", "rate: 50 (robot)\n");
    ck_assert_msg(wm_poll(conflicts_reported, (void *)(intptr_t)1, BOUND_MS),
                  "the edit on B was never reported");
    comes_to_hold(P.a.mnt, "rate: 50 (robot)");
    ck_assert_int_eq(wm_conflict_copies(P.a.mnt, "cfg"), 1); /* B's version kept here, by name */
    /* A edits too: B's version must stay */
    wm_put(P.a.mnt, "cfg.yaml", "rate: 20 (laptop)\n");
    wm_put(P.a.mnt, "other.txt", "flows\n");
    wm_appears(P.btree, "other.txt", "flows\n", BOUND_MS); /* one-way still works */
    char *b = NULL;
    char p[PATH_MAX];
    wm_path(p, sizeof(p), P.btree, "cfg.yaml");
    b = wm_read(p, NULL);
    ck_assert_str_eq(b, "rate: 50 (robot)\n");
    free(b);
    char *st = wpair_status_b(&P);
    ck_assert_msg(st && strstr(st, "\"mode\":\"safe\""), "status: %s", st ? st : "(none)");
    free(st);
    char *list = wm_sh_out(NULL, "cd '%s' && '%s' conflicts", P.a.src, wm_bin());
    ck_assert_msg(strstr(list, "cfg"), "wsync conflicts: %s", list);
    free(list);
    /* a new file in a new directory on B: kept, and a copy lands here */
    wm_put(P.btree, "newdir/tune.yaml", "kp: 3 (robot)\n");
    char nd[PATH_MAX];
    wm_path(nd, sizeof(nd), P.a.mnt, "newdir");
    for (int i = 0; i < BOUND_MS / 20 && wm_conflict_copies(nd, "tune") != 1; i++)
        usleep(20000);
    comes_to_hold(nd, "kp: 3 (robot)");
    ck_assert_int_eq(wm_conflict_copies(nd, "tune"), 1);
    wm_path(p, sizeof(p), P.btree, "newdir/tune.yaml");
    b = wm_read(p, NULL);
    ck_assert_str_eq(b, "kp: 3 (robot)\n");
    free(b);
    /* keep mine: the copy goes, and only then is B's file replaced */
    ck_assert_int_eq(
        wm_sh("cd '%s' && '%s' conflicts resolve --keep mine >/dev/null", P.a.src, wm_bin()), 0);
    wm_appears(P.btree, "cfg.yaml", "rate: 20 (laptop)\n", BOUND_MS);
}
END_TEST

/* ---- a randomized schedule of partitions ---- */

static bool disconnected(void *arg)
{
    char *st = wpair_status_b(&P);
    bool down = st && strstr(st, "\"connected\":false");
    free(st);
    return down;
}

static bool pair_equal(void *arg)
{
    char why[1024];
    return wm_trees_equal(P.a.src, P.btree, why, sizeof(why)) && roots_equal(NULL);
}

START_TEST(random_partitions_converge_and_lose_nothing)
{
    unsigned long long seed =
        getenv("WSYNC_SEED") ? strtoull(getenv("WSYNC_SEED"), NULL, 0) : 20261129;
    wm_edits_seed(seed);
    start_pair("two-way");
    wm_put(P.a.mnt, "d1/.keep", "");
    wm_put(P.a.mnt, "d2/.keep", "");
    for (int round = 0; round < 4; round++) {
        ck_assert_msg(wm_poll(pair_equal, NULL, 60000), "seed %llu round %d: never equal before",
                      seed, round);
        hosts_link(&P.h, 1, 0);
        struct wm_texts gone = {0}, before = {0}, after = {0};
        for (int k = 0, n = 1 + (int)wm_edits_rnd(4); k < n; k++)
            wm_edits_random_op(P.a.mnt, 'A', round, k, &gone);
        for (int k = 0, n = 1 + (int)wm_edits_rnd(4); k < n; k++)
            wm_edits_random_op(wm_edits_rnd(2) ? P.btree : P.bmnt, 'B', round, k, &gone);
        ck_assert_msg(wm_poll(disconnected, NULL, BOUND_MS), "seed %llu round %d: never cut", seed,
                      round);
        wm_texts_collect(P.a.src, &before);
        wm_texts_collect(P.btree, &before);
        hosts_link(&P.h, 1, 1);
        ck_assert_msg(wm_poll(pair_equal, NULL, 60000), "seed %llu round %d: never converged", seed,
                      round);
        wm_texts_collect(P.a.src, &after);
        wm_edits_assert_nothing_lost(&before, &gone, &after, seed, round);
        wm_texts_free(&gone);
        wm_texts_free(&before);
        wm_texts_free(&after);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("live_sync");
    TCase *tc = tcase_create("live_sync");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, edits_flow_both_ways_through_both_mounts);
    tcase_add_test(tc, link_flap_merges_and_keeps_both_versions);
    tcase_add_test(tc, safe_mode_never_overwrites_an_edit_on_b);
    tcase_add_test(tc, random_partitions_converge_and_lose_nothing);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
