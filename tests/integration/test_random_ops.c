/*
 * test_random_ops.c — randomized differential test of the mount.  One random
 * sequence of file system ops (create, writes across 4 KiB / 128 KiB
 * boundaries, holes, truncate, every kind of rename, link, unlink, mkdir,
 * rmdir, chmod, symlink, readlink, read, stat, readdir, fsync, mmap, fds kept
 * open across renames and unlinks) runs in lockstep on a wsync mount and on a
 * native directory.  Invariant: every op returns the same values, errnos and
 * data on both sides, and at checkpoints and at the end the mount, SRC and
 * the native tree are identical.
 *
 * The names come from a small fixed namespace (40 paths, 4 levels) so ops
 * keep hitting existing entries, non-directories in the middle of paths and
 * non-empty directories.
 *
 * Replay: every failure names the seed, the op index and the op.  Run
 *     WSYNC_TEST_SEED=<seed> meson test -C build random_ops --print-errorlogs
 * (the given seed runs first); WSYNC_TEST_OPS=<n> sets the ops per seed and
 * WSYNC_TEST_TRACE=1 prints every op, and per-op success counts, to stderr;
 * WSYNC_TEST_SWEEP=<n> sets the ops between lstat sweeps (default 10).
 *
 * The overlay case runs the same sequence with part of the namespace local
 * (OVERLAY_RULES: the top-level dir b and every dir named e), so ops keep
 * copying up, whiting out, merging listings and renaming across layers.
 * The one allowed difference from the native dir is EXDEV for a rename or
 * link that crosses layers, as POSIX allows (mv and cp fall back to a copy);
 * the native side then skips the op.  SRC itself holds only the non-local
 * part, so it is not compared; instead the mount is compared again after an
 * unmount and a remount.
 */
#include "tests/lib/harness.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_SEED 1
#define NSEEDS       3     /* seeds per test case: seed, seed + 1, seed + 2 */
#define DEFAULT_OPS  10000 /* ops per seed */
#define CHECK_EVERY  1000  /* ops between whole-tree comparisons */
#define SWEEP_EVERY  10    /* ops between lstat sweeps over all names */
#define NSLOTS       4     /* fds kept open across ops */
#define MAX_IO       (300 << 10)
#define MAX_FILE     (3 << 19) /* offsets stay below this, so files stay small */
#define MAX_STEPS    8

/* The overlay case's [local] rules, and the same rule for the test's side. */
#define OVERLAY_RULES "[local]\n/b/\ne/\n"

static struct wmount m;

/* ---- deterministic randomness (xorshift64*) ---- */

struct rng {
    uint64_t s;
};

static void rng_seed(struct rng *r, uint64_t seed)
{
    r->s = seed ^ 0x9e3779b97f4a7c15ULL;
    if (r->s == 0)
        r->s = 1;
}

static uint64_t rng_next(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dULL;
}

static uint64_t rng_below(struct rng *r, uint64_t n)
{
    return rng_next(r) % n;
}

static bool rng_chance(struct rng *r, int percent)
{
    return rng_below(r, 100) < (uint64_t)percent;
}

/* ---- the namespace and the argument distributions ---- */

/* Names meant for directories and names meant for files, four levels deep.
 * Ops draw mostly from the kind they create or use, so the tree grows deep
 * enough to matter, and now and then from all names, so that a file lands
 * where a directory was expected, a rename crosses kinds, and so on. */
static const char *const dir_names[] = {"a",   "b",   "c",     "a/d",   "b/d",  "c/d",
                                        "a/e", "b/e", "a/d/e", "b/d/e", "c/d/e"};
