/*
 * wire.h — frames of the wsync protocol on a byte stream (docs/protocol.md):
 * `u32 length (LE, of type + payload) | u8 type | payload`, read and written
 * on an fd pair (the rsh child's stdout/stdin, or `serve`'s stdin/stdout)
 * with buffering, hard limits and clear errors.
 *
 * Invariant: nothing the peer sends can make a read allocate more than one
 * frame's worth (WIRE_MAX_FRAME) plus the message it decodes to, block
 * waiting for bytes a well-formed stream would not need, or yield a message
 * that message.h's decoder did not fully check.  The first frame must be a
 * HELLO (or an ERROR: a peer refusing to start); a stream that failed once
 * stays failed.
 *
 * Threads: the in half (wire_recv) and the out half (wire_send, wire_flush)
 * may be driven by two threads at once — one reader, one writer — and must
 * be, or a poll loop used, when both sides pipeline: two peers that only
 * write can block each other on full pipes.  wire_get_stats() may be called
 * from any thread.  Writes to a closed pipe raise SIGPIPE: the command layer
 * ignores it, and then wire_flush returns -EPIPE.
 */
#ifndef WSYNC_WIRE_H
#define WSYNC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_PROTOCOL_VERSION 2

/* Limits: part of the protocol (a change is a new protocol version). */
#define WIRE_MAX_FRAME        (8u << 20) /* length field: type + payload */
#define WIRE_MAX_PATH         4096u      /* bytes of a relative path, no NUL */
#define WIRE_MAX_NAME         255u       /* bytes of one path component */
#define WIRE_MAX_TARGET       4096u      /* bytes of a symlink target */
#define WIRE_MAX_TOOL_VERSION 64u        /* HELLO's tool version text */
#define WIRE_MAX_ERROR_TEXT   8192u      /* ERROR's message text */
#define WIRE_INLINE_MAX       4096u      /* a file this small may travel inside UPDATE */
#define WIRE_MAX_FILE_SIZE    (64ull << 30)
/* Every chunk but a file's last is >= CHUNKER_MIN_SIZE (16 KiB), so a file
 * of WIRE_MAX_FILE_SIZE has at most this many. */
#define WIRE_MAX_CHUNKS (4u << 20)

/* The directory under ROOT that holds a machine's own state: never on the
 * wire. */
#define WIRE_STATE_DIR ".wsync"

struct wire;
struct msg;

/* Byte and frame counts, for progress lines and benchmarks.  bytes_out
 * counts what reached the fd (not what waits in the buffer). */
struct wire_stats {
    uint64_t bytes_in, bytes_out;   /* framing included */
    uint64_t frames_in, frames_out; /* an UPDATE with a long chunk list is several frames */
    uint64_t msgs_in, msgs_out;
};

/* A wire reading in_fd and writing out_fd (may be the same socket; either
 * may be -1 when that half is unused).  The fds stay the caller's: they are
 * not closed by wire_free.  NULL on allocation failure. */
struct wire *wire_new(int in_fd, int out_fd);

/* A wire whose input is buf[0..len) (not copied: keep it alive) and whose
 * output is discarded: for tests, fuzzing and replaying a recorded stream. */
struct wire *wire_new_mem(const void *buf, size_t len);

/* Free buffers; unflushed output is dropped (call wire_flush first). */
void wire_free(struct wire *w);

/* Encode m into the output buffer, writing to the fd once the buffer holds
 * WIRE_FLUSH_AT bytes.  0, or -errno with err filled: -EINVAL/-ENAMETOOLONG/
 * -EMSGSIZE/-EPERM/-ESTALE for a message the decoder would refuse (nothing is
 * buffered then), or a write error as wire_flush. */
int wire_send(struct wire *w, const struct msg *m, char *err, size_t errsize);
#define WIRE_FLUSH_AT (256u << 10)

/* Write everything buffered, however many write() calls it takes (short
 * writes, EINTR, EAGAIN on a non-blocking fd).  0, or -EPIPE when the peer
 * has closed its end, or another -errno from write(). */
int wire_flush(struct wire *w, char *err, size_t errsize);

/* Read and decode the next message into *m (release it with msg_release).
 * An UPDATE whose chunk list spans several frames is returned once, whole.
 * 0, or with err naming what was wrong and *m left empty:
 *   -ENODATA     the stream ended cleanly between two messages
 *   -ECONNRESET  the stream ended inside a frame or message
 *   -EMSGSIZE    a frame or a field over its limit
 *   -EPROTO      malformed: length 0, unknown type, bad field, not HELLO first,
 *                a second HELLO
 *   -EPROTONOSUPPORT  not a wsync peer, or another protocol version
 *   -EBADMSG     DATA or inline bytes that do not match their id or length
 *   -EINVAL/-ENAMETOOLONG  a path refused by wire_path_check
 *   -EPERM       a mode with setuid/setgid/sticky bits
 *   or a read() error.  After a failure every later call fails too. */
int wire_recv(struct wire *w, struct msg *m, char *err, size_t errsize);

/* Bytes read but not yet decoded, and bytes encoded but not yet written
 * (for poll loops: call wire_recv before polling while the first is > 0). */
size_t wire_pending_in(const struct wire *w);
size_t wire_pending_out(const struct wire *w);

void wire_get_stats(const struct wire *w, struct wire_stats *s);

/* Check a path from the wire: relative, '/'-separated, no empty, "." or
 * ".." component, no trailing slash, each component <= WIRE_MAX_NAME bytes,
 * the whole <= WIRE_MAX_PATH, and not WIRE_STATE_DIR or anything under it
 * (at the top level).  0, or -EINVAL (-ENAMETOOLONG for the lengths) with a
 * sentence in err naming the path and the reason.  (A NUL inside a field is
 * refused by the decoder before this check.) */
int wire_path_check(const char *path, char *err, size_t errsize);

#endif
