/*
 * wfs.c — lifecycle of the filesystem (open, mount, serve, stop) and the
 * small helpers every op family shares.
 */
#include "ops.h"
#include "bdi.h"
#include "caps_cache.h"
#include "fuse_io.h"
#include "fuse_loop.h"
#include "fuse_ring.h"
#include "overlay.h"
#include "passthrough.h"
#include "path_cache.h"
#include "watcher.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT 86400.0 /* exact invalidation keeps long timeouts correct */
#define UNWATCHED_TIMEOUT 1.0   /* without a watcher, outside edits show within 1 s */
#define WFS_READERS 2           /* threads reading /dev/fuse: fuse_loop.h */
#define WFS_POOL_THREADS 8      /* for FSYNC, big READ/WRITE...: fuse_loop.h */
#define WFS_RING_PER_QUEUE 2    /* ring threads per CPU: fuse_ring.h */
#define WFS_RING_PAGES 256       /* libfuse 3.14's max_pages; its max_write is as much */

static void set_err(char *err, size_t size, const char *fmt, const char *path, int e)
{
    if (err && size) {
        snprintf(err, size, fmt, path);
        size_t n = strlen(err);
        snprintf(err + n, size - n, ": %s", strerror(e));
    }
}

/* The inode table holds an O_PATH fd for every inode the kernel caches,
 * and with day-long timeouts that is every file looked up since the mount
 * (a node_modules is 100k of them).  So take all the fds we may: the soft
 * limit up to the hard one, and as root the hard one up to the kernel's
 * fs.nr_open.  Best effort; at the limit, lookups fail with EMFILE. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    unsigned long nr_open = 0; /* no limit may exceed it, not even "unlimited" */
    FILE *f = fopen("/proc/sys/fs/nr_open", "re");
    if (f) {
        if (fscanf(f, "%lu", &nr_open) != 1)
            nr_open = 0;
        fclose(f);
    }
    rlim_t soft = rl.rlim_max; /* what we may take without privilege */
    if (nr_open && (soft == RLIM_INFINITY || soft > (rlim_t)nr_open))
        soft = (rlim_t)nr_open;
    rlim_t want = geteuid() == 0 && nr_open ? (rlim_t)nr_open : soft;
    if (want < soft)
        want = soft;
    bool hard_up = rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max;
    struct rlimit up = {.rlim_cur = want, .rlim_max = hard_up ? want : rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &up) != 0 && hard_up) {
        /* not allowed to raise the hard limit (no CAP_SYS_RESOURCE) */
        up = (struct rlimit){.rlim_cur = soft, .rlim_max = rl.rlim_max};
        setrlimit(RLIMIT_NOFILE, &up);
    }
}

int wfs_open(const struct wfs_options *opt, struct change_stream *changes, struct wfs **out,
             char *err, size_t errsize)
{
    raise_fd_limit();
    struct wfs *fs = calloc(1, sizeof(*fs));
    if (!fs)
        return -ENOMEM;
    fs->opt = *opt;
    fs->changes = changes;
    fs->src_fd = fs->state_fd = -1;
    fs->src = strdup(opt->src);
    if (!fs->src) {
        free(fs);
        return -ENOMEM;
    }
    fs->src_len = strlen(fs->src);
    while (fs->src_len > 1 && fs->src[fs->src_len - 1] == '/')
        fs->src[--fs->src_len] = '\0';

    int e;
    struct stat st;
    fs->src_fd = open(fs->src, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fs->src_fd < 0 || fstat(fs->src_fd, &st) < 0) {
        e = errno;
        set_err(err, errsize, "cannot open source %s", fs->src, e);
        goto fail;
    }
    fs->owner_uid = st.st_uid;
    fs->owner_gid = st.st_gid;

    if (mkdirat(fs->src_fd, WFS_STATE_DIR, 0700) < 0 && errno != EEXIST) {
        e = errno;
        set_err(err, errsize, "cannot create state directory %s/" WFS_STATE_DIR, fs->src, e);
        goto fail;
    }
    fs->state_fd = openat(fs->src_fd, WFS_STATE_DIR, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fs->state_fd < 0) {
        e = errno == ENOTDIR || errno == ELOOP ? ENOTDIR : errno;
        set_err(err, errsize, "state path %s/" WFS_STATE_DIR " is not a directory", fs->src, e);
        goto fail;
    }

    int root_fd = dup(fs->src_fd);
    fs->inodes = root_fd >= 0 ? inode_table_new(root_fd, &st) : NULL;
    if (!fs->inodes) {
        e = ENOMEM;
        if (root_fd >= 0)
            close(root_fd);
        set_err(err, errsize, "inode table for %s", fs->src, e);
        goto fail;
    }
    int r = overlay_open(fs, err, errsize);
    if (r) {
        e = -r;
        goto fail;
    }
    fs->timeout = opt->cache_timeout >= 0 ? opt->cache_timeout : DEFAULT_TIMEOUT;
    fs->is_root = geteuid() == 0;
    *out = fs;
    return 0;

fail:
    wfs_close(fs);
    return -e;
}