static const char *const file_names[] = {
    "f",       "g",       "h",       "a/f",   "a/g",     "a/h",     "b/f",     "b/g",
    "b/h",     "c/f",     "c/g",     "c/h",   "a/d/f",   "a/d/g",   "a/d/h",   "b/d/f",
    "b/d/g",   "c/d/f",   "c/d/g",   "a/e/f", "a/d/e/f", "a/d/e/g", "b/d/e/f", "b/d/e/g",
    "c/d/e/f", "c/d/e/g", "a/d/e/h", "b/e/f", "b/e/g"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

enum kind { ANY, DIR_NAME, FILE_NAME };

/* A name of the wanted kind, or now and then (15%) any name. */
static const char *pick_name(struct rng *r, enum kind want)
{
    bool any = rng_chance(r, 15) || want == ANY;
    size_t ndirs = COUNT(dir_names), nfiles = COUNT(file_names);
    size_t i = (size_t)rng_below(r, any ? ndirs + nfiles : want == DIR_NAME ? ndirs : nfiles);
    if (any)
        return i < ndirs ? dir_names[i] : file_names[i - ndirs];
    return want == DIR_NAME ? dir_names[i] : file_names[i];
}

/* Symlink targets are relative and free of "..", or absolute into a dir that
 * does not exist, so following one never leaves the tree; some dangle, some
 * loop, some point at the link's own dir. */
static void pick_target(struct rng *r, char *out, size_t size)
{
    uint64_t k = rng_below(r, 100);
    if (k < 60)
        snprintf(out, size, "%s", pick_name(r, ANY));
    else if (k < 70)
        snprintf(out, size, ".");
    else if (k < 85)
        snprintf(out, size, "nowhere");
    else if (k < 92)
        snprintf(out, size, "/nonexistent-wsync-test/target");
    else
        snprintf(out, size, "%0200d", 7); /* a long name, dangling until created */
}

/* Is `path` local under OVERLAY_RULES, as a directory (is_dir) or not?  A
 * dir rule covers the dir and everything below it. */
static bool overlay_local(const char *path, bool is_dir)
{
    char copy[256];
    snprintf(copy, sizeof(copy), "%s", path);
    int depth = 0;
    for (char *save = NULL, *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        bool last = strchr(path + (c - copy), '/') == NULL;
        bool dir = !last || is_dir;
        if (dir && (strcmp(c, "e") == 0 || (depth == 0 && strcmp(c, "b") == 0)))
            return true;
        depth++;
    }
    return false;
}

static off_t clamp_offset(int64_t off)
{
    return off < 0 ? 0 : off > MAX_FILE - MAX_IO ? MAX_FILE - MAX_IO : (off_t)off;
}

/* An offset or a size, often on or next to a 4 KiB or 128 KiB boundary. */
static off_t pick_offset(struct rng *r)
{
    int64_t jitter = (int64_t)rng_below(r, 9) - 4;
    switch (rng_below(r, 5)) {
    case 0:
        return (off_t)rng_below(r, 100);
    case 1:
        return clamp_offset((int64_t)rng_below(r, 64) * 4096 + jitter);
    case 2:
        return clamp_offset((int64_t)rng_below(r, 9) * 131072 + jitter);
    default:
        return (off_t)rng_below(r, MAX_FILE - MAX_IO);
    }
}

/* A length: mostly small, sometimes a boundary multiple +-4, sometimes big. */
static size_t pick_length(struct rng *r)
{
    int64_t jitter = (int64_t)rng_below(r, 9) - 4;
    int64_t len;
    switch (rng_below(r, 10)) {
    case 6:
    case 7:
        len = 1 + (int64_t)rng_below(r, 140 << 10);
        break;
    case 8:
        len = (1 + (int64_t)rng_below(r, 2)) * (rng_chance(r, 50) ? 4096 : 131072) + jitter;
        break;
    case 9:
        len = 1 + (int64_t)rng_below(r, MAX_IO);
        break;
    default:
        len = (int64_t)rng_below(r, 4200);
    }
    return len < 0 ? 0 : len > MAX_IO ? MAX_IO : (size_t)len;
}

static mode_t pick_mode(struct rng *r, bool dir)
{
    static const mode_t file_modes[] = {0644, 0600, 0755, 0444,  0640,
                                        0000, 0777, 0700, 04755, 02750};
    static const mode_t dir_modes[] = {0755, 0700, 0750, 0777, 02775, 0555};
    if (dir)
        return dir_modes[rng_below(r, COUNT(dir_modes))];
    return file_modes[rng_below(r, COUNT(file_modes))];
}

/* ---- the two sides and what an op did on one of them ---- */

struct side {
    char root[PATH_MAX];
    int dirfd;
    int slot[NSLOTS];   /* fds kept open across ops; -1 when closed */
    unsigned char *buf; /* MAX_IO bytes that reads land in */
};

/* The arguments of one op: drawn once, used on both sides. */
struct args {
    const char *p, *q;
    char target[256];
    off_t off;
    size_t len;
    mode_t mode;
    int variant; /* 0..99: the op picks flags and sub-cases from it */
    int slot;
    const unsigned char *data; /* len bytes to write */
};

/* Every syscall's result in order, plus what was read back. */
struct result {
    int nsteps;
    const char *what[MAX_STEPS];
    long ret[MAX_STEPS];
    int err[MAX_STEPS];
    char text[2048]; /* stat summary, listing or link target */
    const unsigned char *data;
    size_t len;
};

/* Record a syscall's return value and errno.  Call it on the syscall's
 * result directly, before anything else can change errno. */
static long step(struct result *r, const char *what, long ret)
{
    int err = errno;
    ck_assert_int_lt(r->nsteps, MAX_STEPS);
    r->what[r->nsteps] = what;
    r->ret[r->nsteps] = ret < 0 ? -1 : ret;
    r->err[r->nsteps] = ret < 0 ? err : 0;
    r->nsteps++;
    errno = err;
    return ret;
}

/* Same for calls returning an fd: the number itself may differ. */
static int step_fd(struct result *r, const char *what, int fd)
{
    int err = errno;
    step(r, what, fd < 0 ? -1 : 0);
    errno = err;
    return fd;
}

static void side_path(const struct side *s, const char *rel, char *out, size_t size)
{
    wm_path(out, size, s->root, rel);
}

static void stat_text(const struct stat *st, char *out, size_t size)
{
    /* Directory sizes are a file system detail; times and inodes differ. */
    if (S_ISDIR(st->st_mode))
        snprintf(out, size, "type=%o mode=%04o nlink=%lu", st->st_mode & S_IFMT,
                 st->st_mode & 07777, (unsigned long)st->st_nlink);
    else
        snprintf(out, size, "type=%o mode=%04o size=%lld nlink=%lu", st->st_mode & S_IFMT,
                 st->st_mode & 07777, (long long)st->st_size, (unsigned long)st->st_nlink);
}

/* ---- the ops: each does one thing to one side ---- */

/* create: open(O_CREAT, +O_EXCL if variant < 25, +O_TRUNC if < 50), and for
 * odd variants a pwrite of len bytes at off. */
static void op_create(struct side *s, const struct args *a, struct result *r)
{
    int flags = O_WRONLY | O_CREAT;
    if (a->variant < 25)
        flags |= O_EXCL;
    else if (a->variant < 50)
        flags |= O_TRUNC;
    int fd = step_fd(r, "open", openat(s->dirfd, a->p, flags, a->mode));
    if (fd < 0)
        return;
    if (a->variant % 2)
        step(r, "pwrite", pwrite(fd, a->data, a->len, a->off));
    step(r, "close", close(fd));
}

/* write: pwrite(off, len) on an O_WRONLY (variant < 40) or O_RDWR fd, made
 * with O_CREAT when variant % 3 == 0; variant >= 85 opens O_APPEND and
 * appends with write(). */
static void op_write(struct side *s, const struct args *a, struct result *r)
{
    int flags = a->variant < 40 ? O_WRONLY : O_RDWR;
    if (a->variant % 3 == 0)
        flags |= O_CREAT;
    if (a->variant >= 85)
        flags |= O_APPEND;
    int fd = step_fd(r, "open", openat(s->dirfd, a->p, flags, 0644));
    if (fd < 0)
        return;
    if (flags & O_APPEND)
        step(r, "write", write(fd, a->data, a->len));
    else
        step(r, "pwrite", pwrite(fd, a->data, a->len, a->off));
    step(r, "close", close(fd));
}

/* write_past_eof: pwrite len bytes at EOF + 1 + off % MAX_IO, leaving a hole
 * (a file grown near the limit is cut to off % 64 KiB first). */
static void op_write_past_eof(struct side *s, const struct args *a, struct result *r)
{
    int fd = step_fd(r, "open", openat(s->dirfd, a->p, O_RDWR));
    if (fd < 0)
        return;
    struct stat st;
    if (step(r, "fstat", fstat(fd, &st)) == 0) {
        step(r, "fstat size", st.st_size);
        if (st.st_size > MAX_FILE - 2 * MAX_IO) {
            step(r, "ftruncate", ftruncate(fd, a->off % (64 << 10)));
            st.st_size = a->off % (64 << 10);
        }
        step(r, "pwrite", pwrite(fd, a->data, a->len, st.st_size + 1 + a->off % MAX_IO));
    }
    step(r, "close", close(fd));
}

/* truncate: truncate(path, off), up or down. */
static void op_truncate(struct side *s, const struct args *a, struct result *r)
{
    char path[PATH_MAX];
    side_path(s, a->p, path, sizeof(path));
    step(r, "truncate", truncate(path, a->off));
}

/* ftruncate: open O_WRONLY, ftruncate(off). */
static void op_ftruncate(struct side *s, const struct args *a, struct result *r)
{
    int fd = step_fd(r, "open", openat(s->dirfd, a->p, O_WRONLY));
    if (fd < 0)
        return;
    step(r, "ftruncate", ftruncate(fd, a->off));
    step(r, "close", close(fd));
}

static void op_rename(struct side *s, const struct args *a, struct result *r)
{
    step(r, "rename", renameat2(s->dirfd, a->p, s->dirfd, a->q, 0));
}

static void op_rename_noreplace(struct side *s, const struct args *a, struct result *r)
{
    step(r, "renameat2", renameat2(s->dirfd, a->p, s->dirfd, a->q, RENAME_NOREPLACE));
}

static void op_rename_exchange(struct side *s, const struct args *a, struct result *r)
{
    step(r, "renameat2", renameat2(s->dirfd, a->p, s->dirfd, a->q, RENAME_EXCHANGE));
}

static void op_link(struct side *s, const struct args *a, struct result *r)
{
    step(r, "link", linkat(s->dirfd, a->p, s->dirfd, a->q, 0));
}

static void op_unlink(struct side *s, const struct args *a, struct result *r)
{
    step(r, "unlink", unlinkat(s->dirfd, a->p, 0));
}

static void op_mkdir(struct side *s, const struct args *a, struct result *r)
{
    step(r, "mkdir", mkdirat(s->dirfd, a->p, a->mode));
}

static void op_rmdir(struct side *s, const struct args *a, struct result *r)
{
    step(r, "rmdir", unlinkat(s->dirfd, a->p, AT_REMOVEDIR));
}

/* chmod: follows symlinks, as chmod(2) does. */
static void op_chmod(struct side *s, const struct args *a, struct result *r)
{
    step(r, "chmod", fchmodat(s->dirfd, a->p, a->mode, 0));
}

static void op_symlink(struct side *s, const struct args *a, struct result *r)
{
    step(r, "symlink", symlinkat(a->target, s->dirfd, a->p));
}

static void op_readlink(struct side *s, const struct args *a, struct result *r)
{
    ssize_t n = readlinkat(s->dirfd, a->p, r->text, sizeof(r->text) - 1);
    step(r, "readlink", n);
    r->text[n > 0 ? n : 0] = '\0';
}

/* read: open O_RDONLY, pread(off, len); the bytes are compared. */
static void op_read(struct side *s, const struct args *a, struct result *r)
{
    int fd = step_fd(r, "open", openat(s->dirfd, a->p, O_RDONLY));
    if (fd < 0)
        return;
    ssize_t n = step(r, "pread", pread(fd, s->buf, a->len, a->off));
    if (n > 0) {
        r->data = s->buf;
        r->len = (size_t)n;
    }
    step(r, "close", close(fd));
}

/* stat: lstat for variant < 50, else stat (follows symlinks). */
static void op_stat(struct side *s, const struct args *a, struct result *r)
{
    struct stat st;
    int flags = a->variant < 50 ? AT_SYMLINK_NOFOLLOW : 0;
    if (step(r, "stat", fstatat(s->dirfd, a->p, &st, flags)) == 0)
        stat_text(&st, r->text, sizeof(r->text));
}

static int name_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* readdir: the sorted names of a directory (following symlinks), and for
 * variant >= 70 an fsync of the directory. */
static void op_readdir(struct side *s, const struct args *a, struct result *r)
{
    int fd = step_fd(r, "open", openat(s->dirfd, a->p, O_RDONLY | O_DIRECTORY));
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    ck_assert_ptr_nonnull(d);
    char *names[256];
    size_t n = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) && n < COUNT(names)) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            names[n++] = strdup(de->d_name);
        errno = 0;
    }
    step(r, "readdir", errno ? -1 : 0);
    if (a->variant >= 70)
        step(r, "fsync", fsync(fd));
    qsort(names, n, sizeof(names[0]), name_cmp);
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        used += (size_t)snprintf(r->text + used, sizeof(r->text) - used, "%s ", names[i]);
        ck_assert_uint_lt(used, sizeof(r->text));
        free(names[i]);
    }
    step(r, "closedir", closedir(d));
}

