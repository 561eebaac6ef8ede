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

static struct wmount m;         /* host A: src/ mounted at mnt/ */
static char dst[PATH_MAX + 16]; /* the replica */
static char pm[PATH_MAX], pd[PATH_MAX + 64];
#define MNT(rel)         (wm_path(pm, sizeof(pm), m.mnt, rel), pm)
#define DST(rel)         (snprintf(pd, sizeof(pd), "%s/%s", dst, rel), pd)
#define DST_OF(dir, rel) (snprintf(pd, sizeof(pd), "%s/%s", dir, rel), pd)

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
    wm_netns(&m, "m", ns, sizeof(ns));
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

/* Run `wsync ARGS` in dir; its exit status, stdout+stderr in *out. */
static int wsync_in(const char *dir, char **out, const char *args)
{
    int st;
    *out = wm_sh_out(&st, "cd '%s' && '%s' %s 2>&1", dir, wm_bin(), args);
    return st;
}

static char *status_json(void)
{
    return wm_sh_out(NULL, "'%s' status --json '%s'", wm_bin(), m.mnt);
}

/* This remote's object inside status --json (malloc'ed), or NULL. */
static char *remote_in_status(const char *name)
{
    char *all = status_json(), key[64];
    snprintf(key, sizeof(key), "{\"name\":\"%s\"", name);
    char *at = strstr(all, key);
    char *one = at ? strndup(at, strcspn(at, "}") + 1) : NULL;
    free(all);
    return one;
}

START_TEST(remote_add_ls_rm_picked_up_by_a_running_mount)
{
    char d1[PATH_MAX + 16], d2[PATH_MAX + 16], args[PATH_MAX * 3], *out;
    snprintf(d1, sizeof(d1), "%s/r1", m.root);
    snprintf(d2, sizeof(d2), "%s/r2", m.root);
    ck_assert_int_eq(wm_sh("'%s' mount '%s' '%s'", wm_bin(), m.src, m.mnt), 0);
    m.mounted = true;
    wm_write(MNT("before"), "made before any remote");
    /* From inside the mount, by its path: the running mount starts it. */
    snprintf(args, sizeof(args), "remote add r1 '%s'", d1);
    ck_assert_int_eq(wsync_in(m.mnt, &out, args), 0);
    ck_assert_msg(strstr(out, "running mount: started r1"), "%s", out);
    free(out);
    ck_assert_msg(wm_poll_content(DST_OF(d1, "before"), "made before any remote", BOUND_MS),
                  "r1 was not caught up");
    /* From anywhere with -C, here SRC. */
    snprintf(args, sizeof(args), "remote add -C '%s' r2 '%s'", m.src, d2);
    ck_assert_int_eq(wsync_in("/", &out, args), 0);
    free(out);
    ck_assert(wm_poll_content(DST_OF(d2, "before"), "made before any remote", BOUND_MS));
    snprintf(args, sizeof(args), "remote ls --json -C '%s'", m.mnt);
    ck_assert_int_eq(wsync_in("/", &out, args), 0);
    ck_assert_msg(strstr(out, "\"name\":\"r1\"") && strstr(out, "\"name\":\"r2\"") &&
                      strstr(out, "\"mode\":\"auto\""), /* the default of remote add */
                  "%s", out);
    free(out);
    /* A duplicate name is refused and changes nothing. */
    snprintf(args, sizeof(args), "remote add r1 /elsewhere");
    ck_assert_int_eq(wsync_in(m.src, &out, args), 1);
    ck_assert_msg(strstr(out, "already exists"), "%s", out);
    free(out);
    /* Removing r1 stops its worker only: r2 keeps its session. */
    ck_assert_int_eq(wsync_in(m.src, &out, "remote rm r1"), 0);
    ck_assert_msg(strstr(out, "running mount: stopped r1"), "%s", out);
    free(out);
    wm_write(MNT("after"), "made after r1 left");
    ck_assert(wm_poll_content(DST_OF(d2, "after"), "made after r1 left", BOUND_MS));
    ck_assert_int_eq(access(DST_OF(d1, "after"), F_OK), -1);
    char *r1 = remote_in_status("r1"), *r2 = remote_in_status("r2");
    ck_assert_msg(!r1, "r1 is still in status: %s", r1);
    ck_assert_msg(r2 && wm_json_num(r2, "sessions") == 1 && strstr(r2, "\"origin\":\"config\""),
                  "r2 was disturbed: %s", r2 ? r2 : "(gone)");
    free(r2);
    ck_assert_int_eq(wsync_in(m.src, &out, "remote rm r1"), 1);
    ck_assert_msg(strstr(out, "no remote named 'r1'"), "%s", out);
    free(out);
    /* The config survives an unmount: the next mount starts r2 again. */
    ck_assert_int_eq(wm_sh("'%s' unmount '%s'", wm_bin(), m.mnt), 0);
    wm_write(DST_OF(m.src, "while-unmounted"), "x");
    ck_assert_int_eq(wm_sh("'%s' mount '%s' '%s'", wm_bin(), m.src, m.mnt), 0);
    ck_assert(wm_poll_content(DST_OF(d2, "while-unmounted"), "x", BOUND_MS));
}
END_TEST

