/*
 * passthrough.h — kernel FUSE passthrough for open files: the kernel reads
 * and writes the backing file itself, with no round trip to the daemon.
 *
 * An open is passed through when the kernel agreed at INIT (fuse_io.h),
 * the file is a regular file on a mirrored path, it is open for writing
 * (and then empty or below PASSTHROUGH_EDIT_MIN_BYTES) or for reading only
 * (and then at least PASSTHROUGH_READ_MIN_BYTES), and registering it as a backing
 * file works; otherwise it is served by us as before (read and
 * write ops), silently, with one line in the daemon's log the first time
 * the kernel refuses.
 *
 * The kernel wants all open handles of an inode in one mode: a plain open
 * while another is passed through (or the reverse) fails with EIO.  So an
 * inode's first open picks the mode, and later opens follow it until the
 * last handle is released; handles passed through share one backing id.
 *
 * Writes through a passed-through handle never reach us.  The change
 * stream still hears of them: on FLUSH (each close), FSYNC and RELEASE of
 * a handle open for writing, if the file's ctime or size moved since the
 * handle's last note, one CHANGE_WRITE for the whole file is noted, before
 * the reply (so a closed file's writes are in the stream, as before).
 */
#ifndef WSYNC_PASSTHROUGH_H
#define WSYNC_PASSTHROUGH_H

#include <stdbool.h>

#include "wfs_internal.h"

/* A read-only first open of a file smaller than this is served by us
 * (passthrough.c, take_backing: small reads cost less that way). */
#define PASSTHROUGH_READ_MIN_BYTES (256 << 10)

/* A first open for writing of a file this big (after the open: O_TRUNC has
 * emptied it) is served by us: an in-place edit of a big file keeps its
 * per-write ranges, so the indexer re-chunks only what changed (rechunk.h)
 * instead of re-reading the whole file.  New and truncated files, where
 * ranges say nothing, are passed through. */
#define PASSTHROUGH_EDIT_MIN_BYTES (1 << 20)

/* Decide the mode of a new handle `fd` (open with `flags` by uid/gid) on
 * `in`, and record it.  Returns the backing id to put in the OPEN/CREATE
 * reply, or 0 for a plain handle.  A non-root writer's handle on a file
 * with suid/sgid/capabilities stays plain (we must clear them on write).
 * Call passthrough_release() if the reply fails. */
int passthrough_open(struct wfs *fs, struct wfs_inode *in, int fd, int flags, uid_t uid, gid_t gid);

/* The handle `fd` was written through the kernel: note its write if the
 * file changed since the last note (see above).  No-op for plain handles. */
void passthrough_note(struct wfs *fs, int fd);

/* The handle `fd` is released (or its open reply failed): note as above,
 * then drop it from its inode, closing the backing id with the last one.
 * Does not close fd. */
void passthrough_release(struct wfs *fs, int fd);

/* For the watcher: true if a write it saw on `in` (whose backing file `fd`
 * may be O_PATH) may be one made through the mount, by the kernel for its
 * caller: `in` has handles passed through, or had, and the file has not
 * changed since the last of them was released. */
bool passthrough_wrote(struct wfs_inode *in, int fd);

/* For the watcher, on a close for writing of `in`'s file (`fd` may be
 * O_PATH): true if `in` has no handles passed through now but had, and its
 * file changed since the last of them closed (a shared mapping written
 * after its fd was closed).  Then it takes the file's ctime as the new
 * mark, so the same change is reported once. */
bool passthrough_changed_after_close(struct wfs_inode *in, int fd);

/* Opens passed through since the mount, and whether the kernel agreed. */
struct passthrough_stats {
    bool on; /* negotiated, and not refused by the kernel since */
    unsigned long long opens;
};
void passthrough_get_stats(struct passthrough_stats *st);

#endif
