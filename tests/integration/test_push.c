/*
 * test_push.c — `wsync push`, `verify` and `serve` between real processes:
 * temp dirs through a local serve child, a network-namespace host through
 * --rsh, and a real sshd on loopback.  Every scenario ends with verify
 * equal, and the delta scenarios bound the bytes that crossed.
 */
#include "sync/apply.h"
#include "sync/index.h"
#include "sync/indexer.h"
#include "sync/patch_log.h"
#include "sync/push.h"
#include "tests/lib/harness.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct wmount m; /* src/ is SRC, mnt/ is DEST (never mounted here) */
static char ps[PATH_MAX], pd[PATH_MAX];
#define SRC(rel) (wm_path(ps, sizeof(ps), m.src, rel), ps)
#define DST(rel) (wm_path(pd, sizeof(pd), m.mnt, rel), pd)

/* Before strace in an --rsh: LeakSanitizer (ASan builds) cannot ptrace a
 * process strace already traces, and fails the far side's exit. */
#define UNDER_STRACE "env ASAN_OPTIONS=detect_leaks=0 "

static void setup(void)
{
    wm_prepare(&m);
}

static void teardown(void)
{
    wm_teardown(&m);
}

/* push --json with extra options; asserts the exit status; returns output. */
static char *push(const char *opts, int want_status)
{
    int st;
    char *out = wm_sh_out(&st, "'%s' push --json %s '%s' '%s' 2>&1", wm_bin(), opts, m.src,
                          m.mnt);
    ck_assert_msg(st == want_status, "push exit %d (want %d): %s", st, want_status, out);
    return out;
}

static void assert_verified(void)
{
    int st;
    char *out = wm_sh_out(&st, "'%s' verify '%s' '%s' 2>&1", wm_bin(), m.src, m.mnt);
    ck_assert_msg(st == 0 && strstr(out, "identical"), "verify: %s", out);
    free(out);
    char why[512];
    ck_assert_msg(wm_trees_equal(m.src, m.mnt, why, sizeof(why)), "trees differ: %s", why);
}

static void write_random(const char *path, size_t n, unsigned seed)
{
    char *b = malloc(n);
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 7;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (char)x;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, b, n), (ssize_t)n);
    close(fd);
    free(b);
}

