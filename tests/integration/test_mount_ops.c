/*
 * test_mount_ops.c — every POSIX op a compiler, git, pip or an editor uses,
 * through a real wsync mount, asserting both the mount's view and SRC.
 */
#include "tests/lib/harness.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

static struct wmount m;
static char pm[PATH_MAX], ps[PATH_MAX], pm2[PATH_MAX];

/* Paths of rel in the mount and in SRC. */
#define MNT(rel) (wm_path(pm, sizeof(pm), m.mnt, rel), pm)
#define SRC(rel) (wm_path(ps, sizeof(ps), m.src, rel), ps)
#define MNT2(rel) (wm_path(pm2, sizeof(pm2), m.mnt, rel), pm2)

static void setup(void)
{
    wm_setup(&m, "");
}

static void teardown(void)
{
    wm_teardown(&m);
}

static void assert_content(const char *path, const char *want)
{
    char *got = wm_read(path, NULL);
    ck_assert_msg(got, "read %s: %s", path, strerror(errno));
    ck_assert_str_eq(got, want);
    free(got);
}

START_TEST(create_write_read)
{
    wm_write(MNT("a.txt"), "hello");
    assert_content(SRC("a.txt"), "hello");
    assert_content(MNT("a.txt"), "hello");
    int fd = open(MNT("a.txt"), O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, " world", 6), 6);
    ck_assert_int_eq(fsync(fd), 0);
    ck_assert_int_eq(fdatasync(fd), 0);
    ck_assert_int_eq(close(fd), 0);
    assert_content(SRC("a.txt"), "hello world");
    fd = open(MNT("a.txt"), O_RDWR);
    ck_assert_int_eq(pwrite(fd, "HELLO", 5, 0), 5);
    char buf[16] = {0};
    ck_assert_int_eq(pread(fd, buf, 5, 6), 5);
    ck_assert_str_eq(buf, "world");
    close(fd);
    assert_content(SRC("a.txt"), "HELLO world");
    /* O_EXCL on an existing name */
    ck_assert_int_eq(open(MNT("a.txt"), O_WRONLY | O_CREAT | O_EXCL, 0644), -1);
    ck_assert_int_eq(errno, EEXIST);
    /* O_TRUNC */
    fd = open(MNT("a.txt"), O_WRONLY | O_TRUNC);
    ck_assert_int_ge(fd, 0);
    close(fd);
    struct stat st;
    ck_assert_int_eq(stat(SRC("a.txt"), &st), 0);
    ck_assert_int_eq(st.st_size, 0);
}
END_TEST

START_TEST(large_file_roundtrip)
{
    size_t n = 8 << 20;
    char *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)(i * 2654435761u >> 13);
    int fd = open(MNT("big"), O_WRONLY | O_CREAT, 0600);
    ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
    close(fd);
    size_t len;
    char *got = wm_read(SRC("big"), &len);
    ck_assert_uint_eq(len, n);
    ck_assert(memcmp(got, buf, n) == 0);
    free(got);
    got = wm_read(MNT("big"), &len);
    ck_assert_uint_eq(len, n);
    ck_assert(memcmp(got, buf, n) == 0);
    free(got);
    free(buf);
}
END_TEST

