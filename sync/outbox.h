/*
 * outbox.h — send chosen paths of a tree as one batch and see it through:
 * for each (from, as) pair, an UPDATE named `as` with the index's state of
 * `from` (a directory alone, never its subtree), or DELETE of `as` when the
 * index has no `from`; then COMMIT; then DATA for every WANT until the far
 * side's ACK.  A reader thread takes WANTs while this thread writes DATA,
 * so neither side can block the other on a full pipe.  Used by both ends
 * of a two-way sync: `wsync sync` pushing, and `wsync serve` answering PULL.
 *
 * Chunks are read from root_fd (O_NOFOLLOW) and re-hashed before they go:
 * a file changed since it was indexed fails the batch with -EAGAIN rather
 * than sending bytes that do not match their id.
 */
#ifndef WSYNC_OUTBOX_H
#define WSYNC_OUTBOX_H

#include <stdint.h>

#include "message.h"
#include "path_state.h"

struct index;
struct wire;

struct outbox_counts {
    uint64_t files, dirs, symlinks, deleted;
    uint64_t chunks_sent, data_bytes;
};

/* Called once per item with the state sent for it (absent: DELETE), or
 * with refused set when the far side refused or skipped that path (a
 * non-fatal ERROR naming `as`, e.g. its rules exclude it). */
typedef void (*outbox_sent_fn)(void *arg, const char *as, const struct path_state *s,
                               bool refused);

/* Send items[0..n) as batch `seq` and wait for its ACK.  0, or -errno with
 * err naming the path or the far side's error. */
int outbox_send(struct wire *w, struct index *ix, int root_fd, const struct msg_pull_entry *items,
                size_t n, uint64_t seq, outbox_sent_fn sent, void *arg,
                struct outbox_counts *counts, char *err, size_t errsize);

#endif
