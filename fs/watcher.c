/*
 * watcher.c — fanotify-based watch of SRC for outside edits.
 *
 * Each event names a directory (by file handle) and an entry name, and for
 * modify/attrib events the object itself.  We map handles to our inodes via
 * open_by_handle_at() + (dev, ino), then ask the kernel to drop exactly the
 * stale dentry, attributes or pages.  Events caused by our own process (the
 * FUSE ops writing SRC) are skipped: the kernel already knows about them.
 *
 * Invariant: this thread never serves FUSE requests, so the notify calls,
 * which may wait on a FUSE inode lock, cannot deadlock the daemon.
 */
#include "watcher.h"
#include "deadline.h"
#include "passthrough.h"
#include "path_cache.h"
#include "wfs_internal.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <unistd.h>

struct watcher {
    struct wfs *fs;
    int fan_fd;
    int handle_root; /* O_RDONLY on SRC: open_by_handle_at refuses O_PATH fds */
    int stop_pipe[2];
    int kick_pipe[2]; /* watcher_sync: read every event queued so far */
    pthread_mutex_t lock;
    pthread_cond_t synced;
    uint64_t sync_asked, sync_done; /* under lock */
    int lag_ms; /* WSYNC_WATCH_LAG_MS: a test hook, a watcher far behind */
    pid_t self;
    pthread_t thread;
};

#define WATCH_MASK                                                                            \
    (FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_MODIFY | FAN_ATTRIB |      \
     FAN_CLOSE_WRITE | FAN_ONDIR)

/* How long to let our own events accumulate before reading again. */
#define OWN_EVENTS_PAUSE_MS 2

/* A file handle copied out of the event buffer: records there are only
 * 4-byte aligned, and open_by_handle_at wants a real struct. */
struct handle_buf {
    struct file_handle fh;
    unsigned char bytes[MAX_HANDLE_SZ];
};

/* What one event tells us, decoded from its info records. */
struct fan_event {
    uint64_t mask;
    struct file_handle *dir; /* parent directory, with `name` in it; NULL if absent */
    const char *name;
    struct file_handle *obj; /* the object itself, if reported */
    struct handle_buf dir_buf, obj_buf;
};

/* Copy the handle at p (within [p, end)) into out; false if malformed. */
static bool copy_handle(const char *p, const char *end, struct handle_buf *out,
                        const char **after)
{
    struct file_handle h;
    if (p + sizeof(h) > end)
        return false;
    memcpy(&h, p, sizeof(h));
    if (h.handle_bytes > MAX_HANDLE_SZ || p + sizeof(h) + h.handle_bytes > end)
        return false;
    memcpy(out, p, sizeof(h) + h.handle_bytes);
    *after = p + sizeof(h) + h.handle_bytes;
    return true;
}

static void decode(const char *ev_start, const struct fanotify_event_metadata *m,
                   struct fan_event *ev)
{
    ev->mask = m->mask;
    ev->dir = ev->obj = NULL;
    ev->name = NULL;
    const char *p = ev_start + m->metadata_len;
    const char *end = ev_start + m->event_len;
    struct fanotify_event_info_header h;
    while (p + sizeof(h) <= end) {
        memcpy(&h, p, sizeof(h));
        if (h.len == 0 || p + h.len > end)
            break;
        const char *rec_end = p + h.len;
        const char *fh = p + offsetof(struct fanotify_event_info_fid, handle);
        const char *after;
        if ((h.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME ||
             h.info_type == FAN_EVENT_INFO_TYPE_DFID) &&
            copy_handle(fh, rec_end, &ev->dir_buf, &after)) {
            ev->dir = &ev->dir_buf.fh;
            if (h.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME && after < rec_end &&
                memchr(after, '\0', (size_t)(rec_end - after)))
                ev->name = after;
        } else if (h.info_type == FAN_EVENT_INFO_TYPE_FID &&
                   copy_handle(fh, rec_end, &ev->obj_buf, &after)) {
            ev->obj = &ev->obj_buf.fh;
        }
        p = rec_end;
    }
}

/* The inode behind a handle, held (inode_table_hold), or NULL if the
 * kernel holds none. */
