/*
 * ops_xattr.c — extended attributes, forwarded through /proc/self/fd/N
 * (O_PATH fds do not take f*xattr calls).  A symlink's proc link would
 * reach its target, so symlinks report no xattrs and refuse to set them.
 * Namespace permissions (trusted.*, security.*) are checked by the VFS
 * against the caller before the request reaches us.
 */
#include "ops.h"
#include "caps_cache.h"
#include "overlay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#define XATTR_VALUE_MAX 65536
#define CAPS_XATTR "security.capability"
#define XATTR_CAPS_MAX 64 /* vfs_ns_cap_data is 24 bytes */

static bool is_symlink(fuse_req_t req, fuse_ino_t ino)
{
    return wfs_inode_of(req, ino)->type == S_IFLNK;
}

/* get and list share a shape: size 0 asks for the length only.  name NULL
 * means list. */
static void reply_read(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    char proc[WFS_PROC_PATH_MAX];
    wfs_proc_path(wfs_fd_of(req, ino), proc);
    if (size > XATTR_VALUE_MAX)
        size = XATTR_VALUE_MAX;
    char *buf = size ? malloc(size) : NULL;
    if (size && !buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    ssize_t n = name ? getxattr(proc, name, buf, size) : listxattr(proc, buf, size);
    if (n > 0 && !name && size && overlay_is_local(wfs_inode_of(req, ino)))
        n = overlay_filter_xattr_list(buf, (size_t)n);
    if (n < 0)
        fuse_reply_err(req, errno);
    else if (size == 0)
        fuse_reply_xattr(req, (size_t)n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    free(buf);
}

/* The kernel asks for security.capability before the first write to every
 * inode it has not asked about since its attributes last changed (file
 * creation included).  caps_cache.h's mark answers without a syscall; a
 * miss that finds none sets the mark, so the write need not clear them. */
static bool reply_caps_from_mark(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    if (strcmp(name, CAPS_XATTR) != 0)
        return false;
    struct wfs_inode *in = wfs_inode_of(req, ino);
    if (caps_known_clear(in)) {
        fuse_reply_err(req, ENODATA);
        return true;
    }
    if (__atomic_load_n(&in->layer, __ATOMIC_ACQUIRE) != 0)
        return false;
    unsigned snap = caps_snapshot(in);
    char proc[WFS_PROC_PATH_MAX];
    wfs_proc_path(in->fd, proc);
    char buf[XATTR_CAPS_MAX];
    ssize_t n = getxattr(proc, name, buf, size < sizeof(buf) ? size : sizeof(buf));
    if (n < 0 && errno == ENODATA)
        caps_mark_clear(in, snap);
    if (n < 0 && errno == ERANGE && size >= sizeof(buf))
        return false; /* bigger than any capability set: let reply_read size it */
    if (n < 0)
        fuse_reply_err(req, errno);
    else if (size == 0)
        fuse_reply_xattr(req, (size_t)n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    return true;
}

void wfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    if (is_symlink(req, ino) || overlay_is_own_xattr(name))
        fuse_reply_err(req, ENODATA);
    else if (!reply_caps_from_mark(req, ino, name, size))
        reply_read(req, ino, name, size);
}

void wfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    if (!is_symlink(req, ino))
        reply_read(req, ino, NULL, size);
    else if (size == 0)
        fuse_reply_xattr(req, 0);
    else
        fuse_reply_buf(req, NULL, 0);
}

/* Set (remove false) or remove an xattr, reply, and note the change. */
static void change_xattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                         size_t size, int flags, bool remove)
{
    if (is_symlink(req, ino) || overlay_is_own_xattr(name)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    struct wfs *fs = wfs_of(req); /* req is gone once replied to */
    struct wfs_inode *in = wfs_inode_of(req, ino);
    int cr = overlay_is_local(in) ? overlay_copy_up(fs, in, true) : 0;
    if (cr) {
        fuse_reply_err(req, -cr);
        return;
    }
    int fd = wfs_fd_of(req, ino);
    char proc[WFS_PROC_PATH_MAX];
    wfs_proc_path(fd, proc);
    int r = remove ? removexattr(proc, name) : setxattr(proc, name, value, size, flags);
    int e = errno;
    caps_forget(in); /* after the change: a write racing with it checks again */
    if (r == 0)
        wfs_note(fs, CHANGE_XATTR, fd, NULL, 0, 0);
    fuse_reply_err(req, r < 0 ? e : 0);
}

void wfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                  size_t size, int flags)
{
    change_xattr(req, ino, name, value, size, flags, false);
}

void wfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    change_xattr(req, ino, name, NULL, 0, 0, true);
}
