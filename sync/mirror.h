/*
 * mirror.h — one live mirror: a worker thread that keeps a remote replica
 * equal to SRC while the mount runs.
 *
 * It holds one push session (push.h) open.  On connect it sends the whole
 * difference (catch-up); then, each time the indexer commits a batch, it
 * reads the journal since the last acknowledged entry and sends the current
 * state of just those paths as one batch.  A failure (remote killed, link
 * down, disk full there) closes the session and retries with backoff; the
 * next connect catches up from the manifest, so no edit made meanwhile is
 * lost.  One slow or dead remote never holds back another or the mount.
 */
#ifndef WSYNC_MIRROR_H
#define WSYNC_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mirror;

struct mirror_status {
    const char *dest;
    bool connected;
    bool caught_up;       /* a catch-up finished since the start: acked_seq is meaningful */
    uint64_t acked_seq;   /* journal entries up to here are durable there */
    uint64_t batches;     /* batches acknowledged */
    uint64_t sessions;    /* connections made (1 + reconnects) */
    uint64_t bytes_out;   /* over all sessions, the current one included */
    int64_t last_ack_ns;  /* CLOCK_REALTIME of the last ACK, 0: none */
    int retry_ms;         /* while disconnected: the current backoff */
    char last_error[1024]; /* "" when the last attempt worked */
};

/* Start mirroring SRC (absolute) to dest; rsh and wsync_path as for push
 * (may be NULL); the far side's stderr goes to log_fd (-1: ours).  0 or
 * -errno (bad DEST: -EINVAL with err filled). */
int mirror_start(const char *src, const char *dest, const char *rsh, const char *wsync_path,
                 int log_fd, struct mirror **out, char *err, size_t errsize);

/* New journal entries may exist (called after each indexer commit). */
void mirror_kick(struct mirror *m);

/* Wait until a catch-up has finished and the journal through seq `want`
 * (the caller reads the head with its own index connection) is
 * acknowledged, at most timeout_ms.  True if it was. */
bool mirror_flush(struct mirror *m, uint64_t want, int timeout_ms);

void mirror_get_status(struct mirror *m, struct mirror_status *st);

/* Ask the thread to stop without waiting (then mirror_stop): stopping
 * several workers this way overlaps their grace periods. */
void mirror_ask_stop(struct mirror *m);

/* Stop the thread (ending the session politely when it can) and free.
 * A session that does not end within 2 s (a transfer to a slow remote, a
 * connect to a dead one) is cut by killing the far side's process. */
void mirror_stop(struct mirror *m);

#endif
