/*
 * overlay.h — per-machine local paths: an upper layer SRC/.wsync/overlay
 * over the lower layer SRC, for paths the `[local]` rules name.
 *
 * Resolution (overlay.c): a name in a local directory is the upper entry if
 * there is one (a whiteout hides the name), else the lower entry.  Mirrored
 * directories that have local entries in the upper layer are "skeleton"
 * dirs: their upper counterpart only holds those entries.
 * Copy-up (overlay_copyup.c): the first change to a lower object creates
 * its upper copy (data, mode, owner, times, xattrs) and the parent chain.
 * Directories (overlay_dir.c): merged listings, whiteouts, opaque dirs,
 * removal.  Renames (overlay_rename.c).  docs/overlay.md has the design.
 *
 * Invariants: the lower layer is never written through a local path; a
 * kernel-held local inode is INODE_UPPER iff its upper object exists (a
 * copy-up adopts the held inodes of every dir it creates); mirrored paths
 * pay one rules match per lookup or create and nothing else.
 */
#ifndef WSYNC_OVERLAY_H
#define WSYNC_OVERLAY_H

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/types.h>
#include <sys/stat.h>

#include "wfs_internal.h"

/* Name of the upper layer inside SRC/.wsync. */
#define OVERLAY_DIR "overlay"
/* Marks an upper dir that hides the lower dir of the same name. */
#define OVERLAY_OPAQUE_XATTR "trusted.wsync.opaque"
/* Prefix of our own xattrs: never shown through the mount. */
#define OVERLAY_XATTR_PREFIX "trusted.wsync."

struct rules;
struct ov_skel;

#define OV_SKEL_BUCKETS 256

struct overlay {
    struct rules *rules;
    bool has_local;   /* any [local] pattern: else the overlay is idle */
    bool needs_path;  /* rules_local_needs_path() */
    int upper_root;   /* O_PATH on SRC/.wsync/overlay */
    pthread_mutex_t copy_lock;  /* one copy-up at a time */
    pthread_mutex_t skel_lock;
    struct ov_skel *skel[OV_SKEL_BUCKETS]; /* lower keys of skeleton dirs */
};

/* Where a path lives: outside SRC (or deleted), the lower layer (SRC), or
 * the upper layer (SRC/.wsync/overlay). */
enum ov_where { OV_NOWHERE = 0, OV_IN_SRC, OV_IN_UPPER };

/* Path of fd (plus "/name") relative to SRC as the mount shows it: an
 * upper object's path has the overlay prefix removed.  Other paths under
 * SRC/.wsync are OV_NOWHERE. */
enum ov_where overlay_path_of(struct wfs *fs, int fd, const char *name, char *buf, size_t size);

/* overlay_path_of(pfd, name) for the entry `name` made or removed in pfd
 * under dir (pfd: dir's own fd, or its upper dir).  For a mirrored dir the
 * path is built from the dir's cached one (path_cache.h, implemented in
 * wfs.c), with no syscall once cached. */
enum ov_where wfs_child_path(struct wfs *fs, struct wfs_inode *dir, int pfd, const char *name,
                             char *buf, size_t size);

/* Load SRC's rules, create SRC/.wsync/overlay, find skeleton dirs.
 * -errno with err filled (a bad rules file: -EINVAL). */
int overlay_open(struct wfs *fs, char *err, size_t errsize);
void overlay_close(struct overlay *ov);

/* A whiteout is a character device 0/0, as in overlayfs. */
static inline bool overlay_is_whiteout(const struct stat *st)
{
    return S_ISCHR(st->st_mode) && st->st_rdev == 0;
}

static inline bool overlay_is_local(const struct wfs_inode *in)
{
    return __atomic_load_n(&in->layer, __ATOMIC_ACQUIRE) & INODE_LOCAL;
}

/* Is this one of the overlay's own xattrs (never shown or set through the
 * mount)? */
static inline bool overlay_is_own_xattr(const char *name)
{
    return strncmp(name, OVERLAY_XATTR_PREFIX, sizeof(OVERLAY_XATTR_PREFIX) - 1) == 0;
}

/* Drop our own names from a listxattr result in place; the new length. */
ssize_t overlay_filter_xattr_list(char *list, size_t len);

/* ---- resolution (overlay.c) ---- */

/* Would `name` in dir be local (as a dir if is_dir)?  Rules only, no I/O
 * unless the rules need dir's path. */
bool overlay_child_is_local(struct wfs *fs, struct wfs_inode *dir, const char *name, bool is_dir);

/* As above when the type is not known yet: local as a dir or as a file. */
bool overlay_child_may_be_local(struct wfs *fs, struct wfs_inode *dir, const char *name);

/* Look up dir/name in the merged view, add a kernel reference, fill e.
 * Replaces wfs_do_lookup's plain path when the overlay is involved. */
int overlay_lookup(struct wfs *fs, struct wfs_inode *dir, const char *name,
                   struct fuse_entry_param *e);

/* The entry `name` of dir in both layers: up_fd and up_st the upper entry
 * (-1 if none; a whiteout is returned as is), low_st the lower one
 * (low_exists false if none).  Works for mirrored dirs too (upper = the
 * skeleton dir, if any). */
struct ov_name {
    int up_fd; /* O_PATH, or -1 */
    struct stat up_st;
    bool low_exists;
    struct stat low_st;
};
int overlay_resolve_name(struct wfs *fs, struct wfs_inode *dir, const char *name,
                         struct ov_name *out);
void overlay_name_release(struct ov_name *n);

