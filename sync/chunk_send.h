/*
 * chunk_send.h — the sender's half of the exchange after a COMMIT, shared
 * by push.c (whole trees) and outbox.c (chosen paths): a reader thread
 * collects the far side's WANTs until its ACK while the calling thread
 * answers each wanted id, so neither side can block the other on a full
 * pipe; and the DATA frame for one wanted chunk, read from the tree where
 * the sender's index says it is.
 */
#ifndef WSYNC_CHUNK_SEND_H
#define WSYNC_CHUNK_SEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "content_id.h"
#include "message.h"

struct index;
struct wire;

/* Where wanted chunks are read from: the tree at root_fd (files opened
 * O_NOFOLLOW), located by its index.  name is the tree's path for messages
 * (NULL: "here", paths shown alone); doing names the operation in them
 * ("push", "sync"). */
struct chunk_source {
    struct index *ix;
    int root_fd;
    const char *name;
    const char *doing;
};

/* Send chunk id as DATA (lz4 when that is smaller), its bytes read into
 * buf (CHUNKER_MAX_SIZE bytes) from where src's index says it is; *len
 * gets its length.  The DATA encoder hashes the bytes, so a file changed
 * since it was indexed is caught without a pass of its own.  0; -EAGAIN
 * when the file no longer holds the chunk, the index's error when it knows
 * no such chunk (err says which), or wire_send's error. */
int chunk_send_data(struct wire *w, const struct chunk_source *src, const struct content_id *id,
                    uint8_t *buf, uint32_t *len, char *err, size_t errsize);

/* Read the regular file `path` under root_fd (O_NOFOLLOW), which its index
 * row says holds `size` bytes (a small file, sent inline), into buf, which
 * has room for size + 1: one byte more is asked for, so a file that grew
 * since it was indexed is noticed.  0, -EAGAIN if the file is not `size`
 * bytes now, or -errno. */
int chunk_send_read_small(int root_fd, const char *path, uint8_t *buf, size_t size);

/* The replies to a COMMIT, filled by the reader thread; reusable for the
 * next COMMIT.  The caller sets w (before chunk_wants_serve), arg (passed
 * to every callback) and the optional callbacks; the rest is the reader's. */
struct chunk_wants {
    struct wire *w;
    /* n more ids were wanted: called on the reader thread with lock held
     * (so whoever reads what it counts takes lock too). */
    void (*wanted)(void *arg, size_t n);
    /* A non-fatal ERROR naming a path (the far side refused or skipped
     * it; the batch goes on): called on the reader thread with lock held.
     * NULL: every ERROR ends the batch. */
    void (*refused)(void *arg, const char *path);
    void *arg;
    /* When a send fails because the far side hung up, wait up to two
     * seconds for the ERROR that says why, and report that instead. */
    bool explain_hangup;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t seq;           /* the COMMIT whose ACK ends the exchange */
    struct content_id *ids; /* wanted so far, in order */
    size_t nids, cap;
    bool acked, failed;
    struct msg_ack ack; /* acked: the far side's ACK */
    int code;           /* failed: -errno */
    char err[1024];     /* failed: why */
};

void chunk_wants_init(struct chunk_wants *q);
void chunk_wants_destroy(struct chunk_wants *q);

/* Called once per wanted id, on the calling thread; buf holds
 * CHUNKER_MAX_SIZE bytes.  0 or -errno with err filled. */
typedef int (*chunk_wants_send_fn)(void *arg, const struct content_id *id, uint8_t *buf);

/* After COMMIT seq was sent and flushed: start the reader, send(q->arg,
 * id, buf) each wanted id as it comes, flush the wire after each run of
 * them and then call ran(q->arg) (if set), until the ACK.  0; the first
 * error of send or of a flush; or, when the reader failed (the far side's
 * ERROR, a message that does not belong here, a broken stream), its code,
 * with err set to its message. */
int chunk_wants_serve(struct chunk_wants *q, uint64_t seq, chunk_wants_send_fn send,
                      void (*ran)(void *arg), char *err, size_t errsize);

#endif
