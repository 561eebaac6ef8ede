/*
 * test_sync.c — `wsync sync` (two-way) between two trees, the far one
 * served by a real `wsync serve` started in a network namespace of its own
 * (nsenter --net, not `ip netns exec`, whose private mount namespace pins
 * FUSE mounts).  Each test makes a uniquely named namespace and removes it.
 * The two sides carry different host labels (WSYNC_HOST), as two machines
 * would.  After every sync `wsync verify` must say identical.
 */
#include "tests/lib/edits.h"
#include "tests/lib/harness.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct wmount m; /* src/ is A (local), mnt/ is B (far side; never mounted here) */
static char ns[64];

static void setup(void)
{
    wm_prepare(&m);
    wm_netns(&m, "sync", ns, sizeof(ns));
    setenv("WSYNC_HOST", "hosta", 1);
}

static void teardown(void)
{
    wm_sh("ip netns del %s 2>/dev/null", ns);
    wm_teardown(&m);
}

static char *sync_ab(const char *opts, int want_status)
{
    int st;
    char *out = wm_sh_out(&st,
                          "'%s' sync %s --rsh 'env WSYNC_HOST=hostb nsenter --net=/run/netns/%s'"
                          " '%s' '%s' 2>&1",
                          wm_bin(), opts, ns, m.src, m.mnt);
    ck_assert_msg(st == want_status, "sync exited %d, not %d: %s", st, want_status, out);
    return out;
}

static void assert_equal(void)
{
    int st;
    char *out = wm_sh_out(&st, "'%s' verify '%s' '%s' 2>&1", wm_bin(), m.src, m.mnt);
    ck_assert_msg(st == 0 && strstr(out, "identical"), "verify: %s", out);
    free(out);
    char why[1024];
    ck_assert_msg(wm_trees_equal(m.src, m.mnt, why, sizeof(why)), "trees differ: %s", why);
}

static void put(const char *root, const char *rel, const char *data)
{
    char p[PATH_MAX];
    wm_path(p, sizeof(p), root, rel);
    wm_sh("mkdir -p \"$(dirname '%s')\"", p);
    wm_write(p, data);
}

static char *get(const char *root, const char *rel)
{
    char p[PATH_MAX];
    wm_path(p, sizeof(p), root, rel);
    return wm_read(p, NULL);
}

/* The one conflict copy of `orig` in dir (relative), or fail. */
static char *only_copy(const char *root, const char *dir, const char *stem)
{
    int st;
    char *out = wm_sh_out(&st, "cd '%s/%s' && ls | grep -F '%s.conflict-'", root, dir, stem);
    ck_assert_msg(st == 0 && strchr(out, '\n') == strrchr(out, '\n'),
                  "expected one conflict copy of %s in %s/%s, got: %s", stem, root, dir, out);
    *strchr(out, '\n') = '\0';
    return out;
}

START_TEST(edit_on_b_flows_to_a_and_back)
{
    put(m.src, "a.txt", "one\n");
    mkdir(m.mnt, 0755);
    free(sync_ab("", 0));
    assert_equal();
    put(m.mnt, "a.txt", "edited on B\n");
    put(m.mnt, "fromb.txt", "new on B\n");
    free(sync_ab("", 0));
    char *a = get(m.src, "a.txt"), *n = get(m.src, "fromb.txt");
    ck_assert_str_eq(a, "edited on B\n");
    ck_assert_str_eq(n, "new on B\n");
    free(a);
    free(n);
    assert_equal();
    put(m.src, "a.txt", "edited on A\n");
    free(sync_ab("", 0));
    a = get(m.mnt, "a.txt");
    ck_assert_str_eq(a, "edited on A\n");
    free(a);
    assert_equal();
    /* nothing to do: nothing moves, nothing conflicts */
    char *out = sync_ab("--json", 0);
    ck_assert_msg(wm_json_num(out, "pushed") == 0 && wm_json_num(out, "pulled") == 0 &&
                      wm_json_num(out, "conflicts") == 0,
                  "a no-change sync did something: %s", out);
    free(out);
}
END_TEST

START_TEST(concurrent_edits_keep_both_versions_on_both_sides)
{
    mkdir(m.mnt, 0755);
    put(m.src, "src/param.yaml", "gain: 1\n");
    free(sync_ab("", 0));
    put(m.src, "src/param.yaml", "gain: 2 (laptop)\n");
    put(m.mnt, "src/param.yaml", "gain: 3 (robot)\n");
    /* the robot's edit is newer: it wins */
    ck_assert_int_eq(wm_sh("touch -d '@2000000000' '%s/src/param.yaml'", m.mnt), 0);
    char *out = sync_ab("--json", 0);
    ck_assert_msg(wm_json_num(out, "conflicts") == 1, "%s", out);
    free(out);
    assert_equal();
    char *win = get(m.src, "src/param.yaml");
    ck_assert_str_eq(win, "gain: 3 (robot)\n");
    char *copy = only_copy(m.src, "src", "param");
    ck_assert_msg(strstr(copy, "param.conflict-hosta-") == copy && strstr(copy, ".yaml"),
                  "copy name %s", copy);
    char rel[PATH_MAX];
    snprintf(rel, sizeof(rel), "src/%s", copy);
    char *lost = get(m.src, rel), *lost_b = get(m.mnt, rel);
    ck_assert_str_eq(lost, "gain: 2 (laptop)\n");
    ck_assert_str_eq(lost_b, "gain: 2 (laptop)\n");
    free(only_copy(m.mnt, "src", "param"));
    /* listed, and resolved in favour of this machine's (hosta's) version */
    out = wm_sh_out(NULL, "cd '%s' && '%s' conflicts --json", m.src, wm_bin());
    ck_assert_msg(strstr(out, "\"of\":\"src/param.yaml\"") && strstr(out, "\"host\":\"hosta\""),
                  "conflicts: %s", out);
    free(out);
    ck_assert_int_eq(
        wm_sh("cd '%s' && '%s' conflicts resolve --keep mine >/dev/null 2>&1", m.src, wm_bin()), 0);
    free(sync_ab("", 0));
    assert_equal();
    char *now = get(m.mnt, "src/param.yaml");
    ck_assert_str_eq(now, "gain: 2 (laptop)\n");
    ck_assert_int_ne(wm_sh("ls '%s/src' | grep -q conflict", m.mnt), 0);
    free(now);
    free(win);
    free(copy);
    free(lost);
    free(lost_b);
}
END_TEST

