/*
 * ops_dir.c — directory listing: opendir, readdir, readdirplus, releasedir,
 * fsyncdir.
 *
 * Listings are stateless: no handle lives between requests.  That lets the
 * kernel skip OPENDIR and RELEASEDIR altogether (FUSE_CAP_NO_OPENDIR_SUPPORT:
 * our opendir answers ENOSYS once, and the kernel opens every directory
 * itself from then on, with its listing cache on), which saves two round
 * trips per directory a `find`, `git status` or `ls -R` opens.
 *
 * Each READDIR opens the backing directory, seeks to the offset the kernel
 * hands back and reads on.  Plain directories use the filesystem's own
 * cookies (d_off), which stay valid across opens.  A merged overlay
 * directory has no such cookies, so its entries are ordered by a hash of the
 * name and the hash is the cookie: a listing resumes after the last name it
 * returned however the directory changed meanwhile (ext4's htree does the
 * same).  readdirplus looks every entry up (one kernel reference each),
 * which saves the kernel a LOOKUP round trip per name.  The root's state dir
 * is never listed.
 */
#include "ops.h"
#include "overlay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

void wfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (wfs_of(req)->no_opendir) {
        fuse_reply_err(req, ENOSYS); /* once; the kernel stops asking */
        return;
    }
    /* An older kernel: a handle-less open with the same cache flags the
     * kernel would use.  Kept coherent by our own ops (the kernel drops the
     * cache when it changes a dir) and by the watcher for outside changes. */
    fi->fh = 0;
    fi->cache_readdir = 1;
    fi->keep_cache = 1;
    fuse_reply_open(req, fi);
}

/* One entry to hand to the kernel. */
struct dir_item {
    const char *name;
    ino_t ino;
    unsigned char type; /* DT_* */
    off_t next;         /* the cookie that resumes after this entry */
};

/* Fills the reply buffer; false once an entry did not fit (or failed). */
struct dir_reply {
    fuse_req_t req;
    fuse_ino_t ino;
    bool plus;
    char *buf;
    size_t size, used;
    int err;
};

static bool add_entry(struct dir_reply *r, const struct dir_item *it)
{
    struct wfs *fs = wfs_of(r->req);
    size_t n;
    if (r->plus) {
        struct fuse_entry_param e = {0};
        bool dots = strcmp(it->name, ".") == 0 || strcmp(it->name, "..") == 0;
        if (dots) {
            e.attr.st_ino = it->ino;
            e.attr.st_mode = (mode_t)it->type << 12;
        } else {
            int rc = wfs_do_lookup(fs, r->ino, it->name, &e);
            if (rc == -ENOENT)
                return true; /* vanished since it was listed: skip it */
            if (rc) {
                r->err = -rc;
                return false;
            }
        }
        n = fuse_add_direntry_plus(r->req, r->buf + r->used, r->size - r->used, it->name, &e,
                                   it->next);
        if (n > r->size - r->used) {
            if (!dots) /* the kernel will not get this entry: drop its ref */
                inode_table_unref(fs->inodes, wfs_inode_of(r->req, e.ino), 1);
            return false;
        }
    } else {
        struct stat st = {.st_ino = it->ino, .st_mode = (mode_t)it->type << 12};
        n = fuse_add_direntry(r->req, r->buf + r->used, r->size - r->used, it->name, &st,
                              it->next);
        if (n > r->size - r->used)
            return false;
    }
    r->used += n;
    return true;
}

/* A plain directory, from offset `off` (a d_off cookie; 0: the start). */
static void list_plain(struct dir_reply *r, struct wfs_inode *in, off_t off)
{
    int fd = openat(in->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dp = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dp) {
        r->err = errno;
        if (fd >= 0)
            close(fd);
        return;
    }
    if (off)
        seekdir(dp, off);
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(dp);
        if (!de) {
            r->err = errno; /* 0 at the end */
            break;
        }
        if (wfs_is_hidden(r->ino, de->d_name))
            continue;
        struct dir_item it = {de->d_name, de->d_ino, de->d_type, de->d_off};
        if (!add_entry(r, &it))
            break;
    }
    closedir(dp);
}

/* A merged overlay listing's cookie for a name: "." and ".." first, then
 * everything in name-hash order; never 0 (the start). */
static off_t merged_cookie(const char *name)
{
    if (strcmp(name, ".") == 0)
        return 1;
    if (strcmp(name, "..") == 0)
        return 2;
    return (off_t)(XXH3_64bits(name, strlen(name)) >> 2) + 3;
}

static int by_cookie(const void *a, const void *b)
{
    const struct dir_item *x = a, *y = b;
    if (x->next != y->next)
        return x->next < y->next ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* A merged overlay directory, from cookie `off`. */
static void list_merged(struct dir_reply *r, struct wfs_inode *in, off_t off)
{
    struct wfs *fs = wfs_of(r->req);
    struct ov_dirent *v = NULL;
    size_t n = 0;
    int rc = overlay_list(fs, in, &v, &n);
    if (rc) {
        r->err = -rc;
        return;
    }
    struct dir_item *items = n ? calloc(n, sizeof(*items)) : NULL;
    if (n && !items) {
        r->err = ENOMEM;
        overlay_list_free(v, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        items[i] = (struct dir_item){v[i].name, v[i].ino, v[i].type, merged_cookie(v[i].name)};
    if (n)
        qsort(items, n, sizeof(*items), by_cookie);
    for (size_t i = 0; i < n; i++) {
        if (items[i].next <= off || wfs_is_hidden(r->ino, items[i].name))
            continue;
        if (!add_entry(r, &items[i]))
            break;
    }
    free(items);
    overlay_list_free(v, n);
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
    struct wfs *fs = wfs_of(req);
    struct wfs_inode *in = wfs_inode_of(req, ino);
    struct dir_reply r = {.req = req, .ino = ino, .plus = plus, .size = size};
    if (!(r.buf = malloc(size))) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    if (fs->ov->has_local && overlay_needs_merge(fs, in))
        list_merged(&r, in, off);
    else
        list_plain(&r, in, off);
    /* An error after some entries is reported on the next call. */
    if (r.err && r.used == 0)
        fuse_reply_err(req, r.err);
    else
        fuse_reply_buf(req, r.buf, r.used);
    free(r.buf);
}

void wfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                 struct fuse_file_info *fi)
{
    readdir_common(req, ino, size, off, false);
}

void wfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    readdir_common(req, ino, size, off, true);
}

void wfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fuse_reply_err(req, 0); /* nothing to release: listings hold no state */
}

void wfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    int fd = openat(wfs_fd_of(req, ino), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int r = fd < 0 ? -1 : datasync ? fdatasync(fd) : fsync(fd);
    int err = r ? errno : 0;
    if (fd >= 0)
        close(fd);
    fuse_reply_err(req, err);
}