/* fsname goes through libfuse's option parser: escape ',' and '\'. */
static char *mount_options(const struct wfs *fs)
{
    size_t cap = 2 * fs->src_len + 128;
    char *o = malloc(cap);
    if (!o)
        return NULL;
    size_t n = 0;
    n += (size_t)snprintf(o, cap, "fsname=");
    for (const char *p = fs->src; *p; p++) {
        if (*p == ',' || *p == '\\')
            o[n++] = '\\';
        o[n++] = *p;
    }
    snprintf(o + n, cap - n, ",subtype=wsync,default_permissions%s",
             fs->opt.allow_other ? ",allow_other" : "");
    return o;
}

/* After INIT (which can only lower it): a larger read-ahead window for cold
 * sequential reads (bdi.h).  Best effort: without root it stays 128 KiB. */
static void raise_read_ahead(void *arg)
{
    struct wfs *fs = arg;
    int r = bdi_set_read_ahead(fs->opt.mountpoint, BDI_READ_AHEAD_KB);
    if (r && r != -EACCES && r != -EROFS && r != -EPERM)
        fprintf(stderr, "wsync: cannot raise the read-ahead of %s: %s\n", fs->opt.mountpoint,
                strerror(-r));
}

/* FUSE over io_uring (fuse_ring.h), where the kernel has it and the
 * options allow.  Without it everything works through /dev/fuse. */
static void start_ring(struct wfs *fs)
{
    if (fs->opt.ring == WFS_RING_OFF)
        return;
    bool loud = fs->opt.ring == WFS_RING_ON;
    int on = fuse_ring_kernel_enabled();
    if (on == 0 && geteuid() == 0) {
        /* Harmless to other FUSE daemons: only one that asks gets a ring. */
        int e = fuse_ring_kernel_enable();
        if (e && loud)
            fprintf(stderr, "wsync: warning: cannot turn on FUSE over io_uring (%s): %s\n",
                    "/sys/module/fuse/parameters/enable_uring", strerror(-e));
        on = e == 0;
    }
    if (on <= 0) {
        if (loud)
            fprintf(stderr, "wsync: warning: %s; serving through /dev/fuse\n",
                    on == -ENOENT ? "this kernel has no FUSE over io_uring (Linux >= 6.14 has)"
                                  : "FUSE over io_uring is off in the kernel (enable_uring)");
        return;
    }
    size_t payload = WFS_RING_PAGES * (size_t)sysconf(_SC_PAGESIZE);
    fs->ring = fuse_ring_prepare(fs->se, WFS_RING_PER_QUEUE, payload);
    if (!fs->ring) {
        /* io_uring switched off for this machine (sysctl io_uring_disabled,
         * seccomp) is the admin's choice: say so only when asked. */
        if (loud || (errno != EPERM && errno != ENOSYS))
            fprintf(stderr, "wsync: warning: cannot set up FUSE over io_uring (%s); serving "
                            "through /dev/fuse\n",
                    strerror(errno));
        return;
    }
    fuse_io_want_ring(fs->ring);
}

/* Undo start_ring: the hooks forget the ring, its threads end. */
static void stop_ring(struct wfs *fs)
{
    fuse_io_want_ring(NULL);
    fuse_ring_stop(fs->ring);
    fs->ring = NULL;
}

