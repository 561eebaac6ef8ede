/*
 * test_chunk_send.c — the sender's side of the exchange after COMMIT
 * (chunk_send.h), shared by push and the two-way outbox: which replies end
 * it and how, and the DATA of one chunk read from a real indexed tree.
 * The far side's replies are a recorded stream (wire_new_mem).
 */
#include "sync/chunk_send.h"
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

/* ---- the reader: a recorded far side ---- */

static void put(struct msg_buf *b, const struct msg *m)
{
    char err[256];
    ck_assert_msg(msg_encode(m, b, err, sizeof(err)) >= 0, "%s", err);
}

/* A wire whose input is HELLO (already read) and then what b holds. */
static struct wire *far_side(struct msg_buf *b)
{
    struct msg_buf all = {0};
    put(&all, &(struct msg){.type = MSG_HELLO, .hello = {.role = MSG_ROLE_RECEIVER}});
    uint8_t *v = malloc(all.len + b->len);
    ck_assert_ptr_nonnull(v);
    memcpy(v, all.buf, all.len);
    if (b->len)
        memcpy(v + all.len, b->buf, b->len);
    size_t len = all.len + b->len;
    msg_buf_release(&all);
    msg_buf_release(b);
    b->buf = v; /* kept alive by the caller: the wire does not copy it */
    b->len = b->cap = len;
    struct wire *w = wire_new_mem(b->buf, b->len);
    struct msg h;
    char err[256];
    ck_assert_msg(wire_recv(w, &h, err, sizeof(err)) == 0, "%s", err);
    msg_release(&h);
    return w;
}

struct seen {
    struct content_id sent[8];
    size_t nsent, nwanted, nruns;
    char refused[64];
    int fail_at; /* 1-based: the send that fails with -EIO, or 0 */
};

static int record_send(void *arg, const struct content_id *id, uint8_t *buf)
{
    struct seen *s = arg;
    ck_assert_ptr_nonnull(buf);
    if (s->fail_at && (int)s->nsent + 1 == s->fail_at)
        return -EIO;
    ck_assert_uint_lt(s->nsent, 8);
    s->sent[s->nsent++] = *id;
    return 0;
}

static void count_wanted(void *arg, size_t n)
{
    ((struct seen *)arg)->nwanted += n;
}

static void note_refused(void *arg, const char *path)
{
    struct seen *s = arg;
    snprintf(s->refused, sizeof(s->refused), "%s", path);
}

static void count_run(void *arg)
{
    ((struct seen *)arg)->nruns++;
}

static struct content_id id_of(int k)
{
    struct content_id id;
    content_id_of_chunk(&k, sizeof(k), &id);
    return id;
}

/* Serve COMMIT seq against the recorded replies in b; *q is left for the
 * caller to look at (and destroy). */
static int serve(struct msg_buf *b, uint64_t seq, struct seen *s, struct chunk_wants *q, char *err,
                 size_t errsize)
{
    struct wire *w = far_side(b);
    *q = (struct chunk_wants){.w = w, .wanted = count_wanted, .refused = note_refused, .arg = s};
    chunk_wants_init(q);
    err[0] = '\0';
    int r = chunk_wants_serve(q, seq, record_send, count_run, err, errsize);
    wire_free(w);
    msg_buf_release(b);
    return r;
}

START_TEST(wants_are_answered_in_order_until_the_ack)
{
    struct content_id ids[3] = {id_of(1), id_of(2), id_of(3)};
    struct msg_buf b = {0};
    put(&b, &(struct msg){.type = MSG_WANT, .want = {.ids = ids, .n = 2}});
    /* One path refused: the batch goes on. */
    put(&b, &(struct msg){.type = MSG_ERROR,
                          .error = {.code = EPERM, .path = "skipped/file", .message = "rules"}});
    put(&b, &(struct msg){.type = MSG_WANT, .want = {.ids = ids + 2, .n = 1}});
    struct content_id root = id_of(9);
    put(&b, &(struct msg){.type = MSG_ACK, .ack = {.seq = 7, .root = root}});
    struct seen s = {0};
    struct chunk_wants q;
    char err[1024];
    int r = serve(&b, 7, &s, &q, err, sizeof(err));
    ck_assert_msg(r == 0, "%d %s", r, err);
    ck_assert_uint_eq(s.nsent, 3);
    for (size_t i = 0; i < 3; i++)
        ck_assert(content_id_eq(&s.sent[i], &ids[i]));
    ck_assert_uint_eq(s.nwanted, 3);
    ck_assert_uint_ge(s.nruns, 1);
    ck_assert_str_eq(s.refused, "skipped/file");
    ck_assert(q.acked);
    ck_assert(content_id_eq(&q.ack.root, &root));
    chunk_wants_destroy(&q);
}
END_TEST

