/*
 * message.c — see message.h.
 *
 * Encoding goes through a writer that appends to a msg_buf and remembers
 * the first allocation failure; decoding through a reader that refuses to
 * step past the payload's end.  The field checks (check_*) are shared by
 * both directions, so the encoder cannot produce what the decoder refuses.
 * A decoded message's strings and arrays live in its arena, freed at once
 * by msg_release.
 */
#include "message.h"

#include <assert.h>
#include <errno.h>
#include <lz4.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef WSYNC_VERSION
#define WSYNC_VERSION "unknown"
#endif

#define MAGIC     "WSYNC"
#define MAGIC_LEN 5

/* File types on the wire. */
#define FT_REG 1
#define FT_DIR 2
#define FT_LNK 3
/* UPDATE body of a regular file: a chunk list, MSG_ENC_RAW/LZ4 inline, or
 * the chunk list as group ids. */
#define BODY_CHUNKS 0
#define BODY_GROUPS 3
#define GROUP_ENTRY_SIZE (4 + 8 + CONTENT_ID_SIZE)
/* Groups one UPDATE frame can hold besides its largest path. */
#define GROUPS_PER_FRAME ((WIRE_MAX_FRAME - WIRE_MAX_PATH - 64) / GROUP_ENTRY_SIZE)

#define CHUNK_ENTRY_SIZE   (4 + CONTENT_ID_SIZE)
#define CHUNKS_PER_FRAME   65536u     /* encoder's choice: 1.25 MiB frames */
#define WANT_PER_FRAME     65536u     /* encoder's choice: 1 MiB frames */
#define MANIFEST_BATCH     (1u << 20) /* encoder's choice: raw body per frame */
#define MANIFEST_MIN_ENTRY 19u        /* shared, suffix len, type, mode, mtime */

_Static_assert(CHUNKS_PER_FRAME *CHUNK_ENTRY_SIZE + WIRE_MAX_PATH + 64 < WIRE_MAX_FRAME,
               "an UPDATE frame fits");
_Static_assert(CHUNKER_MAX_SIZE + CHUNKER_MAX_SIZE / 255 + 64 < WIRE_MAX_FRAME,
               "a DATA frame fits, even lz4-expanded");
_Static_assert((uint64_t)WIRE_MAX_CHUNKS *CHUNKER_MIN_SIZE == WIRE_MAX_FILE_SIZE,
               "the chunk limit follows from the size limit");

/* ---- errors ------------------------------------------------------------ */

__attribute__((format(printf, 5, 6))) static int failf(char *err, size_t errsize, int code,
                                                       const char *what, const char *fmt, ...)
{
    if (err && errsize) {
        int n = snprintf(err, errsize, "%s: ", what);
        if (n >= 0 && (size_t)n < errsize) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errsize - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

const char *msg_type_name(unsigned type)
{
    static const char *const names[] = {
        [MSG_HELLO] = "HELLO",   [MSG_MANIFEST] = "MANIFEST", [MSG_MANIFEST_END] = "MANIFEST_END",
        [MSG_UPDATE] = "UPDATE", [MSG_CHUNKS] = "CHUNKS",     [MSG_WANT] = "WANT",
        [MSG_DATA] = "DATA",     [MSG_DELETE] = "DELETE",     [MSG_RENAME] = "RENAME",
        [MSG_LINK] = "LINK",     [MSG_COMMIT] = "COMMIT",     [MSG_ACK] = "ACK",
        [MSG_ERROR] = "ERROR",   [MSG_BYE] = "BYE",           [MSG_LIST] = "LIST",
        [MSG_GROUP] = "GROUP",   [MSG_PEER] = "PEER",         [MSG_PULL] = "PULL",
        [MSG_RESCAN] = "RESCAN", [MSG_WATCH] = "WATCH",       [MSG_CHANGED] = "CHANGED",
    };
    static __thread char unknown[16];
    if (type < sizeof(names) / sizeof(names[0]) && names[type])
        return names[type];
    snprintf(unknown, sizeof(unknown), "type 0x%02x", type & 0xffu);
    return unknown;
}

/* ---- checks shared by encoder and decoder ------------------------------ */

static int check_path(const char *path, const char *field, const char *what, char *err,
                      size_t errsize)
{
    char why[WIRE_MAX_NAME + 300];
    int r = wire_path_check(path, why, sizeof(why));
    return r ? failf(err, errsize, r, what, "%s: %s", field, why) : 0;
}

static int check_update_mode(uint32_t mode, const char *path, const char *what, char *err,
                             size_t errsize)
{
    if (mode & ~07777u)
        return failf(err, errsize, -EPROTO, what, "mode 0%o of '%.200s' is not a permission mode",
                     mode, path);
    if (mode & 07000u)
        return failf(err, errsize, -EPERM, what,
                     "mode 0%o of '%.200s' has setuid, setgid or sticky bits: refused", mode, path);
    return 0;
}

static int check_target(size_t len, const char *path, const char *what, char *err, size_t errsize)
{
    if (len == 0)
        return failf(err, errsize, -EPROTO, what, "symlink '%.200s' has an empty target", path);
    if (len > WIRE_MAX_TARGET)
        return failf(err, errsize, -EMSGSIZE, what,
                     "target of symlink '%.200s' is %zu bytes, over the limit of %u", path, len,
                     WIRE_MAX_TARGET);
    return 0;
}

/* A chunk list of n chunks can describe a file of size bytes. */
static int check_chunk_count(uint64_t size, uint64_t n, const char *path, const char *what,
                             char *err, size_t errsize)
{
    if (size > WIRE_MAX_FILE_SIZE)
        return failf(err, errsize, -EMSGSIZE, what,
                     "'%.200s' is %llu bytes, over the limit of %llu", path,
                     (unsigned long long)size, (unsigned long long)WIRE_MAX_FILE_SIZE);
    if (n > WIRE_MAX_CHUNKS)
        return failf(err, errsize, -EMSGSIZE, what,
                     "'%.200s' has %llu chunks, over the limit of %u", path, (unsigned long long)n,
                     WIRE_MAX_CHUNKS);
    uint64_t lo = (size + CHUNKER_MAX_SIZE - 1) / CHUNKER_MAX_SIZE;
    uint64_t hi = size ? 1 + (size - 1) / CHUNKER_MIN_SIZE : 0;
    if (n < lo || n > hi)
        return failf(err, errsize, -EPROTO, what, "%llu chunks cannot make '%.200s' of %llu bytes",
                     (unsigned long long)n, path, (unsigned long long)size);
    return 0;
}

/* Chunk i of n: 1..CHUNKER_MAX_SIZE bytes, and >= CHUNKER_MIN_SIZE unless
 * it is the last; with the bytes before it (off), within size. */
static int check_chunk(uint64_t i, uint64_t n, uint32_t len, uint64_t off, uint64_t size,
                       const char *path, const char *what, char *err, size_t errsize)
{
    if (len == 0 || len > CHUNKER_MAX_SIZE)
        return failf(err, errsize, len ? -EMSGSIZE : -EPROTO, what,
                     "chunk %llu of '%.200s' is %u bytes (1..%u allowed)", (unsigned long long)i,
                     path, len, CHUNKER_MAX_SIZE);
    if (i + 1 < n && len < CHUNKER_MIN_SIZE)
        return failf(err, errsize, -EPROTO, what,
                     "chunk %llu of '%.200s' is %u bytes: only the last may be under %u",
                     (unsigned long long)i, path, len, CHUNKER_MIN_SIZE);
    if (len > size - off || (i + 1 == n && off + len != size))
        return failf(err, errsize, -EPROTO, what,
                     "chunk lengths of '%.200s' do not add up to its size %llu", path,
                     (unsigned long long)size);
    return 0;
}

/* Group g (of ngroups) of a file of size bytes: a count and byte total that
 * chunks obeying the rules above could have (only the file's last chunk may
 * be short).  Sums are checked by the caller. */
static int check_group(uint64_t g, uint64_t ngroups, const struct chunk_group *gr,
                       const char *path, const char *what, char *err, size_t errsize)
{
    if (gr->count == 0 || gr->count > CHUNK_GROUP_MAX)
        return failf(err, errsize, -EPROTO, what, "group %llu of '%.200s' has %u chunks (1..%u)",
                     (unsigned long long)g, path, gr->count, CHUNK_GROUP_MAX);
    uint64_t lo = (uint64_t)(gr->count - 1) * CHUNKER_MIN_SIZE + (g + 1 < ngroups ? CHUNKER_MIN_SIZE : 1);
    uint64_t hi = (uint64_t)gr->count * CHUNKER_MAX_SIZE;
    if (gr->bytes < lo || gr->bytes > hi)
        return failf(err, errsize, -EPROTO, what,
                     "group %llu of '%.200s': %u chunks cannot hold %llu bytes",
                     (unsigned long long)g, path, gr->count, (unsigned long long)gr->bytes);
    return 0;
}

/* Groups g[0..n) describe `total` chunks making `size` bytes. */
static int check_groups(const struct chunk_group *g, size_t n, uint64_t total, uint64_t size,
                        const char *path, const char *what, char *err, size_t errsize)
{
    if (n == 0 || n > total || n > GROUPS_PER_FRAME)
        return failf(err, errsize, n > GROUPS_PER_FRAME ? -EMSGSIZE : -EPROTO, what,
                     "%zu groups for %llu chunks of '%.200s'", n, (unsigned long long)total, path);
    uint64_t count = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        int e = check_group(i, n, &g[i], path, what, err, errsize);
        if (e)
            return e;
        count += g[i].count;
        bytes += g[i].bytes;
    }
    if (count != total || bytes != size)
        return failf(err, errsize, -EPROTO, what,
                     "groups of '%.200s' add up to %llu chunks and %llu bytes, not %llu and %llu",
                     path, (unsigned long long)count, (unsigned long long)bytes,
                     (unsigned long long)total, (unsigned long long)size);
    return 0;
}

int msg_chunk_list_check(const char *path, uint64_t size, const struct chunk *c, size_t n,
                         char *err, size_t errsize)
{
    int e = check_chunk_count(size, n, path, "chunk list", err, errsize);
    uint64_t off = 0;
    for (size_t i = 0; !e && i < n; i++) {
        e = check_chunk(i, n, c[i].len, off, size, path, "chunk list", err, errsize);
        off += c[i].len;
    }
    return e;
}

static int type_to_wire(uint32_t type)
{
    switch (type) {
    case S_IFREG:
        return FT_REG;
    case S_IFDIR:
        return FT_DIR;
    case S_IFLNK:
        return FT_LNK;
    }
    return -1;
}

static uint32_t type_from_wire(uint8_t t)
{
    return t == FT_REG ? S_IFREG : t == FT_DIR ? S_IFDIR : t == FT_LNK ? S_IFLNK : 0;
}

/* ---- arena ------------------------------------------------------------- */

struct msg_arena {
    struct msg_arena *next;
    size_t used, cap;
    max_align_t data[];
};

#define ARENA_BLOCK (16u << 10)

static void *arena_alloc(struct msg *m, size_t n)
{
    n = n ? (n + 15) & ~(size_t)15 : 16;
    struct msg_arena *a = m->arena;
    if (a && a->cap - a->used >= n) {
        void *p = (unsigned char *)a->data + a->used;
        a->used += n;
        return p;
    }
    size_t cap = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
    struct msg_arena *b = malloc(sizeof(*b) + cap);
    if (!b)
        return NULL;
    b->cap = cap;
    b->used = n;
    if (a && cap == n) { /* a one-off: keep the partly used block on top */
        b->next = a->next;
        a->next = b;
    } else {
        b->next = a;
        m->arena = b;
    }
    return b->data;
}

void msg_release(struct msg *m)
{
    for (struct msg_arena *a = m->arena, *next; a; a = next) {
        next = a->next;
        free(a);
    }
    memset(m, 0, sizeof(*m));
}

/* ---- writer ------------------------------------------------------------ */

struct writer {
    struct msg_buf *b;
    int err; /* first failure (-ENOMEM); later puts do nothing */
};

static int buf_reserve(struct msg_buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n)
        cap *= 2;
    uint8_t *p = realloc(b->buf, cap);
    if (!p)
        return -ENOMEM;
    b->buf = p;
    b->cap = cap;
    return 0;
}

