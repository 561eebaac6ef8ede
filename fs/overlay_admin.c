/*
 * overlay_admin.c — see overlay_admin.h.
 *
 * Everything is fd-relative beneath SRC and SRC/.wsync/overlay, never
 * following a symlink, so a link planted in either layer cannot make reset
 * or promote touch anything outside.
 */
#include "overlay_admin.h"
#include "overlay.h"

#include "../sync/rules.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

struct ovadm {
    int src_fd;
    int upper_fd;
    struct rules *rules;
};

int ovadm_open(const char *src, struct ovadm **out, char *err, size_t errsize)
{
    struct ovadm *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->upper_fd = -1;
    a->src_fd = open(src, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (a->src_fd < 0) {
        int e = -errno;
        snprintf(err, errsize, "cannot open %s: %s", src, strerror(-e));
        ovadm_free(a);
        return e;
    }
    int r = rules_load(a->src_fd, src, &a->rules, err, errsize);
    if (r) {
        ovadm_free(a);
        return r;
    }
    a->upper_fd = openat(a->src_fd, WFS_STATE_DIR "/" OVERLAY_DIR,
                         O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (a->upper_fd < 0 && errno != ENOENT) {
        int e = -errno;
        snprintf(err, errsize, "cannot open %s/.wsync/overlay: %s", src, strerror(-e));
        ovadm_free(a);
        return e;
    }
    *out = a;
    return 0;
}

void ovadm_free(struct ovadm *a)
{
    if (!a)
        return;
    if (a->src_fd >= 0)
        close(a->src_fd);
    if (a->upper_fd >= 0)
        close(a->upper_fd);
    rules_free(a->rules);
    free(a);
}

bool ovadm_is_local(struct ovadm *a, const char *rel, bool is_dir)
{
    return *rel && rules_classify(a->rules, rel, is_dir) == RULE_LOCAL;
}

static int open_dir(int at, const char *name, DIR **dp)
{
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    *dp = fdopendir(fd);
    if (!*dp) {
        int e = -errno;
        close(fd);
        return e;
    }
    return 0;
}

static bool dots(const char *n)
{
    return n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2]));
}

static void join(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s%s%s", dir, *dir ? "/" : "", name);
}

/* Bytes held by the overlay object `name` in at (recursive for dirs). */
static uint64_t tree_bytes(int at, const char *name)
{
    struct stat st;
    if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    if (!S_ISDIR(st.st_mode))
        return S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    DIR *dp;
    if (open_dir(at, name, &dp))
        return 0;
    uint64_t sum = 0;
    struct dirent *de;
    while ((de = readdir(dp)))
        if (!dots(de->d_name))
            sum += tree_bytes(dirfd(dp), de->d_name);
    closedir(dp);
    return sum;
}

