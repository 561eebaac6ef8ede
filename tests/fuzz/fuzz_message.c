/*
 * fuzz_message.c — libFuzzer target for the frame and message decoder:
 * arbitrary bytes go through wire_recv until it fails.  Beyond "no crash,
 * no leak, no undefined behaviour, no hang", it checks the codec's
 * invariant: whatever the decoder accepts the encoder can re-encode, and
 * the re-encoded stream decodes to at least as many messages.  The same
 * input is also read as a list of (type, payload) records fed straight to
 * the message decoder, so that payload decoders are reached without the
 * fuzzer having to find valid frame lengths first.
 *
 * With WSYNC_FUZZ_SEED=DIR set, LLVMFuzzerInitialize first writes a seed
 * corpus into DIR: a valid stream of every message type, and each message
 * alone after a HELLO (tests/fuzz/run does this).
 */
#include "sync/message.h"
#include "sync/wire.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "fuzz_message: cannot write %s\n", path);
        exit(2);
    }
}

static void encode_or_die(const struct msg *m, struct msg_buf *b)
{
    char err[512];
    if (msg_encode(m, b, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_message: seed %s: %s\n", msg_type_name(m->type), err);
        exit(2);
    }
}

static void write_seeds(const char *dir)
{
    static uint8_t text[3000], tiny[200];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (uint8_t) "seed corpus "[i % 12];
    memset(tiny, 't', sizeof(tiny));
    struct content_id ids[3];
    for (int i = 0; i < 3; i++)
        memset(ids[i].b, 0x11 * (i + 1), CONTENT_ID_SIZE);
    struct chunk chunks[2] = {{.len = CHUNKER_MIN_SIZE, .id = ids[0]}, {.len = 7, .id = ids[1]}};
    struct msg_entry ents[] = {
        {.path = "d", .type = S_IFDIR, .mode = 0755, .mtime_ns = 1, .id = ids[0]},
        {.path = "d/file", .type = S_IFREG, .mode = 0644, .size = 9, .id = ids[2]},
        {.path = "d/link", .type = S_IFLNK, .mode = 0777, .target = "file"},
    };
    struct msg_pull_entry pulls[] = {{.from = "d/file", .as = "d/file"},
                                     {.from = "e/t", .as = "e/t.conflict-b-20240101-000000"}};
    const char *list_dirs[] = {"", "d", "d/sub"};
    struct chunk gchunks[4] = {{.len = CHUNKER_MIN_SIZE, .id = ids[0]},
                               {.len = CHUNKER_MIN_SIZE, .id = ids[1]},
                               {.len = CHUNKER_MIN_SIZE, .id = ids[2]},
                               {.len = 7, .id = ids[0]}};
    struct chunk_group groups[2] = {{.count = 2, .bytes = 2 * CHUNKER_MIN_SIZE},
                                    {.count = 2, .bytes = CHUNKER_MIN_SIZE + 7}};
    chunk_group_id(gchunks, 2, &groups[0].id);
    chunk_group_id(gchunks + 2, 2, &groups[1].id);
    struct content_id text_id;
    content_id_of_chunk(text, sizeof(text), &text_id);
    struct msg ms[] = {
        {.type = MSG_HELLO, .hello = {.role = MSG_ROLE_SENDER, .flags = MSG_HELLO_DELETE}},
        {.type = MSG_MANIFEST, .manifest = {.entries = ents, .n = 3}},
        {.type = MSG_MANIFEST_END, .manifest_end = {.count = 3, .root = ids[0]}},
        {.type = MSG_UPDATE, .update = {.path = "e", .type = S_IFDIR, .mode = 0700}},
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
                    .size = CHUNKER_MIN_SIZE + 7,
                    .chunks = chunks,
                    .nchunks = 2}},
        {.type = MSG_WANT, .want = {.ids = ids, .n = 3}},
        {.type = MSG_DATA, .data = {.id = text_id, .bytes = text, .len = sizeof(text)}},
        {.type = MSG_DELETE, .del = {.path = "gone"}},
        {.type = MSG_LIST, .list = {.dirs = list_dirs, .n = 3}},
        {.type = MSG_UPDATE,
         .update = {.path = "e/g",
                    .type = S_IFREG,
                    .mode = 0644,
                    .size = 3 * CHUNKER_MIN_SIZE + 7,
                    .groups = groups,
                    .ngroups = 2}},
        {.type = MSG_GROUP, .group = {.id = groups[0].id, .chunks = gchunks, .n = 2}},
        {.type = MSG_RENAME, .rename = {.from = "a/b", .to = "c"}},
        {.type = MSG_LINK, .link = {.path = "h", .existing = "e/t"}},
        {.type = MSG_COMMIT, .commit = {.seq = 1, .flags = MSG_COMMIT_WANT_ROOT}},
        {.type = MSG_ACK, .ack = {.seq = 1, .root = ids[1]}},
        {.type = MSG_ERROR, .error = {.code = 5, .path = "e/c", .message = "disk"}},
        {.type = MSG_BYE},
        {.type = MSG_PEER, .peer = {.tree_id = ids[2], .host = "robot-1.lab"}},
        {.type = MSG_PULL, .pull = {.flags = MSG_PULL_LAST, .entries = pulls, .n = 2}},
    };
    size_t n = sizeof(ms) / sizeof(ms[0]);
    struct msg_buf all = {0};
    for (size_t i = 0; i < n; i++)
        encode_or_die(&ms[i], &all);
    write_file(dir, "seed-all", all.buf, all.len);
    for (size_t i = 1; i < n; i++) {
        struct msg_buf one = {0};
        char name[64];
        encode_or_die(&ms[0], &one);
        encode_or_die(&ms[i], &one);
        snprintf(name, sizeof(name), "seed-%02zu-%s", i, msg_type_name(ms[i].type));
        write_file(dir, name, one.buf, one.len);
        msg_buf_release(&one);
    }
    msg_buf_release(&all);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *dir = getenv("WSYNC_FUZZ_SEED");
    if (dir && *dir)
        write_seeds(dir);
    return 0;
}

