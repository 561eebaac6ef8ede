/*
 * test_fuse_loop.c — the mount's request loop (fs/fuse_loop.h): big writes
 * go to the pool and small ones stay on the readers, and every byte read
 * back is exact, cold or warm, at the end of the file too.  The mounts use
 * --no-passthrough, so file I/O reaches the daemon, and --no-io-uring, so
 * requests come through /dev/fuse and this loop.
 */
#include "tests/lib/harness.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct wmount m;
static char pm[PATH_MAX], ps[PATH_MAX];
#define MNT(rel) (wm_path(pm, sizeof(pm), m.mnt, rel), pm)
#define SRC(rel) (wm_path(ps, sizeof(ps), m.src, rel), ps)

/* Not a multiple of the page size: the last read is a short one.  The
 * kernel reads ahead, so a small pread becomes a bigger READ: the first
 * READs of a file are small (readers), later ones grow past 128 KiB
 * (pool). */
#define FILE_SIZE (2 * 1024 * 1024 + 1234)

static void setup(void)
{
    wm_setup(&m, "--no-passthrough --no-io-uring"); /* the ring has no pool: test_fuse_ring.c */
}

static void teardown(void)
{
    wm_teardown(&m);
}

static long long status_num(const char *key)
{
    return wm_status_num(&m, key);
}

static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 2654435761u) >> 13);
}

/* Write the pattern to SRC directly, on disk, out of the page cache, once
 * the indexer (which reads it into the cache) is done with it. */
static void make_cold_file(const char *rel)
{
    int fd = open(SRC(rel), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    unsigned char *b = malloc(FILE_SIZE);
    for (size_t i = 0; i < FILE_SIZE; i++)
        b[i] = pattern(i);
    ck_assert_int_eq(write(fd, b, FILE_SIZE), FILE_SIZE);
    free(b);
    ck_assert_int_eq(fsync(fd), 0);
    ck_assert_int_eq(close(fd), 0);
    ck_assert_msg(wm_poll(wm_caught_up, &m, 10000), "the indexer did not catch up");
    fd = open(SRC(rel), O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    ck_assert_int_eq(close(fd), 0);
}

/* pread [from, to) in `chunk`-byte reads; every read must return all the
 * bytes the file has there, each one right. */
static void read_range(int fd, unsigned char *b, size_t chunk, size_t from, size_t to)
{
    for (size_t off = from; off < to; off += chunk) {
        size_t want = FILE_SIZE - off < chunk ? FILE_SIZE - off : chunk;
        ssize_t n = pread(fd, b, chunk, (off_t)off);
        ck_assert_msg(n == (ssize_t)want, "read of %zu at %zu gave %zd, not %zu", chunk, off, n,
                      want);
        for (size_t i = 0; i < want; i++)
            if (b[i] != pattern(off + i))
                ck_abort_msg("byte %zu differs (chunk %zu)", off + i, chunk);
    }
}

/* Read the whole file through the mount, from `start` to the end and then
 * from 0, after dropping the mount's own cache of it; then at the end. */
static void read_back(const char *rel, size_t chunk, size_t start)
{
    int fd = open(MNT(rel), O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    unsigned char *b = malloc(chunk);
    read_range(fd, b, chunk, start, FILE_SIZE);
    read_range(fd, b, chunk, 0, start);
    ck_assert_int_eq(pread(fd, b, chunk, FILE_SIZE), 0);
    free(b);
    close(fd);
}

/* Cold (SRC's pages on disk only) and warm, small preads and big: every
 * byte exact, the short last read and the read past the end too. */
START_TEST(reads_are_exact_cold_and_warm)
{
    make_cold_file("f");
    read_back("f", 4096, 3 * 4096 + 100);
    make_cold_file("f");
    read_back("f", 131072, 777);
    char *src = wm_read(SRC("f"), NULL); /* SRC's page cache now holds it */
    free(src);
    read_back("f", 65536, 0);
    read_back("f", 1000, 5);
}
END_TEST

START_TEST(big_writes_go_to_the_pool_small_ones_do_not)
{
    size_t big = 1024 * 1024;
    char *b = malloc(big);
    memset(b, 'w', big); /* present pages: the kernel sends one big WRITE */
    int fd = open(MNT("w"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    long long before = status_num("fuse_pooled");
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(pwrite(fd, b, 4096, (off_t)i * 4096), 4096);
    ck_assert_int_eq(status_num("fuse_pooled"), before);
    ck_assert_int_eq(pwrite(fd, b, big, 0), (ssize_t)big);
    ck_assert_msg(status_num("fuse_pooled") > before, "a 1 MiB write stayed on a reader");
    ck_assert_int_eq(close(fd), 0);
    free(b);
    size_t len = 0;
    free(wm_read(SRC("w"), &len));
    ck_assert_uint_eq(len, big);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fuse_loop");
    TCase *tc = tcase_create("loop");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, reads_are_exact_cold_and_warm);
    tcase_add_test(tc, big_writes_go_to_the_pool_small_ones_do_not);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
