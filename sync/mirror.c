/* mirror.c — see mirror.h. */
#include "mirror.h"
#include "../fs/deadline.h"
#include "worker_wait.h"
#include "index.h"
#include "push.h"
#include "transport.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS  100
#define BACKOFF_MAX_MS  5000
#define MAX_BATCH_PATHS 4096
#define STOP_GRACE_MS   2000
/* Bulk work (a build writing hundreds of files, a big copy, a catch-up)
 * runs at this niceness, see bulk_priority. */
#define BULK_NICE  10
#define BULK_PATHS 256
#define BULK_BYTES (64ull << 20)

struct mirror {
    char *src, *dest, *rsh, *wsync_path;
    struct push_options opt;
    struct index *ix; /* for the journal; our own connection */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* kicked, stopping, or a batch acknowledged */
    bool kicked, stop, exited;
    pid_t child; /* the far side's process while a session runs, else 0 */
    struct mirror_status st;
};

static void on_child(pid_t pid, void *arg)
{
    struct mirror *m = arg;
    pthread_mutex_lock(&m->lock);
    m->child = pid;
    if (pid && m->stop) /* stopped while connecting: do not wait for it */
        kill(pid, SIGTERM);
    pthread_mutex_unlock(&m->lock);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sleep up to ms, or until stop/kick; true if stopping. */
static bool wait_for(struct mirror *m, int ms, bool want_kick)
{
    struct timespec dl = deadline_in_ms(ms);
    pthread_mutex_lock(&m->lock);
    while (!m->stop && !(want_kick && m->kicked))
        if (pthread_cond_timedwait(&m->cond, &m->lock, &dl) == ETIMEDOUT)
            break;
    m->kicked = false;
    bool stop = m->stop;
    pthread_mutex_unlock(&m->lock);
    return stop;
}

static uint64_t journal_head(struct mirror *m)
{
    uint64_t seq = 0;
    return index_journal_head(m->ix, &seq) == 0 ? seq : 0;
}

struct batch {
    char **paths;
    size_t n;
    uint64_t last, first;
};

static int collect(uint64_t seq, const char *kind, const char *path, void *arg)
{
    struct batch *b = arg;
    if (!b->first)
        b->first = seq;
    b->last = seq;
    for (size_t i = 0; i < b->n; i++) /* batches are small: a scan is fine */
        if (strcmp(b->paths[i], path) == 0)
            return 0;
    b->paths[b->n++] = strdup(path);
    return b->n == MAX_BATCH_PATHS ? 1 : 0; /* the rest comes next round */
}

static void set_error(struct mirror *m, const char *err, int retry_ms)
{
    pthread_mutex_lock(&m->lock);
    snprintf(m->st.last_error, sizeof(m->st.last_error), "%s", err[0] ? err : "failed");
    m->st.connected = false;
    m->st.retry_ms = retry_ms;
    pthread_mutex_unlock(&m->lock);
}

/* bytes_out of the sessions before this one */
static void acked(struct mirror *m, uint64_t seq, struct sender *s, uint64_t base_out)
{
    uint64_t out, in;
    sender_traffic(s, &out, &in);
    pthread_mutex_lock(&m->lock);
    m->st.acked_seq = seq;
    m->st.caught_up = true;
    m->st.batches++;
    m->st.bytes_out = base_out + out;
    m->st.last_ack_ns = now_ns();
    m->st.last_error[0] = '\0';
    m->st.connected = true;
    m->st.retry_ms = 0;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

/* A big batch runs at nice BULK_NICE, this thread and a local far side
 * alike, so it yields the CPU to the writers under the mount (issue 5:
 * mount throughput while mirroring >= 0.8x without); small batches keep
 * the mount's priority, for latency.  Done only where the old priority can
 * be had back (root, or an RLIMIT_NICE that allows it), so a user's mirror
 * never stays niced.  base: the thread's nice when it started. */
static void bulk_priority(struct mirror *m, int base, bool on)
{
    struct rlimit rl;
    bool can_undo =
        geteuid() == 0 || (getrlimit(RLIMIT_NICE, &rl) == 0 && 20 - (long)rl.rlim_cur <= base);
    if (!can_undo || base >= BULK_NICE)
        return;
    int nice = on ? BULK_NICE : base;
    pthread_mutex_lock(&m->lock);
    pid_t child = m->child;
    pthread_mutex_unlock(&m->lock);
    setpriority(PRIO_PROCESS, (id_t)gettid(), nice); /* best effort: ignored if refused */
    if (child > 0)
        setpriority(PRIO_PROCESS, (id_t)child, nice);
}

static bool is_bulk(struct mirror *m, uint64_t done)
{
    struct index_pending p;
    return index_journal_pending(m->ix, done, &p) == 0 &&
           (p.paths >= BULK_PATHS || p.bytes >= BULK_BYTES);
}

static int next_backoff(int ms)
{
    return ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms * 2;
}

/* Send every journal entry after *done as batches until none is left.
 * 0, or the session's failure. */
static int send_journal(struct mirror *m, struct sender *s, uint64_t *done, uint64_t base_out,
                        int base_nice)
{
    for (;;) {
        struct batch b = {.paths = calloc(MAX_BATCH_PATHS, sizeof(char *))};
        if (!b.paths)
            return -ENOMEM;
        int r = index_journal_since(m->ix, *done, collect, &b);
        if (r < 0 || b.n == 0) {
            free(b.paths);
            return r < 0 ? r : 0;
        }
        /* Entries trimmed away since: only a full pass is safe. */
        bool bulk = is_bulk(m, *done);
        if (bulk)
            bulk_priority(m, base_nice, true);
        r = b.first > *done + 1 ? sender_sync_all(s) : sender_sync_paths(s, b.paths, b.n);
        if (bulk)
            bulk_priority(m, base_nice, false);
        for (size_t i = 0; i < b.n; i++)
            free(b.paths[i]);
        free(b.paths);
        if (r)
            return r;
        *done = b.last;
        acked(m, *done, s, base_out);
    }
}

static void *mirror_main(void *arg)
{
    pthread_setname_np(pthread_self(), "wsync-mirror"); /* for top -H and perf */
    struct mirror *m = arg;
    int backoff = BACKOFF_MIN_MS;
    errno = 0;
    int base_nice = getpriority(PRIO_PROCESS, (id_t)gettid());
    if (errno)
        base_nice = BULK_NICE; /* unknown: leave priorities alone */
    char err[1024];
    struct push_result res;
    while (!m->stop) {
        /* Connect and catch up from the far side's manifest: whatever
         * happened while we were away is in that difference. */
        struct sender *s = NULL;
        uint64_t head = journal_head(m);
        pthread_mutex_lock(&m->lock);
        uint64_t base_out = m->st.bytes_out;
        m->st.sessions++;
        pthread_mutex_unlock(&m->lock);
        int r = sender_open(&m->opt, &res, &s, err, sizeof(err));
        if (!r) {
            pthread_mutex_lock(&m->lock); /* connected; the catch-up may take a while */
            m->st.connected = true;
            pthread_mutex_unlock(&m->lock);
            bulk_priority(m, base_nice, true); /* a whole-tree diff: bulk work */
            r = sender_sync_all(s);
            bulk_priority(m, base_nice, false);
        }
        if (!r) {
            backoff = BACKOFF_MIN_MS;
            uint64_t done = head;
            acked(m, done, s, base_out);
            /* Then one batch per indexer commit (and a look every second). */
            while (!r && !wait_for(m, 1000, true))
                r = send_journal(m, s, &done, base_out, base_nice);
        }
        uint64_t out = 0, in = 0;
        if (s)
            sender_traffic(s, &out, &in);
        pthread_mutex_lock(&m->lock);
        m->st.bytes_out = base_out + out;
        pthread_mutex_unlock(&m->lock);
        r = sender_close(s, r);
        if (!r || m->stop)
            continue;
        /* Refused (disk full, permission), unreachable or cut: say why,
         * wait, and start over with a catch-up. */
        set_error(m, err, backoff);
        if (wait_for(m, backoff, false))
            break;
        backoff = next_backoff(backoff);
    }
    pthread_mutex_lock(&m->lock);
    m->st.connected = false;
    m->exited = true;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

int mirror_start(const char *src, const char *dest, const char *rsh, const char *wsync_path,
                 int log_fd, struct mirror **out, char *err, size_t errsize)
{
    struct dest d;
    int r = dest_parse(dest, &d, err, errsize); /* refuse a bad DEST now, not in a log */
    if (r)
        return r;
    dest_release(&d);
    struct mirror *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->src = strdup(src);
    m->dest = strdup(dest);
    m->rsh = rsh ? strdup(rsh) : NULL;
    m->wsync_path = wsync_path ? strdup(wsync_path) : NULL;
    m->opt = (struct push_options){.src = m->src,
                                   .dest = m->dest,
                                   .rsh = m->rsh,
                                   .wsync_path = m->wsync_path,
                                   .delete_extra = true,
                                   .trust_index = true,
                                   .far_stderr_set = log_fd >= 0,
                                   .far_stderr_fd = log_fd,
                                   .on_child = on_child,
                                   .on_child_arg = m};
    m->st.dest = m->dest;
    char state[PATH_MAX];
    snprintf(state, sizeof(state), "%s/.wsync", src);
    r = index_open(-1, state, false, &m->ix, err, errsize);
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    if (!r && (r = -pthread_create(&m->thread, NULL, mirror_main, m)))
        snprintf(err, errsize, "cannot start the mirror thread: %s", strerror(-r));
    if (r) {
        index_close(m->ix);
        free(m->src);
        free(m->dest);
        free(m->rsh);
        free(m->wsync_path);
        free(m);
        return r;
    }
    *out = m;
    return 0;
}

void mirror_kick(struct mirror *m)
{
    pthread_mutex_lock(&m->lock);
    m->kicked = true;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

bool mirror_flush(struct mirror *m, uint64_t want, int timeout_ms)
{
    mirror_kick(m);
    return worker_wait_acked(&m->lock, &m->cond, &m->st, &m->stop, want, timeout_ms);
}

void mirror_get_status(struct mirror *m, struct mirror_status *st)
{
    pthread_mutex_lock(&m->lock);
    *st = m->st;
    pthread_mutex_unlock(&m->lock);
}

void mirror_ask_stop(struct mirror *m)
{
    pthread_mutex_lock(&m->lock);
    m->stop = true;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

void mirror_stop(struct mirror *m)
{
    if (!m)
        return;
    mirror_ask_stop(m);
    worker_wait_exit(&m->lock, &m->cond, &m->exited, &m->child, STOP_GRACE_MS);
    pthread_join(m->thread, NULL);
    index_close(m->ix);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->cond);
    free(m->src);
    free(m->dest);
    free(m->rsh);
    free(m->wsync_path);
    free(m);
}
