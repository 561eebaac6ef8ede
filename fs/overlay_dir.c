/*
 * overlay_dir.c — directories of the overlay: merged listings, whiteouts,
 * opaque dirs and removal.
 *
 * Whiteout: a character device 0/0 in the upper dir, as overlayfs makes
 * (docs/overlay.md says why).  Opaque: an upper dir with the xattr
 * trusted.wsync.opaque = "y" hides the lower dir of the same name; it is
 * set when a dir is made where a lower dir was deleted.
 *
 * A merged listing is taken whole at opendir: upper entries minus
 * whiteouts, then lower entries the upper dir does not name.  Offsets are
 * positions in that snapshot, so a listing resumes exactly.
 */
#include "overlay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

struct vec {
    struct ov_dirent *v;
    size_t n, cap;
};

static int vec_push(struct vec *a, const char *name, ino_t ino, unsigned char type)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        struct ov_dirent *v = realloc(a->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        a->v = v;
        a->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    a->v[a->n++] = (struct ov_dirent){.name = copy, .ino = ino, .type = type};
    return 0;
}

void overlay_list_free(struct ov_dirent *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].name);
    free(v);
}

static bool is_dots(const char *name)
{
    return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* A DT_CHR (or DT_UNKNOWN) entry may be a whiteout: stat tells. */
static bool entry_is_whiteout(int dfd, const struct dirent *de)
{
    if (de->d_type != DT_CHR && de->d_type != DT_UNKNOWN)
        return false;
    struct stat st;
    return fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && overlay_is_whiteout(&st);
}

/* Call fn for each entry of the dir at fd (O_PATH is fine), dots skipped. */
static int for_each_entry(int fd, int (*fn)(int dfd, struct dirent *de, void *arg), void *arg)
{
    int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    DIR *dp = fdopendir(dfd);
    if (!dp) {
        int e = -errno;
        close(dfd);
        return e;
    }
    int r = 0;
    struct dirent *de;
    errno = 0;
    while (!r && (de = readdir(dp)))
        if (!is_dots(de->d_name))
            r = fn(dirfd(dp), de, arg);
    if (!r && errno)
        r = -errno;
    closedir(dp);
    return r;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct ov_dirent *)a)->name, ((const struct ov_dirent *)b)->name);
}

static bool named(const struct vec *sorted, const char *name)
{
    struct ov_dirent key = {.name = (char *)name};
    return sorted->n && bsearch(&key, sorted->v, sorted->n, sizeof(key), cmp_name);
}

struct collect {
    struct wfs *fs;
    struct wfs_inode *dir;
    bool mirror_parent; /* upper entries count only if local-class */
    struct vec names;   /* every upper name, whiteouts included */
    struct vec shown;
    const struct vec *hide; /* lower pass: names the upper layer has */
};

static int collect_upper(int dfd, struct dirent *de, void *arg)
{
    struct collect *c = arg;
    bool wh = entry_is_whiteout(dfd, de);
    if (c->mirror_parent &&
        !(wh ? overlay_child_may_be_local(c->fs, c->dir, de->d_name)
             : overlay_child_is_local(c->fs, c->dir, de->d_name, de->d_type == DT_DIR)))
        return 0; /* a skeleton dir: the lower entry is the real one */
    int r = vec_push(&c->names, de->d_name, de->d_ino, de->d_type);
    if (!r && !wh)
        r = vec_push(&c->shown, de->d_name, de->d_ino, de->d_type);
    return r;
}

static int collect_lower(int dfd, struct dirent *de, void *arg)
{
    struct collect *c = arg;
    if (named(c->hide, de->d_name))
        return 0;
    return vec_push(&c->shown, de->d_name, de->d_ino, de->d_type);
}

bool overlay_needs_merge(struct wfs *fs, struct wfs_inode *dir)
{
    unsigned l = __atomic_load_n(&dir->layer, __ATOMIC_ACQUIRE);
    return (l & INODE_LOCAL) ? (l & INODE_UPPER) != 0 : (l & INODE_SKELETON) != 0;
}