static struct wfs_inode *handle_inode(struct watcher *w, struct file_handle *fh, int *fd_out,
                                      uint64_t *id)
{
    struct wfs *fs = w->fs;
    *fd_out = -1;
    *id = 0;
    if (!fh)
        return NULL;
    int fd = open_by_handle_at(w->handle_root, fh, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return NULL;
    }
    *fd_out = fd;
    return inode_table_hold(fs->inodes, st.st_dev, st.st_ino, id);
}

/* Node id of the object behind a handle, or 0 if the kernel holds none. */
static uint64_t handle_nodeid(struct watcher *w, struct file_handle *fh, int *fd_out)
{
    struct wfs *fs = w->fs;
    *fd_out = -1;
    if (!fh)
        return 0;
    int fd = open_by_handle_at(w->handle_root, fh, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return 0; /* gone already (ESTALE): nothing cached can be reached */
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return 0;
    }
    *fd_out = fd;
    return inode_table_nodeid(fs->inodes, st.st_dev, st.st_ino);
}

static bool is_state_path(const char *rel)
{
    size_t n = strlen(WFS_STATE_DIR);
    return strncmp(rel, WFS_STATE_DIR, n) == 0 && (rel[n] == '\0' || rel[n] == '/');
}

/* Handle one event not caused by the daemon.  False if it was the mount's
 * own write after all (passed through by the kernel, below). */
static bool handle_event(struct watcher *w, const struct fan_event *ev)
{
    struct wfs *fs = w->fs;
    int dir_fd;
    uint64_t dir_id = handle_nodeid(w, ev->dir, &dir_fd);
    char path[PATH_MAX];
    bool in_src = dir_fd >= 0 && ev->name &&
                  wfs_relpath(fs, dir_fd, ev->name, path, sizeof(path)) && !is_state_path(path);
    if (!in_src) {
        if (dir_fd >= 0)
            close(dir_fd);
        return true; /* elsewhere on the same filesystem */
    }
    /* A file open through the mount with kernel passthrough is written by
     * the kernel in the writer's name, not ours: its writes land here.
     * They are the mount's own writes (fs/passthrough.h), noted as such:
     * no CHANGE_OUTSIDE, which would keep a big file out of the hold and
     * count as an outside edit.  The kernel keeps its size; attributes
     * and pages are still dropped, in case a real outside writer is mixed
     * in.  (The event may be read after the file's last close:
     * passthrough_wrote tells by the file's ctime.) */
    int obj_fd = -1;
    uint64_t obj_id = 0;
    struct wfs_inode *obj = NULL; /* held until this event is handled */
    if (ev->mask & (FAN_MODIFY | FAN_ATTRIB | FAN_CLOSE_WRITE))
        obj = handle_inode(w, ev->obj, &obj_fd, &obj_id);
    /* A close for writing is watched for one case only: a shared mapping
     * of a passed-through file outlives its fd, writes SRC's file with no
     * event at all, and its end closes the kernel's backing file. */
    if ((ev->mask & WATCH_MASK & ~FAN_ONDIR) == FAN_CLOSE_WRITE) {
        bool changed = obj_id && passthrough_changed_after_close(obj, obj_fd);
        inode_table_unref(fs->inodes, obj, 1);
        if (changed) {
            fuse_lowlevel_notify_inval_inode(fs->se, obj_id, 0, 0);
            change_stream_note(fs->changes, CHANGE_WRITE, path, NULL, 0, 0);
        }
        if (obj_fd >= 0)
            close(obj_fd);
        close(dir_fd);
        return false;
    }
    bool own = obj_id && (ev->mask & WATCH_MASK & ~(FAN_ONDIR | FAN_CLOSE_WRITE)) == FAN_MODIFY &&
               passthrough_wrote(obj, obj_fd);
    inode_table_unref(fs->inodes, obj, 1); /* obj_id stays a valid name for the kernel's */
    if (own) {
        close(obj_fd);
        close(dir_fd);
        /* pages too: an empty range if the inode is passed through, and
         * right if a plain open has cached some since (a late event) */
        fuse_lowlevel_notify_inval_inode(fs->se, obj_id, 0, 0);
        change_stream_note(fs->changes, CHANGE_WRITE, path, NULL, 0, 0);
        return false;
    }
    atomic_fetch_add(&fs->outside_events, 1);
    bool is_dir = ev->mask & FAN_ONDIR;
    uint32_t kind = 0;

    if (ev->mask & (FAN_CREATE | FAN_MOVED_TO))
        kind |= ev->mask & FAN_MOVED_TO ? CHANGE_RENAME_TO : is_dir ? CHANGE_MKDIR : CHANGE_CREATE;
    if (ev->mask & (FAN_DELETE | FAN_MOVED_FROM))
        kind |= ev->mask & FAN_MOVED_FROM ? CHANGE_RENAME_FROM : CHANGE_DELETE;
    if (kind & (CHANGE_DELETE | CHANGE_RENAME_FROM | CHANGE_RENAME_TO))
        path_cache_bump(fs); /* a moved dir moves every path below it */
    if (kind && dir_id) {
        /* The name changed: drop the (possibly negative) dentry, and the
         * directory's attributes and cached listing. */
        fuse_lowlevel_notify_inval_entry(fs->se, dir_id, ev->name, strlen(ev->name));
        fuse_lowlevel_notify_inval_inode(fs->se, dir_id, 0, 0);
    }
    if (ev->mask & (FAN_MODIFY | FAN_ATTRIB)) {
        struct stat st;
        /* An xattr or mode set outside may have given it capabilities. */
        if (obj_id && (ev->mask & FAN_ATTRIB) && fstat(obj_fd, &st) == 0)
            inode_table_forget_privs(fs->inodes, st.st_dev, st.st_ino);
        if (obj_fd >= 0)
            close(obj_fd);
        if (obj_id)
            fuse_lowlevel_notify_inval_inode(fs->se, obj_id, ev->mask & FAN_MODIFY ? 0 : -1, 0);
        kind |= ev->mask & FAN_MODIFY ? CHANGE_WRITE : CHANGE_ATTR;
    }
    close(dir_fd);
    if (kind)
        change_stream_note(fs->changes, kind | CHANGE_OUTSIDE, path, NULL, 0, 0);
    return true;
}

