/*
 * test_wire.c — the protocol codec and framing: every message round-trips,
 * every limit is enforced to the byte, truncated and random streams fail
 * cleanly (never crash, never hang), DATA is verified, paths are checked.
 * Raw frames for the refusals are built by hand below, not by the encoder,
 * which refuses to produce them.
 */
#include "sync/message.h"
#include "sync/wire.h"

#include "tests/lib/harness.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define KiB 1024u

/* ---- helpers ----------------------------------------------------------- */

static uint64_t rng_state = 0x5eed;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void fill_random(void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ((uint8_t *)p)[i] = (uint8_t)rnd();
}

static struct content_id id_of(const void *p, size_t n)
{
    struct content_id id;
    content_id_of_chunk(p, n, &id);
    return id;
}

static struct content_id some_id(uint8_t seed)
{
    struct content_id id;
    memset(id.b, seed, sizeof(id.b));
    return id;
}

static void buf_add(struct msg_buf *b, const void *p, size_t n)
{
    if (b->cap - b->len < n) {
        b->cap = (b->len + n) * 2 + 64;
        b->buf = realloc(b->buf, b->cap);
        ck_assert_ptr_nonnull(b->buf);
    }
    if (n)
        memcpy(b->buf + b->len, p, n);
    b->len += n;
}

