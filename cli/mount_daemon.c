/*
 * mount_daemon.c — wiring of the mount daemon (see mount_daemon.h).
 *
 * Signals: SIGTERM, SIGINT and SIGHUP are blocked in every thread and taken
 * by one thread with sigwait(), which stops the filesystem cleanly; so no
 * FUSE worker is ever interrupted half-way through a reply.
 */
#include "mount_daemon.h"
#include "../fs/change_stream.h"
#include "../fs/wfs_forget.h"
#include "../sync/control.h"
#include "../sync/indexer.h"
#include "../sync/mirror_set.h"
#include "../sync/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_RING 8192

#define FLUSH_TIMEOUT_MS 10000
#define LOG_SYNC_MS 1000 /* log/pending wait this long at most for the watcher */

struct daemon {
    const struct wfs_options *opt;
    const struct daemon_options *dopt;
    struct mirror_set *mirrors; /* set once, before the mount; read with an atomic load */
    int flush_ms;               /* the last flush request's bound: also the final flush's */
    struct wfs *fs;
    struct change_stream *changes;
    struct indexer *indexer;
    int ready_fd;
    int log_fd;
    sigset_t signals;
};

static void report_ready(struct daemon *d, const char *error)
{
    if (d->ready_fd < 0) {
        if (error)
            fprintf(stderr, "wsync: %s\n", error);
        else
            fprintf(stderr, "wsync: %s mounted at %s (Ctrl-C unmounts)\n", d->opt->src,
                    d->opt->mountpoint);
        return;
    }
    if (!error && d->log_fd >= 0) {
        /* From here on nobody reads our terminal: log to SRC/.wsync. */
        dup2(d->log_fd, STDOUT_FILENO);
        dup2(d->log_fd, STDERR_FILENO);
    }
    char line[1024];
    int n = snprintf(line, sizeof(line), "%s\n", error ? error : "");
    ssize_t w = write(d->ready_fd, line, (size_t)n);
    (void)w;
    close(d->ready_fd);
    d->ready_fd = -1;
}

static void on_ready(void *arg)
{
    report_ready(arg, NULL);
}

static void *signal_main(void *arg)
{
    pthread_setname_np(pthread_self(), "wsync-signal"); /* for top -H and perf */
    struct daemon *d = arg;
    int sig;
    if (sigwait(&d->signals, &sig) == 0 && sig != SIGUSR1)
        wfs_stop(d->fs);
    return NULL;
}

/* ---- control requests ---- */

/* The control thread runs before the mirrors exist (it is what refuses a
 * second daemon), so it may see NULL here: no mirrors yet. */
static struct mirror_set *daemon_mirrors(struct daemon *d)
{
    return __atomic_load_n(&d->mirrors, __ATOMIC_ACQUIRE);
}

static void add_event(const struct change_event *ev, void *arg)
{
    struct strbuf *sb = arg;
    char kinds[128];
    change_kinds_format(ev->kind, kinds, sizeof(kinds));
    time_t secs = (time_t)(ev->time_ns / 1000000000);
    struct tm tm;
    localtime_r(&secs, &tm);
    char when[32];
    strftime(when, sizeof(when), "%H:%M:%S", &tm);
    strbuf_addf(sb, "%" PRIu64 " %s.%03d %s %s", ev->seq, when,
                (int)(ev->time_ns / 1000000 % 1000), kinds, ev->path);
    if (ev->other)
        strbuf_addf(sb, " %s %s", ev->kind & CHANGE_RENAME_FROM ? "->" : "<-", ev->other);
    if (ev->kind & CHANGE_WRITE && ev->len)
        strbuf_addf(sb, " [%lld+%lld]", (long long)ev->off, (long long)ev->len);
    strbuf_adds(sb, "\n");
}

static void add_event_json(const struct change_event *ev, void *arg)
{
    struct strbuf *sb = arg;
    char kinds[128];
    change_kinds_format(ev->kind, kinds, sizeof(kinds));
    strbuf_addf(sb, "{\"seq\":%" PRIu64 ",\"time_ns\":%" PRId64 ",\"kind\":", ev->seq,
                ev->time_ns);
    strbuf_add_json_string(sb, kinds);
    strbuf_adds(sb, ",\"path\":");
    strbuf_add_json_string(sb, ev->path);
    if (ev->other) {
        strbuf_adds(sb, ",\"other\":");
        strbuf_add_json_string(sb, ev->other);
    }
    strbuf_addf(sb, ",\"off\":%lld,\"len\":%lld}\n", (long long)ev->off, (long long)ev->len);
}