void msg_buf_release(struct msg_buf *b)
{
    free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
}

static uint8_t *put_room(struct writer *w, size_t n)
{
    if (w->err)
        return NULL;
    if (buf_reserve(w->b, n)) {
        w->err = -ENOMEM;
        return NULL;
    }
    uint8_t *p = w->b->buf + w->b->len;
    w->b->len += n;
    return p;
}

static void put_le(struct writer *w, uint64_t v, size_t n)
{
    uint8_t *p = put_room(w, n);
    for (size_t i = 0; p && i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u8(struct writer *w, uint8_t v)
{
    put_le(w, v, 1);
}
static void put_u16(struct writer *w, uint16_t v)
{
    put_le(w, v, 2);
}
static void put_u32(struct writer *w, uint32_t v)
{
    put_le(w, v, 4);
}
static void put_u64(struct writer *w, uint64_t v)
{
    put_le(w, v, 8);
}

static void put_bytes(struct writer *w, const void *p, size_t n)
{
    uint8_t *d = put_room(w, n);
    if (d && n)
        memcpy(d, p, n);
}

static void put_str(struct writer *w, const char *s, size_t n)
{
    put_u32(w, (uint32_t)n);
    put_bytes(w, s, n);
}

static void put_id(struct writer *w, const struct content_id *id)
{
    put_bytes(w, id->b, CONTENT_ID_SIZE);
}

static size_t frame_begin(struct writer *w, uint8_t type)
{
    size_t start = w->b->len;
    put_u32(w, 0);
    put_u8(w, type);
    return start;
}

static void frame_end(struct writer *w, size_t start)
{
    if (w->err)
        return;
    size_t len = w->b->len - start - 4;
    if (len > WIRE_MAX_FRAME) { /* every encoder below stays far under it */
        w->err = -EMSGSIZE;
        return;
    }
    for (int i = 0; i < 4; i++)
        w->b->buf[start + (size_t)i] = (uint8_t)(len >> (8 * i));
}

/* Append u8 encoding, u32 wire length, bytes: lz4 when it is smaller than
 * the len raw bytes, else raw.  lz4 writes straight into the buffer. */
static void put_packed(struct writer *w, const void *raw, size_t len)
{
    int bound = LZ4_compressBound((int)len);
    if (len == 0 || w->err || buf_reserve(w->b, 5 + (size_t)bound)) {
        if (!w->err && len && bound > 0)
            w->err = -ENOMEM;
        put_u8(w, MSG_ENC_RAW);
        put_str(w, raw, len);
        return;
    }
    uint8_t *dst = w->b->buf + w->b->len + 5;
    int c = LZ4_compress_default(raw, (char *)dst, (int)len, bound);
    if (c > 0 && (size_t)c < len) {
        put_u8(w, MSG_ENC_LZ4);
        put_u32(w, (uint32_t)c);
        w->b->len += (size_t)c; /* already in place, room reserved above */
    } else {
        put_u8(w, MSG_ENC_RAW);
        put_str(w, raw, len);
    }
}

/* ---- reader ------------------------------------------------------------ */

struct reader {
    const uint8_t *p;
    size_t len, pos;
    const char *what;
    char *err;
    size_t errsize;
};

#define RFAIL(r, code, ...) failf((r)->err, (r)->errsize, (code), (r)->what, __VA_ARGS__)

static int get_bytes(struct reader *r, const char *field, size_t n, const uint8_t **out)
{
    *out = r->p + r->pos;
    if (r->len - r->pos < n)
        return RFAIL(r, -EPROTO, "payload ends inside %s", field);
    r->pos += n;
    return 0;
}

static int get_le(struct reader *r, const char *field, size_t n, uint64_t *v)
{
    const uint8_t *p;
    int e = get_bytes(r, field, n, &p);
    *v = 0;
    if (e)
        return e;
    for (size_t i = 0; i < n; i++)
        *v |= (uint64_t)p[i] << (8 * i);
    return 0;
}

static int get_u8(struct reader *r, const char *field, uint8_t *v)
{
    uint64_t x = 0;
    int e = get_le(r, field, 1, &x);
    *v = (uint8_t)x;
    return e;
}
static int get_u16(struct reader *r, const char *field, uint16_t *v)
{
    uint64_t x = 0;
    int e = get_le(r, field, 2, &x);
    *v = (uint16_t)x;
    return e;
}
static int get_u32(struct reader *r, const char *field, uint32_t *v)
{
    uint64_t x = 0;
    int e = get_le(r, field, 4, &x);
    *v = (uint32_t)x;
    return e;
}
static int get_u64(struct reader *r, const char *field, uint64_t *v)
{
    return get_le(r, field, 8, v);
}
static int get_i64(struct reader *r, const char *field, int64_t *v)
{
    uint64_t x = 0;
    int e = get_le(r, field, 8, &x);
    *v = (int64_t)x;
    return e;
}

static int get_id(struct reader *r, const char *field, struct content_id *id)
{
    const uint8_t *p;
    int e = get_bytes(r, field, CONTENT_ID_SIZE, &p);
    if (!e)
        memcpy(id->b, p, CONTENT_ID_SIZE);
    return e;
}

static int no_memory(struct reader *r)
{
    return RFAIL(r, -ENOMEM, "out of memory");
}

/* A u32-length-prefixed string of at most max bytes (else too_long), no
 * NUL inside, copied NUL-terminated into m's arena. */
static int get_str(struct msg *m, struct reader *r, const char *field, uint32_t max, int too_long,
                   const char **out, uint32_t *outlen)
{
    uint32_t n;
    const uint8_t *p;
    int e = get_u32(r, field, &n);
    if (e)
        return e;
    if (n > max)
        return RFAIL(r, too_long, "%s is %u bytes, over the limit of %u", field, n, max);
    if ((e = get_bytes(r, field, n, &p)))
        return e;
    if (n && memchr(p, 0, n))
        return RFAIL(r, -EPROTO, "%s contains a NUL byte", field);
    char *s = arena_alloc(m, (size_t)n + 1);
    if (!s)
        return no_memory(r);
    if (n)
        memcpy(s, p, n);
    s[n] = 0;
    *out = s;
    if (outlen)
        *outlen = n;
    return 0;
}

static int get_path(struct msg *m, struct reader *r, const char *field, const char **out)
{
    int e = get_str(m, r, field, WIRE_MAX_PATH, -ENAMETOOLONG, out, NULL);
    return e ? e : check_path(*out, field, r->what, r->err, r->errsize);
}

/* wire_len bytes at src in encoding enc, which must decode to exactly
 * raw_len bytes, copied into m's arena. */
static int get_packed(struct msg *m, struct reader *r, const char *field, uint32_t raw_len,
                      const uint8_t **out, uint8_t *enc_out, uint32_t *wire_len_out)
{
    uint8_t enc;
    uint32_t wlen;
    const uint8_t *src;
    int e;
    if ((e = get_u8(r, "encoding", &enc)) || (e = get_u32(r, "byte count", &wlen)))
        return e;
    if (enc != MSG_ENC_RAW && enc != MSG_ENC_LZ4)
        return RFAIL(r, -EPROTO, "unknown encoding %u of %s", enc, field);
    if (enc == MSG_ENC_RAW && wlen != raw_len)
        return RFAIL(r, -EPROTO, "%s: %u raw bytes sent for %u", field, wlen, raw_len);
    if (enc == MSG_ENC_LZ4 && wlen > (uint32_t)LZ4_compressBound((int)raw_len))
        return RFAIL(r, -EMSGSIZE, "%s: %u lz4 bytes for %u cannot be", field, wlen, raw_len);
    if ((e = get_bytes(r, field, wlen, &src)))
        return e;
    uint8_t *dst = arena_alloc(m, raw_len);
    if (!dst)
        return no_memory(r);
    if (enc == MSG_ENC_RAW) {
        if (raw_len)
            memcpy(dst, src, raw_len);
    } else {
        int n = LZ4_decompress_safe((const char *)src, (char *)dst, (int)wlen, (int)raw_len);
        if (n != (int)raw_len)
            return RFAIL(r, -EBADMSG, "%s: the lz4 bytes do not decompress to %u bytes", field,
                         raw_len);
    }
    *out = dst;
    if (enc_out)
        *enc_out = enc;
    if (wire_len_out)
        *wire_len_out = wlen;
    return 0;
}

static int get_end(struct reader *r)
{
    if (r->pos != r->len)
        return RFAIL(r, -EPROTO, "%zu bytes after the last field", r->len - r->pos);
    return 0;
}

/* ---- HELLO ------------------------------------------------------------- */

static int encode_hello(struct writer *w, const struct msg_hello *h, char *err, size_t errsize)
{
    const char *tool = h->tool_version ? h->tool_version : WSYNC_VERSION;
    size_t tlen = strlen(tool);
    if (tlen > WIRE_MAX_TOOL_VERSION)
        return failf(err, errsize, -EMSGSIZE, "HELLO",
                     "tool version is %zu bytes, over the limit of %u", tlen,
                     WIRE_MAX_TOOL_VERSION);
    if (h->role != MSG_ROLE_SENDER && h->role != MSG_ROLE_RECEIVER)
        return failf(err, errsize, -EINVAL, "HELLO", "unknown role %u", h->role);
    if (h->flags & ~MSG_HELLO_FLAGS)
        return failf(err, errsize, -EINVAL, "HELLO", "unknown flags 0x%x", h->flags);
    size_t f = frame_begin(w, MSG_HELLO);
    put_bytes(w, MAGIC, MAGIC_LEN);
    put_u16(w, WIRE_PROTOCOL_VERSION);
    put_str(w, tool, tlen);
    put_u8(w, h->role);
    put_u32(w, h->flags);
    put_id(w, &h->skip_digest);
    frame_end(w, f);
    return 1;
}

static int decode_hello(struct msg *m, struct reader *r)
{
    struct msg_hello *h = &m->hello;
    const uint8_t *magic;
    uint32_t tlen;
    int e;
    if (r->len < MAGIC_LEN + 2 || get_bytes(r, "magic", MAGIC_LEN, &magic) ||
        memcmp(magic, MAGIC, MAGIC_LEN) != 0)
        return RFAIL(r, -EPROTONOSUPPORT, "not a wsync peer (no WSYNC magic)");
    if ((e = get_u16(r, "version", &h->version)))
        return e;
    if (h->version != WIRE_PROTOCOL_VERSION) {
        const char *tool = NULL;
        get_str(m, r, "tool version", WIRE_MAX_TOOL_VERSION, -EMSGSIZE, &tool, NULL);
        return RFAIL(r, -EPROTONOSUPPORT,
                     "protocol version mismatch: the peer speaks version %u (wsync %s), "
                     "this side speaks version %u (wsync %s)",
                     h->version, tool ? tool : "unknown", WIRE_PROTOCOL_VERSION, WSYNC_VERSION);
    }
    if ((e = get_str(m, r, "tool version", WIRE_MAX_TOOL_VERSION, -EMSGSIZE, &h->tool_version,
                     &tlen)) ||
        (e = get_u8(r, "role", &h->role)) || (e = get_u32(r, "flags", &h->flags)) ||
        (e = get_id(r, "skip digest", &h->skip_digest)))
        return e;
    if (h->role != MSG_ROLE_SENDER && h->role != MSG_ROLE_RECEIVER)
        return RFAIL(r, -EPROTO, "unknown role %u", h->role);
    if (h->flags & ~MSG_HELLO_FLAGS)
        return RFAIL(r, -EPROTO, "unknown flags 0x%x (from a newer wsync?)",
                     h->flags & ~MSG_HELLO_FLAGS);
    return get_end(r);
}

/* ---- MANIFEST ---------------------------------------------------------- */

int msg_path_cmp(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    while (*x && *x == *y)
        x++, y++;
    unsigned cx = *x == '/' ? 1u : *x, cy = *y == '/' ? 1u : *y;
    return (int)cx - (int)cy;
}

static int check_entry(const struct msg_entry *e, const char *prev, const char *what, char *err,
                       size_t errsize)
{
    int r = check_path(e->path, "path", what, err, errsize);
    if (r)
        return r;
    if (prev && msg_path_cmp(prev, e->path) >= 0)
        return failf(err, errsize, -EPROTO, what, "entries out of order: '%.200s' after '%.200s'",
                     e->path, prev);
    if (type_to_wire(e->type) < 0)
        return failf(err, errsize, -EPROTO, what, "'%.200s' has unknown file type 0%o", e->path,
                     e->type);
    if (e->mode & ~07777u)
        return failf(err, errsize, -EPROTO, what, "mode 0%o of '%.200s' is not a permission mode",
                     e->mode, e->path);
    if (e->type == S_IFREG && e->size > WIRE_MAX_FILE_SIZE)
        return failf(err, errsize, -EMSGSIZE, what,
                     "'%.200s' is %llu bytes, over the limit of %llu", e->path,
                     (unsigned long long)e->size, (unsigned long long)WIRE_MAX_FILE_SIZE);
    if (e->type == S_IFLNK)
        return check_target(e->target ? strlen(e->target) : 0, e->path, what, err, errsize);
    return 0;
}

/* Entry fields after the path, shared by the frame body and the digest
 * (which leaves out a directory's subtree digest: wire false). */
static void put_entry_tail(struct writer *w, const struct msg_entry *e, bool wire)
{
    put_u8(w, (uint8_t)type_to_wire(e->type));
    put_u32(w, e->mode);
    put_u64(w, (uint64_t)e->mtime_ns);
    if (e->type == S_IFREG) {
        put_u64(w, e->size);
        put_id(w, &e->id);
    } else if (e->type == S_IFLNK) {
        put_str(w, e->target, strlen(e->target));
    } else if (wire) {
        put_id(w, &e->id);
    }
}

static int manifest_frame(struct writer *w, const struct msg_buf *body, uint32_t count)
{
    size_t f = frame_begin(w, MSG_MANIFEST);
    put_u32(w, count);
    put_u32(w, (uint32_t)body->len);
    put_packed(w, body->buf, body->len);
    frame_end(w, f);
    return 1;
}

static int encode_manifest(struct writer *w, const struct msg_manifest *mf, char *err,
                           size_t errsize)
{
    struct msg_buf body = {0};
    struct writer bw = {.b = &body};
    const char *prev = NULL, *first = NULL; /* previous path overall / in this frame */
    uint32_t count = 0;
    int frames = 0, e = 0;
    for (size_t i = 0; i < mf->n; i++) {
        const struct msg_entry *en = &mf->entries[i];
        if ((e = check_entry(en, prev, "MANIFEST", err, errsize)))
            break;
        size_t plen = strlen(en->path), shared = 0;
        if (first)
            while (shared < plen && prev[shared] == en->path[shared])
                shared++;
        put_u16(&bw, (uint16_t)shared);
        put_str(&bw, en->path + shared, plen - shared);
        put_entry_tail(&bw, en, true);
        prev = first = en->path;
        count++;
        if (body.len >= MANIFEST_BATCH || i + 1 == mf->n) {
            frames += manifest_frame(w, &body, count);
            body.len = 0;
            count = 0;
            first = NULL;
        }
    }
    if (!e)
        e = bw.err ? bw.err : w->err;
    if (e == -ENOMEM)
        failf(err, errsize, e, "MANIFEST", "out of memory");
    msg_buf_release(&body);
    return e ? e : frames;
}

static int decode_manifest(struct msg *m, struct reader *r)
{
    uint32_t count, raw_len;
    const uint8_t *raw;
    int e;
    if ((e = get_u32(r, "entry count", &count)) || (e = get_u32(r, "raw length", &raw_len)))
        return e;
    if (raw_len > WIRE_MAX_FRAME)
        return RFAIL(r, -EMSGSIZE, "raw length %u over the limit of %u", raw_len, WIRE_MAX_FRAME);
    if (count == 0 || count > raw_len / MANIFEST_MIN_ENTRY)
        return RFAIL(r, -EPROTO, "%u entries cannot fill %u bytes", count, raw_len);
    if ((e = get_packed(m, r, "entries", raw_len, &raw, NULL, NULL)) || (e = get_end(r)))
        return e;
    struct msg_entry *ents = arena_alloc(m, (size_t)count * sizeof(*ents));
    if (!ents)
        return no_memory(r);
    memset(ents, 0, (size_t)count * sizeof(*ents));
    struct reader b = {
        .p = raw, .len = raw_len, .what = r->what, .err = r->err, .errsize = r->errsize};
    const char *prev = NULL;
    size_t prev_len = 0;
    for (uint32_t i = 0; i < count; i++) {
        struct msg_entry *en = &ents[i];
        uint16_t shared;
        uint32_t n;
        const uint8_t *suffix;
        uint8_t ft;
        if ((e = get_u16(&b, "path prefix", &shared)) || (e = get_u32(&b, "path", &n)))
            return e;
        if (shared > prev_len)
            return RFAIL(r, -EPROTO, "entry %u shares %u bytes with a %zu-byte path", i, shared,
                         prev_len);
        if (n > WIRE_MAX_PATH - shared)
            return RFAIL(r, -ENAMETOOLONG, "path of entry %u is %u bytes, over the limit of %u", i,
                         shared + n, WIRE_MAX_PATH);
        if ((e = get_bytes(&b, "path", n, &suffix)))
            return e;
        if (n && memchr(suffix, 0, n))
            return RFAIL(r, -EPROTO, "path of entry %u contains a NUL byte", i);
        char *path = arena_alloc(m, (size_t)shared + n + 1);
        if (!path)
            return no_memory(r);
        if (shared)
            memcpy(path, prev, shared);
        if (n)
            memcpy(path + shared, suffix, n);
        path[shared + n] = 0;
        en->path = path;
        if ((e = get_u8(&b, "type", &ft)) || (e = get_u32(&b, "mode", &en->mode)) ||
            (e = get_i64(&b, "mtime", &en->mtime_ns)))
            return e;
        en->type = type_from_wire(ft);
        if (en->type == S_IFREG) {
            if ((e = get_u64(&b, "size", &en->size)) || (e = get_id(&b, "file id", &en->id)))
                return e;
        } else if (en->type == S_IFLNK) {
            uint32_t tlen;
            if ((e = get_str(m, &b, "target", UINT32_MAX, -EMSGSIZE, &en->target, &tlen)))
                return e;
        } else if (en->type == S_IFDIR) {
            if ((e = get_id(&b, "subtree digest", &en->id)))
                return e;
        }
        if ((e = check_entry(en, prev, r->what, r->err, r->errsize)))
            return e;
        prev = path;
        prev_len = shared + n;
    }
    if ((e = get_end(&b)))
        return e;
    m->manifest.entries = ents;
    m->manifest.n = count;
    return 0;
}

/* Hash the bytes put_* would write, through a small buffer. */
void msg_manifest_digest_add(struct content_hasher *h, const struct msg_entry *e)
{
    uint8_t small[64];
    struct msg_buf b = {.buf = small, .len = 0, .cap = sizeof(small)};
    struct writer w = {.b = &b};
    size_t plen = strlen(e->path);
    put_u32(&w, (uint32_t)plen);
    content_hasher_update(h, b.buf, b.len);
    content_hasher_update(h, e->path, plen);
    b.len = 0;
    if (e->type == S_IFLNK) {
        put_u8(&w, (uint8_t)type_to_wire(e->type));
        put_u32(&w, e->mode);
        put_u64(&w, (uint64_t)e->mtime_ns);
        put_u32(&w, (uint32_t)strlen(e->target));
        content_hasher_update(h, b.buf, b.len);
        content_hasher_update(h, e->target, strlen(e->target));
    } else {
        put_entry_tail(&w, e, false); /* at most 1 + 4 + 8 + 8 + 16 bytes: fits */
        content_hasher_update(h, b.buf, b.len);
    }
    assert(b.buf == small); /* never reallocated */
}

static int encode_manifest_end(struct writer *w, const struct msg_manifest_end *me, char *err,
                               size_t errsize)
{
    if (me->flags & ~MSG_MANIFEST_ELIDED)
        return failf(err, errsize, -EINVAL, "MANIFEST_END", "unknown flags 0x%x", me->flags);
    size_t f = frame_begin(w, MSG_MANIFEST_END);
    put_u32(w, me->flags);
    put_u64(w, me->count);
    put_id(w, &me->root);
    put_id(w, &me->digest);
    frame_end(w, f);
    return 1;
}

static int decode_manifest_end(struct msg *m, struct reader *r)
{
    struct msg_manifest_end *me = &m->manifest_end;
    int e;
    if ((e = get_u32(r, "flags", &me->flags)) || (e = get_u64(r, "count", &me->count)) ||
        (e = get_id(r, "root", &me->root)) || (e = get_id(r, "digest", &me->digest)))
        return e;
    if (me->flags & ~MSG_MANIFEST_ELIDED)
        return RFAIL(r, -EPROTO, "unknown flags 0x%x", me->flags);
    return get_end(r);
}

/* ---- UPDATE and CHUNKS ------------------------------------------------- */

static void put_chunks(struct writer *w, const struct chunk *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        put_u32(w, c[i].len);
        put_id(w, &c[i].id);
    }
}

static int encode_update(struct writer *w, const struct msg_update *u, char *err, size_t errsize)
{
    const char *what = "UPDATE";
    int ft = type_to_wire(u->type), e;
    if ((e = check_path(u->path, "path", what, err, errsize)))
        return e;
    if (ft < 0)
        return failf(err, errsize, -EINVAL, what, "'%.200s' has unknown file type 0%o", u->path,
                     u->type);
    if ((e = check_update_mode(u->mode, u->path, what, err, errsize)))
        return e;
    if (u->type == S_IFREG) {
        if (u->size > WIRE_MAX_FILE_SIZE)
            return check_chunk_count(u->size, 0, u->path, what, err, errsize);
        if (u->inline_data && u->size > WIRE_INLINE_MAX)
            return failf(err, errsize, -EMSGSIZE, what,
                         "inline '%.200s' is %llu bytes, over the limit of %u", u->path,
                         (unsigned long long)u->size, WIRE_INLINE_MAX);
        if (!u->inline_data && u->ngroups) {
            uint64_t total = 0;
            for (size_t i = 0; i < u->ngroups; i++)
                total += u->groups[i].count;
            if ((e = check_chunk_count(u->size, total, u->path, what, err, errsize)) ||
                (e = check_groups(u->groups, u->ngroups, total, u->size, u->path, what, err,
                                  errsize)))
                return e;
        } else if (!u->inline_data) {
            if ((e = check_chunk_count(u->size, u->nchunks, u->path, what, err, errsize)))
                return e;
            uint64_t off = 0;
            for (size_t i = 0; i < u->nchunks; i++) {
                e = check_chunk(i, u->nchunks, u->chunks[i].len, off, u->size, u->path, what, err,
                                errsize);
                if (e)
                    return e;
                off += u->chunks[i].len;
            }
        }
    }
    if (u->type == S_IFLNK &&
        (e = check_target(u->target ? strlen(u->target) : 0, u->path, what, err, errsize)))
        return e;

    size_t here = u->nchunks < CHUNKS_PER_FRAME ? u->nchunks : CHUNKS_PER_FRAME;
    size_t f = frame_begin(w, MSG_UPDATE);
    put_str(w, u->path, strlen(u->path));
    put_u8(w, (uint8_t)ft);
    put_u32(w, u->mode);
    put_u64(w, (uint64_t)u->mtime_ns);
    if (u->type == S_IFLNK)
        put_str(w, u->target, strlen(u->target));
    if (u->type == S_IFREG) {
        put_u64(w, u->size);
        if (u->inline_data) {
            put_packed(w, u->data, (size_t)u->size);
            here = 0;
        } else if (u->ngroups) {
            uint64_t total = 0;
            for (size_t i = 0; i < u->ngroups; i++)
                total += u->groups[i].count;
            put_u8(w, BODY_GROUPS);
            put_u32(w, (uint32_t)total);
            put_u32(w, (uint32_t)u->ngroups);
            for (size_t i = 0; i < u->ngroups; i++) {
                put_u32(w, u->groups[i].count);
                put_u64(w, u->groups[i].bytes);
                put_id(w, &u->groups[i].id);
            }
            here = 0;
        } else {
            put_u8(w, BODY_CHUNKS);
            put_u32(w, (uint32_t)u->nchunks);
            put_u32(w, (uint32_t)here);
            put_chunks(w, u->chunks, here);
        }
    }
    frame_end(w, f);
    int frames = 1;
    for (size_t i = here; u->type == S_IFREG && !u->inline_data && !u->ngroups && i < u->nchunks;
         i += here) {
        here = u->nchunks - i < CHUNKS_PER_FRAME ? u->nchunks - i : CHUNKS_PER_FRAME;
        f = frame_begin(w, MSG_CHUNKS);
        put_u32(w, (uint32_t)here);
        put_chunks(w, u->chunks + i, here);
        frame_end(w, f);
        frames++;
    }
    return frames;
}

/* Read n chunk entries onto u's list, checking each against the file. */
static int get_chunks(struct msg *m, struct reader *r, uint32_t n, uint32_t total)
{
    struct msg_update *u = &m->update;
    if (r->len - r->pos < (size_t)n * CHUNK_ENTRY_SIZE)
        return RFAIL(r, -EPROTO, "payload ends inside the chunk list of '%.200s'", u->path);
    size_t have = u->nchunks, cap = u->chunks_cap_;
    struct chunk *c = (struct chunk *)u->chunks;
    if (have + n > cap) {
        cap = have + n > 2 * cap ? have + n : 2 * cap;
        cap = cap < total ? cap : total;
        struct chunk *nc = arena_alloc(m, cap * sizeof(*nc));
        if (!nc)
            return no_memory(r);
        if (have)
            memcpy(nc, c, have * sizeof(*nc));
        c = nc;
        u->chunks = c;
        u->chunks_cap_ = (uint32_t)cap;
    }
    uint64_t off = have ? c[have - 1].off + c[have - 1].len : 0;
    for (uint32_t i = 0; i < n; i++) {
        struct chunk *ch = &c[have + i];
        int e;
        if ((e = get_u32(r, "chunk length", &ch->len)) || (e = get_id(r, "chunk id", &ch->id)))
            return e;
        e = check_chunk(have + i, total, ch->len, off, u->size, u->path, r->what, r->err,
                        r->errsize);
        if (e)
            return e;
        ch->off = off;
        off += ch->len;
    }
    u->nchunks = have + n;
    u->pending_ = total - (uint32_t)u->nchunks;
    return 0;
}

static void update_file_id(struct msg_update *u)
{
    struct content_hasher h;
    content_hasher_init(&h);
    for (size_t i = 0; i < u->nchunks; i++)
        content_hasher_update(&h, u->chunks[i].id.b, CONTENT_ID_SIZE);
    content_hasher_final(&h, &u->file_id);
}

static int decode_update(struct msg *m, struct reader *r)
{
    struct msg_update *u = &m->update;
    uint8_t ft, body;
    uint32_t total, here;
    int e;
    if ((e = get_path(m, r, "path", &u->path)) || (e = get_u8(r, "type", &ft)) ||
        (e = get_u32(r, "mode", &u->mode)) || (e = get_i64(r, "mtime", &u->mtime_ns)))
        return e;
    u->type = type_from_wire(ft);
    if (!u->type)
        return RFAIL(r, -EPROTO, "'%.200s' has unknown file type %u", u->path, ft);
    if ((e = check_update_mode(u->mode, u->path, r->what, r->err, r->errsize)))
        return e;
    if (u->type == S_IFLNK) {
        uint32_t tlen;
        if ((e = get_str(m, r, "target", UINT32_MAX, -EMSGSIZE, &u->target, &tlen)) ||
            (e = check_target(tlen, u->path, r->what, r->err, r->errsize)))
            return e;
        u->size = tlen;
    }
    if (u->type != S_IFREG)
        return get_end(r);

    if ((e = get_u64(r, "size", &u->size)) || (e = get_u8(r, "body", &body)))
        return e;
    if (u->size > WIRE_MAX_FILE_SIZE)
        return check_chunk_count(u->size, 0, u->path, r->what, r->err, r->errsize);
    if (body == MSG_ENC_RAW || body == MSG_ENC_LZ4) {
        if (u->size > WIRE_INLINE_MAX)
            return RFAIL(r, -EMSGSIZE, "inline '%.200s' is %llu bytes, over the limit of %u",
                         u->path, (unsigned long long)u->size, WIRE_INLINE_MAX);
        r->pos--; /* get_packed reads the encoding byte itself */
        if ((e = get_packed(m, r, "inline data", (uint32_t)u->size, &u->data, NULL, NULL)))
            return e;
        u->inline_data = true;
        struct content_id cid;
        content_id_of_chunk(u->data, (size_t)u->size, &cid);
        content_id_of_file(&cid, u->size ? 1 : 0, &u->file_id);
        return get_end(r);
    }
    if (body == BODY_GROUPS) {
        uint32_t ngroups;
        if ((e = get_u32(r, "chunk count", &total)) ||
            (e = check_chunk_count(u->size, total, u->path, r->what, r->err, r->errsize)) ||
            (e = get_u32(r, "group count", &ngroups)))
            return e;
        if ((uint64_t)ngroups * GROUP_ENTRY_SIZE != r->len - r->pos)
            return RFAIL(r, -EPROTO, "%u groups of '%.200s' in %zu bytes", ngroups, u->path,
                         r->len - r->pos);
        if (ngroups == 0 || ngroups > total)
            return RFAIL(r, -EPROTO, "%u groups for %u chunks of '%.200s'", ngroups, total,
                         u->path);
        struct chunk_group *g = arena_alloc(m, (size_t)ngroups * sizeof(*g));
        if (!g)
            return no_memory(r);
        for (uint32_t i = 0; i < ngroups; i++)
            if ((e = get_u32(r, "group chunks", &g[i].count)) ||
                (e = get_u64(r, "group bytes", &g[i].bytes)) ||
                (e = get_id(r, "group id", &g[i].id)))
                return e;
        if ((e = check_groups(g, ngroups, total, u->size, u->path, r->what, r->err, r->errsize)))
            return e;
        u->groups = g;
        u->ngroups = ngroups;
        return get_end(r);
    }
    if (body != BODY_CHUNKS)
        return RFAIL(r, -EPROTO, "unknown body %u of '%.200s'", body, u->path);
    if ((e = get_u32(r, "chunk count", &total)) ||
        (e = check_chunk_count(u->size, total, u->path, r->what, r->err, r->errsize)) ||
        (e = get_u32(r, "chunks in frame", &here)))
        return e;
    if (here > total || (total && !here))
        return RFAIL(r, -EPROTO, "%u of %u chunks of '%.200s' in the first frame", here, total,
                     u->path);
    if ((e = get_chunks(m, r, here, total)) || (e = get_end(r)))
        return e;
    if (u->pending_)
        return 1;
    update_file_id(u);
    return 0;
}

int msg_decode_more(struct msg *m, uint8_t type, const uint8_t *payload, size_t len, char *err,
                    size_t errsize)
{
    struct reader r = {.p = payload, .len = len, .what = "CHUNKS", .err = err, .errsize = errsize};
    struct msg_update *u = &m->update;
    uint32_t here = 0;
    int e;
    if (m->type != MSG_UPDATE || !u->pending_)
        e = RFAIL(&r, -EPROTO, "no UPDATE is waiting for its chunk list");
    else if (type != MSG_CHUNKS)
        e = RFAIL(&r, -EPROTO, "%s frame inside the chunk list of UPDATE '%.200s'",
                  msg_type_name(type), u->path);
    else if (!(e = get_u32(&r, "chunks in frame", &here)) && (here == 0 || here > u->pending_))
        e = RFAIL(&r, -EPROTO, "%u chunks in a frame where %u are due for '%.200s'", here,
                  u->pending_, u->path);
    if (!e && !(e = get_chunks(m, &r, here, u->pending_ + (uint32_t)u->nchunks)))
        e = get_end(&r);
    if (e) {
        msg_release(m);
        return e;
    }
    if (u->pending_)
        return 1;
    update_file_id(u);
    return 0;
}

/* ---- WANT, DATA -------------------------------------------------------- */

static int encode_want(struct writer *w, const struct msg_want *wt)
{
    int frames = 0;
    for (size_t i = 0; i < wt->n; i += WANT_PER_FRAME) {
        size_t n = wt->n - i < WANT_PER_FRAME ? wt->n - i : WANT_PER_FRAME;
        size_t f = frame_begin(w, MSG_WANT);
        put_u32(w, (uint32_t)n);
        put_bytes(w, wt->ids + i, n * CONTENT_ID_SIZE);
        frame_end(w, f);
        frames++;
    }
    return frames;
}

static int decode_want(struct msg *m, struct reader *r)
{
    uint32_t n;
    int e = get_u32(r, "id count", &n);
    if (e)
        return e;
    if (n == 0 || (uint64_t)n * CONTENT_ID_SIZE != r->len - r->pos)
        return RFAIL(r, -EPROTO, "%u ids in %zu bytes", n, r->len - r->pos);
    struct content_id *ids = arena_alloc(m, (size_t)n * sizeof(*ids));
    if (!ids)
        return no_memory(r);
    memcpy(ids, r->p + r->pos, (size_t)n * CONTENT_ID_SIZE);
    r->pos = r->len;
    m->want.ids = ids;
    m->want.n = n;
    return 0;
}

static int check_group_chunks(const struct msg_group *g, const char *what, char *err,
                              size_t errsize)
{
    if (g->n == 0 || g->n > CHUNK_GROUP_MAX)
        return failf(err, errsize, g->n ? -EMSGSIZE : -EPROTO, what,
                     "%zu chunks in a group (1..%u allowed)", g->n, CHUNK_GROUP_MAX);
    for (size_t i = 0; i < g->n; i++)
        if (g->chunks[i].len == 0 || g->chunks[i].len > CHUNKER_MAX_SIZE)
            return failf(err, errsize, g->chunks[i].len ? -EMSGSIZE : -EPROTO, what,
                         "chunk %zu of a group is %u bytes (1..%u allowed)", i, g->chunks[i].len,
                         CHUNKER_MAX_SIZE);
    struct content_id got;
    chunk_group_id(g->chunks, g->n, &got);
    if (!content_id_eq(&got, &g->id)) {
        char want_hex[CONTENT_ID_HEX_LEN + 1], got_hex[CONTENT_ID_HEX_LEN + 1];
        content_id_to_hex(&g->id, want_hex);
        content_id_to_hex(&got, got_hex);
        return failf(err, errsize, -EBADMSG, what,
                     "group %s does not match its chunks (they hash to %s)", want_hex, got_hex);
    }
    return 0;
}

static int encode_group(struct writer *w, const struct msg_group *g, char *err, size_t errsize)
{
    int e = check_group_chunks(g, "GROUP", err, errsize);
    if (e)
        return e;
    size_t f = frame_begin(w, MSG_GROUP);
    put_id(w, &g->id);
    put_u32(w, (uint32_t)g->n);
    put_chunks(w, g->chunks, g->n);
    frame_end(w, f);
    return 1;
}

static int decode_group(struct msg *m, struct reader *r)
{
    struct msg_group *g = &m->group;
    uint32_t n;
    int e;
    if ((e = get_id(r, "group id", &g->id)) || (e = get_u32(r, "chunk count", &n)))
        return e;
    if (n == 0 || n > CHUNK_GROUP_MAX || (uint64_t)n * CHUNK_ENTRY_SIZE != r->len - r->pos)
        return RFAIL(r, n > CHUNK_GROUP_MAX ? -EMSGSIZE : -EPROTO,
                     "%u chunks in %zu bytes (1..%u allowed)", n, r->len - r->pos,
                     CHUNK_GROUP_MAX);
    struct chunk *c = arena_alloc(m, (size_t)n * sizeof(*c));
    if (!c)
        return no_memory(r);
    uint64_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        if ((e = get_u32(r, "chunk length", &c[i].len)) || (e = get_id(r, "chunk id", &c[i].id)))
            return e;
        c[i].off = off;
        off += c[i].len;
    }
    g->chunks = c;
    g->n = n;
    if ((e = check_group_chunks(g, r->what, r->err, r->errsize)))
        return e;
    return get_end(r);
}

