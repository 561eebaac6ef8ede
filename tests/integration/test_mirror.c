/*
 * test_mirror.c — `wsync mount --mirror`: edits through the mount reach the
 * replica, through a local serve child and into a network-namespace host;
 * a killed remote is reconnected and caught up; unmount flushes; the
 * replica's own wsync mount shows incoming files at once.
 */
#include "tests/lib/harness.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOUND_MS 10000

static struct wmount m;     /* host A: src/ mounted at mnt/ */
static char dst[PATH_MAX + 16]; /* the replica */
static char pm[PATH_MAX], pd[PATH_MAX + 64];
#define MNT(rel) (wm_path(pm, sizeof(pm), m.mnt, rel), pm)
#define DST(rel) (snprintf(pd, sizeof(pd), "%s/%s", dst, rel), pd)

static void setup(void)
{
    wm_prepare(&m);
    snprintf(dst, sizeof(dst), "%s/replica", m.root);
}

static void teardown(void)
{
    wm_teardown(&m);
}

static void mount_with(const char *opts)
{
    int st;
    char *out = wm_sh_out(&st, "'%s' mount %s --mirror '%s' '%s' '%s' 2>&1", wm_bin(), opts, dst,
                          m.src, m.mnt);
    ck_assert_msg(st == 0, "mount --mirror: %s", out);
    free(out);
    m.mounted = true;
}

static bool verified(void *arg)
{
    return wm_sh("'%s' verify '%s' '%s' >/dev/null 2>&1", wm_bin(), m.src, dst) == 0;
}

START_TEST(edits_through_the_mount_reach_the_replica)
{
    mount_with("");
    wm_write(MNT("new.txt"), "fresh");
    ck_assert_msg(wm_poll_content(DST("new.txt"), "fresh", BOUND_MS), "new file never arrived");
    ck_assert_int_eq(mkdir(MNT("dir"), 0750), 0);
    wm_write(MNT("dir/a"), "A");
    int fd = open(MNT("new.txt"), O_WRONLY);
    ck_assert_int_eq(pwrite(fd, "F", 1, 0), 1);
    close(fd);
    ck_assert_msg(wm_poll_content(DST("new.txt"), "Fresh", BOUND_MS), "rewrite never arrived");
    ck_assert_int_eq(wm_sh("mv '%s/dir' '%s/renamed'", m.mnt, m.mnt), 0);
    ck_assert_msg(wm_poll_content(DST("renamed/a"), "A", BOUND_MS), "rename never arrived");
    ck_assert_msg(wm_poll_content(DST("dir/a"), NULL, BOUND_MS), "old name never removed");
    ck_assert_int_eq(unlink(MNT("new.txt")), 0);
    ck_assert_msg(wm_poll_content(DST("new.txt"), NULL, BOUND_MS), "delete never arrived");
    ck_assert_msg(wm_poll(verified, NULL, BOUND_MS), "roots never became equal");
    struct stat st;
    ck_assert_int_eq(stat(DST("renamed"), &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0750);
}
END_TEST

START_TEST(killed_remote_is_caught_up_and_unmount_flushes)
{
    mount_with("");
    wm_write(MNT("one"), "1");
    ck_assert(wm_poll_content(DST("one"), "1", BOUND_MS));
    /* The far side dies; edits continue meanwhile. */
    wm_sh("pkill -KILL -f 'serve --stdio %s$'", dst);
    wm_write(MNT("two"), "2");
    wm_write(MNT("three"), "3");
    ck_assert_msg(wm_poll_content(DST("three"), "3", BOUND_MS), "no catch-up after the kill");
    ck_assert(wm_poll_content(DST("two"), "2", BOUND_MS));
    char *st = wm_sh_out(NULL, "'%s' status --json '%s'", wm_bin(), m.mnt);
    ck_assert_msg(strstr(st, "\"mirrors\":[{"), "no mirror in status: %s", st);
    free(st);
    /* Unmount returns only after the last edit is on the replica. */
    wm_write(MNT("last"), "L");
    ck_assert_int_eq(wm_sh("'%s' unmount '%s'", wm_bin(), m.mnt), 0);
    m.mounted = false;
    char *got = wm_read(DST("last"), NULL);
    ck_assert_msg(got && strcmp(got, "L") == 0, "unmount did not flush the mirror");
    free(got);
    ck_assert(verified(NULL));
}
END_TEST

START_TEST(mirror_into_a_network_namespace_with_its_own_mount)
{
    char ns[64], opts[128];
    snprintf(ns, sizeof(ns), "wsync-m%d", (int)getpid());
    ck_assert_int_eq(wm_sh("ip netns add %s", ns), 0);
    /* Host B mounts its replica too: its containers see incoming files. */
    char bmnt[PATH_MAX + 16];
    snprintf(bmnt, sizeof(bmnt), "%s/bmnt", m.root);
    ck_assert_int_eq(mkdir(dst, 0755), 0);
    ck_assert_int_eq(mkdir(bmnt, 0755), 0);
    ck_assert_int_eq(wm_sh("'%s' mount '%s' '%s'", wm_bin(), dst, bmnt), 0);
    /* nsenter --net, not `ip netns exec`: the latter also makes a private
     * mount namespace, whose copy of every FUSE mount outlives an unmount
     * until the far side exits. */
    snprintf(opts, sizeof(opts), "--rsh 'nsenter --net=/run/netns/%s'", ns);
    mount_with(opts);
    char bpath[PATH_MAX + 64];
    snprintf(bpath, sizeof(bpath), "%s/seen-on-b", bmnt);
    struct stat st;
    ck_assert_int_eq(stat(bpath, &st), -1); /* B's kernel caches the absence */
    wm_write(MNT("seen-on-b"), "from A");
    bool ok = wm_poll_content(bpath, "from A", BOUND_MS);
    wm_sh("'%s' unmount '%s'", wm_bin(), bmnt);
    wm_sh("ip netns del %s", ns);
    ck_assert_msg(ok, "B's mount never showed the file from A");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mirror");
    TCase *tc = tcase_create("mirror");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, edits_through_the_mount_reach_the_replica);
    tcase_add_test(tc, killed_remote_is_caught_up_and_unmount_flushes);
    tcase_add_test(tc, mirror_into_a_network_namespace_with_its_own_mount);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
