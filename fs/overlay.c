/*
 * overlay.c — resolution of local paths: which layer a name lives in.
 *
 * A local dir's inode holds its upper dir in fd (if it has one) and the
 * lower dir to merge in lower_fd; a lookup tries the upper entry, then the
 * lower one.  A mirrored dir holds only its SRC dir; if it is a skeleton
 * dir (local entries of it live in the upper layer) a lookup of a local
 * name also tries SRC/.wsync/overlay/<its path>/name.  Skeleton dirs are
 * remembered by their SRC (dev, ino), so telling that a mirrored dir is not
 * one costs no syscall.
 */
#include "overlay.h"

#include "../sync/rules.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

struct ov_skel {
    dev_t dev;
    ino_t ino;
    struct ov_skel *next;
};

static size_t skel_bucket(dev_t dev, ino_t ino)
{
    uint64_t x = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;
    return (size_t)(x >> 56) & (OV_SKEL_BUCKETS - 1);
}

static bool skel_has(struct overlay *ov, dev_t dev, ino_t ino)
{
    bool found = false;
    pthread_mutex_lock(&ov->skel_lock);
    for (struct ov_skel *s = ov->skel[skel_bucket(dev, ino)]; s && !found; s = s->next)
        found = s->dev == dev && s->ino == ino;
    pthread_mutex_unlock(&ov->skel_lock);
    return found;
}

/* Remember that the SRC dir (dev, ino) has an upper counterpart, and tell a
 * kernel-held inode for it. */
void overlay_skel_add(struct wfs *fs, dev_t dev, ino_t ino);
void overlay_skel_add(struct wfs *fs, dev_t dev, ino_t ino)
{
    struct overlay *ov = fs->ov;
    if (!skel_has(ov, dev, ino)) {
        struct ov_skel *s = malloc(sizeof(*s));
        if (s) {
            s->dev = dev;
            s->ino = ino;
            pthread_mutex_lock(&ov->skel_lock);
            size_t b = skel_bucket(dev, ino);
            s->next = ov->skel[b];
            ov->skel[b] = s;
            pthread_mutex_unlock(&ov->skel_lock);
        }
    }
    inode_table_set_layer(fs->inodes, dev, ino, INODE_SKELETON, 0);
}

/* openat2 beneath `root`, never following a symlink: the overlay is ours,
 * and a symlink planted in it must not lead out. */
static int open_beneath(int root, const char *path, int flags)
{
    struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC),
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                                      RESOLVE_NO_MAGICLINKS};
    long fd = syscall(SYS_openat2, root, *path ? path : ".", &how, sizeof(how));
    return (int)fd;
}

/* Walk the upper layer: every upper dir whose path is mirrored is a
 * skeleton dir; its SRC dir is remembered.  Local dirs are not entered. */
static void scan_skeleton(struct wfs *fs, int upfd, char *path, size_t len, size_t cap)
{
    int dfd = openat(upfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dp = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!dp) {
        if (dfd >= 0)
            close(dfd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 ||
            strcmp(de->d_name, "..") == 0)
            continue;
        size_t n = strlen(de->d_name);
        if (len + n + 2 > cap)
            continue;
        size_t at = len;
        if (len)
            path[at++] = '/';
        memcpy(path + at, de->d_name, n + 1);
        if (rules_classify(fs->ov->rules, path, true) != RULE_LOCAL) {
            struct stat st;
            int sub = openat(upfd, de->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                if (fstatat(fs->src_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                    S_ISDIR(st.st_mode))
                    overlay_skel_add(fs, st.st_dev, st.st_ino);
                scan_skeleton(fs, sub, path, at + n, cap);
                close(sub);
            }
        }
        path[len] = '\0';
    }
    closedir(dp);
}

static bool dir_is_empty(int fd)
{
    int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dp = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!dp) {
        if (dfd >= 0)
            close(dfd);
        return true;
    }
    struct dirent *de;
    bool empty = true;
    while (empty && (de = readdir(dp)))
        empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
    closedir(dp);
    return empty;
}

