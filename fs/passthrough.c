/*
 * passthrough.c — see passthrough.h.  Handles are found by their fd (our
 * fi->fh): a table indexed by fd holds what a note needs.  One lock guards
 * the table and the inodes' open counts; it is held across the
 * BACKING_OPEN ioctl so two first opens of one inode cannot both register.
 */
#include "passthrough.h"
#include "fuse_io.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct handle {
    struct wfs_inode *in; /* NULL: slot free */
    bool passed;          /* passed through (else plain) */
    bool writable;
    bool clears_privs;     /* opened by a non-root user: its writes clear suid/sgid */
    gid_t gid;             /* the opener's group, for clearing sgid */
    struct timespec ctime; /* as of the last note (or the open) */
    off_t size;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct handle *handles; /* indexed by fd */
static size_t nhandles;
static bool refused; /* the kernel said no once: plain from now on */
static unsigned long long opens;

static struct handle *slot(int fd)
{
    if (fd < 0)
        return NULL;
    if ((size_t)fd >= nhandles) {
        size_t n = nhandles ? nhandles : 256;
        while (n <= (size_t)fd)
            n *= 2;
        struct handle *h = realloc(handles, n * sizeof(*h));
        if (!h)
            return NULL;
        memset(h + nhandles, 0, (n - nhandles) * sizeof(*h));
        handles = h;
        nhandles = n;
    }
    return &handles[fd];
}

static bool eligible(struct wfs *fs, struct wfs_inode *in)
{
    return !fs->opt.no_passthrough && !refused && fuse_io_passthrough() && S_ISREG(in->type) &&
           __atomic_load_n(&in->layer, __ATOMIC_ACQUIRE) == 0;
}

/* Under lock: the inode's backing id for one more handle, or 0.
 *
 * The first handle picks the mode.  Plain for a read-only open of a small
 * file: a few READs at most, or none from the page cache we keep across
 * opens (keep_cache), while passthrough costs two ioctls and a backing
 * file per open (measured: warm `cat` of 3000 2 KB files took the daemon
 * twice the CPU).  Plain for a writer of a file already big (an in-place
 * edit: a database, a log appended to, a 1-byte fix in a big asset), so its
 * WRITEs bring the ranges that let the indexer re-chunk only what changed:
 * passed through, a 28-byte write re-read 64 MiB (test_index).  Plain for
 * a non-root writer of a suid/sgid file: its writes must clear those bits,
 * and passed through they would not (the kernel writes the backing file
 * with the daemon's credentials, which keep them, and leaves the clearing
 * to us: FUSE_HANDLE_KILLPRIV_V2).  File capabilities need nothing: the
 * backing fs drops them on any write.
 * A later handle follows the mode; a writer that must clear suid/sgid on
 * an inode already passed through clears them now, at open: early, never
 * late. */
static int take_backing(struct wfs *fs, struct wfs_inode *in, int fd, const struct stat *st,
                        bool writable, bool clears, gid_t gid)
{
    if (in->plain_opens > 0)
        return 0;
    if (in->backing_opens > 0) {
        if (clears && fuse_io_drop_suidgid(fd, gid))
            fuse_lowlevel_notify_inval_inode(fs->se, (fuse_ino_t)(uintptr_t)in, -1, 0);
        return in->backing_id;
    }
    if (!eligible(fs, in) || !st || (!writable && st->st_size < PASSTHROUGH_READ_MIN_BYTES) ||
        (writable && st->st_size >= PASSTHROUGH_EDIT_MIN_BYTES) ||
        (clears && (st->st_mode & (S_ISUID | S_ISGID))))
        return 0;
    int id = fuse_io_backing_open(fs->se, fd);
    if (id > 0)
        return id;
    if (id == -EPERM || id == -ENOTTY || id == -EINVAL || id == -EOPNOTSUPP) {
        refused = true;
        fprintf(stderr,
                "wsync: kernel passthrough refused (%s); file I/O goes through the "
                "daemon\n",
                strerror(-id));
    }
    return 0; /* -ELOOP (stacked SRC), -EMFILE...: this file only */
}

