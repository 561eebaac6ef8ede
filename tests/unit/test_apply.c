/*
 * test_apply.c — the receiver's writes: path checks, symlink traps, staged
 * assembly from local and received chunks, verification before rename, and
 * the index it keeps.
 */
#include "sync/apply.h"
#include "sync/chunker.h"
#include "sync/index.h"
#include "sync/indexer.h"
#include "sync/patch_log.h"
#include "sync/wire.h"
#include "tests/lib/harness.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
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


/* ---- in-place patches (patch_log.h) ---- */

#define BIG (2u << 20)

/* Send data as path, asking for nothing it does not want; *nwant_out: how
 * many chunks the applier asked for. */
static void send_file(const char *path, const unsigned char *data, size_t len, uint32_t mode,
                      int64_t mtime_ns, size_t *nwant_out)
{
    struct chunk *c;
    size_t n;
    struct content_id id;
    chunk_buf(data, len, &c, &n, &id);
    struct content_id *want = NULL;
    size_t nwant = 0;
    ck_assert_msg(apply_file(ap, path, mode, mtime_ns, len, &id, c, n, &want, &nwant) == 0, "%s",
                  apply_error(ap));
    for (size_t w = 0; w < nwant; w++)
        for (size_t i = 0; i < n; i++)
            if (content_id_eq(&want[w], &c[i].id)) {
                ck_assert_msg(apply_chunk(ap, &c[i].id, data + c[i].off, c[i].len) == 0, "%s",
                              apply_error(ap));
                break;
            }
    if (nwant_out)
        *nwant_out = nwant;
    free(want);
    free(c);
}

static void commit_ok(void)
{
    ck_assert_msg(apply_commit(ap) == 0, "%s", apply_error(ap));
}

static ino_t ino_of(const char *rel)
{
    struct stat st;
    ck_assert_int_eq(stat(at(rel), &st), 0);
    return st.st_ino;
}

static void assert_content(const char *rel, const unsigned char *data, size_t len)
{
    size_t got_len;
    char *got = wm_read(at(rel), &got_len);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(got_len, len);
    ck_assert_msg(memcmp(got, data, len) == 0, "%s differs", rel);
    free(got);
}