int msg_data_encode(const struct content_id *id, const void *bytes, size_t len, struct msg_buf *out,
                    char *err, size_t errsize)
{
    if (len == 0 || len > CHUNKER_MAX_SIZE)
        return failf(err, errsize, len ? -EMSGSIZE : -EINVAL, "DATA",
                     "chunk of %zu bytes (1..%u allowed)", len, CHUNKER_MAX_SIZE);
    struct content_id got;
    content_id_of_chunk(bytes, len, &got);
    if (!content_id_eq(&got, id)) {
        char want_hex[CONTENT_ID_HEX_LEN + 1], got_hex[CONTENT_ID_HEX_LEN + 1];
        content_id_to_hex(id, want_hex);
        content_id_to_hex(&got, got_hex);
        return failf(err, errsize, -ESTALE, "DATA",
                     "bytes of chunk %s hash to %s (did the file change after indexing?)", want_hex,
                     got_hex);
    }
    size_t old = out->len;
    struct writer w = {.b = out};
    size_t f = frame_begin(&w, MSG_DATA);
    put_id(&w, id);
    put_u32(&w, (uint32_t)len);
    put_packed(&w, bytes, len);
    frame_end(&w, f);
    if (w.err) {
        out->len = old;
        return failf(err, errsize, w.err, "DATA", "out of memory");
    }
    return 1;
}

