/*
 * mount_daemon.h — the process that serves one mount: the FUSE filesystem,
 * its change stream and the control socket, wired together.  Later the
 * indexer and mirror workers hang off the same change stream.
 */
#ifndef WSYNC_MOUNT_DAEMON_H
#define WSYNC_MOUNT_DAEMON_H

#include <stddef.h>

#include "../fs/wfs.h"

#define MOUNT_MAX_MIRRORS 16

struct daemon_options {
    struct wfs_options fs;
    const char *mirrors[MOUNT_MAX_MIRRORS]; /* DESTs kept equal to SRC */
    size_t nmirrors;
    const char *rsh;        /* for every mirror; NULL: ssh */
    const char *wsync_path; /* the far side's binary; NULL: default */
};

/* Serve until unmounted or signalled.  If ready_fd >= 0, write one line to it:
 * empty once the mount is ready, else the error message; then close it.
 * Returns the process exit code. */
int mount_daemon_run(const struct daemon_options *opt, int ready_fd);

#endif
