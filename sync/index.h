/*
 * index.h — the sqlite3 index of SRC: what every mirrored path held when it
 * was last hashed, its chunks, and a journal of changes.
 *
 * One struct index per process and thread (sqlite connections are not
 * shared).  Paths are relative to SRC, no leading slash, '/'-separated.  Ids
 * are content ids (XXH3-128, see content_id.h).  A directory
 * row covers nothing below it: deleting or renaming a directory path applies
 * to every row under it too.
 *
 * All functions return 0 or -errno style codes (-EIO for a sqlite failure,
 * whose text index_error() returns).
 */
#ifndef WSYNC_INDEX_H
#define WSYNC_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunker.h"
#include "content_id.h"

#define INDEX_FILE_NAME "index.db"

struct index;

/* One path's row.  Strings are owned by whoever filled the struct: the
 * index's getters allocate them (free with index_file_release). */
struct index_file {
    char *path;
    uint32_t type; /* S_IFREG, S_IFDIR or S_IFLNK */
    uint32_t mode; /* permission bits */
    int64_t size;
    int64_t mtime_ns, ctime_ns;
    uint64_t ino;
    struct content_id id; /* file id; zero for directories and symlinks */
    char *target;              /* symlink target, else NULL */
    uint64_t seq;              /* journal sequence of the last change */
};

struct index_stats {
    uint64_t files, dirs, symlinks;
    uint64_t bytes;  /* sum of regular file sizes */
    uint64_t chunks; /* chunk rows (a chunk shared by two files counts twice) */
    uint64_t seq;    /* last journal sequence */
    int64_t db_bytes; /* size of index.db (+ WAL) on disk */
};

/* Open (creating if needed) STATE_DIR/index.db in WAL mode.  err gets a
 * sentence naming the file and the cause. */
int index_open(int state_dirfd, const char *state_dir_path, bool readonly, struct index **out,
               char *err, size_t errsize);
void index_close(struct index *ix);

/* Text of the last sqlite failure on this connection. */
const char *index_error(struct index *ix);

/* Group writes: everything between begin and commit is one transaction. */
int index_begin(struct index *ix);
int index_commit(struct index *ix);
int index_rollback(struct index *ix);

/* Look a path up; -ENOENT if absent. */
int index_get(struct index *ix, const char *path, struct index_file *out);
void index_file_release(struct index_file *f);

/* Insert or replace a path's row and its chunk list (n may be 0). */
int index_put(struct index *ix, const struct index_file *f, const struct chunk *chunks,
              size_t n);

/* Update only the stat fields of an existing row (content unchanged). */
int index_touch(struct index *ix, const struct index_file *f);

/* Remove a path and everything below it. */
int index_delete(struct index *ix, const char *path);

/* Move a path and everything below it to a new name (dir or file rename). */
int index_rename(struct index *ix, const char *from, const char *to);

/* The chunks of a path, in file order; *out is malloc'ed. */
int index_get_chunks(struct index *ix, const char *path, struct chunk **out, size_t *n);

/* *empty: no row at all (no file, directory or symlink, so no chunk
 * either).  0 or a negative error. */
int index_is_empty(struct index *ix, bool *empty);

/* Where a chunk with this id can be read: a path (malloc'ed) and offset.
 * -ENOENT if no file holds it. */
int index_find_chunk(struct index *ix, const struct content_id *id, char **path,
                     uint64_t *off, uint32_t *len);

/* Call fn for every row under prefix ("" for all), sorted by path bytes.
 * A non-zero return from fn stops the walk and is returned. */
int index_foreach(struct index *ix, const char *prefix,
                  int (*fn)(const struct index_file *f, void *arg), void *arg);

/* Call fn for every row, in no particular order: a table scan, cheaper
 * than index_foreach(ix, "", ...) for callers that sort or hash anyway.
 * Same contract otherwise. */
int index_foreach_unordered(struct index *ix, int (*fn)(const struct index_file *f, void *arg),
                            void *arg);

/* Append a journal entry; returns its sequence number in *seq. */
int index_journal_add(struct index *ix, const char *kind, const char *path, uint64_t *seq);

/* Call fn for the newest n journal entries, oldest first. */
int index_journal_recent(struct index *ix, size_t n,
                         void (*fn)(uint64_t seq, int64_t time_ns, const char *kind,
                                    const char *path, void *arg),
                         void *arg);

/* Call fn for every journal entry after seq, oldest first; stops early and
 * returns fn's value when it is non-zero. */
int index_journal_since(struct index *ix, uint64_t seq,
                        int (*fn)(uint64_t seq, const char *kind, const char *path, void *arg),
                        void *arg);

/* The newest journal sequence (0: empty journal). */
int index_journal_head(struct index *ix, uint64_t *seq);

/* What the journal holds after seq: distinct paths, the bytes of those that
 * are regular files now, and the time of the oldest entry (0: none). */
struct index_pending {
    uint64_t paths, bytes;
    int64_t oldest_ns;
};
int index_journal_pending(struct index *ix, uint64_t seq, struct index_pending *out);

/* Keep only the newest `keep` journal entries. */
int index_journal_trim(struct index *ix, uint64_t keep);

int index_stats(struct index *ix, struct index_stats *st);

/* An upper bound on the number of rows, in O(log n) (for sizing tables). */
uint64_t index_rows_upper_bound(struct index *ix);

#endif