static int decode_data(struct msg *m, struct reader *r)
{
    struct msg_data *d = &m->data;
    int e;
    if ((e = get_id(r, "chunk id", &d->id)) || (e = get_u32(r, "length", &d->len)))
        return e;
    if (d->len == 0 || d->len > CHUNKER_MAX_SIZE)
        return RFAIL(r, d->len ? -EMSGSIZE : -EPROTO, "chunk of %u bytes (1..%u allowed)", d->len,
                     CHUNKER_MAX_SIZE);
    if ((e = get_packed(m, r, "chunk bytes", d->len, &d->bytes, &d->encoding, &d->wire_len)) ||
        (e = get_end(r)))
        return e;
    struct content_id got;
    content_id_of_chunk(d->bytes, d->len, &got);
    if (!content_id_eq(&got, &d->id)) {
        char want_hex[CONTENT_ID_HEX_LEN + 1], got_hex[CONTENT_ID_HEX_LEN + 1];
        content_id_to_hex(&d->id, want_hex);
        content_id_to_hex(&got, got_hex);
        return RFAIL(r, -EBADMSG, "chunk %s does not match its bytes (they hash to %s)", want_hex,
                     got_hex);
    }
    return 0;
}

/* ---- LIST -------------------------------------------------------------- */

/* "" (ROOT) or a path that passes the path check. */
static int check_list_dir(const char *dir, const char *what, char *err, size_t errsize)
{
    return dir[0] ? check_path(dir, "directory", what, err, errsize) : 0;
}