static void add_pending(const struct change_entry *e, void *arg)
{
    struct strbuf *sb = arg;
    char kinds[128];
    change_kinds_format(e->kinds, kinds, sizeof(kinds));
    strbuf_addf(sb, "%s %s events=%" PRIu64 " range=%lld-%lld", e->path, kinds, e->nevents,
                (long long)e->lo, (long long)e->hi);
    if (e->renamed_from)
        strbuf_addf(sb, " from=%s", e->renamed_from);
    strbuf_adds(sb, "\n");
}

struct count {
    size_t n;
};

static void count_entry(const struct change_entry *e, void *arg)
{
    ((struct count *)arg)->n++;
}

static void add_status(struct daemon *d, struct strbuf *sb, bool json)
{
    struct wfs_stats st;
    wfs_get_stats(d->fs, &st);
    struct count pending = {0};
    change_stream_peek(d->changes, count_entry, &pending);
    uint64_t seq = change_stream_seq(d->changes);
    struct indexer_counts ic = {0};
    char ierr[512] = "";
    if (d->indexer) {
        indexer_get_counts(d->indexer, &ic);
        indexer_last_error(d->indexer, ierr, sizeof(ierr));
    }
    if (!json) {
        strbuf_addf(sb,
                    "source:   %s\nmount:    %s\npid:      %d\nchanges:  %" PRIu64
                    " noted, %zu paths pending\ninodes:   %zu cached by the kernel\n"
                    "watching: %s (%llu outside edits seen)\n"
                    "file I/O: %s (%llu opens passed through)\n"
                    "requests: %s; %llu answered through the ring, %llu by the FUSE pool\n"
                    "indexer:  %" PRIu64 " files hashed (%.1f MiB) since start\n",
                    d->opt->src, d->opt->mountpoint, (int)getpid(), seq, pending.n, st.inodes,
                    st.watching ? "yes" : "no, short cache timeouts", st.outside_events,
                    st.passthrough ? "kernel passthrough" : "through the daemon", st.passthrough_opens,
                    st.ring ? "FUSE over io_uring" : "/dev/fuse", st.ring_served, st.fuse_pooled,
                    ic.hashed, (double)ic.bytes_hashed / (1 << 20));
        if (ierr[0])
            strbuf_addf(sb, "error:    %s\n", ierr);
        mirror_set_status(daemon_mirrors(d), sb, false);
        return;
    }
    strbuf_adds(sb, "{\"source\":");
    strbuf_add_json_string(sb, d->opt->src);
    strbuf_adds(sb, ",\"mount\":");
    strbuf_add_json_string(sb, d->opt->mountpoint);
    strbuf_addf(sb,
                ",\"pid\":%d,\"seq\":%" PRIu64 ",\"pending\":%zu,\"inodes\":%zu,"
                "\"watching\":%s,\"outside_events\":%llu,\"passthrough\":%s,"
                "\"passthrough_opens\":%llu,\"fuse_pooled\":%llu,\"fuse_ring\":%s,"
                "\"fuse_ring_served\":%llu,"
                "\"hashed_files\":%" PRIu64
                ",\"hashed_bytes\":%" PRIu64 ",\"indexed_seq\":%" PRIu64 ",\"index_batches\":%" PRIu64
                ",\"last_error\":",
                (int)getpid(), seq, pending.n, st.inodes, st.watching ? "true" : "false",
                st.outside_events, st.passthrough ? "true" : "false", st.passthrough_opens,
                st.fuse_pooled, st.ring ? "true" : "false", st.ring_served, ic.hashed, ic.bytes_hashed,
                ic.indexed_seq, ic.batches);
    strbuf_add_json_string(sb, ierr);
    strbuf_adds(sb, ",\"mirrors\":");
    mirror_set_status(daemon_mirrors(d), sb, true);
    strbuf_adds(sb, "}\n");
}

