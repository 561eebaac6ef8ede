/*
 * hold.h — keep big files that are still being written out of the
 * indexer's batches, so that each is hashed once, when the writes stop.
 *
 * A 1 GiB dd through the mount pauses between writes often enough for
 * the indexer to start a batch many times; each re-read the whole file
 * that far.  An entry is held when it only says "data written" (write,
 * truncate, create, attributes: no rename, delete, mkdir or local path),
 * names a regular file of at least HOLD_MIN_BYTES, and that file's mtime
 * is less than HOLD_RECENT_MS old.  A held entry goes back into the next
 * batch once its file has been still for HOLD_RECENT_MS (the writer
 * stopped or closed it), is gone or changed type, or has been held for
 * HOLD_MAX_MS (a file written for minutes still reaches the mirrors).
 * Later events for a held path merge into it (kinds OR-ed, ranges hulled).
 *
 * Invariant: every change event is either in the batch the indexer is
 * about to run, or held here; hold_min_seq() tells how far the indexer
 * may claim to have indexed.
 */
#ifndef WSYNC_HOLD_H
#define WSYNC_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../fs/change_stream.h"

#define HOLD_MIN_BYTES (16ll << 20)
#define HOLD_RECENT_MS 1000
#define HOLD_MAX_MS    10000

struct hold;

/* A hold for files under the directory `src_fd` (borrowed).  NULL on ENOMEM. */
struct hold *hold_new(int src_fd);
void hold_free(struct hold *h);

/* Merge the held entries into the batch *e[*n] (taking ownership of it),
 * then move every entry that must wait (see above) back into the hold.
 * now_ms is CLOCK_REALTIME in ms (compared with mtimes).  `release_all`
 * empties the hold (shutdown, full rescan).  On -ENOMEM every entry is
 * still in the batch or in the hold: nothing is lost. */
int hold_filter(struct hold *h, struct change_entry **e, size_t *n, int64_t now_ms,
                bool release_all);

/* Number of held entries. */
size_t hold_count(const struct hold *h);

/* The smallest first_seq of a held entry, or 0 if none. */
uint64_t hold_min_seq(const struct hold *h);

#endif