int overlay_open(struct wfs *fs, char *err, size_t errsize)
{
    struct overlay *ov = calloc(1, sizeof(*ov));
    if (!ov)
        return -ENOMEM;
    ov->upper_root = -1;
    pthread_mutex_init(&ov->copy_lock, NULL);
    pthread_mutex_init(&ov->skel_lock, NULL);
    fs->ov = ov;
    int r = rules_load(fs->src_fd, fs->src, &ov->rules, err, errsize);
    if (r)
        return r;
    ov->has_local = rules_has_local(ov->rules);
    ov->needs_path = rules_local_needs_path(ov->rules);
    if (mkdirat(fs->state_fd, OVERLAY_DIR, 0755) < 0 && errno != EEXIST) {
        r = -errno;
        snprintf(err, errsize, "cannot create %s/.wsync/" OVERLAY_DIR ": %s", fs->src,
                 strerror(-r));
        return r;
    }
    ov->upper_root =
        openat(fs->state_fd, OVERLAY_DIR, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (ov->upper_root < 0) {
        r = -errno;
        snprintf(err, errsize, "cannot open %s/.wsync/" OVERLAY_DIR ": %s", fs->src,
                 strerror(-r));
        return r;
    }
    char path[PATH_MAX] = "";
    scan_skeleton(fs, ov->upper_root, path, 0, sizeof(path));
    struct wfs_inode *root = inode_table_root(fs->inodes);
    if (!dir_is_empty(ov->upper_root))
        overlay_skel_add(fs, root->dev, root->ino);
    return 0;
}

void overlay_close(struct overlay *ov)
{
    if (!ov)
        return;
    rules_free(ov->rules);
    if (ov->upper_root >= 0)
        close(ov->upper_root);
    for (size_t i = 0; i < OV_SKEL_BUCKETS; i++)
        while (ov->skel[i]) {
            struct ov_skel *s = ov->skel[i];
            ov->skel[i] = s->next;
            free(s);
        }
    pthread_mutex_destroy(&ov->copy_lock);
    pthread_mutex_destroy(&ov->skel_lock);
    free(ov);
}

enum ov_where overlay_path_of(struct wfs *fs, int fd, const char *name, char *buf, size_t size)
{
    if (!wfs_relpath(fs, fd, name, buf, size))
        return OV_NOWHERE;
    static const char state[] = WFS_STATE_DIR "/";
    static const char upper[] = WFS_STATE_DIR "/" OVERLAY_DIR;
    if (strncmp(buf, WFS_STATE_DIR, sizeof(state) - 2) != 0 ||
        (buf[sizeof(state) - 2] != '/' && buf[sizeof(state) - 2] != '\0'))
        return OV_IN_SRC;
    size_t n = sizeof(upper) - 1;
    if (strncmp(buf, upper, n) != 0 || (buf[n] != '/' && buf[n] != '\0'))
        return OV_NOWHERE; /* our other state: never a change */
    size_t skip = buf[n] == '/' ? n + 1 : n;
    memmove(buf, buf + skip, strlen(buf + skip) + 1);
    return OV_IN_UPPER;
}

bool overlay_child_is_local(struct wfs *fs, struct wfs_inode *dir, const char *name, bool is_dir)
{
    struct overlay *ov = fs->ov;
    if (overlay_is_local(dir))
        return true;
    if (!ov->has_local)
        return false;
    if (dir == inode_table_root(fs->inodes))
        return rules_classify_child(ov->rules, RULE_MIRROR, name, is_dir) == RULE_LOCAL;
    if (!ov->needs_path)
        return rules_local_name(ov->rules, name, is_dir);
    char path[PATH_MAX];
    if (overlay_path_of(fs, dir->fd, name, path, sizeof(path)) == OV_NOWHERE)
        return false;
    return rules_classify_child(ov->rules, RULE_MIRROR, path, is_dir) == RULE_LOCAL;
}

bool overlay_child_may_be_local(struct wfs *fs, struct wfs_inode *dir, const char *name)
{
    return overlay_child_is_local(fs, dir, name, true) ||
           overlay_child_is_local(fs, dir, name, false);
}

bool overlay_is_skeleton(struct wfs *fs, struct wfs_inode *dir)
{
    return __atomic_load_n(&dir->layer, __ATOMIC_ACQUIRE) & INODE_SKELETON;
}

int overlay_lower_dir(struct wfs_inode *dir)
{
    unsigned l = __atomic_load_n(&dir->layer, __ATOMIC_ACQUIRE);
    if (!(l & INODE_LOCAL) || !(l & INODE_UPPER))
        return __atomic_load_n(&dir->fd, __ATOMIC_ACQUIRE);
    return dir->lower_fd;
}

int overlay_open_upper_dir(struct wfs *fs, struct wfs_inode *dir)
{
    unsigned l = __atomic_load_n(&dir->layer, __ATOMIC_ACQUIRE);
    if (l & INODE_UPPER) {
        int fd = fcntl(dir->fd, F_DUPFD_CLOEXEC, 0);
        return fd < 0 ? -errno : fd;
    }
    if ((l & INODE_LOCAL) || !(l & INODE_SKELETON))
        return -ENOENT;
    char path[PATH_MAX];
    if (overlay_path_of(fs, dir->fd, NULL, path, sizeof(path)) != OV_IN_SRC)
        return -ENOENT;
    int fd = open_beneath(fs->ov->upper_root, path, O_PATH | O_DIRECTORY);
    return fd < 0 ? -errno : fd;
}

static bool is_opaque(int fd)
{
    char proc[WFS_PROC_PATH_MAX], v;
    wfs_proc_path(fd, proc);
    return getxattr(proc, OVERLAY_OPAQUE_XATTR, &v, 1) == 1 && v == 'y';
}

static int open_entry(int dirfd, const char *name, struct stat *st)
{
    int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int overlay_resolve_name(struct wfs *fs, struct wfs_inode *dir, const char *name,
                         struct ov_name *out)
{
    out->up_fd = -1;
    out->low_exists = false;
    int low_fd = -1;
    int upfd = overlay_open_upper_dir(fs, dir);
    if (upfd >= 0) {
        int fd = open_entry(upfd, name, &out->up_st);
        close(upfd);
        if (fd < 0 && fd != -ENOENT)
            return fd;
        out->up_fd = fd;
    } else if (upfd != -ENOENT) {
        return upfd;
    }
    int ld = overlay_lower_dir(dir);
    if (ld >= 0) {
        low_fd = open_entry(ld, name, &out->low_st);
        if (low_fd < 0 && low_fd != -ENOENT) {
            overlay_name_release(out);
            return low_fd;
        }
        out->low_exists = low_fd >= 0;
        if (low_fd >= 0)
            close(low_fd);
    }
    return 0;
}

void overlay_name_release(struct ov_name *n)
{
    if (n->up_fd >= 0)
        close(n->up_fd);
    n->up_fd = -1;
}

/* Add a kernel reference for the resolved object and fill e. */
static int finish_lookup(struct wfs *fs, int fd, struct stat *st, unsigned layer, int lower_fd,
                         const struct stat *lower_st, struct fuse_entry_param *e)
{
    int used, lower_used;
    struct wfs_inode *in = inode_table_ref_layer(fs->inodes, fd, st, layer, lower_fd, lower_st,
                                                 &used, &lower_used);
    if (!used)
        close(fd);
    if (lower_fd >= 0 && !lower_used)
        close(lower_fd);
    if (!in)
        return -ENOMEM;
    e->attr = *st;
    e->attr.st_ino = in->shown_ino;
    e->ino = in == inode_table_root(fs->inodes) ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
    return 0;
}

int overlay_lookup(struct wfs *fs, struct wfs_inode *dir, const char *name,
                   struct fuse_entry_param *e)
{
    bool local_dir = overlay_is_local(dir);
    int up = -1, low = -1;
    struct stat ust, lst;

    if (!local_dir) {
        /* The fast path: a mirrored name costs one rules match. */
        low = open_entry(dir->fd, name, &lst);
        if (low >= 0 && !overlay_child_is_local(fs, dir, name, S_ISDIR(lst.st_mode))) {
            unsigned layer = S_ISDIR(lst.st_mode) && fs->ov->has_local &&
                                     skel_has(fs->ov, lst.st_dev, lst.st_ino)
                                 ? INODE_SKELETON
                                 : 0;
            return finish_lookup(fs, low, &lst, layer, -1, NULL, e);
        }
        if (low < 0 && (low != -ENOENT || !overlay_is_skeleton(fs, dir) ||
                        !overlay_child_may_be_local(fs, dir, name)))
            return low;
        if (overlay_is_skeleton(fs, dir)) {
            int upfd = overlay_open_upper_dir(fs, dir);
            if (upfd >= 0) {
                up = open_entry(upfd, name, &ust);
                close(upfd);
            }
            /* A mirrored-class upper entry is skeleton, never shown. */
            if (up >= 0 && !overlay_is_whiteout(&ust) &&
                !overlay_child_is_local(fs, dir, name, S_ISDIR(ust.st_mode))) {
                close(up);
                up = -1;
            }
        }
    } else {
        unsigned l = __atomic_load_n(&dir->layer, __ATOMIC_ACQUIRE);
        if (l & INODE_UPPER) {
            up = open_entry(dir->fd, name, &ust);
            if (up < 0 && up != -ENOENT)
                return up;
        }
        int ld = overlay_lower_dir(dir);
        bool want_lower = up < 0 || (S_ISDIR(ust.st_mode) && !overlay_is_whiteout(&ust));
        if (ld >= 0 && want_lower) {
            low = open_entry(ld, name, &lst);
            if (low < 0 && low != -ENOENT) {
                if (up >= 0)
                    close(up);
                return low;
            }
        }
    }

    if (up >= 0 && overlay_is_whiteout(&ust)) {
        close(up);
        if (low >= 0)
            close(low);
        return -ENOENT;
    }
    if (up >= 0) {
        /* An upper dir merges a lower dir of the same name unless opaque. */
        if (low >= 0 && (!S_ISDIR(lst.st_mode) || !S_ISDIR(ust.st_mode) || is_opaque(up))) {
            close(low);
            low = -1;
        }
        return finish_lookup(fs, up, &ust, INODE_LOCAL | INODE_UPPER, low, &lst, e);
    }
    if (low >= 0)
        return finish_lookup(fs, low, &lst, INODE_LOCAL, -1, NULL, e);
    return -ENOENT;
}

ssize_t overlay_filter_xattr_list(char *list, size_t len)
{
    size_t out = 0;
    for (size_t i = 0; i < len;) {
        size_t n = strnlen(list + i, len - i) + 1;
        if (!overlay_is_own_xattr(list + i)) {
            memmove(list + out, list + i, n);
            out += n;
        }
        i += n;
    }
    return (ssize_t)out;
}
