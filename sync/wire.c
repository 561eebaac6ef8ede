/*
 * wire.c — see wire.h.
 *
 * The in half keeps one buffer: bytes [in_pos, in_len) are read but not yet
 * decoded.  It grows to hold the largest frame seen (at most WIRE_MAX_FRAME
 * + 4) and is compacted before each refill, so a stream of small frames is
 * read with few, large read() calls.  The out half is a msg_buf of whole
 * frames, written when it passes WIRE_FLUSH_AT or on wire_flush.
 */
#include "wire.h"
#include "message.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IN_BUF_START (256u << 10)
#define HEADER_LEN   5 /* u32 length, u8 type */

struct wire {
    /* in half */
    int in_fd;
    uint8_t *in;
    size_t in_pos, in_len, in_cap;
    bool in_mem;   /* in points at the caller's bytes */
    bool in_eof;   /* read() returned 0 */
    int in_failed; /* first error; every later wire_recv returns it */
    uint64_t bytes_in, frames_in, msgs_in;

    /* out half */
    int out_fd;
    struct msg_buf out;
    uint64_t bytes_out, frames_out, msgs_out;
};

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errsize, int code,
                                                      const char *fmt, ...)
{
    if (err && errsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsize, fmt, ap);
        va_end(ap);
    }
    return code;
}