START_TEST(initial_copy_then_no_change)
{
    ck_assert_int_eq(mkdir(SRC("empty"), 0755), 0);
    ck_assert_int_eq(mkdir(SRC("priv"), 0750), 0);
    wm_write(SRC("priv/secret"), "s");
    ck_assert_int_eq(chmod(SRC("priv/secret"), 0600), 0);
    wm_write(SRC("tool"), "#!/bin/sh\n");
    ck_assert_int_eq(chmod(SRC("tool"), 04755), 0); /* setuid never travels */
    ck_assert_int_eq(symlink("/etc/passwd", SRC("abs-link")), 0);
    ck_assert_int_eq(symlink("priv/secret", SRC("rel-link")), 0);
    write_random(SRC("big.bin"), 5 << 20, 1);
    ck_assert_int_eq(mkfifo(SRC("fifo"), 0644), 0); /* not content: skipped */
    char *out = push("", 0);
    ck_assert_int_eq(wm_json_num(out, "files"), 3);
    ck_assert_msg(strstr(out, "\"equal\":true"), "%s", out);
    free(out);
    ck_assert_int_eq(unlink(SRC("fifo")), 0);
    struct stat st;
    ck_assert_int_eq(stat(DST("tool"), &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0755);
    ck_assert_int_eq(chmod(SRC("tool"), 0755), 0);
    ck_assert_int_eq(stat(DST("priv"), &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0750);
    char target[64] = {0};
    ck_assert_int_eq(readlink(DST("abs-link"), target, sizeof(target)), 11);
    ck_assert_str_eq(target, "/etc/passwd");
    assert_verified();
    /* A touch (mtime only) travels, without data. */
    struct timespec old_times[2] = {{.tv_sec = 1500000000}, {.tv_sec = 1500000000}};
    ck_assert_int_eq(utimensat(AT_FDCWD, SRC("big.bin"), old_times, 0), 0);
    out = push("", 0);
    ck_assert_int_eq(wm_json_num(out, "files"), 1);
    ck_assert_int_eq(wm_json_num(out, "chunks_sent"), 0);
    free(out);
    ck_assert_int_eq(stat(DST("big.bin"), &st), 0);
    ck_assert_int_eq(st.st_mtim.tv_sec, 1500000000);
    /* No change: nothing but the handshake and manifest crosses. */
    out = push("", 0);
    ck_assert_int_eq(wm_json_num(out, "chunks_sent"), 0);
    ck_assert_int_eq(wm_json_num(out, "files"), 0);
    ck_assert_int_lt(wm_json_num(out, "bytes_out"), 1024);
    free(out);
}
END_TEST

START_TEST(small_edits_send_one_chunk)
{
    write_random(SRC("big.bin"), 20 << 20, 2);
    free(push("", 0));
    /* 1-byte overwrite in the middle. */
    int fd = open(SRC("big.bin"), O_WRONLY);
    ck_assert_int_eq(pwrite(fd, "!", 1, 10 << 20), 1);
    close(fd);
    char *out = push("", 0);
    ck_assert_int_le(wm_json_num(out, "chunks_sent"), 2);
    ck_assert_int_le(wm_json_num(out, "bytes_out"), 600 * 1024);
    /* The ~290-chunk list travels as ~10 group ids and the one group that
     * changed (~2 KiB), not as 290 x 20 bytes (~6 KiB). */
    ck_assert_int_le(wm_json_num(out, "bytes_out") - wm_json_num(out, "data_bytes"), 3 * 1024);
    free(out);
    assert_verified();
    /* 100 bytes inserted at the start shift everything: still a chunk or two. */
    size_t len;
    char *old = wm_read(SRC("big.bin"), &len);
    fd = open(SRC("big.bin"), O_WRONLY | O_TRUNC);
    char ins[100];
    memset(ins, 'i', sizeof(ins));
    ck_assert_int_eq(write(fd, ins, sizeof(ins)), 100);
    ck_assert_int_eq(write(fd, old, len), (ssize_t)len);
    close(fd);
    free(old);
    out = push("", 0);
    ck_assert_int_le(wm_json_num(out, "chunks_sent"), 2);
    ck_assert_int_le(wm_json_num(out, "bytes_out") - wm_json_num(out, "data_bytes"), 4 * 1024);
    free(out);
    assert_verified();
}
END_TEST

START_TEST(rename_and_copy_send_no_data_and_extras_go)
{
    ck_assert_int_eq(mkdir(SRC("dir"), 0755), 0);
    write_random(SRC("dir/a.bin"), 3 << 20, 3);
    wm_write(SRC("gone.txt"), "bye");
    free(push("", 0));
    ck_assert_int_eq(wm_sh("mv '%s/dir' '%s/moved'", m.src, m.src), 0);
    ck_assert_int_eq(wm_sh("cp '%s/moved/a.bin' '%s/copy.bin'", m.src, m.src), 0);
    ck_assert_int_eq(unlink(SRC("gone.txt")), 0);
    char *out = push("", 0);
    ck_assert_int_eq(wm_json_num(out, "chunks_sent"), 0);
    ck_assert_int_ge(wm_json_num(out, "deleted"), 2); /* dir and gone.txt */
    ck_assert_int_lt(wm_json_num(out, "bytes_out"), 16 * 1024);
    free(out);
    assert_verified();
    /* --no-delete keeps extras; --dry-run changes nothing. */
    wm_write(DST("extra"), "mine");
    free(push("--no-delete", 0));
    ck_assert_int_eq(access(DST("extra"), F_OK), 0);
    wm_write(SRC("new"), "new");
    out = push("--dry-run", 0);
    ck_assert_int_eq(wm_json_num(out, "files"), 1);
    ck_assert_int_eq(wm_json_num(out, "deleted"), 1);
    free(out);
    ck_assert_int_eq(access(DST("new"), F_OK), -1);
    ck_assert_int_eq(access(DST("extra"), F_OK), 0);
    free(push("", 0));
    assert_verified();
}
END_TEST

START_TEST(sparse_stays_sparse_and_local_paths_stay_home)
{
    int fd = open(SRC("sparse"), O_WRONLY | O_CREAT, 0644);
    ck_assert_int_eq(pwrite(fd, "end", 3, 64 << 20), 3);
    close(fd);
    /* The far side's own build/ (local by default) is never touched. */
    ck_assert_int_eq(mkdir(SRC("build"), 0755), 0);
    wm_write(SRC("build/laptop.o"), "x86");
    ck_assert_int_eq(mkdir(m.mnt, 0755) == 0 || errno == EEXIST, 1);
    ck_assert_int_eq(mkdir(DST("build"), 0755), 0);
    wm_write(DST("build/robot.o"), "arm");
    char *out = push("", 0);
    free(out);
    struct stat st;
    ck_assert_int_eq(stat(DST("sparse"), &st), 0);
    ck_assert_int_eq(st.st_size, (64 << 20) + 3);
    ck_assert_int_lt(st.st_blocks * 512, 1 << 20);
    char *arm = wm_read(DST("build/robot.o"), NULL);
    ck_assert_str_eq(arm, "arm");
    free(arm);
    ck_assert_int_eq(access(DST("build/laptop.o"), F_OK), -1);
    int vst;
    char *v = wm_sh_out(&vst, "'%s' verify '%s' '%s'", wm_bin(), m.src, m.mnt);
    ck_assert_msg(vst == 0, "verify: %s", v);
    free(v);
}
END_TEST

START_TEST(symlink_in_dest_cannot_redirect_writes)
{
    char outside[PATH_MAX + 16];
    snprintf(outside, sizeof(outside), "%s/outside", m.root);
    ck_assert_int_eq(mkdir(outside, 0755), 0);
    ck_assert_int_eq(symlink(outside, DST("sub")), 0);
    ck_assert_int_eq(mkdir(SRC("sub"), 0755), 0);
    wm_write(SRC("sub/file"), "payload");
    free(push("", 0));
    char p[PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/file", outside);
    ck_assert_int_eq(access(p, F_OK), -1); /* nothing written through the link */
    struct stat st;
    ck_assert_int_eq(lstat(DST("sub"), &st), 0);
    ck_assert(S_ISDIR(st.st_mode)); /* the link was replaced by the directory */
    assert_verified();
}
END_TEST

START_TEST(bad_destinations_are_named)
{
    int st;
    char *out = wm_sh_out(&st, "'%s' push --rsh false '%s' host:/x 2>&1", wm_bin(), m.src);
    ck_assert_int_eq(st, 1);
    ck_assert_msg(strstr(out, "host:/x"), "%s", out);
    free(out);
    out = wm_sh_out(&st, "'%s' push '%s/missing' /tmp/x 2>&1", wm_bin(), m.root);
    ck_assert_int_eq(st, 1);
    ck_assert_msg(strstr(out, "missing"), "%s", out);
    free(out);
    wm_write(SRC("f"), "x");
    char file_dest[PATH_MAX + 16];
    snprintf(file_dest, sizeof(file_dest), "%s/afile", m.root);
    wm_write(file_dest, "not a dir");
    out = wm_sh_out(&st, "'%s' push '%s' '%s' 2>&1", wm_bin(), m.src, file_dest);
    ck_assert_int_eq(st, 1);
    ck_assert_msg(strstr(out, "afile"), "%s", out);
    free(out);
}
END_TEST

/* A local DEST may be relative, as with rsync: it is taken from the cwd. */
START_TEST(relative_destination_is_taken_from_the_cwd)
{
    wm_write(SRC("f"), "relative");
    int st;
    char *out = wm_sh_out(&st, "cd '%s' && '%s' push -q '%s' rel/dest 2>&1 && '%s' verify '%s' ./rel/dest",
                          m.root, wm_bin(), m.src, wm_bin(), m.src);
    ck_assert_msg(st == 0, "%s", out);
    ck_assert_msg(strstr(out, "identical"), "%s", out);
    free(out);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/rel/dest/f", m.root);
    char *got = wm_read(path, NULL);
    ck_assert_str_eq(got, "relative");
    free(got);
}
END_TEST

START_TEST(hard_links_stay_links)
{
    write_random(SRC("orig"), 300000, 9);
    ck_assert_int_eq(mkdir(SRC("d"), 0755), 0);
    ck_assert_int_eq(wm_sh("ln '%s/orig' '%s/d/alias' && ln '%s/orig' '%s/twin'", m.src, m.src,
                           m.src, m.src),
                     0);
    char *out = push("", 0);
    ck_assert_int_le(wm_json_num(out, "chunks_sent"), 6); /* the content travels once */
    free(out);
    struct stat a, b, c;
    ck_assert_int_eq(stat(DST("orig"), &a), 0);
    ck_assert_int_eq(stat(DST("d/alias"), &b), 0);
    ck_assert_int_eq(stat(DST("twin"), &c), 0);
    ck_assert_int_eq(a.st_nlink, 3);
    ck_assert(a.st_ino == b.st_ino && a.st_ino == c.st_ino);
    assert_verified();
}
END_TEST

static void set_mtime(const char *path, time_t sec);
static void assert_same_mtime(const char *rel);

/* The far side lists only the directories whose subtree digests differ
 * from SRC's, level by level: what crosses grows with the change, not with
 * the tree. */
START_TEST(unchanged_subtrees_are_not_listed)
{
    for (int d = 0; d < 40; d++) {
        char rel[64];
        snprintf(rel, sizeof(rel), "pkg%02d", d);
        ck_assert_int_eq(mkdir(SRC(rel), 0755), 0);
        snprintf(rel, sizeof(rel), "pkg%02d/sub", d);
        ck_assert_int_eq(mkdir(SRC(rel), 0755), 0);
        for (int f = 0; f < 25; f++) {
            snprintf(rel, sizeof(rel), "pkg%02d/sub/file-with-a-longish-name-%02d.c", d, f);
            wm_write(SRC(rel), rel);
        }
    }
    char *out = push("", 0);
    ck_assert_int_eq(wm_json_num(out, "files"), 1000);
    free(out);
    /* No change: the digests match, nothing is listed. */
    out = push("", 0);
    ck_assert_int_lt(wm_json_num(out, "bytes_in"), 256);
    ck_assert_int_lt(wm_json_num(out, "bytes_out"), 256);
    free(out);
    /* One file changed three levels down; one deleted elsewhere. */
    wm_write(SRC("pkg17/sub/file-with-a-longish-name-03.c"), "changed");
    set_mtime(SRC("pkg17/sub"), 1500000000);
    ck_assert_int_eq(unlink(SRC("pkg30/sub/file-with-a-longish-name-09.c")), 0);
    out = push("", 0);
    ck_assert_int_eq(wm_json_num(out, "files"), 1);
    ck_assert_int_eq(wm_json_num(out, "deleted"), 1);
    /* ROOT's 40 entries, then pkg17 and pkg30, then their sub/ (25 entries
     * each): ~4 KiB, where the whole manifest is ~50 KiB. */
    ck_assert_int_lt(wm_json_num(out, "bytes_in"), 6 * 1024);
    free(out);
    assert_verified();
    assert_same_mtime("pkg17/sub");
    assert_same_mtime("pkg30/sub");
    out = push("", 0);
    ck_assert_int_lt(wm_json_num(out, "bytes_in"), 256); /* identical again */
    free(out);
}
END_TEST

static void set_mtime(const char *path, time_t sec)
{
    struct timespec t[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = sec, .tv_nsec = 123456789}};
    ck_assert_int_eq(utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW), 0);
}

/* DEST's mtime of rel equals SRC's, to the nanosecond, without following links. */
static void assert_same_mtime(const char *rel)
{
    struct stat a, b;
    ck_assert_int_eq(lstat(SRC(rel), &a), 0);
    ck_assert_msg(lstat(DST(rel), &b) == 0, "%s missing in DEST", rel);
    ck_assert_msg(a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec,
                  "mtime of %s: SRC %lld.%09ld, DEST %lld.%09ld", rel, (long long)a.st_mtim.tv_sec,
                  a.st_mtim.tv_nsec, (long long)b.st_mtim.tv_sec, b.st_mtim.tv_nsec);
}

START_TEST(directory_and_symlink_mtimes_are_kept)
{
    ck_assert_int_eq(mkdir(SRC("d"), 0755), 0);
    ck_assert_int_eq(mkdir(SRC("d/sub"), 0700), 0);
    wm_write(SRC("d/sub/f"), "one");
    write_random(SRC("d/big"), 300000, 11);
    ck_assert_int_eq(symlink("sub/f", SRC("d/link")), 0);
    set_mtime(SRC("d/link"), 1400000000);
    set_mtime(SRC("d/sub"), 1400000001);
    set_mtime(SRC("d"), 1400000002);
    free(push("", 0));
    const char *all[] = {"d", "d/sub", "d/link", "d/sub/f", "d/big"};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        assert_same_mtime(all[i]);
    /* Content replaced in place: the file is renamed into d/ on the far
     * side, yet d/ keeps the mtime SRC's d/ still has. */
    int fd = open(SRC("d/big"), O_WRONLY);
    ck_assert_int_eq(pwrite(fd, "!", 1, 1000), 1);
    close(fd);
    char *out = push("", 0);
    ck_assert_int_eq(wm_json_num(out, "files"), 1);
    free(out);
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        assert_same_mtime(all[i]);
    /* A new entry moves SRC's d/ mtime: that travels too. */
    wm_write(SRC("d/new"), "new");
    ck_assert_int_eq(unlink(SRC("d/sub/f")), 0);
    free(push("", 0));
    assert_same_mtime("d");
    assert_same_mtime("d/sub");
    assert_same_mtime("d/new");
    /* Only a directory's mtime changed: it is sent alone, no data. */
    set_mtime(SRC("d/sub"), 1300000000);
    out = push("", 0);
    ck_assert_int_eq(wm_json_num(out, "dirs"), 1);
    ck_assert_int_eq(wm_json_num(out, "chunks_sent"), 0);
    free(out);
    assert_same_mtime("d/sub");
    assert_verified();
}
END_TEST

/* The commit's durability order, seen by strace on the far side: staged
 * bytes are synced before the first rename into place, and the renames
 * are synced before the ACK goes out: one syncfs each, not an fsync per
 * file and directory. */
START_TEST(commit_syncs_before_renames_and_before_ack)
{
    ck_assert_int_eq(mkdir(SRC("a"), 0755), 0);
    ck_assert_int_eq(mkdir(SRC("b"), 0755), 0);
    for (int i = 0; i < 20; i++) {
        char rel[32];
        snprintf(rel, sizeof(rel), "%s/f%02d", i % 2 ? "a" : "b", i);
        write_random(SRC(rel), 5000 + (size_t)i * 1000, 200 + (unsigned)i);
    }
    char log[PATH_MAX + 16];
    snprintf(log, sizeof(log), "%s/strace.log", m.root);
    char opts[PATH_MAX + 256];
    snprintf(opts, sizeof(opts),
             "--rsh '" UNDER_STRACE
             "strace -f -qq -y -o %s -e trace=syncfs,fsync,fdatasync,renameat,renameat2,write'",
             log);
    free(push(opts, 0));
    assert_verified();
    FILE *f = fopen(log, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024];
    int n = 0, first_rename = -1, last_rename = -1, renames = 0, syncfs_before = 0,
        syncfs_after = 0, ack_write = -1, file_fsyncs = 0;
    int syncfs_at[16], nsync = 0;
    while (fgets(line, sizeof(line), f)) {
        n++;
        if (strstr(line, "syncfs(") && nsync < 16)
            syncfs_at[nsync++] = n;
        if (strstr(line, "rename") && strstr(line, ".part")) {
            renames++;
            if (first_rename < 0)
                first_rename = n;
            last_rename = n;
        }
        if (strstr(line, "fsync(") && !strstr(line, "index.db"))
            file_fsyncs++; /* not sqlite's own (-y names each fd's file) */
        if (last_rename > 0 && ack_write < 0 && strstr(line, "write(1"))
            ack_write = n;
    }
    fclose(f);
    ck_assert_int_eq(renames, 20);
    for (int i = 0; i < nsync; i++) {
        syncfs_before += syncfs_at[i] < first_rename;
        syncfs_after += syncfs_at[i] > last_rename && syncfs_at[i] < ack_write;
    }
    ck_assert_msg(syncfs_before == 1 && syncfs_after == 1,
                  "syncfs: %d before the renames, %d between them and the ACK (%d in all)",
                  syncfs_before, syncfs_after, nsync);
    ck_assert_msg(file_fsyncs == 0, "%d fsyncs of files or directories: syncfs replaces them",
                  file_fsyncs);
}
END_TEST

/* stat fields that any write to a path changes. */
static void assert_untouched(const char *path, const struct stat *before)
{
    struct stat now;
    ck_assert_msg(stat(path, &now) == 0, "%s is gone", path);
    ck_assert_msg(now.st_ino == before->st_ino && now.st_size == before->st_size &&
                      now.st_mtim.tv_sec == before->st_mtim.tv_sec &&
                      now.st_mtim.tv_nsec == before->st_mtim.tv_nsec,
                  "%s was written by a push that had nothing to do", path);
}

/* A push that finds both trees equal writes nothing on the far side: not
 * its files, not its index (no sqlite write, so no WAL to checkpoint), not
 * its staging dir, and it syncs nothing (an fsync on a busy disk waits for
 * other people's writeback). */
START_TEST(a_no_change_push_writes_nothing_on_the_far_side)
{
    ck_assert_int_eq(mkdir(SRC("d"), 0755), 0);
    wm_write(SRC("d/a"), "a");
    write_random(SRC("big"), 1 << 20, 41);
    free(push("", 0));
    free(push("", 0)); /* the far index as a second push leaves it */
    const char *watched[] = {".wsync/index.db", ".wsync/staging", "big", "d/a", "d"};
    struct stat before[5];
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(stat(DST(watched[i]), &before[i]), 0);
    char log[PATH_MAX + 16];
    snprintf(log, sizeof(log), "%s/strace.log", m.root);
    char opts[PATH_MAX + 256];
    snprintf(opts, sizeof(opts),
             "--rsh '" UNDER_STRACE
             "strace -f -qq -y -o %s -e trace=syncfs,fsync,fdatasync,pwrite64,"
             "renameat,renameat2,unlinkat,ftruncate'",
             log);
    char *out = push(opts, 0);
    ck_assert_int_eq(wm_json_num(out, "files"), 0);
    ck_assert_msg(strstr(out, "\"equal\":true"), "%s", out);
    free(out);
    for (int i = 0; i < 5; i++)
        assert_untouched(DST(watched[i]), &before[i]);
    FILE *f = fopen(log, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024];
    int syncs = 0, writes = 0;
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, "sync(") || strstr(line, "syncfs(")) /* fsync, fdatasync too */
            syncs++, fprintf(stderr, "far side synced: %s", line);
        /* sqlite's -shm is its lock table in shared memory, not data */
        else if (!strstr(line, "-shm>") && !strstr(line, "+++") && !strstr(line, "---"))
            writes++, fprintf(stderr, "far side wrote: %s", line);
    }
    fclose(f);
    ck_assert_msg(syncs == 0, "%d syncs on the far side of a no-change push", syncs);
    ck_assert_msg(writes == 0, "%d writes on the far side of a no-change push", writes);
}
END_TEST

