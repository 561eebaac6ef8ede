/*
 * test_mount_cli.c — `wsync mount`/`unmount` as a user meets them: clear
 * errors with non-zero exits, readiness on return, background and
 * foreground daemons, signals, busy and stale mounts, ownership policy.
 */
#include "fs/mounts.h"
#include "tests/lib/harness.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct wmount m;

static void prepare(void)
{
    wm_prepare(&m);
}

static void teardown(void)
{
    wm_teardown(&m);
}

static bool is_mounted(const char *mnt)
{
    struct mount_info mi;
    if (mounts_at(mnt, &mi) != 0)
        return false;
    bool yes = strcmp(mi.fstype, WSYNC_FSTYPE) == 0;
    mount_info_release(&mi);
    return yes;
}

static bool not_mounted(void *arg)
{
    return !is_mounted(arg);
}

#define ASSERT_ERR(status, want_status, text, needle)                                              \
    do {                                                                                           \
        ck_assert_msg((status) == (want_status), "exit %d, want %d; output: %s", (status),         \
                      (want_status), (text));                                                      \
        ck_assert_msg(strstr((text), (needle)), "output lacks '%s': %s", (needle), (text));        \
    } while (0)

START_TEST(errors_name_the_cause)
{
    char *out, p[PATH_MAX];
    int st = wm_wsync(&out, "mount %s/nope %s", m.root, m.mnt);
    ASSERT_ERR(st, 1, out, "No such file or directory");
    ck_assert_ptr_nonnull(strstr(out, "/nope"));
    free(out);

    wm_path(p, sizeof(p), m.root, "file");
    wm_write(p, "x");
    st = wm_wsync(&out, "mount %s %s", p, m.mnt);
    ASSERT_ERR(st, 1, out, "is not a directory");
    free(out);

    st = wm_wsync(&out, "mount %s %s/missing", m.src, m.root);
    ASSERT_ERR(st, 1, out, "does not exist");
    free(out);

    wm_path(p, sizeof(p), m.mnt, "occupant");
    wm_write(p, "x");
    st = wm_wsync(&out, "mount %s %s", m.src, m.mnt);
    ASSERT_ERR(st, 1, out, "is not empty");
    unlink(p);
    free(out);

    wm_path(p, sizeof(p), m.src, "inner");
    mkdir(p, 0755);
    st = wm_wsync(&out, "mount %s %s", m.src, p);
    ASSERT_ERR(st, 1, out, "overlap");
    free(out);

    st = wm_wsync(&out, "mount %s", m.src);
    ASSERT_ERR(st, 2, out, "expected SRC and MNT");
    free(out);
    st = wm_wsync(&out, "mount --bogus %s %s", m.src, m.mnt);
    ck_assert_int_eq(st, 2);
    free(out);
    st = wm_wsync(&out, "frobnicate");
    ASSERT_ERR(st, 2, out, "unknown command");
    free(out);
    ck_assert(!is_mounted(m.mnt));
}
END_TEST

START_TEST(fuse_device_missing_or_forbidden)
{
    char *out;
    int st = wm_sh("true");
    ck_assert_int_eq(st, 0);
    out = wm_sh_out(&st, "WSYNC_FUSE_DEVICE=%s/no-fuse '%s' mount %s %s 2>&1", m.root, wm_bin(),
                    m.src, m.mnt);
    ASSERT_ERR(st, 1, out, "no-fuse does not exist");
    free(out);
    /* A real unprivileged user: /dev/fuse is root-only on this machine. */
    chmod(m.root, 0755);
    chmod(m.src, 0777);
    chmod(m.mnt, 0777);
    out = wm_sh_out(&st, "setpriv --reuid=65534 --regid=65534 --clear-groups '%s' mount %s %s 2>&1",
                    wm_bin(), m.src, m.mnt);
    if (access("/dev/fuse", R_OK | W_OK) == 0 && strstr(out, "Permission denied") == NULL) {
        /* /dev/fuse open to all here: the mount itself must then fail or work cleanly. */
        ck_assert_msg(st == 0 || st == 1, "exit %d: %s", st, out);
    } else {
        ASSERT_ERR(st, 1, out, "Permission denied");
    }
    free(out);
    ck_assert(!is_mounted(m.mnt));
}
END_TEST

