/*
 * mounts.h — what /proc/self/mountinfo says about a path.
 *
 * wsync keeps no registry of its mounts: a wsync mount has fstype
 * "fuse.wsync" and its source is SRC's absolute path, so the kernel's own
 * table maps MNT to SRC (and so to SRC/.wsync/control.sock).
 */
#ifndef WSYNC_MOUNTS_H
#define WSYNC_MOUNTS_H

#define WSYNC_FSTYPE "fuse.wsync"

struct mount_info {
    char *mountpoint;
    char *source;
    char *fstype;
};

/* The topmost mount whose mount point is exactly `path` (absolute, canonical).
 * 0 and *out filled, -ENOENT if none, other -errno on failure. */
int mounts_at(const char *path, struct mount_info *out);

/* The innermost wsync mount containing `path` (absolute), or -ENOENT. */
int mounts_wsync_containing(const char *path, struct mount_info *out);

/* Call fn for every wsync mount, in mountinfo order (the strings live only
 * during the call).  0, or -errno if mountinfo cannot be read. */
int mounts_foreach_wsync(void (*fn)(const struct mount_info *m, void *arg), void *arg);

void mount_info_release(struct mount_info *m);

/* 0 if path is reachable, -ENOTCONN if it is a FUSE mount whose daemon died,
 * else -errno.  It asks with statfs(), which always reaches the daemon: a
 * stat() of a mount root is answered from the kernel's attribute cache even
 * after the daemon is gone. */
int mounts_probe(const char *path);

#endif
