/*
 * wfs_forget.h — tell the kernel to forget what it cached of one path of
 * SRC that this very process changed outside the mount (a two-way mirror
 * round applying the far side's edit).  The watcher cannot do it: it skips
 * our own process's events, which are normally FUSE ops the kernel already
 * knows about.
 */
#ifndef WSYNC_WFS_FORGET_H
#define WSYNC_WFS_FORGET_H

struct wfs;

/* Drop the dentry of rel (relative to SRC) and the cached attributes and
 * pages of it and of its directory.  Safe from any thread but a FUSE
 * worker; a no-op before the mount exists or for paths the kernel never
 * looked up. */
void wfs_forget_path(struct wfs *fs, const char *rel);

#endif