static void raw_le(struct msg_buf *b, uint64_t v, int n)
{
    uint8_t x[8];
    for (int i = 0; i < n; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    buf_add(b, x, (size_t)n);
}

static void raw_str(struct msg_buf *b, const void *s, size_t n)
{
    raw_le(b, n, 4);
    buf_add(b, s, n);
}

static void raw_id(struct msg_buf *b, struct content_id id)
{
    buf_add(b, id.b, sizeof(id.b));
}

static size_t raw_begin(struct msg_buf *b, uint8_t type)
{
    size_t start = b->len;
    raw_le(b, 0, 4);
    raw_le(b, type, 1);
    return start;
}

static void raw_end(struct msg_buf *b, size_t start)
{
    uint64_t len = b->len - start - 4;
    for (int i = 0; i < 4; i++)
        b->buf[start + (size_t)i] = (uint8_t)(len >> (8 * i));
}

static void encode_ok(struct msg_buf *b, const struct msg *m)
{
    char err[512] = "";
    int r = msg_encode(m, b, err, sizeof(err));
    ck_assert_msg(r >= 0, "encode %s: %s", msg_type_name(m->type), err);
}

static void add_hello(struct msg_buf *b)
{
    struct msg m = {.type = MSG_HELLO, .hello = {.role = MSG_ROLE_SENDER}};
    encode_ok(b, &m);
}

/* Decode HELLO + frames; returns wire_recv's result for the message after
 * the HELLO.  *m owns its memory on success. */
static int decode_after_hello(const struct msg_buf *frames, struct msg *m, char *err,
                              size_t errsize)
{
    struct msg_buf all = {0};
    add_hello(&all);
    buf_add(&all, frames->buf, frames->len);
    struct wire *w = wire_new_mem(all.buf, all.len);
    struct msg h;
    ck_assert_int_eq(wire_recv(w, &h, err, errsize), 0);
    msg_release(&h);
    err[0] = 0;
    int r = wire_recv(w, m, err, errsize);
    wire_free(w);
    msg_buf_release(&all);
    return r;
}

/* Expect frames to be refused with code, and err to contain needle. */
static void refused(struct msg_buf *frames, int code, const char *needle)
{
    char err[1024];
    struct msg m;
    int r = decode_after_hello(frames, &m, err, sizeof(err));
    ck_assert_msg(r == code, "expected %d (%s), got %d: %s", code, needle, r, err);
    ck_assert_msg(strstr(err, needle), "error '%s' lacks '%s'", err, needle);
    ck_assert_int_eq(m.type, 0); /* left empty */
    frames->len = 0;
}

static void accepted(struct msg_buf *frames)
{
    char err[1024];
    struct msg m;
    int r = decode_after_hello(frames, &m, err, sizeof(err));
    ck_assert_msg(r == 0, "refused: %s", err);
    msg_release(&m);
    frames->len = 0;
}

/* A valid relative path of exactly len bytes (names of 200 bytes). */
static char *path_of_len(size_t len)
{
    char *p = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        p[i] = i % 201 == 200 ? '/' : 'a';
    p[len] = 0;
    ck_assert(p[len - 1] != '/');
    return p;
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = 0;
    return s;
}

/* ---- paths ------------------------------------------------------------- */

START_TEST(path_check_table)
{
    char *name255 = repeat('n', 255), *name256 = repeat('n', 256);
    char *p4096 = path_of_len(4096), *p4097 = path_of_len(4097);
    char deep255[300], deep256[300];
    snprintf(deep255, sizeof(deep255), "d/%s", name255);
    snprintf(deep256, sizeof(deep256), "d/%s", name256);
    const char *good[] = {"a",   "a/b",   "a/b/c",    ".a",      "a.",       "..a",
                          "a..", "...",   ".wsyncx",  "x.wsync", "x/.wsync", "a/.wsync/b",
                          " ",   "a b/c", "\xff\x01", name255,   deep255,    p4096};
    struct {
        const char *path;
        int code;
        const char *why;
    } bad[] = {
        {"", -EINVAL, "empty path"},
        {NULL, -EINVAL, "empty path"},
        {"/", -EINVAL, "absolute"},
        {"/a", -EINVAL, "absolute"},
        {"a/", -EINVAL, "trailing slash"},
        {"a//b", -EINVAL, "empty path component"},
        {".", -EINVAL, "'.' or '..'"},
        {"..", -EINVAL, "'.' or '..'"},
        {"./a", -EINVAL, "'.' or '..'"},
        {"a/.", -EINVAL, "'.' or '..'"},
        {"a/./b", -EINVAL, "'.' or '..'"},
        {"../a", -EINVAL, "'.' or '..'"},
        {"a/../b", -EINVAL, "'.' or '..'"},
        {"a/..", -EINVAL, "'.' or '..'"},
        {".wsync", -EINVAL, "state directory"},
        {".wsync/index.db", -EINVAL, "state directory"},
        {".wsync/staging/1", -EINVAL, "state directory"},
        {name256, -ENAMETOOLONG, "longer than 255"},
        {deep256, -ENAMETOOLONG, "longer than 255"},
        {p4097, -ENAMETOOLONG, "longer than 4096"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(wire_path_check(good[i], err, sizeof(err)) == 0, "refused %.40s: %s", good[i],
                      err);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        int r = wire_path_check(bad[i].path, err, sizeof(err));
        ck_assert_msg(r == bad[i].code, "'%.40s': %d", bad[i].path ? bad[i].path : "NULL", r);
        ck_assert_msg(strstr(err, bad[i].why) && strstr(err, "refused path"), "'%s': %s",
                      bad[i].path ? bad[i].path : "NULL", err);
    }
    ck_assert_int_eq(wire_path_check("a", NULL, 0), 0);
    ck_assert_int_eq(wire_path_check("/a", NULL, 0), -EINVAL); /* no err buffer: fine */
    free(name255), free(name256), free(p4096), free(p4097);
}
END_TEST

/* ---- round trips ------------------------------------------------------- */

static void check_update_eq(const struct msg_update *a, const struct msg_update *b)
{
    ck_assert_str_eq(a->path, b->path);
    ck_assert_uint_eq(a->type, b->type);
    ck_assert_uint_eq(a->mode, b->mode);
    ck_assert_int_eq(a->mtime_ns, b->mtime_ns);
    if (a->type == S_IFLNK)
        ck_assert_str_eq(a->target, b->target);
    if (a->type != S_IFREG)
        return;
    ck_assert_uint_eq(a->size, b->size);
    ck_assert_int_eq(a->inline_data, b->inline_data);
    if (a->inline_data) {
        ck_assert(a->size == 0 || memcmp(a->data, b->data, a->size) == 0);
        struct content_id cid = id_of(a->data, a->size), fid;
        content_id_of_file(&cid, a->size ? 1 : 0, &fid);
        ck_assert(content_id_eq(&b->file_id, &fid));
        return;
    }
    ck_assert_uint_eq(a->nchunks, b->nchunks);
    struct content_id *ids = malloc((a->nchunks + 1) * sizeof(*ids));
    uint64_t off = 0;
    size_t bad = 0; /* plain compares: a check assertion per chunk costs a syscall */
    for (size_t i = 0; i < a->nchunks; i++) {
        bad += a->chunks[i].len != b->chunks[i].len ||
               !content_id_eq(&a->chunks[i].id, &b->chunks[i].id) || b->chunks[i].off != off;
        off += b->chunks[i].len;
        ids[i] = a->chunks[i].id;
    }
    ck_assert_uint_eq(bad, 0);
    struct content_id fid;
    content_id_of_file(ids, a->nchunks, &fid);
    ck_assert(content_id_eq(&b->file_id, &fid));
    free(ids);
}

/* A chunk list of n chunks: 16 KiB each, the last one last_len. */
static struct chunk *make_chunks(size_t n, uint32_t last_len, uint64_t *size)
{
    struct chunk *c = calloc(n, sizeof(*c));
    *size = 0;
    for (size_t i = 0; i < n; i++) {
        c[i].len = i + 1 == n ? last_len : CHUNKER_MIN_SIZE;
        c[i].off = *size;
        *size += c[i].len;
        uint64_t x = rnd();
        memcpy(c[i].id.b, &x, 8);
        memcpy(c[i].id.b + 8, &i, 8);
    }
    return c;
}

START_TEST(every_message_round_trips_through_an_fd)
{
    static uint8_t tiny[4096], random_inline[3000], compressible[100 * KiB], noise[200 * KiB];
    memset(tiny, 'a', sizeof(tiny));
    fill_random(random_inline, sizeof(random_inline));
    for (size_t i = 0; i < sizeof(compressible); i++)
        compressible[i] = (uint8_t)("hello world "[i % 12]);
    fill_random(noise, sizeof(noise));

    struct msg_entry ents[] = {
        {.path = "a", .type = S_IFDIR, .mode = 0755, .mtime_ns = 1, .id = some_id(6)},
        {.path = "a/b",
         .type = S_IFREG,
         .mode = 04755,
         .mtime_ns = -5,
         .size = 99,
         .id = some_id(7)},
        {.path = "a/c", .type = S_IFLNK, .mode = 0777, .mtime_ns = 3, .target = "../x"},
        {.path = "a.x", .type = S_IFDIR, .mode = 0700, .id = some_id(5)}, /* tree order */
        {.path = "ab", .type = S_IFREG, .mode = 0644, .size = 0, .id = some_id(8)},
    };
    const char *list_dirs[] = {"", "a", "a.x/deeper"};
    uint64_t big_size, small_size;
    size_t big_n = 2 * 65536 + 5;
    struct chunk *big = make_chunks(big_n, 1, &big_size);
    struct chunk *small = make_chunks(3, 100, &small_size);
    size_t many_n = 65536 + 3;
    struct content_id *many = malloc(many_n * sizeof(*many));
    for (size_t i = 0; i < many_n; i++)
        many[i] = some_id((uint8_t)i);

    struct msg sent[] = {
        {.type = MSG_HELLO,
         .hello = {.role = MSG_ROLE_SENDER,
                   .flags = MSG_HELLO_DELETE | MSG_HELLO_DRY_RUN,
                   .skip_digest = some_id(1)}},
        {.type = MSG_MANIFEST, .manifest = {.entries = ents, .n = 5}},
        {.type = MSG_LIST, .list = {.dirs = list_dirs, .n = 3}},
        {.type = MSG_MANIFEST_END,
         .manifest_end =
             {.flags = MSG_MANIFEST_ELIDED, .count = 4, .root = some_id(2), .digest = some_id(3)}},
        {.type = MSG_UPDATE, .update = {.path = "d", .type = S_IFDIR, .mode = 0700, .mtime_ns = 7}},
        {.type = MSG_UPDATE,
         .update = {.path = "d/l", .type = S_IFLNK, .mode = 0777, .target = "/etc/passwd"}},
        {.type = MSG_UPDATE,
         .update = {.path = "d/tiny",
                    .type = S_IFREG,
                    .mode = 0644,
                    .size = sizeof(tiny),
                    .inline_data = true,
                    .data = tiny}},
        {.type = MSG_UPDATE,
         .update = {.path = "d/rnd",
                    .type = S_IFREG,
                    .mode = 0600,
                    .size = sizeof(random_inline),
                    .inline_data = true,
                    .data = random_inline}},
        {.type = MSG_UPDATE,
         .update = {.path = "d/empty", .type = S_IFREG, .mode = 0600, .inline_data = true}},
        {.type = MSG_UPDATE, .update = {.path = "d/empty2", .type = S_IFREG, .mode = 0600}},
        {.type = MSG_UPDATE,
         .update = {.path = "d/small",
                    .type = S_IFREG,
                    .mode = 0640,
                    .mtime_ns = 123456789,
                    .size = small_size,
                    .chunks = small,
                    .nchunks = 3}},
        {.type = MSG_UPDATE,
         .update = {.path = "d/big",
                    .type = S_IFREG,
                    .mode = 0640,
                    .size = big_size,
                    .chunks = big,
                    .nchunks = big_n}},
        {.type = MSG_WANT, .want = {.ids = many, .n = 3}},
        {.type = MSG_WANT, .want = {.ids = many, .n = many_n}}, /* two frames: two WANTs */
        {.type = MSG_DATA,
         .data = {.id = id_of(compressible, sizeof(compressible)),
                  .bytes = compressible,
                  .len = sizeof(compressible)}},
        {.type = MSG_DATA,
         .data = {.id = id_of(noise, sizeof(noise)), .bytes = noise, .len = sizeof(noise)}},
        {.type = MSG_DELETE, .del = {.path = "old/dir"}},
        {.type = MSG_RENAME, .rename = {.from = "x/y", .to = "z"}},
        {.type = MSG_LINK, .link = {.path = "h2", .existing = "d/small"}},
        {.type = MSG_COMMIT, .commit = {.seq = 1ull << 40, .flags = MSG_COMMIT_WANT_ROOT}},
        {.type = MSG_ACK, .ack = {.seq = 1ull << 40, .root = some_id(9)}},
        {.type = MSG_ERROR,
         .error = {.code = ENOSPC,
                   .flags = MSG_ERROR_FATAL,
                   .path = "d/big",
                   .message = "no space left"}},
        {.type = MSG_ERROR, .error = {.code = EACCES, .message = "x"}},
        {.type = MSG_RESCAN}, /* live two-way (§12): empty payloads */
        {.type = MSG_WATCH},
        {.type = MSG_CHANGED},
        {.type = MSG_BYE},
    };
    size_t nsent = sizeof(sent) / sizeof(sent[0]);

    int fd = memfd_create("wire", 0);
    ck_assert_int_ge(fd, 0);
    struct wire *out = wire_new(-1, fd);
    char err[512];
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(wire_send(out, &sent[i], err, sizeof(err)), 0);
    struct stat st;
    fstat(fd, &st);
    ck_assert_int_eq(st.st_size, 0); /* buffered: many frames per write */
    for (size_t i = 4; i < nsent; i++)
        ck_assert_msg(wire_send(out, &sent[i], err, sizeof(err)) == 0, "%zu: %s", i, err);
    ck_assert_int_eq(wire_flush(out, err, sizeof(err)), 0);
    ck_assert_uint_eq(wire_pending_out(out), 0);
    struct wire_stats so;
    wire_get_stats(out, &so);
    fstat(fd, &st);
    ck_assert_uint_eq(so.bytes_out, (uint64_t)st.st_size);
    ck_assert_uint_eq(so.msgs_out, nsent);
    ck_assert_uint_eq(so.frames_out, nsent + 2 /* CHUNKS */ + 1 /* 2nd WANT */);
    wire_free(out);

    lseek(fd, 0, SEEK_SET);
    struct wire *in = wire_new(fd, -1);
    struct msg m;
    for (size_t i = 0; i < nsent; i++) {
        const struct msg *s = &sent[i];
        ck_assert_msg(wire_recv(in, &m, err, sizeof(err)) == 0, "%zu: %s", i, err);
        ck_assert_int_eq(m.type, s->type);
        switch (s->type) {
        case MSG_HELLO:
            ck_assert_uint_eq(m.hello.version, WIRE_PROTOCOL_VERSION);
            ck_assert_str_eq(m.hello.tool_version, WSYNC_VERSION);
            ck_assert_uint_eq(m.hello.role, s->hello.role);
            ck_assert_uint_eq(m.hello.flags, s->hello.flags);
            ck_assert(content_id_eq(&m.hello.skip_digest, &s->hello.skip_digest));
            break;
        case MSG_MANIFEST:
            ck_assert_uint_eq(m.manifest.n, s->manifest.n);
            for (size_t j = 0; j < m.manifest.n; j++) {
                const struct msg_entry *a = &s->manifest.entries[j], *b = &m.manifest.entries[j];
                ck_assert_str_eq(a->path, b->path);
                ck_assert_uint_eq(a->type, b->type);
                ck_assert_uint_eq(a->mode, b->mode);
                ck_assert_int_eq(a->mtime_ns, b->mtime_ns);
                if (a->type == S_IFREG) {
                    ck_assert_uint_eq(a->size, b->size);
                    ck_assert(content_id_eq(&a->id, &b->id));
                }
                if (a->type == S_IFLNK)
                    ck_assert_str_eq(a->target, b->target);
                if (a->type == S_IFDIR)
                    ck_assert(content_id_eq(&a->id, &b->id)); /* the subtree digest */
            }
            break;
        case MSG_LIST:
            ck_assert_uint_eq(m.list.n, s->list.n);
            for (size_t j = 0; j < m.list.n; j++)
                ck_assert_str_eq(m.list.dirs[j], s->list.dirs[j]);
            break;
        case MSG_MANIFEST_END:
            ck_assert_uint_eq(m.manifest_end.flags, s->manifest_end.flags);
            ck_assert_uint_eq(m.manifest_end.count, s->manifest_end.count);
            ck_assert(content_id_eq(&m.manifest_end.root, &s->manifest_end.root));
            ck_assert(content_id_eq(&m.manifest_end.digest, &s->manifest_end.digest));
            break;
        case MSG_UPDATE:
            check_update_eq(&s->update, &m.update);
            break;
        case MSG_WANT: {
            size_t n = s->want.n < 65536 ? s->want.n : 65536;
            ck_assert_uint_eq(m.want.n, n);
            ck_assert(memcmp(m.want.ids, s->want.ids, n * CONTENT_ID_SIZE) == 0);
            if (s->want.n > n) {
                msg_release(&m);
                ck_assert_int_eq(wire_recv(in, &m, err, sizeof(err)), 0);
                ck_assert_uint_eq(m.want.n, s->want.n - n);
                ck_assert(content_id_eq(&m.want.ids[0], &s->want.ids[n]));
            }
            break;
        }
        case MSG_DATA:
            ck_assert(content_id_eq(&m.data.id, &s->data.id));
            ck_assert_uint_eq(m.data.len, s->data.len);
            ck_assert(memcmp(m.data.bytes, s->data.bytes, s->data.len) == 0);
            if (s->data.bytes == compressible) {
                ck_assert_uint_eq(m.data.encoding, MSG_ENC_LZ4);
                ck_assert_uint_lt(m.data.wire_len, s->data.len / 10);
            } else {
                ck_assert_uint_eq(m.data.encoding, MSG_ENC_RAW); /* lz4 would not shrink it */
                ck_assert_uint_eq(m.data.wire_len, s->data.len);
            }
            break;
        case MSG_DELETE:
            ck_assert_str_eq(m.del.path, s->del.path);
            break;
        case MSG_RENAME:
            ck_assert_str_eq(m.rename.from, s->rename.from);
            ck_assert_str_eq(m.rename.to, s->rename.to);
            break;
        case MSG_LINK:
            ck_assert_str_eq(m.link.path, s->link.path);
            ck_assert_str_eq(m.link.existing, s->link.existing);
            break;
        case MSG_COMMIT:
            ck_assert_uint_eq(m.commit.seq, s->commit.seq);
            ck_assert_uint_eq(m.commit.flags, s->commit.flags);
            break;
        case MSG_ACK:
            ck_assert_uint_eq(m.ack.seq, s->ack.seq);
            ck_assert(content_id_eq(&m.ack.root, &s->ack.root));
            break;
        case MSG_ERROR:
            ck_assert_uint_eq(m.error.code, s->error.code);
            ck_assert_uint_eq(m.error.flags, s->error.flags);
            ck_assert_str_eq(m.error.path, s->error.path ? s->error.path : "");
            ck_assert_str_eq(m.error.message, s->error.message);
            break;
        default:
            break;
        }
        msg_release(&m);
    }
    ck_assert_int_eq(wire_recv(in, &m, err, sizeof(err)), -ENODATA);
    struct wire_stats si;
    wire_get_stats(in, &si);
    ck_assert_uint_eq(si.bytes_in, so.bytes_out);
    ck_assert_uint_eq(si.frames_in, so.frames_out);
    ck_assert_uint_eq(si.msgs_in, so.msgs_out + 1); /* the 2nd WANT */
    wire_free(in);
    close(fd);
    free(big), free(small), free(many);
}
END_TEST

START_TEST(long_manifest_splits_into_frames_and_digests_agree)
{
    size_t n = 40000;
    struct msg_entry *e = calloc(n, sizeof(*e));
    char **paths = calloc(n, sizeof(*paths));
    for (size_t i = 0; i < n; i++) {
        paths[i] = malloc(80);
        snprintf(paths[i], 80, "src/some/rather/long/directory/name/%08zu/file.c", i);
        e[i] = (struct msg_entry){.path = paths[i],
                                  .type = S_IFREG,
                                  .mode = 0644,
                                  .mtime_ns = 1700000000000000000 + (int64_t)i,
                                  .size = i,
                                  .id = some_id((uint8_t)i)};
    }
    struct msg_buf b = {0};
    add_hello(&b);
    size_t after_hello = b.len;
    struct msg m = {.type = MSG_MANIFEST, .manifest = {.entries = e, .n = n}};
    char err[512];
    int frames = msg_encode(&m, &b, err, sizeof(err));
    ck_assert_int_gt(frames, 1);
    ck_assert_uint_lt(b.len - after_hello, n * 20); /* shared prefixes and lz4 pay off */

    struct content_hasher h_sent, h_got;
    content_hasher_init(&h_sent);
    content_hasher_init(&h_got);
    for (size_t i = 0; i < n; i++)
        msg_manifest_digest_add(&h_sent, &e[i]);

    struct wire *w = wire_new_mem(b.buf, b.len);
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), 0);
    msg_release(&m);
    size_t got = 0;
    for (int f = 0; f < frames; f++) {
        ck_assert_msg(wire_recv(w, &m, err, sizeof(err)) == 0, "%s", err);
        ck_assert_int_eq(m.type, MSG_MANIFEST);
        size_t bad = 0;
        for (size_t j = 0; j < m.manifest.n; j++, got++) {
            bad += strcmp(m.manifest.entries[j].path, paths[got]) != 0;
            msg_manifest_digest_add(&h_got, &m.manifest.entries[j]);
        }
        ck_assert_uint_eq(bad, 0);
        msg_release(&m);
    }
    ck_assert_uint_eq(got, n);
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), -ENODATA);
    struct content_id d1, d2, d3;
    content_hasher_final(&h_sent, &d1);
    content_hasher_final(&h_got, &d2);
    ck_assert(content_id_eq(&d1, &d2));
    /* An mtime alone changes the digest. */
    e[17].mtime_ns++;
    content_hasher_init(&h_sent);
    for (size_t i = 0; i < n; i++)
        msg_manifest_digest_add(&h_sent, &e[i]);
    content_hasher_final(&h_sent, &d3);
    ck_assert(!content_id_eq(&d1, &d3));

    /* Out of order is refused by the encoder, and nothing is appended. */
    size_t len = b.len;
    struct msg_entry swapped[2] = {e[1], e[0]};
    m = (struct msg){.type = MSG_MANIFEST, .manifest = {.entries = swapped, .n = 2}};
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), -EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "out of order"));
    ck_assert_uint_eq(b.len, len);
    wire_free(w);
    msg_buf_release(&b);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths), free(e);
}
END_TEST

