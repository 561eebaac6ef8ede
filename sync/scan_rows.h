/*
 * scan_rows.h — the index rows of one subtree, in path byte order, for a
 * scan that merges them with each directory's sorted listing (git's way)
 * instead of looking every path up.
 *
 * Rows sit in one array and their strings in a few large blocks that never
 * move: a load is one sqlite query and no allocation per row.  In byte order a directory's
 * subtree is the contiguous range [dir + "/", dir + "0") ('0' follows '/'),
 * but not the rows right after the directory's own row: a sibling such as
 * "dir-x" or "dir.c" ('-' and '.' sort below '/') comes in between.  So
 * children are found by skipping each subdirectory's range with a binary
 * search, never by assuming a subtree follows its directory.
 *
 * Invariant: v[0..n) is strictly increasing by strcmp of f.path.
 */
#ifndef WSYNC_SCAN_ROWS_H
#define WSYNC_SCAN_ROWS_H

#include <stdbool.h>
#include <stddef.h>

#include "index.h"

struct scan_row {
    struct index_file f; /* f.path and f.target point into blocks */
    bool seen;           /* met by the walk (or deleted with an ancestor) */
};

struct scan_rows {
    struct scan_row *v;
    size_t n, cap;
    char **blocks; /* string storage; the last one is being filled */
    size_t nblocks, block_used, block_size;
};

/* Load every row at or under prefix ("" for all) from ix.  0, -ENOMEM, or
 * index_foreach's error.  Free with scan_rows_free (also after a failure). */
int scan_rows_load(struct scan_rows *s, struct index *ix, const char *prefix);

/* Add one row (copied).  Rows must come in increasing path order, else
 * call scan_rows_sort() before any lookup.  0 or -ENOMEM. */
int scan_rows_add(struct scan_rows *s, const struct index_file *f);

/* Restore the invariant after adds out of order.  -EEXIST on a duplicate. */
int scan_rows_sort(struct scan_rows *s);

void scan_rows_free(struct scan_rows *s);

/* The row whose path is exactly path, or NULL. */
struct scan_row *scan_rows_find(struct scan_rows *s, const char *path);

/* The rows strictly below directory dir (dirlen bytes; "" is the root, so
 * every row): [*lo, *hi). */
void scan_rows_below(const struct scan_rows *s, const char *dir, size_t dirlen, size_t *lo,
                     size_t *hi);

/* The first direct child at or after row i and before hi, where [i, hi) is
 * inside the rows below a directory whose paths start with prefixlen bytes
 * (dirlen + 1, or 0 for the root).  Descendants deeper down are skipped a
 * subdirectory at a time.  Returns hi if there is none. */
size_t scan_rows_next_child(const struct scan_rows *s, size_t i, size_t hi, size_t prefixlen);

#endif
