/*
 * ops_file.c — FUSE ops on open files: create, open, read, write, flush,
 * release, fsync, fallocate, copy_file_range, lseek.
 *
 * fi->fh is a plain fd on the backing file.  Data moves with splice where the
 * kernel allows it (fuse_reply_data / fuse_buf_copy on fd buffers).
 * Writes are noted with their range; nothing here hashes or blocks on sync.
 * Every change is noted before the reply: once the caller sees its write
 * done, the change stream has it (unmount flushes and tests rely on it).
 */
#include "ops.h"
#include "caps_cache.h"
#include "fuse_io.h"
#include "overlay.h"
#include "passthrough.h"
#include "path_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

/* Flags to open the backing file with.  With the writeback cache the kernel
 * may read a write-only file (to fill partial pages) and does O_APPEND
 * itself, so the backing fd must be readable and must not append. */
static int backing_flags(const struct wfs *fs, int flags)
{
    flags &= ~(O_NOFOLLOW | O_CREAT | O_EXCL | O_NOCTTY);
    if (fs->opt.writeback) {
        if ((flags & O_ACCMODE) == O_WRONLY)
            flags = (flags & ~O_ACCMODE) | O_RDWR;
        flags &= ~O_APPEND;
    }
    return flags | O_CLOEXEC;
}

static void set_file_info(struct fuse_file_info *fi, int fd)
{
    fi->fh = (uint64_t)fd;
    /* The watcher invalidates pages changed outside, so the kernel may keep
     * its page cache across opens. */
    fi->keep_cache = 1;
    fi->noflush = 1; /* nothing to do on flush: locks are kept by the kernel */
}

/* Decide whether the kernel passes the new handle's I/O through (fs/
 * passthrough.h) and arm the reply for it.
 *
 * A non-root writer's handle then needs FLUSH: suid/sgid the file gained
 * while it was open must be gone when close() returns, as natively.  A
 * root writer's does not, and FLUSH would cost every `cp`, compiler output
 * and `git add` object one more round trip (a create is 3 instead of 4):
 * its writes reach the change stream through the watcher (the kernel's
 * writes to SRC's file), and at RELEASE, which the kernel sends just after
 * close() returns.  A `flush` syncs with the watcher first
 * (wfs_sync_changes), so nothing written before it is missed. */
static void choose_passthrough(fuse_req_t req, struct wfs *fs, struct wfs_inode *in, int fd,
                               struct fuse_file_info *fi)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    int id = passthrough_open(fs, in, fd, fi->flags, ctx->uid, ctx->gid);
    if (id) {
        /* The kernel takes no page-cache flag with passthrough (EIO): the
         * backing file's own cache serves. */
        fi->keep_cache = 0;
        if ((fi->flags & O_ACCMODE) != O_RDONLY && ctx->uid != 0)
            fi->noflush = 0;
    }
    fuse_io_reply_passthrough(id);
}

void wfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                struct fuse_file_info *fi)
{
    struct wfs *fs = wfs_of(req);
    if (wfs_is_hidden(parent, name)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    struct wfs_inode *dir = wfs_inode_of(req, parent);
    int pfd = dir->fd;
    bool owned = false;
    if (overlay_child_is_local(fs, dir, name, false)) {
        bool lower_dir;
        int r = overlay_upper_dir_for(fs, dir, &pfd, &owned);
        if (!r)
            r = overlay_prepare_name(fs, dir, pfd, name, &lower_dir);
        if (r) {
            if (owned)
                close(pfd);
            fuse_reply_err(req, -r);
            return;
        }
    }
    /* The kernel sends CREATE when it believes the name is free; it may
     * exist all the same (made in SRC a moment ago, before the watcher
     * dropped the negative entry).  O_EXCL must then fail as natively, and
     * a plain O_CREAT opens the existing file without taking it over. */
    int flags = backing_flags(fs, fi->flags);
    bool made = true;
    int fd = openat(pfd, name, flags | O_CREAT | O_EXCL, mode);
    if (fd < 0 && errno == EEXIST && !(fi->flags & O_EXCL)) {
        made = false;
        fd = openat(pfd, name, flags | O_NOFOLLOW, mode); /* never leave SRC by a symlink */
    }
    if (fd < 0) {
        fuse_reply_err(req, errno);
        if (owned)
            close(pfd);
        return;
    }
    if (made)
        wfs_set_owner(fs, req, pfd, name, fd);
    struct fuse_entry_param e;
    int err = wfs_do_lookup(fs, parent, name, &e);
    if (err) {
        close(fd);
        if (owned)
            close(pfd);
        fuse_reply_err(req, -err);
        return;
    }
    set_file_info(fi, fd);
    struct wfs_inode *in = wfs_inode_of(req, e.ino);
    wfs_note_created(fs, dir, pfd, name, in, made);
    if (owned)
        close(pfd);
    choose_passthrough(req, fs, in, fd, fi);
    int sent = fuse_reply_create(req, &e, fi);
    fuse_io_reply_passthrough(0);
    if (sent != 0) {
        /* The kernel never saw the handle (interrupted): undo both refs. */
        passthrough_release(fs, fd);
        close(fd);
        inode_table_unref(fs->inodes, in, 1);
    }
}

void wfs_open_file(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct wfs *fs = wfs_of(req);
    struct wfs_inode *in = wfs_inode_of(req, ino);
    if (overlay_is_local(in) && ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))) {
        int r = overlay_copy_up(fs, in, !(fi->flags & O_TRUNC));
        if (r) {
            fuse_reply_err(req, -r);
            return;
        }
    }
    char proc[WFS_PROC_PATH_MAX];
    wfs_proc_path(in->fd, proc);
    int fd = open(proc, backing_flags(fs, fi->flags));
    if (fd < 0 && errno == EACCES && fs->opt.writeback && (fi->flags & O_ACCMODE) == O_WRONLY)
        fd = open(proc, (fi->flags & ~(O_NOFOLLOW | O_APPEND)) | O_CLOEXEC);
    if (fd < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    set_file_info(fi, fd);
    if (fi->flags & O_TRUNC) {
        if (fuse_io_killpriv_v2())
            fuse_io_kill_privs(fd, fuse_io_kill_suidgid(), fuse_req_ctx(req)->gid);
        wfs_note_inode(fs, in, CHANGE_TRUNCATE, fd, 0, 0);
    }
    choose_passthrough(req, fs, in, fd, fi);
    int sent = fuse_reply_open(req, fi);
    fuse_io_reply_passthrough(0);
    if (sent != 0) {
        passthrough_release(fs, fd);
        close(fd);
    }
}

