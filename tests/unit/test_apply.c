/*
 * test_apply.c — the receiver's writes: path checks, symlink traps, staged
 * assembly from local and received chunks, verification before rename, and
 * the index it keeps.
 */
#include "sync/apply.h"
#include "sync/chunker.h"
#include "sync/index.h"
#include "sync/indexer.h"
#include "sync/wire.h"
#include "tests/lib/harness.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[PATH_MAX], state[PATH_MAX + 16], outside[PATH_MAX];
static struct index *ix;
static struct applier *ap;

static void setup(void)
{
    snprintf(root, sizeof(root), "/tmp/wsync-apply-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
    snprintf(outside, sizeof(outside), "/tmp/wsync-outside-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(outside));
    snprintf(state, sizeof(state), "%s/.wsync", root);
    mkdir(state, 0700);
    char err[512];
    ck_assert_msg(index_open(-1, state, false, &ix, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(apply_open(root, ix, false, &ap, err, sizeof(err)) == 0, "%s", err);
}

static void teardown(void)
{
    apply_close(ap);
    index_close(ix);
    wm_rm_rf(root);
    wm_rm_rf(outside);
}

static char *at(const char *rel)
{
    static char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    return p;
}

/* Chunk a buffer the way a sender would. */
static void chunk_buf(const void *buf, size_t len, struct chunk **c, size_t *n,
                      struct content_id *id)
{
    ck_assert_int_eq(chunker_hash_buffer(buf, len, c, n, id), 0);
}

static unsigned char *random_bytes(size_t n, unsigned seed)
{
    unsigned char *b = malloc(n);
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (unsigned char)x;
    }
    return b;
}

START_TEST(path_checks)
{
    const char *bad[] = {"", "/abs", "a/../b", "..", ".", "a//b", "a/", "./a", ".wsync",
                         ".wsync/index.db", "a/./b"};
    char err[300];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(wire_path_check(bad[i], err, sizeof(err)) == -EINVAL, "accepted '%s'",
                      bad[i]);
    char longname[300];
    memset(longname, 'x', 256);
    longname[256] = '\0';
    ck_assert_int_eq(wire_path_check(longname, err, sizeof(err)), -ENAMETOOLONG);
    ck_assert_ptr_nonnull(strstr(err, "255"));
    const char *good[] = {"a", "a/b/c", ".hidden", "sub/.wsync", "..x", "x..", "a b/c"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(wire_path_check(good[i], err, sizeof(err)) == 0, "refused '%s': %s",
                      good[i], err);
}
END_TEST

START_TEST(received_chunks_assemble_and_verify)
{
    size_t len = 700 * 1024;
    unsigned char *data = random_bytes(len, 1);
    struct chunk *c;
    size_t n;
    struct content_id id;
    chunk_buf(data, len, &c, &n, &id);
    ck_assert_int_ge(n, 2);
    ck_assert_int_eq(apply_mkdir(ap, "d", 0755, 0), 0);
    struct content_id *want = NULL;
    size_t nwant = 0;
    ck_assert_int_eq(apply_file(ap, "d/f", 0640, 1000000000LL, len, &id, c, n, &want, &nwant),
                     0);
    ck_assert_uint_eq(nwant, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(apply_chunk(ap, &c[i].id, data + c[i].off, c[i].len), 0);
    ck_assert_msg(apply_commit(ap) == 0, "%s", apply_error(ap));
    size_t got_len;
    char *got = wm_read(at("d/f"), &got_len);
    ck_assert_uint_eq(got_len, len);
    ck_assert(memcmp(got, data, len) == 0);
    struct stat st;
    ck_assert_int_eq(stat(at("d/f"), &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0640);
    ck_assert_int_eq(st.st_mtim.tv_sec, 1);
    /* The receiver's own index knows the file and its chunks. */
    struct index_file f;
    ck_assert_int_eq(index_get(ix, "d/f", &f), 0);
    ck_assert(content_id_eq(&f.id, &id));
    index_file_release(&f);
    free(got);
    free(want);
    free(c);
    free(data);
}
END_TEST

START_TEST(local_chunks_are_reused_without_asking)
{
    size_t len = 500 * 1024;
    unsigned char *data = random_bytes(len, 2);
    struct chunk *c;
    size_t n;
    struct content_id id;
    chunk_buf(data, len, &c, &n, &id);
    /* ROOT already holds the content under another name, indexed. */
    int fd = open(at("old"), O_WRONLY | O_CREAT, 0644);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
    struct indexer *in;
    char err[256];
    ck_assert_int_eq(indexer_new(root, ix, &in, err, sizeof(err)), 0);
    ck_assert_int_eq(indexer_scan(in, NULL), 0);
    indexer_free(in);
    struct content_id *want = NULL;
    size_t nwant = 0;
    ck_assert_int_eq(apply_file(ap, "renamed", 0644, 0, len, &id, c, n, &want, &nwant), 0);
    ck_assert_uint_eq(nwant, 0); /* a rename or copy costs no data */
    ck_assert_int_eq(apply_delete(ap, "old"), 0);
    ck_assert_int_eq(access(at("old"), F_OK), 0); /* deletes wait for the commit */
    ck_assert_msg(apply_commit(ap) == 0, "%s", apply_error(ap));
    size_t got_len;
    char *got = wm_read(at("renamed"), &got_len);
    ck_assert_uint_eq(got_len, len);
    ck_assert(memcmp(got, data, len) == 0);
    ck_assert_int_eq(access(at("old"), F_OK), -1);
    struct apply_counts counts;
    apply_get_counts(ap, &counts);
    ck_assert_uint_eq(counts.chunks_local, n);
    ck_assert_uint_eq(counts.chunks_received, 0);
    free(got);
    free(c);
    free(data);
}
END_TEST

START_TEST(lies_and_gaps_leave_the_old_file)
{
    wm_write(at("keep"), "old content");
    unsigned char *data = random_bytes(100000, 3);
    struct chunk *c;
    size_t n;
    struct content_id id, wrong;
    chunk_buf(data, 100000, &c, &n, &id);
    content_id_of_chunk("something else", 14, &wrong);
    struct content_id *want = NULL;
    size_t nwant = 0;
    /* A file id that does not match its chunks: refused once the last
     * chunk is in (the file is checked as soon as it is complete), and
     * again at commit. */
    ck_assert_int_ge(n, 2);
    ck_assert_int_eq(apply_file(ap, "keep", 0644, 0, 100000, &wrong, c, n, &want, &nwant), 0);
    for (size_t i = 0; i + 1 < n; i++)
        ck_assert_int_eq(apply_chunk(ap, &c[i].id, data + c[i].off, c[i].len), 0);
    ck_assert_int_eq(apply_chunk(ap, &c[n - 1].id, data + c[n - 1].off, c[n - 1].len), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(apply_error(ap), "keep"));
    ck_assert_int_eq(apply_commit(ap), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(apply_error(ap), "keep"));
    char *got = wm_read(at("keep"), NULL);
    ck_assert_str_eq(got, "old content");
    free(got);
    /* Staged bytes that changed on disk after they were written (a bug, a
     * bad disk, another process): read back and refused. */
    nwant = 0;
    ck_assert_int_eq(apply_file(ap, "keep", 0644, 0, 100000, &id, c, n, &want, &nwant), 0);
    for (size_t i = 0; i + 1 < n; i++)
        ck_assert_int_eq(apply_chunk(ap, &c[i].id, data + c[i].off, c[i].len), 0);
    char staged[PATH_MAX + 64];
    snprintf(staged, sizeof(staged), "%s/.wsync/staging/0.part", root);
    int sfd = open(staged, O_WRONLY);
    ck_assert_int_ge(sfd, 0);
    ck_assert_int_eq(pwrite(sfd, "X", 1, 10), 1); /* inside chunk 0, written already */
    close(sfd);
    ck_assert_int_eq(apply_chunk(ap, &c[n - 1].id, data + c[n - 1].off, c[n - 1].len), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(apply_error(ap), "keep"));
    ck_assert_int_eq(apply_commit(ap), -EBADMSG);
    got = wm_read(at("keep"), NULL);
    ck_assert_str_eq(got, "old content");
    free(got);
    /* A chunk never sent: incomplete, refused. */
    nwant = 0;
    ck_assert_int_eq(apply_file(ap, "keep", 0644, 0, 100000, &id, c, n, &want, &nwant), 0);
    ck_assert_int_eq(apply_commit(ap), -EPROTO);
    got = wm_read(at("keep"), NULL);
    ck_assert_str_eq(got, "old content");
    free(got);
    /* A chunk nobody asked for, and a chunk list with a gap. */
    ck_assert_int_eq(apply_chunk(ap, &wrong, "x", 1), -EPROTO);
    struct chunk gap[2] = {{.off = 0, .len = 10}, {.off = 20, .len = 10}};
    ck_assert_int_eq(apply_file(ap, "g", 0644, 0, 30, &id, gap, 2, &want, &nwant), -EPROTO);
    free(want);
    free(c);
    free(data);
}
END_TEST

START_TEST(symlinks_in_the_way_are_not_followed)
{
    /* ROOT/evil -> a directory outside ROOT. */
    ck_assert_int_eq(symlink(outside, at("evil")), 0);
    ck_assert_int_eq(apply_file_inline(ap, "evil/pwned", 0644, 0, "x", 1), 0);
    ck_assert_int_lt(apply_commit(ap), 0);
    ck_assert_ptr_nonnull(strstr(apply_error(ap), "evil/pwned"));
    ck_assert_int_lt(apply_mkdir(ap, "evil/dir", 0755, 0), 0);
    ck_assert_int_lt(apply_symlink(ap, "evil/l", "/etc/passwd", 0), 0);
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/pwned", outside);
    ck_assert_int_eq(access(p, F_OK), -1);
    snprintf(p, sizeof(p), "%s/dir", outside);
    ck_assert_int_eq(access(p, F_OK), -1);
    /* Deleting through the link removes nothing outside either. */
    snprintf(p, sizeof(p), "%s/victim", outside);
    wm_write(p, "v");
    ck_assert_int_eq(apply_delete(ap, "evil/victim"), 0);
    ck_assert_int_lt(apply_commit(ap), 0);
    ck_assert_int_eq(access(p, F_OK), 0);
    /* Deleting the link itself removes the link, not the target. */
    ck_assert_int_eq(apply_delete(ap, "evil"), 0);
    ck_assert_int_eq(apply_commit(ap), 0);
    ck_assert_int_eq(access(p, F_OK), 0);
    ck_assert_int_eq(access(at("evil"), F_OK), -1);
    ck_assert_int_eq(apply_file_inline(ap, "../escape", 0644, 0, "x", 1), -EINVAL);
    ck_assert_int_eq(apply_mkdir(ap, ".wsync/x", 0755, 0), -EINVAL);
}
END_TEST

START_TEST(special_bits_dropped_and_zeros_stay_sparse)
{
    size_t len = 4 << 20;
    unsigned char *zeros = calloc(1, len);
    struct chunk *c;
    size_t n;
    struct content_id id;
    chunk_buf(zeros, len, &c, &n, &id);
    struct content_id *want = NULL;
    size_t nwant = 0;
    ck_assert_int_eq(apply_file(ap, "sparse", 06755, 0, len, &id, c, n, &want, &nwant), 0);
    for (size_t i = 0; i < nwant; i++)
        ck_assert_int_eq(apply_chunk(ap, &want[i], zeros, CHUNKER_MAX_SIZE), 0);
    ck_assert_msg(apply_commit(ap) == 0, "%s", apply_error(ap));
    struct stat st;
    ck_assert_int_eq(stat(at("sparse"), &st), 0);
    ck_assert_int_eq(st.st_size, (off_t)len);
    ck_assert_int_eq(st.st_mode & 07777, 0755); /* no setuid/setgid */
    ck_assert_int_lt(st.st_blocks * 512, 64 * 1024);
    free(want);
    free(c);
    free(zeros);
}
END_TEST

/* A verify (dry-run applier) while a writer has files staged leaves them
 * alone, and a second writer is refused instead of clobbering them.  (A
 * verify used to delete a live mirror's staged files, failing its batch.) */
START_TEST(one_writer_per_root_and_readers_leave_staging_alone)
{
    size_t len = 100 * 1024;
    unsigned char *data = random_bytes(len, 7);
    struct chunk *c;
    size_t n;
    struct content_id id;
    chunk_buf(data, len, &c, &n, &id);
    struct content_id *want = NULL;
    size_t nwant = 0;
    ck_assert_int_eq(apply_file(ap, "f", 0644, 0, len, &id, c, n, &want, &nwant), 0);
    char err[512];
    struct applier *reader, *second;
    ck_assert_msg(apply_open(root, ix, true, &reader, err, sizeof(err)) == 0, "%s", err);
    apply_close(reader);
    ck_assert_int_eq(apply_open(root, ix, false, &second, err, sizeof(err)), -EBUSY);
    ck_assert_msg(strstr(err, "another wsync session"), "%s", err);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(apply_chunk(ap, &c[i].id, data + c[i].off, c[i].len), 0);
    ck_assert_msg(apply_commit(ap) == 0, "%s", apply_error(ap));
    size_t got_len;
    char *got = wm_read(at("f"), &got_len);
    ck_assert(got && got_len == len && memcmp(got, data, len) == 0);
    free(got);
    free(want);
    free(c);
    free(data);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("apply");
    TCase *tc = tcase_create("apply");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, path_checks);
    tcase_add_test(tc, received_chunks_assemble_and_verify);
    tcase_add_test(tc, local_chunks_are_reused_without_asking);
    tcase_add_test(tc, lies_and_gaps_leave_the_old_file);
    tcase_add_test(tc, symlinks_in_the_way_are_not_followed);
    tcase_add_test(tc, special_bits_dropped_and_zeros_stay_sparse);
    tcase_add_test(tc, one_writer_per_root_and_readers_leave_staging_alone);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
