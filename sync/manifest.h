/*
 * manifest.h — a tree's manifest in memory, with a digest per directory,
 * so that two sides can find where their trees differ without listing
 * every path (docs/protocol.md, "Manifest").
 *
 * The manifest is every row of an index as a struct msg_entry, in tree
 * order (msg_path_cmp): a directory is followed directly by everything
 * below it, so its subtree is the range (i, end(i)).  A directory entry's
 * id is its subtree digest: msg_manifest_digest_add over the entries of
 * that range, in order.  The manifest digest is the same over all entries;
 * equal digests mean equal listings (paths, types, modes, mtimes, sizes,
 * file ids, targets), and so do equal subtree digests for a directory.
 *
 * Built once, then read-only (safe to read from several threads).
 */
#ifndef WSYNC_MANIFEST_H
#define WSYNC_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "content_id.h"
#include "message.h"

struct index;
struct manifest;

/* Load every row of ix.  mode_mask is applied to each mode: 0777 for a
 * sender (what it would send), 07777 for a receiver (what it has).
 * 0, or -errno (-ENOMEM, or the index's error). */
int manifest_build(struct index *ix, uint32_t mode_mask, struct manifest **out);
/* The same from rows a scan holds (scan_rows.h): every row of an index
 * that nothing wrote since they were loaded. */
struct scan_rows;
int manifest_from_rows(const struct scan_rows *rows, uint32_t mode_mask, struct manifest **out);
void manifest_free(struct manifest *m);

size_t manifest_count(const struct manifest *m);
const struct msg_entry *manifest_entry(const struct manifest *m, size_t i);
/* The inode the index recorded for entry i (hard links share one). */
uint64_t manifest_ino(const struct manifest *m, size_t i);
/* One past the last entry below entry i (i + 1 unless a non-empty dir). */
size_t manifest_end(const struct manifest *m, size_t i);
/* The manifest digest of the whole tree. */
const struct content_id *manifest_digest(const struct manifest *m);

/* The range of entries directly or indirectly below dir: "" is all of them.
 * false when dir is not a directory of this tree.  The direct children are
 * *lo, then manifest_end of each, while < *hi. */
bool manifest_subtree(const struct manifest *m, const char *dir, size_t *lo, size_t *hi);

#endif