/* Open the parent dirs of rel beneath at (O_PATH); *base = last name. */
static int open_parent(int at, const char *rel, const char **base)
{
    const char *slash = strrchr(rel, '/');
    *base = slash ? slash + 1 : rel;
    if (!slash)
        return fcntl(at, F_DUPFD_CLOEXEC, 0);
    char dir[PATH_MAX];
    size_t n = (size_t)(slash - rel);
    if (n >= sizeof(dir))
        return -ENAMETOOLONG;
    memcpy(dir, rel, n);
    dir[n] = '\0';
    int fd = openat(at, dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static char state_of(int upfd, int lowfd, const char *name, const struct stat *ust)
{
    struct stat lst;
    if (overlay_is_whiteout(ust))
        return OVADM_DELETED;
    if (lowfd >= 0 && fstatat(lowfd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0)
        return OVADM_MODIFIED;
    return OVADM_ADDED;
}

/* Walk the upper dir `path` (fds for it in both layers, lowfd may be -1)
 * down to the local roots. */
static int ls_walk(struct ovadm *a, int upfd, int lowfd, const char *path, ovadm_fn fn, void *arg)
{
    DIR *dp;
    int r = open_dir(upfd, ".", &dp);
    if (r)
        return r;
    struct dirent *de;
    while (!r && (de = readdir(dp))) {
        if (dots(de->d_name))
            continue;
        char sub[PATH_MAX];
        join(sub, sizeof(sub), path, de->d_name);
        struct stat st;
        if (fstatat(dirfd(dp), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        bool is_dir = S_ISDIR(st.st_mode);
        if (overlay_is_whiteout(&st) ? (ovadm_is_local(a, sub, true) || ovadm_is_local(a, sub, false))
                                     : ovadm_is_local(a, sub, is_dir)) {
            fn(sub, state_of(upfd, lowfd, de->d_name, &st), tree_bytes(dirfd(dp), de->d_name),
               arg);
        } else if (is_dir) { /* a skeleton dir: the local roots are below */
            int nu = openat(dirfd(dp), de->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int nl = lowfd >= 0 ? openat(lowfd, de->d_name,
                                         O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                                : -1;
            if (nu >= 0)
                r = ls_walk(a, nu, nl, sub, fn, arg);
            if (nu >= 0)
                close(nu);
            if (nl >= 0)
                close(nl);
        }
    }
    closedir(dp);
    return r;
}

/* Is some ancestor of rel (or rel) local? The first one goes to *root. */
static bool local_root_of(struct ovadm *a, const char *rel, char *root, size_t size)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", rel);
    for (char *p = buf;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            bool is_local = ovadm_is_local(a, buf, true) || (c == '\0' && ovadm_is_local(a, buf, false));
            if (is_local) {
                snprintf(root, size, "%s", buf);
                return true;
            }
            if (!c)
                return false;
            *p = c;
        }
    }
}

int ovadm_ls(struct ovadm *a, const char *rel, ovadm_fn fn, void *arg)
{
    if (a->upper_fd < 0)
        return 0;
    char root[PATH_MAX];
    if (*rel && local_root_of(a, rel, root, sizeof(root))) {
        const char *base;
        int up = open_parent(a->upper_fd, rel, &base);
        if (up < 0)
            return up == -ENOENT ? 0 : up;
        struct stat st;
        if (fstatat(up, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            const char *b2;
            int low = open_parent(a->src_fd, rel, &b2);
            fn(rel, state_of(up, low, base, &st), tree_bytes(up, base), arg);
            if (low >= 0)
                close(low);
        }
        close(up);
        return 0;
    }
    int up = *rel ? openat(a->upper_fd, rel, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                  : fcntl(a->upper_fd, F_DUPFD_CLOEXEC, 0);
    if (up < 0)
        return errno == ENOENT ? 0 : -errno;
    int low = *rel ? openat(a->src_fd, rel, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                   : fcntl(a->src_fd, F_DUPFD_CLOEXEC, 0);
    int r = ls_walk(a, up, low, rel, fn, arg);
    close(up);
    if (low >= 0)
        close(low);
    return r;
}

/* Same content?  Both regular files of equal size. */
static bool same_content(int upfd, int lowfd, const char *name)
{
    int u = openat(upfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int l = openat(lowfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    bool same = u >= 0 && l >= 0;
    char b1[65536], b2[65536];
    while (same) {
        ssize_t n1 = read(u, b1, sizeof(b1)), n2 = read(l, b2, sizeof(b2));
        if (n1 != n2 || n1 < 0 || memcmp(b1, b2, (size_t)n1) != 0)
            same = false;
        if (n1 <= 0)
            break;
    }
    if (u >= 0)
        close(u);
    if (l >= 0)
        close(l);
    return same;
}

static bool same_link(int upfd, int lowfd, const char *name)
{
    char t1[PATH_MAX], t2[PATH_MAX];
    ssize_t n1 = readlinkat(upfd, name, t1, sizeof(t1));
    ssize_t n2 = readlinkat(lowfd, name, t2, sizeof(t2));
    return n1 >= 0 && n1 == n2 && memcmp(t1, t2, (size_t)n1) == 0;
}

static void report_all(int at, const char *name, const char *path, ovadm_fn fn, void *arg)
{
    struct stat st;
    if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return;
    fn(path, OVADM_ADDED, S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0, arg);
    DIR *dp;
    if (!S_ISDIR(st.st_mode) || open_dir(at, name, &dp))
        return;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (dots(de->d_name))
            continue;
        char sub[PATH_MAX];
        join(sub, sizeof(sub), path, de->d_name);
        report_all(dirfd(dp), de->d_name, sub, fn, arg);
    }
    closedir(dp);
}

/* Diff the upper entry `name` of upfd against the lower one in lowfd. */
static void diff_entry(int upfd, int lowfd, const char *name, const char *path, ovadm_fn fn,
                       void *arg)
{
    struct stat ust, lst;
    if (fstatat(upfd, name, &ust, AT_SYMLINK_NOFOLLOW) < 0)
        return;
    bool low = lowfd >= 0 && fstatat(lowfd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0;
    if (overlay_is_whiteout(&ust)) {
        if (low)
            fn(path, OVADM_DELETED, 0, arg);
        return;
    }
    if (!low || (ust.st_mode & S_IFMT) != (lst.st_mode & S_IFMT)) {
        report_all(upfd, name, path, fn, arg);
        return;
    }
    if (S_ISDIR(ust.st_mode)) {
        DIR *dp;
        if (open_dir(upfd, name, &dp))
            return;
        int nl = -1;
        char proc[WFS_PROC_PATH_MAX], v;
        wfs_proc_path(dirfd(dp), proc);
        if (getxattr(proc, OVERLAY_OPAQUE_XATTR, &v, 1) != 1) /* opaque: lower hidden */
            nl = openat(lowfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        else
            fn(path, OVADM_MODIFIED, 0, arg);
        struct dirent *de;
        while ((de = readdir(dp))) {
            if (dots(de->d_name))
                continue;
            char sub[PATH_MAX];
            join(sub, sizeof(sub), path, de->d_name);
            diff_entry(dirfd(dp), nl, de->d_name, sub, fn, arg);
        }
        closedir(dp);
        if (nl >= 0)
            close(nl);
        return;
    }
    bool same = (ust.st_mode & 07777) == (lst.st_mode & 07777) &&
                (S_ISLNK(ust.st_mode) ? same_link(upfd, lowfd, name)
                 : S_ISREG(ust.st_mode)
                     ? ust.st_size == lst.st_size && same_content(upfd, lowfd, name)
                     : ust.st_rdev == lst.st_rdev);
    if (!same)
        fn(path, OVADM_MODIFIED, S_ISREG(ust.st_mode) ? (uint64_t)ust.st_size : 0, arg);
}

int ovadm_diff(struct ovadm *a, const char *rel, ovadm_fn fn, void *arg)
{
    if (a->upper_fd < 0)
        return 0;
    if (!*rel) { /* every local root */
        DIR *dp;
        int r = open_dir(a->upper_fd, ".", &dp);
        if (r)
            return r;
        struct dirent *de;
        while ((de = readdir(dp)))
            if (!dots(de->d_name))
                r = ovadm_diff(a, de->d_name, fn, arg);
        closedir(dp);
        return r;
    }
    const char *base, *b2;
    int up = open_parent(a->upper_fd, rel, &base);
    if (up < 0)
        return up == -ENOENT ? 0 : up;
    int low = open_parent(a->src_fd, rel, &b2);
    char root[PATH_MAX];
    struct stat st;
    if (local_root_of(a, rel, root, sizeof(root)))
        diff_entry(up, low, base, rel, fn, arg);
    else if (fstatat(up, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
        /* a skeleton dir: diff the local roots below it */
        DIR *dp;
        if (!open_dir(up, base, &dp)) {
            struct dirent *de;
            while ((de = readdir(dp))) {
                if (dots(de->d_name))
                    continue;
                char sub[PATH_MAX];
                join(sub, sizeof(sub), rel, de->d_name);
                ovadm_diff(a, sub, fn, arg);
            }
            closedir(dp);
        }
    }
    close(up);
    if (low >= 0)
        close(low);
    return 0;
}

static int remove_tree(int at, const char *name)
{
    struct stat st;
    if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(at, name, 0) < 0 && errno != ENOENT ? -errno : 0;
    DIR *dp = NULL;
    int r = open_dir(at, name, &dp);
    struct dirent *de;
    while (!r && (de = readdir(dp)))
        if (!dots(de->d_name))
            r = remove_tree(dirfd(dp), de->d_name);
    if (dp)
        closedir(dp);
    if (!r && unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        r = -errno;
    return r;
}

int ovadm_reset(struct ovadm *a, const char *rel, char *err, size_t errsize)
{
    if (a->upper_fd < 0)
        return -ENOENT;
    int r = 0;
    if (!*rel) {
        DIR *dp = NULL;
        r = open_dir(a->upper_fd, ".", &dp);
        struct dirent *de;
        while (!r && (de = readdir(dp)))
            if (!dots(de->d_name))
                r = remove_tree(dirfd(dp), de->d_name);
        if (dp)
            closedir(dp);
    } else {
        const char *base;
        int up = open_parent(a->upper_fd, rel, &base);
        struct stat st;
        if (up < 0 || fstatat(up, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
            r = -ENOENT;
        else
            r = remove_tree(up, base);
        if (up >= 0)
            close(up);
    }
    if (r)
        snprintf(err, errsize, r == -ENOENT ? "the overlay holds nothing at '%s'"
                                            : "cannot reset '%s': %s",
                 rel, strerror(-r));
    return r;
}

/* Move the upper entry `name` of upfd onto the lower dir lowfd. */
static int promote_entry(int upfd, int lowfd, const char *name)
{
    struct stat ust, lst;
    if (fstatat(upfd, name, &ust, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    bool low = fstatat(lowfd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0;
    if (overlay_is_whiteout(&ust)) {
        int r = low ? remove_tree(lowfd, name) : 0;
        return r ? r : unlinkat(upfd, name, 0) < 0 ? -errno : 0;
    }
    char proc[WFS_PROC_PATH_MAX], v;
    bool opaque = false;
    if (S_ISDIR(ust.st_mode)) {
        int d = openat(upfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (d >= 0) {
            wfs_proc_path(d, proc);
            opaque = getxattr(proc, OVERLAY_OPAQUE_XATTR, &v, 1) == 1;
            if (opaque)
                removexattr(proc, OVERLAY_OPAQUE_XATTR);
            close(d);
        }
    }
    if (low && S_ISDIR(ust.st_mode) && S_ISDIR(lst.st_mode) && !opaque) {
        /* Merge: promote each entry, then drop the (now empty) upper dir. */
        DIR *dp;
        int r = open_dir(upfd, name, &dp);
        if (r)
            return r;
        int nl = openat(lowfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct dirent *de;
        while (!r && nl >= 0 && (de = readdir(dp)))
            if (!dots(de->d_name))
                r = promote_entry(dirfd(dp), nl, de->d_name);
        closedir(dp);
        if (nl >= 0)
            close(nl);
        if (!r && unlinkat(upfd, name, AT_REMOVEDIR) < 0)
            r = -errno;
        return r;
    }
    /* Replace: one rename (same filesystem), after clearing a lower dir. */
    if (low && S_ISDIR(lst.st_mode)) {
        int r = remove_tree(lowfd, name);
        if (r)
            return r;
    }
    return renameat(upfd, name, lowfd, name) < 0 ? -errno : 0;
}

/* mkdir -p of rel's parents in SRC, taking modes from the overlay's dirs. */
static int lower_parents(struct ovadm *a, const char *rel)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", rel);
    for (char *p = buf; (p = strchr(p, '/')); p++) {
        *p = '\0';
        struct stat st;
        if (fstatat(a->src_fd, buf, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (fstatat(a->upper_fd, buf, &st, AT_SYMLINK_NOFOLLOW) < 0)
                st.st_mode = 0755;
            if (mkdirat(a->src_fd, buf, st.st_mode & 07777) < 0 && errno != EEXIST)
                return -errno;
        } else if (!S_ISDIR(st.st_mode)) {
            return -ENOTDIR;
        }
        *p = '/';
    }
    return 0;
}

int ovadm_promote(struct ovadm *a, const char *rel, bool *still_local, char *err,
                  size_t errsize)
{
    char root[PATH_MAX];
    *still_local = *rel && local_root_of(a, rel, root, sizeof(root));
    const char *base, *b2;
    int up = a->upper_fd >= 0 && *rel ? open_parent(a->upper_fd, rel, &base) : -ENOENT;
    struct stat st;
    if (up < 0 || fstatat(up, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        snprintf(err, errsize, "the overlay holds nothing at '%s'", rel);
        if (up >= 0)
            close(up);
        return -ENOENT;
    }
    int r = lower_parents(a, rel);
    int low = r ? r : open_parent(a->src_fd, rel, &b2);
    if (low < 0)
        r = low;
    else
        r = promote_entry(up, low, base);
    if (r)
        snprintf(err, errsize, "cannot promote '%s': %s", rel, strerror(-r));
    close(up);
    if (low >= 0)
        close(low);
    return r;
}