/* ---- limits, each by one byte ------------------------------------------ */

static void raw_delete(struct msg_buf *b, const char *path, size_t len)
{
    size_t f = raw_begin(b, MSG_DELETE);
    raw_str(b, path, len);
    raw_end(b, f);
}

static void raw_update_head(struct msg_buf *b, const char *path, uint8_t ft, uint32_t mode)
{
    raw_str(b, path, strlen(path));
    raw_le(b, ft, 1);
    raw_le(b, mode, 4);
    raw_le(b, 0, 8);
}

static void raw_symlink(struct msg_buf *b, size_t target_len)
{
    char *t = repeat('t', target_len);
    size_t f = raw_begin(b, MSG_UPDATE);
    raw_update_head(b, "l", 3, 0777);
    raw_str(b, t, target_len);
    raw_end(b, f);
    free(t);
}

static void raw_hello(struct msg_buf *b, uint16_t version, size_t tool_len, uint32_t flags)
{
    char *t = repeat('v', tool_len);
    size_t f = raw_begin(b, MSG_HELLO);
    buf_add(b, "WSYNC", 5);
    raw_le(b, version, 2);
    raw_str(b, t, tool_len);
    raw_le(b, MSG_ROLE_RECEIVER, 1);
    raw_le(b, flags, 4);
    raw_id(b, some_id(0));
    raw_end(b, f);
    free(t);
}

static void raw_error(struct msg_buf *b, size_t path_len, size_t text_len)
{
    char *p = repeat('p', path_len), *t = repeat('t', text_len);
    size_t f = raw_begin(b, MSG_ERROR);
    raw_le(b, EIO, 4);
    raw_le(b, 0, 4);
    raw_str(b, p, path_len);
    raw_str(b, t, text_len);
    raw_end(b, f);
    free(p), free(t);
}

static void raw_inline(struct msg_buf *b, size_t size, uint8_t enc, const void *bytes,
                       size_t wire_len)
{
    size_t f = raw_begin(b, MSG_UPDATE);
    raw_update_head(b, "f", 1, 0644);
    raw_le(b, size, 8);
    raw_le(b, enc, 1);
    raw_str(b, bytes, wire_len);
    raw_end(b, f);
}

static void raw_data(struct msg_buf *b, struct content_id id, uint32_t len, uint8_t enc,
                     const void *bytes, size_t wire_len)
{
    size_t f = raw_begin(b, MSG_DATA);
    raw_id(b, id);
    raw_le(b, len, 4);
    raw_le(b, enc, 1);
    raw_str(b, bytes, wire_len);
    raw_end(b, f);
}

/* An UPDATE with a chunk list: lens[0..n), claiming total chunks and size. */
static void raw_chunked(struct msg_buf *b, uint64_t size, uint32_t total, const uint32_t *lens,
                        uint32_t n)
{
    size_t f = raw_begin(b, MSG_UPDATE);
    raw_update_head(b, "f", 1, 0644);
    raw_le(b, size, 8);
    raw_le(b, 0, 1);
    raw_le(b, total, 4);
    raw_le(b, n, 4);
    for (uint32_t i = 0; i < n; i++) {
        raw_le(b, lens[i], 4);
        raw_id(b, some_id((uint8_t)i));
    }
    raw_end(b, f);
}