/* unlinked_open: open(O_RDWR | O_CREAT), unlink, then pwrite, pread and
 * fstat the unlinked (or still otherwise linked) file through the fd. */
static void op_unlinked_open(struct side *s, const struct args *a, struct result *r)
{
    int fd = step_fd(r, "open", openat(s->dirfd, a->p, O_RDWR | O_CREAT, 0644));
    if (fd < 0)
        return;
    if (step(r, "unlink", unlinkat(s->dirfd, a->p, 0)) == 0 &&
        step(r, "pwrite", pwrite(fd, a->data, a->len, a->off)) >= 0) {
        ssize_t n = step(r, "pread", pread(fd, s->buf, MAX_IO, a->off > 7 ? a->off - 7 : 0));
        if (n > 0) {
            r->data = s->buf;
            r->len = (size_t)n;
        }
        struct stat st;
        if (step(r, "fstat", fstat(fd, &st)) == 0)
            stat_text(&st, r->text, sizeof(r->text));
    }
    step(r, "close", close(fd));
}

/* fsync: open O_RDWR, pwrite, fsync (fdatasync for variant >= 50), pread back. */
static void op_fsync(struct side *s, const struct args *a, struct result *r)
{
    int fd = step_fd(r, "open", openat(s->dirfd, a->p, O_RDWR));
    if (fd < 0)
        return;
    step(r, "pwrite", pwrite(fd, a->data, a->len, a->off));
    if (a->variant < 50)
        step(r, "fsync", fsync(fd));
    else
        step(r, "fdatasync", fdatasync(fd));
    ssize_t n = step(r, "pread", pread(fd, s->buf, a->len, a->off));
    if (n > 0) {
        r->data = s->buf;
        r->len = (size_t)n;
    }
    step(r, "close", close(fd));
}