int passthrough_open(struct wfs *fs, struct wfs_inode *in, int fd, int flags, uid_t uid, gid_t gid)
{
    struct stat st;
    bool writable = (flags & O_ACCMODE) != O_RDONLY;
    bool clears = writable && uid != 0;
    /* After the open: the ctime to compare with at close (an O_TRUNC open
     * is noted by the caller itself). */
    bool stat_ok = fstat(fd, &st) == 0;
    pthread_mutex_lock(&lock);
    struct handle *h = slot(fd);
    if (!h && !refused) {
        /* Out of memory: this handle goes untracked, so its inode's mode
         * is unknown from now on; stop passing anything through. */
        refused = true;
        fprintf(stderr, "wsync: out of memory: kernel passthrough off for this mount\n");
    }
    int id = h ? take_backing(fs, in, fd, stat_ok ? &st : NULL, writable, clears, gid) : 0;
    if (h) {
        *h = (struct handle){.in = in,
                             .passed = id > 0,
                             .writable = writable,
                             .clears_privs = clears,
                             .gid = gid,
                             .size = -1};
        if (id && writable && stat_ok) { /* else the first note fires */
            h->ctime = st.st_ctim;
            h->size = st.st_size;
        }
    }
    if (id) {
        in->backing_id = id;
        in->backing_opens++;
        opens++;
    } else {
        in->plain_opens++;
    }
    pthread_mutex_unlock(&lock);
    return id;
}

/* Under lock: has the file of handle h changed since its last note?
 * Updates the stamp so the next call compares with now. */
static bool changed(struct handle *h, int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return true; /* cannot tell: say yes, a spurious event is harmless */
    bool moved = st.st_ctim.tv_sec != h->ctime.tv_sec || st.st_ctim.tv_nsec != h->ctime.tv_nsec ||
                 st.st_size != h->size;
    h->ctime = st.st_ctim;
    h->size = st.st_size;
    return moved;
}

void passthrough_note(struct wfs *fs, int fd)
{
    struct wfs_inode *in = NULL;
    off_t size = 0;
    bool clears = false;
    gid_t gid = 0;
    pthread_mutex_lock(&lock);
    struct handle *h = fd >= 0 && (size_t)fd < nhandles ? &handles[fd] : NULL;
    if (h && h->in && h->passed && h->writable && changed(h, fd)) {
        in = h->in;
        size = h->size;
        clears = h->clears_privs;
        gid = h->gid;
    }
    pthread_mutex_unlock(&lock);
    if (!in)
        return;
    /* suid/sgid the file gained while this handle was open (a chmod u+s
     * by someone else): cleared now, as its writes would have. */
    if (clears && fuse_io_drop_suidgid(fd, gid))
        fuse_lowlevel_notify_inval_inode(fs->se, (fuse_ino_t)(uintptr_t)in, -1, 0);
    /* The whole file: the kernel did not tell us which bytes. */
    wfs_note_inode(fs, in, CHANGE_WRITE, fd, 0, size);
}

void passthrough_release(struct wfs *fs, int fd)
{
    passthrough_note(fs, fd);
    pthread_mutex_lock(&lock);
    struct handle *h = fd >= 0 && (size_t)fd < nhandles ? &handles[fd] : NULL;
    if (h && h->in) {
        struct wfs_inode *in = h->in;
        if (h->passed) {
            if (--in->backing_opens == 0) {
                fuse_io_backing_close(fs->se, in->backing_id);
                in->backing_id = 0;
                struct stat st;
                in->closed_ctime = fstat(fd, &st) == 0 ? st.st_ctim : (struct timespec){0};
            }
        } else {
            in->plain_opens--;
        }
        memset(h, 0, sizeof(*h));
    }
    pthread_mutex_unlock(&lock);
}

bool passthrough_wrote(struct wfs_inode *in, int fd)
{
    struct stat st;
    pthread_mutex_lock(&lock);
    bool wrote = in->backing_opens > 0 ||
                 ((in->closed_ctime.tv_sec || in->closed_ctime.tv_nsec) && fstat(fd, &st) == 0 &&
                  st.st_ctim.tv_sec == in->closed_ctime.tv_sec &&
                  st.st_ctim.tv_nsec == in->closed_ctime.tv_nsec);
    pthread_mutex_unlock(&lock);
    return wrote;
}

bool passthrough_changed_after_close(struct wfs_inode *in, int fd)
{
    struct stat st;
    bool changed = false;
    pthread_mutex_lock(&lock);
    if (in->backing_opens == 0 && (in->closed_ctime.tv_sec || in->closed_ctime.tv_nsec) &&
        fstat(fd, &st) == 0 &&
        (st.st_ctim.tv_sec != in->closed_ctime.tv_sec ||
         st.st_ctim.tv_nsec != in->closed_ctime.tv_nsec)) {
        in->closed_ctime = st.st_ctim;
        changed = true;
    }
    pthread_mutex_unlock(&lock);
    return changed;
}

void passthrough_get_stats(struct passthrough_stats *st)
{
    pthread_mutex_lock(&lock);
    st->on = fuse_io_passthrough() && !refused;
    st->opens = opens;
    pthread_mutex_unlock(&lock);
}