static void count(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

struct wire *wire_new(int in_fd, int out_fd)
{
    struct wire *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->in_fd = in_fd;
    w->out_fd = out_fd;
    return w;
}

struct wire *wire_new_mem(const void *buf, size_t len)
{
    struct wire *w = wire_new(-1, -1);
    if (!w)
        return NULL;
    w->in = (uint8_t *)buf;
    w->in_len = w->in_cap = len;
    w->in_mem = true;
    w->in_eof = true;
    return w;
}

void wire_free(struct wire *w)
{
    if (!w)
        return;
    if (!w->in_mem)
        free(w->in);
    msg_buf_release(&w->out);
    free(w);
}

size_t wire_pending_in(const struct wire *w)
{
    return w->in_len - w->in_pos;
}

size_t wire_pending_out(const struct wire *w)
{
    return w->out.len;
}

void wire_get_stats(const struct wire *w, struct wire_stats *s)
{
    s->bytes_in = __atomic_load_n(&w->bytes_in, __ATOMIC_RELAXED);
    s->bytes_out = __atomic_load_n(&w->bytes_out, __ATOMIC_RELAXED);
    s->frames_in = __atomic_load_n(&w->frames_in, __ATOMIC_RELAXED);
    s->frames_out = __atomic_load_n(&w->frames_out, __ATOMIC_RELAXED);
    s->msgs_in = __atomic_load_n(&w->msgs_in, __ATOMIC_RELAXED);
    s->msgs_out = __atomic_load_n(&w->msgs_out, __ATOMIC_RELAXED);
}

/* ---- out --------------------------------------------------------------- */

/* Wait until fd is ready for events (after EAGAIN on a non-blocking fd). */
static int wait_fd(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    while (poll(&p, 1, -1) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

int wire_flush(struct wire *w, char *err, size_t errsize)
{
    size_t done = 0;
    int r = 0;
    if (w->out_fd < 0) { /* a memory wire: output goes nowhere */
        count(&w->bytes_out, w->out.len);
        w->out.len = 0;
        return 0;
    }
    while (done < w->out.len) {
        ssize_t n = write(w->out_fd, w->out.buf + done, w->out.len - done);
        if (n > 0) {
            done += (size_t)n;
            count(&w->bytes_out, (uint64_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if ((r = wait_fd(w->out_fd, POLLOUT)))
                break;
        } else {
            r = n < 0 ? -errno : -EIO;
            break;
        }
    }
    /* Keep what was not written, in order, for a retry. */
    memmove(w->out.buf, w->out.buf + done, w->out.len - done);
    w->out.len -= done;
    if (r == -EPIPE)
        return fail(err, errsize, r, "the peer closed the stream (broken pipe)");
    if (r)
        return fail(err, errsize, r, "cannot write to the peer: %s", strerror(-r));
    return 0;
}

int wire_send(struct wire *w, const struct msg *m, char *err, size_t errsize)
{
    int frames = msg_encode(m, &w->out, err, errsize);
    if (frames < 0)
        return frames;
    count(&w->frames_out, (uint64_t)frames);
    count(&w->msgs_out, 1);
    return w->out.len >= WIRE_FLUSH_AT ? wire_flush(w, err, errsize) : 0;
}

/* ---- in ---------------------------------------------------------------- */

/* Make at least need bytes available at in_pos.  0 when they are, 1 when
 * the stream ended first, or -errno from read(). */
static int fill(struct wire *w, size_t need)
{
    if (w->in_len - w->in_pos >= need)
        return 0;
    if (w->in_eof)
        return 1;
    if (w->in_pos) { /* compact: the next frame starts at 0 */
        memmove(w->in, w->in + w->in_pos, w->in_len - w->in_pos);
        w->in_len -= w->in_pos;
        w->in_pos = 0;
    }
    if (need > w->in_cap) {
        size_t cap = w->in_cap ? w->in_cap : IN_BUF_START;
        while (cap < need)
            cap *= 2;
        uint8_t *p = realloc(w->in, cap);
        if (!p)
            return -ENOMEM;
        w->in = p;
        w->in_cap = cap;
    }
    while (w->in_len < need) {
        ssize_t n = read(w->in_fd, w->in + w->in_len, w->in_cap - w->in_len);
        if (n > 0) {
            w->in_len += (size_t)n;
            count(&w->bytes_in, (uint64_t)n);
        } else if (n == 0) {
            w->in_eof = true;
            return 1;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int r = wait_fd(w->in_fd, POLLIN);
            if (r)
                return r;
        } else if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

/* What came instead of a HELLO, as printable text: a login banner or a
 * shell's chatter on the remote side is the usual cause. */
static void describe_garbage(const struct wire *w, char *out, size_t outsize)
{
    size_t avail = w->in_len - w->in_pos, o = 0;
    const uint8_t *p = w->in + w->in_pos;
    for (size_t i = 0; i < avail && i < 40 && o + 5 < outsize; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
            out[o++] = (char)p[i];
        else
            o += (size_t)snprintf(out + o, outsize - o, "\\x%02x", p[i]);
    }
    out[o] = 0;
}

static int recv_failed(struct wire *w, int code)
{
    w->in_failed = code;
    return code;
}

/* A stream opens with HELLO, or with ERROR from a peer that refuses to
 * start (it could not even read our HELLO, say). */
static bool opens(uint8_t type)
{
    return type == MSG_HELLO || type == MSG_ERROR;
}

/* Read one frame: *type, and payload[0..*len) valid until the next call. */
static int read_frame(struct wire *w, uint8_t *type, const uint8_t **payload, size_t *len,
                      const char *inside, char *err, size_t errsize)
{
    int r = fill(w, 4);
    if (r < 0)
        return fail(err, errsize, r, "cannot read from the peer: %s", strerror(-r));
    size_t avail = w->in_len - w->in_pos;
    if (r == 1 && avail == 0 && !inside)
        return fail(err, errsize, -ENODATA, "the peer closed the stream");
    if (r == 1)
        return fail(err, errsize, -ECONNRESET,
                    "the stream ended inside %s%s: %zu of %u bytes of a frame header",
                    inside ? "the message of " : "a frame", inside ? inside : "", avail,
                    HEADER_LEN);
    const uint8_t *h = w->in + w->in_pos;
    uint32_t flen =
        (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    bool first = w->frames_in == 0;
    if (first && (flen == 0 || flen > WIRE_MAX_FRAME || (avail >= HEADER_LEN && !opens(h[4])))) {
        char text[200];
        describe_garbage(w, text, sizeof(text));
        return fail(err, errsize, -EPROTO,
                    "the peer did not begin with a wsync HELLO but with \"%s\" (is something on "
                    "the remote side, such as a login script, writing to stdout?)",
                    text);
    }
    if (flen == 0)
        return fail(err, errsize, -EPROTO, "a frame of length 0 (it must hold its type byte)");
    if (flen > WIRE_MAX_FRAME)
        return fail(err, errsize, -EMSGSIZE, "a frame of %u bytes, over the limit of %u bytes",
                    flen, WIRE_MAX_FRAME);
    r = fill(w, 4 + (size_t)flen);
    if (r < 0)
        return fail(err, errsize, r, "cannot read from the peer: %s", strerror(-r));
    h = w->in + w->in_pos; /* fill may have moved the buffer */
    if (r == 1)
        return fail(
            err, errsize, -ECONNRESET, "the stream ended inside a %s frame: %zu of %u bytes",
            w->in_len - w->in_pos > 4 ? msg_type_name(h[4]) : "", w->in_len - w->in_pos, 4 + flen);
    if (first && !opens(h[4])) {
        char text[200];
        describe_garbage(w, text, sizeof(text));
        return fail(err, errsize, -EPROTO,
                    "the peer did not begin with a wsync HELLO but with \"%s\"", text);
    }
    *type = h[4];
    *payload = h + HEADER_LEN;
    *len = flen - 1;
    w->in_pos += 4 + (size_t)flen;
    count(&w->frames_in, 1);
    return 0;
}

int wire_recv(struct wire *w, struct msg *m, char *err, size_t errsize)
{
    /* Set by read_frame on success; initialized for gcc -O3, which cannot
     * see that (a release build with -Werror failed on it). */
    uint8_t type = 0;
    const uint8_t *payload = NULL;
    size_t len = 0;
    memset(m, 0, sizeof(*m));
    if (w->in_failed)
        return fail(err, errsize, w->in_failed, "the stream from the peer already failed");
    bool first = w->frames_in == 0;
    int r = read_frame(w, &type, &payload, &len, NULL, err, errsize);
    if (r)
        return recv_failed(w, r);
    if (!first && type == MSG_HELLO)
        return recv_failed(w, fail(err, errsize, -EPROTO, "a second HELLO"));
    r = msg_decode(type, payload, len, m, err, errsize);
    while (r == 1) { /* an UPDATE continued in CHUNKS frames */
        char inside[WIRE_MAX_PATH + 20];
        snprintf(inside, sizeof(inside), "UPDATE '%.200s'", m->update.path);
        r = read_frame(w, &type, &payload, &len, inside, err, errsize);
        if (r) {
            msg_release(m);
            break;
        }
        r = msg_decode_more(m, type, payload, len, err, errsize);
    }
    if (r)
        return recv_failed(w, r);
    count(&w->msgs_in, 1);
    return 0;
}

/* ---- paths ------------------------------------------------------------- */

int wire_path_check(const char *path, char *err, size_t errsize)
{
    size_t len = path ? strnlen(path, WIRE_MAX_PATH + 1) : 0;
    const char *why = NULL;
    int code = -EINVAL;
    if (len == 0)
        why = "empty path";
    else if (len > WIRE_MAX_PATH)
        why = "path longer than 4096 bytes", code = -ENAMETOOLONG;
    else if (path[0] == '/')
        why = "absolute path";
    else if (path[len - 1] == '/')
        why = "trailing slash";
    for (const char *p = path; !why && *p;) {
        size_t n = strcspn(p, "/");
        if (n == 0)
            why = "empty path component";
        else if (n > WIRE_MAX_NAME)
            why = "a name longer than 255 bytes", code = -ENAMETOOLONG;
        else if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            why = "'.' or '..' component";
        else if (p == path && n == strlen(WIRE_STATE_DIR) && memcmp(p, WIRE_STATE_DIR, n) == 0)
            why = "inside the state directory " WIRE_STATE_DIR;
        p += n;
        if (*p == '/')
            p++;
    }
    if (!why)
        return 0;
    return fail(err, errsize, code, "refused path '%.200s%s': %s", path ? path : "",
                len > 200 ? "..." : "", why);
}