START_TEST(setattr_chmod_chown_truncate_utimens)
{
    wm_write(MNT("f"), "0123456789");
    struct stat st;
    ck_assert_int_eq(chmod(MNT("f"), 0640), 0);
    ck_assert_int_eq(stat(SRC("f"), &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0640);
    ck_assert_int_eq(stat(MNT("f"), &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0640);

    ck_assert_int_eq(chown(MNT("f"), 1234, 5678), 0);
    ck_assert_int_eq(stat(SRC("f"), &st), 0);
    ck_assert_int_eq(st.st_uid, 1234);
    ck_assert_int_eq(st.st_gid, 5678);
    ck_assert_int_eq(lchown(MNT("f"), -1, 42), 0);
    ck_assert_int_eq(stat(MNT("f"), &st), 0);
    ck_assert_int_eq(st.st_uid, 1234);
    ck_assert_int_eq(st.st_gid, 42);

    ck_assert_int_eq(truncate(MNT("f"), 4), 0);
    assert_content(SRC("f"), "0123");
    ck_assert_int_eq(truncate(MNT("f"), 6), 0);
    ck_assert_int_eq(stat(MNT("f"), &st), 0);
    ck_assert_int_eq(st.st_size, 6);
    int fd = open(MNT("f"), O_RDWR);
    ck_assert_int_eq(ftruncate(fd, 2), 0);
    close(fd);
    assert_content(SRC("f"), "01");

    struct timespec ts[2] = {{.tv_sec = 1000000000, .tv_nsec = 123456789},
                             {.tv_sec = 1200000000, .tv_nsec = 987654321}};
    ck_assert_int_eq(utimensat(AT_FDCWD, MNT("f"), ts, 0), 0);
    ck_assert_int_eq(stat(SRC("f"), &st), 0);
    ck_assert_int_eq(st.st_atim.tv_sec, 1000000000);
    ck_assert_int_eq(st.st_mtim.tv_sec, 1200000000);
    ck_assert_int_eq(st.st_mtim.tv_nsec, 987654321);
    /* UTIME_OMIT leaves a time alone; UTIME_NOW sets it to now. */
    struct timespec omit_now[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_NOW}};
    ck_assert_int_eq(utimensat(AT_FDCWD, MNT("f"), omit_now, 0), 0);
    ck_assert_int_eq(stat(MNT("f"), &st), 0);
    ck_assert_int_eq(st.st_atim.tv_sec, 1000000000);
    ck_assert_int_gt(st.st_mtim.tv_sec, 1600000000);
    /* futimens on an open file */
    fd = open(MNT("f"), O_RDONLY);
    ck_assert_int_eq(futimens(fd, ts), 0);
    close(fd);
    ck_assert_int_eq(stat(SRC("f"), &st), 0);
    ck_assert_int_eq(st.st_mtim.tv_sec, 1200000000);
}
END_TEST

START_TEST(mkdir_rmdir_readdir)
{
    ck_assert_int_eq(mkdir(MNT("d"), 0750), 0);
    struct stat st;
    ck_assert_int_eq(stat(SRC("d"), &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0750);
    /* Enough entries to need several readdir buffers. */
    char name[64];
    for (int i = 0; i < 1500; i++) {
        snprintf(name, sizeof(name), "d/entry-with-a-longish-name-%04d", i);
        wm_write(MNT(name), "");
    }
    DIR *d = opendir(MNT("d"));
    ck_assert_ptr_nonnull(d);
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        count += de->d_name[0] != '.';
    closedir(d);
    ck_assert_int_eq(count, 1500);
    ck_assert_int_eq(rmdir(MNT("d")), -1);
    ck_assert_int_eq(errno, ENOTEMPTY);
    ck_assert_int_eq(wm_sh("rm -rf '%s'", MNT("d")), 0);
    ck_assert_int_eq(stat(SRC("d"), &st), -1);
    ck_assert_int_eq(mkdir(MNT("e"), 0755), 0);
    ck_assert_int_eq(rmdir(MNT("e")), 0);
    ck_assert_int_eq(access(SRC("e"), F_OK), -1);
    ck_assert_int_eq(mkdir(MNT("e"), 0755), 0);
    ck_assert_int_eq(mkdir(MNT("e"), 0755), -1);
    ck_assert_int_eq(errno, EEXIST);
}
END_TEST

START_TEST(unlink_and_unlinked_but_open)
{
    wm_write(MNT("u"), "still here");
    int fd = open(MNT("u"), O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(unlink(MNT("u")), 0);
    ck_assert_int_eq(access(SRC("u"), F_OK), -1);
    ck_assert_int_eq(access(MNT("u"), F_OK), -1);
    char buf[32] = {0};
    ck_assert_int_eq(pread(fd, buf, sizeof(buf) - 1, 0), 10);
    ck_assert_str_eq(buf, "still here");
    ck_assert_int_eq(pwrite(fd, "STILL", 5, 0), 5);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    ck_assert_int_eq(st.st_nlink, 0);
    ck_assert_int_eq(st.st_size, 10);
    ck_assert_int_eq(ftruncate(fd, 3), 0);
    ck_assert_int_eq(fstat(fd, &st), 0);
    ck_assert_int_eq(st.st_size, 3);
    memset(buf, 0, sizeof(buf));
    ck_assert_int_eq(pread(fd, buf, sizeof(buf) - 1, 0), 3);
    ck_assert_str_eq(buf, "STI");
    close(fd);
    ck_assert_int_eq(unlink(MNT("u")), -1);
    ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(rename_plain_noreplace_exchange)
{
    wm_write(MNT("a"), "A");
    wm_write(MNT("b"), "B");
    ck_assert_int_eq(mkdir(MNT("dir"), 0755), 0);
    ck_assert_int_eq(rename(MNT("a"), MNT2("dir/a2")), 0);
    assert_content(SRC("dir/a2"), "A");
    ck_assert_int_eq(access(SRC("a"), F_OK), -1);
    ck_assert_int_eq(access(MNT("a"), F_OK), -1);

    ck_assert_int_eq(renameat2(AT_FDCWD, MNT("b"), AT_FDCWD, MNT2("dir/a2"), RENAME_NOREPLACE),
                     -1);
    ck_assert_int_eq(errno, EEXIST);
    assert_content(SRC("dir/a2"), "A");

    ck_assert_int_eq(renameat2(AT_FDCWD, MNT("b"), AT_FDCWD, MNT2("dir/a2"), RENAME_EXCHANGE),
                     0);
    assert_content(SRC("dir/a2"), "B");
    assert_content(SRC("b"), "A");
    assert_content(MNT("dir/a2"), "B");
    assert_content(MNT("b"), "A");

    /* Overwriting rename, and a directory rename with contents. */
    ck_assert_int_eq(rename(MNT("b"), MNT2("dir/a2")), 0);
    assert_content(MNT("dir/a2"), "A");
    ck_assert_int_eq(rename(MNT("dir"), MNT2("dir2")), 0);
    assert_content(SRC("dir2/a2"), "A");
    assert_content(MNT("dir2/a2"), "A");
    ck_assert_int_eq(access(MNT("dir"), F_OK), -1);
}
END_TEST

START_TEST(hard_links_keep_nlink_exact)
{
    wm_write(MNT("orig"), "data");
    ck_assert_int_eq(link(MNT("orig"), MNT2("alias")), 0);
    struct stat st, st2;
    ck_assert_int_eq(stat(MNT("orig"), &st), 0);
    ck_assert_int_eq(stat(MNT2("alias"), &st2), 0);
    ck_assert_int_eq(st.st_nlink, 2);
    ck_assert_int_eq(st2.st_nlink, 2);
    ck_assert_int_eq(st.st_ino, st2.st_ino);
    ck_assert_int_eq(stat(SRC("alias"), &st), 0);
    ck_assert_int_eq(st.st_nlink, 2);
    /* A write through one name shows through the other. */
    wm_write(MNT("alias"), "changed");
    assert_content(MNT("orig"), "changed");
    ck_assert_int_eq(chmod(MNT("alias"), 0600), 0);
    ck_assert_int_eq(stat(MNT("orig"), &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(unlink(MNT("orig")), 0);
    ck_assert_int_eq(stat(MNT("alias"), &st), 0);
    ck_assert_int_eq(st.st_nlink, 1);
    assert_content(SRC("alias"), "changed");
}
END_TEST

START_TEST(symlinks)
{
    ck_assert_int_eq(symlink("target/../x", MNT("ln")), 0);
    char buf[64] = {0};
    ck_assert_int_eq(readlink(MNT("ln"), buf, sizeof(buf)), 11);
    ck_assert_str_eq(buf, "target/../x");
    memset(buf, 0, sizeof(buf));
    ck_assert_int_eq(readlink(SRC("ln"), buf, sizeof(buf)), 11);
    ck_assert_str_eq(buf, "target/../x");
    struct stat st;
    ck_assert_int_eq(lstat(MNT("ln"), &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    /* Following a symlink through the mount stays inside the mount. */
    wm_write(MNT("real"), "via link");
    ck_assert_int_eq(symlink("real", MNT("rel")), 0);
    assert_content(MNT("rel"), "via link");
    ck_assert_int_eq(lchown(MNT("rel"), 7, 7), 0);
    ck_assert_int_eq(lstat(SRC("rel"), &st), 0);
    ck_assert_int_eq(st.st_uid, 7);
    ck_assert_int_eq(stat(SRC("real"), &st), 0);
    ck_assert_int_eq(st.st_uid, 0); /* the target was not touched */

    /* A symlink's own times can be set (cp -a, rsync -a, tar x do it);
     * the target keeps its own. */
    struct stat target_before;
    ck_assert_int_eq(stat(SRC("real"), &target_before), 0);
    struct timespec tv[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1200000000, .tv_nsec = 7}};
    ck_assert_msg(utimensat(AT_FDCWD, MNT("rel"), tv, AT_SYMLINK_NOFOLLOW) == 0,
                  "utimensat on a symlink: %s", strerror(errno));
    ck_assert_int_eq(lstat(SRC("rel"), &st), 0);
    ck_assert_int_eq(st.st_mtim.tv_sec, 1200000000);
    ck_assert_int_eq(st.st_mtim.tv_nsec, 7);
    ck_assert_int_eq(lstat(MNT("rel"), &st), 0);
    ck_assert_int_eq(st.st_mtim.tv_sec, 1200000000);
    ck_assert_int_eq(stat(SRC("real"), &st), 0);
    ck_assert_int_eq(st.st_mtim.tv_sec, target_before.st_mtim.tv_sec);
}
END_TEST

/* Run fn(path) in a child as uid/gid 65534 with no groups; its exit status. */
static int as_nobody(int (*fn)(const char *), const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
            setresuid(65534, 65534, 65534))
            _exit(90);
        _exit(fn(path));
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
}

static int append_byte(const char *p)
{
    int fd = open(p, O_WRONLY | O_APPEND);
    if (fd < 0)
        return 1;
    int r = write(fd, "y", 1) == 1 ? 0 : 2;
    close(fd);
    return r;
}

static int truncate_to_one(const char *p)
{
    return truncate(p, 1) == 0 ? 0 : 1;
}

static int open_truncating(const char *p)
{
    int fd = open(p, O_WRONLY | O_TRUNC);
    if (fd < 0)
        return 1;
    close(fd);
    return 0;
}

/* A write, truncate or O_TRUNC open by a user without CAP_FSETID clears
 * suid/sgid exactly as on a native filesystem, a root write keeps them, and
 * any write drops file capabilities; the mount's cached view and SRC agree.
 * (The daemon does this itself: it negotiates FUSE_HANDLE_KILLPRIV_V2.) */
START_TEST(privileges_cleared_as_on_native)
{
    char native[PATH_MAX], p[PATH_MAX], q[PATH_MAX];
    wm_path(native, sizeof(native), m.root, "native");
    ck_assert_int_eq(mkdir(native, 0777), 0);
    ck_assert_int_eq(chmod(native, 0777), 0);
    ck_assert_int_eq(chmod(m.root, 0755), 0);
    ck_assert_int_eq(chmod(m.mnt, 0777), 0);
    static const struct {
        const char *name;
        mode_t mode;
        int (*fn)(const char *);
        bool as_root;
    } cases[] = {
        {"append-suid", 06777, append_byte, false},
        {"append-sgid-no-group-exec", 02767, append_byte, false},
        {"truncate-suid", 06777, truncate_to_one, false},
        {"open-trunc-suid", 06777, open_truncating, false},
        {"append-as-root", 06777, append_byte, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mode_t got[2];
        const char *dirs[2] = {native, m.mnt};
        for (int d = 0; d < 2; d++) {
            wm_path(p, sizeof(p), dirs[d], cases[i].name);
            wm_write(p, "x");
            ck_assert_int_eq(chmod(p, cases[i].mode), 0);
            int rc = cases[i].as_root ? cases[i].fn(p) : as_nobody(cases[i].fn, p);
            ck_assert_msg(rc == 0, "%s in %s: child exit %d", cases[i].name, dirs[d], rc);
            struct stat st;
            ck_assert_int_eq(stat(p, &st), 0);
            got[d] = st.st_mode & 07777;
        }
        ck_assert_msg(got[0] == got[1], "%s: native mode %o, mount mode %o", cases[i].name,
                      got[0], got[1]);
        struct stat st;
        ck_assert_int_eq(stat(SRC(cases[i].name), &st), 0);
        ck_assert_msg((st.st_mode & 07777) == got[1], "%s: SRC mode %o, mount shows %o",
                      cases[i].name, st.st_mode & 07777, got[1]);
    }

    /* File capabilities go with any write, root's included. */
    const unsigned char caps[20] = {0x01, 0, 0, 0x02, 0, 0x20}; /* rev 2, effective, CAP_NET_RAW */
    wm_path(p, sizeof(p), native, "capped");
    wm_path(q, sizeof(q), m.mnt, "capped");
    const char *paths[2] = {p, q};
    for (int d = 0; d < 2; d++) {
        wm_write(paths[d], "x");
        ck_assert_msg(setxattr(paths[d], "security.capability", caps, sizeof(caps), 0) == 0,
                      "setcap %s: %s", paths[d], strerror(errno));
        ck_assert_int_eq(append_byte(paths[d]), 0);
        ck_assert_msg(getxattr(paths[d], "security.capability", NULL, 0) < 0 && errno == ENODATA,
                      "%s kept its capabilities after a write", paths[d]);
    }
    ck_assert(getxattr(SRC("capped"), "security.capability", NULL, 0) < 0 && errno == ENODATA);
}
END_TEST

/* The daemon remembers that a file has no capabilities (fs/caps_cache.h) so
 * that a stream of writes costs no xattr call each; that memory must not
 * outlive a change that could give them back: setxattr through the mount,
 * chmod to suid, or a capability set directly in SRC. */
static long long status_num(const char *key)
{
    return wm_status_num(&m, key);
}

struct counter_wait {
    const char *key;
    long long want;
};

static bool counter_reached(void *arg)
{
    struct counter_wait *w = arg;
    return status_num(w->key) >= w->want;
}

START_TEST(privileges_cleared_after_cached_writes)
{
    const unsigned char caps[20] = {0x01, 0, 0, 0x02, 0, 0x20}; /* rev 2, effective, CAP_NET_RAW */
    wm_write(MNT("c"), "x");
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(append_byte(MNT("c")), 0); /* the "no caps" mark is set */

    /* Through the mount. */
    ck_assert_int_eq(setxattr(MNT("c"), "security.capability", caps, sizeof(caps), 0), 0);
    ck_assert_int_eq(append_byte(MNT("c")), 0);
    ck_assert_msg(getxattr(SRC("c"), "security.capability", NULL, 0) < 0 && errno == ENODATA,
                  "a write after setcap through the mount kept the capabilities");

    /* Directly in SRC: once the watcher has seen it (a second outside event
     * after it is handled in order, so when the counter passes both, the
     * first is done). */
    ck_assert_int_eq(append_byte(MNT("c")), 0);
    long long before = status_num("outside_events");
    ck_assert_int_ge(before, 0);
    ck_assert_int_eq(setxattr(SRC("c"), "security.capability", caps, sizeof(caps), 0), 0);
    wm_write(SRC("marker"), "m");
    struct counter_wait w = {"outside_events", before + 2};
    ck_assert_msg(wm_poll(counter_reached, &w, 5000), "watcher never saw the outside setcap");
    ck_assert_int_eq(append_byte(MNT("c")), 0);
    ck_assert_msg(getxattr(SRC("c"), "security.capability", NULL, 0) < 0 && errno == ENODATA,
                  "a write after setcap in SRC kept the capabilities");

    /* suid set after cached writes still goes with a non-root write. */
    ck_assert_int_eq(chmod(m.root, 0755), 0);
    ck_assert_int_eq(chmod(m.mnt, 0777), 0);
    ck_assert_int_eq(chmod(MNT("c"), 06777), 0);
    ck_assert_int_eq(as_nobody(append_byte, MNT("c")), 0);
    struct stat st;
    ck_assert_int_eq(stat(SRC("c"), &st), 0);
    ck_assert_msg((st.st_mode & 07777) == 0777, "SRC mode %o after a write as nobody",
                  st.st_mode & 07777);
    ck_assert_int_eq(stat(MNT("c"), &st), 0);
    ck_assert_msg((st.st_mode & 07777) == 0777, "mount shows mode %o after a write as nobody",
                  st.st_mode & 07777);
    char *got = wm_read(SRC("c"), NULL);
    ck_assert_str_eq(got, "xyyyyyyy");
    free(got);
}
END_TEST

/* A file made through the mount is known to have no capabilities, so the
 * kernel's GETXATTR before its first write is answered without a syscall
 * (fs/ops_xattr.c).  That answer must follow every way capabilities can
 * arrive: setxattr through the mount, or directly in SRC. */
static bool mount_shows_caps(void *path)
{
    return getxattr(path, "security.capability", NULL, 0) == 20;
}

START_TEST(new_file_capabilities_seen)
{
    const unsigned char caps[20] = {0x01, 0, 0, 0x02, 0, 0x20}; /* rev 2, effective, CAP_NET_RAW */
    unsigned char got[64];
    static char pn[PATH_MAX];
    wm_write(MNT("n"), "x");
    ck_assert(getxattr(MNT("n"), "security.capability", got, sizeof(got)) < 0 && errno == ENODATA);
    ck_assert_int_eq(setxattr(MNT("n"), "security.capability", caps, sizeof(caps), 0), 0);
    ck_assert_int_eq(getxattr(MNT("n"), "security.capability", got, sizeof(got)), 20);
    ck_assert(memcmp(got, caps, sizeof(caps)) == 0);
    ck_assert_int_eq(getxattr(MNT("n"), "security.capability", NULL, 0), 20);
    ck_assert(getxattr(MNT("n"), "security.capability", got, 4) < 0 && errno == ERANGE);

    /* Made through the mount, capabilities given directly in SRC. */
    int fd = open(MNT("o"), O_WRONLY | O_CREAT | O_EXCL, 0755);
    ck_assert_int_ge(fd, 0);
    ck_assert(getxattr(MNT("o"), "security.capability", NULL, 0) < 0 && errno == ENODATA);
    ck_assert_int_eq(setxattr(SRC("o"), "security.capability", caps, sizeof(caps), 0), 0);
    wm_path(pn, sizeof(pn), m.mnt, "o");
    ck_assert_msg(wm_poll(mount_shows_caps, pn, 5000),
                  "capabilities set in SRC never showed through the mount");
    /* and a write through the mount still clears them */
    ck_assert_int_eq(write(fd, "y", 1), 1);
    close(fd);
    ck_assert_msg(getxattr(SRC("o"), "security.capability", NULL, 0) < 0 && errno == ENODATA,
                  "a write after setcap in SRC kept the capabilities");
}
END_TEST

/* The kernel sends CREATE for a name it believes free (a cached negative
 * entry; O_EXCL alone makes it look the name up again first).  A file made
 * in SRC a moment before, not yet reported by the watcher, must be opened
 * as it is: no truncation, no new mode, and not handed to SRC's owner as a
 * file the mount made; O_EXCL must fail with EEXIST as natively. */
START_TEST(create_on_name_made_outside)
{
    /* Remount with SRC owned by someone else, so that a wrongly "made"
     * file would change owner. */
    ck_assert_int_eq(wm_sh("'%s' unmount '%s'", wm_bin(), m.mnt), 0);
    m.mounted = false;
    ck_assert_int_eq(chown(m.src, 4321, 4321), 0);
    ck_assert_int_eq(wm_sh("'%s' mount '%s' '%s'", wm_bin(), m.src, m.mnt), 0);
    m.mounted = true;
    char name[32];
    for (int i = 0; i < 100; i++) {
        struct stat st;
        snprintf(name, sizeof(name), "x%d", i);
        ck_assert_int_eq(stat(MNT(name), &st), -1); /* negative entry cached */
        /* Made in SRC and opened through the mount at once: the watcher
         * has most likely not dropped the negative entry yet. */
        int sfd = open(SRC(name), O_WRONLY | O_CREAT | O_EXCL, 0640);
        ck_assert_int_ge(sfd, 0);
        int fd = open(MNT(name), O_WRONLY | O_CREAT | O_EXCL, 0600);
        int e = errno;
        close(sfd);
        ck_assert_msg(fd < 0, "O_EXCL create of %s, made in SRC, succeeded (round %d)", name, i);
        ck_assert_int_eq(e, EEXIST);

        snprintf(name, sizeof(name), "y%d", i);
        ck_assert_int_eq(stat(MNT(name), &st), -1);
        sfd = open(SRC(name), O_WRONLY | O_CREAT | O_EXCL, 0640);
        ck_assert_int_ge(sfd, 0);
        ck_assert_int_eq(write(sfd, "outside", 7), 7);
        fd = open(MNT(name), O_WRONLY | O_CREAT, 0600);
        ck_assert_msg(fd >= 0, "O_CREAT open of %s: %s", name, strerror(errno));
        close(sfd);
        close(fd);
        char *got = wm_read(SRC(name), NULL);
        ck_assert_str_eq(got, "outside");
        free(got);
        ck_assert_int_eq(stat(SRC(name), &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0640);
        ck_assert_msg(st.st_uid == 0 && st.st_gid == 0,
                      "%s, made in SRC by root, now owned by %d:%d (round %d)", name,
                      (int)st.st_uid, (int)st.st_gid, i);
    }
}
END_TEST

/* A listing longer than one READDIR reply resumes at the right place: every
 * name exactly once, made both through the mount and directly in SRC. */
START_TEST(big_directory_listed_once)
{
    enum { N = 3000 };
    ck_assert_int_eq(mkdir(MNT("big"), 0755), 0);
    char name[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "big/%s-entry-with-a-longish-name-%05d", i % 2 ? "m" : "s", i);
        wm_write(i % 2 ? MNT(name) : SRC(name), "");
    }
    for (int round = 0; round < 2; round++) { /* cold, then from the kernel's cache */
        static unsigned char seen[N];
        memset(seen, 0, sizeof(seen));
        DIR *d = opendir(MNT("big"));
        ck_assert_ptr_nonnull(d);
        int count = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            int i = atoi(strrchr(de->d_name, '-') + 1);
            ck_assert_msg(i >= 0 && i < N && !seen[i], "%s listed twice or unknown", de->d_name);
            seen[i] = 1;
            count++;
        }
        closedir(d);
        ck_assert_int_eq(count, N);
    }
}
END_TEST

START_TEST(mknod_fifo)
{
    ck_assert_int_eq(mkfifo(MNT("fifo"), 0644), 0);
    struct stat st;
    ck_assert_int_eq(lstat(SRC("fifo"), &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));
    ck_assert_int_eq(lstat(MNT("fifo"), &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));
    /* A fifo in the mount is a real fifo: data passes between processes. */
    pid_t pid = fork();
    if (pid == 0) {
        int w = open(MNT("fifo"), O_WRONLY);
        _exit(w >= 0 && write(w, "pipe", 4) == 4 ? 0 : 1);
    }
    int r = open(MNT("fifo"), O_RDONLY);
    char buf[8] = {0};
    ck_assert_int_eq(read(r, buf, 4), 4);
    close(r);
    ck_assert_str_eq(buf, "pipe");
    int status;
    waitpid(pid, &status, 0);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

START_TEST(xattrs)
{
    wm_write(MNT("x"), "");
    ck_assert_int_eq(setxattr(MNT("x"), "user.color", "blue", 4, 0), 0);
    char buf[64] = {0};
    ck_assert_int_eq(getxattr(SRC("x"), "user.color", buf, sizeof(buf)), 4);
    ck_assert_str_eq(buf, "blue");
    memset(buf, 0, sizeof(buf));
    ck_assert_int_eq(getxattr(MNT("x"), "user.color", NULL, 0), 4);
    ck_assert_int_eq(getxattr(MNT("x"), "user.color", buf, sizeof(buf)), 4);
    ck_assert_str_eq(buf, "blue");
    ck_assert_int_eq(getxattr(MNT("x"), "user.color", buf, 2), -1);
    ck_assert_int_eq(errno, ERANGE);
    ck_assert_int_eq(setxattr(MNT("x"), "user.color", "red", 3, XATTR_CREATE), -1);
    ck_assert_int_eq(errno, EEXIST);
    ssize_t n = listxattr(MNT("x"), buf, sizeof(buf));
    ck_assert_int_gt(n, 0);
    ck_assert_ptr_nonnull(memmem(buf, (size_t)n, "user.color", 11));
    ck_assert_int_eq(removexattr(MNT("x"), "user.color"), 0);
    ck_assert_int_eq(getxattr(SRC("x"), "user.color", buf, sizeof(buf)), -1);
    ck_assert_int_eq(errno, ENODATA);
    ck_assert_int_eq(getxattr(MNT("x"), "user.color", buf, sizeof(buf)), -1);
    ck_assert_int_eq(errno, ENODATA);
}
END_TEST

START_TEST(fallocate_copy_range_seek_data)
{
    int fd = open(MNT("sparse"), O_RDWR | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fallocate(fd, 0, 0, 1 << 20), 0);
    struct stat st;
    ck_assert_int_eq(stat(SRC("sparse"), &st), 0);
    ck_assert_int_eq(st.st_size, 1 << 20);
    ck_assert_int_eq(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 2 << 20), 0);
    ck_assert_int_eq(fstat(fd, &st), 0);
    ck_assert_int_eq(st.st_size, 1 << 20);
    ck_assert_int_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1 << 20), 0);
    /* Data at 4 MiB only: SEEK_DATA from 0 finds it, SEEK_HOLE after it. */
    ck_assert_int_eq(pwrite(fd, "data", 4, 4 << 20), 4);
    ck_assert_int_eq(lseek(fd, 0, SEEK_DATA), 4 << 20);
    off_t hole = lseek(fd, 4 << 20, SEEK_HOLE);
    ck_assert_int_gt(hole, 4 << 20);
    close(fd);

    wm_write(MNT("cfr-src"), "copy this range please");
    int in = open(MNT("cfr-src"), O_RDONLY), out = open(MNT("cfr-dst"), O_WRONLY | O_CREAT, 0644);
    loff_t off_in = 5, off_out = 0;
    ck_assert_int_eq(copy_file_range(in, &off_in, out, &off_out, 10, 0), 10);
    close(in);
    close(out);
    assert_content(SRC("cfr-dst"), "this range");
    assert_content(MNT("cfr-dst"), "this range");
}
END_TEST

/* Child: try a lock on path, exit 0 if it was granted, 1 if refused. */
static int try_lock_in_child(const char *path, bool use_flock)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(path, O_RDWR);
        if (use_flock)
            _exit(flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : 1);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
        _exit(fcntl(fd, F_SETLK, &fl) == 0 ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    return WEXITSTATUS(status);
}

START_TEST(flock_and_posix_locks)
{
    wm_write(MNT("lock"), "0123456789");
    int fd = open(MNT("lock"), O_RDWR);
    ck_assert_int_eq(flock(fd, LOCK_EX), 0);
    ck_assert_int_eq(try_lock_in_child(MNT("lock"), true), 1);
    ck_assert_int_eq(flock(fd, LOCK_UN), 0);
    ck_assert_int_eq(try_lock_in_child(MNT("lock"), true), 0);

    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    ck_assert_int_eq(fcntl(fd, F_SETLK, &fl), 0);
    ck_assert_int_eq(try_lock_in_child(MNT("lock"), false), 1);
    close(fd); /* closing releases POSIX locks */
    ck_assert_int_eq(try_lock_in_child(MNT("lock"), false), 0);
}
END_TEST

START_TEST(statfs_matches_source)
{
    struct statvfs a, b;
    ck_assert_int_eq(statvfs(MNT(""), &a), 0);
    ck_assert_int_eq(statvfs(SRC(""), &b), 0);
    ck_assert_uint_eq(a.f_blocks * a.f_frsize, b.f_blocks * b.f_frsize);
    ck_assert_uint_eq(a.f_namemax, b.f_namemax);
}
END_TEST

START_TEST(fsyncdir)
{
    ck_assert_int_eq(mkdir(MNT("sd"), 0755), 0);
    int fd = open(MNT("sd"), O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fsync(fd), 0);
    close(fd);
}
END_TEST

START_TEST(state_dir_is_hidden)
{
    struct stat st;
    ck_assert_int_eq(stat(SRC(".wsync"), &st), 0);
    ck_assert_int_eq(stat(MNT(".wsync"), &st), -1);
    ck_assert_int_eq(errno, ENOENT);
    DIR *d = opendir(m.mnt);
    struct dirent *de;
    while ((de = readdir(d)))
        ck_assert_str_ne(de->d_name, ".wsync");
    closedir(d);
    ck_assert_int_eq(mkdir(MNT(".wsync"), 0755), -1);
    ck_assert_int_eq(open(MNT(".wsync"), O_CREAT | O_WRONLY, 0644), -1);
    wm_write(MNT("victim"), "v");
    ck_assert_int_eq(rename(MNT("victim"), MNT2(".wsync")), -1);
    ck_assert_int_eq(symlink("x", MNT(".wsync")), -1);
    ck_assert_int_eq(link(MNT("victim"), MNT2(".wsync")), -1);
    ck_assert_int_eq(stat(SRC(".wsync"), &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    /* Only the top-level name is reserved. */
    ck_assert_int_eq(mkdir(MNT("sub"), 0755), 0);
    ck_assert_int_eq(mkdir(MNT("sub/.wsync"), 0755), 0);
    ck_assert_int_eq(stat(SRC("sub/.wsync"), &st), 0);
    /* The root's link count does not count the hidden dir. */
    ck_assert_int_eq(stat(MNT(""), &st), 0);
    ck_assert_int_eq(st.st_nlink, 3);
}
END_TEST

START_TEST(deep_tree_beyond_path_max)
{
    /* 40 levels of 200-char names is ~8 KiB of path: only fd-relative
     * resolution gets there. */
    char name[201];
    memset(name, 'n', 200);
    name[200] = '\0';
    int dir = open(m.mnt, O_RDONLY | O_DIRECTORY);
    for (int i = 0; i < 40; i++) {
        ck_assert_int_eq(mkdirat(dir, name, 0755), 0);
        int next = openat(dir, name, O_RDONLY | O_DIRECTORY);
        ck_assert_int_ge(next, 0);
        close(dir);
        dir = next;
    }
    int fd = openat(dir, "leaf", O_WRONLY | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "deep", 4), 4);
    close(fd);
    struct stat st;
    ck_assert_int_eq(fstatat(dir, "leaf", &st, 0), 0);
    ck_assert_int_eq(st.st_size, 4);
    close(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mount_ops");
    TCase *tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, create_write_read);
    tcase_add_test(tc, large_file_roundtrip);
    tcase_add_test(tc, setattr_chmod_chown_truncate_utimens);
    tcase_add_test(tc, mkdir_rmdir_readdir);
    tcase_add_test(tc, unlink_and_unlinked_but_open);
    tcase_add_test(tc, rename_plain_noreplace_exchange);
    tcase_add_test(tc, hard_links_keep_nlink_exact);
    tcase_add_test(tc, symlinks);
    tcase_add_test(tc, privileges_cleared_as_on_native);
    tcase_add_test(tc, privileges_cleared_after_cached_writes);
    tcase_add_test(tc, new_file_capabilities_seen);
    tcase_add_test(tc, create_on_name_made_outside);
    tcase_add_test(tc, big_directory_listed_once);
    tcase_add_test(tc, mknod_fifo);
    tcase_add_test(tc, xattrs);
    tcase_add_test(tc, fallocate_copy_range_seek_data);
    tcase_add_test(tc, flock_and_posix_locks);
    tcase_add_test(tc, statfs_matches_source);
    tcase_add_test(tc, fsyncdir);
    tcase_add_test(tc, state_dir_is_hidden);
    tcase_add_test(tc, deep_tree_beyond_path_max);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