int wfs_mount(struct wfs *fs, char *err, size_t errsize)
{
    char *o = mount_options(fs);
    if (!o)
        return -ENOMEM;
    char *argv[] = {"wsync", "-o", o, fs->opt.debug ? "-d" : NULL, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(fs->opt.debug ? 4 : 3, argv);
    fs->se = fuse_session_new(&args, &wfs_ops, sizeof(wfs_ops), fs);
    fuse_opt_free_args(&args);
    free(o);
    if (!fs->se) {
        set_err(err, errsize, "cannot create FUSE session for %s", fs->opt.mountpoint, EINVAL);
        return -EINVAL;
    }
    if (fuse_session_mount(fs->se, fs->opt.mountpoint) != 0) {
        int e = errno ? errno : EPERM;
        set_err(err, errsize, "cannot mount on %s (see messages above)", fs->opt.mountpoint, e);
        fuse_session_destroy(fs->se);
        fs->se = NULL;
        return -e;
    }
    /* Our own device I/O, to skip the kernel's GETXATTR before every write
     * (fuse_io.h).  Without it everything still works, one round trip slower. */
    fuse_io_want_passthrough(!fs->opt.no_passthrough && !fs->opt.writeback);
    if (fuse_io_install(fs->se, raise_read_ahead, fs) != 0)
        fprintf(stderr, "wsync: warning: cannot install FUSE I/O hooks; writes cost an extra "
                        "round trip\n");

    start_ring(fs);

    /* The watcher is what makes long cache timeouts correct; without it,
     * fall back to short ones rather than show stale data. */
    if (watcher_start(fs, &fs->watcher) != 0 && fs->opt.cache_timeout < 0) {
        fprintf(stderr, "wsync: warning: cannot watch %s for outside edits (%s); "
                        "caching for %.0f s only\n",
                fs->src, strerror(errno), UNWATCHED_TIMEOUT);
        fs->timeout = UNWATCHED_TIMEOUT;
    }
    return 0;
}

int wfs_run(struct wfs *fs, void (*on_ready)(void *arg), void *arg)
{
    fs->on_ready = on_ready;
    fs->on_ready_arg = arg;
    /* Two hot readers, slow requests to a pool: fuse_loop.h says why. */
    int ret = fuse_loop_run(fs->se, WFS_POOL_THREADS, WFS_READERS);
    stop_ring(fs); /* the mount is gone: the kernel has failed the ring's entries */
    watcher_stop(fs->watcher);
    fs->watcher = NULL;
    fuse_session_unmount(fs->se);
    return ret < 0 ? ret : 0;
}

bool wfs_sync_changes(struct wfs *fs, int timeout_ms)
{
    return watcher_sync(fs->watcher, timeout_ms);
}

void wfs_stop(struct wfs *fs)
{
    if (!fs->se)
        return;
    fuse_session_exit(fs->se);
    /* Workers sit in read(/dev/fuse); only the end of the mount wakes them.
     * A lazy unmount lets files still open inside finish normally. */
    if (umount2(fs->opt.mountpoint, MNT_DETACH) != 0 && errno != EINVAL)
        fprintf(stderr, "wsync: cannot unmount %s: %s\n", fs->opt.mountpoint, strerror(errno));
}

void wfs_close(struct wfs *fs)
{
    if (!fs)
        return;
    watcher_stop(fs->watcher);
    stop_ring(fs); /* if mounted but never served */
    if (fs->se)
        fuse_session_destroy(fs->se);
    overlay_close(fs->ov);
    inode_table_free(fs->inodes);
    if (fs->src_fd >= 0)
        close(fs->src_fd);
    if (fs->state_fd >= 0)
        close(fs->state_fd);
    free(fs->src);
    free(fs);
}

void wfs_get_stats(struct wfs *fs, struct wfs_stats *st)
{
    st->inodes = inode_table_size(fs->inodes);
    st->watching = fs->watcher != NULL;
    st->outside_events = atomic_load(&fs->outside_events);
    struct passthrough_stats pt;
    passthrough_get_stats(&pt);
    st->passthrough = pt.on && !fs->opt.no_passthrough;
    st->passthrough_opens = pt.opens;
    fuse_loop_get_stats(&st->fuse_pooled);
    st->ring = fuse_io_ring();
    st->ring_served = fuse_ring_served();
}

/* ---- helpers shared by the op families ---- */

void wfs_proc_path(int fd, char buf[WFS_PROC_PATH_MAX])
{
    snprintf(buf, WFS_PROC_PATH_MAX, "/proc/self/fd/%d", fd);
}

bool wfs_is_hidden(fuse_ino_t parent, const char *name)
{
    return parent == FUSE_ROOT_ID && strcmp(name, WFS_STATE_DIR) == 0;
}

int wfs_stat(struct wfs *fs, fuse_ino_t ino, int fd, struct stat *st)
{
    if (fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    struct wfs_inode *in =
        ino == FUSE_ROOT_ID ? inode_table_root(fs->inodes) : (struct wfs_inode *)(uintptr_t)ino;
    wfs_shown_nlink(fs, in, st);
    st->st_ino = in->shown_ino; /* the kernel's st_ino stays the same across a copy-up */
    return 0;
}

void wfs_shown_nlink(struct wfs *fs, struct wfs_inode *in, struct stat *st)
{
    if (!S_ISDIR(st->st_mode))
        return;
    nlink_t merged;
    if (fs->ov->has_local && overlay_needs_merge(fs, in) && overlay_dir_nlink(fs, in, &merged) == 0)
        st->st_nlink = merged;
    else if (in == inode_table_root(fs->inodes) && st->st_nlink > 2)
        st->st_nlink--;
}

int wfs_do_lookup(struct wfs *fs, fuse_ino_t parent, const char *name, struct fuse_entry_param *e)
{
    memset(e, 0, sizeof(*e));
    e->attr_timeout = fs->timeout;
    e->entry_timeout = fs->timeout;
    if (wfs_is_hidden(parent, name))
        return -ENOENT;

    struct wfs_inode *dir = parent == FUSE_ROOT_ID ? inode_table_root(fs->inodes)
                                                   : (struct wfs_inode *)(uintptr_t)parent;
    if (fs->ov->has_local || overlay_is_local(dir)) {
        int r = overlay_lookup(fs, dir, name, e);
        if (!r)
            wfs_shown_nlink(fs, wfs_inode_of_fs(fs, e->ino), &e->attr);
        return r;
    }
    int fd = openat(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    int used;
    struct wfs_inode *in = inode_table_ref(fs->inodes, fd, &e->attr, &used);
    if (!used)
        close(fd);
    if (!in)
        return -ENOMEM;
    e->ino = in == inode_table_root(fs->inodes) ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
    wfs_shown_nlink(fs, in, &e->attr);
    return 0;
}

void wfs_set_owner(struct wfs *fs, fuse_req_t req, int dirfd, const char *name, int fd)
{
    if (!fs->is_root)
        return; /* we can only give away what we own */
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    uid_t uid = fs->opt.keep_owner ? ctx->uid : fs->owner_uid;
    gid_t gid = fs->opt.keep_owner ? ctx->gid : fs->owner_gid;
    if (uid == 0 && gid == 0)
        return; /* created by us, as root: already right */
    struct stat pst;
    /* A setgid directory decides the group, as it would without us. */
    if (fstatat(dirfd, "", &pst, AT_EMPTY_PATH) == 0 && (pst.st_mode & S_ISGID))
        gid = (gid_t)-1;
    int r = fd >= 0 ? fchown(fd, uid, gid) : fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW);
    (void)r; /* best effort: the object exists either way */
}

bool wfs_relpath(struct wfs *fs, int fd, const char *name, char *buf, size_t size)
{
    char proc[WFS_PROC_PATH_MAX];
    char full[PATH_MAX];
    wfs_proc_path(fd, proc);
    ssize_t n = readlink(proc, full, sizeof(full) - 1);
    if (n < 0)
        return false;
    full[n] = '\0';
    if ((size_t)n < fs->src_len || memcmp(full, fs->src, fs->src_len) != 0 ||
        (full[fs->src_len] != '/' && full[fs->src_len] != '\0'))
        return false; /* outside SRC, or " (deleted)" after an unlink */
    struct stat st;
    if (n >= 10 && strcmp(full + n - 10, " (deleted)") == 0 &&
        fstatat(fd, "", &st, AT_EMPTY_PATH) == 0 && st.st_nlink == 0)
        return false; /* the name is the kernel's marker, not a real suffix */
    const char *rel = full + fs->src_len;
    if (*rel == '/')
        rel++;
    int w = name ? snprintf(buf, size, "%s%s%s", rel, *rel ? "/" : "", name)
                 : snprintf(buf, size, "%s", rel);
    return w >= 0 && (size_t)w < size;
}

void wfs_note(struct wfs *fs, uint32_t kind, int dirfd, const char *name, off_t off, off_t len)
{
    char path[PATH_MAX];
    enum ov_where w = overlay_path_of(fs, dirfd, name, path, sizeof(path));
    if (w != OV_NOWHERE)
        change_stream_note(fs->changes, kind | (w == OV_IN_UPPER ? CHANGE_LOCAL : 0), path, NULL,
                           off, len);
}

enum ov_where wfs_child_path(struct wfs *fs, struct wfs_inode *dir, int pfd, const char *name,
                             char *buf, size_t size)
{
    if (pfd != dir->fd || __atomic_load_n(&dir->layer, __ATOMIC_ACQUIRE) != 0)
        return overlay_path_of(fs, pfd, name, buf, size);
    char dpath[PATH_MAX];
    uint64_t gen = path_cache_dir_gen(fs);
    if (!path_cache_get(dir, gen, dpath, sizeof(dpath))) {
        if (overlay_path_of(fs, pfd, NULL, dpath, sizeof(dpath)) != OV_IN_SRC)
            return overlay_path_of(fs, pfd, name, buf, size);
        path_cache_put(dir, gen, dpath);
    }
    /* A mirrored dir is in SRC proper, never in the state dir (hidden). */
    int n = snprintf(buf, size, "%s%s%s", dpath, *dpath ? "/" : "", name);
    return n >= 0 && (size_t)n < size ? OV_IN_SRC : OV_NOWHERE;
}

void wfs_note_child(struct wfs *fs, uint32_t kind, struct wfs_inode *dir, int pfd,
                    const char *name)
{
    char path[PATH_MAX];
    enum ov_where w = wfs_child_path(fs, dir, pfd, name, path, sizeof(path));
    if (w != OV_NOWHERE)
        change_stream_note(fs->changes, kind | (w == OV_IN_UPPER ? CHANGE_LOCAL : 0), path, NULL,
                           0, 0);
}

void wfs_note_created(struct wfs *fs, struct wfs_inode *dir, int pfd, const char *name,
                      struct wfs_inode *in, bool made)
{
    uint64_t gen = path_cache_gen(fs);
    char path[PATH_MAX];
    enum ov_where w = wfs_child_path(fs, dir, pfd, name, path, sizeof(path));
    if (w != OV_NOWHERE)
        change_stream_note(fs->changes, CHANGE_CREATE | (w == OV_IN_UPPER ? CHANGE_LOCAL : 0), path,
                           NULL, 0, 0);
    bool mirrored = __atomic_load_n(&in->layer, __ATOMIC_ACQUIRE) == 0;
    if (w == OV_IN_SRC && mirrored)
        path_cache_put(in, gen, path);
    /* A file just made has no xattrs: the kernel's GETXATTR before its
     * first write, and that write, need no syscall (caps_cache.h). */
    if (made && mirrored)
        caps_mark_clear(in, caps_snapshot(in));
}

void wfs_note_inode(struct wfs *fs, struct wfs_inode *in, uint32_t kind, int fd, off_t off,
                    off_t len)
{
    if (__atomic_load_n(&in->layer, __ATOMIC_ACQUIRE) != 0) {
        wfs_note(fs, kind, fd, NULL, off, len);
        return;
    }
    char path[PATH_MAX];
    uint64_t gen = path_cache_gen(fs);
    if (path_cache_get(in, gen, path, sizeof(path))) {
        change_stream_note(fs->changes, kind, path, NULL, off, len);
        return;
    }
    enum ov_where w = overlay_path_of(fs, fd, NULL, path, sizeof(path));
    if (w == OV_NOWHERE)
        return;
    if (w == OV_IN_SRC)
        path_cache_put(in, gen, path);
    change_stream_note(fs->changes, kind | (w == OV_IN_UPPER ? CHANGE_LOCAL : 0), path, NULL, off,
                       len);
}

void wfs_init(void *userdata, struct fuse_conn_info *conn)
{
    struct wfs *fs = userdata;
    unsigned want = FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE | FUSE_CAP_SPLICE_READ |
                    FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_READDIRPLUS | FUSE_CAP_PARALLEL_DIROPS;
    if (fs->opt.writeback)
        want |= FUSE_CAP_WRITEBACK_CACHE;
    conn->want |= want & conn->capable;
    /* The kernel keeps the smaller of this and the bdi's read-ahead, which
     * raise_read_ahead() raises once INIT is done. */
    conn->max_readahead = BDI_READ_AHEAD_KB * 1024;
    /* Listings are stateless (ops_dir.c): no OPENDIR/RELEASEDIR round trips. */
    if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) {
        conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
        fs->no_opendir = true;
    }
    /* Locks stay in the kernel: one mount, so local locking is exact and
     * costs no round trip. */
    conn->want &= ~(unsigned)(FUSE_CAP_FLOCK_LOCKS | FUSE_CAP_POSIX_LOCKS);
    if (fs->on_ready)
        fs->on_ready(fs->on_ready_arg);
}