int overlay_list(struct wfs *fs, struct wfs_inode *dir, struct ov_dirent **out, size_t *n)
{
    struct collect c = {.fs = fs, .dir = dir, .mirror_parent = !overlay_is_local(dir)};
    struct stat st;
    int r = fstatat(dir->fd, "", &st, AT_EMPTY_PATH) < 0 ? -errno : 0;
    if (!r)
        r = vec_push(&c.shown, ".", dir->shown_ino, DT_DIR);
    if (!r)
        r = vec_push(&c.shown, "..", 1, DT_DIR); /* d_ino 0 would hide it */
    int upfd = r ? r : overlay_open_upper_dir(fs, dir);
    if (upfd >= 0) {
        r = for_each_entry(upfd, collect_upper, &c);
        close(upfd);
    } else if (upfd != -ENOENT) {
        r = upfd;
    }
    int ld = overlay_lower_dir(dir);
    if (!r && ld >= 0) {
        if (c.names.n)
            qsort(c.names.v, c.names.n, sizeof(*c.names.v), cmp_name);
        c.hide = &c.names;
        c.mirror_parent = false;
        r = for_each_entry(ld, collect_lower, &c);
    }
    overlay_list_free(c.names.v, c.names.n);
    if (r) {
        overlay_list_free(c.shown.v, c.shown.n);
        return r;
    }
    *out = c.shown.v;
    *n = c.shown.n;
    return 0;
}

int overlay_dir_nlink(struct wfs *fs, struct wfs_inode *dir, nlink_t *out)
{
    struct ov_dirent *v;
    size_t n;
    int r = overlay_list(fs, dir, &v, &n);
    if (r)
        return r;
    bool root = dir == inode_table_root(fs->inodes);
    nlink_t links = 2;
    for (size_t i = 0; i < n; i++)
        links += v[i].type == DT_DIR && strcmp(v[i].name, ".") != 0 &&
                 strcmp(v[i].name, "..") != 0 && !(root && strcmp(v[i].name, WFS_STATE_DIR) == 0);
    overlay_list_free(v, n);
    *out = links;
    return 0;
}

