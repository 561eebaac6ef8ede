/*
 * test_serve_hostile.c — a hostile or broken sender against a real
 * `wsync serve --stdio ROOT`: paths that escape, the state dir, a frame cut
 * short, another protocol version.  Each must end the session with a clear
 * error, write nothing outside ROOT, and leave what ROOT held intact.
 *
 * Bad messages are made by encoding a valid one with a placeholder of the
 * same length and patching the placeholder in the encoded bytes: the
 * encoder refuses to produce them, which is the point.
 */
#include "sync/message.h"
#include "tests/lib/harness.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct wmount m; /* src/ is ROOT; root/ holds the "outside" */

static void setup(void)
{
    wm_prepare(&m);
    char keep[PATH_MAX + 16];
    snprintf(keep, sizeof(keep), "%s/keep", m.src);
    wm_write(keep, "precious");
}

static void teardown(void)
{
    wm_teardown(&m);
}

static void encode(const struct msg *msg, struct msg_buf *b)
{
    char err[256];
    ck_assert_msg(msg_encode(msg, b, err, sizeof(err)) >= 0, "encode: %s", err);
}

/* Replace the first occurrence of `from` in b by `to` (same length). */
static void patch(struct msg_buf *b, const char *from, const char *to)
{
    size_t n = strlen(from);
    ck_assert_uint_eq(n, strlen(to));
    unsigned char *p = memmem(b->buf, b->len, from, n);
    ck_assert_msg(p, "placeholder '%s' not in the encoding", from);
    memcpy(p, to, n);
}

/* Feed bytes to `wsync serve`; returns its exit status and stderr text. */
static int feed(const struct msg_buf *b, size_t len, char **stderr_text)
{
    char in_path[PATH_MAX + 16], err_path[PATH_MAX + 16];
    snprintf(in_path, sizeof(in_path), "%s/input", m.root);
    snprintf(err_path, sizeof(err_path), "%s/stderr", m.root);
    int fd = open(in_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_eq(write(fd, b->buf, len), (ssize_t)len);
    close(fd);
    int st = wm_sh("'%s' serve --stdio '%s' < '%s' > /dev/null 2> '%s'", wm_bin(), m.src,
                   in_path, err_path);
    *stderr_text = wm_read(err_path, NULL);
    return st;
}

static void hello(struct msg_buf *b)
{
    struct msg h = {.type = MSG_HELLO, .hello = {.role = MSG_ROLE_SENDER}};
    encode(&h, b);
}

static void update_inline(struct msg_buf *b, const char *path, const char *data)
{
    struct msg u = {.type = MSG_UPDATE,
                    .update = {.path = path, .type = S_IFREG, .mode = 0644,
                               .size = strlen(data), .inline_data = true,
                               .data = (const uint8_t *)data}};
    encode(&u, b);
}

static void commit(struct msg_buf *b)
{
    struct msg c = {.type = MSG_COMMIT, .commit = {.seq = 1}};
    encode(&c, b);
}

static void assert_untouched(void)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/keep", m.src);
    char *k = wm_read(p, NULL);
    ck_assert_msg(k && strcmp(k, "precious") == 0, "ROOT's file was changed");
    free(k);
    const char *outside[] = {"escaped", "abs", "mnt/escaped"};
    for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", m.root, outside[i]);
        ck_assert_msg(access(p, F_OK) != 0, "%s was written outside ROOT", outside[i]);
    }
    ck_assert_msg(access("/escaped", F_OK) != 0, "/escaped was written");
}

