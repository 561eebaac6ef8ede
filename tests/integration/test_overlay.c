/*
 * test_overlay.c — the per-machine overlay through real mounts: copy-up,
 * whiteouts, merged and opaque dirs, renames across layers, persistence
 * across remounts, exclusion from push, `wsync overlay`, and a real venv
 * with a pip install (offline) that survives a remount.
 */
#include "tests/lib/harness.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

static struct wmount m;
static char pm[PATH_MAX], pm2[PATH_MAX], ps[PATH_MAX], po[2 * PATH_MAX];

#define MNT(rel) (wm_path(pm, sizeof(pm), m.mnt, rel), pm)
#define MNT2(rel) (wm_path(pm2, sizeof(pm2), m.mnt, rel), pm2)
#define SRC(rel) (wm_path(ps, sizeof(ps), m.src, rel), ps)
#define UPPER(rel) (snprintf(po, sizeof(po), "%s/.wsync/overlay/%s", m.src, rel), po)

static void setup(void)
{
    wm_prepare(&m);
}

static void teardown(void)
{
    wm_teardown(&m);
}

static void mount_it(void)
{
    ck_assert_int_eq(wm_sh("'%s' mount '%s' '%s'", wm_bin(), m.src, m.mnt), 0);
    m.mounted = true;
}

static void unmount_it(void)
{
    ck_assert_int_eq(wm_sh("'%s' unmount '%s'", wm_bin(), m.mnt), 0);
    m.mounted = false;
}

static void assert_content(const char *path, const char *want)
{
    char *got = wm_read(path, NULL);
    ck_assert_msg(got, "read %s: %s", path, strerror(errno));
    ck_assert_msg(strcmp(got, want) == 0, "%s holds '%s', want '%s'", path, got, want);
    free(got);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static bool is_whiteout(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

/* Sorted names of a dir, space-separated, without dots. */
static char *listing(const char *dir)
{
    return wm_sh_out(NULL, "ls -A '%s' | sort | tr '\\n' ' '", dir);
}

static void assert_listing(const char *dir, const char *want)
{
    char *got = listing(dir);
    ck_assert_msg(strcmp(got, want) == 0, "%s lists '%s', want '%s'", dir, got, want);
    free(got);
}

START_TEST(copy_up_keeps_lower_and_attributes)
{
    ck_assert_int_eq(mkdir(SRC("build"), 0755), 0);
    wm_write(SRC("build/f"), "lower");
    ck_assert_int_eq(chmod(SRC("build/f"), 0640), 0);
    ck_assert_int_eq(setxattr(SRC("build/f"), "user.tag", "v1", 2, 0), 0);
    struct timespec tv[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000, .tv_nsec = 5}};
    ck_assert_int_eq(utimensat(AT_FDCWD, SRC("build/f"), tv, 0), 0);
    mount_it();

    /* A reader opened before the copy-up keeps working, and the inode
     * number the kernel shows does not change. */
    struct stat before, after, rst;
    ck_assert_int_eq(stat(MNT("build/f"), &before), 0);
    int ro = open(MNT("build/f"), O_RDONLY);
    ck_assert_int_ge(ro, 0);

    /* An xattr change copies up without touching data or times. */
    ck_assert_int_eq(setxattr(MNT("build/f"), "user.more", "v2", 2, 0), 0);
    ck_assert_msg(exists(UPPER("build/f")), "no copy-up");
    struct stat up;
    ck_assert_int_eq(lstat(UPPER("build/f"), &up), 0);
    ck_assert_int_eq(up.st_mode & 07777, 0640);
    ck_assert_int_eq(up.st_mtim.tv_sec, 1000000000);
    ck_assert_int_eq(up.st_mtim.tv_nsec, 5);
    char v[8] = {0};
    ck_assert_int_eq(getxattr(UPPER("build/f"), "user.tag", v, sizeof(v)), 2);
    ck_assert_str_eq(v, "v1");
    ck_assert_int_eq(getxattr(SRC("build/f"), "user.more", v, sizeof(v)), -1);

    FILE *f = fopen(MNT("build/f"), "a");
    ck_assert_ptr_nonnull(f);
    fputs("+upper", f);
    fclose(f);
    assert_content(MNT("build/f"), "lower+upper");
    assert_content(SRC("build/f"), "lower"); /* the lower layer is never written */
    assert_content(UPPER("build/f"), "lower+upper");
    ck_assert_int_eq(stat(MNT("build/f"), &after), 0);
    ck_assert_int_eq(after.st_ino, before.st_ino);
    ck_assert_int_eq(fstat(ro, &rst), 0);
    ck_assert_int_eq(rst.st_ino, before.st_ino);
    char buf[16] = {0};
    ck_assert_int_ge(pread(ro, buf, 5, 0), 5);
    ck_assert_int_eq(memcmp(buf, "lower", 5), 0);
    close(ro);

    /* chmod and truncate copy up too; our own xattrs never show. */
    wm_write(SRC("build/g"), "0123456789");
    ck_assert_int_eq(truncate(MNT("build/g"), 4), 0);
    assert_content(MNT("build/g"), "0123");
    assert_content(SRC("build/g"), "0123456789");
    char list[256];
    ssize_t n = listxattr(MNT("build"), list, sizeof(list));
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1)
        ck_assert_msg(strncmp(list + i, "trusted.wsync.", 14) != 0, "own xattr shown");
}
END_TEST

