/*
 * ops_entry.c — FUSE ops on names and attributes: lookup, forget, getattr,
 * setattr, readlink, mknod, mkdir, symlink, link, unlink, rmdir, rename,
 * statfs.  Each forwards to the *at() syscall relative to the parent's
 * O_PATH fd, replies exactly once, and notes the change.
 */
#include "ops.h"
#include "caps_cache.h"
#include "fuse_io.h"
#include "overlay.h"
#include "path_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

void wfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_entry_param e;
    int err = wfs_do_lookup(wfs_of(req), parent, name, &e);
    if (err == -ENOENT) {
        /* Negative entry, cached as long as a positive one: the watcher
         * invalidates it when the name appears in SRC. */
        e.ino = 0;
        fuse_reply_entry(req, &e);
    } else if (err) {
        fuse_reply_err(req, -err);
    } else {
        fuse_reply_entry(req, &e);
    }
}

void wfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    inode_table_unref(wfs_of(req)->inodes, wfs_inode_of(req, ino), nlookup);
    fuse_reply_none(req);
}

void wfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    for (size_t i = 0; i < count; i++)
        inode_table_unref(wfs_of(req)->inodes, wfs_inode_of(req, forgets[i].ino),
                          forgets[i].nlookup);
    fuse_reply_none(req);
}

void wfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    struct wfs_inode *in = wfs_inode_of(req, ino);
    int fd = fi && !overlay_is_local(in) ? (int)fi->fh : in->fd;
    int err = wfs_stat(wfs_of(req), ino, fd, &st);
    if (err)
        fuse_reply_err(req, -err);
    else
        fuse_reply_attr(req, &st, wfs_of(req)->timeout);
}

static int set_times(int fd, struct fuse_file_info *fi, const struct stat *attr, int valid)
{
    struct timespec tv[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
    if (valid & FUSE_SET_ATTR_ATIME_NOW)
        tv[0].tv_nsec = UTIME_NOW;
    else if (valid & FUSE_SET_ATTR_ATIME)
        tv[0] = attr->st_atim;
    if (valid & FUSE_SET_ATTR_MTIME_NOW)
        tv[1].tv_nsec = UTIME_NOW;
    else if (valid & FUSE_SET_ATTR_MTIME)
        tv[1] = attr->st_mtim;
    if (fi)
        return futimens((int)fi->fh, tv);
    /* On the O_PATH fd itself, never following: a symlink gets its own
     * times (cp -a, rsync -a and tar set them), not its target's. */
    return utimensat(fd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
}

/* With FUSE_HANDLE_KILLPRIV_V2, a truncate clears what a write would
 * (fuse_io.h); the kernel's FATTR_KILL_SUIDGID arrives as
 * FUSE_SET_ATTR_KILL_SUID. */
static void kill_privs_after_truncate(fuse_req_t req, struct fuse_file_info *fi,
                                      const char *proc, int valid)
{
    bool suidgid = valid & FUSE_SET_ATTR_KILL_SUID;
    gid_t gid = fuse_req_ctx(req)->gid;
    if (fi) {
        fuse_io_kill_privs((int)fi->fh, suidgid, gid);
        return;
    }
    int fd = open(proc, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
        fuse_io_kill_privs(fd, suidgid, gid);
        close(fd);
    }
}

void wfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
                        struct fuse_file_info *fi)
{
    struct wfs *fs = wfs_of(req);
    struct wfs_inode *in = wfs_inode_of(req, ino);
    if (overlay_is_local(in)) {
        /* Truncating to 0 needs no data copied. */
        bool data = !(valid & FUSE_SET_ATTR_SIZE) || attr->st_size > 0;
        int cr = overlay_copy_up(fs, in, data);
        if (cr) {
            fuse_reply_err(req, -cr);
            return;
        }
        fi = NULL; /* a handle opened before the copy-up is on the lower file */
    }
    char proc[WFS_PROC_PATH_MAX];
    wfs_proc_path(in->fd, proc);
    uint32_t kind = 0;
    int r = 0;

    if (valid & FUSE_SET_ATTR_MODE) {
        r = fi ? fchmod((int)fi->fh, attr->st_mode) : fchmodat(AT_FDCWD, proc, attr->st_mode, 0);
        if (r)
            goto out;
        kind |= CHANGE_ATTR;
    }
    if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
        uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
        gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
        r = fchownat(in->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
        if (r)
            goto out;
        kind |= CHANGE_ATTR;
    }
    if (valid & FUSE_SET_ATTR_SIZE) {
        r = fi ? ftruncate((int)fi->fh, attr->st_size) : truncate(proc, attr->st_size);
        if (r)
            goto out;
        kind |= CHANGE_TRUNCATE;
        if (fuse_io_killpriv_v2())
            kill_privs_after_truncate(req, fi, proc, valid);
    }
    if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
        r = set_times(in->fd, fi, attr, valid);
        if (r)
            goto out;
        kind |= CHANGE_ATTR;
    }
out:;
    int err = r ? errno : 0;
    if (valid & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
        caps_forget(in);
    if (kind)
        wfs_note_inode(fs, in, kind, in->fd, (valid & FUSE_SET_ATTR_SIZE) ? attr->st_size : 0, 0);
    if (err) {
        fuse_reply_err(req, err);
        return;
    }
    wfs_getattr(req, ino, fi);
}

void wfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
    char buf[PATH_MAX + 1];
    ssize_t n = readlinkat(wfs_fd_of(req, ino), "", buf, sizeof(buf));
    if (n < 0)
        fuse_reply_err(req, errno);
    else if (n >= (ssize_t)sizeof(buf))
        fuse_reply_err(req, ENAMETOOLONG);
    else {
        buf[n] = '\0';
        fuse_reply_readlink(req, buf);
    }
}