/* mmap_write: map the whole file shared, store len bytes at off (both cut
 * to fit: a shared map cannot grow the file), msync for variant < 50, unmap,
 * close. */
static void op_mmap_write(struct side *s, const struct args *a, struct result *r)
{
    int fd = step_fd(r, "open", openat(s->dirfd, a->p, O_RDWR));
    if (fd < 0)
        return;
    struct stat st;
    if (step(r, "fstat", fstat(fd, &st)) == 0 && step(r, "fstat size", st.st_size) > 0) {
        size_t size = (size_t)st.st_size;
        char *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (step(r, "mmap", map == MAP_FAILED ? -1 : 0) == 0) {
            size_t off = (size_t)a->off % size;
            memcpy(map + off, a->data, a->len < size - off ? a->len : size - off);
            if (a->variant < 50)
                step(r, "msync", msync(map, size, MS_SYNC));
            step(r, "munmap", munmap(map, size));
        }
    }
    step(r, "close", close(fd));
}

/* mmap_read: map the whole file read-only and copy out len bytes at off
 * (cut to fit the file). */
static void op_mmap_read(struct side *s, const struct args *a, struct result *r)
{
    int fd = step_fd(r, "open", openat(s->dirfd, a->p, O_RDONLY));
    if (fd < 0)
        return;
    struct stat st;
    if (step(r, "fstat", fstat(fd, &st)) == 0 && step(r, "fstat size", st.st_size) > 0) {
        size_t size = (size_t)st.st_size;
        char *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (step(r, "mmap", map == MAP_FAILED ? -1 : 0) == 0) {
            size_t off = (size_t)a->off % size;
            r->len = a->len < size - off ? a->len : size - off;
            memcpy(s->buf, map + off, r->len);
            r->data = s->buf;
            step(r, "munmap", munmap(map, size));
        }
    }
    step(r, "close", close(fd));
}

/* slot_open: (re)open a long-lived fd: O_RDWR|O_CREAT (variant < 45),
 * O_RDWR (< 60), O_RDWR|O_TRUNC (< 70), O_RDONLY (< 85) or O_WRONLY|O_APPEND. */
static void op_slot_open(struct side *s, const struct args *a, struct result *r)
{
    int *fd = &s->slot[a->slot];
    if (*fd >= 0)
        step(r, "close", close(*fd));
    int flags = a->variant < 45   ? O_RDWR | O_CREAT
                : a->variant < 60 ? O_RDWR
                : a->variant < 70 ? O_RDWR | O_TRUNC
                : a->variant < 85 ? O_RDONLY
                                  : O_WRONLY | O_APPEND;
    *fd = step_fd(r, "open", openat(s->dirfd, a->p, flags, 0644));
}

/* The slot ops run on closed slots too: they then fail with EBADF. */
static void op_slot_close(struct side *s, const struct args *a, struct result *r)
{
    int *fd = &s->slot[a->slot];
    step(r, "close", close(*fd));
    *fd = -1;
}