/* A session that lives on (as a mirror's does) and syncs all twice: the
 * second pass lists ROOT afresh, after its own commits. */
START_TEST(one_session_syncs_all_twice)
{
    ck_assert_int_eq(mkdir(SRC("d"), 0755), 0);
    wm_write(SRC("d/a"), "a");
    wm_write(SRC("d/b"), "b");
    write_random(SRC("big"), 3 << 20, 21);
    struct push_options opt = {
        .src = m.src, .dest = m.mnt, .wsync_path = wm_bin(), .delete_extra = true};
    struct push_result res;
    struct sender *s = NULL;
    char err[1024];
    int r = sender_open(&opt, &res, &s, err, sizeof(err));
    ck_assert_msg(r == 0, "open: %s", err);
    ck_assert_msg((r = sender_sync_all(s)) == 0, "sync 1: %s", err);
    uint64_t first = res.chunks_sent;
    wm_write(SRC("d/a"), "changed");
    ck_assert_int_eq(unlink(SRC("d/b")), 0);
    wm_write(SRC("d/c"), "new");
    int fd = open(SRC("big"), O_WRONLY);
    ck_assert_int_eq(pwrite(fd, "!", 1, 1 << 20), 1);
    close(fd);
    char state[PATH_MAX + 16];
    snprintf(state, sizeof(state), "%s/.wsync", m.src);
    struct index *ix;
    struct indexer *in;
    ck_assert_int_eq(index_open(-1, state, false, &ix, err, sizeof(err)), 0);
    ck_assert_int_eq(indexer_new(m.src, ix, &in, err, sizeof(err)), 0);
    ck_assert_int_eq(indexer_scan(in, NULL), 0);
    indexer_free(in);
    index_close(ix);
    ck_assert_msg((r = sender_sync_all(s)) == 0, "sync 2: %s", err);
    ck_assert_uint_eq(res.chunks_sent - first, 1); /* the changed chunk; the rest is inline */
    ck_assert_msg(sender_close(s, r) == 0, "close: %s", err);
    assert_verified();
}
END_TEST

