/*
 * test_rechunk.c — re-chunking a changed range gives exactly the chunks a
 * full pass gives, while reading only around the change.
 */
#include "sync/chunker.h"
#include "sync/rechunk.h"

#include "tests/lib/harness.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int make_file(size_t size)
{
    char path[] = "/tmp/wsync-rechunk-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    unsigned char *b = malloc(size);
    for (size_t i = 0; i < size; i++)
        b[i] = (unsigned char)next();
    ck_assert_int_eq(pwrite(fd, b, size, 0), (ssize_t)size);
    free(b);
    return fd;
}

/* Change [off, off+len) and check rechunk == full chunking. Returns bytes read. */
static uint64_t change_and_compare(int fd, uint64_t off, size_t len)
{
    struct chunk *old, *full, *part;
    size_t nold, nfull, npart;
    struct content_id idold, idfull, idpart;
    lseek(fd, 0, SEEK_SET);
    ck_assert_int_eq(chunker_hash_fd(fd, &old, &nold, &idold, NULL), 0);
    unsigned char *b = malloc(len);
    for (size_t i = 0; i < len; i++)
        b[i] = (unsigned char)next();
    ck_assert_int_eq(pwrite(fd, b, len, (off_t)off), (ssize_t)len);
    free(b);
    lseek(fd, 0, SEEK_SET);
    ck_assert_int_eq(chunker_hash_fd(fd, &full, &nfull, &idfull, NULL), 0);
    uint64_t read = 0;
    ck_assert_int_eq(rechunk_fd(fd, old, nold, off, off + len, &part, &npart, &idpart, &read), 0);
    ck_assert_msg(npart == nfull, "rechunk gave %zu chunks, full pass %zu (change %llu+%zu)",
                  npart, nfull, (unsigned long long)off, len);
    for (size_t i = 0; i < nfull; i++) {
        ck_assert_uint_eq(part[i].off, full[i].off);
        ck_assert_uint_eq(part[i].len, full[i].len);
        ck_assert(content_id_eq(&part[i].id, &full[i].id));
    }
    ck_assert(content_id_eq(&idpart, &idfull));
    free(old);
    free(full);
    free(part);
    return read;
}

START_TEST(in_place_write_reads_little)
{
    int fd = make_file(64 << 20);
    uint64_t read = change_and_compare(fd, 30 << 20, 4096);
    ck_assert_msg(read <= 2 << 20, "read %llu bytes for a 4 KiB change", (unsigned long long)read);
    close(fd);
}
END_TEST

START_TEST(edges_and_appends)
{
    int fd = make_file(3 << 20);
    change_and_compare(fd, 0, 10);                      /* first byte */
    change_and_compare(fd, (3 << 20) - 5, 5);           /* last bytes */
    change_and_compare(fd, 3 << 20, 100000);            /* append */
    change_and_compare(fd, (3 << 20) + 100000, 1);      /* append one byte */
    change_and_compare(fd, 1 << 20, 2 << 20);           /* across many chunks */
    close(fd);
    fd = make_file(1000); /* a single short chunk */
    change_and_compare(fd, 500, 10);
    change_and_compare(fd, 1000, 20000);
    close(fd);
}
END_TEST

START_TEST(random_changes_match_full_pass)
{
    int fd = make_file(8 << 20);
    for (int i = 0; i < 60; i++) {
        uint64_t size = (uint64_t)lseek(fd, 0, SEEK_END);
        uint64_t off = next() % (size + 1000);
        size_t len = 1 + next() % (i % 3 == 0 ? 300000 : 5000);
        change_and_compare(fd, off, len);
    }
    close(fd);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rechunk");
    TCase *tc = tcase_create("rechunk");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, in_place_write_reads_little);
    tcase_add_test(tc, edges_and_appends);
    tcase_add_test(tc, random_changes_match_full_pass);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