/* slot_write: pwrite(off, len) on a long-lived fd; fsync for variant < 20. */
static void op_slot_write(struct side *s, const struct args *a, struct result *r)
{
    int fd = s->slot[a->slot];
    step(r, "pwrite", pwrite(fd, a->data, a->len, a->off));
    if (a->variant < 20)
        step(r, "fsync", fsync(fd));
}

/* slot_read: pread(off, len) and fstat on a long-lived fd. */
static void op_slot_read(struct side *s, const struct args *a, struct result *r)
{
    int fd = s->slot[a->slot];
    ssize_t n = step(r, "pread", pread(fd, s->buf, a->len, a->off));
    if (n > 0) {
        r->data = s->buf;
        r->len = (size_t)n;
    }
    struct stat st;
    if (step(r, "fstat", fstat(fd, &st)) == 0)
        stat_text(&st, r->text, sizeof(r->text));
}

static void op_slot_ftruncate(struct side *s, const struct args *a, struct result *r)
{
    step(r, "ftruncate", ftruncate(s->slot[a->slot], a->off));
}

/* An op and how to draw its arguments.  fields: the args it uses, for its
 * description (p q t: names and target; o l m v s: off, len, mode, variant,
 * slot); data: it writes len bytes; dir_mode: mode is a directory mode. */
struct op {
    const char *name;
    void (*run)(struct side *s, const struct args *a, struct result *r);
    int weight;
    enum kind p_kind, q_kind;
    const char *fields;
    bool data, dir_mode;
};

static const struct op ops[] = {
    {"create", op_create, 12, FILE_NAME, ANY, "pmvol", true, false},
    {"write", op_write, 12, FILE_NAME, ANY, "pvol", true, false},
    {"write_past_eof", op_write_past_eof, 4, FILE_NAME, ANY, "pol", true, false},
    {"truncate", op_truncate, 3, FILE_NAME, ANY, "po", false, false},
    {"ftruncate", op_ftruncate, 2, FILE_NAME, ANY, "po", false, false},
    {"rename", op_rename, 5, ANY, ANY, "pq", false, false},
    {"rename_noreplace", op_rename_noreplace, 3, ANY, ANY, "pq", false, false},
    {"rename_exchange", op_rename_exchange, 3, ANY, ANY, "pq", false, false},
    {"link", op_link, 6, FILE_NAME, FILE_NAME, "pq", false, false},
    {"unlink", op_unlink, 6, ANY, ANY, "p", false, false},
    {"mkdir", op_mkdir, 6, DIR_NAME, ANY, "pm", false, true},
    {"rmdir", op_rmdir, 3, ANY, ANY, "p", false, false},
    {"chmod", op_chmod, 3, ANY, ANY, "pm", false, false},
    {"symlink", op_symlink, 3, FILE_NAME, ANY, "pt", false, false},
    {"readlink", op_readlink, 2, FILE_NAME, ANY, "p", false, false},
    {"read", op_read, 8, FILE_NAME, ANY, "pol", false, false},
    {"stat", op_stat, 6, ANY, ANY, "pv", false, false},
    {"readdir", op_readdir, 3, DIR_NAME, ANY, "pv", false, false},
    {"unlinked_open", op_unlinked_open, 2, FILE_NAME, ANY, "pol", true, false},
    {"fsync", op_fsync, 2, FILE_NAME, ANY, "pvol", true, false},
    {"mmap_write", op_mmap_write, 2, FILE_NAME, ANY, "pvol", true, false},
    {"mmap_read", op_mmap_read, 2, FILE_NAME, ANY, "pol", false, false},
    {"slot_open", op_slot_open, 4, FILE_NAME, ANY, "spv", false, false},
    {"slot_close", op_slot_close, 2, FILE_NAME, ANY, "s", false, false},
    {"slot_write", op_slot_write, 5, FILE_NAME, ANY, "svol", true, false},
    {"slot_read", op_slot_read, 3, FILE_NAME, ANY, "sol", false, false},
    {"slot_ftruncate", op_slot_ftruncate, 1, FILE_NAME, ANY, "so", false, false},
};

/* ---- running a sequence ---- */

struct run {
    uint64_t seed;
    bool writeback;
    bool overlay;
    int index; /* op being run; -1 before the first */
    char desc[512];
    struct side mnt, native;
    int src_dirfd;       /* SRC itself, under the mount */
    unsigned char *data; /* MAX_IO bytes of write payload */
};

