/*
 * overlay_rename.c — rename(2) when either name is local.
 *
 * Both layers are on SRC's filesystem, so a rename is always one
 * renameat2() of the physical object, after making it physical where it
 * must be:
 *   - a local source that exists only in the lower layer is copied up
 *     first (files, symlinks, specials);
 *   - a local source with a name in the lower layer leaves a whiteout there
 *     (RENAME_WHITEOUT makes it in the same step);
 *   - a local dir whose lower layer has a dir is refused with EXDEV, which
 *     POSIX allows and mv(1) answers by copying (as overlayfs does without
 *     redirect_dir); a dir only in the upper layer moves freely;
 *   - a mirrored object moving to a local name moves into the upper layer,
 *     and a local object moving to a mirrored name moves into SRC;
 *   - a dir landing on a name where the lower layer has a dir is made
 *     opaque, so the old lower contents do not show through.
 * RENAME_EXCHANGE with a local side is refused with EXDEV.
 */
#include "overlay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

static void note_rename(struct wfs *fs, enum ov_where fw, const char *from, enum ov_where tw,
                        const char *to)
{
    uint32_t fl = fw == OV_IN_UPPER ? CHANGE_LOCAL : 0;
    uint32_t tl = tw == OV_IN_UPPER ? CHANGE_LOCAL : 0;
    if (fw == OV_NOWHERE || tw == OV_NOWHERE)
        return;
    if (fl == tl) {
        change_stream_note(fs->changes, CHANGE_RENAME_FROM | fl, from, to, 0, 0);
        change_stream_note(fs->changes, CHANGE_RENAME_TO | tl, to, from, 0, 0);
    } else if (tl) { /* left the mirrored tree: a delete there */
        change_stream_note(fs->changes, CHANGE_DELETE, from, NULL, 0, 0);
        change_stream_note(fs->changes, CHANGE_RENAME_TO | CHANGE_LOCAL, to, from, 0, 0);
    } else { /* entered it: a new subtree there, indexed from scratch */
        change_stream_note(fs->changes, CHANGE_RENAME_FROM | CHANGE_LOCAL, from, to, 0, 0);
        change_stream_note(fs->changes, CHANGE_RENAME_TO, to, NULL, 0, 0);
    }
}

/* The physical parent for a name of dir: its upper dir if the name is
 * local, else dir's own fd. */
static int physical_parent(struct wfs *fs, struct wfs_inode *dir, bool local, int *fd,
                           bool *owned)
{
    if (local)
        return overlay_upper_dir_for(fs, dir, fd, owned);
    *fd = __atomic_load_n(&dir->fd, __ATOMIC_ACQUIRE);
    *owned = false;
    return 0;
}

int overlay_rename(struct wfs *fs, struct wfs_inode *dir, const char *name,
                   struct wfs_inode *newdir, const char *newname, unsigned int flags)
{
    struct ov_name s, t;
    int r = overlay_resolve_name(fs, dir, name, &s);
    if (r)
        return r;
    bool s_up = s.up_fd >= 0 && !overlay_is_whiteout(&s.up_st);
    if (!overlay_name_exists(&s)) {
        overlay_name_release(&s);
        return -ENOENT;
    }
    struct stat sst = s_up ? s.up_st : s.low_st;
    bool s_dir = S_ISDIR(sst.st_mode);
    bool src_local = overlay_child_is_local(fs, dir, name, s_dir);
    bool dst_local = overlay_child_is_local(fs, newdir, newname, s_dir);
    if (!src_local && !dst_local) {
        overlay_name_release(&s);
        return 1; /* both mirrored: the plain rename */
    }
    if (flags & RENAME_EXCHANGE) {
        overlay_name_release(&s);
        return -EXDEV;
    }
    /* A mirrored source never has a lower entry of its own. */
    bool s_lower = src_local && s.low_exists;
    if (src_local && s_dir && s_lower && S_ISDIR(s.low_st.st_mode) &&
        (!s_up || !overlay_has_opaque(s.up_fd))) {
        overlay_name_release(&s);
        return -EXDEV;
    }
    overlay_name_release(&s);

    r = overlay_resolve_name(fs, newdir, newname, &t);
    if (r)
        return r;
    bool t_up = t.up_fd >= 0 && !overlay_is_whiteout(&t.up_st);
    bool t_wh = t.up_fd >= 0 && overlay_is_whiteout(&t.up_st);
    /* For a mirrored target only the SRC entry counts. */
    bool t_exists = dst_local ? overlay_name_exists(&t) : t.low_exists;
    const struct stat *tst = dst_local && t_up ? &t.up_st : &t.low_st;
    if (t_exists) {
        if (tst->st_dev == sst.st_dev && tst->st_ino == sst.st_ino)
            r = 1; /* the same object: nothing to do */
        else if (flags & RENAME_NOREPLACE)
            r = -EEXIST;
        else if (s_dir && !S_ISDIR(tst->st_mode))
            r = -ENOTDIR;
        else if (!s_dir && S_ISDIR(tst->st_mode))
            r = -EISDIR;
        else if (S_ISDIR(tst->st_mode) && dst_local)
            r = overlay_name_empty(fs, newdir, newname, &t);
    }
    bool t_low_dir = dst_local && t.low_exists && S_ISDIR(t.low_st.st_mode);
    overlay_name_release(&t);
    if (r)
        return r == 1 ? 0 : r;

    int sp, dp;
    bool sown, down;
    r = physical_parent(fs, dir, src_local, &sp, &sown);
    if (r)
        return r;
    r = physical_parent(fs, newdir, dst_local, &dp, &down);
    if (r) {
        if (sown)
            close(sp);
        return r;
    }
    if (src_local && !s_up)
        r = overlay_copy_up_entry(fs, dir, sp, name, &sst);
    if (!r && dst_local && t_wh && s_dir && unlinkat(dp, newname, 0) < 0)
        r = -errno;
    if (!r && dst_local && t_up && s_dir)
        r = overlay_clear_whiteouts(dp, newname);
    struct stat moved;
    if (!r && fstatat(sp, name, &moved, AT_SYMLINK_NOFOLLOW) < 0)
        r = -errno;
    char from[PATH_MAX], to[PATH_MAX];
    enum ov_where fw = overlay_path_of(fs, sp, name, from, sizeof(from));
    enum ov_where tw = overlay_path_of(fs, dp, newname, to, sizeof(to));
    if (!r && renameat2(sp, name, dp, newname,
                        (flags & RENAME_NOREPLACE && !t_wh ? RENAME_NOREPLACE : 0) |
                            (s_lower ? RENAME_WHITEOUT : 0)) < 0)
        r = -errno;
    if (!r) {
        if (s_dir && t_low_dir)
            overlay_set_opaque(dp, newname);
        else if (s_dir && !dst_local) {
            /* An opaque mark means nothing in SRC. */
            char proc[WFS_PROC_PATH_MAX];
            int fd = openat(dp, newname, O_PATH | O_NOFOLLOW | O_CLOEXEC);
            if (fd >= 0) {
                wfs_proc_path(fd, proc);
                removexattr(proc, OVERLAY_OPAQUE_XATTR);
                close(fd);
            }
        }
        if (src_local != dst_local)
            inode_table_set_layer(fs->inodes, moved.st_dev, moved.st_ino,
                                  dst_local ? INODE_LOCAL | INODE_UPPER : 0,
                                  dst_local ? 0 : INODE_LOCAL | INODE_UPPER);
        note_rename(fs, fw, from, tw, to);
    }
    if (sown)
        close(sp);
    if (down)
        close(dp);
    return r;
}