/* Read one buffer of events and handle them.  Returns read()'s result;
 * *foreign is set if any event was not the mount's own. */
static ssize_t read_events(struct watcher *w, char *buf, size_t size, bool *foreign)
{
    ssize_t n = read(w->fan_fd, buf, size);
    if (n <= 0)
        return n;
    struct fan_event ev;
    /* Events are packed at 4-byte alignment: copy each header out. */
    struct fanotify_event_metadata m;
    for (const char *p = buf; p + sizeof(m) <= buf + n; p += m.event_len) {
        memcpy(&m, p, sizeof(m));
        if (m.vers != FANOTIFY_METADATA_VERSION || m.event_len < sizeof(m) ||
            p + m.event_len > buf + n)
            break;
        if (m.mask & FAN_Q_OVERFLOW) {
            /* Lost events: we cannot know what changed.  Consumers rescan. */
            change_stream_request_rescan(w->fs->changes);
            continue;
        }
        if (m.pid == w->self)
            continue;
        decode(p, &m, &ev);
        *foreign |= handle_event(w, &ev);
    }
    return n;
}

/* A watcher_sync asked: the ticket to answer once the queue is empty. */
static uint64_t take_kick(struct watcher *w)
{
    char drain[64];
    while (read(w->kick_pipe[0], drain, sizeof(drain)) > 0)
        ;
    pthread_mutex_lock(&w->lock);
    uint64_t ticket = w->sync_asked;
    pthread_mutex_unlock(&w->lock);
    return ticket;
}