static int encode_list(struct writer *w, const struct msg_list *l, char *err, size_t errsize)
{
    if (l->n == 0 || l->n > MSG_LIST_MAX)
        return failf(err, errsize, l->n ? -EMSGSIZE : -EINVAL, "LIST",
                     "%zu directories (1..%u allowed)", l->n, MSG_LIST_MAX);
    for (size_t i = 0; i < l->n; i++) {
        int e = check_list_dir(l->dirs[i], "LIST", err, errsize);
        if (e)
            return e;
    }
    size_t f = frame_begin(w, MSG_LIST);
    put_u32(w, (uint32_t)l->n);
    for (size_t i = 0; i < l->n; i++)
        put_str(w, l->dirs[i], strlen(l->dirs[i]));
    frame_end(w, f);
    return 1;
}

static int decode_list(struct msg *m, struct reader *r)
{
    uint32_t n;
    int e = get_u32(r, "directory count", &n);
    if (e)
        return e;
    if (n == 0 || n > MSG_LIST_MAX)
        return RFAIL(r, n ? -EMSGSIZE : -EPROTO, "%u directories (1..%u allowed)", n,
                     MSG_LIST_MAX);
    const char **dirs = arena_alloc(m, (size_t)n * sizeof(*dirs));
    if (!dirs)
        return no_memory(r);
    for (uint32_t i = 0; i < n; i++) {
        if ((e = get_str(m, r, "directory", WIRE_MAX_PATH, -ENAMETOOLONG, &dirs[i], NULL)) ||
            (e = check_list_dir(dirs[i], r->what, r->err, r->errsize)))
            return e;
    }
    m->list.dirs = dirs;
    m->list.n = n;
    return get_end(r);
}

