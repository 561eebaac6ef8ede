/*
 * mount_daemon.h — the process that serves one mount: the FUSE filesystem,
 * its change stream and the control socket, wired together.  Later the
 * indexer and mirror workers hang off the same change stream.
 */
#ifndef WSYNC_MOUNT_DAEMON_H
#define WSYNC_MOUNT_DAEMON_H

#include "../fs/wfs.h"

/* Serve until unmounted or signalled.  If ready_fd >= 0, write one line to it:
 * empty once the mount is ready, else the error message; then close it.
 * Returns the process exit code. */
int mount_daemon_run(const struct wfs_options *opt, int ready_fd);

#endif