START_TEST(each_limit_is_enforced_to_the_byte)
{
    struct msg_buf b = {0};
    char *p;

    p = path_of_len(WIRE_MAX_PATH);
    raw_delete(&b, p, WIRE_MAX_PATH);
    accepted(&b);
    free(p);
    p = path_of_len(WIRE_MAX_PATH + 1);
    raw_delete(&b, p, WIRE_MAX_PATH + 1);
    refused(&b, -ENAMETOOLONG, "path is 4097 bytes, over the limit of 4096");
    free(p);

    p = repeat('n', WIRE_MAX_NAME);
    raw_delete(&b, p, WIRE_MAX_NAME);
    accepted(&b);
    free(p);
    p = repeat('n', WIRE_MAX_NAME + 1);
    raw_delete(&b, p, WIRE_MAX_NAME + 1);
    refused(&b, -ENAMETOOLONG, "longer than 255");
    free(p);

    raw_symlink(&b, WIRE_MAX_TARGET);
    accepted(&b);
    raw_symlink(&b, WIRE_MAX_TARGET + 1);
    refused(&b, -EMSGSIZE, "4097 bytes, over the limit of 4096");
    raw_symlink(&b, 0);
    refused(&b, -EPROTO, "empty target");

    raw_error(&b, WIRE_MAX_PATH, WIRE_MAX_ERROR_TEXT);
    accepted(&b);
    raw_error(&b, WIRE_MAX_PATH + 1, 1);
    refused(&b, -EMSGSIZE, "path is 4097 bytes");
    raw_error(&b, 0, WIRE_MAX_ERROR_TEXT + 1);
    refused(&b, -EMSGSIZE, "message is 8193 bytes, over the limit of 8192");
    raw_error(&b, 0, 0);
    refused(&b, -EPROTO, "empty message");

    static uint8_t bytes[300 * KiB];
    fill_random(bytes, sizeof(bytes));
    raw_inline(&b, WIRE_INLINE_MAX, MSG_ENC_RAW, bytes, WIRE_INLINE_MAX);
    accepted(&b);
    raw_inline(&b, WIRE_INLINE_MAX + 1, MSG_ENC_RAW, bytes, WIRE_INLINE_MAX + 1);
    refused(&b, -EMSGSIZE, "4097 bytes, over the limit of 4096");

    uint32_t max = CHUNKER_MAX_SIZE;
    raw_data(&b, id_of(bytes, max), max, MSG_ENC_RAW, bytes, max);
    accepted(&b);
    raw_data(&b, id_of(bytes, max + 1), max + 1, MSG_ENC_RAW, bytes, max + 1);
    refused(&b, -EMSGSIZE, "chunk of 262145 bytes");
    raw_data(&b, id_of(bytes, 0), 0, MSG_ENC_RAW, bytes, 0);
    refused(&b, -EPROTO, "chunk of 0 bytes");

    /* Chunk lengths: at most MAX, at least MIN unless last. */
    uint32_t lens[3] = {CHUNKER_MAX_SIZE, CHUNKER_MIN_SIZE, 1};
    raw_chunked(&b, CHUNKER_MAX_SIZE + CHUNKER_MIN_SIZE + 1, 3, lens, 3);
    accepted(&b);
    lens[0] = CHUNKER_MAX_SIZE + 1;
    raw_chunked(&b, CHUNKER_MAX_SIZE + 1 + CHUNKER_MIN_SIZE + 1, 3, lens, 3);
    refused(&b, -EMSGSIZE, "chunk 0 of 'f' is 262145 bytes");
    lens[0] = CHUNKER_MAX_SIZE;
    lens[1] = CHUNKER_MIN_SIZE - 1;
    raw_chunked(&b, CHUNKER_MAX_SIZE + CHUNKER_MIN_SIZE - 1 + 1, 3, lens, 3);
    refused(&b, -EPROTO, "only the last may be under 16384");
    lens[1] = CHUNKER_MIN_SIZE;
    raw_chunked(&b, CHUNKER_MAX_SIZE + CHUNKER_MIN_SIZE + 2, 3, lens, 3);
    refused(&b, -EPROTO, "do not add up");
    raw_chunked(&b, CHUNKER_MAX_SIZE + CHUNKER_MIN_SIZE, 3, lens, 3);
    refused(&b, -EPROTO, "do not add up");
    raw_chunked(&b, 100, 0, lens, 0);
    refused(&b, -EPROTO, "0 chunks cannot make 'f' of 100 bytes");
    raw_chunked(&b, 3 * (uint64_t)CHUNKER_MIN_SIZE, 4, lens, 3);
    refused(&b, -EPROTO, "4 chunks cannot make");

    /* File size: WIRE_MAX_FILE_SIZE with 256 KiB chunks passes, one more byte does not;
     * more chunks than the limit are refused before any is read. */
    uint32_t nmax = (uint32_t)(WIRE_MAX_FILE_SIZE / CHUNKER_MAX_SIZE);
    uint32_t *big = malloc(nmax * sizeof(*big));
    for (uint32_t i = 0; i < nmax; i++)
        big[i] = CHUNKER_MAX_SIZE;
    raw_chunked(&b, WIRE_MAX_FILE_SIZE, nmax, big, nmax);
    accepted(&b);
    free(big);
    raw_chunked(&b, WIRE_MAX_FILE_SIZE + 1, nmax + 1, lens, 0);
    refused(&b, -EMSGSIZE, "over the limit of 68719476736");
    raw_chunked(&b, WIRE_MAX_FILE_SIZE, WIRE_MAX_CHUNKS + 1, lens, 0);
    refused(&b, -EMSGSIZE, "4194305 chunks, over the limit of 4194304");

    /* Tool version. */
    raw_hello(&b, WIRE_PROTOCOL_VERSION, WIRE_MAX_TOOL_VERSION, 0);
    struct wire *w = wire_new_mem(b.buf, b.len);
    struct msg m;
    char err[512];
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), 0);
    ck_assert_uint_eq(strlen(m.hello.tool_version), WIRE_MAX_TOOL_VERSION);
    msg_release(&m);
    wire_free(w);
    b.len = 0;
    raw_hello(&b, WIRE_PROTOCOL_VERSION, WIRE_MAX_TOOL_VERSION + 1, 0);
    w = wire_new_mem(b.buf, b.len);
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), -EMSGSIZE);
    ck_assert_ptr_nonnull(strstr(err, "tool version is 65 bytes"));
    wire_free(w);
    b.len = 0;

    /* Frame length: the limit passes framing (then BYE refuses the padding);
     * one more byte is refused from the header alone. */
    size_t f = raw_begin(&b, MSG_BYE);
    uint8_t *pad = calloc(1, WIRE_MAX_FRAME);
    buf_add(&b, pad, WIRE_MAX_FRAME - 1);
    raw_end(&b, f);
    refused(&b, -EPROTO, "8388607 bytes after the last field");
    raw_le(&b, WIRE_MAX_FRAME + 1, 4);
    raw_le(&b, MSG_BYE, 1);
    refused(&b, -EMSGSIZE, "a frame of 8388609 bytes, over the limit of 8388608");
    raw_le(&b, 0, 4);
    refused(&b, -EPROTO, "length 0");
    free(pad);

    /* Modes. */
    const uint32_t bad_modes[] = {04644, 02755, 01777};
    for (size_t i = 0; i < 3; i++) {
        f = raw_begin(&b, MSG_UPDATE);
        raw_update_head(&b, "d", 2, bad_modes[i]);
        raw_end(&b, f);
        refused(&b, -EPERM, "setuid, setgid or sticky");
    }
    f = raw_begin(&b, MSG_UPDATE);
    raw_update_head(&b, "d", 2, 010755);
    raw_end(&b, f);
    refused(&b, -EPROTO, "not a permission mode");
    f = raw_begin(&b, MSG_UPDATE);
    raw_update_head(&b, "d", 2, 0777);
    raw_end(&b, f);
    accepted(&b);
    f = raw_begin(&b, MSG_UPDATE);
    raw_update_head(&b, "d", 4, 0777);
    raw_end(&b, f);
    refused(&b, -EPROTO, "unknown file type 4");
    msg_buf_release(&b);
}
END_TEST