START_TEST(paths_that_escape_are_refused)
{
    /* placeholder, bad path (same length), what the error must mention */
    const char *cases[][3] = {
        {"xx/escaped", "../escaped", "'..'"},
        {"xescaped", "/escaped", "absolute"},
        {"Xwsync/index.db", ".wsync/index.db", ".wsync"},
        {"a/xx/escaped", "a/../escaped", "'..'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct msg_buf b = {0};
        hello(&b);
        update_inline(&b, cases[i][0], "pwned");
        commit(&b);
        patch(&b, cases[i][0], cases[i][1]);
        char *err;
        int st = feed(&b, b.len, &err);
        ck_assert_msg(st != 0, "serve accepted '%s'", cases[i][1]);
        ck_assert_msg(err && strstr(err, cases[i][2]), "error for '%s' lacks '%s': %s",
                      cases[i][1], cases[i][2], err ? err : "(none)");
        free(err);
        msg_buf_release(&b);
        assert_untouched();
    }
}
END_TEST

START_TEST(a_cut_stream_leaves_nothing_half_written)
{
    struct msg_buf b = {0};
    hello(&b);
    update_inline(&b, "keep", "replaced!");
    commit(&b);
    /* Every prefix of the stream: never a torn or partial "keep". */
    for (size_t cut = 1; cut < b.len; cut += 7) {
        char *err;
        feed(&b, cut, &err);
        free(err);
        char p[PATH_MAX + 16];
        snprintf(p, sizeof(p), "%s/keep", m.src);
        char *k = wm_read(p, NULL);
        ck_assert_msg(k && (strcmp(k, "precious") == 0 || strcmp(k, "replaced!") == 0),
                      "cut at %zu left '%s'", cut, k ? k : "(nothing)");
        free(k);
    }
    msg_buf_release(&b);
}
END_TEST

/* LIST names directories to read, not to write: one outside ROOT is
 * refused by the decoder; one that is a symlink in ROOT lists nothing (it
 * is never followed). */
START_TEST(a_list_cannot_look_outside_root)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/ln", m.src);
    ck_assert_int_eq(symlink("/etc", p), 0);
    struct msg_buf b = {0};
    hello(&b);
    const char *dirs[] = {"xx/escaped"};
    struct msg l = {.type = MSG_LIST, .list = {.dirs = dirs, .n = 1}};
    encode(&l, &b);
    patch(&b, "xx/escaped", "../escaped");
    char *err;
    int st = feed(&b, b.len, &err);
    ck_assert_int_ne(st, 0);
    ck_assert_msg(err && strstr(err, "'..'"), "error: %s", err ? err : "(none)");
    free(err);
    msg_buf_release(&b);

    hello(&b);
    dirs[0] = "ln";
    encode(&l, &b);
    char in_path[PATH_MAX + 16], out_path[PATH_MAX + 16];
    snprintf(in_path, sizeof(in_path), "%s/input", m.root);
    snprintf(out_path, sizeof(out_path), "%s/output", m.root);
    int fd = open(in_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_eq(write(fd, b.buf, b.len), (ssize_t)b.len);
    close(fd);
    st = wm_sh("'%s' serve --stdio '%s' < '%s' > '%s' 2>/dev/null", wm_bin(), m.src, in_path,
               out_path);
    ck_assert_int_eq(st, 0);
    size_t n;
    char *out = wm_read(out_path, &n);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(!memmem(out, n, "passwd", 6), "LIST followed the symlink out of ROOT");
    ck_assert_ptr_nonnull(memmem(out, n, "keep", 4)); /* ROOT's own listing is there */
    free(out);
    msg_buf_release(&b);
    assert_untouched();
}
END_TEST

/* A grouped chunk list whose GROUP contradicts what its UPDATE declared
 * (the group id checks the chunks, not the count the UPDATE claimed), and
 * a GROUP nobody asked for: each ends the session, nothing is written. */
START_TEST(groups_that_lie_are_refused)
{
    struct chunk c[4];
    for (int i = 0; i < 4; i++)
        c[i] = (struct chunk){.len = CHUNKER_MIN_SIZE, .id = {{(uint8_t)(i + 1), 7}}};
    struct chunk_group g[2];
    chunk_group_id(c, 2, &g[0].id); /* really 2 chunks of 16 KiB */
    g[0].count = 1;
    g[0].bytes = 2 * CHUNKER_MIN_SIZE;
    chunk_group_id(c + 2, 2, &g[1].id);
    g[1].count = 3;
    g[1].bytes = 3 * CHUNKER_MIN_SIZE;
    struct msg_buf b = {0};
    hello(&b);
    struct msg u = {.type = MSG_UPDATE,
                    .update = {.path = "keep", .type = S_IFREG, .mode = 0644,
                               .size = 5 * CHUNKER_MIN_SIZE, .groups = g, .ngroups = 2}};
    encode(&u, &b);
    commit(&b);
    struct msg grp = {.type = MSG_GROUP, .group = {.id = g[0].id, .chunks = c, .n = 2}};
    encode(&grp, &b);
    char *err;
    int st = feed(&b, b.len, &err);
    ck_assert_int_ne(st, 0);
    ck_assert_msg(err && strstr(err, "were declared"), "error: %s", err ? err : "(none)");
    free(err);
    msg_buf_release(&b);
    assert_untouched();

    hello(&b);
    commit(&b);
    encode(&grp, &b);
    st = feed(&b, b.len, &err);
    ck_assert_int_ne(st, 0);
    ck_assert_msg(err && strstr(err, "unexpected GROUP"), "error: %s", err ? err : "(none)");
    free(err);
    msg_buf_release(&b);
    assert_untouched();
}
END_TEST

START_TEST(another_protocol_version_is_named)
{
    struct msg_buf b = {0};
    hello(&b);
    /* The u16 version follows the magic. */
    unsigned char *v = memmem(b.buf, b.len, "WSYNC", 5);
    ck_assert_ptr_nonnull(v);
    v[5] = 99;
    v[6] = 0;
    char *err;
    int st = feed(&b, b.len, &err);
    ck_assert_int_ne(st, 0);
    ck_assert_msg(err && strstr(err, "99") && strstr(err, "1"), "version error: %s", err);
    free(err);
    msg_buf_release(&b);
    /* Not a wsync peer at all (a login banner). */
    struct msg_buf junk = {.buf = (uint8_t *)"Welcome to robot1!\n", .len = 19};
    st = feed(&junk, junk.len, &err);
    ck_assert_int_ne(st, 0);
    ck_assert_msg(err && *err, "no error for a banner");
    free(err);
    assert_untouched();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("serve_hostile");
    TCase *tc = tcase_create("hostile");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, paths_that_escape_are_refused);
    tcase_add_test(tc, a_cut_stream_leaves_nothing_half_written);
    tcase_add_test(tc, another_protocol_version_is_named);
    tcase_add_test(tc, a_list_cannot_look_outside_root);
    tcase_add_test(tc, groups_that_lie_are_refused);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
