/*
 * overlay_control.c — `wsync overlay reset|promote` on a mounted SRC: the
 * daemon does the work (overlay_admin.c) and then drops exactly the kernel
 * caches that named the paths involved, so the mount shows the new state
 * at once.  Runs on the control thread, never on a FUSE worker, so the
 * notify calls cannot deadlock.
 */
#include "overlay.h"
#include "path_cache.h"
#include "overlay_admin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct paths {
    char **v;
    size_t n;
};

static void add_path(const char *path, char state, uint64_t bytes, void *arg)
{
    struct paths *p = arg;
    char **v = realloc(p->v, (p->n + 1) * sizeof(*v));
    if (!v)
        return;
    p->v = v;
    if ((v[p->n] = strdup(path)))
        p->n++;
}

/* Node id of the dir at rel in either layer, or 0 if the kernel holds none. */
static uint64_t dir_nodeid(struct wfs *fs, const char *rel)
{
    int roots[2] = {fs->src_fd, fs->ov->upper_root};
    for (int i = 0; i < 2; i++) {
        struct stat st;
        if (fstatat(roots[i], *rel ? rel : ".", &st, AT_SYMLINK_NOFOLLOW) == 0) {
            uint64_t id = inode_table_nodeid(fs->inodes, st.st_dev, st.st_ino);
            if (id)
                return id;
        }
    }
    return 0;
}

static void invalidate(struct wfs *fs, const char *rel)
{
    char parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", rel);
    char *slash = strrchr(parent, '/');
    const char *name = slash ? slash + 1 : rel;
    if (slash)
        *slash = '\0';
    else
        parent[0] = '\0';
    uint64_t id = dir_nodeid(fs, parent);
    if (!id || !fs->se)
        return;
    fuse_lowlevel_notify_inval_entry(fs->se, id, name, strlen(name));
    fuse_lowlevel_notify_inval_inode(fs->se, id, 0, 0);
}

int wfs_overlay_apply(struct wfs *fs, const char *op, const char *rel, char *msg, size_t size)
{
    struct ovadm *a;
    int r = ovadm_open(fs->src, &a, msg, size);
    if (r)
        return r;
    struct paths p = {0};
    if (*rel)
        add_path(rel, 0, 0, &p);
    else
        ovadm_ls(a, "", add_path, &p);
    bool still_local = false;
    path_cache_bump(fs); /* objects move between the layers (path_cache.h) */
    if (strcmp(op, "reset") == 0)
        r = ovadm_reset(a, rel, msg, size);
    else if (strcmp(op, "promote") == 0)
        r = ovadm_promote(a, rel, &still_local, msg, size);
    else {
        snprintf(msg, size, "unknown overlay operation '%s'", op);
        r = -EINVAL;
    }
    path_cache_bump(fs);
    for (size_t i = 0; i < p.n; i++) {
        if (!r)
            invalidate(fs, p.v[i]);
        free(p.v[i]);
    }
    free(p.v);
    if (!r && strcmp(op, "promote") == 0) {
        /* Our own writes to SRC are not seen by the watcher: tell the
         * indexer (it leaves the path out if the rules still call it local). */
        change_stream_note(fs->changes, CHANGE_RENAME_TO, rel, NULL, 0, 0);
        snprintf(msg, size, "%s", still_local ? "still-local" : "");
    } else if (!r) {
        msg[0] = '\0';
    }
    ovadm_free(a);
    return r;
}