START_TEST(malformed_frames_are_refused_with_a_reason)
{
    struct msg_buf b = {0};
    size_t f;

    raw_delete(&b, "a\0b", 3);
    refused(&b, -EPROTO, "path contains a NUL byte");
    raw_delete(&b, "../etc/passwd", 13);
    refused(&b, -EINVAL, "refused path '../etc/passwd'");
    raw_delete(&b, ".wsync/index.db", 15);
    refused(&b, -EINVAL, "state directory");
    raw_delete(&b, "/etc", 4);
    refused(&b, -EINVAL, "absolute");

    f = raw_begin(&b, MSG_RENAME);
    raw_str(&b, "a", 1);
    raw_str(&b, "b/", 2);
    raw_end(&b, f);
    refused(&b, -EINVAL, "to: refused path 'b/'");

    f = raw_begin(&b, MSG_COMMIT);
    raw_le(&b, 1, 8);
    raw_le(&b, 0, 4);
    raw_le(&b, 0, 1);
    raw_end(&b, f);
    refused(&b, -EPROTO, "COMMIT: 1 bytes after the last field");
    f = raw_begin(&b, MSG_COMMIT);
    raw_le(&b, 1, 8);
    raw_le(&b, 0, 3);
    raw_end(&b, f);
    refused(&b, -EPROTO, "COMMIT: payload ends inside flags");
    f = raw_begin(&b, MSG_COMMIT);
    raw_le(&b, 1, 8);
    raw_le(&b, 0x80, 4);
    raw_end(&b, f);
    refused(&b, -EPROTO, "unknown flags 0x80");
    /* The live two-way messages (§12) are empty: a byte more is refused. */
    f = raw_begin(&b, MSG_WATCH);
    raw_le(&b, 0, 1);
    raw_end(&b, f);
    refused(&b, -EPROTO, "WATCH: 1 bytes after the last field");

    f = raw_begin(&b, MSG_WANT);
    raw_le(&b, 2, 4);
    raw_id(&b, some_id(1));
    raw_end(&b, f);
    refused(&b, -EPROTO, "2 ids in 16 bytes");
    f = raw_begin(&b, MSG_WANT);
    raw_le(&b, 0, 4);
    raw_end(&b, f);
    refused(&b, -EPROTO, "0 ids");

    f = raw_begin(&b, 0x63);
    raw_end(&b, f);
    refused(&b, -EPROTO, "unknown message type 0x63");
    f = raw_begin(&b, 0);
    raw_end(&b, f);
    refused(&b, -EPROTO, "unknown message type 0x00");
    f = raw_begin(&b, MSG_CHUNKS);
    raw_le(&b, 1, 4);
    raw_end(&b, f);
    refused(&b, -EPROTO, "no UPDATE is waiting");

    /* An UPDATE promising more chunks, then something else. */
    uint32_t lens[2] = {CHUNKER_MIN_SIZE, 5};
    raw_chunked(&b, CHUNKER_MIN_SIZE + 5, 2, lens, 1);
    f = raw_begin(&b, MSG_BYE);
    raw_end(&b, f);
    refused(&b, -EPROTO, "BYE frame inside the chunk list of UPDATE 'f'");
    raw_chunked(&b, CHUNKER_MIN_SIZE + 5, 2, lens, 1);
    f = raw_begin(&b, MSG_CHUNKS);
    raw_le(&b, 2, 4);
    raw_end(&b, f);
    refused(&b, -EPROTO, "2 chunks in a frame where 1 are due");
    raw_chunked(&b, CHUNKER_MIN_SIZE + 5, 2, lens, 1);
    f = raw_begin(&b, MSG_CHUNKS);
    raw_le(&b, 1, 4);
    raw_le(&b, 5, 4);
    raw_id(&b, some_id(3));
    raw_end(&b, f);
    accepted(&b);
    raw_chunked(&b, CHUNKER_MIN_SIZE + 5, 2, lens, 1);
    refused(&b, -ECONNRESET, "inside the message of UPDATE 'f'");

    /* MANIFEST: order, prefix, counts. */
    struct msg_entry e[2] = {{.path = "b", .type = S_IFDIR, .mode = 0755},
                             {.path = "c", .type = S_IFDIR, .mode = 0755}};
    struct msg_buf body = {0};
    for (int i = 1; i >= 0; i--) { /* "c" then "b" */
        raw_le(&body, 0, 2);
        raw_str(&body, e[i].path, 1);
        raw_le(&body, 2, 1);
        raw_le(&body, 0755, 4);
        raw_le(&body, 0, 8);
        raw_id(&body, some_id(4)); /* a directory's subtree digest */
    }
    f = raw_begin(&b, MSG_MANIFEST);
    raw_le(&b, 2, 4);
    raw_le(&b, body.len, 4);
    raw_le(&b, MSG_ENC_RAW, 1);
    raw_str(&b, body.buf, body.len);
    raw_end(&b, f);
    refused(&b, -EPROTO, "out of order: 'b' after 'c'");
    body.buf[body.len - 36] = 1; /* second entry shares 1 byte of "c" */
    body.buf[body.len - 36 + 2 + 4] = 'x';
    f = raw_begin(&b, MSG_MANIFEST);
    raw_le(&b, 2, 4);
    raw_le(&b, body.len, 4);
    raw_le(&b, MSG_ENC_RAW, 1);
    raw_str(&b, body.buf, body.len);
    raw_end(&b, f);
    accepted(&b); /* "c" then "cx" */
    body.buf[body.len - 36] = 2;
    f = raw_begin(&b, MSG_MANIFEST);
    raw_le(&b, 2, 4);
    raw_le(&b, body.len, 4);
    raw_le(&b, MSG_ENC_RAW, 1);
    raw_str(&b, body.buf, body.len);
    raw_end(&b, f);
    refused(&b, -EPROTO, "shares 2 bytes with a 1-byte path");
    f = raw_begin(&b, MSG_MANIFEST);
    raw_le(&b, 4, 4);
    raw_le(&b, body.len, 4);
    raw_le(&b, MSG_ENC_RAW, 1);
    raw_str(&b, body.buf, body.len);
    raw_end(&b, f);
    refused(&b, -EPROTO, "4 entries cannot fill 72 bytes");
    msg_buf_release(&body);
    msg_buf_release(&b);
}
END_TEST

/* Two-way sync's PEER and PULL: round trip, splitting, each limit. */
START_TEST(peer_and_pull_round_trip_and_limits)
{
    struct msg_buf b = {0};
    char err[512];
    struct msg m;
    /* PEER round trip */
    struct msg pe = {.type = MSG_PEER, .peer = {.tree_id = some_id(7), .host = "robot-1.lab_A"}};
    encode_ok(&b, &pe);
    ck_assert_int_eq(decode_after_hello(&b, &m, err, sizeof(err)), 0);
    ck_assert_int_eq(m.type, MSG_PEER);
    ck_assert(content_id_eq(&m.peer.tree_id, &pe.peer.tree_id));
    ck_assert_str_eq(m.peer.host, "robot-1.lab_A");
    msg_release(&m);
    b.len = 0;
    /* host: 64 bytes pass, 65 refused; bad bytes and empty refused both ways */
    char *h64 = repeat('h', 64), *h65 = repeat('h', 65);
    size_t f = raw_begin(&b, MSG_PEER);
    raw_id(&b, some_id(1));
    raw_str(&b, h64, 64);
    raw_end(&b, f);
    accepted(&b);
    f = raw_begin(&b, MSG_PEER);
    raw_id(&b, some_id(1));
    raw_str(&b, h65, 65);
    raw_end(&b, f);
    refused(&b, -EMSGSIZE, "over the limit of 64");
    f = raw_begin(&b, MSG_PEER);
    raw_id(&b, some_id(1));
    raw_str(&b, "a/b", 3);
    raw_end(&b, f);
    refused(&b, -EINVAL, "byte 0x2f");
    f = raw_begin(&b, MSG_PEER);
    raw_id(&b, some_id(1));
    raw_str(&b, "", 0);
    raw_end(&b, f);
    refused(&b, -EINVAL, "not 1..64");
    f = raw_begin(&b, MSG_PEER);
    raw_id(&b, (struct content_id){0});
    raw_str(&b, "a", 1);
    raw_end(&b, f);
    refused(&b, -EPROTO, "tree id is zero");
    pe.peer.host = h65;
    ck_assert_int_eq(msg_encode(&pe, &b, err, sizeof(err)), -EMSGSIZE);
    pe.peer.host = "a b";
    ck_assert_int_eq(msg_encode(&pe, &b, err, sizeof(err)), -EINVAL);
    ck_assert_uint_eq(b.len, 0);
    free(h64);
    free(h65);

    /* PULL: a long list splits into frames, LAST only on the last */
    size_t n = MSG_PULL_MAX + 3;
    struct msg_pull_entry *v = calloc(n, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = (struct msg_pull_entry){.from = "d/f", .as = i % 2 ? "d/f" : "d/f.conflict-x"};
    struct msg pl = {.type = MSG_PULL, .pull = {.flags = MSG_PULL_LAST, .entries = v, .n = n}};
    char e2[512] = "";
    ck_assert_int_eq(msg_encode(&pl, &b, e2, sizeof(e2)), 2);
    struct msg_buf all = {0};
    add_hello(&all);
    buf_add(&all, b.buf, b.len);
    struct wire *w = wire_new_mem(all.buf, all.len);
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), 0);
    msg_release(&m);
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), 0);
    ck_assert_uint_eq(m.pull.n, MSG_PULL_MAX);
    ck_assert_uint_eq(m.pull.flags, 0);
    ck_assert_str_eq(m.pull.entries[0].as, "d/f.conflict-x");
    msg_release(&m);
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), 0);
    ck_assert_uint_eq(m.pull.n, 3);
    ck_assert_uint_eq(m.pull.flags, MSG_PULL_LAST);
    msg_release(&m);
    wire_free(w);
    msg_buf_release(&all);
    b.len = 0;
    free(v);
    /* PULL: a hostile path, a claimed count with no bytes, unknown flags */
    f = raw_begin(&b, MSG_PULL);
    raw_le(&b, MSG_PULL_LAST, 4);
    raw_le(&b, 1, 4);
    raw_str(&b, "a", 1);
    raw_str(&b, "../etc/passwd", 13);
    raw_end(&b, f);
    refused(&b, -EINVAL, "as");
    f = raw_begin(&b, MSG_PULL);
    raw_le(&b, 0, 4);
    raw_le(&b, 0xffffffffu, 4);
    raw_end(&b, f);
    refused(&b, -EPROTO, "entries cannot be");
    f = raw_begin(&b, MSG_PULL);
    raw_le(&b, 2, 4);
    raw_le(&b, 0, 4);
    raw_end(&b, f);
    refused(&b, -EPROTO, "unknown flags");
    struct msg_pull_entry bad = {.from = ".wsync/index.db", .as = "x"};
    pl.pull.entries = &bad;
    pl.pull.n = 1;
    ck_assert_int_lt(msg_encode(&pl, &b, err, sizeof(err)), 0);
    ck_assert_uint_eq(b.len, 0);
    msg_buf_release(&b);
}
END_TEST

