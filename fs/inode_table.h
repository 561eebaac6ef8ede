/*
 * inode_table.h — the kernel-visible inodes, keyed by backing (dev, ino).
 *
 * Each inode holds one O_PATH fd on its backing object, so every op resolves
 * relative to an fd (no path length limit, no races with renames).  The FUSE
 * node id of an inode is its address; the root is FUSE_ROOT_ID.
 *
 * Invariant: an inode is in the table exactly while the kernel holds lookups
 * on it (nlookup > 0); the last forget closes its fd and frees it.
 */
#ifndef WSYNC_INODE_TABLE_H
#define WSYNC_INODE_TABLE_H

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct wfs_inode {
    int fd; /* O_PATH|O_NOFOLLOW, immutable while the inode lives */
    dev_t dev;
    ino_t ino;
    mode_t type;              /* S_IFMT bits */
    uint64_t nlookup;         /* guarded by the table lock */
    struct wfs_inode *next;   /* hash chain, guarded by the table lock */
};

struct inode_table;

/* A table whose root is `root_fd` (taken over) with attributes `st`. NULL on ENOMEM. */
struct inode_table *inode_table_new(int root_fd, const struct stat *st);
void inode_table_free(struct inode_table *t);

struct wfs_inode *inode_table_root(struct inode_table *t);

/* Find the inode for st's (dev, ino) and add one lookup, or insert a new one
 * that takes over `fd`.  *fd_used tells whether fd was taken (else the caller
 * closes it).  NULL on ENOMEM. */
struct wfs_inode *inode_table_ref(struct inode_table *t, int fd, const struct stat *st,
                                  int *fd_used);

/* Drop n lookups; the last one closes and frees the inode. */
void inode_table_unref(struct inode_table *t, struct wfs_inode *inode, uint64_t n);

/* The FUSE node id of the inode for (dev, ino), or 0 if the kernel has none. */
uint64_t inode_table_nodeid(struct inode_table *t, dev_t dev, ino_t ino);

/* Number of inodes in the table, root included. */
size_t inode_table_size(struct inode_table *t);

#endif