/* Does the merged view show something at this name? */
static inline bool overlay_name_exists(const struct ov_name *n)
{
    return n->up_fd >= 0 ? !overlay_is_whiteout(&n->up_st) : n->low_exists;
}

/* The lower dir to merge below dir (borrowed fd, -1 if none). */
int overlay_lower_dir(struct wfs_inode *dir);

/* Open the upper counterpart of dir (O_PATH, caller closes): the dir
 * itself if upper, else SRC/.wsync/overlay/<dir's path> when it exists.
 * -ENOENT if there is none. */
int overlay_open_upper_dir(struct wfs *fs, struct wfs_inode *dir);

/* Is dir a mirrored dir with local entries in the upper layer? */
bool overlay_is_skeleton(struct wfs *fs, struct wfs_inode *dir);

/* ---- copy-up (overlay_copyup.c) ---- */

/* Make sure the local inode `in` lives in the upper layer (copying it up,
 * and its parent chain, if not).  `with_data` false: a file's data is not
 * copied (it is about to be truncated).  0 or -errno. */
int overlay_copy_up(struct wfs *fs, struct wfs_inode *in, bool with_data);

/* The upper dir to create a local entry of dir in: dir's own fd after a
 * copy-up if dir is local, else the skeleton dir for it (created as
 * needed).  *fd is O_PATH; *owned tells whether the caller must close it. */
int overlay_upper_dir_for(struct wfs *fs, struct wfs_inode *dir, int *fd, bool *owned);

/* Copy owner, mode, times and xattrs of `from` (O_PATH, attributes st) to
 * the new object `name` in dirfd, through to_fd when it is a real open fd
 * (files, dirs), else by name (symlinks, fifos, devices).  0 or -errno. */
int overlay_copy_attrs(int from, const struct stat *st, int dirfd, const char *name, int to_fd);

/* Make SRC/.wsync/overlay/<relpath> exist as a dir, copying each missing
 * dir's attributes from SRC, and return an O_PATH fd on it (caller closes).
 * Held inodes of the local dirs it creates become upper; the mirrored dirs
 * on the way become skeleton dirs.  Caller holds ov->copy_lock.  -errno. */
int overlay_upper_chain(struct wfs *fs, const char *relpath);

/* ---- directories (overlay_dir.c) ---- */

struct ov_dirent {
    char *name;
    ino_t ino;
    unsigned char type; /* DT_* */
};

/* Merged listing of dir ("." and ".." first).  0 or -errno. */
int overlay_list(struct wfs *fs, struct wfs_inode *dir, struct ov_dirent **out, size_t *n);
void overlay_list_free(struct ov_dirent *v, size_t n);

/* A merged dir's link count as a native dir would have it: 2 + its
 * visible subdirectories (the root's state dir not counted).  0 or -errno. */
int overlay_dir_nlink(struct wfs *fs, struct wfs_inode *dir, nlink_t *out);

/* Does dir need a merged listing (a local dir in the upper layer, or a
 * skeleton dir)?  Else a plain readdir of dir->fd is exact. */
bool overlay_needs_merge(struct wfs *fs, struct wfs_inode *dir);

/* Before making a new entry `name` in the upper dir upfd: drop a whiteout
 * there.  *lower_dir tells whether the name was a lower dir (a new dir
 * must then be opaque).  0 or -errno. */
int overlay_prepare_name(struct wfs *fs, struct wfs_inode *dir, int upfd, const char *name,
                         bool *lower_dir);

/* Mark the upper dir `name` in upfd opaque. */
int overlay_set_opaque(int upfd, const char *name);

/* unlink or rmdir (is_dir) a local name of dir, leaving a whiteout if the
 * lower layer has it.  Notes the change.  0 or -errno. */
int overlay_remove(struct wfs *fs, struct wfs_inode *dir, const char *name, bool is_dir);

/* The merged dir at n (resolved in dir) has no visible entry: 0,
 * -ENOTEMPTY or -errno. */
int overlay_name_empty(struct wfs *fs, struct wfs_inode *dir, const char *name,
                       const struct ov_name *n);

/* Does the upper dir fd carry the opaque mark? */
bool overlay_has_opaque(int fd);

/* Copy the lower entry `name` of dir (attributes lst) up into the upper dir
 * pfd, and move a held inode of it there.  0 or -errno. */
int overlay_copy_up_entry(struct wfs *fs, struct wfs_inode *dir, int pfd, const char *name,
                          const struct stat *lst);

/* Empty the upper dir `name` in upfd of whiteouts (before it is removed or
 * replaced); -ENOTEMPTY if it holds anything else. */
int overlay_clear_whiteouts(int upfd, const char *name);

/* ---- renames (overlay_rename.c) ---- */

/* rename(2) where either side may be local.  Notes the change.  0 done,
 * 1 for the plain rename in SRC (both mirrored), or -errno. */
int overlay_rename(struct wfs *fs, struct wfs_inode *dir, const char *name,
                   struct wfs_inode *newdir, const char *newname, unsigned int flags);

/* After the plain rename of mirrored `from` to `to` (paths relative to
 * SRC), move the skeleton dir of what moved along with it (swap them for
 * RENAME_EXCHANGE), so its local entries follow: pkg/__pycache__ moves
 * with pkg.  Best effort: on failure they stay, intact, at the old path. */
void overlay_follow_rename(struct wfs *fs, const char *from, const char *to, bool exchange);

/* rmdir of the mirrored dir `path`: its skeleton dir, if any, must show
 * nothing (0, else -ENOTEMPTY); without dry_run it is removed too. */
int overlay_rmdir_skeleton(struct wfs *fs, const char *path, bool dry_run);

#endif
