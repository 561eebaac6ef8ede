/*
 * indexer.h — keeps the index equal to SRC: hashes what changed, never what
 * did not.
 *
 * Two ways in: indexer_scan() compares the whole tree's stat data (size,
 * mtime, ctime, inode, mode) with the index, git-index style, and hashes only
 * files whose stat changed; the indexer thread drains the change stream and
 * re-syncs just the paths it names.  Each batch is one sqlite transaction and
 * adds journal entries for what really changed (add, modify, delete, rename).
 *
 * Invariant: after a scan or a drained batch, every index row matches SRC
 * as it was when that path was looked at; a crash in between loses only
 * work, which the next startup scan redoes.
 */
#ifndef WSYNC_INDEXER_H
#define WSYNC_INDEXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct index;
struct change_stream;
struct indexer;
struct manifest;

struct indexer_counts {
    uint64_t scanned; /* paths looked at */
    uint64_t hashed;  /* files read and hashed */
    uint64_t bytes_hashed;
    uint64_t added, modified, deleted, renamed;
    uint64_t written;     /* rows stored or deleted (a touch included) */
    uint64_t indexed_seq; /* thread mode: every change event up to this one is indexed */
    uint64_t batches;     /* thread mode: batches committed; the first is the startup scan */
};

/* An indexer for SRC (absolute path) writing to ix (owned by the caller,
 * used only from the thread that calls into the indexer).  It loads SRC's
 * path rules (rules.h): ignored and local paths are left out of the index.
 * -EINVAL with err = "FILE:LINE: cause" for a bad rules file. */
int indexer_new(const char *src, struct index *ix, struct indexer **out, char *err,
                size_t errsize);
void indexer_free(struct indexer *in);

/* Chunk files of CHUNKER_SPLIT_MIN bytes or more on two threads
 * (chunker_split.h): for a one-shot scan with a core to spare, such as
 * `wsync push` indexing SRC.  Off by default (a mount's indexer stays on
 * one core). */
void indexer_set_split(struct indexer *in, bool on);

/* Compare all of SRC with the index and fix every difference. */
int indexer_scan(struct indexer *in, struct indexer_counts *counts);

/* indexer_scan, then the manifest (manifest.h, mode_mask as there) of the
 * index as the scan left it.  When the scan wrote no row, the manifest is
 * made from the rows the scan loaded, not by reading the index again. */
int indexer_scan_manifest(struct indexer *in, uint32_t mode_mask, struct indexer_counts *counts,
                          struct manifest **out);

/* Bring one path up to date; `deep` also walks everything below it. */
int indexer_sync_path(struct indexer *in, const char *path, bool deep,
                      struct indexer_counts *counts);

/* Run a thread that drains `cs` into the index until indexer_stop(); it
 * opens its own connection to index.db in `state_dir`.  A change to the
 * rules file reloads the rules and rescans (a bad new file keeps the old
 * rules and is reported by indexer_last_error).  on_commit (may be NULL)
 * runs on the indexer's thread after every committed batch. */
int indexer_start(const char *src, const char *state_dir, struct change_stream *cs,
                  void (*on_commit)(void *arg), void *arg, struct indexer **out, char *err,
                  size_t errsize);
/* Finish the batch in hand, then stop and free. */
void indexer_stop(struct indexer *in);

/* Totals since start (thread-safe). */
void indexer_get_counts(struct indexer *in, struct indexer_counts *out);

/* The last error the thread met (bad rules file, sqlite failure), or "" if
 * none; copied into buf (thread-safe). */
void indexer_last_error(struct indexer *in, char *buf, size_t size);

/* True if the rules leave path out of the index (a tree_skip_fn; arg is
 * the indexer). */
bool indexer_excludes(const char *path, bool is_dir, void *indexer);

#endif