START_TEST(delete_vs_edit_keeps_the_edit)
{
    mkdir(m.mnt, 0755);
    put(m.src, "d/x", "v1\n");
    put(m.src, "d/y", "y\n");
    put(m.src, "z", "z1\n");
    free(sync_ab("", 0));
    ck_assert_int_eq(wm_sh("rm -r '%s/d'", m.src), 0); /* A deletes the directory */
    put(m.mnt, "d/x", "v2 edited on B\n");             /* B edits inside it */
    put(m.src, "z", "z2 edited on A\n");               /* and the other way round */
    ck_assert_int_eq(wm_sh("rm '%s/z'", m.mnt), 0);
    free(sync_ab("", 0));
    assert_equal();
    char *x = get(m.src, "d/x"), *z = get(m.mnt, "z");
    ck_assert_str_eq(x, "v2 edited on B\n");
    ck_assert_str_eq(z, "z2 edited on A\n");
    ck_assert_ptr_null(get(m.src, "d/y")); /* the unedited file's delete goes through */
    free(x);
    free(z);
}
END_TEST

START_TEST(rename_vs_edit_keeps_both)
{
    mkdir(m.mnt, 0755);
    put(m.src, "old.c", "int v = 1;\n");
    free(sync_ab("", 0));
    ck_assert_int_eq(wm_sh("mv '%s/old.c' '%s/new.c'", m.src, m.src), 0);
    put(m.mnt, "old.c", "int v = 2; /* B */\n");
    free(sync_ab("", 0));
    assert_equal();
    char *o = get(m.mnt, "old.c"), *n = get(m.mnt, "new.c");
    ck_assert_str_eq(o, "int v = 2; /* B */\n");
    ck_assert_str_eq(n, "int v = 1;\n");
    free(o);
    free(n);
}
END_TEST

START_TEST(type_clash_keeps_the_directory_and_the_file)
{
    mkdir(m.mnt, 0755);
    put(m.src, "k", "file on A\n");
    put(m.mnt, "k/inner", "dir on B\n");
    free(sync_ab("", 0));
    assert_equal();
    char *in = get(m.src, "k/inner");
    ck_assert_str_eq(in, "dir on B\n");
    char *copy = only_copy(m.src, ".", "k");
    char *f = get(m.src, copy);
    ck_assert_str_eq(f, "file on A\n");
    free(in);
    free(copy);
    free(f);
}
END_TEST

/* ---- a randomized two-host schedule ---- */

START_TEST(random_two_host_schedule_converges_and_loses_nothing)
{
    unsigned long long seed =
        getenv("WSYNC_SEED") ? strtoull(getenv("WSYNC_SEED"), NULL, 0) : 20240607;
    wm_edits_seed(seed);
    for (int i = 0; i < 2; i++) {
        const char *root = i ? m.mnt : m.src;
        char p[PATH_MAX];
        wm_path(p, sizeof(p), root, "d1");
        wm_sh("mkdir -p '%s' '%s/../d2'", p, p);
    }
    free(sync_ab("", 0));
    for (int round = 0; round < 12; round++) {
        struct wm_texts gone = {0}, before = {0}, after = {0};
        for (int k = 0, n = 1 + (int)wm_edits_rnd(4); k < n; k++)
            wm_edits_random_op(m.src, 'A', round, k, &gone);
        for (int k = 0, n = 1 + (int)wm_edits_rnd(4); k < n; k++)
            wm_edits_random_op(m.mnt, 'B', round, k, &gone);
        wm_texts_collect(m.src, &before);
        wm_texts_collect(m.mnt, &before);
        int st;
        char *out = wm_sh_out(&st,
                              "'%s' sync --rsh 'env WSYNC_HOST=hostb nsenter "
                              "--net=/run/netns/%s' '%s' '%s' 2>&1",
                              wm_bin(), ns, m.src, m.mnt);
        ck_assert_msg(st == 0, "seed %llu round %d: sync failed: %s", seed, round, out);
        free(out);
        char why[1024];
        ck_assert_msg(wm_trees_equal(m.src, m.mnt, why, sizeof(why)),
                      "seed %llu round %d: trees differ: %s", seed, round, why);
        wm_texts_collect(m.src, &after);
        wm_edits_assert_nothing_lost(&before, &gone, &after, seed, round);
        wm_texts_free(&gone);
        wm_texts_free(&before);
        wm_texts_free(&after);
    }
    assert_equal();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sync");
    TCase *tc = tcase_create("twoway");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, edit_on_b_flows_to_a_and_back);
    tcase_add_test(tc, concurrent_edits_keep_both_versions_on_both_sides);
    tcase_add_test(tc, delete_vs_edit_keeps_the_edit);
    tcase_add_test(tc, rename_vs_edit_keeps_both);
    tcase_add_test(tc, type_clash_keeps_the_directory_and_the_file);
    tcase_add_test(tc, random_two_host_schedule_converges_and_loses_nothing);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