START_TEST(ready_on_return_and_already_mounted)
{
    char p[PATH_MAX], *out;
    wm_path(p, sizeof(p), m.src, "pre-existing");
    wm_write(p, "here");
    int st = wm_wsync(&out, "mount %s %s", m.src, m.mnt);
    ck_assert_msg(st == 0, "mount failed: %s", out);
    free(out);
    m.mounted = true;
    ck_assert(is_mounted(m.mnt)); /* no polling: ready when mount returned */
    wm_path(p, sizeof(p), m.mnt, "pre-existing");
    char *got = wm_read(p, NULL);
    ck_assert_str_eq(got, "here");
    free(got);

    st = wm_wsync(&out, "mount %s %s", m.src, m.mnt);
    ASSERT_ERR(st, 1, out, "already a wsync mount");
    free(out);
    /* The same SRC at a second mount point is refused by the daemon lock. */
    char mnt2[PATH_MAX];
    wm_path(mnt2, sizeof(mnt2), m.root, "mnt2");
    mkdir(mnt2, 0755);
    st = wm_wsync(&out, "mount %s %s", m.src, mnt2);
    ASSERT_ERR(st, 1, out, "already served");
    free(out);
    ck_assert(!is_mounted(mnt2));

    st = wm_wsync(&out, "unmount %s", m.mnt);
    ck_assert_msg(st == 0, "unmount failed: %s", out);
    free(out);
    m.mounted = false;
    ck_assert(!is_mounted(m.mnt));
    st = wm_wsync(&out, "unmount %s", m.mnt);
    ASSERT_ERR(st, 1, out, "is not mounted");
    free(out);
}
END_TEST

static pid_t daemon_pid(const char *mnt)
{
    char *out = wm_sh_out(NULL, "'%s' status --json '%s'", wm_bin(), mnt);
    char *p = strstr(out, "\"pid\":");
    pid_t pid = p ? (pid_t)atoi(p + 6) : 0;
    free(out);
    return pid;
}

START_TEST(sigterm_unmounts_cleanly)
{
    wm_setup(&m, "");
    pid_t pid = daemon_pid(m.mnt);
    ck_assert_int_gt(pid, 1);
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    ck_assert_msg(wm_poll(not_mounted, m.mnt, 5000), "still mounted 5 s after SIGTERM");
    m.mounted = false;
    for (int i = 0; i < 5000 && kill(pid, 0) == 0; i++)
        usleep(1000);
    ck_assert_msg(kill(pid, 0) == -1 && errno == ESRCH, "daemon %d did not exit", pid);
    /* The socket was removed and a new mount works at once. */
    char *out;
    int st = wm_wsync(&out, "mount %s %s", m.src, m.mnt);
    ck_assert_msg(st == 0, "remount failed: %s", out);
    free(out);
    m.mounted = true;
}
END_TEST

START_TEST(foreground_mount_and_ctrl_c)
{
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        execl(wm_bin(), "wsync", "mount", "-f", m.src, m.mnt, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 5000 && !is_mounted(m.mnt); i++)
        usleep(1000);
    ck_assert_msg(is_mounted(m.mnt), "foreground mount never appeared");
    char p[PATH_MAX];
    wm_path(p, sizeof(p), m.mnt, "fg");
    wm_write(p, "foreground");
    ck_assert_int_eq(kill(pid, SIGINT), 0);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    ck_assert(!is_mounted(m.mnt));
    wm_path(p, sizeof(p), m.src, "fg");
    char *got = wm_read(p, NULL);
    ck_assert_str_eq(got, "foreground");
    free(got);
}
END_TEST