START_TEST(bad_config_names_file_and_line_and_modes_start)
{
    char cfg[PATH_MAX + 32], *out;
    snprintf(cfg, sizeof(cfg), "%s/.wsync", m.src);
    ck_assert_int_eq(mkdir(cfg, 0700), 0);
    strcat(cfg, "/config");
    wm_write(cfg, "[remote a]\ndest = /x\nspeed = fast\n");
    ck_assert_int_eq(wsync_in(m.src, &out, "remote ls"), 1);
    ck_assert_msg(strstr(out, "/.wsync/config:3: unknown key 'speed'"), "%s", out);
    free(out);
    ck_assert_int_eq(wsync_in(m.src, &out, "remote add b /y"), 1); /* not overwritten */
    ck_assert_msg(strstr(out, "config:3:"), "%s", out);
    free(out);
    int st;
    out = wm_sh_out(&st, "'%s' mount '%s' '%s' 2>&1", wm_bin(), m.src, m.mnt);
    ck_assert_msg(st == 1 && strstr(out, "/.wsync/config:3: unknown key"), "mount: %s", out);
    free(out);
    wm_write(cfg, "[remote a]\ndest = /x\nmode = mirror\n");
    ck_assert_int_eq(wsync_in(m.src, &out, "remote ls"), 1);
    ck_assert_msg(strstr(out, "config:3: unknown mode 'mirror'"), "%s", out);
    free(out);
    /* A reserved mode parses and shows, and is not started. */
    char later[PATH_MAX + 32];
    snprintf(later, sizeof(later), "%s/later", m.root);
    FILE *f = fopen(cfg, "w");
    fprintf(f, "# hand-written\n[remote later]\ndest = %s\nmode = two-way\n", later);
    fclose(f);
    ck_assert_int_eq(wsync_in(m.src, &out, "remote ls"), 0);
    ck_assert_msg(strstr(out, "later") && strstr(out, "two-way"), "%s", out);
    free(out);
    /* safe and two-way are implemented (issue 7, test_live_sync.c): they
     * are accepted, saved and started like replica. */
    char z[PATH_MAX + 64], cmd[PATH_MAX + 128];
    snprintf(z, sizeof(z), "%s/z", m.root);
    snprintf(cmd, sizeof(cmd), "remote add --mode safe s %s", z);
    ck_assert_int_eq(wsync_in(m.src, &out, cmd), 0);
    free(out);
    ck_assert_int_eq(wsync_in(m.src, &out, "remote ls"), 0);
    ck_assert_msg(strstr(out, "safe"), "%s", out);
    free(out);
    ck_assert_int_eq(wsync_in(m.src, &out, "remote rm s"), 0);
    free(out);
    ck_assert_int_eq(wm_sh("'%s' mount '%s' '%s'", wm_bin(), m.src, m.mnt), 0);
    m.mounted = true;
    char *r = remote_in_status("later");
    ck_assert_msg(r && strstr(r, "\"running\":true") && strstr(r, "\"mode\":\"two-way\""), "%s",
                  r ? r : "(missing)");
    free(r);
    wm_write(MNT("file"), "1");
    /* A hand edit gone wrong: reload refuses it and the running set stays. */
    wm_write(cfg, "[remote later]\ndest = /x\nbogus\n");
    ck_assert_int_eq(wsync_in(m.src, &out, "remote reload"), 1);
    ck_assert_msg(strstr(out, "config:3: expected 'key = value'") &&
                      strstr(out, "running remotes are unchanged"),
                  "%s", out);
    free(out);
    r = remote_in_status("later");
    ck_assert_msg(r != NULL, "a bad reload dropped the remote");
    free(r);
    /* A good hand edit: reload replaces the changed remote. */
    f = fopen(cfg, "w");
    fprintf(f, "[remote later]\ndest = %s\n", later);
    fclose(f);
    ck_assert_int_eq(wsync_in(m.src, &out, "remote reload"), 0);
    ck_assert_msg(strstr(out, "stopped later") && strstr(out, "started later"), "%s", out);
    free(out);
    ck_assert(wm_poll_content(DST_OF(later, "file"), "1", BOUND_MS));
    ck_assert_int_eq(wm_sh("'%s' unmount '%s'", wm_bin(), m.mnt), 0);
    m.mounted = false;
}
END_TEST

