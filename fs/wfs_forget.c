/*
 * wfs_forget.c — see wfs_forget.h.  Same notifications as the watcher's
 * (fs/watcher.c), found by path instead of by file handle: the directory
 * is opened beneath SRC and mapped to its node id through the inode table.
 */
#include "wfs_forget.h"
#include "wfs_internal.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t nodeid_at(struct wfs *fs, int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) < 0)
        return 0;
    return inode_table_nodeid(fs->inodes, st.st_dev, st.st_ino);
}

void wfs_forget_path(struct wfs *fs, const char *rel)
{
    struct fuse_session *se = __atomic_load_n(&fs->se, __ATOMIC_ACQUIRE);
    if (!se || !rel || !rel[0])
        return;
    char parent[PATH_MAX];
    if (snprintf(parent, sizeof(parent), "%s", rel) >= (int)sizeof(parent))
        return;
    char *slash = strrchr(parent, '/');
    const char *name = slash ? slash + 1 : parent;
    if (slash)
        *slash = '\0';
    int dirfd = slash ? openat(fs->src_fd, parent, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                      : fs->src_fd;
    if (dirfd < 0)
        return; /* the directory is gone: its parent's entry was dropped too */
    uint64_t dir_id = nodeid_at(fs, dirfd, "");
    uint64_t obj_id = nodeid_at(fs, dirfd, name);
    if (dir_id) {
        fuse_lowlevel_notify_inval_entry(se, dir_id, name, strlen(name));
        fuse_lowlevel_notify_inval_inode(se, dir_id, 0, 0);
    }
    if (obj_id) /* changed in place (same inode): its pages and attributes */
        fuse_lowlevel_notify_inval_inode(se, obj_id, 0, 0);
    if (dirfd != fs->src_fd)
        close(dirfd);
}