START_TEST(big_file_copy_up_keeps_holes)
{
    ck_assert_int_eq(mkdir(SRC("build"), 0755), 0);
    int fd = open(SRC("build/big"), O_WRONLY | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, "head", 4, 0), 4);
    ck_assert_int_eq(pwrite(fd, "tail", 4, 64 << 20), 4);
    close(fd);
    mount_it();
    fd = open(MNT("build/big"), O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, "HEAD", 4, 0), 4);
    close(fd);
    struct stat st;
    ck_assert_int_eq(stat(UPPER("build/big"), &st), 0);
    ck_assert_int_eq(st.st_size, (64 << 20) + 4);
    ck_assert_msg(st.st_blocks * 512 < (8 << 20), "copy-up filled the hole: %lld blocks",
                  (long long)st.st_blocks);
    char buf[5] = {0};
    fd = open(MNT("build/big"), O_RDONLY);
    ck_assert_int_eq(pread(fd, buf, 4, 64 << 20), 4);
    close(fd);
    ck_assert_str_eq(buf, "tail");
}
END_TEST

START_TEST(whiteouts_merged_and_opaque_dirs)
{
    ck_assert_int_eq(mkdir(SRC("build"), 0755), 0);
    ck_assert_int_eq(mkdir(SRC("build/sub"), 0755), 0);
    wm_write(SRC("build/a"), "a");
    wm_write(SRC("build/b"), "b");
    wm_write(SRC("build/sub/c"), "c");
    mount_it();
    wm_write(MNT("build/n"), "new");
    ck_assert_int_eq(unlink(MNT("build/a")), 0);
    assert_listing(MNT("build"), "b n sub ");
    ck_assert_int_eq(access(MNT("build/a"), F_OK), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_msg(is_whiteout(UPPER("build/a")), "no whiteout for build/a");
    assert_content(SRC("build/a"), "a");
    ck_assert_msg(!exists(SRC("build/n")), "a local create reached SRC");

    /* rmdir of a merged dir checks the merged view, leaves a whiteout. */
    ck_assert_int_eq(rmdir(MNT("build/sub")), -1);
    ck_assert_int_eq(errno, ENOTEMPTY);
    ck_assert_int_eq(unlink(MNT("build/sub/c")), 0);
    assert_listing(MNT("build/sub"), "");
    ck_assert_int_eq(rmdir(MNT("build/sub")), 0);
    ck_assert_msg(is_whiteout(UPPER("build/sub")), "no whiteout for build/sub");
    assert_content(SRC("build/sub/c"), "c");
    /* A dir made again over it is opaque: the old lower entries stay hidden. */
    ck_assert_int_eq(mkdir(MNT("build/sub"), 0755), 0);
    assert_listing(MNT("build/sub"), "");
    ck_assert_int_eq(access(MNT("build/sub/c"), F_OK), -1);
    /* A file made where a whiteout is replaces it. */
    wm_write(MNT("build/a"), "again");
    assert_content(MNT("build/a"), "again");
    assert_listing(MNT("build"), "a b n sub ");
    /* The whole local dir removed: SRC keeps it, the mount does not. */
    ck_assert_int_eq(wm_sh("rm -rf '%s'", MNT("build")), 0);
    ck_assert_int_eq(access(MNT("build"), F_OK), -1);
    ck_assert_msg(exists(SRC("build/b")), "rm -rf reached SRC");
    assert_listing(m.mnt, "");
}
END_TEST

START_TEST(local_dir_new_in_session)
{
    mount_it();
    /* The common case: nothing in SRC, everything in the upper layer. */
    ck_assert_int_eq(wm_sh("cd '%s' && mkdir -p .venv/x/y && echo hi > .venv/x/y/z && "
                           "mkdir -p a/node_modules/p && ln -s ../q a/node_modules/p/l",
                           m.mnt),
                     0);
    assert_content(MNT(".venv/x/y/z"), "hi\n");
    assert_content(UPPER(".venv/x/y/z"), "hi\n");
    ck_assert_msg(!exists(SRC(".venv")) && !exists(SRC("a/node_modules")), "local in SRC");
    ck_assert_msg(exists(SRC("a")), "mirrored dir a missing from SRC");
    assert_listing(m.mnt, ".venv a ");
    assert_listing(MNT("a"), "node_modules ");
    char t[16] = {0};
    ck_assert_int_eq(readlink(MNT("a/node_modules/p/l"), t, sizeof(t)), 4);
    ck_assert_str_eq(t, "../q");
    /* Renames inside the upper layer, files and dirs. */
    ck_assert_int_eq(rename(MNT(".venv/x"), MNT2(".venv/x2")), 0);
    assert_content(MNT(".venv/x2/y/z"), "hi\n");
    ck_assert_msg(!exists(UPPER(".venv/x")), "old name left in the overlay");
    ck_assert_int_eq(link(MNT(".venv/x2/y/z"), MNT2(".venv/hard")), 0);
    struct stat st;
    ck_assert_int_eq(stat(MNT(".venv/hard"), &st), 0);
    ck_assert_int_eq(st.st_nlink, 2);
    /* A hard link across the layers is EXDEV. */
    wm_write(MNT("m.txt"), "m");
    ck_assert_int_eq(link(MNT("m.txt"), MNT2(".venv/m")), -1);
    ck_assert_int_eq(errno, EXDEV);
}
END_TEST

START_TEST(rename_across_layers)
{
    ck_assert_int_eq(mkdir(SRC("build"), 0755), 0);
    ck_assert_int_eq(mkdir(SRC("build/d"), 0755), 0);
    wm_write(SRC("build/d/in"), "in");
    wm_write(SRC("build/low"), "low");
    wm_write(SRC("x.c"), "x");
    mount_it();

    /* mirrored -> local: moves into the overlay, SRC loses it */
    ck_assert_int_eq(rename(MNT("x.c"), MNT2("build/x.c")), 0);
    assert_content(MNT("build/x.c"), "x");
    assert_content(UPPER("build/x.c"), "x");
    ck_assert_msg(!exists(SRC("x.c")) && !exists(SRC("build/x.c")), "x.c left in SRC");

    /* local (lower only) -> mirrored: copied up, moved to SRC, whiteout left */
    ck_assert_int_eq(rename(MNT("build/low"), MNT2("low.txt")), 0);
    assert_content(MNT("low.txt"), "low");
    assert_content(SRC("low.txt"), "low");
    ck_assert_int_eq(access(MNT("build/low"), F_OK), -1);
    ck_assert_msg(is_whiteout(UPPER("build/low")), "no whiteout after rename");
    assert_content(SRC("build/low"), "low");

    /* local -> local over a lower file */
    wm_write(MNT("build/new"), "new");
    wm_write(SRC("build/target"), "old");
    ck_assert_int_eq(rename(MNT("build/new"), MNT2("build/target")), 0);
    assert_content(MNT("build/target"), "new");
    assert_content(SRC("build/target"), "old");

    /* a dir with lower contents: EXDEV (mv copies instead) */
    ck_assert_int_eq(rename(MNT("build/d"), MNT2("build/e")), -1);
    ck_assert_int_eq(errno, EXDEV);
    ck_assert_int_eq(wm_sh("mv '%s' '%s'", MNT("build/d"), MNT2("build/e")), 0);
    assert_content(MNT("build/e/in"), "in");
    ck_assert_int_eq(access(MNT("build/d"), F_OK), -1);
    assert_content(SRC("build/d/in"), "in");

    /* a mirrored dir with contents into a local one and back out: EXDEV
     * (the inodes below it would keep their layer), so mv copies it */
    ck_assert_int_eq(wm_sh("mkdir -p '%s/s' && echo v > '%s/s/v'", MNT("srcdir"),
                           MNT("srcdir")),
                     0);
    ck_assert_int_eq(rename(MNT("srcdir"), MNT2("build/srcdir")), -1);
    ck_assert_int_eq(errno, EXDEV);
    ck_assert_int_eq(wm_sh("mv '%s' '%s'", MNT("srcdir"), MNT2("build/srcdir")), 0);
    assert_content(UPPER("build/srcdir/s/v"), "v\n");
    ck_assert_msg(!exists(SRC("srcdir")), "srcdir left in SRC");
    ck_assert_int_eq(wm_sh("mv '%s' '%s'", MNT("build/srcdir"), MNT2("back")), 0);
    assert_content(SRC("back/s/v"), "v\n");
    ck_assert_msg(!exists(UPPER("build/srcdir")), "srcdir left in the overlay");

    /* an empty dir, and a file with one name, change layers in one rename */
    ck_assert_int_eq(mkdir(MNT("emptyd"), 0755), 0);
    ck_assert_int_eq(rename(MNT("emptyd"), MNT2("build/emptyd")), 0);
    ck_assert_msg(exists(UPPER("build/emptyd")) && !exists(SRC("emptyd")), "emptyd not moved up");
    /* a file with two names does not: it would be one inode in both layers */
    wm_write(MNT("two"), "2");
    ck_assert_int_eq(link(MNT("two"), MNT2("two.b")), 0);
    ck_assert_int_eq(rename(MNT("two"), MNT2("build/two")), -1);
    ck_assert_int_eq(errno, EXDEV);

    /* RENAME_NOREPLACE sees the merged view */
    wm_write(MNT("build/nr"), "nr");
    ck_assert_int_eq(renameat2(AT_FDCWD, MNT("build/nr"), AT_FDCWD, MNT2("build/target"),
                               RENAME_NOREPLACE),
                     -1);
    ck_assert_int_eq(errno, EEXIST);
}
END_TEST

/* A mirrored dir's local entries (its skeleton in the overlay) follow it
 * through renames and exchanges, and keep an rmdir from seeing it empty. */
START_TEST(local_entries_follow_their_mirrored_dir)
{
    mount_it();
    ck_assert_int_eq(wm_sh("mkdir -p '%s/__pycache__' && echo pyc > '%s/__pycache__/m.pyc'",
                           MNT("pkg"), MNT("pkg")),
                     0);
    assert_content(UPPER("pkg/__pycache__/m.pyc"), "pyc\n");
    ck_assert_int_eq(rename(MNT("pkg"), MNT2("pkg2")), 0);
    assert_content(MNT("pkg2/__pycache__/m.pyc"), "pyc\n");
    assert_content(UPPER("pkg2/__pycache__/m.pyc"), "pyc\n");
    ck_assert_msg(!exists(MNT("pkg")) && !exists(UPPER("pkg")), "pkg's local entries stayed");

    /* exchange with a dir that has none: they go with pkg2's contents */
    ck_assert_int_eq(mkdir(MNT("other"), 0755), 0);
    ck_assert_int_eq(renameat2(AT_FDCWD, MNT("pkg2"), AT_FDCWD, MNT2("other"), RENAME_EXCHANGE), 0);
    assert_content(MNT("other/__pycache__/m.pyc"), "pyc\n");
    ck_assert_msg(!exists(MNT("pkg2/__pycache__")), "exchange left the local dir behind");

    /* SRC's dir is empty, the merged one is not */
    ck_assert_int_eq(rmdir(MNT("other")), -1);
    ck_assert_int_eq(errno, ENOTEMPTY);
    ck_assert_int_eq(rename(MNT("pkg2"), MNT2("other")), -1);
    ck_assert_int_eq(errno, ENOTEMPTY);
    ck_assert_int_eq(wm_sh("rm -r '%s/__pycache__'", MNT("other")), 0);
    ck_assert_int_eq(rmdir(MNT("other")), 0);
    ck_assert_msg(!exists(SRC("other")) && !exists(UPPER("other")), "other left behind");

    /* link count: a native dir's 2 + subdirectories, local ones included */
    ck_assert_int_eq(wm_sh("mkdir -p '%s/sub' '%s/node_modules'", MNT("n"), MNT("n")), 0);
    struct stat st;
    ck_assert_int_eq(stat(MNT("n"), &st), 0);
    ck_assert_uint_eq(st.st_nlink, 4);
}
END_TEST

START_TEST(persists_across_remount)
{
    ck_assert_int_eq(mkdir(SRC("build"), 0755), 0);
    wm_write(SRC("build/gone"), "g");
    mount_it();
    ck_assert_int_eq(wm_sh("mkdir -p '%s' && echo keep > '%s/f'", MNT(".venv"), MNT(".venv")), 0);
    ck_assert_int_eq(unlink(MNT("build/gone")), 0);
    wm_write(MNT("build/out.o"), "obj");
    unmount_it();
    mount_it();
    assert_content(MNT(".venv/f"), "keep\n");
    assert_content(MNT("build/out.o"), "obj");
    ck_assert_int_eq(access(MNT("build/gone"), F_OK), -1);
    assert_listing(m.mnt, ".venv build ");
    assert_listing(MNT("build"), "out.o ");
}
END_TEST

START_TEST(never_pushed_and_remote_local_paths_untouched)
{
    char dest[PATH_MAX + 8];
    snprintf(dest, sizeof(dest), "%s/dest", m.root);
    ck_assert_int_eq(mkdir(dest, 0755), 0);
    ck_assert_int_eq(wm_sh("mkdir -p '%s/build' && echo arm > '%s/build/robot.o'", dest, dest),
                     0);
    ck_assert_int_eq(mkdir(SRC("build"), 0755), 0);
    wm_write(SRC("build/laptop-lower.o"), "x86-lower");
    wm_write(SRC("main.c"), "int main;");
    mount_it();
    wm_write(MNT("build/laptop.o"), "x86");
    ck_assert_int_eq(wm_sh("mkdir -p '%s' && echo v > '%s/pyvenv.cfg'", MNT(".venv"),
                           MNT(".venv")),
                     0);
    ck_assert_int_eq(wm_sh("'%s' push '%s' '%s' >/dev/null", wm_bin(), m.src, dest), 0);
    char p[3 * PATH_MAX];
    snprintf(p, sizeof(p), "%s/main.c", dest);
    assert_content(p, "int main;");
    snprintf(p, sizeof(p), "%s/build/robot.o", dest);
    assert_content(p, "arm\n");
    snprintf(p, sizeof(p), "%s/build/laptop.o", dest);
    ck_assert_msg(!exists(p), "a local file was pushed");
    snprintf(p, sizeof(p), "%s/build/laptop-lower.o", dest);
    ck_assert_msg(!exists(p), "a lower-layer local file was pushed");
    snprintf(p, sizeof(p), "%s/.venv", dest);
    ck_assert_msg(!exists(p), "the venv was pushed");
    snprintf(p, sizeof(p), "%s/.wsync/overlay/.venv", dest);
    ck_assert_msg(!exists(p), "the overlay was pushed");
    /* The journal never names local paths as content changes. */
    char *log = wm_sh_out(NULL, "'%s' log -n 1000 '%s'", wm_bin(), m.src);
    ck_assert_msg(!strstr(log, "laptop.o") && !strstr(log, ".venv"), "local path journaled:\n%s",
                  log);
    free(log);
}
END_TEST

START_TEST(cli_ls_diff_reset_promote)
{
    ck_assert_int_eq(mkdir(SRC("build"), 0755), 0);
    wm_write(SRC("build/f"), "lower");
    wm_write(SRC("build/del"), "d");
    mount_it();
    wm_write(MNT("build/f"), "changed");
    ck_assert_int_eq(unlink(MNT("build/del")), 0);
    wm_write(MNT("build/add"), "add");
    ck_assert_int_eq(wm_sh("mkdir -p '%s/p' && echo 1 > '%s/p/i'", MNT("node_modules"),
                           MNT("node_modules")),
                     0);

    char *out = wm_sh_out(NULL, "cd '%s' && '%s' overlay ls", m.mnt, wm_bin());
    ck_assert_msg(strstr(out, "merged  build") && strstr(out, "new     node_modules"),
                  "ls:\n%s", out);
    free(out);
    out = wm_sh_out(NULL, "'%s' overlay diff '%s'", wm_bin(), MNT("build"));
    ck_assert_msg(strstr(out, "M build/f\n") && strstr(out, "D build/del\n") &&
                      strstr(out, "A build/add\n"),
                  "diff:\n%s", out);
    free(out);

    /* reset one file: the running mount shows SRC's version at once */
    assert_content(MNT("build/f"), "changed");
    ck_assert_int_eq(wm_sh("'%s' overlay reset '%s'", wm_bin(), MNT("build/f")), 0);
    assert_content(MNT("build/f"), "lower");
    ck_assert_int_eq(wm_sh("'%s' overlay reset '%s'", wm_bin(), MNT("build/del")), 0);
    assert_content(MNT("build/del"), "d");
    assert_listing(MNT("build"), "add del f ");
    ck_assert_int_ne(wm_sh("'%s' overlay reset '%s' 2>/dev/null", wm_bin(), MNT("build/f")), 0);

    /* promote: node_modules moves into SRC (and stays unmirrored: still local) */
    ck_assert_int_eq(wm_sh("'%s' overlay promote '%s' 2>/dev/null", wm_bin(),
                           MNT("node_modules")),
                     0);
    assert_content(SRC("node_modules/p/i"), "1\n");
    assert_content(MNT("node_modules/p/i"), "1\n");
    ck_assert_msg(!exists(UPPER("node_modules")), "promote left the overlay copy");

    /* reset everything */
    ck_assert_int_eq(wm_sh("'%s' overlay reset '%s'", wm_bin(), m.mnt), 0);
    assert_listing(MNT("build"), "del f ");
    out = wm_sh_out(NULL, "'%s' overlay ls '%s'", wm_bin(), m.mnt);
    ck_assert_msg(out[0] == '\0', "ls after reset:\n%s", out);
    free(out);

    /* unmounted: the CLI works on SRC directly */
    wm_write(MNT("build/later"), "l");
    unmount_it();
    out = wm_sh_out(NULL, "'%s' overlay diff '%s'", wm_bin(), m.src);
    ck_assert_msg(strstr(out, "A build/later"), "diff unmounted:\n%s", out);
    free(out);
    ck_assert_int_eq(wm_sh("'%s' overlay reset '%s/build'", wm_bin(), m.src), 0);
    ck_assert_msg(!exists(UPPER("build")), "reset unmounted left build");

    for (const char *const *s = (const char *const[]){"ls", "diff", "reset", "promote", NULL};
         *s; s++) {
        out = wm_sh_out(NULL, "'%s' overlay %s --help", wm_bin(), *s);
        ck_assert_msg(strstr(out, "Example"), "overlay %s --help:\n%s", *s, out);
        free(out);
    }
    ck_assert_int_eq(wm_sh("'%s' overlay bogus 2>/dev/null", wm_bin()), 2);
}
END_TEST

/* A tiny wheel built by hand (no setuptools, no network). */
static void make_wheel(const char *dir)
{
    ck_assert_int_eq(
        wm_sh("cd '%s' && python3 - <<'EOF'\n"
              "import zipfile, hashlib, base64\n"
              "files = {'wsyncdemo/__init__.py': 'VALUE = 42\\n',\n"
              "  'wsyncdemo-1.0.dist-info/METADATA': 'Metadata-Version: 2.1\\nName: wsyncdemo\\n"
              "Version: 1.0\\n',\n"
              "  'wsyncdemo-1.0.dist-info/WHEEL': 'Wheel-Version: 1.0\\nGenerator: test\\n"
              "Root-Is-Purelib: true\\nTag: py3-none-any\\n'}\n"
              "rec = ''\n"
              "for n, d in files.items():\n"
              "    h = base64.urlsafe_b64encode(hashlib.sha256(d.encode()).digest())"
              ".rstrip(b'=').decode()\n"
              "    rec += '%%s,sha256=%%s,%%d\\n' %% (n, h, len(d))\n"
              "rec += 'wsyncdemo-1.0.dist-info/RECORD,,\\n'\n"
              "with zipfile.ZipFile('wsyncdemo-1.0-py3-none-any.whl', 'w') as z:\n"
              "    for n, d in files.items(): z.writestr(n, d)\n"
              "    z.writestr('wsyncdemo-1.0.dist-info/RECORD', rec)\n"
              "EOF",
              dir),
        0);
}

START_TEST(venv_pip_install_survives_remount)
{
    if (wm_sh("python3 -c 'import venv, ensurepip' 2>/dev/null") != 0) {
        printf("SKIP venv test: python3 venv/ensurepip not available\n");
        return;
    }
    wm_write(SRC("app.py"), "print('app')\n");
    mount_it();
    make_wheel(m.root);
    ck_assert_int_eq(wm_sh("python3 -m venv '%s' >/dev/null 2>&1", MNT(".venv")), 0);
    ck_assert_int_eq(wm_sh("'%s/bin/pip' install --no-index --disable-pip-version-check -q "
                           "'%s/wsyncdemo-1.0-py3-none-any.whl' >/dev/null 2>&1",
                           MNT(".venv"), m.root),
                     0);
    char *out = wm_sh_out(NULL, "'%s/bin/python' -c 'import wsyncdemo; print(wsyncdemo.VALUE)'",
                          MNT(".venv"));
    ck_assert_str_eq(out, "42\n");
    free(out);
    ck_assert_msg(!exists(SRC(".venv")), "the venv landed in SRC");
    unmount_it();
    mount_it();
    out = wm_sh_out(NULL, "'%s/bin/python' -c 'import wsyncdemo; print(wsyncdemo.VALUE)'",
                    MNT(".venv"));
    ck_assert_str_eq(out, "42\n");
    free(out);
    out = wm_sh_out(NULL, "'%s/bin/pip' list --disable-pip-version-check 2>/dev/null",
                    MNT(".venv"));
    ck_assert_msg(strstr(out, "wsyncdemo"), "pip list:\n%s", out);
    free(out);
    /* the remote has none of it */
    char dest[PATH_MAX + 8];
    snprintf(dest, sizeof(dest), "%s/dest", m.root);
    ck_assert_int_eq(mkdir(dest, 0755), 0);
    ck_assert_int_eq(wm_sh("'%s' push '%s' '%s' >/dev/null", wm_bin(), m.src, dest), 0);
    char p[3 * PATH_MAX];
    snprintf(p, sizeof(p), "%s/app.py", dest);
    ck_assert_msg(exists(p), "app.py not pushed");
    snprintf(p, sizeof(p), "%s/.venv", dest);
    ck_assert_msg(!exists(p), "the venv reached the remote");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("overlay");
    TCase *tc = tcase_create("overlay");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, copy_up_keeps_lower_and_attributes);
    tcase_add_test(tc, big_file_copy_up_keeps_holes);
    tcase_add_test(tc, whiteouts_merged_and_opaque_dirs);
    tcase_add_test(tc, local_dir_new_in_session);
    tcase_add_test(tc, rename_across_layers);
    tcase_add_test(tc, local_entries_follow_their_mirrored_dir);
    tcase_add_test(tc, persists_across_remount);
    tcase_add_test(tc, never_pushed_and_remote_local_paths_untouched);
    tcase_add_test(tc, cli_ls_diff_reset_promote);
    tcase_add_test(tc, venv_pip_install_survives_remount);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