START_TEST(list_limits_and_tree_order)
{
    /* Tree order: a directory's subtree follows it directly. */
    ck_assert_int_lt(msg_path_cmp("a", "a/b"), 0);
    ck_assert_int_lt(msg_path_cmp("a/b", "a.c"), 0);
    ck_assert_int_gt(strcmp("a/b", "a.c"), 0); /* where strcmp differs */
    ck_assert_int_lt(msg_path_cmp("a/z", "a0"), 0);
    ck_assert_int_eq(msg_path_cmp("x/y", "x/y"), 0);

    struct msg_buf b = {0};
    char err[512];
    const char *dirs[MSG_LIST_MAX + 1];
    for (size_t i = 0; i <= MSG_LIST_MAX; i++)
        dirs[i] = "d";
    struct msg m = {.type = MSG_LIST, .list = {.dirs = dirs, .n = MSG_LIST_MAX}};
    encode_ok(&b, &m);
    accepted(&b);
    m.list.n = MSG_LIST_MAX + 1;
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), -EMSGSIZE);
    m.list.n = 0;
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), -EINVAL);
    dirs[0] = "../up";
    m.list.n = 1;
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), -EINVAL);
    ck_assert_uint_eq(b.len, 0); /* nothing appended */

    size_t f = raw_begin(&b, MSG_LIST);
    raw_le(&b, 0, 4);
    raw_end(&b, f);
    refused(&b, -EPROTO, "0 directories");
    f = raw_begin(&b, MSG_LIST);
    raw_le(&b, MSG_LIST_MAX + 1, 4);
    raw_end(&b, f);
    refused(&b, -EMSGSIZE, "1025 directories");
    f = raw_begin(&b, MSG_LIST);
    raw_le(&b, 2, 4);
    raw_str(&b, "", 0);
    raw_str(&b, "a//b", 4);
    raw_end(&b, f);
    refused(&b, -EINVAL, "empty path component");
    f = raw_begin(&b, MSG_LIST);
    raw_le(&b, 2, 4);
    raw_str(&b, "", 0);
    raw_end(&b, f);
    refused(&b, -EPROTO, "payload ends inside directory");
    f = raw_begin(&b, MSG_LIST);
    raw_le(&b, 1, 4);
    raw_str(&b, ".wsync", 6);
    raw_end(&b, f);
    refused(&b, -EINVAL, "state directory");
    msg_buf_release(&b);
}
END_TEST

START_TEST(grouped_lists_and_groups)
{
    uint64_t size;
    struct chunk *c = make_chunks(300, 7, &size);
    struct chunk_group *g;
    size_t ng;
    ck_assert_int_eq(chunk_groups_cut(c, 300, &g, &ng), 0);
    ck_assert_uint_gt(ng, 1);
    struct msg_buf b = {0};
    struct msg u = {.type = MSG_UPDATE,
                    .update = {.path = "big", .type = S_IFREG, .mode = 0644, .size = size,
                               .groups = g, .ngroups = ng}};
    encode_ok(&b, &u);
    struct msg m;
    char err[512];
    ck_assert_msg(decode_after_hello(&b, &m, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(m.update.ngroups, ng);
    ck_assert_uint_eq(m.update.nchunks, 0);
    for (size_t i = 0; i < ng; i++) {
        ck_assert_uint_eq(m.update.groups[i].count, g[i].count);
        ck_assert_uint_eq(m.update.groups[i].bytes, g[i].bytes);
        ck_assert(content_id_eq(&m.update.groups[i].id, &g[i].id));
    }
    msg_release(&m);
    b.len = 0;
    /* Sums that do not make the file are refused by the encoder... */
    g[0].bytes += 1;
    ck_assert_int_eq(msg_encode(&u, &b, err, sizeof(err)), -EPROTO);
    g[0].bytes -= 1;
    uint32_t count0 = g[0].count;
    g[0].count = CHUNK_GROUP_MAX + 1;
    ck_assert_int_eq(msg_encode(&u, &b, err, sizeof(err)), -EPROTO);
    ck_assert_uint_eq(b.len, 0);
    g[0].count = count0;
    /* ...and by the decoder: the first group's byte total, patched. */
    encode_ok(&b, &u);
    size_t first = 5 + (4 + 3) + 1 + 4 + 8 + 8 + 1 + 4 + 4; /* frame, path .. group count */
    b.buf[first + 4] ^= 1;
    refused(&b, -EPROTO, "add up to");
    encode_ok(&b, &u);
    b.buf[first] = 0; /* a group of 0 chunks */
    b.buf[first + 1] = 0;
    refused(&b, -EPROTO, "has 0 chunks");
    /* A GROUP round-trips and is checked against its id. */
    struct msg grp = {.type = MSG_GROUP, .group = {.id = g[0].id, .chunks = c, .n = g[0].count}};
    encode_ok(&b, &grp);
    ck_assert_msg(decode_after_hello(&b, &m, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(m.group.n, g[0].count);
    ck_assert_uint_eq(m.group.chunks[1].off, c[0].len);
    msg_release(&m);
    b.len = 0;
    grp.group.id = g[1].id; /* not these chunks */
    ck_assert_int_eq(msg_encode(&grp, &b, err, sizeof(err)), -EBADMSG);
    grp.group.id = g[0].id;
    encode_ok(&b, &grp);
    b.buf[b.len - 1] ^= 1; /* the last chunk id */
    refused(&b, -EBADMSG, "does not match its chunks");
    grp.group.n = 0;
    ck_assert_int_eq(msg_encode(&grp, &b, err, sizeof(err)), -EPROTO);
    size_t f = raw_begin(&b, MSG_GROUP);
    raw_id(&b, g[0].id);
    raw_le(&b, CHUNK_GROUP_MAX + 1, 4);
    raw_end(&b, f);
    refused(&b, -EMSGSIZE, "chunks in");
    /* The whole-list check the receiver runs on a resolved list. */
    ck_assert_int_eq(msg_chunk_list_check("big", size, c, 300, err, sizeof(err)), 0);
    ck_assert_int_eq(msg_chunk_list_check("big", size + 1, c, 300, err, sizeof(err)), -EPROTO);
    c[5].len = 100; /* a short chunk that is not the last */
    ck_assert_int_eq(msg_chunk_list_check("big", size, c, 300, err, sizeof(err)), -EPROTO);
    msg_buf_release(&b);
    free(g);
    free(c);
}
END_TEST

START_TEST(hello_rules)
{
    struct msg_buf b = {0};
    struct msg m;
    char err[512];
    struct wire *w;

    raw_hello(&b, 3, 5, 0);
    memcpy(b.buf + b.len - 16 - 4 - 1 - 5, "9.9.9", 5);
    w = wire_new_mem(b.buf, b.len);
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), -EPROTONOSUPPORT);
    ck_assert_msg(strstr(err, "the peer speaks version 3 (wsync 9.9.9)") &&
                      strstr(err, "this side speaks version 2 (wsync " WSYNC_VERSION ")"),
                  "%s", err);
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), -EPROTONOSUPPORT); /* stays failed */
    ck_assert_ptr_nonnull(strstr(err, "already failed"));
    wire_free(w);

    b.len = 0;
    raw_hello(&b, WIRE_PROTOCOL_VERSION, 5, 0x100);
    w = wire_new_mem(b.buf, b.len);
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), -EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "unknown flags 0x100"));
    wire_free(w);

    b.len = 0;
    raw_hello(&b, WIRE_PROTOCOL_VERSION, 5, 0);
    b.buf[5] = 'X'; /* magic */
    w = wire_new_mem(b.buf, b.len);
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), -EPROTONOSUPPORT);
    ck_assert_ptr_nonnull(strstr(err, "not a wsync peer"));
    wire_free(w);

    const char *banner = "Welcome to Ubuntu 22.04 LTS\n\nwsync: HELLO";
    w = wire_new_mem(banner, strlen(banner));
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), -EPROTO);
    ck_assert_msg(strstr(err, "did not begin with a wsync HELLO but with \"Welcome to Ubuntu"),
                  "%s", err);
    wire_free(w);

    b.len = 0;
    size_t f = raw_begin(&b, MSG_BYE);
    raw_end(&b, f);
    w = wire_new_mem(b.buf, b.len);
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), -EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "did not begin with a wsync HELLO"));
    wire_free(w);

    b.len = 0; /* a peer refusing to start may open with ERROR */
    raw_error(&b, 0, 5);
    w = wire_new_mem(b.buf, b.len);
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), 0);
    ck_assert_int_eq(m.type, MSG_ERROR);
    msg_release(&m);
    wire_free(w);

    b.len = 0;
    add_hello(&b);
    add_hello(&b);
    w = wire_new_mem(b.buf, b.len);
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), 0);
    msg_release(&m);
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), -EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "a second HELLO"));
    wire_free(w);

    w = wire_new_mem("", 0);
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), -ENODATA);
    wire_free(w);
    msg_buf_release(&b);
}
END_TEST

