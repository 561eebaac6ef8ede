/*
 * serve_live.c — see serve_live.h.  One inotify instance, a watch on every
 * directory below ROOT (not .wsync: our index and staging change on every
 * commit), new directories added as they appear.  Any event marks ROOT
 * changed; the events themselves are not kept (the next round lists ROOT
 * anyway, through the subtree digests).
 */
#include "serve_live.h"
#include "message.h"
#include "wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LIVE_MASK                                                                                  \
    (IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM |              \
     IN_MOVED_TO | IN_DELETE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)

/* A burst that never goes quiet (a long write) still reports this often. */
#define LIVE_MAX_DELAY_MS 50

struct watch {
    int wd;
    char *rel; /* "" for ROOT */
};

struct serve_live {
    int fd;
    char *root;
    struct watch *v;
    size_t n, cap;
    bool pending; /* an event since the last rescan */
    bool started; /* the first WATCH was answered */
};

static const char *rel_of(struct serve_live *sl, int wd)
{
    for (size_t i = 0; i < sl->n; i++)
        if (sl->v[i].wd == wd)
            return sl->v[i].rel;
    return NULL;
}

static void forget_wd(struct serve_live *sl, int wd)
{
    for (size_t i = 0; i < sl->n; i++)
        if (sl->v[i].wd == wd) {
            free(sl->v[i].rel);
            sl->v[i] = sl->v[--sl->n];
            return;
        }
}

/* Watch rel and every directory below it.  Limits reached (ENOSPC) are
 * not fatal: some edits then wait for the peer's fallback poll. */
static void add_tree(struct serve_live *sl, const char *rel)
{
    char abs[PATH_MAX];
    if (snprintf(abs, sizeof(abs), "%s%s%s", sl->root, rel[0] ? "/" : "", rel) >= (int)sizeof(abs))
        return;
    int wd = inotify_add_watch(sl->fd, abs, LIVE_MASK);
    if (wd < 0)
        return;
    if (!rel_of(sl, wd)) {
        if (sl->n == sl->cap) {
            size_t cap = sl->cap ? sl->cap * 2 : 64;
            struct watch *v = realloc(sl->v, cap * sizeof(*v));
            if (!v)
                return;
            sl->v = v;
            sl->cap = cap;
        }
        char *copy = strdup(rel);
        if (!copy)
            return;
        sl->v[sl->n++] = (struct watch){.wd = wd, .rel = copy};
    }
    DIR *d = opendir(abs);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            (!rel[0] && !strcmp(e->d_name, ".wsync")))
            continue;
        bool dir = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN) {
            struct stat st;
            dir =
                fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
        }
        char sub[PATH_MAX];
        if (dir && snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) <
                       (int)sizeof(sub))
            add_tree(sl, sub);
    }
    closedir(d);
}

/* Read what is queued (non-blocking); true if anything in the tree moved. */
static bool take_events(struct serve_live *sl)
{
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;
    for (;;) {
        ssize_t n = read(sl->fd, buf, sizeof(buf));
        if (n <= 0)
            return any;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            p += sizeof(*ev) + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                any = true;
                continue;
            }
            if (ev->mask & IN_IGNORED) {
                forget_wd(sl, ev->wd);
                continue;
            }
            const char *rel = rel_of(sl, ev->wd);
            if (!rel)
                continue;
            if (!rel[0] && ev->len && !strcmp(ev->name, ".wsync"))
                continue; /* our own state */
            any = true;
            if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO)) && ev->len) {
                char sub[PATH_MAX];
                if (snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", ev->name) <
                    (int)sizeof(sub))
                    add_tree(sl, sub);
            }
        }
    }
}

void serve_live_rescan(struct serve_live *sl)
{
    if (!sl)
        return;
    take_events(sl);
    sl->pending = false;
}

static int live_open(const char *root, struct serve_live **out)
{
    struct serve_live *sl = calloc(1, sizeof(*sl));
    if (!sl)
        return -ENOMEM;
    sl->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    sl->root = strdup(root);
    if (sl->fd < 0 || !sl->root) {
        int e = sl->fd < 0 ? -errno : -ENOMEM;
        serve_live_free(sl);
        return e;
    }
    add_tree(sl, "");
    *out = sl;
    return 0;
}

static int send_changed(struct wire *w, char *err, size_t errsize)
{
    struct msg m = {.type = MSG_CHANGED};
    int r = wire_send(w, &m, err, errsize);
    return r ? r : wire_flush(w, err, errsize);
}

int serve_live_watch(struct serve_live **slp, struct wire *w, int in_fd, const char *root,
                     char *err, size_t errsize)
{
    if (!*slp && live_open(root, slp) != 0)
        return 0; /* no watch: the peer polls slowly instead */
    struct serve_live *sl = *slp;
    if (!sl->started) {
        sl->started = true;
        return send_changed(w, err, errsize);
    }
    struct pollfd pfd[2] = {{.fd = in_fd, .events = POLLIN}, {.fd = sl->fd, .events = POLLIN}};
    struct timespec first = {0}, now;
    for (;;) {
        if (wire_pending_in(w))
            return 0; /* the peer already spoke: it started a round */
        if (take_events(sl))
            sl->pending = true;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (sl->pending && !first.tv_sec)
            first = now;
        long waited = (now.tv_sec - first.tv_sec) * 1000 + (now.tv_nsec - first.tv_nsec) / 1000000;
        if (sl->pending && waited >= LIVE_MAX_DELAY_MS) {
            sl->pending = false;
            return send_changed(w, err, errsize);
        }
        /* Changed: wait for a quiet moment, so a burst (an editor's
         * save, a git checkout) is one round, not hundreds. */
        int timeout = sl->pending ? SERVE_LIVE_QUIET_MS : -1;
        int n = poll(pfd, 2, timeout);
        if (n < 0 && errno != EINTR)
            return snprintf(err, errsize, "poll: %s", strerror(errno)), -errno;
        if (n > 0 && pfd[0].revents)
            return 0; /* the peer spoke (or hung up): session_loop reads it */
        if (n == 0 && sl->pending) {
            sl->pending = false;
            return send_changed(w, err, errsize);
        }
    }
}

void serve_live_free(struct serve_live *sl)
{
    if (!sl)
        return;
    if (sl->fd >= 0)
        close(sl->fd);
    for (size_t i = 0; i < sl->n; i++)
        free(sl->v[i].rel);
    free(sl->v);
    free(sl->root);
    free(sl);
}