/* ---- the small ones ---------------------------------------------------- */

static int encode_paths(struct writer *w, uint8_t type, const char *a, const char *fa,
                        const char *b, const char *fb, char *err, size_t errsize)
{
    const char *what = msg_type_name(type);
    int e = check_path(a, fa, what, err, errsize);
    if (!e && b)
        e = check_path(b, fb, what, err, errsize);
    if (e)
        return e;
    size_t f = frame_begin(w, type);
    put_str(w, a, strlen(a));
    if (b)
        put_str(w, b, strlen(b));
    frame_end(w, f);
    return 1;
}

static int encode_error(struct writer *w, const struct msg_error *er, char *err, size_t errsize)
{
    const char *path = er->path ? er->path : "";
    const char *text = er->message && er->message[0] ? er->message : "unknown error";
    size_t plen = strnlen(path, WIRE_MAX_PATH), tlen = strnlen(text, WIRE_MAX_ERROR_TEXT);
    if (er->code == 0)
        return failf(err, errsize, -EINVAL, "ERROR", "code 0");
    if (er->flags & ~MSG_ERROR_FATAL)
        return failf(err, errsize, -EINVAL, "ERROR", "unknown flags 0x%x", er->flags);
    size_t f = frame_begin(w, MSG_ERROR);
    put_u32(w, er->code);
    put_u32(w, er->flags);
    put_str(w, path, plen); /* cut to the limits: an error must always get out */
    put_str(w, text, tlen);
    frame_end(w, f);
    return 1;
}