static size_t patch_logs(void)
{
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/" PATCH_LOG_DIR, root);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A 4 KiB edit of a 2 MiB file: only the changed chunks are asked for and
 * written, the inode stays, and the index follows.  Growing and shrinking
 * by a little stay in place too. */
START_TEST(small_update_patches_in_place)
{
    unsigned char *data = random_bytes(BIG + 4096, 11);
    send_file("big", data, BIG, 0644, 1000000000LL, NULL);
    commit_ok();
    ino_t ino = ino_of("big");
    struct apply_counts before, after;
    apply_get_counts(ap, &before);
    memset(data + (1u << 20), 0x5a, 4096);
    size_t nwant;
    send_file("big", data, BIG, 0600, 2000000000LL, &nwant);
    ck_assert_uint_ge(nwant, 1);
    ck_assert_uint_le(nwant, 2); /* the edit's chunk (and maybe the next) */
    commit_ok();
    assert_content("big", data, BIG);
    ck_assert_uint_eq(ino_of("big"), ino);
    struct stat st;
    ck_assert_int_eq(stat(at("big"), &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(st.st_mtim.tv_sec, 2);
    apply_get_counts(ap, &after);
    ck_assert_uint_lt(after.bytes_written - before.bytes_written, 2 * CHUNKER_MAX_SIZE + 1);
    ck_assert_uint_eq(patch_logs(), 0);
    struct chunk *c;
    size_t n;
    struct content_id id;
    chunk_buf(data, BIG, &c, &n, &id);
    struct index_file f;
    ck_assert_int_eq(index_get(ix, "big", &f), 0);
    ck_assert(content_id_eq(&f.id, &id));
    ck_assert_int_eq(f.ino, ino);
    index_file_release(&f);
    free(c);
    /* Grows by 4 KiB, then shrinks by 1000 bytes: still the same file. */
    send_file("big", data, BIG + 4096, 0644, 3000000000LL, NULL);
    commit_ok();
    assert_content("big", data, BIG + 4096);
    send_file("big", data, BIG - 1000, 0644, 4000000000LL, NULL);
    commit_ok();
    assert_content("big", data, BIG - 1000);
    ck_assert_uint_eq(ino_of("big"), ino);
    free(data);
}
END_TEST

/* Write the redo log an in-place patch of "big" to data would have: one
 * extent [off, off+len). */
static void write_log(const char *name, uint64_t ino, const unsigned char *data, size_t size,
                      uint64_t off, uint32_t len)
{
    struct chunk *c;
    size_t n;
    struct patch p = {.path = "big", .ino = ino, .size = size, .mode = 0644,
                      .mtime_ns = 5000000000LL};
    chunk_buf(data, size, &c, &n, &p.file_id);
    struct patch_extent e = {.off = off, .len = len, .data = data + off};
    p.ext = &e;
    p.next = 1;
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/" PATCH_LOG_DIR, root);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(dfd, 0);
    ck_assert_int_eq(patch_log_write(dfd, name, &p), 0);
    close(dfd);
    free(c);
}

/* A writer's restart (a new applier on ROOT) replays what a killed one
 * left: its log durable but the file untouched, or the file written but
 * the log not yet removed.  Either way the file ends new. */
START_TEST(patch_log_replayed_after_a_crash)
{
    unsigned char *old = random_bytes(BIG, 12);
    unsigned char *new = random_bytes(BIG, 12);
    memset(new + 300000, 0xa5, 4096);
    send_file("big", old, BIG, 0644, 1000000000LL, NULL);
    commit_ok();
    ino_t ino = ino_of("big");
    char err[512];
    /* Killed between the log's sync and the first write into the file. */
    write_log("1.log", ino, new, BIG, 300000, 4096);
    apply_close(ap);
    ck_assert_msg(apply_open(root, ix, false, &ap, err, sizeof(err)) == 0, "%s", err);
    assert_content("big", new, BIG);
    ck_assert_uint_eq(ino_of("big"), ino);
    ck_assert_uint_eq(patch_logs(), 0);
    /* Killed after the file was written, before its log was removed; and
     * a torn log beside it (cut while written: its file never touched). */
    memset(new + 900000, 0x3c, 4096);
    write_log("2.log", ino, new, BIG, 900000, 4096);
    int fd = open(at("big"), O_WRONLY);
    ck_assert_int_eq(pwrite(fd, new + 900000, 4096, 900000), 4096);
    close(fd);
    unsigned char *bogus = random_bytes(BIG, 99);
    write_log("3.log", ino, bogus, BIG, 0, 4096);
    char log3[PATH_MAX + 64];
    snprintf(log3, sizeof(log3), "%s/" PATCH_LOG_DIR "/3.log", root);
    struct stat st;
    ck_assert_int_eq(stat(log3, &st), 0);
    ck_assert_int_eq(truncate(log3, st.st_size - 10), 0);
    apply_close(ap);
    ck_assert_msg(apply_recover(root, ix, err, sizeof(err)) == 0, "%s", err); /* serve's early path */
    assert_content("big", new, BIG);
    ck_assert_uint_eq(patch_logs(), 0);
    ck_assert_msg(apply_open(root, ix, false, &ap, err, sizeof(err)) == 0, "%s", err);
    free(bogus);
    free(old);
    free(new);
}
END_TEST

/* A log whose target is no longer the recorded inode (the file was
 * replaced since), or whose file the index already records as patched, is
 * dropped without touching the file. */
START_TEST(patch_log_for_another_inode_is_discarded)
{
    unsigned char *old = random_bytes(BIG, 13);
    unsigned char *new = random_bytes(BIG, 13);
    memset(new, 0x77, 4096);
    send_file("big", old, BIG, 0644, 1000000000LL, NULL);
    commit_ok();
    ino_t ino = ino_of("big");
    write_log("1.log", ino + 12345, new, BIG, 0, 4096);
    char err[512];
    apply_close(ap);
    ck_assert_msg(apply_open(root, ix, false, &ap, err, sizeof(err)) == 0, "%s", err);
    assert_content("big", old, BIG);
    ck_assert_uint_eq(patch_logs(), 0);
    /* The index already records the log's file id at that path: the
     * patch was complete (only the log's removal was lost), and a later
     * edit of the file must not be undone by replaying it. */
    send_file("big", new, BIG, 0644, 1000000000LL, NULL);
    commit_ok();
    write_log("2.log", ino_of("big"), new, BIG, 0, 4096);
    int fd = open(at("big"), O_WRONLY);
    ck_assert_int_eq(pwrite(fd, "LOCAL", 5, 0), 5);
    close(fd);
    apply_close(ap);
    ck_assert_msg(apply_open(root, ix, false, &ap, err, sizeof(err)) == 0, "%s", err);
    char *got = wm_read(at("big"), NULL);
    ck_assert(memcmp(got, "LOCAL", 5) == 0);
    free(got);
    ck_assert_uint_eq(patch_logs(), 0);
    free(old);
    free(new);
}
END_TEST

/* What must not be patched in place is staged and renamed as before: a
 * big change, a file with another name, a file changed behind the index's
 * back, and the same path twice in one batch. */
START_TEST(not_eligible_updates_are_staged)
{
    unsigned char *a1 = random_bytes(BIG, 14);
    unsigned char *a2 = random_bytes(BIG, 15);
    send_file("big", a1, BIG, 0644, 0, NULL);
    commit_ok();
    /* Everything changes: a new inode. */
    ino_t ino = ino_of("big");
    send_file("big", a2, BIG, 0644, 0, NULL);
    commit_ok();
    assert_content("big", a2, BIG);
    ck_assert_uint_ne(ino_of("big"), ino);
    /* Hard-linked: the other name keeps its content. */
    char big[PATH_MAX + 64];
    snprintf(big, sizeof(big), "%s", at("big"));
    ck_assert_int_eq(link(big, at("other")), 0);
    memcpy(a1, a2, BIG);
    memset(a1 + 4096, 1, 4096);
    send_file("big", a1, BIG, 0644, 0, NULL);
    commit_ok();
    assert_content("big", a1, BIG);
    assert_content("other", a2, BIG);
    ck_assert_int_eq(unlink(at("other")), 0);
    /* Changed behind the index (stat dirty): not trusted, staged. */
    ino = ino_of("big");
    int fd = open(at("big"), O_WRONLY);
    ck_assert_int_eq(pwrite(fd, "zz", 2, 100), 2);
    close(fd);
    memset(a1 + 8192, 2, 4096);
    send_file("big", a1, BIG, 0644, 0, NULL);
    commit_ok();
    assert_content("big", a1, BIG);
    ck_assert_uint_ne(ino_of("big"), ino);
    /* Written on this side between the UPDATE and the commit: refused
     * untouched rather than mixed, and the next try (stat dirty) stages. */
    send_file("big", a1, BIG, 0644, 0, NULL); /* stat clean again: index it */
    commit_ok();
    memset(a1 + 600000, 5, 4096);
    send_file("big", a1, BIG, 0644, 0, NULL);
    fd = open(at("big"), O_WRONLY);
    ck_assert_int_eq(pwrite(fd, "local", 5, 0), 5);
    close(fd);
    ck_assert_int_eq(apply_commit(ap), -ESTALE);
    ck_assert_ptr_nonnull(strstr(apply_error(ap), "big"));
    char *got = wm_read(at("big"), NULL);
    ck_assert(memcmp(got, "local", 5) == 0 && memcmp(got + 600000, a1 + 600000, 4096) != 0);
    free(got);
    ck_assert_uint_eq(patch_logs(), 0);
    send_file("big", a1, BIG, 0644, 0, NULL);
    commit_ok();
    assert_content("big", a1, BIG);
    /* Twice in one batch: the second is staged (it must not be patched
     * against bytes the first has not written yet); the last one wins. */
    send_file("big", a1, BIG, 0644, 0, NULL); /* stat clean again: index it */
    commit_ok();
    ino = ino_of("big");
    memset(a1 + 20000, 3, 4096);
    send_file("big", a1, BIG, 0644, 0, NULL);
    memcpy(a2, a1, BIG);
    memset(a2 + 500000, 4, 4096);
    send_file("big", a2, BIG, 0644, 0, NULL);
    commit_ok();
    assert_content("big", a2, BIG);
    ck_assert_uint_eq(patch_logs(), 0);
    free(a1);
    free(a2);
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
    tcase_add_test(tc, small_update_patches_in_place);
    tcase_add_test(tc, patch_log_replayed_after_a_crash);
    tcase_add_test(tc, patch_log_for_another_inode_is_discarded);
    tcase_add_test(tc, not_eligible_updates_are_staged);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
