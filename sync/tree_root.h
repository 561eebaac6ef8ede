/*
 * tree_root.h — the tree root (tree_hash.h) computed three ways: from the
 * index rows (cheap: what `status` shows), from a manifest already in
 * memory (what push and serve hold), or from SRC on disk without the index
 * (the oracle `wsync index --check` compares against).
 */
#ifndef WSYNC_TREE_ROOT_H
#define WSYNC_TREE_ROOT_H

#include "content_id.h"
#include "tree_hash.h"

struct index;
struct manifest;

/* Root over every row of the index.  0 or -errno (-EIO: a sqlite failure,
 * -EEXIST/-ENOENT: rows that do not form a tree). */
int tree_root_from_index(struct index *ix, struct content_id *root);

/* Root over every entry of a manifest (manifest.h); the same as
 * tree_root_from_index of the index it was built from.  0 or -errno. */
int tree_root_from_manifest(const struct manifest *m, struct content_id *root);

/* Root of the directory tree at src, hashing every file and leaving out
 * what skip says (NULL: nothing).  0 or -errno. */
int tree_root_from_disk(const char *src, tree_skip_fn skip, void *arg, struct content_id *root);

#endif