static int decode_error(struct msg *m, struct reader *r)
{
    struct msg_error *er = &m->error;
    uint32_t tlen;
    int e;
    if ((e = get_u32(r, "code", &er->code)) || (e = get_u32(r, "flags", &er->flags)) ||
        (e = get_str(m, r, "path", WIRE_MAX_PATH, -EMSGSIZE, &er->path, NULL)) ||
        (e = get_str(m, r, "message", WIRE_MAX_ERROR_TEXT, -EMSGSIZE, &er->message, &tlen)))
        return e;
    if (er->code == 0 || tlen == 0)
        return RFAIL(r, -EPROTO, "code 0 or an empty message");
    if (er->flags & ~MSG_ERROR_FATAL)
        return RFAIL(r, -EPROTO, "unknown flags 0x%x", er->flags);
    return get_end(r);
}

/* ---- two-way sync: PEER and PULL ---------------------------------------- */

static int check_host(const char *host, size_t n, const char *what, char *err, size_t errsize)
{
    if (n == 0 || n > MSG_PEER_HOST_MAX)
        return failf(err, errsize, n ? -EMSGSIZE : -EINVAL, what,
                     "host label is %zu bytes, not 1..%u", n, MSG_PEER_HOST_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return failf(err, errsize, -EINVAL, what,
                         "host label has byte 0x%02x (only A-Z a-z 0-9 . _ -)", (unsigned char)c);
    }
    return 0;
}

static int encode_peer(struct writer *w, const struct msg_peer *pe, char *err, size_t errsize)
{
    static const struct content_id zero;
    if (content_id_eq(&pe->tree_id, &zero))
        return failf(err, errsize, -EINVAL, "PEER", "tree id is zero");
    size_t n = pe->host ? strnlen(pe->host, MSG_PEER_HOST_MAX + 1) : 0;
    int e = check_host(pe->host, n, "PEER", err, errsize);
    if (e)
        return e;
    size_t f = frame_begin(w, MSG_PEER);
    put_id(w, &pe->tree_id);
    put_str(w, pe->host, n);
    frame_end(w, f);
    return 1;
}

static int decode_peer(struct msg *m, struct reader *r)
{
    static const struct content_id zero;
    uint32_t n;
    int e = get_id(r, "tree id", &m->peer.tree_id);
    e = e ? e : get_str(m, r, "host", MSG_PEER_HOST_MAX, -EMSGSIZE, &m->peer.host, &n);
    e = e ? e : check_host(m->peer.host, n, "PEER", r->err, r->errsize);
    if (!e && content_id_eq(&m->peer.tree_id, &zero))
        e = RFAIL(r, -EPROTO, "tree id is zero");
    return e ? e : get_end(r);
}

