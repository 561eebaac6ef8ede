/*
 * ops_xattr.c — extended attributes, forwarded through /proc/self/fd/N
 * (O_PATH fds do not take f*xattr calls).  A symlink's proc link would
 * reach its target, so symlinks report no xattrs and refuse to set them.
 * Namespace permissions (trusted.*, security.*) are checked by the VFS
 * against the caller before the request reaches us.
 */
#include "ops.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/xattr.h>

#define XATTR_VALUE_MAX 65536

static bool is_symlink(fuse_req_t req, fuse_ino_t ino)
{
    return wfs_inode_of(req, ino)->type == S_IFLNK;
}

/* Shared shape of get and list: size 0 asks for the length only. */
static void reply_sized(fuse_req_t req, size_t size, ssize_t (*op)(const char *, const char *,
                                                                    char *, size_t, void *),
                        const char *path, const char *name, void *ctx)
{
    if (size == 0) {
        ssize_t n = op(path, name, NULL, 0, ctx);
        if (n < 0)
            fuse_reply_err(req, errno);
        else
            fuse_reply_xattr(req, (size_t)n);
        return;
    }
    if (size > XATTR_VALUE_MAX)
        size = XATTR_VALUE_MAX;
    char *buf = malloc(size);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    ssize_t n = op(path, name, buf, size, ctx);
    if (n < 0)
        fuse_reply_err(req, errno);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    free(buf);
}

static ssize_t do_get(const char *path, const char *name, char *buf, size_t size, void *ctx)
{
    return getxattr(path, name, buf, size);
}

static ssize_t do_list(const char *path, const char *name, char *buf, size_t size, void *ctx)
{
    return listxattr(path, buf, size);
}

void wfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    if (is_symlink(req, ino)) {
        fuse_reply_err(req, ENODATA);
        return;
    }
    char proc[WFS_PROC_PATH_MAX];
    wfs_proc_path(wfs_fd_of(req, ino), proc);
    reply_sized(req, size, do_get, proc, name, NULL);
}

void wfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    if (is_symlink(req, ino)) {
        if (size == 0)
            fuse_reply_xattr(req, 0);
        else
            fuse_reply_buf(req, NULL, 0);
        return;
    }
    char proc[WFS_PROC_PATH_MAX];
    wfs_proc_path(wfs_fd_of(req, ino), proc);
    reply_sized(req, size, do_list, proc, NULL, NULL);
}

void wfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                  size_t size, int flags)
{
    if (is_symlink(req, ino)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    struct wfs *fs = wfs_of(req); /* req is gone once replied to */
    int fd = wfs_fd_of(req, ino);
    char proc[WFS_PROC_PATH_MAX];
    wfs_proc_path(fd, proc);
    if (setxattr(proc, name, value, size, flags) < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    fuse_reply_err(req, 0);
    wfs_note(fs, CHANGE_XATTR, fd, NULL, 0, 0);
}

void wfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    if (is_symlink(req, ino)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    struct wfs *fs = wfs_of(req); /* req is gone once replied to */
    int fd = wfs_fd_of(req, ino);
    char proc[WFS_PROC_PATH_MAX];
    wfs_proc_path(fd, proc);
    if (removexattr(proc, name) < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    fuse_reply_err(req, 0);
    wfs_note(fs, CHANGE_XATTR, fd, NULL, 0, 0);
}