START_TEST(busy_then_lazy_and_stale_mounts)
{
    wm_setup(&m, "");
    char p[PATH_MAX], *out;
    wm_path(p, sizeof(p), m.mnt, "held");
    wm_write(p, "x");
    int fd = open(p, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    int st = wm_wsync(&out, "unmount %s", m.mnt);
    ASSERT_ERR(st, 1, out, "busy");
    free(out);
    ck_assert(is_mounted(m.mnt));
    close(fd);

    /* kill -9 leaves a dead mount ("Transport endpoint is not connected");
     * mount refuses it with advice, unmount cleans it up. */
    pid_t pid = daemon_pid(m.mnt);
    ck_assert_int_gt(pid, 1);
    kill(pid, SIGKILL);
    for (int i = 0; i < 5000 && kill(pid, 0) == 0; i++)
        usleep(1000);
    st = wm_wsync(&out, "mount %s %s", m.src, m.mnt);
    ck_assert_int_eq(st, 1);
    ck_assert_msg(strstr(out, "stale") || strstr(out, "already"), "%s", out);
    free(out);
    st = wm_wsync(&out, "unmount %s", m.mnt);
    ck_assert_msg(st == 0, "unmount of a dead mount failed: %s", out);
    free(out);
    m.mounted = false;
    ck_assert(!is_mounted(m.mnt));
    st = wm_wsync(&out, "mount %s %s", m.src, m.mnt);
    ck_assert_msg(st == 0, "mount after a crash failed: %s", out);
    free(out);
    m.mounted = true;
}
END_TEST

START_TEST(writeback_data_is_flushed_by_unmount)
{
    wm_setup(&m, "--writeback");
    char p[PATH_MAX];
    wm_path(p, sizeof(p), m.mnt, "wb");
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    char buf[4096];
    memset(buf, 'w', sizeof(buf));
    for (int i = 0; i < 256; i++)
        ck_assert_int_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    close(fd);
    ck_assert_int_eq(wm_sh("'%s' unmount '%s'", wm_bin(), m.mnt), 0);
    m.mounted = false;
    struct stat st;
    wm_path(p, sizeof(p), m.src, "wb");
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_size, 256 * 4096);
}
END_TEST

/* Create `name` under the mount as uid/gid; returns the created file's owner. */
static void create_as(const char *dir, const char *name, uid_t uid, gid_t gid, struct stat *out)
{
    char p[PATH_MAX];
    wm_path(p, sizeof(p), dir, name);
    pid_t pid = fork();
    if (pid == 0) {
        if (setresgid(gid, gid, gid) || setresuid(uid, uid, uid))
            _exit(2);
        int fd = open(p, O_WRONLY | O_CREAT, 0644);
        _exit(fd >= 0 ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "create %s as %d failed", p, uid);
    ck_assert_int_eq(lstat(p, out), 0);
}

START_TEST(new_files_belong_to_source_owner)
{
    wm_prepare(&m);
    ck_assert_int_eq(chown(m.src, 1000, 1000), 0);
    chmod(m.src, 0777);
    chmod(m.root, 0755); /* other uids must reach the mount */
    ck_assert_int_eq(wm_sh("'%s' mount '%s' '%s'", wm_bin(), m.src, m.mnt), 0);
    m.mounted = true;
    struct stat st;
    create_as(m.mnt, "by-root", 0, 0, &st); /* a container's root */
    ck_assert_int_eq(st.st_uid, 1000);
    ck_assert_int_eq(st.st_gid, 1000);
    create_as(m.mnt, "by-other", 2000, 2000, &st);
    ck_assert_int_eq(st.st_uid, 1000);
    char p[PATH_MAX];
    wm_path(p, sizeof(p), m.mnt, "dir-by-root");
    ck_assert_int_eq(mkdir(p, 0755), 0);
    wm_path(p, sizeof(p), m.src, "dir-by-root");
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_uid, 1000);
    wm_path(p, sizeof(p), m.mnt, "link-by-root");
    ck_assert_int_eq(symlink("x", p), 0);
    ck_assert_int_eq(lstat(p, &st), 0);
    ck_assert_int_eq(st.st_uid, 1000);
}
END_TEST