/* ---- DATA integrity ---------------------------------------------------- */

START_TEST(data_must_match_its_id)
{
    static uint8_t chunk[64 * KiB], text[64 * KiB];
    fill_random(chunk, sizeof(chunk));
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (uint8_t) "abcabcabd"[i % 9];
    struct msg_buf b = {0};
    struct content_id id = id_of(chunk, sizeof(chunk));
    char err[512];

    raw_data(&b, id, sizeof(chunk), MSG_ENC_RAW, chunk, sizeof(chunk));
    accepted(&b);
    struct content_id wrong = id;
    wrong.b[15] ^= 1;
    char hex[CONTENT_ID_HEX_LEN + 1];
    content_id_to_hex(&wrong, hex);
    raw_data(&b, wrong, sizeof(chunk), MSG_ENC_RAW, chunk, sizeof(chunk));
    refused(&b, -EBADMSG, hex);
    content_id_to_hex(&id, hex);
    raw_data(&b, wrong, sizeof(chunk), MSG_ENC_RAW, chunk, sizeof(chunk));
    refused(&b, -EBADMSG, hex); /* names what the bytes hash to as well */

    raw_data(&b, id, sizeof(chunk), MSG_ENC_RAW, chunk, sizeof(chunk) - 1);
    refused(&b, -EPROTO, "65535 raw bytes sent for 65536");
    raw_data(&b, id, sizeof(chunk), 7, chunk, sizeof(chunk));
    refused(&b, -EPROTO, "unknown encoding 7");

    /* lz4: a valid stream; garbage; one that decodes short; one that decodes long. */
    char lz[LZ4_COMPRESSBOUND(64 * KiB)];
    int n = LZ4_compress_default((const char *)text, lz, sizeof(text), sizeof(lz));
    ck_assert_int_gt(n, 0);
    struct content_id tid = id_of(text, sizeof(text));
    raw_data(&b, tid, sizeof(text), MSG_ENC_LZ4, lz, (size_t)n);
    accepted(&b);
    raw_data(&b, tid, sizeof(text), MSG_ENC_LZ4, chunk, 1000);
    refused(&b, -EBADMSG, "do not decompress to 65536 bytes");
    raw_data(&b, tid, sizeof(text) + 1, MSG_ENC_LZ4, lz, (size_t)n);
    refused(&b, -EBADMSG, "do not decompress to 65537 bytes");
    raw_data(&b, tid, sizeof(text) - 1, MSG_ENC_LZ4, lz, (size_t)n);
    refused(&b, -EBADMSG, "do not decompress to 65535 bytes");
    raw_data(&b, tid, 10, MSG_ENC_LZ4, lz, (size_t)n);
    refused(&b, -EMSGSIZE, "cannot be");

    /* Inline bytes go through the same checks. */
    n = LZ4_compress_default((const char *)text, lz, 4096, sizeof(lz));
    raw_inline(&b, 4096, MSG_ENC_LZ4, lz, (size_t)n);
    accepted(&b);
    raw_inline(&b, 4095, MSG_ENC_LZ4, lz, (size_t)n);
    refused(&b, -EBADMSG, "inline data: the lz4 bytes do not decompress to 4095 bytes");
    raw_inline(&b, 10, MSG_ENC_RAW, text, 9);
    refused(&b, -EPROTO, "9 raw bytes sent for 10");

    /* The encoder checks the bytes against the id: a file changed since indexing. */
    struct msg m = {.type = MSG_DATA, .data = {.id = wrong, .bytes = chunk, .len = sizeof(chunk)}};
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), -ESTALE);
    ck_assert_ptr_nonnull(strstr(err, "did the file change"));
    ck_assert_uint_eq(b.len, 0);
    msg_buf_release(&b);
}
END_TEST

START_TEST(encoder_refuses_what_the_decoder_would)
{
    struct msg_buf b = {0};
    char err[512];
    struct msg m = {
        .type = MSG_UPDATE,
        .update = {.path = "bin/su", .type = S_IFREG, .mode = 04755, .inline_data = true}};
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), -EPERM);
    ck_assert_ptr_nonnull(strstr(err, "'bin/su'"));
    m.update.mode = 0755;
    m.update.path = "../x";
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), -EINVAL);
    m.update.path = "x";
    m.update.size = WIRE_INLINE_MAX + 1;
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), -EMSGSIZE);
    m.update.inline_data = false;
    m.update.size = 10; /* and no chunks */
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), -EPROTO);
    m.update.type = S_IFLNK;
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), -EPROTO); /* no target */
    m.update.type = S_IFIFO;
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), -EINVAL);
    m = (struct msg){.type = MSG_HELLO, .hello = {.role = 3}};
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), -EINVAL);
    m = (struct msg){.type = MSG_CHUNKS};
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), -EINVAL);
    m = (struct msg){.type = MSG_RENAME, .rename = {.from = "a", .to = ".wsync/x"}};
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), -EINVAL);
    ck_assert_uint_eq(b.len, 0); /* nothing half-written */

    /* Empty lists write nothing; over-long error texts are cut, not refused. */
    m = (struct msg){.type = MSG_WANT};
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), 0);
    m = (struct msg){.type = MSG_MANIFEST};
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), 0);
    ck_assert_uint_eq(b.len, 0);
    char *huge = repeat('e', 20000);
    m = (struct msg){.type = MSG_ERROR, .error = {.code = EIO, .path = huge, .message = huge}};
    ck_assert_int_eq(msg_encode(&m, &b, err, sizeof(err)), 1);
    struct msg got;
    ck_assert_int_eq(decode_after_hello(&b, &got, err, sizeof(err)), 0);
    ck_assert_uint_eq(strlen(got.error.path), WIRE_MAX_PATH);
    ck_assert_uint_eq(strlen(got.error.message), WIRE_MAX_ERROR_TEXT);
    msg_release(&got);
    free(huge);
    msg_buf_release(&b);
}
END_TEST

/* ---- truncation and garbage -------------------------------------------- */

/* A small stream of every message type; ends[] gets each message's end. */
static size_t small_stream(struct msg_buf *b, size_t *ends)
{
    static uint8_t data[5000], tiny[100];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i / 7);
    memset(tiny, 'z', sizeof(tiny));
    struct msg_entry ents[] = {
        {.path = "d", .type = S_IFDIR, .mode = 0755},
        {.path = "d/f", .type = S_IFREG, .mode = 0644, .size = 5, .id = some_id(1)},
        {.path = "d/l", .type = S_IFLNK, .mode = 0777, .target = "f"},
    };
    uint64_t size;
    struct chunk *c = make_chunks(2, 10, &size);
    struct content_id ids[2] = {some_id(4), some_id(5)};
    struct msg ms[] = {
        {.type = MSG_HELLO, .hello = {.role = MSG_ROLE_RECEIVER}},
        {.type = MSG_MANIFEST, .manifest = {.entries = ents, .n = 3}},
        {.type = MSG_MANIFEST_END, .manifest_end = {.count = 3}},
        {.type = MSG_UPDATE, .update = {.path = "e", .type = S_IFDIR, .mode = 0755}},
        {.type = MSG_UPDATE,
         .update = {.path = "e/l", .type = S_IFLNK, .mode = 0777, .target = "../d"}},
        {.type = MSG_UPDATE,
         .update = {.path = "e/t",
                    .type = S_IFREG,
                    .mode = 0644,
                    .size = sizeof(tiny),
                    .inline_data = true,
                    .data = tiny}},
        {.type = MSG_UPDATE,
         .update = {.path = "e/c",
                    .type = S_IFREG,
                    .mode = 0644,
                    .size = size,
                    .chunks = c,
                    .nchunks = 2}},
        {.type = MSG_WANT, .want = {.ids = ids, .n = 2}},
        {.type = MSG_DATA,
         .data = {.id = id_of(data, sizeof(data)), .bytes = data, .len = sizeof(data)}},
        {.type = MSG_DELETE, .del = {.path = "gone"}},
        {.type = MSG_RENAME, .rename = {.from = "a", .to = "b"}},
        {.type = MSG_LINK, .link = {.path = "h", .existing = "e/t"}},
        {.type = MSG_COMMIT, .commit = {.seq = 1}},
        {.type = MSG_ACK, .ack = {.seq = 1}},
        {.type = MSG_ERROR, .error = {.code = EIO, .path = "e/c", .message = "bad disk"}},
        {.type = MSG_BYE},
    };
    size_t n = sizeof(ms) / sizeof(ms[0]);
    for (size_t i = 0; i < n; i++) {
        encode_ok(b, &ms[i]);
        if (ends)
            ends[i] = b->len;
    }
    free(c);
    return n;
}

