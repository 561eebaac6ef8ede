/*
 * watcher.h — sees edits made to SRC outside the mount (an editor on the
 * host, git checkout) and keeps the kernel's caches exact: it invalidates the
 * affected entries and inodes and notes the change on the change stream.
 *
 * Uses one fanotify filesystem mark with directory-entry events; the daemon's
 * own writes (it is the process serving the mount) are recognised by pid and
 * skipped, so caching survives our own traffic.
 */
#ifndef WSYNC_WATCHER_H
#define WSYNC_WATCHER_H

struct wfs;
struct watcher;

/* Start watching fs's SRC on a thread of its own.  -1 with errno set if the
 * kernel refuses (no CAP_SYS_ADMIN, a filesystem without file handles). */
int watcher_start(struct wfs *fs, struct watcher **out);

/* Stop the thread and free; NULL is fine. */
void watcher_stop(struct watcher *w);

#endif
