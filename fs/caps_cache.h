/*
 * caps_cache.h — remember, per inode, that its backing file carries no
 * file capabilities, so a stream of writes costs no fremovexattr each.
 *
 * With FUSE_HANDLE_KILLPRIV_V2 (fuse_io.h) every write must drop
 * `security.capability`.  After one write has removed it (or found none),
 * only a new xattr can bring it back, so the inode is marked clear until:
 * setxattr/removexattr or chmod/chown through the mount (ops_xattr.c,
 * ops_entry.c), an xattr or attribute change the watcher sees from outside
 * (inode_table_forget_privs), or a copy-up (a new backing file).  suid/sgid
 * need no cache: the kernel flags the writes that must clear them
 * (FUSE_WRITE_KILL_SUIDGID), from the mode it has cached, as the VFS's own
 * S_NOSEC does.
 *
 * in->privs: bit 0 = known clear; the other bits count forgets, so a write
 * that checked before a concurrent setxattr cannot mark the inode clear
 * after it (caps_mark_clear is a compare-and-swap from the snapshot).
 *
 * Only mirrored inodes (layer == 0) use the mark: an overlay inode's
 * handles may sit on the lower or the upper file.  The one window: a
 * capability set directly in SRC and a write through the mount before the
 * watcher has read the event; the kernel's own cached attributes have the
 * same window.
 */
#ifndef WSYNC_CAPS_CACHE_H
#define WSYNC_CAPS_CACHE_H

#include "inode_table.h"

/* A snapshot of the mark, taken before checking the file. */
static inline unsigned caps_snapshot(struct wfs_inode *in)
{
    return __atomic_load_n(&in->privs, __ATOMIC_ACQUIRE);
}

/* True if a write to `in` need not clear capabilities. */
static inline bool caps_known_clear(struct wfs_inode *in)
{
    return __atomic_load_n(&in->layer, __ATOMIC_ACQUIRE) == 0 && (caps_snapshot(in) & 1u);
}

/* The backing file was cleared of capabilities after `snap` was taken:
 * mark it, unless something was forgotten meanwhile. */
static inline void caps_mark_clear(struct wfs_inode *in, unsigned snap)
{
    __atomic_compare_exchange_n(&in->privs, &snap, snap | 1u, false, __ATOMIC_ACQ_REL,
                                __ATOMIC_ACQUIRE);
}

/* Something may have given `in` capabilities: check again on the next write. */
static inline void caps_forget(struct wfs_inode *in)
{
    inode_forget_privs(in);
}

#endif