START_TEST(keep_owner_keeps_the_creator)
{
    wm_prepare(&m);
    ck_assert_int_eq(chown(m.src, 1000, 1000), 0);
    chmod(m.src, 0777);
    chmod(m.root, 0755); /* other uids must reach the mount */
    ck_assert_int_eq(wm_sh("'%s' mount --keep-owner '%s' '%s'", wm_bin(), m.src, m.mnt), 0);
    m.mounted = true;
    struct stat st;
    create_as(m.mnt, "by-root", 0, 0, &st);
    ck_assert_int_eq(st.st_uid, 0);
    create_as(m.mnt, "by-other", 2000, 2001, &st);
    ck_assert_int_eq(st.st_uid, 2000);
    ck_assert_int_eq(st.st_gid, 2001);
    /* Permission checks that follow use the owner: 2000's 0644 file is not
     * writable by 3000 (default_permissions). */
    char p[PATH_MAX];
    wm_path(p, sizeof(p), m.mnt, "by-other");
    pid_t pid = fork();
    if (pid == 0) {
        if (setresuid(3000, 3000, 3000))
            _exit(2);
        _exit(open(p, O_WRONLY) < 0 && errno == EACCES ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

START_TEST(allow_other_by_default_for_root)
{
    wm_setup(&m, "");
    char *out = wm_sh_out(NULL, "grep -F ' %s ' /proc/self/mountinfo", m.mnt);
    ck_assert_msg(strstr(out, "allow_other"), "no allow_other: %s", out);
    ck_assert_msg(strstr(out, "default_permissions"), "no default_permissions: %s", out);
    free(out);
    wm_teardown(&m);
    wm_setup(&m, "--no-allow-other");
    chmod(m.root, 0755);
    int st =
        wm_sh("setpriv --reuid=65534 --regid=65534 --clear-groups ls '%s' >/dev/null 2>&1", m.mnt);
    ck_assert_int_ne(st, 0);
}
END_TEST

/* The daemon holds an fd for every inode the kernel caches, and caches
 * last a day: started with a low soft fd limit (a shell's 1024 under a
 * hard limit of 512k, say) it must raise it, or a tree with more files
 * than that fails with EMFILE.  (Raising the hard limit too, as root,
 * needs CAP_SYS_RESOURCE, which a container may lack: not tested here.) */
START_TEST(more_files_than_the_callers_fd_limit)
{
    int st = wm_sh("ulimit -S -n 200 && '%s' mount '%s' '%s'", wm_bin(), m.src, m.mnt);
    ck_assert_int_eq(st, 0);
    m.mounted = true;
    enum { FILES = 1500 };
    char p[PATH_MAX + 32];
    for (int i = 0; i < FILES; i++) {
        snprintf(p, sizeof(p), "%s/f%d", m.mnt, i);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
        ck_assert_msg(fd >= 0, "create #%d: %s", i, strerror(errno));
        close(fd);
    }
    for (int i = 0; i < FILES; i++) { /* all of them cached, each an fd */
        struct stat sb;
        snprintf(p, sizeof(p), "%s/f%d", m.mnt, i);
        ck_assert_msg(stat(p, &sb) == 0, "stat #%d: %s", i, strerror(errno));
    }
    char *lim = wm_sh_out(NULL, "grep 'open files' /proc/%d/limits", (int)daemon_pid(m.mnt));
    long soft = 0;
    ck_assert_msg(sscanf(lim, "Max open files %ld", &soft) == 1, "limits: %s", lim);
    ck_assert_msg(soft > FILES, "the daemon kept a limit of %ld fds", soft);
    free(lim);
}
END_TEST

START_TEST(every_command_has_help)
{
    const char *cmds[] = {"mount", "unmount", "status", "log",   "index",
                          "push",  "verify",  "serve",  "remote"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char *out;
        int st = wm_wsync(&out, "%s --help", cmds[i]);
        ck_assert_msg(st == 0, "%s --help exit %d", cmds[i], st);
        ck_assert_msg(strstr(out, "usage: wsync") && strstr(out, "Example"),
                      "%s --help lacks usage or examples", cmds[i]);
        free(out);
    }
    char *out;
    ck_assert_int_eq(wm_wsync(&out, "--version"), 0);
    ck_assert_ptr_nonnull(strstr(out, "wsync "));
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mount_cli");
    TCase *tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, prepare, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, errors_name_the_cause);
    tcase_add_test(tc, fuse_device_missing_or_forbidden);
    tcase_add_test(tc, ready_on_return_and_already_mounted);
    tcase_add_test(tc, sigterm_unmounts_cleanly);
    tcase_add_test(tc, foreground_mount_and_ctrl_c);
    tcase_add_test(tc, busy_then_lazy_and_stale_mounts);
    tcase_add_test(tc, writeback_data_is_flushed_by_unmount);
    tcase_add_test(tc, new_files_belong_to_source_owner);
    tcase_add_test(tc, keep_owner_keeps_the_creator);
    tcase_add_test(tc, allow_other_by_default_for_root);
    tcase_add_test(tc, every_command_has_help);
    tcase_add_test(tc, more_files_than_the_callers_fd_limit);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