/* A touch sets the far side's mtime in place (same inode, nothing
 * copied); a far file that changed under its index is rebuilt instead. */
START_TEST(a_touch_is_applied_in_place)
{
    write_random(SRC("t"), 200000, 31);
    free(push("", 0));
    struct stat before, after;
    ck_assert_int_eq(stat(DST("t"), &before), 0);
    set_mtime(SRC("t"), 1600000000);
    char *out = push("", 0);
    ck_assert_int_eq(wm_json_num(out, "files"), 1);
    ck_assert_int_eq(wm_json_num(out, "chunks_sent"), 0);
    free(out);
    ck_assert_int_eq(stat(DST("t"), &after), 0);
    ck_assert_uint_eq(after.st_ino, before.st_ino);
    assert_same_mtime("t");
    /* Now the far copy is changed behind wsync's back, same size. */
    int fd = open(DST("t"), O_WRONLY);
    ck_assert_int_eq(pwrite(fd, "XXXX", 4, 100), 4);
    close(fd);
    set_mtime(SRC("t"), 1600000001);
    free(push("", 0));
    assert_same_mtime("t");
    assert_verified();
}
END_TEST

/* A touched file small enough to travel inline is not sent again: its
 * one-chunk list lets the far side set the mtime in place. */
START_TEST(a_touched_small_file_is_not_resent)
{
    write_random(SRC("small"), 3000, 33); /* random: lz4 cannot shrink it */
    free(push("", 0));
    struct stat before, after;
    ck_assert_int_eq(stat(DST("small"), &before), 0);
    set_mtime(SRC("small"), 1600000000);
    char *out = push("", 0);
    ck_assert_int_eq(wm_json_num(out, "files"), 1);
    ck_assert_int_lt(wm_json_num(out, "bytes_out"), 1000);
    free(out);
    ck_assert_int_eq(stat(DST("small"), &after), 0);
    ck_assert_uint_eq(after.st_ino, before.st_ino);
    assert_same_mtime("small");
    assert_verified();
}
END_TEST