int overlay_set_opaque(int upfd, const char *name)
{
    int fd = openat(upfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char proc[WFS_PROC_PATH_MAX];
    wfs_proc_path(fd, proc);
    int r = setxattr(proc, OVERLAY_OPAQUE_XATTR, "y", 1, 0) < 0 ? -errno : 0;
    close(fd);
    return r;
}

int overlay_prepare_name(struct wfs *fs, struct wfs_inode *dir, int upfd, const char *name,
                         bool *lower_dir)
{
    struct stat st;
    *lower_dir = false;
    if (fstatat(upfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && overlay_is_whiteout(&st) &&
        unlinkat(upfd, name, 0) < 0)
        return -errno;
    int ld = overlay_lower_dir(dir);
    if (ld >= 0 && fstatat(ld, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
        *lower_dir = S_ISDIR(st.st_mode);
    return 0;
}

static int only_whiteouts(int dfd, struct dirent *de, void *arg)
{
    if (!entry_is_whiteout(dfd, de))
        return -ENOTEMPTY;
    return unlinkat(dfd, de->d_name, 0) < 0 ? -errno : 0;
}

int overlay_clear_whiteouts(int upfd, const char *name)
{
    int fd = openat(upfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOTDIR ? 0 : -errno;
    int r = for_each_entry(fd, only_whiteouts, NULL);
    close(fd);
    return r;
}

struct empty_check {
    const struct vec *upper_names; /* sorted */
    bool upper_pass;
};

static int visible_entry(int dfd, struct dirent *de, void *arg)
{
    struct empty_check *ec = arg;
    if (ec->upper_pass)
        return entry_is_whiteout(dfd, de) ? 0 : -ENOTEMPTY;
    return named(ec->upper_names, de->d_name) ? 0 : -ENOTEMPTY;
}

static int upper_name(int dfd, struct dirent *de, void *arg)
{
    return vec_push(arg, de->d_name, de->d_ino, de->d_type);
}

/* Is the merged dir (upper entry up_fd or -1, lower dir low_fd or -1)
 * empty?  0, -ENOTEMPTY or -errno. */
static int merged_empty(int up_fd, int low_fd)
{
    struct vec names = {0};
    struct empty_check ec = {.upper_names = &names, .upper_pass = true};
    int r = up_fd >= 0 ? for_each_entry(up_fd, visible_entry, &ec) : 0;
    if (!r && up_fd >= 0)
        r = for_each_entry(up_fd, upper_name, &names);
    if (!r && low_fd >= 0) {
        if (names.n)
            qsort(names.v, names.n, sizeof(*names.v), cmp_name);
        ec.upper_pass = false;
        r = for_each_entry(low_fd, visible_entry, &ec);
    }
    overlay_list_free(names.v, names.n);
    return r;
}

static bool has_opaque(int fd)
{
    char proc[WFS_PROC_PATH_MAX], v;
    wfs_proc_path(fd, proc);
    return getxattr(proc, OVERLAY_OPAQUE_XATTR, &v, 1) == 1;
}

int overlay_name_empty(struct wfs *fs, struct wfs_inode *dir, const char *name,
                       const struct ov_name *n)
{
    bool up = n->up_fd >= 0 && !overlay_is_whiteout(&n->up_st);
    int low_child = -1;
    if (n->low_exists && S_ISDIR(n->low_st.st_mode) && (!up || !has_opaque(n->up_fd)))
        low_child =
            openat(overlay_lower_dir(dir), name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int r = merged_empty(up ? n->up_fd : -1, low_child);
    if (low_child >= 0)
        close(low_child);
    return r;
}

bool overlay_has_opaque(int fd)
{
    return has_opaque(fd);
}

int overlay_remove(struct wfs *fs, struct wfs_inode *dir, const char *name, bool is_dir)
{
    struct ov_name n;
    int r = overlay_resolve_name(fs, dir, name, &n);
    if (r)
        return r;
    bool up = n.up_fd >= 0 && !overlay_is_whiteout(&n.up_st);
    if (!overlay_name_exists(&n)) {
        overlay_name_release(&n);
        return -ENOENT;
    }
    const struct stat *vis = up ? &n.up_st : &n.low_st;
    if (is_dir && !S_ISDIR(vis->st_mode))
        r = -ENOTDIR;
    else if (!is_dir && S_ISDIR(vis->st_mode))
        r = -EISDIR;
    if (!r && is_dir)
        r = overlay_name_empty(fs, dir, name, &n);
    overlay_name_release(&n);
    if (r)
        return r;

    int pfd;
    bool owned;
    r = overlay_upper_dir_for(fs, dir, &pfd, &owned);
    if (r)
        return r;
    char path[PATH_MAX];
    enum ov_where where = overlay_path_of(fs, pfd, name, path, sizeof(path));
    if (up && is_dir)
        r = overlay_clear_whiteouts(pfd, name);
    if (!r && up && unlinkat(pfd, name, is_dir ? AT_REMOVEDIR : 0) < 0)
        r = -errno;
    /* The lower entry stays; a whiteout hides it.  (A crash between the
     * unlink and the mknod shows the lower entry again: never data loss.) */
    if (!r && n.low_exists && mknodat(pfd, name, S_IFCHR | 0, makedev(0, 0)) < 0)
        r = -errno;
    if (!r && where == OV_IN_UPPER)
        change_stream_note(fs->changes, CHANGE_DELETE | CHANGE_LOCAL, path, NULL, 0, 0);
    if (owned)
        close(pfd);
    return r;
}
