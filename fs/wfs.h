/*
 * wfs.h — the wsync FUSE filesystem: a passthrough of SRC at a mount point.
 *
 * Lifecycle: wfs_open() checks SRC and prepares the state dir, wfs_mount()
 * mounts, wfs_run() serves requests until unmounted or wfs_stop(), then
 * wfs_close().  Every mutating op is reported to the change stream.
 * Errors are returned as -errno with a message naming the path and cause.
 */
#ifndef WSYNC_WFS_H
#define WSYNC_WFS_H

#include <stdbool.h>
#include <stddef.h>

struct change_stream;
struct wfs;

struct wfs_options {
    const char *src;        /* absolute, canonical */
    const char *mountpoint; /* absolute, canonical */
    bool allow_other;       /* let other users (the docker daemon) in */
    bool keep_owner;        /* new files owned by the caller, not SRC's owner */
    bool writeback;         /* kernel writeback cache (see docs/architecture.md) */
    bool no_passthrough;    /* never kernel passthrough for file I/O (fs/passthrough.h) */
    enum wfs_ring_mode {
        WFS_RING_DEFAULT, /* FUSE over io_uring where the kernel has it: as
                             root the kernel's switch is turned on, quietly */
        WFS_RING_ON,      /* the same, but say why when there is no ring */
        WFS_RING_OFF,     /* /dev/fuse only */
    } ring;                 /* fs/fuse_ring.h */
    bool debug;             /* libfuse request tracing on stderr */
    double cache_timeout;   /* entry/attr timeout in seconds; <0: default */
};

/* Name of SRC's state directory; hidden from the mount, never mirrored. */
#define WFS_STATE_DIR ".wsync"

/* Open SRC, create SRC/.wsync if needed.  On error: -errno and err filled. */
int wfs_open(const struct wfs_options *opt, struct change_stream *changes, struct wfs **out,
             char *err, size_t errsize);

/* Mount at opt->mountpoint.  On error: -errno and err filled. */
int wfs_mount(struct wfs *fs, char *err, size_t errsize);

/* Serve requests on the calling thread (workers are spawned) until the
 * filesystem is unmounted or wfs_stop() is called; then unmount.
 * on_ready runs once the kernel's INIT has been answered. */
int wfs_run(struct wfs *fs, void (*on_ready)(void *arg), void *arg);

/* Ask wfs_run() to return; safe from any thread or signal handler context
 * that is not a FUSE worker. */
void wfs_stop(struct wfs *fs);

void wfs_close(struct wfs *fs);

/* `wsync overlay reset|promote` (op) of rel on the mounted fs: do it and
 * drop the kernel's caches for it.  0, or -errno with msg filled.  On
 * success msg is "still-local" if a promoted path is still local. */
int wfs_overlay_apply(struct wfs *fs, const char *op, const char *rel, char *msg, size_t size);

/* Every outside edit, and every write the kernel passed through, made
 * before this call is on the change stream when it returns true (false:
 * not within timeout_ms).  The first step of a `flush`. */
bool wfs_sync_changes(struct wfs *fs, int timeout_ms);

/* Figures for `wsync status`. */
struct wfs_stats {
    size_t inodes;       /* inodes the kernel holds */
    bool watching;       /* outside edits are watched (fanotify) */
    unsigned long long outside_events;
    bool passthrough;              /* the kernel passes file I/O through */
    unsigned long long passthrough_opens;
    unsigned long long fuse_pooled; /* requests answered by the FUSE pool */
    bool ring;                      /* requests come through FUSE over io_uring */
    unsigned long long ring_served; /* requests answered through the ring */
};
void wfs_get_stats(struct wfs *fs, struct wfs_stats *st);

#endif
