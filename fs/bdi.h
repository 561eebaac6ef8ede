/*
 * bdi.h — the read-ahead window of a FUSE mount.
 *
 * The kernel gives a FUSE mount a backing device ("bdi", named MAJ:MIN
 * after the mount's anonymous device) whose read-ahead starts at 128 KiB
 * and which INIT can only lower (it takes the smaller of the bdi's value
 * and the reply's max_readahead).  A cold sequential read then goes to the
 * daemon as 128 KiB READs, one round trip each.  Raising the bdi's
 * read_ahead_kb after INIT lets the kernel ask for larger runs (up to
 * max_pages per READ, several READs in flight).
 */
#ifndef WSYNC_BDI_H
#define WSYNC_BDI_H

/* Read-ahead wsync asks for (KiB). */
#define BDI_READ_AHEAD_KB 4096

/* Find the FUSE mount at `mountpoint` in /proc/self/mountinfo (the last
 * one mounted there) and write `kb` to /sys/class/bdi/MAJ:MIN/read_ahead_kb.
 * Never touches the mount itself (no FUSE request).  0, or -errno: ENOENT
 * if no FUSE mount is there, EACCES/EROFS if sysfs refuses (not root). */
int bdi_set_read_ahead(const char *mountpoint, unsigned kb);

#endif