/* Where to make the new entry `name` of parent: parent's own dir, or for a
 * local name its upper dir, with any whiteout there removed.  *opaque: a
 * new dir must hide the lower dir of that name.  0 or -errno. */
static int new_entry_dir(struct wfs *fs, fuse_ino_t parent, const char *name, bool is_dir,
                         int *pfd, bool *owned, bool *opaque)
{
    struct wfs_inode *dir = wfs_inode_of_fs(fs, parent);
    *opaque = false;
    *owned = false;
    if (!overlay_child_is_local(fs, dir, name, is_dir)) {
        *pfd = dir->fd;
        return 0;
    }
    int r = overlay_upper_dir_for(fs, dir, pfd, owned);
    if (r)
        return r;
    bool lower_dir;
    r = overlay_prepare_name(fs, dir, *pfd, name, &lower_dir);
    *opaque = is_dir && lower_dir;
    if (r && *owned)
        close(*pfd);
    return r;
}

/* Common tail of mknod/mkdir/symlink: set the owner, look the new entry up,
 * reply, note.  `made` is the result of the creating syscall in pfd. */
static void reply_made(fuse_req_t req, fuse_ino_t parent, int pfd, bool owned, const char *name,
                       int made, uint32_t kind)
{
    struct wfs *fs = wfs_of(req);
    if (made < 0) {
        fuse_reply_err(req, errno);
        if (owned)
            close(pfd);
        return;
    }
    wfs_set_owner(fs, req, pfd, name, -1);
    /* before the reply: see ops_file.c */
    wfs_note_child(fs, kind, wfs_inode_of_fs(fs, parent), pfd, name);
    if (owned)
        close(pfd);
    struct fuse_entry_param e;
    int err = wfs_do_lookup(fs, parent, name, &e);
    if (err)
        fuse_reply_err(req, -err);
    else
        fuse_reply_entry(req, &e);
}

/* mknod, mkdir and symlink: make(pfd) creates the entry. */
static void make_entry(fuse_req_t req, fuse_ino_t parent, const char *name, bool is_dir,
                       uint32_t kind, const char *link, mode_t mode, dev_t rdev)
{
    struct wfs *fs = wfs_of(req);
    if (wfs_is_hidden(parent, name)) {
        fuse_reply_err(req, EEXIST);
        return;
    }
    int pfd;
    bool owned, opaque;
    int r = new_entry_dir(fs, parent, name, is_dir, &pfd, &owned, &opaque);
    if (r) {
        fuse_reply_err(req, -r);
        return;
    }
    int made = kind == CHANGE_MKDIR     ? mkdirat(pfd, name, mode)
               : kind == CHANGE_SYMLINK ? symlinkat(link, pfd, name)
                                        : mknodat(pfd, name, mode, rdev);
    if (made == 0 && opaque)
        overlay_set_opaque(pfd, name);
    reply_made(req, parent, pfd, owned, name, made, kind);
}

void wfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      dev_t rdev)
{
    make_entry(req, parent, name, false, CHANGE_CREATE, NULL, mode, rdev);
}

void wfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    make_entry(req, parent, name, true, CHANGE_MKDIR, NULL, mode, 0);
}

void wfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    make_entry(req, parent, name, false, CHANGE_SYMLINK, link, 0, 0);
}

void wfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    struct wfs *fs = wfs_of(req);
    if (wfs_is_hidden(newparent, newname)) {
        fuse_reply_err(req, EEXIST);
        return;
    }
    struct wfs_inode *in = wfs_inode_of(req, ino);
    /* A hard link cannot join the two layers: EXDEV, as across mounts. */
    bool local = overlay_is_local(in);
    if (local != overlay_child_is_local(fs, wfs_inode_of(req, newparent), newname, false)) {
        fuse_reply_err(req, EXDEV);
        return;
    }
    int npfd;
    bool owned, opaque;
    int r = new_entry_dir(fs, newparent, newname, false, &npfd, &owned, &opaque);
    if (!r && local)
        r = overlay_copy_up(fs, in, true);
    if (r) {
        if (owned)
            close(npfd);
        fuse_reply_err(req, -r);
        return;
    }
    char proc[WFS_PROC_PATH_MAX];
    wfs_proc_path(in->fd, proc);
    if (linkat(AT_FDCWD, proc, npfd, newname, AT_SYMLINK_FOLLOW) < 0) {
        fuse_reply_err(req, errno);
        if (owned)
            close(npfd);
        return;
    }
    wfs_note(fs, CHANGE_LINK, npfd, newname, 0, 0);
    if (owned)
        close(npfd);
    struct fuse_entry_param e;
    int err = wfs_do_lookup(fs, newparent, newname, &e);
    if (err)
        fuse_reply_err(req, -err);
    else
        fuse_reply_entry(req, &e);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
    struct wfs *fs = wfs_of(req);
    if (wfs_is_hidden(parent, name)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct wfs_inode *dir = wfs_inode_of(req, parent);
    if (overlay_child_is_local(fs, dir, name, flags & AT_REMOVEDIR)) {
        int r = overlay_remove(fs, dir, name, flags & AT_REMOVEDIR);
        fuse_reply_err(req, -r);
        return;
    }
    int pfd = dir->fd;
    /* The path must be computed while the name still exists. */
    char path[PATH_MAX];
    bool have_path = wfs_child_path(fs, dir, pfd, name, path, sizeof(path)) == OV_IN_SRC;
    bool skeleton = have_path && (flags & AT_REMOVEDIR) && fs->ov->has_local;
    int r = skeleton ? overlay_rmdir_skeleton(fs, path, true) : 0; /* local entries inside? */
    if (r || unlinkat(pfd, name, flags) < 0) {
        fuse_reply_err(req, r ? -r : errno);
        return;
    }
    if (skeleton)
        overlay_rmdir_skeleton(fs, path, false);
    if (have_path)
        change_stream_note(fs->changes, CHANGE_DELETE, path, NULL, 0, 0);
    fuse_reply_err(req, 0);
}

/* Paths of existing objects change across these: the cached ones
 * (path_cache.h) are dropped before and after.  (req is gone after the
 * reply; fs is not.) */
void wfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct wfs *fs = wfs_of(req);
    path_cache_bump_files(fs); /* no directory moves */
    remove_entry(req, parent, name, 0);
    path_cache_bump_files(fs);
}

void wfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct wfs *fs = wfs_of(req);
    path_cache_bump(fs);
    remove_entry(req, parent, name, AT_REMOVEDIR);
    path_cache_bump(fs);
}

static void rename_entry(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                         const char *newname, unsigned int flags);

void wfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                const char *newname, unsigned int flags)
{
    struct wfs *fs = wfs_of(req);
    path_cache_bump(fs);
    rename_entry(req, parent, name, newparent, newname, flags);
    path_cache_bump(fs);
}

static void rename_entry(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                         const char *newname, unsigned int flags)
{
    struct wfs *fs = wfs_of(req);
    if (wfs_is_hidden(parent, name)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (wfs_is_hidden(newparent, newname)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    struct wfs_inode *dir = wfs_inode_of(req, parent), *ndir = wfs_inode_of(req, newparent);
    /* With local paths anywhere, even a mirrored rename must see the merged
     * view: a target dir empty in SRC may hold local entries. */
    if (fs->ov->has_local || overlay_child_may_be_local(fs, dir, name) ||
        overlay_child_may_be_local(fs, ndir, newname)) {
        int r = overlay_rename(fs, dir, name, ndir, newname, flags);
        if (r <= 0) {
            fuse_reply_err(req, -r);
            return;
        }
    }
    int pfd = dir->fd, npfd = ndir->fd;
    char from[PATH_MAX], to[PATH_MAX];
    bool ok_from = wfs_relpath(fs, pfd, name, from, sizeof(from));
    bool ok_to = wfs_relpath(fs, npfd, newname, to, sizeof(to));
    if (renameat2(pfd, name, npfd, newname, flags) < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    if (ok_from && ok_to)
        overlay_follow_rename(fs, from, to, flags & RENAME_EXCHANGE);
    if (ok_from && ok_to && (flags & RENAME_EXCHANGE)) {
        change_stream_note(fs->changes, CHANGE_RENAME_TO, to, from, 0, 0);
        change_stream_note(fs->changes, CHANGE_RENAME_TO, from, to, 0, 0);
    } else if (ok_from && ok_to) {
        change_stream_note(fs->changes, CHANGE_RENAME_FROM, from, to, 0, 0);
        change_stream_note(fs->changes, CHANGE_RENAME_TO, to, from, 0, 0);
    }
    fuse_reply_err(req, 0);
}

void wfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs sv;
    if (fstatvfs(wfs_fd_of(req, ino), &sv) < 0)
        fuse_reply_err(req, errno);
    else
        fuse_reply_statfs(req, &sv);
}
