/*
 * ops_dir.c — directory listing: opendir, readdir, readdirplus, releasedir,
 * fsyncdir.
 *
 * A handle wraps a DIR stream; the offset FUSE hands back is telldir()'s, so
 * a listing resumes exactly where the kernel's buffer filled.  readdirplus
 * looks every entry up (one kernel reference each), which saves the kernel a
 * LOOKUP round trip per name.  The root's state dir is never listed.
 */
#include "ops.h"
#include "overlay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct wfs_dir {
    DIR *dp;
    struct ov_dirent *snap; /* merged overlay listing (dp unused), or NULL */
    size_t nsnap;
    off_t offset;         /* position of `entry`, or of the stream if entry is NULL */
    struct dirent *entry; /* read but not yet handed to the kernel */
};

static struct wfs_dir *dir_of(struct fuse_file_info *fi)
{
    return (struct wfs_dir *)(uintptr_t)fi->fh;
}

void wfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct wfs_dir *d = calloc(1, sizeof(*d));
    if (!d) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    struct wfs *fs = wfs_of(req);
    struct wfs_inode *in = wfs_inode_of(req, ino);
    if (fs->ov->has_local && overlay_needs_merge(fs, in)) {
        int r = overlay_list(fs, in, &d->snap, &d->nsnap);
        if (r) {
            free(d);
            fuse_reply_err(req, -r);
            return;
        }
    }
    int fd = d->snap ? -1 : openat(in->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (!d->snap && (fd < 0 || !(d->dp = fdopendir(fd)))) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        free(d);
        fuse_reply_err(req, err);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)d;
    /* Kept coherent by our own ops (the kernel drops the cache when it
     * changes a dir) and by the watcher for outside changes. */
    fi->cache_readdir = 1;
    fi->keep_cache = 1;
    if (fuse_reply_open(req, fi) != 0) {
        if (d->dp)
            closedir(d->dp);
        overlay_list_free(d->snap, d->nsnap);
        free(d);
    }
}

/* readdir over a merged overlay listing: offset i+1 follows entry i. */
static void readdir_snapshot(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                             struct wfs_dir *d, bool plus)
{
    struct wfs *fs = wfs_of(req);
    char *buf = malloc(size);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t used = 0;
    int err = 0;
    for (size_t i = off < 0 ? 0 : (size_t)off; i < d->nsnap; i++) {
        const struct ov_dirent *de = &d->snap[i];
        if (wfs_is_hidden(ino, de->name))
            continue;
        size_t n;
        if (plus) {
            struct fuse_entry_param e = {0};
            bool dots = strcmp(de->name, ".") == 0 || strcmp(de->name, "..") == 0;
            if (dots) {
                e.attr.st_ino = de->ino;
                e.attr.st_mode = (mode_t)de->type << 12;
            } else {
                int r = wfs_do_lookup(fs, ino, de->name, &e);
                if (r == -ENOENT)
                    continue; /* vanished since the snapshot */
                if (r) {
                    err = -r;
                    break;
                }
            }
            n = fuse_add_direntry_plus(req, buf + used, size - used, de->name, &e,
                                       (off_t)i + 1);
            if (n > size - used) {
                if (!dots)
                    inode_table_unref(fs->inodes, wfs_inode_of(req, e.ino), 1);
                break;
            }
        } else {
            struct stat st = {.st_ino = de->ino, .st_mode = (mode_t)de->type << 12};
            n = fuse_add_direntry(req, buf + used, size - used, de->name, &st, (off_t)i + 1);
            if (n > size - used)
                break;
        }
        used += n;
    }
    if (err && used == 0)
        fuse_reply_err(req, err);
    else
        fuse_reply_buf(req, buf, used);
    free(buf);
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi, bool plus)
{
    struct wfs *fs = wfs_of(req);
    struct wfs_dir *d = dir_of(fi);
    if (d->snap) {
        readdir_snapshot(req, ino, size, off, d, plus);
        return;
    }
    char *buf = malloc(size);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    if (off != d->offset) {
        seekdir(d->dp, off);
        d->entry = NULL;
        d->offset = off;
    }

    size_t used = 0;
    int err = 0;
    for (;;) {
        if (!d->entry) {
            errno = 0;
            d->entry = readdir(d->dp);
            if (!d->entry) {
                err = errno; /* 0 at the end of the stream */
                break;
            }
        }
        const char *name = d->entry->d_name;
        off_t next = d->entry->d_off;
        if (wfs_is_hidden(ino, name)) {
            d->entry = NULL;
            d->offset = next;
            continue;
        }

        size_t n;
        if (plus) {
            struct fuse_entry_param e = {0};
            bool dots = strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
            if (dots) {
                e.attr.st_ino = d->entry->d_ino;
                e.attr.st_mode = (mode_t)d->entry->d_type << 12;
            } else {
                int r = wfs_do_lookup(fs, ino, name, &e);
                if (r == -ENOENT) { /* vanished since readdir(): skip it */
                    d->entry = NULL;
                    d->offset = next;
                    continue;
                }
                if (r) {
                    err = -r;
                    break;
                }
            }
            n = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, next);
            if (n > size - used) {
                if (!dots) /* the kernel will not get this entry: drop its ref */
                    inode_table_unref(fs->inodes, wfs_inode_of(req, e.ino), 1);
                break;
            }
        } else {
            struct stat st = {.st_ino = d->entry->d_ino,
                              .st_mode = (mode_t)d->entry->d_type << 12};
            n = fuse_add_direntry(req, buf + used, size - used, name, &st, next);
            if (n > size - used)
                break;
        }
        used += n;
        d->entry = NULL;
        d->offset = next;
    }

    /* An error after some entries is reported on the next call. */
    if (err && used == 0)
        fuse_reply_err(req, err);
    else
        fuse_reply_buf(req, buf, used);
    free(buf);
}

void wfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                 struct fuse_file_info *fi)
{
    readdir_common(req, ino, size, off, fi, false);
}

void wfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    readdir_common(req, ino, size, off, fi, true);
}

void wfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct wfs_dir *d = dir_of(fi);
    if (d->dp)
        closedir(d->dp);
    overlay_list_free(d->snap, d->nsnap);
    free(d);
    fuse_reply_err(req, 0);
}

void wfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    struct wfs_dir *d = dir_of(fi);
    int fd = d->dp ? dirfd(d->dp) : openat(wfs_fd_of(req, ino), ".", O_RDONLY | O_CLOEXEC);
    int r = datasync ? fdatasync(fd) : fsync(fd);
    if (!d->dp && fd >= 0)
        close(fd);
    fuse_reply_err(req, r ? errno : 0);
}
