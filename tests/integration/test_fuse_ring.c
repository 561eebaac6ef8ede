/*
 * test_fuse_ring.c — FUSE over io_uring (fs/fuse_ring.h) on a real mount:
 * requests really come through the ring; file data of every size comes
 * back exact, both ways (WRITE payloads are rebuilt in place, READ replies
 * of 8 KiB and more are spliced by libfuse and taken from the pipe);
 * fsyncs and metadata storms on every CPU all finish; the mount ends
 * cleanly; and --no-io-uring keeps to /dev/fuse.
 *
 * The kernel's switch (/sys/module/fuse/parameters/enable_uring) is global;
 * `--io-uring` turns it on, which changes nothing for other daemons (the
 * kernel offers the ring, only a daemon that asks for it gets it).  On a
 * kernel without FUSE over io_uring the cases check that the mount falls
 * back to /dev/fuse and still works.
 */
#include "tests/lib/harness.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct wmount m;
static char pm[PATH_MAX], pm2[PATH_MAX], ps[PATH_MAX];
#define MNT(rel)  (wm_path(pm, sizeof(pm), m.mnt, rel), pm)
#define MNT2(rel) (wm_path(pm2, sizeof(pm2), m.mnt, rel), pm2) /* a second path in one call */
#define SRC(rel) (wm_path(ps, sizeof(ps), m.src, rel), ps)

static bool kernel_has_ring(void)
{
    return access("/sys/module/fuse/parameters/enable_uring", F_OK) == 0;
}

static void teardown(void)
{
    wm_teardown(&m);
}

static bool ring_in_use(void)
{
    char *j = wm_status_json(&m);
    bool on = strstr(j, "\"fuse_ring\":true") != NULL;
    free(j);
    return on;
}

static unsigned char pattern(size_t i, unsigned seed)
{
    return (unsigned char)(((i + seed) * 2654435761u) >> 13);
}

