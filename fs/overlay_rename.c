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
 *     and a local object moving to a mirrored name moves into SRC, except
 *     a file with other hard links (EXDEV: it would be in both layers) and
 *     a dir with contents (EXDEV: mv copies it entry by entry);
 *   - a dir landing on a name where the lower layer has a dir is made
 *     opaque, so the old lower contents do not show through.
 * RENAME_EXCHANGE swaps two local objects that live only in the upper layer
 * (neither name has a lower entry); any other exchange with a local side
 * is refused with EXDEV: an object would change layers, or a lower entry
 * would need a whiteout in the middle of a swap.
 */
#include "overlay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <pthread.h>
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

/* What exchange needs to know of one name: its object's type, and whether
 * the object exists only in the upper layer. */
struct xside {
    bool exists, is_dir, upper_only;
};

static int exchange_side(struct wfs *fs, struct wfs_inode *dir, const char *name, struct xside *x)
{
    struct ov_name n;
    int r = overlay_resolve_name(fs, dir, name, &n);
    if (r)
        return r;
    bool up = n.up_fd >= 0 && !overlay_is_whiteout(&n.up_st);
    x->exists = overlay_name_exists(&n);
    x->is_dir = S_ISDIR((up ? n.up_st : n.low_st).st_mode);
    x->upper_only = up && !n.low_exists;
    overlay_name_release(&n);
    return 0;
}

/* RENAME_EXCHANGE with a local side: 1 for the plain exchange (nothing is
 * local after all), 0 done, or -errno. */
static int overlay_exchange(struct wfs *fs, struct wfs_inode *dir, const char *name,
                            struct wfs_inode *newdir, const char *newname)
{
    struct xside s, t;
    int r = exchange_side(fs, dir, name, &s);
    if (!r)
        r = exchange_side(fs, newdir, newname, &t);
    if (r)
        return r;
    if (!s.exists || !t.exists)
        return -ENOENT;
    /* Each object is judged by its own type, at the name it leaves and at
     * the name it takes. */
    bool s_from = overlay_child_is_local(fs, dir, name, s.is_dir);
    bool s_to = overlay_child_is_local(fs, newdir, newname, s.is_dir);
    bool t_from = overlay_child_is_local(fs, newdir, newname, t.is_dir);
    bool t_to = overlay_child_is_local(fs, dir, name, t.is_dir);
    if (!s_from && !s_to && !t_from && !t_to)
        return 1;
    if (!(s_from && s_to && t_from && t_to) || !s.upper_only || !t.upper_only)
        return -EXDEV;
    int sp, dp;
    bool sown, down;
    r = overlay_upper_dir_for(fs, dir, &sp, &sown);
    if (r)
        return r;
    r = overlay_upper_dir_for(fs, newdir, &dp, &down);
    if (!r) {
        char from[PATH_MAX], to[PATH_MAX];
        enum ov_where fw = overlay_path_of(fs, sp, name, from, sizeof(from));
        enum ov_where tw = overlay_path_of(fs, dp, newname, to, sizeof(to));
        if (renameat2(sp, name, dp, newname, RENAME_EXCHANGE) < 0)
            r = -errno;
        else if (fw == OV_IN_UPPER && tw == OV_IN_UPPER) {
            change_stream_note(fs->changes, CHANGE_RENAME_TO | CHANGE_LOCAL, to, from, 0, 0);
            change_stream_note(fs->changes, CHANGE_RENAME_TO | CHANGE_LOCAL, from, to, 0, 0);
        }
        if (down)
            close(dp);
    }
    if (sown)
        close(sp);
    return r;
}