/* Decode all of buf[0..len); returns the final code, *nmsgs the messages. */
static int decode_all(const void *buf, size_t len, size_t *nmsgs, char *err, size_t errsize)
{
    struct wire *w = wire_new_mem(buf, len);
    struct msg m;
    int r;
    *nmsgs = 0;
    while ((r = wire_recv(w, &m, err, errsize)) == 0) {
        (*nmsgs)++;
        msg_release(&m);
    }
    wire_free(w);
    return r;
}

START_TEST(truncation_at_every_byte_is_refused)
{
    struct msg_buf b = {0};
    size_t ends[32];
    size_t n = small_stream(&b, ends);
    char err[512];
    size_t got, next = 0;
    ck_assert_int_eq(decode_all(b.buf, b.len, &got, err, sizeof(err)), -ENODATA);
    ck_assert_uint_eq(got, n);
    for (size_t k = 0; k < b.len; k++) {
        while (next < n && ends[next] <= k)
            next++;
        bool boundary = k == 0 || (next > 0 && ends[next - 1] == k);
        int r = decode_all(b.buf, k, &got, err, sizeof(err));
        ck_assert_uint_eq(got, next);
        if (boundary) {
            ck_assert_msg(r == -ENODATA, "at %zu: %d %s", k, r, err);
        } else {
            ck_assert_msg(r == -ECONNRESET, "at %zu: %d %s", k, r, err);
            ck_assert_msg(strstr(err, "the stream ended inside"), "%s", err);
        }
    }
    msg_buf_release(&b);
}
END_TEST

START_TEST(random_and_mutated_bytes_never_crash)
{
    struct msg_buf valid = {0}, hello = {0};
    small_stream(&valid, NULL);
    add_hello(&hello);
    uint8_t buf[8192];
    char err[512];
    size_t got;
    rng_state = 42;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = 0;
        int mode = iter % 4;
        if (mode == 0) { /* pure noise */
            len = rnd() % 300;
            fill_random(buf, len);
        } else if (mode == 1) { /* a HELLO, then a well-framed frame of random payload */
            memcpy(buf, hello.buf, hello.len);
            uint32_t plen = (uint32_t)(rnd() % 200);
            uint8_t *h = buf + hello.len;
            uint32_t flen = plen + 1;
            memcpy(h, &flen, 4);
            h[4] = (uint8_t)(1 + rnd() % 15);
            fill_random(h + 5, plen);
            len = hello.len + 5 + plen;
        } else { /* the valid stream with a few bytes changed, maybe cut */
            len = valid.len < sizeof(buf) ? valid.len : sizeof(buf);
            memcpy(buf, valid.buf, len);
            int flips = 1 + (int)(rnd() % 4);
            for (int i = 0; i < flips; i++)
                buf[rnd() % len] = mode == 2 ? (uint8_t)rnd() : buf[rnd() % len] ^ 0x80;
            if (rnd() % 2)
                len = rnd() % len;
        }
        int r = decode_all(buf, len, &got, err, sizeof(err));
        ck_assert_int_lt(r, 0);
        ck_assert_uint_gt(strlen(err), 0);
    }
    msg_buf_release(&valid);
    msg_buf_release(&hello);
}
END_TEST

/* ---- real fds ---------------------------------------------------------- */

struct dribble {
    int fd;
    const uint8_t *buf;
    size_t len;
};

/* Write the stream in pieces of 1..7 bytes, SIGALRM blocked here so the
 * reader gets the interruptions. */
static void *dribble_writer(void *arg)
{
    struct dribble *d = arg;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    uint64_t x = 7;
    for (size_t off = 0; off < d->len;) {
        x = x * 6364136223846793005ull + 1;
        size_t n = 1 + (x >> 60) % 7;
        n = n < d->len - off ? n : d->len - off;
        ssize_t w = write(d->fd, d->buf + off, n);
        ck_assert_int_gt(w, 0);
        off += (size_t)w;
        if (x % 64 == 0)
            usleep(200);
    }
    close(d->fd);
    return NULL;
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

START_TEST(short_reads_and_eintr_over_a_pipe)
{
    struct msg_buf b = {0};
    size_t n = small_stream(&b, NULL);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART: reads see EINTR */
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {.it_interval = {0, 300}, .it_value = {0, 300}};
    setitimer(ITIMER_REAL, &it, NULL);

    struct dribble d = {.fd = p[1], .buf = b.buf, .len = b.len};
    pthread_t t;
    pthread_create(&t, NULL, dribble_writer, &d);
    struct wire *w = wire_new(p[0], -1);
    struct msg m;
    char err[512];
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(wire_recv(w, &m, err, sizeof(err)) == 0, "%zu: %s", i, err);
        msg_release(&m);
    }
    ck_assert_int_eq(wire_recv(w, &m, err, sizeof(err)), -ENODATA);
    pthread_join(t, NULL);
    struct itimerval off = {0};
    setitimer(ITIMER_REAL, &off, NULL);
    ck_assert_int_gt(alarms, 0);
    wire_free(w);
    close(p[0]);

    /* A writer that stops mid-frame and closes: ECONNRESET, not a hang. */
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(write(p[1], b.buf, b.len - 3), (ssize_t)(b.len - 3));
    close(p[1]);
    w = wire_new(p[0], -1);
    int r;
    while ((r = wire_recv(w, &m, err, sizeof(err))) == 0)
        msg_release(&m);
    ck_assert_int_eq(r, -ECONNRESET);
    ck_assert_ptr_nonnull(strstr(err, "2 of 5 bytes of a frame header"));
    wire_free(w);
    close(p[0]);
    msg_buf_release(&b);
}
END_TEST

struct reader_arg {
    int fd;
    size_t msgs;
    uint64_t data_bytes;
};

static void *reader_thread(void *arg)
{
    struct reader_arg *a = arg;
    struct wire *w = wire_new(a->fd, -1);
    struct msg m;
    char err[512];
    usleep(20000); /* let the writer fill the pipe first */
    while (wire_recv(w, &m, err, sizeof(err)) == 0) {
        a->msgs++;
        if (m.type == MSG_DATA)
            a->data_bytes += m.data.len;
        msg_release(&m);
    }
    wire_free(w);
    return NULL;
}

START_TEST(pipelined_writes_on_a_nonblocking_pipe)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK), 0);
    struct reader_arg a = {.fd = p[0]};
    fcntl(p[0], F_SETFL, 0); /* the reader blocks; the writer's end stays non-blocking */
    pthread_t t;
    pthread_create(&t, NULL, reader_thread, &a);

    static uint8_t chunk[200 * KiB];
    struct wire *w = wire_new(-1, p[1]);
    char err[512];
    struct msg m = {.type = MSG_HELLO, .hello = {.role = MSG_ROLE_SENDER}};
    ck_assert_int_eq(wire_send(w, &m, err, sizeof(err)), 0);
    for (int i = 0; i < 40; i++) {
        fill_random(chunk, sizeof(chunk));
        m = (struct msg){
            .type = MSG_DATA,
            .data = {.id = id_of(chunk, sizeof(chunk)), .bytes = chunk, .len = sizeof(chunk)}};
        ck_assert_msg(wire_send(w, &m, err, sizeof(err)) == 0, "%s", err);
    }
    m = (struct msg){.type = MSG_BYE};
    ck_assert_int_eq(wire_send(w, &m, err, sizeof(err)), 0);
    ck_assert_int_eq(wire_flush(w, err, sizeof(err)), 0);
    close(p[1]);
    pthread_join(t, NULL);
    ck_assert_uint_eq(a.msgs, 42);
    ck_assert_uint_eq(a.data_bytes, 40 * sizeof(chunk));
    wire_free(w);
    close(p[0]);

    /* The reader is gone: EPIPE, named. */
    ck_assert_int_eq(pipe(p), 0);
    close(p[0]);
    signal(SIGPIPE, SIG_IGN);
    w = wire_new(-1, p[1]);
    m = (struct msg){.type = MSG_BYE};
    ck_assert_int_eq(wire_send(w, &m, err, sizeof(err)), 0);
    ck_assert_int_eq(wire_flush(w, err, sizeof(err)), -EPIPE);
    ck_assert_ptr_nonnull(strstr(err, "closed"));
    wire_free(w);
    close(p[1]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, path_check_table);
    tcase_add_test(tc, every_message_round_trips_through_an_fd);
    tcase_add_test(tc, long_manifest_splits_into_frames_and_digests_agree);
    tcase_add_test(tc, each_limit_is_enforced_to_the_byte);
    tcase_add_test(tc, malformed_frames_are_refused_with_a_reason);
    tcase_add_test(tc, hello_rules);
    tcase_add_test(tc, peer_and_pull_round_trip_and_limits);
    tcase_add_test(tc, list_limits_and_tree_order);
    tcase_add_test(tc, grouped_lists_and_groups);
    tcase_add_test(tc, data_must_match_its_id);
    tcase_add_test(tc, encoder_refuses_what_the_decoder_would);
    tcase_add_test(tc, truncation_at_every_byte_is_refused);
    tcase_add_test(tc, random_and_mutated_bytes_never_crash);
    tcase_add_test(tc, short_reads_and_eintr_over_a_pipe);
    tcase_add_test(tc, pipelined_writes_on_a_nonblocking_pipe);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