static void mismatch(const struct run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void mismatch(const struct run *run, const char *fmt, ...)
{
    char what[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    ck_abort_msg("seed %llu%s, op #%d %s: %s  [replay: WSYNC_TEST_SEED=%llu]",
                 (unsigned long long)run->seed,
                 run->writeback ? " (--writeback)" : run->overlay ? " (overlay)" : "", run->index,
                 run->desc, what, (unsigned long long)run->seed);
}

static const char *errname(int e)
{
    const char *n = e ? strerrorname_np(e) : "0";
    return n ? n : "?";
}

static const struct op *pick_op(struct rng *r)
{
    static int total;
    if (!total)
        for (size_t i = 0; i < COUNT(ops); i++)
            total += ops[i].weight;
    int k = (int)rng_below(r, (uint64_t)total);
    size_t i = 0;
    while (k >= ops[i].weight)
        k -= ops[i++].weight;
    return &ops[i];
}

/* Draw every argument, whether the op uses it or not, so the stream of
 * random numbers does not depend on which op was drawn. */
static void pick_args(struct rng *r, const struct op *op, struct args *a, unsigned char *data)
{
    a->p = pick_name(r, op->p_kind);
    a->q = pick_name(r, op->q_kind);
    pick_target(r, a->target, sizeof(a->target));
    a->off = pick_offset(r);
    a->len = pick_length(r);
    bool dir_mode = rng_chance(r, 30);
    a->mode = pick_mode(r, op->dir_mode || dir_mode);
    a->variant = (int)rng_below(r, 100);
    a->slot = (int)rng_below(r, NSLOTS);
    a->data = data;
    uint64_t x = rng_next(r);
    if (op->data) {
        for (size_t i = 0; i < a->len; i += 8) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            memcpy(data + i, &x, a->len - i < 8 ? a->len - i : 8);
        }
    }
}

static void describe(const struct op *op, const struct args *a, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "%s(", op->name);
    for (const char *f = op->fields; *f && n < size; f++) {
        const char *sep = f == op->fields ? "" : ", ";
        switch (*f) {
        case 'p':
            n += (size_t)snprintf(out + n, size - n, "%s\"%s\"", sep, a->p);
            break;
        case 'q':
            n += (size_t)snprintf(out + n, size - n, "%s\"%s\"", sep, a->q);
            break;
        case 't':
            n += (size_t)snprintf(out + n, size - n, "%s\"%s\"", sep, a->target);
            break;
        case 'o':
            n += (size_t)snprintf(out + n, size - n, "%soff=%lld", sep, (long long)a->off);
            break;
        case 'l':
            n += (size_t)snprintf(out + n, size - n, "%slen=%zu", sep, a->len);
            break;
        case 'm':
            n += (size_t)snprintf(out + n, size - n, "%smode=0%o", sep, a->mode);
            break;
        case 'v':
            n += (size_t)snprintf(out + n, size - n, "%svariant=%d", sep, a->variant);
            break;
        case 's':
            n += (size_t)snprintf(out + n, size - n, "%sslot=%d", sep, a->slot);
            break;
        }
    }
    if (n < size)
        snprintf(out + n, size - n, ")");
}

static void compare_results(const struct run *run, const struct result *w, const struct result *n)
{
    int steps = w->nsteps < n->nsteps ? w->nsteps : n->nsteps;
    for (int i = 0; i < steps; i++)
        if (w->ret[i] != n->ret[i] || w->err[i] != n->err[i])
            mismatch(run, "step %d (%s): wsync returned %ld (%s), native %ld (%s)", i, w->what[i],
                     w->ret[i], errname(w->err[i]), n->ret[i], errname(n->err[i]));
    if (w->nsteps != n->nsteps)
        mismatch(run, "wsync made %d steps, native %d", w->nsteps, n->nsteps);
    if (strcmp(w->text, n->text) != 0)
        mismatch(run, "wsync saw \"%s\", native \"%s\"", w->text, n->text);
    if (w->len != n->len)
        mismatch(run, "wsync read %zu bytes, native %zu", w->len, n->len);
    if (w->len && memcmp(w->data, n->data, w->len) != 0) {
        size_t i = 0;
        while (w->data[i] == n->data[i])
            i++;
        mismatch(run, "data read back differs at byte %zu of %zu: wsync 0x%02x, native 0x%02x", i,
                 w->len, w->data[i], n->data[i]);
    }
}

/* rel (under the native root) with its parent's symlinks resolved, as the
 * kernel walks it before the mount sees the last name: "c/d/e/g" with c/d/e
 * a link to "." is c/d/g.  False if the parent is not a dir under root. */
static bool resolved_name(const struct side *native, const char *rel, char *out, size_t size)
{
    char path[PATH_MAX], real[PATH_MAX], root[PATH_MAX];
    const char *slash = strrchr(rel, '/');
    if (!slash) {
        snprintf(out, size, "%s", rel);
        return true;
    }
    int len = snprintf(path, sizeof(path), "%s/%.*s", native->root, (int)(slash - rel), rel);
    if (len < 0 || (size_t)len >= sizeof(path) || !realpath(path, real) ||
        !realpath(native->root, root))
        return false;
    size_t n = strlen(root);
    if (strncmp(real, root, n) != 0 || (real[n] != '/' && real[n] != '\0'))
        return false;
    len = snprintf(out, size, "%s%s%s", real[n] ? real + n + 1 : "", real[n] ? "/" : "", slash + 1);
    return len >= 0 && (size_t)len < size;
}

/* Overlay case: the mount refused with EXDEV a rename or link between a
 * local and a non-local path, which POSIX allows; then the native side must
 * not run the op.  Only when the native side would have got past its own
 * checks (source there, target's parent a dir), so that EXDEV cannot hide
 * an ENOENT or ENOTDIR the mount should have returned first. */