START_TEST(requests_come_through_the_ring)
{
    wm_setup(&m, "--io-uring");
    if (!kernel_has_ring()) {
        ck_assert(!ring_in_use());
        return;
    }
    ck_assert_msg(ring_in_use(), "mounted with --io-uring, but status says /dev/fuse");
    long long before = wm_status_num(&m, "fuse_ring_served");
    /* the metadata a compiler and git send */
    ck_assert_int_eq(mkdir(MNT("d"), 0755), 0);
    wm_write(MNT("d/a"), "alpha");
    ck_assert_int_eq(rename(MNT("d/a"), MNT2("d/b")), 0);
    ck_assert_int_eq(symlink("b", MNT("d/l")), 0);
    ck_assert_int_eq(link(MNT("d/b"), MNT2("d/h")), 0);
    ck_assert_int_eq(chmod(MNT("d/b"), 0600), 0);
    struct stat st;
    ck_assert_int_eq(stat(MNT("d/l"), &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0600);
    ck_assert_int_eq(unlink(MNT("d/h")), 0);
    ck_assert(wm_poll_content(SRC("d/b"), "alpha", 1000));
    ck_assert_int_eq(lstat(SRC("d/h"), &st), -1);
    ck_assert_msg(wm_status_num(&m, "fuse_ring_served") >= before + 8,
                  "the requests did not come through the ring");
}
END_TEST

/* Write `size` bytes of pattern `seed` through the mount in `chunk`-byte
 * writes, read them back in `rchunk`-byte reads after dropping the cache,
 * and compare SRC too. */
static void round_trip(const char *rel, size_t size, size_t chunk, size_t rchunk, unsigned seed)
{
    unsigned char *b = malloc(size + 1), *r = malloc(rchunk);
    for (size_t i = 0; i < size; i++)
        b[i] = pattern(i, seed);
    int fd = open(MNT(rel), O_RDWR | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        ck_assert_int_eq(pwrite(fd, b + off, n, (off_t)off), (ssize_t)n);
    }
    ck_assert_int_eq(fsync(fd), 0);
    ck_assert_int_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    for (size_t off = 0; off < size; off += rchunk) {
        size_t want = size - off < rchunk ? size - off : rchunk;
        ssize_t n = pread(fd, r, rchunk, (off_t)off);
        ck_assert_msg(n == (ssize_t)want, "%s: read of %zu at %zu gave %zd", rel, rchunk, off, n);
        if (memcmp(r, b + off, want) != 0)
            ck_abort_msg("%s: bytes at %zu..%zu differ", rel, off, off + want);
    }
    ck_assert_int_eq(pread(fd, r, rchunk, (off_t)size), 0);
    ck_assert_int_eq(close(fd), 0);
    size_t len = 0;
    char *s = wm_read(SRC(rel), &len);
    ck_assert_uint_eq(len, size);
    ck_assert_msg(memcmp(s, b, size) == 0, "%s: SRC differs", rel);
    free(s);
    free(b);
    free(r);
}

START_TEST(file_data_is_exact_both_ways)
{
    wm_setup(&m, "--io-uring --no-passthrough");
    if (kernel_has_ring())
        ck_assert(ring_in_use());
    round_trip("tiny", 1, 1, 4096, 1);
    round_trip("page", 4096, 4096, 4096, 2);
    round_trip("odd", 100003, 777, 8192, 3);
    round_trip("mid", 300001, 65536, 131072, 4);
    round_trip("big", 3 * 1024 * 1024 + 5, 1024 * 1024, 1024 * 1024, 5);
}
END_TEST

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Children on every CPU: some fsync big writes in a loop (slow requests
 * that hold a ring thread), the others create, stat and delete.  All must
 * finish, right, within the bound: no entry is lost and nothing deadlocks
 * while slow and quick requests share the queues. */
START_TEST(fsyncs_and_metadata_storms_finish_together)
{
    wm_setup(&m, "--io-uring --no-passthrough");
    enum { WRITERS = 2, META = 4, FILES = 300 };
    pid_t kids[WRITERS + META];
    for (int k = 0; k < WRITERS + META; k++) {
        kids[k] = fork();
        ck_assert_int_ge(kids[k], 0);
        if (kids[k] > 0)
            continue;
        char path[PATH_MAX + 64];
        if (k < WRITERS) {
            static char buf[256 * 1024];
            memset(buf, 'x', sizeof(buf));
            snprintf(path, sizeof(path), "%s/sync%d", m.mnt, k);
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            for (int i = 0; fd >= 0 && i < 40; i++)
                if (pwrite(fd, buf, sizeof(buf), (off_t)i * (off_t)sizeof(buf)) < 0 || fsync(fd))
                    _exit(2);
            _exit(fd >= 0 && close(fd) == 0 ? 0 : 3);
        }
        for (int i = 0; i < FILES; i++) {
            snprintf(path, sizeof(path), "%s/m%d_%d", m.mnt, k, i);
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
            struct stat st;
            if (fd < 0 || close(fd) != 0 || stat(path, &st) != 0 || unlink(path) != 0)
                _exit(4);
        }
        _exit(0);
    }
    double t0 = now_s();
    int failed = 0, left = WRITERS + META;
    while (left > 0 && now_s() - t0 < 60) {
        int status;
        pid_t p = waitpid(-1, &status, WNOHANG);
        if (p > 0) {
            left--;
            failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        } else {
            usleep(10000); /* polling children's exit, bounded above */
        }
    }
    for (int k = 0; left > 0 && k < WRITERS + META; k++)
        kill(kids[k], SIGKILL); /* only our own children, by pid */
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    ck_assert_msg(left == 0, "%d processes still stuck after 60 s", left);
    ck_assert_int_eq(failed, 0);
    struct stat st;
    ck_assert_int_eq(stat(SRC("sync0"), &st), 0);
    ck_assert_int_eq(st.st_size, 40 * 256 * 1024);
}
END_TEST

START_TEST(no_io_uring_keeps_to_dev_fuse)
{
    wm_setup(&m, "--no-io-uring");
    wm_write(MNT("a"), "data");
    ck_assert(wm_poll_content(SRC("a"), "data", 1000));
    ck_assert(!ring_in_use());
    ck_assert_int_eq(wm_status_num(&m, "fuse_ring_served"), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fuse_ring");
    TCase *tc = tcase_create("ring");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, requests_come_through_the_ring);
    tcase_add_test(tc, file_data_is_exact_both_ways);
    tcase_add_test(tc, fsyncs_and_metadata_storms_finish_together);
    tcase_add_test(tc, no_io_uring_keeps_to_dev_fuse);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
