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

#include <stdbool.h>

struct wfs;
struct watcher;

/* Start watching fs's SRC on a thread of its own.  -1 with errno set if the
 * kernel refuses (no CAP_SYS_ADMIN, a filesystem without file handles). */
int watcher_start(struct wfs *fs, struct watcher **out);

/* Handle every event queued before this call (an edit made outside, or a
 * write the kernel passed through for the mount) before returning: the
 * barrier of a `flush`.  False if that took longer than timeout_ms.  NULL
 * (no watcher) is synced. */
bool watcher_sync(struct watcher *w, int timeout_ms);
/* Stop the thread and free; NULL is fine. */
void watcher_stop(struct watcher *w);

#endif