static bool allowed_exdev(const struct run *run, const struct op *op, const struct args *a,
                          const struct result *w)
{
    if (!run->overlay || w->nsteps != 1 || w->ret[0] >= 0 || w->err[0] != EXDEV)
        return false;
    bool exchange = op->run == op_rename_exchange;
    if (op->run != op_rename && op->run != op_rename_noreplace && !exchange && op->run != op_link)
        return false;
    int dfd = run->native.dirfd;
    struct stat ps, qs;
    char parent[256];
    snprintf(parent, sizeof(parent), "%s", a->q);
    char *slash = strrchr(parent, '/');
    if (fstatat(dfd, a->p, &ps, AT_SYMLINK_NOFOLLOW) < 0 ||
        (slash && (*slash = '\0', fstatat(dfd, parent, &qs, 0) < 0 || !S_ISDIR(qs.st_mode))))
        return false;
    char p[PATH_MAX], q[PATH_MAX];
    if (!resolved_name(&run->native, a->p, p, sizeof(p)) ||
        !resolved_name(&run->native, a->q, q, sizeof(q)))
        return false;
    bool pdir = S_ISDIR(ps.st_mode);
    bool p_from = overlay_local(p, pdir), p_to = overlay_local(q, pdir);
    if (!exchange)
        return p_from != p_to;
    /* An exchange is one step only within one layer: each object must stay
     * in its layer, and both must be in the same one. */
    if (fstatat(dfd, a->q, &qs, AT_SYMLINK_NOFOLLOW) < 0)
        return false;
    bool qdir = S_ISDIR(qs.st_mode);
    bool q_from = overlay_local(q, qdir), q_to = overlay_local(p, qdir);
    return p_from != p_to || q_from != q_to || p_from != q_from;
}

static bool all_steps_ok(const struct result *r)
{
    for (int i = 0; i < r->nsteps; i++)
        if (r->ret[i] < 0)
            return false;
    return true;
}

/* One line per op: what ran and where it stopped, if it failed. */
static void trace_op(const struct run *run, const struct result *r)
{
    int i = 0;
    while (i < r->nsteps && r->ret[i] >= 0)
        i++;
    fprintf(stderr, "seed %llu op #%d %s -> %s %s\n", (unsigned long long)run->seed, run->index,
            run->desc, i < r->nsteps ? r->what[i] : "ok", i < r->nsteps ? errname(r->err[i]) : "");
}

static void lstat_result(int dirfd, const char *name, struct result *r)
{
    struct stat st;
    if (step(r, "lstat", fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW)) == 0)
        stat_text(&st, r->text, sizeof(r->text));
}

/* lstat every name of the namespace in the mount and natively: catches link
 * counts, sizes and modes that an op changed behind another name's back
 * (hard links, renames over open files).  Without the writeback cache, SRC
 * must agree too (as "wsync" in the message).  Runs every `every` ops. */
static void sweep_names(struct run *run, int every)
{
    size_t len = strlen(run->desc);
    for (size_t i = 0; i < COUNT(dir_names) + COUNT(file_names); i++) {
        const char *name = i < COUNT(dir_names) ? dir_names[i] : file_names[i - COUNT(dir_names)];
        struct result w = {0}, n = {0}, src = {0};
        lstat_result(run->mnt.dirfd, name, &w);
        lstat_result(run->native.dirfd, name, &n);
        snprintf(run->desc + len, sizeof(run->desc) - len,
                 ", then lstat(\"%s\") (sweep every %d ops: set WSYNC_TEST_SWEEP=1 to pin the op)",
                 name, every);
        compare_results(run, &w, &n);
        if (run->writeback || run->overlay)
            continue;
        lstat_result(run->src_dirfd, name, &src);
        snprintf(run->desc + len, sizeof(run->desc) - len,
                 ", then lstat(\"%s\") in SRC (sweep every %d ops: WSYNC_TEST_SWEEP=1 pins the op)",
                 name, every);
        compare_results(run, &src, &n);
    }
    run->desc[len] = '\0';
}

static void compare_trees(const struct run *run, const char *a, const char *b, const char *what)
{
    char why[1024];
    if (!wm_trees_equal(a, b, why, sizeof(why)))
        mismatch(run, "%s differ (since the last check, %d ops earlier at most): %s", what,
                 CHECK_EVERY, why);
}

static void side_open(struct side *s, const char *root)
{
    snprintf(s->root, sizeof(s->root), "%s", root);
    s->dirfd = open(root, O_RDONLY | O_DIRECTORY);
    ck_assert_msg(s->dirfd >= 0, "open %s: %s", root, strerror(errno));
    for (int i = 0; i < NSLOTS; i++)
        s->slot[i] = -1;
    s->buf = malloc(MAX_IO);
    ck_assert_ptr_nonnull(s->buf);
}

/* Close the long-lived fds on both sides; close results must agree too. */
static void close_slots(struct run *run)
{
    snprintf(run->desc, sizeof(run->desc), "(closing the long-lived fds)");
    for (int i = 0; i < NSLOTS; i++) {
        struct result w = {0}, n = {0};
        if (run->mnt.slot[i] >= 0)
            step(&w, "close", close(run->mnt.slot[i]));
        if (run->native.slot[i] >= 0)
            step(&n, "close", close(run->native.slot[i]));
        run->mnt.slot[i] = run->native.slot[i] = -1;
        compare_results(run, &w, &n);
    }
}

static void side_close(struct side *s)
{
    close(s->dirfd);
    free(s->buf);
}

static uint64_t env_u64(const char *name, uint64_t fallback)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 0) : fallback;
}

/* Run the sequence for seed on m (already mounted) and a native dir next to
 * it, checking every op and the lstat of every name after it, the trees
 * every CHECK_EVERY ops, and everything at the end. */
