/*
 * overlay_copyup.c — copy-up: the first change to a lower object of a local
 * path makes its copy in the upper layer, and the kernel's inode moves there.
 *
 * A file is copied into an O_TMPFILE in the upper parent (reflink if the
 * filesystem can, else copy_file_range over the data extents, so holes stay
 * holes), given the lower file's owner, mode, times and xattrs, and only
 * then linked under its name: a crash leaves either no upper copy or a
 * complete one.  The inode keeps its node id and the st_ino the kernel saw;
 * only its fd and table key change (inode_table_copied_up).
 *
 * Invariant: copy-ups run one at a time (ov->copy_lock), so two writers of
 * one lower file cannot both copy it.
 */
#include "overlay.h"

#include "../sync/rules.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/xattr.h>
#include <unistd.h>

void overlay_skel_add(struct wfs *fs, dev_t dev, ino_t ino);

#define XATTR_LIST_MAX_BYTES 65536

static int copy_xattrs(int from, int to_fd, int dirfd, const char *name, bool is_link)
{
    if (is_link)
        return 0; /* the proc link of a symlink reaches its target */
    char proc[WFS_PROC_PATH_MAX];
    wfs_proc_path(from, proc);
    char *list = malloc(XATTR_LIST_MAX_BYTES), *val = malloc(XATTR_LIST_MAX_BYTES);
    int r = 0;
    ssize_t n = list && val ? listxattr(proc, list, XATTR_LIST_MAX_BYTES) : -1;
    if (n < 0)
        r = errno == ENOTSUP ? 0 : -errno;
    char to_proc[WFS_PROC_PATH_MAX];
    if (to_fd < 0) {
        int t = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (t < 0)
            n = -1;
        else
            wfs_proc_path(t, to_proc), to_fd = t, dirfd = -2; /* close below */
    }
    for (ssize_t i = 0; i < n && !r; i += (ssize_t)strlen(list + i) + 1) {
        const char *key = list + i;
        if (strncmp(key, OVERLAY_XATTR_PREFIX, strlen(OVERLAY_XATTR_PREFIX)) == 0)
            continue;
        ssize_t vn = getxattr(proc, key, val, XATTR_LIST_MAX_BYTES);
        if (vn < 0)
            continue; /* vanished, or not ours to read */
        int s = dirfd == -2 ? setxattr(to_proc, key, val, (size_t)vn, 0)
                            : fsetxattr(to_fd, key, val, (size_t)vn, 0);
        if (s < 0 && errno != ENOTSUP && errno != EPERM)
            r = -errno;
    }
    if (dirfd == -2)
        close(to_fd);
    free(list);
    free(val);
    return r;
}

int overlay_copy_attrs(int from, const struct stat *st, int dirfd, const char *name, int to_fd)
{
    bool is_link = S_ISLNK(st->st_mode);
    int r = copy_xattrs(from, to_fd, dirfd, name, is_link);
    if (r)
        return r;
    /* Owner before mode: chown clears setuid/setgid bits. */
    if (to_fd >= 0 ? fchown(to_fd, st->st_uid, st->st_gid)
                   : fchownat(dirfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW))
        if (errno != EPERM)
            return -errno;
    if (!is_link && (to_fd >= 0 ? fchmod(to_fd, st->st_mode & 07777)
                                : fchmodat(dirfd, name, st->st_mode & 07777, 0)))
        return -errno;
    struct timespec tv[2] = {st->st_atim, st->st_mtim};
    if (to_fd >= 0 ? futimens(to_fd, tv) : utimensat(dirfd, name, tv, AT_SYMLINK_NOFOLLOW))
        return -errno;
    return 0;
}

/* Copy size bytes of data, extent by extent: reflink first, then
 * copy_file_range, then read/write (a lower layer that cannot do either). */
static int copy_data(int in, int out, off_t size)
{
    if (size == 0 || ioctl(out, FICLONE, in) == 0)
        return 0;
    off_t pos = 0;
    while (pos < size) {
        off_t data = lseek(in, pos, SEEK_DATA);
        if (data < 0)
            break; /* ENXIO: only a hole is left */
        off_t hole = lseek(in, data, SEEK_HOLE);
        if (hole < 0)
            hole = size;
        off_t oin = data, oout = data;
        while (oin < hole) {
            ssize_t n = copy_file_range(in, &oin, out, &oout, (size_t)(hole - oin), 0);
            if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP ||
                          errno == EINVAL)) {
                char buf[65536];
                n = pread(in, buf, sizeof(buf) < (size_t)(hole - oin) ? sizeof(buf)
                                                                      : (size_t)(hole - oin),
                          oin);
                if (n > 0 && pwrite(out, buf, (size_t)n, oout) != n)
                    return -EIO;
                if (n > 0)
                    oin += n, oout += n;
            }
            if (n < 0)
                return -errno;
            if (n == 0)
                break; /* the lower file shrank under us */
        }
        pos = hole;
    }
    return ftruncate(out, size) < 0 ? -errno : 0;
}