/* The daemon path's read: spliced from SRC's file, no copy in user space.
 * It runs on a reader (fs/fuse_loop.h) up to 128 KiB, cold or not: handing
 * a cold small READ to the pool cost more (a wakeup per file) than the
 * other reader going on alone while this one waits on the disk. */
void wfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
    buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    buf.buf[0].fd = (int)fi->fh;
    buf.buf[0].pos = off;
    fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void wfs_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in_buf, off_t off,
                   struct fuse_file_info *fi)
{
    struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in_buf));
    out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    out.buf[0].fd = (int)fi->fh;
    out.buf[0].pos = off;
    struct wfs *fs = wfs_of(req); /* req is gone once replied to */
    ssize_t n = fuse_buf_copy(&out, in_buf, 0);
    if (n < 0) {
        fuse_reply_err(req, (int)-n);
        return;
    }
    /* With FUSE_HANDLE_KILLPRIV_V2 the kernel leaves this to us; a file
     * known to have no capabilities costs no syscall (caps_cache.h). */
    struct wfs_inode *in = wfs_inode_of(req, ino);
    if (fuse_io_killpriv_v2()) {
        if (!caps_known_clear(in)) {
            unsigned snap = caps_snapshot(in);
            if (fuse_io_drop_caps((int)fi->fh))
                caps_mark_clear(in, snap);
        }
        if (fuse_io_kill_suidgid() && fuse_io_drop_suidgid((int)fi->fh, fuse_req_ctx(req)->gid))
            fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0); /* attrs only: no lock */
    }
    wfs_note_inode(fs, in, CHANGE_WRITE, (int)fi->fh, off, n);
    fuse_reply_write(req, (size_t)n);
}

/* Only handles passed through ask for FLUSH: their writes are noted here,
 * at each close, since no WRITE told us of them. */
void wfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    passthrough_note(wfs_of(req), (int)fi->fh);
    fuse_reply_err(req, 0);
}

void wfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    passthrough_release(wfs_of(req), (int)fi->fh);
    close((int)fi->fh);
    fuse_reply_err(req, 0);
}

void wfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    int r = datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh);
    int e = r ? errno : 0;
    passthrough_note(wfs_of(req), (int)fi->fh);
    fuse_reply_err(req, e);
}

void wfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                   struct fuse_file_info *fi)
{
    struct wfs *fs = wfs_of(req);
    if (fallocate((int)fi->fh, mode, offset, length) < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    wfs_note_inode(fs, wfs_inode_of(req, ino), CHANGE_WRITE, (int)fi->fh, offset, length);
    fuse_reply_err(req, 0);
}

void wfs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
                         struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
                         struct fuse_file_info *fi_out, size_t len, int flags)
{
    struct wfs *fs = wfs_of(req);
    off_t dst = off_out;
    ssize_t n = copy_file_range((int)fi_in->fh, &off_in, (int)fi_out->fh, &off_out, len,
                                (unsigned)flags);
    if (n < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    if (n > 0)
        wfs_note_inode(fs, wfs_inode_of(req, ino_out), CHANGE_WRITE, (int)fi_out->fh, dst, n);
    fuse_reply_write(req, (size_t)n);
}

void wfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
    off_t r = lseek((int)fi->fh, off, whence);
    if (r < 0)
        fuse_reply_err(req, errno);
    else
        fuse_reply_lseek(req, r);
}