/* An accepted message must re-encode; abort if not. */
static void check_reencodes(const struct msg *m, struct msg_buf *out)
{
    char err[1024];
    if (msg_encode(m, out, err, sizeof(err)) < 0) {
        fprintf(stderr, "decoded %s but cannot re-encode it: %s\n", msg_type_name(m->type), err);
        abort();
    }
}

/* The same bytes read as records `u8 type | u16 n | n bytes` (n cut to what
 * is left), each handed to the message decoder as one frame: the fuzzer
 * reaches every payload decoder without having to get frame lengths right. */
static void fuzz_payloads(const uint8_t *p, size_t size)
{
    struct msg m = {0};
    struct msg_buf out = {0};
    char err[1024];
    bool pending = false;
    while (size >= 3) {
        uint8_t type = p[0];
        size_t n = (size_t)(p[1] | p[2] << 8) % (size - 2);
        const uint8_t *payload = p + 3;
        p += 3 + n;
        size -= 3 + n;
        int r = pending ? msg_decode_more(&m, type, payload, n, err, sizeof(err))
                        : msg_decode(type, payload, n, &m, err, sizeof(err));
        if (r < 0 && !err[0])
            abort(); /* every failure names its cause */
        pending = r == 1;
        if (r == 0) {
            out.len = 0;
            check_reencodes(&m, &out);
        }
        if (r != 1)
            msg_release(&m);
    }
    if (pending)
        msg_release(&m);
    msg_buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_payloads(data, size);

    struct wire *w = wire_new_mem(data, size);
    struct msg_buf again = {0};
    struct msg m;
    char err[1024];
    size_t accepted = 0;
    int r;
    while ((r = wire_recv(w, &m, err, sizeof(err))) == 0) {
        check_reencodes(&m, &again); /* a long WANT may become several messages */
        accepted++;
        msg_release(&m);
    }
    if (r >= 0 || !err[0])
        abort(); /* every failure names its cause */
    wire_free(w);

    w = wire_new_mem(again.buf, again.len);
    size_t redecoded = 0;
    while ((r = wire_recv(w, &m, err, sizeof(err))) == 0) {
        redecoded++;
        msg_release(&m);
    }
    if (r != -ENODATA || redecoded < accepted) {
        fprintf(stderr, "re-encoded stream: %zu of %zu messages, then %d: %s\n", redecoded,
                accepted, r, err);
        abort();
    }
    wire_free(w);
    msg_buf_release(&again);
    return 0;
}