static void run_sequence(uint64_t seed, bool writeback, bool overlay)
{
    char native_root[PATH_MAX];
    wm_path(native_root, sizeof(native_root), m.root, "native");
    ck_assert_int_eq(mkdir(native_root, 0755), 0);
    ck_assert_int_eq(chmod(native_root, 0755), 0);
    ck_assert_int_eq(chmod(m.mnt, 0755), 0);
    if (overlay) { /* the mount shows SRC's rules file; so must the native dir */
        char rules[PATH_MAX];
        wm_path(rules, sizeof(rules), native_root, ".wsyncrules");
        wm_write(rules, OVERLAY_RULES);
    }

    struct run run = {.seed = seed, .writeback = writeback, .overlay = overlay, .index = -1};
    side_open(&run.mnt, m.mnt);
    side_open(&run.native, native_root);
    run.src_dirfd = open(m.src, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(run.src_dirfd, 0);
    run.data = malloc(MAX_IO);
    ck_assert_ptr_nonnull(run.data);
    int nops = (int)env_u64("WSYNC_TEST_OPS", DEFAULT_OPS);
    bool trace = env_u64("WSYNC_TEST_TRACE", 0) != 0;
    int sweep_every = (int)env_u64("WSYNC_TEST_SWEEP", SWEEP_EVERY);

    int succeeded[COUNT(ops)] = {0}, tried[COUNT(ops)] = {0};
    struct rng rng;
    rng_seed(&rng, seed);
    for (run.index = 0; run.index < nops; run.index++) {
        const struct op *op = pick_op(&rng);
        struct args a;
        pick_args(&rng, op, &a, run.data);
        describe(op, &a, run.desc, sizeof(run.desc));
        struct result w = {0}, n = {0};
        op->run(&run.mnt, &a, &w);
        if (allowed_exdev(&run, op, &a, &w))
            n = w;
        else
            op->run(&run.native, &a, &n);
        compare_results(&run, &w, &n);
        if (trace)
            trace_op(&run, &n);
        if ((run.index + 1) % sweep_every == 0)
            sweep_names(&run, sweep_every);
        tried[op - ops]++;
        succeeded[op - ops] += all_steps_ok(&n);
        if ((run.index + 1) % CHECK_EVERY == 0) {
            compare_trees(&run, m.mnt, native_root, "mount and native tree");
            /* Without the writeback cache every write is through to SRC. */
            if (!writeback && !overlay)
                compare_trees(&run, m.src, native_root, "SRC and native tree");
        }
    }

    if (trace)
        for (size_t i = 0; i < COUNT(ops); i++)
            fprintf(stderr, "%-18s %5d ops, %5d without error\n", ops[i].name, tried[i],
                    succeeded[i]);
    snprintf(run.desc, sizeof(run.desc), "(end of sequence)");
    close_slots(&run);
    compare_trees(&run, m.mnt, native_root, "mount and native tree");
    if (!overlay)
        compare_trees(&run, m.src, native_root, "SRC and native tree");
    side_close(&run.mnt);
    side_close(&run.native);
    /* After unmount, SRC alone must hold everything. */
    int st = wm_sh("'%s' unmount '%s'", wm_bin(), m.mnt);
    ck_assert_msg(st == 0, "seed %llu: wsync unmount %s exited with %d", (unsigned long long)seed,
                  m.mnt, st);
    m.mounted = false;
    if (overlay) { /* local paths live in the overlay: mount again to see them */
        st = wm_sh("'%s' mount '%s' '%s'", wm_bin(), m.src, m.mnt);
        ck_assert_msg(st == 0, "seed %llu: wsync mount again exited with %d",
                      (unsigned long long)seed, st);
        m.mounted = true;
        snprintf(run.desc, sizeof(run.desc), "(after unmount and mount)");
        compare_trees(&run, m.mnt, native_root, "mount and native tree");
    } else {
        snprintf(run.desc, sizeof(run.desc), "(after unmount)");
        compare_trees(&run, m.src, native_root, "SRC and native tree");
    }
    close(run.src_dirfd);
    free(run.data);
}

static uint64_t seed_for(int loop_index)
{
    return env_u64("WSYNC_TEST_SEED", DEFAULT_SEED) + (uint64_t)loop_index;
}

static void setup(void)
{
    wm_setup(&m, "");
}

static void setup_writeback(void)
{
    wm_setup(&m, "--writeback");
}

static void setup_overlay(void)
{
    wm_prepare(&m);
    char rules[PATH_MAX];
    wm_path(rules, sizeof(rules), m.src, ".wsyncrules");
    wm_write(rules, OVERLAY_RULES);
    int st = wm_sh("'%s' mount '%s' '%s'", wm_bin(), m.src, m.mnt);
    ck_assert_msg(st == 0, "wsync mount %s failed with status %d", m.src, st);
    m.mounted = true;
}

static void teardown(void)
{
    wm_teardown(&m);
}

START_TEST(random_ops)
{
    run_sequence(seed_for(_i), false, false);
}
END_TEST

START_TEST(random_ops_writeback)
{
    run_sequence(seed_for(_i), true, false);
}
END_TEST

START_TEST(random_ops_overlay)
{
    run_sequence(seed_for(_i), false, true);
}
END_TEST

int main(void)
{
    umask(022);
    Suite *s = suite_create("random_ops");
    TCase *tc = tcase_create("passthrough");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, random_ops, 0, NSEEDS);
    suite_add_tcase(s, tc);
    TCase *twb = tcase_create("writeback");
    tcase_add_checked_fixture(twb, setup_writeback, teardown);
    tcase_set_timeout(twb, 300);
    tcase_add_loop_test(twb, random_ops_writeback, 0, NSEEDS);
    suite_add_tcase(s, twb);
    TCase *tov = tcase_create("overlay");
    tcase_add_checked_fixture(tov, setup_overlay, teardown);
    tcase_set_timeout(tov, 300);
    tcase_add_loop_test(tov, random_ops_overlay, 0, NSEEDS);
    suite_add_tcase(s, tov);
    return wm_run_suite(s);
}