int overlay_rename(struct wfs *fs, struct wfs_inode *dir, const char *name,
                   struct wfs_inode *newdir, const char *newname, unsigned int flags)
{
    if (flags & RENAME_EXCHANGE)
        return overlay_exchange(fs, dir, name, newdir, newname);
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
        /* Both mirrored: the plain rename, unless the target dir is empty
         * in SRC but has local entries (which SRC's rename cannot see). */
        r = overlay_resolve_name(fs, newdir, newname, &t);
        if (!r && s_dir && t.low_exists && S_ISDIR(t.low_st.st_mode) && t.up_fd >= 0 &&
            S_ISDIR(t.up_st.st_mode))
            r = overlay_name_empty(fs, newdir, newname, &t);
        overlay_name_release(&t);
        return r ? r : 1;
    }
    /* A file with other names that moved layers would be one inode in both
     * (a hard link across layers, which link() refuses too). */
    if (src_local != dst_local && !s_dir && sst.st_nlink > 1) {
        overlay_name_release(&s);
        return -EXDEV;
    }
    /* A dir with contents does not change layers: the inodes the kernel
     * holds below it would keep their old layer, and names below it may be
     * local by the rules at one place and not at the other.  EXDEV makes
     * mv(1) copy it, entry by entry, each to its right layer. */
    if (src_local != dst_local && s_dir) {
        int empty = overlay_name_empty(fs, dir, name, &s);
        if (empty) {
            overlay_name_release(&s);
            return empty == -ENOTEMPTY ? -EXDEV : empty;
        }
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
        else if (S_ISDIR(tst->st_mode)) /* a mirrored dir's local entries count */
            r = overlay_name_empty(fs, newdir, newname, &t);
    }
    bool t_skeleton = !dst_local && t_exists && t.up_fd >= 0 && S_ISDIR(t.up_st.st_mode);
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
    if (!r && t_skeleton && tw == OV_IN_SRC) /* empty, so it shows nothing: it goes */
        r = overlay_rmdir_skeleton(fs, to, false);
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

/* Remove the skeleton dir `name` of up if nothing in it is visible: only
 * whiteouts and skeleton dirs holding the same (with dry_run, only say
 * whether it could).  0, -ENOENT or -ENOTEMPTY. */
static int remove_invisible(int up, const char *name, bool dry_run)
{
    int fd = openat(up, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -ENOMEM;
    }
    int r = 0;
    struct dirent *de;
    while (!r && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            r = -errno;
        else if (overlay_is_whiteout(&st))
            r = dry_run || unlinkat(dirfd(d), de->d_name, 0) == 0 ? 0 : -errno;
        else if (S_ISDIR(st.st_mode))
            r = remove_invisible(dirfd(d), de->d_name, dry_run);
        else
            r = -ENOTEMPTY;
    }
    closedir(d);
    if (!r && !dry_run && unlinkat(up, name, AT_REMOVEDIR) < 0)
        r = -errno;
    return r;
}

int overlay_rmdir_skeleton(struct wfs *fs, const char *path, bool dry_run)
{
    struct overlay *ov = fs->ov;
    if (!ov->has_local)
        return 0;
    pthread_mutex_lock(&ov->copy_lock);
    int r = remove_invisible(ov->upper_root, path, dry_run);
    pthread_mutex_unlock(&ov->copy_lock);
    return r == -ENOENT ? 0 : r;
}

static bool upper_dir_exists(struct overlay *ov, const char *path)
{
    struct stat st;
    return fstatat(ov->upper_root, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* Rename overlay/<from> to overlay/<to>, making to's parent chain. */
static int move_skeleton(struct wfs *fs, const char *from, const char *to, unsigned flags)
{
    char parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", to);
    char *slash = strrchr(parent, '/');
    const char *base = slash ? slash + 1 : to;
    if (slash)
        *slash = '\0';
    int pfd = overlay_upper_chain(fs, slash ? parent : "");
    if (pfd < 0)
        return pfd;
    int r = renameat2(fs->ov->upper_root, from, pfd, base, flags) < 0 ? -errno : 0;
    close(pfd);
    return r;
}

void overlay_follow_rename(struct wfs *fs, const char *from, const char *to, bool exchange)
{
    struct overlay *ov = fs->ov;
    if (!ov->has_local)
        return;
    pthread_mutex_lock(&ov->copy_lock);
    bool have_from = upper_dir_exists(ov, from), have_to = upper_dir_exists(ov, to);
    int r = 0;
    if (exchange && have_from && have_to)
        r = renameat2(ov->upper_root, from, ov->upper_root, to, RENAME_EXCHANGE) < 0 ? -errno : 0;
    else if (exchange && have_to)
        r = move_skeleton(fs, to, from, 0);
    else if (have_from) {
        /* What was replaced was empty, so its skeleton shows nothing. */
        if (have_to)
            r = remove_invisible(ov->upper_root, to, false);
        if (!r)
            r = move_skeleton(fs, from, to, 0);
    }
    pthread_mutex_unlock(&ov->copy_lock);
    if (r)
        fprintf(stderr, "wsync: local entries of %s stay in the overlay at that path: moving "
                        "them to %s: %s\n", from, to, strerror(-r));
}