START_TEST(an_ack_of_another_commit_is_refused)
{
    struct msg_buf b = {0};
    put(&b, &(struct msg){.type = MSG_ACK, .ack = {.seq = 6}});
    struct seen s = {0};
    struct chunk_wants q;
    char err[1024];
    ck_assert_int_eq(serve(&b, 7, &s, &q, err, sizeof(err)), -EPROTO);
    ck_assert_msg(strstr(err, "unexpected ACK after COMMIT 7"), "%s", err);
    chunk_wants_destroy(&q);
}
END_TEST

START_TEST(a_fatal_error_ends_the_batch_with_its_code)
{
    struct content_id ids[1] = {id_of(1)};
    struct msg_buf b = {0};
    put(&b, &(struct msg){.type = MSG_WANT, .want = {.ids = ids, .n = 1}});
    put(&b, &(struct msg){.type = MSG_ERROR,
                          .error = {.code = ENOSPC,
                                    .flags = MSG_ERROR_FATAL,
                                    .path = "f",
                                    .message = "disk full"}});
    struct seen s = {0};
    struct chunk_wants q;
    char err[1024];
    ck_assert_int_eq(serve(&b, 1, &s, &q, err, sizeof(err)), -ENOSPC);
    ck_assert_msg(strstr(err, "the far side failed: disk full"), "%s", err);
    ck_assert_str_eq(s.refused, ""); /* fatal, though it names a path */
    chunk_wants_destroy(&q);
}
END_TEST

START_TEST(without_a_refused_callback_every_error_is_fatal)
{
    struct msg_buf b = {0};
    put(&b, &(struct msg){.type = MSG_ERROR,
                          .error = {.code = EPERM, .path = "p", .message = "rules"}});
    struct wire *w = far_side(&b);
    struct chunk_wants q = {.w = w};
    chunk_wants_init(&q);
    char err[1024];
    struct seen s = {0};
    q.arg = &s;
    ck_assert_int_eq(chunk_wants_serve(&q, 1, record_send, NULL, err, sizeof(err)), -EPERM);
    ck_assert_msg(strstr(err, "the far side failed: rules"), "%s", err);
    chunk_wants_destroy(&q);
    wire_free(w);
    msg_buf_release(&b);
}
END_TEST

START_TEST(a_failed_send_stops_the_reader)
{
    /* No ACK ever comes: the reader must be stopped, not waited for. */
    struct content_id ids[2] = {id_of(1), id_of(2)};
    struct msg_buf b = {0};
    put(&b, &(struct msg){.type = MSG_WANT, .want = {.ids = ids, .n = 2}});
    struct seen s = {.fail_at = 2};
    struct chunk_wants q;
    char err[1024];
    ck_assert_int_eq(serve(&b, 1, &s, &q, err, sizeof(err)), -EIO);
    ck_assert_uint_eq(s.nsent, 1);
    chunk_wants_destroy(&q);
}
END_TEST

START_TEST(a_stream_that_ends_fails_the_batch)
{
    struct msg_buf b = {0};
    struct seen s = {0};
    struct chunk_wants q;
    char err[1024];
    int r = serve(&b, 1, &s, &q, err, sizeof(err));
    ck_assert_int_lt(r, 0);
    ck_assert_msg(err[0], "no message for %d", r);
    chunk_wants_destroy(&q);
}
END_TEST

/* ---- one chunk from a real indexed tree ---- */

static char root[PATH_MAX], state[PATH_MAX + 16];
static struct index *ix;
static int root_fd = -1;

