/*
 * wfs_internal.h — state shared by the files of the filesystem module only.
 *
 * ops_*.c each implement one family of FUSE ops; they reach inodes through
 * wfs_inode_of() and report changes through wfs_note().  Nothing outside fs/
 * includes this header.
 */
#ifndef WSYNC_WFS_INTERNAL_H
#define WSYNC_WFS_INTERNAL_H

#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdatomic.h>

#include "change_stream.h"
#include "inode_table.h"
#include "wfs.h"

struct watcher;
struct overlay;

struct wfs {
    struct wfs_options opt;
    char *src;      /* canonical SRC, no trailing slash */
    size_t src_len;
    int src_fd;     /* O_PATH on SRC */
    int state_fd;   /* O_PATH on SRC/.wsync */
    uid_t owner_uid; /* SRC's owner: new files get it unless keep_owner */
    gid_t owner_gid;
    double timeout;  /* entry and attr timeout */
    struct inode_table *inodes;
    struct change_stream *changes;
    struct fuse_session *se;
    struct fuse_ring *ring; /* FUSE over io_uring, or NULL: fs/fuse_ring.h */
    struct watcher *watcher;
    struct overlay *ov; /* local paths: fs/overlay.h */
    bool no_opendir;    /* the kernel opens directories without asking us */
    void (*on_ready)(void *);
    void *on_ready_arg;
    atomic_ullong outside_events;
    atomic_ullong path_gen;     /* fs/path_cache.h */
    atomic_ullong dir_path_gen; /* fs/path_cache.h: directories' paths */
    bool is_root;               /* geteuid() == 0 at open: new objects can be given away */
};

extern const struct fuse_lowlevel_ops wfs_ops;

static inline struct wfs *wfs_of(fuse_req_t req)
{
    return (struct wfs *)fuse_req_userdata(req);
}

static inline struct wfs_inode *wfs_inode_of(fuse_req_t req, fuse_ino_t ino)
{
    if (ino == FUSE_ROOT_ID)
        return inode_table_root(wfs_of(req)->inodes);
    return (struct wfs_inode *)(uintptr_t)ino;
}

static inline struct wfs_inode *wfs_inode_of_fs(struct wfs *fs, fuse_ino_t ino)
{
    if (ino == FUSE_ROOT_ID)
        return inode_table_root(fs->inodes);
    return (struct wfs_inode *)(uintptr_t)ino;
}

static inline int wfs_fd_of(fuse_req_t req, fuse_ino_t ino)
{
    return wfs_inode_of(req, ino)->fd;
}

/* "/proc/self/fd/N" for an fd, to reach an O_PATH object by path. */
#define WFS_PROC_PATH_MAX 32
void wfs_proc_path(int fd, char buf[WFS_PROC_PATH_MAX]);

/* True for the state dir's name in the root: it must stay unreachable. */
bool wfs_is_hidden(fuse_ino_t parent, const char *name);

/* fstat an inode, adjusted for what the mount shows (wfs_shown_nlink). */
int wfs_stat(struct wfs *fs, fuse_ino_t ino, int fd, struct stat *st);

/* A directory's link count as the mount shows it: without the hidden state
 * dir at the root, and counted over the merged listing for an overlay dir.
 * find and others trust nlink - 2 as the number of subdirectories. */
void wfs_shown_nlink(struct wfs *fs, struct wfs_inode *in, struct stat *st);

/* Look up parent/name, add a kernel reference, fill e.  -errno on failure. */
int wfs_do_lookup(struct wfs *fs, fuse_ino_t parent, const char *name, struct fuse_entry_param *e);

/* Give a new object the owner policy: SRC's owner, or the caller with keep_owner. */
void wfs_set_owner(struct wfs *fs, fuse_req_t req, int dirfd, const char *name, int fd);

/* Path of fd (plus "/name" if name) relative to SRC, for change events.
 * False if the object is not under SRC any more (deleted, moved out). */
bool wfs_relpath(struct wfs *fs, int fd, const char *name, char *buf, size_t size);

/* Report one change to the stream (path computed from dirfd + name; an
 * object in the overlay is noted at its path in the mount, as local). */
void wfs_note(struct wfs *fs, uint32_t kind, int dirfd, const char *name, off_t off, off_t len);

/* wfs_note for the entry `name` just made in pfd under dir (wfs_child_path). */
void wfs_note_child(struct wfs *fs, uint32_t kind, struct wfs_inode *dir, int pfd,
                    const char *name);

/* After a CREATE made (or, made false, opened) name in pfd as inode `in`:
 * note it, keep its path for the writes that follow, and for a new file
 * remember it has no capabilities (caps_cache.h). */
void wfs_note_created(struct wfs *fs, struct wfs_inode *dir, int pfd, const char *name,
                      struct wfs_inode *in, bool made);

/* wfs_note for a change to the data or attributes of the open inode `in`
 * through fd: the same event, with the path from path_cache.h when valid. */
void wfs_note_inode(struct wfs *fs, struct wfs_inode *in, uint32_t kind, int fd, off_t off,
                    off_t len);

#endif