static void *watcher_main(void *arg)
{
    pthread_setname_np(pthread_self(), "wsync-watch"); /* for top -H and perf */
    struct watcher *w = arg;
    char buf[64 * 1024];
    struct pollfd pfd[3] = {{.fd = w->fan_fd, .events = POLLIN},
                            {.fd = w->stop_pipe[0], .events = POLLIN},
                            {.fd = w->kick_pipe[0], .events = POLLIN}};
    for (;;) {
        if (poll(pfd, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[1].revents)
            break;
        if (w->lag_ms > 0 && !pfd[2].revents && poll(&pfd[1], 2, w->lag_ms) > 0 &&
            pfd[1].revents)
            break;
        uint64_t ticket = pfd[2].revents ? take_kick(w) : 0;
        bool foreign = false;
        /* Once a sync is asked, read until the queue is empty (the fd is
         * non-blocking): every event queued before the ask is handled. */
        while (read_events(w, buf, sizeof(buf), &foreign) > 0 && ticket)
            ;
        if (ticket) {
            pthread_mutex_lock(&w->lock);
            w->sync_done = ticket;
            pthread_cond_broadcast(&w->synced);
            pthread_mutex_unlock(&w->lock);
        }
        /* A buffer of nothing but our own events means the FUSE threads are
         * busy writing SRC: each of their writes queues one.  Waking for
         * every one of them costs a context switch per FUSE op, so let them
         * pile up for a moment and read them in one go.  An outside edit
         * arriving meanwhile waits at most OWN_EVENTS_PAUSE_MS; a sync ask
         * ends the pause.  Writes passed through by the kernel count as
         * ours: the writer's events for one file merge in the queue
         * meanwhile (same pid, same object), one event per pause instead
         * of one per write(2). */
        if (!foreign && poll(&pfd[1], 2, OWN_EVENTS_PAUSE_MS) > 0 && pfd[1].revents)
            break;
    }
    return NULL;
}

bool watcher_sync(struct watcher *w, int timeout_ms)
{
    if (!w)
        return true;
    pthread_mutex_lock(&w->lock);
    uint64_t ticket = ++w->sync_asked;
    pthread_mutex_unlock(&w->lock);
    ssize_t r = write(w->kick_pipe[1], "k", 1); /* full pipe: a kick is pending anyway */
    (void)r;
    struct timespec dl = deadline_in_ms(timeout_ms);
    pthread_mutex_lock(&w->lock);
    int e = 0;
    while (w->sync_done < ticket && e != ETIMEDOUT)
        e = pthread_cond_timedwait(&w->synced, &w->lock, &dl);
    bool done = w->sync_done >= ticket;
    pthread_mutex_unlock(&w->lock);
    return done;
}

int watcher_start(struct wfs *fs, struct watcher **out)
{
    *out = NULL;
    struct watcher *w = calloc(1, sizeof(*w));
    if (!w)
        return -1;
    w->fs = fs;
    w->self = getpid();
    const char *lag = getenv("WSYNC_WATCH_LAG_MS");
    w->lag_ms = lag ? atoi(lag) : 0;
    w->stop_pipe[0] = w->stop_pipe[1] = -1;
    w->kick_pipe[0] = w->kick_pipe[1] = -1;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->synced, NULL);
    w->handle_root = open(fs->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->handle_root < 0) {
        free(w);
        return -1;
    }
    w->fan_fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE |
                                  FAN_REPORT_DFID_NAME | FAN_REPORT_FID,
                              O_RDONLY | O_LARGEFILE | O_CLOEXEC);
    if (w->fan_fd < 0)
        goto fail;
    if (fanotify_mark(w->fan_fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, WATCH_MASK, AT_FDCWD,
                      fs->src) < 0)
        goto fail;
    if (pipe2(w->stop_pipe, O_CLOEXEC) < 0 || pipe2(w->kick_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        goto fail;
    int e = pthread_create(&w->thread, NULL, watcher_main, w);
    if (e) {
        errno = e;
        goto fail;
    }
    *out = w;
    return 0;
fail:;
    int saved = errno;
    close(w->handle_root);
    if (w->fan_fd >= 0)
        close(w->fan_fd);
    for (int i = 0; i < 2; i++) {
        if (w->stop_pipe[i] >= 0)
            close(w->stop_pipe[i]);
        if (w->kick_pipe[i] >= 0)
            close(w->kick_pipe[i]);
    }
    pthread_cond_destroy(&w->synced);
    pthread_mutex_destroy(&w->lock);
    free(w);
    errno = saved;
    return -1;
}

void watcher_stop(struct watcher *w)
{
    if (!w)
        return;
    ssize_t r = write(w->stop_pipe[1], "x", 1);
    (void)r;
    pthread_join(w->thread, NULL);
    close(w->fan_fd);
    close(w->handle_root);
    close(w->stop_pipe[0]);
    close(w->stop_pipe[1]);
    close(w->kick_pipe[0]);
    close(w->kick_pipe[1]);
    pthread_cond_destroy(&w->synced);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
