/*
 * change_stream.h — the seam between the filesystem and sync.
 *
 * Every mutating FUSE op and every outside edit the watcher sees calls
 * change_stream_note().  Events are coalesced by path into a dirty set (one
 * entry per path: kinds OR-ed together, write ranges merged into one hull)
 * and appended to a bounded ring of recent events for `wsync log`.  A
 * consumer (the indexer) takes the whole dirty set at once with
 * change_stream_take().
 *
 * Invariant: note() does no I/O and allocates at most one entry; it is safe
 * to call from any FUSE worker thread.  Paths are relative to SRC, without a
 * leading slash; the root itself is "".
 *
 * This header deliberately has no libfuse dependency: sync/ includes it.
 */
#ifndef WSYNC_CHANGE_STREAM_H
#define WSYNC_CHANGE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum change_kind {
    CHANGE_CREATE = 1u << 0,   /* regular file, fifo, socket or device made */
    CHANGE_MKDIR = 1u << 1,
    CHANGE_SYMLINK = 1u << 2,
    CHANGE_LINK = 1u << 3,     /* new hard link at this path */
    CHANGE_WRITE = 1u << 4,    /* data written; off/len give the range */
    CHANGE_TRUNCATE = 1u << 5, /* size set; off is the new size */
    CHANGE_ATTR = 1u << 6,     /* mode, owner or times */
    CHANGE_XATTR = 1u << 7,
    CHANGE_DELETE = 1u << 8,   /* unlink or rmdir */
    CHANGE_RENAME_FROM = 1u << 9,
    CHANGE_RENAME_TO = 1u << 10, /* other = the old path */
    CHANGE_LOCAL = 1u << 14,     /* flag: a local path (overlay); never mirrored */
    CHANGE_OUTSIDE = 1u << 15,   /* flag: seen by the watcher, not a FUSE op */
};

/* One event as noted; `path` and `other` point into the ring's own storage. */
struct change_event {
    uint64_t seq;
    int64_t time_ns; /* CLOCK_REALTIME */
    uint32_t kind;
    off_t off, len;
    const char *path;
    const char *other; /* rename peer, or NULL */
};

/* One coalesced dirty-set entry, owned by the caller after take(). */
struct change_entry {
    char *path;
    char *renamed_from; /* last rename source into this path, or NULL */
    uint32_t kinds;     /* OR of every event's kind */
    uint64_t first_seq, last_seq;
    uint64_t nevents;
    off_t lo, hi; /* hull of written ranges [lo, hi); lo == hi: none */
};

struct change_stream;

/* A new stream keeping the last `ring_capacity` events for the log. NULL on ENOMEM. */
struct change_stream *change_stream_new(size_t ring_capacity);
void change_stream_free(struct change_stream *cs);

/* Record one event.  `other` may be NULL.  Never fails: on ENOMEM the entry
 * is dropped and the stream remembers it must ask for a full rescan. */
void change_stream_note(struct change_stream *cs, uint32_t kind, const char *path,
                        const char *other, off_t off, off_t len);

/* Move the whole dirty set to *out (an array of *count entries, sorted by
 * first_seq).  Returns true if a full rescan is needed (an allocation
 * failed or the watcher overflowed) and clears that flag. */
bool change_stream_take(struct change_stream *cs, struct change_entry **out, size_t *count);
void change_entries_free(struct change_entry *entries, size_t count);

/* Ask consumers for a full rescan (watcher queue overflow, ENOMEM). */
void change_stream_request_rescan(struct change_stream *cs);

/* Block until the dirty set is non-empty or `timeout_ms` passes; true if non-empty. */
bool change_stream_wait(struct change_stream *cs, int timeout_ms);

/* Wake every waiter (shutdown). */
void change_stream_wake(struct change_stream *cs);

/* Call fn for the newest `n` events in the ring, oldest first. */
void change_stream_recent(struct change_stream *cs, size_t n,
                          void (*fn)(const struct change_event *ev, void *arg), void *arg);

/* Call fn for each dirty entry without taking them (status, tests). */
void change_stream_peek(struct change_stream *cs,
                        void (*fn)(const struct change_entry *e, void *arg), void *arg);

/* Sequence number of the last event noted (0: none yet). */
uint64_t change_stream_seq(struct change_stream *cs);

/* "create", "write", ... for one kind bit; "?" for an unknown bit. */
const char *change_kind_name(uint32_t kind_bit);

/* Write the kinds of `kinds` as "create+write" into buf. */
void change_kinds_format(uint32_t kinds, char *buf, size_t size);

#endif