/* A touch sets only the mtime on the far side (a chmod to the same mode
 * would dirty each inode for nothing); a chmod still travels. */
START_TEST(a_touch_does_not_chmod_the_far_file)
{
    write_random(SRC("t1"), 20000, 35);
    write_random(SRC("t2"), 20000, 36);
    ck_assert_int_eq(chmod(SRC("t2"), 0600), 0);
    free(push("", 0));
    set_mtime(SRC("t1"), 1600000000);
    set_mtime(SRC("t2"), 1600000000);
    ck_assert_int_eq(chmod(SRC("t2"), 0640), 0);
    char log[PATH_MAX + 16];
    snprintf(log, sizeof(log), "%s/strace.log", m.root);
    char opts[PATH_MAX + 256];
    snprintf(opts, sizeof(opts),
             "--rsh '" UNDER_STRACE "strace -f -qq -o %s -e trace=chmod,fchmod,fchmodat'", log);
    char *out = push(opts, 0);
    ck_assert_int_eq(wm_json_num(out, "files"), 2);
    free(out);
    assert_same_mtime("t1");
    assert_same_mtime("t2");
    struct stat st;
    ck_assert_int_eq(stat(DST("t2"), &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0640);
    size_t len = 0;
    char *text = wm_read(log, &len);
    int chmods = 0;
    for (char *p = text; (p = strstr(p, "chmod")); p++)
        chmods++;
    ck_assert_msg(chmods == 1, "%d chmods on the far side for one mode change:\n%s", chmods, text);
    free(text);
    assert_verified();
}
END_TEST

/* A second host: network namespace hostB, reached with --rsh. */
START_TEST(push_into_a_network_namespace)
{
    char ns[64];
    wm_netns(&m, "t", ns, sizeof(ns));
    write_random(SRC("data.bin"), 1 << 20, 4);
    wm_write(SRC("hello"), "from A");
    int st;
    /* nsenter --net rather than `ip netns exec`, which would also copy every
     * FUSE mount on the machine into a private mount namespace for as long
     * as the far side runs (pinning other tests' mounts past their unmount). */
    char *out = wm_sh_out(&st, "'%s' push --json --rsh 'nsenter --net=/run/netns/%s' '%s' '%s' 2>&1",
                          wm_bin(), ns, m.src, m.mnt);
    wm_sh("ip netns del %s", ns);
    ck_assert_msg(st == 0 && strstr(out, "\"equal\":true"), "push via netns: %s", out);
    free(out);
    assert_verified();
}
END_TEST

/* The ssh path: a real sshd on loopback with a generated key. */
START_TEST(push_over_real_ssh)
{
    if (access("/usr/sbin/sshd", X_OK) != 0) {
        ck_abort_msg("sshd is not installed (openssh-server); .ci/run installs it");
    }
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/ssh", m.root);
    int port = 20000 + getpid() % 20000;
    ck_assert_int_eq(
        wm_sh("set -e; mkdir -p '%s'; cd '%s'; ssh-keygen -q -t ed25519 -N '' -f host_key;"
              "ssh-keygen -q -t ed25519 -N '' -f user_key; cp user_key.pub authorized_keys;"
              "chmod 600 authorized_keys; mkdir -p /run/sshd;"
              "printf 'ListenAddress 127.0.0.1\\nPort %d\\nHostKey %s/host_key\\n"
              "AuthorizedKeysFile %s/authorized_keys\\nPermitRootLogin prohibit-password\\n"
              "StrictModes no\\nPidFile %s/sshd.pid\\nUsePAM no\\n' > sshd_config",
              dir, dir, port, dir, dir, dir),
        0);
    ck_assert_int_eq(wm_sh("/usr/sbin/sshd -f '%s/sshd_config' -E '%s/sshd.log'", dir, dir), 0);
    write_random(SRC("over-ssh.bin"), 2 << 20, 5);
    int st = 1;
    char *out = NULL;
    for (int i = 0; i < 50 && st != 0; i++) { /* sshd needs a moment to listen */
        free(out);
        out = wm_sh_out(&st,
                        "'%s' push --json --wsync-path '%s' --rsh 'ssh -i %s/user_key -o "
                        "StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o "
                        "LogLevel=ERROR -o BatchMode=yes' '%s' ssh://root@127.0.0.1:%d%s 2>&1",
                        wm_bin(), wm_bin(), dir, m.src, port, m.mnt);
        if (st != 0 && strstr(out, "Connection refused"))
            usleep(100 * 1000);
        else
            break;
    }
    wm_sh("kill $(cat '%s/sshd.pid') 2>/dev/null", dir);
    ck_assert_msg(st == 0 && strstr(out, "\"equal\":true"), "push over ssh: %s", out);
    free(out);
    assert_verified();
}
END_TEST

/* Every file DEST shows equals its source: old or new, never torn.  (All
 * files here are written once, so "old" means absent.) */
static void assert_no_torn_file(int nfiles)
{
    for (int i = 0; i < nfiles; i++) {
        char rel[32];
        snprintf(rel, sizeof(rel), "f%02d.bin", i);
        size_t a, b;
        char *x = wm_read(DST(rel), &a);
        if (!x)
            continue;
        char *y = wm_read(SRC(rel), &b);
        ck_assert_msg(a == b && memcmp(x, y, a) == 0, "%s is torn", rel);
        free(x);
        free(y);
    }
}

START_TEST(kill_9_of_either_side_leaves_no_torn_file)
{
    const int nfiles = 40;
    for (int i = 0; i < nfiles; i++) {
        char rel[32];
        snprintf(rel, sizeof(rel), "f%02d.bin", i);
        write_random(SRC(rel), 1 << 20, 100 + (unsigned)i);
    }
    /* Kill the receiver, then the sender, at several points of a push. */
    const int delays_ms[] = {20, 80, 200};
    for (int victim = 0; victim < 2; victim++) {
        for (size_t d = 0; d < sizeof(delays_ms) / sizeof(delays_ms[0]); d++) {
            wm_sh("rm -rf '%s'", m.mnt);
            pid_t pid = fork();
            if (pid == 0) {
                int null = open("/dev/null", O_WRONLY);
                dup2(null, 2);
                execl(wm_bin(), "wsync", "push", "--quiet", m.src, m.mnt, (char *)NULL);
                _exit(127);
            }
            usleep(delays_ms[d] * 1000);
            if (victim == 0)
                wm_sh("pkill -KILL -f 'serve --stdio %s$'", m.mnt);
            else
                kill(pid, SIGKILL);
            int status;
            waitpid(pid, &status, 0);
            wm_sh("pkill -KILL -f 'serve --stdio %s$'", m.mnt); /* an orphaned receiver */
            assert_no_torn_file(nfiles);
        }
    }
    free(push("", 0)); /* the rerun converges */
    assert_verified();
}
END_TEST


/* The pid of the receiving serve of a push into DEST (our grandchild), or 0. */
static pid_t dest_serve_pid(void)
{
    int st;
    char *out = wm_sh_out(&st, "pgrep -f 'serve --stdio %s$' | head -1", m.mnt);
    pid_t pid = (pid_t)atoi(out);
    free(out);
    return pid;
}

static bool patch_log_present(void)
{
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/" PATCH_LOG_DIR, m.mnt);
    DIR *d = opendir(dir);
    bool found = false;
    struct dirent *de;
    while (d && !found && (de = readdir(d)))
        found = de->d_name[0] != '.';
    if (d)
        closedir(d);
    return found;
}

/* What the next `wsync serve` on DEST does first: replay leftover patch
 * logs, under the writers' lock. */
static void replay_as_next_serve(void)
{
    char path[PATH_MAX + 32], err[1024];
    snprintf(path, sizeof(path), "%s/.wsync/staging", m.mnt);
    int lock = open(path, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(lock, 0);
    ck_assert_int_eq(flock(lock, LOCK_EX), 0);
    snprintf(path, sizeof(path), "%s/.wsync", m.mnt);
    struct index *ix;
    ck_assert_msg(index_open(-1, path, false, &ix, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(apply_recover(m.mnt, ix, err, sizeof(err)) == 0, "%s", err);
    index_close(ix);
    close(lock);
}

/* Small edits of a big file are patched in place on the far side (same
 * inode) under a redo log.  The receiving serve is killed with SIGKILL
 * while that log exists (or at a random moment of the push): the file may
 * be torn then, but once the next serve has replayed the log it is the
 * old content or the new, and a rerun converges. */
START_TEST(kill_9_mid_in_place_patch_ends_old_or_new)
{
    const size_t len = 8 << 20;
    write_random(SRC("big"), len, 41);
    free(push("", 0));
    struct stat st;
    ck_assert_int_eq(stat(DST("big"), &st), 0);
    ino_t ino = st.st_ino;
    uint64_t x = 12345;
    int killed_with_log = 0, torn_before_replay = 0;
    for (int iter = 0; iter < 24; iter++) {
        size_t olen, nlen;
        char *old = wm_read(SRC("big"), &olen);
        int fd = open(SRC("big"), O_WRONLY);
        for (int k = 0; k < 3; k++) { /* three edits: several extents to tear */
            char b[4096];
            for (size_t i = 0; i < sizeof(b); i++)
                b[i] = (char)((x = x * 6364136223846793005ull + 1442695040888963407ull) >> 56);
            off_t off = (off_t)((x >> 20) % (len - sizeof(b)));
            ck_assert_int_eq(pwrite(fd, b, sizeof(b), off), (ssize_t)sizeof(b));
        }
        close(fd);
        char *new = wm_read(SRC("big"), &nlen);
        pid_t pid = fork();
        if (pid == 0) {
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 2);
            execl(wm_bin(), "wsync", "push", "--quiet", m.src, m.mnt, (char *)NULL);
            _exit(127);
        }
        /* Even rounds: kill as soon as a patch log is seen; odd rounds: at
         * a moment spread over the push. */
        int status;
        pid_t serve = 0;
        if (iter % 2 == 0) {
            /* Its pid first (pgrep is slow), then a tight look for the log,
             * then a kill at a point swept over the log's life. */
            for (int i = 0; i < 200000 && waitpid(pid, &status, WNOHANG) == 0; i++) {
                if (!serve) {
                    serve = dest_serve_pid();
                } else if (patch_log_present()) {
                    usleep((useconds_t)(iter * 150 % 3000));
                    killed_with_log += kill(serve, SIGKILL) == 0;
                    break;
                }
            }
        } else {
            usleep((useconds_t)(1000 * (iter * 3 % 40)));
            if ((serve = dest_serve_pid()) > 0)
                kill(serve, SIGKILL);
        }
        if (waitpid(pid, &status, 0) < 0)
            ck_assert_int_eq(errno, ECHILD); /* reaped by WNOHANG above */
        if ((serve = dest_serve_pid()) > 0) /* an orphaned receiver */
            kill(serve, SIGKILL);
        for (int i = 0; i < 5000 && serve > 0 && kill(serve, 0) == 0; i++)
            usleep(1000);
        size_t glen;
        char *got = wm_read(DST("big"), &glen);
        torn_before_replay += !(glen == olen && memcmp(got, old, olen) == 0) &&
                              !(glen == nlen && memcmp(got, new, nlen) == 0);
        free(got);
        replay_as_next_serve();
        got = wm_read(DST("big"), &glen);
        bool is_old = glen == olen && memcmp(got, old, olen) == 0;
        bool is_new = glen == nlen && memcmp(got, new, nlen) == 0;
        ck_assert_msg(is_old || is_new, "round %d: big is torn after the replay", iter);
        ck_assert(!patch_log_present());
        free(got);
        free(old);
        free(new);
        free(push("", 0)); /* the rerun converges */
    }
    fprintf(stderr, "in-place kill: %d kills with a patch log present, %d torn before replay\n",
            killed_with_log, torn_before_replay);
    ck_assert_msg(killed_with_log > 0, "no patch log was ever seen: not patched in place?");
    assert_verified();
    ck_assert_int_eq(stat(DST("big"), &st), 0);
    ck_assert_uint_eq(st.st_ino, ino); /* still the same file: patched, never replaced */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("push");
    TCase *tc = tcase_create("push");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, initial_copy_then_no_change);
    tcase_add_test(tc, small_edits_send_one_chunk);
    tcase_add_test(tc, rename_and_copy_send_no_data_and_extras_go);
    tcase_add_test(tc, sparse_stays_sparse_and_local_paths_stay_home);
    tcase_add_test(tc, symlink_in_dest_cannot_redirect_writes);
    tcase_add_test(tc, bad_destinations_are_named);
    tcase_add_test(tc, relative_destination_is_taken_from_the_cwd);
    tcase_add_test(tc, hard_links_stay_links);
    tcase_add_test(tc, directory_and_symlink_mtimes_are_kept);
    tcase_add_test(tc, unchanged_subtrees_are_not_listed);
    tcase_add_test(tc, one_session_syncs_all_twice);
    tcase_add_test(tc, a_touch_is_applied_in_place);
    tcase_add_test(tc, a_touched_small_file_is_not_resent);
    tcase_add_test(tc, a_touch_does_not_chmod_the_far_file);
    tcase_add_test(tc, a_no_change_push_writes_nothing_on_the_far_side);
    tcase_add_test(tc, commit_syncs_before_renames_and_before_ack);
    tcase_add_test(tc, push_into_a_network_namespace);
    tcase_add_test(tc, push_over_real_ssh);
    tcase_add_test(tc, kill_9_of_either_side_leaves_no_torn_file);
    tcase_add_test(tc, kill_9_mid_in_place_patch_ends_old_or_new);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