/* Copy the lower object `from` (attributes st) to `name` in upper dir pfd.
 * Returns an O_PATH fd on the copy, or -errno. */
static int copy_object(int from, const struct stat *st, int pfd, const char *name,
                       bool with_data)
{
    int r = 0;
    /* A whiteout cannot be there while the lower object is visible; if one
     * is (a torn earlier operation), the copy replaces it. */
    struct stat wst;
    if (fstatat(pfd, name, &wst, AT_SYMLINK_NOFOLLOW) == 0 && overlay_is_whiteout(&wst))
        unlinkat(pfd, name, 0);

    if (S_ISREG(st->st_mode)) {
        char proc[WFS_PROC_PATH_MAX];
        wfs_proc_path(from, proc);
        int in = with_data ? open(proc, O_RDONLY | O_CLOEXEC) : -1;
        if (with_data && in < 0)
            return -errno;
        int out = openat(pfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (out < 0) {
            r = -errno;
            if (in >= 0)
                close(in);
            return r;
        }
        r = with_data ? copy_data(in, out, st->st_size) : 0;
        if (in >= 0)
            close(in);
        if (!r)
            r = overlay_copy_attrs(from, st, -1, NULL, out);
        if (!r) {
            char tmp[WFS_PROC_PATH_MAX];
            wfs_proc_path(out, tmp);
            if (linkat(AT_FDCWD, tmp, pfd, name, AT_SYMLINK_FOLLOW) < 0)
                r = -errno;
        }
        close(out);
    } else if (S_ISDIR(st->st_mode)) {
        if (mkdirat(pfd, name, 0700) < 0 && errno != EEXIST)
            return -errno;
        int d = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (d < 0)
            return -errno;
        r = overlay_copy_attrs(from, st, pfd, name, d);
        close(d);
    } else if (S_ISLNK(st->st_mode)) {
        char target[PATH_MAX + 1];
        ssize_t n = readlinkat(from, "", target, sizeof(target) - 1);
        if (n < 0)
            return -errno;
        target[n] = '\0';
        if (symlinkat(target, pfd, name) < 0)
            return -errno;
        r = overlay_copy_attrs(from, st, pfd, name, -1);
    } else {
        if (mknodat(pfd, name, st->st_mode, st->st_rdev) < 0)
            return -errno;
        r = overlay_copy_attrs(from, st, pfd, name, -1);
    }
    if (r)
        return r;
    int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int overlay_upper_chain(struct wfs *fs, const char *relpath)
{
    struct overlay *ov = fs->ov;
    int up = fcntl(ov->upper_root, F_DUPFD_CLOEXEC, 0);
    int low = fcntl(fs->src_fd, F_DUPFD_CLOEXEC, 0);
    if (up < 0 || low < 0) {
        int e = -errno;
        if (up >= 0)
            close(up);
        if (low >= 0)
            close(low);
        return e;
    }
    /* The root itself is a skeleton dir from now on. */
    struct stat st;
    if (fstat(low, &st) == 0)
        overlay_skel_add(fs, st.st_dev, st.st_ino);

    char path[PATH_MAX];
    size_t plen = strlen(relpath);
    if (plen >= sizeof(path)) {
        close(up);
        close(low);
        return -ENAMETOOLONG;
    }
    memcpy(path, relpath, plen + 1);
    enum rule_class cls = RULE_MIRROR;
    int r = 0;
    char *comp = path;
    while (*comp && !r) {
        char *slash = strchr(comp, '/');
        if (slash)
            *slash = '\0';
        cls = rules_classify_child(ov->rules, cls, path, true);
        struct stat lst;
        int nlow = low >= 0 ? openat(low, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
        if (nlow >= 0 && fstat(nlow, &lst) < 0) {
            close(nlow);
            nlow = -1;
        }
        int nup = openat(up, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nup < 0 && errno == ENOENT && nlow >= 0) {
            nup = copy_object(nlow, &lst, up, comp, false);
            if (nup < 0)
                r = nup;
        } else if (nup < 0) {
            r = -errno;
        }
        if (!r && nlow >= 0) {
            if (cls != RULE_LOCAL) {
                overlay_skel_add(fs, lst.st_dev, lst.st_ino);
            } else {
                struct stat ust;
                /* Every held inode on the way must follow (invariant). */
                if (fstat(nup, &ust) == 0)
                    inode_table_adopt(fs->inodes, lst.st_dev, lst.st_ino, nup, &ust,
                                      INODE_LOCAL | INODE_UPPER);
            }
        }
        close(up);
        if (low >= 0)
            close(low);
        up = nup;
        low = nlow;
        if (slash)
            *slash = '/';
        comp = slash ? slash + 1 : comp + strlen(comp);
    }
    if (low >= 0)
        close(low);
    if (r) {
        if (up >= 0)
            close(up);
        return r;
    }
    return up;
}

int overlay_copy_up(struct wfs *fs, struct wfs_inode *in, bool with_data)
{
    struct overlay *ov = fs->ov;
    if (__atomic_load_n(&in->layer, __ATOMIC_ACQUIRE) & INODE_UPPER)
        return 0;
    pthread_mutex_lock(&ov->copy_lock);
    int r = 0;
    if (__atomic_load_n(&in->layer, __ATOMIC_ACQUIRE) & INODE_UPPER)
        goto out; /* another thread did it */
    char path[PATH_MAX];
    if (overlay_path_of(fs, in->fd, NULL, path, sizeof(path)) != OV_IN_SRC) {
        r = -ENOENT; /* deleted underneath us */
        goto out;
    }
    if (in->type == S_IFDIR) {
        int fd = overlay_upper_chain(fs, path); /* adopts `in` too */
        if (fd < 0)
            r = fd;
        else
            close(fd);
        if (!r && !(__atomic_load_n(&in->layer, __ATOMIC_ACQUIRE) & INODE_UPPER))
            r = -EIO; /* the chain did not meet our inode: SRC changed under us */
        goto out;
    }
    char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    if (slash)
        *slash = '\0';
    int pfd = overlay_upper_chain(fs, slash ? path : "");
    if (pfd < 0) {
        r = pfd;
        goto out;
    }
    struct stat st;
    if (fstatat(in->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
        r = -errno;
        close(pfd);
        goto out;
    }
    int fd = copy_object(in->fd, &st, pfd, name, with_data);
    close(pfd);
    if (fd < 0) {
        r = fd;
        goto out;
    }
    struct stat ust;
    if (fstatat(fd, "", &ust, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
        r = -errno;
        close(fd);
        goto out;
    }
    inode_table_copied_up(fs->inodes, in, fd, &ust, INODE_UPPER);
out:
    pthread_mutex_unlock(&ov->copy_lock);
    return r;
}

/* Give the skeleton dir skel the owner and mode its SRC dir has now (they
 * may have changed since it was made): a new local entry inherits a
 * setgid dir's group and bit from the dir it is really created in. */
static void match_skeleton(int src_dir, int skel)
{
    struct stat s, k;
    if (fstat(src_dir, &s) < 0 || fstat(skel, &k) < 0)
        return;
    if ((s.st_uid != k.st_uid || s.st_gid != k.st_gid) &&
        fchownat(skel, "", s.st_uid, s.st_gid, AT_EMPTY_PATH) < 0)
        return;
    char proc[WFS_PROC_PATH_MAX];
    wfs_proc_path(skel, proc);
    if ((s.st_mode & 07777) != (k.st_mode & 07777) && chmod(proc, s.st_mode & 07777) < 0)
        return; /* best effort: the entry is still made, as without this */
}

int overlay_upper_dir_for(struct wfs *fs, struct wfs_inode *dir, int *fd, bool *owned)
{
    unsigned l = __atomic_load_n(&dir->layer, __ATOMIC_ACQUIRE);
    if ((l & INODE_LOCAL) && !(l & INODE_UPPER)) {
        int r = overlay_copy_up(fs, dir, false);
        if (r)
            return r;
        l = __atomic_load_n(&dir->layer, __ATOMIC_ACQUIRE);
    }
    if (l & INODE_UPPER) {
        *fd = __atomic_load_n(&dir->fd, __ATOMIC_ACQUIRE);
        *owned = false;
        return 0;
    }
    /* A mirrored dir: its skeleton counterpart. */
    char path[PATH_MAX];
    if (overlay_path_of(fs, dir->fd, NULL, path, sizeof(path)) != OV_IN_SRC)
        return -ENOENT;
    pthread_mutex_lock(&fs->ov->copy_lock);
    int r = overlay_upper_chain(fs, path);
    if (r >= 0)
        match_skeleton(dir->fd, r);
    pthread_mutex_unlock(&fs->ov->copy_lock);
    if (r < 0)
        return r;
    *fd = r;
    *owned = true;
    return 0;
}

int overlay_copy_up_entry(struct wfs *fs, struct wfs_inode *dir, int pfd, const char *name,
                          const struct stat *lst)
{
    int low = openat(overlay_lower_dir(dir), name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (low < 0)
        return -errno;
    pthread_mutex_lock(&fs->ov->copy_lock);
    int fd = copy_object(low, lst, pfd, name, true);
    int r = fd < 0 ? fd : 0;
    struct stat ust;
    if (fd >= 0 && fstatat(fd, "", &ust, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0)
        inode_table_adopt(fs->inodes, lst->st_dev, lst->st_ino, fd, &ust, INODE_UPPER);
    pthread_mutex_unlock(&fs->ov->copy_lock);
    if (fd >= 0)
        close(fd);
    close(low);
    return r;
}