static bool dead_has_error(void *arg)
{
    char *r = remote_in_status("dead");
    bool ok = r && strstr(r, "\"connected\":false") && !strstr(r, "\"last_error\":\"\"") &&
              wm_json_num(r, "retry_ms") > 0;
    free(r);
    return ok;
}

START_TEST(unmount_names_what_it_could_not_flush)
{
    char good[PATH_MAX + 16], args[PATH_MAX * 3], *out;
    snprintf(good, sizeof(good), "%s/good", m.root);
    /* `false` as the rsh: the far side never starts. */
    snprintf(args, sizeof(args), "remote add -C '%s' --rsh false dead host:/nowhere", m.src);
    ck_assert_int_eq(wsync_in("/", &out, args), 0);
    free(out);
    snprintf(args, sizeof(args), "remote add -C '%s' good '%s'", m.src, good);
    ck_assert_int_eq(wsync_in("/", &out, args), 0);
    free(out);
    ck_assert_int_eq(wm_sh("'%s' mount '%s' '%s'", wm_bin(), m.src, m.mnt), 0);
    m.mounted = true;
    ck_assert_msg(wm_poll(dead_has_error, NULL, BOUND_MS), "status never showed the failure");
    wm_write(MNT("last"), "L");
    int st;
    out = wm_sh_out(&st, "'%s' unmount --flush-timeout 1 '%s' 2>&1", wm_bin(), m.mnt);
    m.mounted = st != 0;
    ck_assert_msg(st == 0, "unmount: %s", out);
    ck_assert_msg(strstr(out, "not flushed to remote dead host:/nowhere"), "%s", out);
    ck_assert_msg(!strstr(out, "remote good"), "%s", out);
    free(out);
    char *got = wm_read(DST_OF(good, "last"), NULL);
    ck_assert_msg(got && strcmp(got, "L") == 0, "the reachable remote was not flushed");
    free(got);
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
    tcase_add_test(tc, remote_add_ls_rm_picked_up_by_a_running_mount);
    tcase_add_test(tc, bad_config_names_file_and_line_and_modes_start);
    tcase_add_test(tc, unmount_names_what_it_could_not_flush);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
