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

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

/* Overlay layer bits of an inode (fs/overlay.h).  0 for a mirrored path. */
enum {
    INODE_LOCAL = 1u << 0,    /* a [local] path: writes go to the overlay */
    INODE_UPPER = 1u << 1,    /* fd is in the overlay (copied up or made there) */
    INODE_SKELETON = 1u << 2, /* mirrored dir with local entries in the overlay */
};

struct wfs_inode {
    /* O_PATH|O_NOFOLLOW on the backing object.  Fixed for a mirrored path;
     * a copy-up swaps it once (lower -> upper) under the table lock and
     * keeps the old fd open in lower_fd, so an op racing with it still
     * holds a valid fd. */
    int fd;
    /* Local dirs: the lower dir merged below this one (-1: none or opaque).
     * Local files after copy-up: the old lower fd, unused but kept open. */
    int lower_fd;
    dev_t dev; /* key: the backing object fd refers to */
    ino_t ino;
    ino_t shown_ino;          /* st_ino the kernel sees: kept across copy-up */
    mode_t type;              /* S_IFMT bits */
    unsigned layer;           /* INODE_* bits; changed with __atomic ops */
    uint64_t nlookup;         /* guarded by the table lock */
    struct wfs_inode *next;   /* hash chain, guarded by the table lock */
    dev_t alias_dev;          /* merged dirs: the lower dir's key, for the watcher */
    ino_t alias_ino;
    struct wfs_inode *alias_next; /* alias chain, guarded by the table lock */
    bool aliased;
    /* Write-path caches, used only while layer == 0 (a mirrored inode):
     * see fs/caps_cache.h and fs/path_cache.h. */
    unsigned privs;    /* atomic: fs/caps_cache.h (bit 0: no capabilities) */
    char *path;        /* change-stream path; guarded by path_cache's lock */
    uint64_t path_gen; /* the path generation `path` was computed in */
    /* Open handles, for kernel passthrough (fs/passthrough.h); guarded by
     * passthrough's lock.  The kernel wants every open of an inode in one
     * mode: all passed through to one backing id, or none. */
    int backing_id;               /* > 0 while backing_opens > 0 */
    unsigned backing_opens;       /* handles passed through */
    unsigned plain_opens;         /* handles served by us (read/write ops) */
    struct timespec closed_ctime; /* backing file's ctime when the last of them closed */
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

/* inode_table_ref for the overlay: a new inode also gets `layer` and takes
 * over `lower_fd` (*lower_used tells; lower_st is its stat, for the alias
 * key of a merged dir).  An existing inode that had no lower dir adopts it. */
struct wfs_inode *inode_table_ref_layer(struct inode_table *t, int fd, const struct stat *st,
                                        unsigned layer, int lower_fd,
                                        const struct stat *lower_st, int *fd_used,
                                        int *lower_used);

/* Copy-up: `in` (held by the caller) now lives at new_fd (taken over) with
 * attributes st; the old fd moves to lower_fd (closing any previous one
 * unless it is kept as a merged dir's lower).  Rekeys the table; a dir keeps
 * its old key as an alias.  `layer` bits are OR-ed in. */
void inode_table_copied_up(struct inode_table *t, struct wfs_inode *in, int new_fd,
                           const struct stat *st, unsigned layer);

/* If the kernel holds an inode keyed (dev, ino), apply copied_up to it with a
 * dup of new_fd (not taken over).  True if one was found. */
bool inode_table_adopt(struct inode_table *t, dev_t dev, ino_t ino, int new_fd,
                       const struct stat *st, unsigned layer);

/* Set or clear layer bits of the inode keyed (dev, ino), if held. */
void inode_table_set_layer(struct inode_table *t, dev_t dev, ino_t ino, unsigned set,
                           unsigned clear);

/* Clear bit 0 of in->privs and count one more forget, in one step
 * (fs/caps_cache.h). */
static inline void inode_forget_privs(struct wfs_inode *in)
{
    unsigned old = __atomic_load_n(&in->privs, __ATOMIC_ACQUIRE);
    while (!__atomic_compare_exchange_n(&in->privs, &old, (old + 2) & ~1u, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
        ;
}

/* The inode keyed (dev, ino), if held, may have gained file capabilities
 * (an xattr or attribute change seen by the watcher): forget that it had
 * none (fs/caps_cache.h). */
void inode_table_forget_privs(struct inode_table *t, dev_t dev, ino_t ino);

/* Drop n lookups; the last one closes and frees the inode. */
void inode_table_unref(struct inode_table *t, struct wfs_inode *inode, uint64_t n);

/* The FUSE node id of the inode for (dev, ino) (its key, or the lower dir
 * of a merged dir), or 0 if the kernel has none. */
uint64_t inode_table_nodeid(struct inode_table *t, dev_t dev, ino_t ino);

/* The inode for (dev, ino) as inode_table_nodeid finds it, with one more
 * lookup so a concurrent FORGET cannot free it while the caller (a thread
 * other than FUSE's, the watcher) reads it; *id gets its node id.  NULL
 * (*id 0) if the kernel has none.  Release with inode_table_unref(.., 1). */
struct wfs_inode *inode_table_hold(struct inode_table *t, dev_t dev, ino_t ino, uint64_t *id);

/* Number of inodes in the table, root included. */
size_t inode_table_size(struct inode_table *t);

#endif