static int encode_pull(struct writer *w, const struct msg_pull *pl, char *err, size_t errsize)
{
    if (pl->flags & ~MSG_PULL_LAST)
        return failf(err, errsize, -EINVAL, "PULL", "unknown flags 0x%x", pl->flags);
    for (size_t i = 0; i < pl->n; i++) {
        int e = check_path(pl->entries[i].from, "from", "PULL", err, errsize);
        e = e ? e : check_path(pl->entries[i].as, "as", "PULL", err, errsize);
        if (e)
            return e;
    }
    int frames = 0;
    size_t i = 0;
    do {
        size_t n = pl->n - i < MSG_PULL_MAX ? pl->n - i : MSG_PULL_MAX;
        bool last = i + n == pl->n;
        size_t f = frame_begin(w, MSG_PULL);
        put_u32(w, last ? pl->flags : pl->flags & ~MSG_PULL_LAST);
        put_u32(w, (uint32_t)n);
        for (size_t k = i; k < i + n; k++) {
            put_str(w, pl->entries[k].from, strlen(pl->entries[k].from));
            put_str(w, pl->entries[k].as, strlen(pl->entries[k].as));
        }
        frame_end(w, f);
        frames++;
        i += n;
    } while (i < pl->n);
    return frames;
}

static int decode_pull(struct msg *m, struct reader *r)
{
    uint32_t n;
    int e = get_u32(r, "flags", &m->pull.flags);
    e = e ? e : get_u32(r, "entry count", &n);
    if (e)
        return e;
    if (m->pull.flags & ~MSG_PULL_LAST)
        return RFAIL(r, -EPROTO, "unknown flags 0x%x", m->pull.flags);
    /* The smallest entry is two one-byte paths: 10 bytes.  Checked before
     * allocating, so a claimed count cannot make us allocate. */
    if (n > MSG_PULL_MAX || (uint64_t)n * 10 > r->len - r->pos)
        return RFAIL(r, -EPROTO, "%u entries cannot be in %zu bytes (at most %u)", n,
                     r->len - r->pos, MSG_PULL_MAX);
    struct msg_pull_entry *v = arena_alloc(m, (size_t)n * sizeof(*v));
    if (!v)
        return no_memory(r);
    for (uint32_t i = 0; i < n; i++) {
        if ((e = get_path(m, r, "from", &v[i].from)) || (e = get_path(m, r, "as", &v[i].as)))
            return e;
    }
    m->pull.entries = v;
    m->pull.n = n;
    return get_end(r);
}

/* ---- entry points ------------------------------------------------------ */

int msg_encode(const struct msg *m, struct msg_buf *out, char *err, size_t errsize)
{
    size_t old = out->len;
    struct writer w = {.b = out};
    size_t f;
    int r;
    switch (m->type) {
    case MSG_HELLO:
        r = encode_hello(&w, &m->hello, err, errsize);
        break;
    case MSG_MANIFEST:
        r = encode_manifest(&w, &m->manifest, err, errsize);
        break;
    case MSG_MANIFEST_END:
        r = encode_manifest_end(&w, &m->manifest_end, err, errsize);
        break;
    case MSG_UPDATE:
        r = encode_update(&w, &m->update, err, errsize);
        break;
    case MSG_WANT:
        r = encode_want(&w, &m->want);
        break;
    case MSG_DATA:
        return msg_data_encode(&m->data.id, m->data.bytes, m->data.len, out, err, errsize);
    case MSG_DELETE:
        r = encode_paths(&w, MSG_DELETE, m->del.path, "path", NULL, NULL, err, errsize);
        break;
    case MSG_LIST:
        r = encode_list(&w, &m->list, err, errsize);
        break;
    case MSG_GROUP:
        r = encode_group(&w, &m->group, err, errsize);
        break;
    case MSG_RENAME:
        r = encode_paths(&w, MSG_RENAME, m->rename.from, "from", m->rename.to, "to", err, errsize);
        break;
    case MSG_LINK:
        r = encode_paths(&w, MSG_LINK, m->link.path, "path", m->link.existing, "existing", err,
                         errsize);
        break;
    case MSG_COMMIT:
        if (m->commit.flags & ~MSG_COMMIT_WANT_ROOT)
            return failf(err, errsize, -EINVAL, "COMMIT", "unknown flags 0x%x", m->commit.flags);
        f = frame_begin(&w, MSG_COMMIT);
        put_u64(&w, m->commit.seq);
        put_u32(&w, m->commit.flags);
        frame_end(&w, f);
        r = 1;
        break;
    case MSG_ACK:
        f = frame_begin(&w, MSG_ACK);
        put_u64(&w, m->ack.seq);
        put_id(&w, &m->ack.root);
        frame_end(&w, f);
        r = 1;
        break;
    case MSG_ERROR:
        r = encode_error(&w, &m->error, err, errsize);
        break;
    case MSG_BYE:
    case MSG_RESCAN:
    case MSG_WATCH:
    case MSG_CHANGED: /* empty payloads */
        frame_end(&w, frame_begin(&w, (uint8_t)m->type));
        r = 1;
        break;
    case MSG_PEER:
        r = encode_peer(&w, &m->peer, err, errsize);
        break;
    case MSG_PULL:
        r = encode_pull(&w, &m->pull, err, errsize);
        break;
    default:
        return failf(err, errsize, -EINVAL, msg_type_name(m->type), "cannot be sent");
    }
    if (r >= 0 && w.err)
        r = failf(err, errsize, w.err, msg_type_name(m->type), "out of memory");
    if (r < 0)
        out->len = old;
    return r;
}

int msg_decode(uint8_t type, const uint8_t *payload, size_t len, struct msg *m, char *err,
               size_t errsize)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    struct reader r = {
        .p = payload, .len = len, .what = msg_type_name(type), .err = err, .errsize = errsize};
    int e;
    switch (type) {
    case MSG_HELLO:
        e = decode_hello(m, &r);
        break;
    case MSG_MANIFEST:
        e = decode_manifest(m, &r);
        break;
    case MSG_MANIFEST_END:
        e = decode_manifest_end(m, &r);
        break;
    case MSG_UPDATE:
        e = decode_update(m, &r);
        break;
    case MSG_WANT:
        e = decode_want(m, &r);
        break;
    case MSG_DATA:
        e = decode_data(m, &r);
        break;
    case MSG_DELETE:
        e = get_path(m, &r, "path", &m->del.path);
        e = e ? e : get_end(&r);
        break;
    case MSG_LIST:
        e = decode_list(m, &r);
        break;
    case MSG_GROUP:
        e = decode_group(m, &r);
        break;
    case MSG_RENAME:
        e = get_path(m, &r, "from", &m->rename.from);
        e = e ? e : get_path(m, &r, "to", &m->rename.to);
        e = e ? e : get_end(&r);
        break;
    case MSG_LINK:
        e = get_path(m, &r, "path", &m->link.path);
        e = e ? e : get_path(m, &r, "existing", &m->link.existing);
        e = e ? e : get_end(&r);
        break;
    case MSG_COMMIT:
        e = get_u64(&r, "seq", &m->commit.seq);
        e = e ? e : get_u32(&r, "flags", &m->commit.flags);
        if (!e && (m->commit.flags & ~MSG_COMMIT_WANT_ROOT))
            e = RFAIL(&r, -EPROTO, "unknown flags 0x%x", m->commit.flags);
        e = e ? e : get_end(&r);
        break;
    case MSG_ACK:
        e = get_u64(&r, "seq", &m->ack.seq);
        e = e ? e : get_id(&r, "root", &m->ack.root);
        e = e ? e : get_end(&r);
        break;
    case MSG_ERROR:
        e = decode_error(m, &r);
        break;
    case MSG_BYE:
    case MSG_RESCAN:
    case MSG_WATCH:
    case MSG_CHANGED:
        e = get_end(&r);
        break;
    case MSG_PEER:
        e = decode_peer(m, &r);
        break;
    case MSG_PULL:
        e = decode_pull(m, &r);
        break;
    case MSG_CHUNKS:
        e = RFAIL(&r, -EPROTO, "no UPDATE is waiting for its chunk list");
        break;
    default:
        r.what = "frame";
        e = RFAIL(&r, -EPROTO, "unknown message type 0x%02x", type);
        break;
    }
    if (e < 0)
        msg_release(m);
    return e;
}