static void tree_setup(void)
{
    snprintf(root, sizeof(root), "/tmp/wsync-chunk-send-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
    snprintf(state, sizeof(state), "%s/.wsync", root);
    ck_assert_int_eq(mkdir(state, 0700), 0);
    char err[512];
    ck_assert_msg(index_open(-1, state, false, &ix, err, sizeof(err)) == 0, "%s", err);
    root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(root_fd, 0);
}

static void tree_teardown(void)
{
    close(root_fd);
    index_close(ix);
    wm_rm_rf(root);
}

/* Write a file of n bytes filled with c at rel, index the tree, and return
 * the file's first chunk. */
static struct chunk indexed_file(const char *rel, size_t n, char c)
{
    char path[PATH_MAX + 64], *data = malloc(n + 1);
    ck_assert_ptr_nonnull(data);
    memset(data, c, n);
    data[n] = '\0';
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    wm_write(path, data);
    free(data);
    struct indexer *in;
    char err[256];
    ck_assert_msg(indexer_new(root, ix, &in, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(indexer_scan(in, NULL), 0);
    indexer_free(in);
    struct chunk *v = NULL;
    size_t nv = 0;
    ck_assert_int_eq(index_get_chunks(ix, rel, &v, &nv), 0);
    ck_assert_uint_ge(nv, 1);
    struct chunk first = v[0];
    free(v);
    return first;
}

static uint64_t bytes_out(struct wire *w)
{
    char err[256];
    ck_assert_msg(wire_flush(w, err, sizeof(err)) == 0, "%s", err);
    struct wire_stats ws;
    wire_get_stats(w, &ws);
    return ws.bytes_out;
}

START_TEST(a_chunk_goes_as_data)
{
    struct chunk c = indexed_file("f", 40000, 'a');
    struct wire *w = wire_new_mem("", 0);
    uint8_t *buf = malloc(CHUNKER_MAX_SIZE);
    struct chunk_source src = {.ix = ix, .root_fd = root_fd, .name = root, .doing = "push"};
    uint32_t len = 0;
    char err[512] = "";
    uint64_t before = bytes_out(w);
    ck_assert_msg(chunk_send_data(w, &src, &c.id, buf, &len, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(len, c.len);
    ck_assert_uint_gt(bytes_out(w), before);
    free(buf);
    wire_free(w);
}
END_TEST

START_TEST(a_changed_file_sends_nothing_and_says_so)
{
    struct chunk c = indexed_file("f", 20000, 'a');
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/f", root);
    int fd = open(path, O_WRONLY);
    ck_assert_int_eq(pwrite(fd, "b", 1, 100), 1); /* same size, other bytes */
    close(fd);
    struct wire *w = wire_new_mem("", 0);
    uint8_t *buf = malloc(CHUNKER_MAX_SIZE);
    struct chunk_source src = {.ix = ix, .root_fd = root_fd, .doing = "sync"};
    uint32_t len;
    char err[512] = "";
    uint64_t before = bytes_out(w);
    ck_assert_int_eq(chunk_send_data(w, &src, &c.id, buf, &len, err, sizeof(err)), -EAGAIN);
    ck_assert_str_eq(err, "f changed during the sync; run it again");
    ck_assert_uint_eq(bytes_out(w), before);
    /* Gone altogether: the same. */
    ck_assert_int_eq(unlink(path), 0);
    src.name = root;
    ck_assert_int_eq(chunk_send_data(w, &src, &c.id, buf, &len, err, sizeof(err)), -EAGAIN);
    ck_assert_msg(strstr(err, "/f changed during the sync") && strstr(err, root), "%s", err);
    ck_assert_uint_eq(bytes_out(w), before);
    free(buf);
    wire_free(w);
}
END_TEST

START_TEST(an_unknown_chunk_is_an_error)
{
    indexed_file("f", 100, 'a');
    struct content_id id = id_of(42);
    struct wire *w = wire_new_mem("", 0);
    uint8_t *buf = malloc(CHUNKER_MAX_SIZE);
    struct chunk_source src = {.ix = ix, .root_fd = root_fd, .doing = "sync"};
    uint32_t len;
    char err[512] = "";
    ck_assert_int_ne(chunk_send_data(w, &src, &id, buf, &len, err, sizeof(err)), 0);
    ck_assert_str_eq(err, "a chunk the far side wants is no longer here");
    free(buf);
    wire_free(w);
}
END_TEST

/* A small file is read whole; one that grew or shrank since it was
 * indexed, or is a symlink now, is not sent as if it were the row. */
START_TEST(a_small_file_is_read_only_at_its_indexed_size)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/s", root);
    wm_write(path, "12345");
    uint8_t buf[8];
    ck_assert_int_eq(chunk_send_read_small(root_fd, "s", buf, 5), 0);
    ck_assert_int_eq(memcmp(buf, "12345", 5), 0);
    ck_assert_int_eq(chunk_send_read_small(root_fd, "s", buf, 4), -EAGAIN); /* grew */
    ck_assert_int_eq(chunk_send_read_small(root_fd, "s", buf, 6), -EAGAIN); /* shrank */
    ck_assert_int_eq(chunk_send_read_small(root_fd, "gone", buf, 5), -ENOENT);
    char link[PATH_MAX + 8];
    snprintf(link, sizeof(link), "%s/l", root);
    ck_assert_int_eq(symlink("s", link), 0);
    ck_assert_int_eq(chunk_send_read_small(root_fd, "l", buf, 5), -ELOOP);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("chunk_send");
    TCase *reader = tcase_create("reader");
    tcase_add_test(reader, wants_are_answered_in_order_until_the_ack);
    tcase_add_test(reader, an_ack_of_another_commit_is_refused);
    tcase_add_test(reader, a_fatal_error_ends_the_batch_with_its_code);
    tcase_add_test(reader, without_a_refused_callback_every_error_is_fatal);
    tcase_add_test(reader, a_failed_send_stops_the_reader);
    tcase_add_test(reader, a_stream_that_ends_fails_the_batch);
    suite_add_tcase(s, reader);
    TCase *tree = tcase_create("tree");
    tcase_add_checked_fixture(tree, tree_setup, tree_teardown);
    tcase_add_test(tree, a_chunk_goes_as_data);
    tcase_add_test(tree, a_changed_file_sends_nothing_and_says_so);
    tcase_add_test(tree, an_unknown_chunk_is_an_error);
    tcase_add_test(tree, a_small_file_is_read_only_at_its_indexed_size);
    suite_add_tcase(s, tree);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