/* What is left of a bound of ms milliseconds that started at t0 (monotonic). */
static int ms_left(const struct timespec *t0, int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long spent = (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
    return spent < ms ? ms - (int)spent : 0;
}

/* Wait until every change noted so far is indexed (and so journaled), at
 * most ms.  True if it is. */
static bool wait_indexed(struct daemon *d, int ms)
{
    uint64_t want = change_stream_seq(d->changes);
    for (int waited = 0;; waited++) {
        struct indexer_counts ic = {0};
        if (!d->indexer)
            return true;
        indexer_get_counts(d->indexer, &ic);
        if (ic.indexed_seq >= want)
            return true;
        if (waited >= ms)
            return false;
        usleep(1000);
    }
}

/* "overlay reset|promote [REL]": REL is the rest of the line (may hold spaces). */
static void handle_overlay(struct daemon *d, const char *req, struct strbuf *reply)
{
    char op[16] = "";
    const char *p = req + strlen("overlay ");
    size_t n = strcspn(p, " ");
    if (n >= sizeof(op)) {
        strbuf_adds(reply, "error: bad overlay request\n");
        return;
    }
    memcpy(op, p, n);
    const char *rel = p[n] == ' ' ? p + n + 1 : "";
    char msg[1024] = "";
    int r = wfs_overlay_apply(d->fs, op, rel, msg, sizeof(msg));
    if (r)
        strbuf_addf(reply, "error: %s\n", msg[0] ? msg : strerror(-r));
    else
        strbuf_addf(reply, "ok%s%s\n", msg[0] ? " " : "", msg);
}

static void handle_request(const char *req, struct strbuf *reply, void *arg)
{
    struct daemon *d = arg;
    if (strncmp(req, "overlay ", 8) == 0) {
        handle_overlay(d, req, reply);
        return;
    }
    char word[32] = "";
    unsigned long n = 0;
    char fmt[16] = "";
    int got = sscanf(req, "%31s %lu %15s", word, &n, fmt);
    bool json = strstr(req, "json") != NULL;
    if (got >= 1 && strcmp(word, "status") == 0) {
        add_status(d, reply, json);
    } else if (got >= 1 && strcmp(word, "log") == 0) {
        /* Show every change made before the request, including writes the
         * kernel passed through whose RELEASE is still on its way. */
        wfs_sync_changes(d->fs, LOG_SYNC_MS);
        change_stream_recent(d->changes, got >= 2 ? n : 20, json ? add_event_json : add_event,
                             reply);
    } else if (got >= 1 && strcmp(word, "pending") == 0) {
        wfs_sync_changes(d->fs, LOG_SYNC_MS);
        change_stream_peek(d->changes, add_pending, reply);
    } else if (got >= 1 && strcmp(word, "flush") == 0) {
        /* "flush [MS]": the caller's bound, else ours.  Changes noted but
         * not yet indexed are not in the journal: wait for them first. */
        int ms = got >= 2 && n > 0 && n < 3600000 ? (int)n : FLUSH_TIMEOUT_MS;
        __atomic_store_n(&d->flush_ms, ms, __ATOMIC_RELAXED);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        /* Writes the kernel passed through reach the change stream by the
         * watcher (or at RELEASE, after close() returned): let it catch up.
         * One bound for the three steps. */
        bool indexed = wfs_sync_changes(d->fs, ms) && wait_indexed(d, ms_left(&t0, ms));
        if (!indexed)
            strbuf_adds(reply, "unflushed: changes are still being indexed\n");
        else if (mirror_set_flush(daemon_mirrors(d), ms_left(&t0, ms), reply))
            strbuf_adds(reply, "ok\n");
    } else if (got >= 1 && strcmp(word, "reload") == 0) {
        mirror_set_reload(daemon_mirrors(d), reply);
    } else if (got >= 1 && strcmp(word, "pid") == 0) {
        strbuf_addf(reply, "%d\n", (int)getpid());
    } else {
        strbuf_addf(reply, "error: unknown control request '%s'\n", req);
    }
}

/* A two-way round changed a path in SRC from this process: the watcher
 * skips our own events, so drop the kernel's cache of it here. */
static void forget_applied(const char *path, void *arg)
{
    struct daemon *d = arg;
    wfs_forget_path(d->fs, path);
}

static void kick_mirrors(void *arg)
{
    struct daemon *d = arg;
    mirror_set_kick(daemon_mirrors(d));
}

int mount_daemon_run(const struct daemon_options *dopt, int ready_fd)
{
    const struct wfs_options *opt = &dopt->fs;
    struct daemon d = {.opt = opt, .dopt = dopt, .ready_fd = ready_fd, .log_fd = -1,
                       .flush_ms = FLUSH_TIMEOUT_MS};
    char err[1024] = "";
    int code = 1;
    struct control_server *ctl = NULL;
    pthread_t sig_thread;
    bool sig_started = false;

    sigemptyset(&d.signals);
    sigaddset(&d.signals, SIGTERM);
    sigaddset(&d.signals, SIGINT);
    sigaddset(&d.signals, SIGHUP);
    sigaddset(&d.signals, SIGUSR1); /* our own wake-up at exit */
    pthread_sigmask(SIG_BLOCK, &d.signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    d.changes = change_stream_new(LOG_RING);
    if (!d.changes) {
        report_ready(&d, "out of memory");
        return 1;
    }
    if (wfs_open(opt, d.changes, &d.fs, err, sizeof(err)) != 0) {
        report_ready(&d, err);
        goto out;
    }
    char state[4096];
    snprintf(state, sizeof(state), "%s/%s", opt->src, WFS_STATE_DIR);
    int state_fd = open(state, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (ready_fd >= 0)
        d.log_fd = openat(state_fd, "daemon.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    ctl = control_server_start(state_fd, handle_request, &d);
    if (!ctl) {
        snprintf(err, sizeof(err),
                 errno == EADDRINUSE
                     ? "%s is already served by a running wsync daemon (see 'wsync status %s')"
                     : "cannot open the control socket in %s: %s",
                 opt->src, errno == EADDRINUSE ? opt->src : strerror(errno));
        report_ready(&d, err);
        close(state_fd);
        goto out;
    }
    /* Before mounting: a bad rules file or a broken index is refused now,
     * with its cause, rather than found later in a log. */
    /* In the background our stderr is still the caller's: the far sides
     * (which outlive that) write to the log instead. */
    struct mirror_set_options mopt = {.src = opt->src, .dests = dopt->mirrors,
                                      .ndests = dopt->nmirrors, .rsh = dopt->rsh,
                                      .wsync_path = dopt->wsync_path,
                                      .log_fd = ready_fd >= 0 ? d.log_fd : -1,
                                      .on_applied = forget_applied, .on_applied_arg = &d};
    struct mirror_set *mirrors = NULL;
    int mr = mirror_set_start(&mopt, &mirrors, err, sizeof(err));
    __atomic_store_n(&d.mirrors, mirrors, __ATOMIC_RELEASE);
    if (mr != 0 ||
        indexer_start(opt->src, state, d.changes, kick_mirrors, &d, &d.indexer, err,
                      sizeof(err)) != 0 ||
        wfs_mount(d.fs, err, sizeof(err)) != 0) {
        report_ready(&d, err);
        indexer_stop(d.indexer);
        control_server_stop(ctl);
        mirror_set_stop(d.mirrors);
        close(state_fd);
        goto out;
    }
    sig_started = pthread_create(&sig_thread, NULL, signal_main, &d) == 0;
    int r = wfs_run(d.fs, on_ready, &d);
    if (d.ready_fd >= 0) /* unmounted before INIT ever came */
        report_ready(&d, "the mount ended before it became ready");
    if (sig_started) {
        pthread_kill(sig_thread, SIGUSR1);
        pthread_join(sig_thread, NULL);
    }
    indexer_stop(d.indexer); /* finishes the batch in hand */
    control_server_stop(ctl);
    struct strbuf unflushed = STRBUF_INIT;
    if (!mirror_set_flush(d.mirrors, __atomic_load_n(&d.flush_ms, __ATOMIC_RELAXED),
                          &unflushed))
        fprintf(stderr, "wsync: at exit, %s", unflushed.buf);
    strbuf_release(&unflushed);
    mirror_set_stop(d.mirrors);
    close(state_fd);
    code = r == 0 ? 0 : 1;
out:
    wfs_close(d.fs);
    change_stream_free(d.changes);
    if (d.log_fd >= 0)
        close(d.log_fd);
    return code;
}
