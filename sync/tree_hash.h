/*
 * tree_hash.h — the tree root: one content id that two machines share iff
 * their mirrored trees are identical.
 *
 * Definition (a Merkle tree with one node per directory).  The id of a
 * directory is XXH3-128 (content_id form) over the records of its children,
 * sorted by name as unsigned bytes (strcmp); the root id is the id of the
 * top directory (whose own mode and name are not part of it).  One record:
 *
 *   u8 type        'f' regular file, 'd' directory, 'l' symlink
 *   u32 mode       permission bits & 0777 (setuid/setgid/sticky never
 *                  count); 0 for a symlink (Linux cannot change it)
 *   u32 n, name    the child's name: n bytes, no NUL
 *   payload        'f': the 16-byte file id (content_id.h)
 *                  'd': the 16-byte id of that directory
 *                  'l': u32 n, target: the link's n bytes, no NUL
 *
 * u32 is little-endian.  Every variable field is length-prefixed, so a
 * record list decodes one way only.  An empty directory's id is XXH3-128 of
 * nothing; it still changes its parent's id.  Nothing else enters: no mtime,
 * owner, inode, link count, xattrs, or the order entries were made or added.
 * Hard links are regular files under each name; fifos, sockets and devices
 * are not part of the tree.
 *
 * Invariant: this definition is shared by every machine (`wsync verify`
 * compares roots): never change it without a protocol version bump.
 */
#ifndef WSYNC_TREE_HASH_H
#define WSYNC_TREE_HASH_H

#include <stdbool.h>
#include <stdint.h>

#include "content_id.h"

struct strbuf;

/* Collects entries in any order; finish() computes the root. */
struct tree_builder;

/* A new, empty builder (its root is the empty directory's id).  NULL on ENOMEM. */
struct tree_builder *tree_builder_new(void);
void tree_builder_free(struct tree_builder *b);

/* Add one entry.  path is relative to the root, '/'-separated, with no
 * empty, "." or ".." component (the root itself is never added); mode is
 * masked to 0777.  0, or -EINVAL for a malformed path, -ENOMEM. */
int tree_builder_add_file(struct tree_builder *b, const char *path, uint32_t mode,
                          const struct content_id *file_id);
int tree_builder_add_dir(struct tree_builder *b, const char *path, uint32_t mode);
int tree_builder_add_symlink(struct tree_builder *b, const char *path, const char *target);

/* Compute the root over everything added (the builder stays usable).  0,
 * -EEXIST if a path was added twice, -ENOENT if an entry's parent was not
 * added as a directory, -ENOMEM; *errpath (if not NULL) gets the path. */
int tree_builder_finish(struct tree_builder *b, struct content_id *root, struct strbuf *errpath);

/* Return true to leave relpath (and everything below it) out of the tree;
 * is_dir tells whether it is a directory (rules may match directories only). */
typedef bool (*tree_skip_fn)(const char *relpath, bool is_dir, void *arg);

/* The root of the tree below the directory dirfd, read from disk: walks
 * with openat/fstatat relative to directory fds (no length limit on paths;
 * one fd per level), hashes regular files with chunker_hash_fd(), skips a
 * top-level ".wsync" and every relpath for which skip (if not NULL) says
 * so.  An entry that vanishes during the walk is left out.  0, or -errno
 * from a syscall, -EAGAIN if an entry changed type while being read, or
 * -ENOMEM; *errpath (if not NULL) gets the relative path that failed. */
int tree_hash_dir(int dirfd, tree_skip_fn skip, void *arg, struct content_id *root,
                  struct strbuf *errpath);

#endif
