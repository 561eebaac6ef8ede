/*
 * mirror_twoway.c — see mirror_twoway.h.
 *
 *   connect: twoway_link_open (HELLO with LIVE, listing, PEER)
 *   loop:    round (reconcile, copies, pull, push, record)
 *            WATCH, then wait for CHANGED, a kick, or the fallback timer
 *   failure: close, record the error, back off, reconnect
 *
 * Kicks go through an eventfd so that one poll() waits for both the far
 * side (CHANGED on the session's stdout) and this side's indexer.  A kick
 * that arrives during a round leaves the eventfd readable, so the next
 * wait returns at once: no edit waits for the fallback timer.
 */
#include "mirror_twoway.h"
#include "worker_wait.h"
#include "index.h"
#include "transport.h"
#include "twoway.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define STOP_GRACE_MS  2000
/* Without a CHANGED (a far side whose watch could not be set up, or an
 * edit inotify does not report), a round still runs this often. */
#define FALLBACK_MS 10000
#define AGAIN_MS    50

struct mirror_twoway {
    char *src, *dest, *rsh, *wsync_path;
    struct twoway_options opt;
    struct index *ix; /* for the journal head; our own connection */
    int kick_fd;      /* eventfd */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* stopping, exited, or a round done */
    bool stop, exited;
    pid_t child;
    void (*on_applied)(const char *path, void *arg); /* the caller's */
    void *on_applied_arg;
    char **applied; /* paths the current round changed here (worker thread only) */
    size_t napplied;
    struct mirror_status st;
    struct mirror_twoway_stats ex;
};

static void on_child(pid_t pid, void *arg)
{
    struct mirror_twoway *m = arg;
    pthread_mutex_lock(&m->lock);
    m->child = pid;
    if (pid && m->stop)
        kill(pid, SIGTERM);
    pthread_mutex_unlock(&m->lock);
}

/* A round changed path here: tell the caller (the mount's kernel cache),
 * and remember it for the journal (see acked_through). */
static void on_applied(const char *path, void *arg)
{
    struct mirror_twoway *m = arg;
    char **v = realloc(m->applied, (m->napplied + 1) * sizeof(*v));
    if (v) {
        m->applied = v;
        if ((v[m->napplied] = strdup(path)))
            m->napplied++;
    }
    if (m->on_applied)
        m->on_applied(path, m->on_applied_arg);
}

static void applied_clear(struct mirror_twoway *m)
{
    for (size_t i = 0; i < m->napplied; i++)
        free(m->applied[i]);
    free(m->applied);
    m->applied = NULL;
    m->napplied = 0;
}

struct ours {
    struct mirror_twoway *m;
    uint64_t through;
};

static int journal_entry_ours(uint64_t seq, const char *kind, const char *path, void *arg)
{
    struct ours *o = arg;
    for (size_t i = 0; i < o->m->napplied; i++)
        if (strcmp(o->m->applied[i], path) == 0) {
            o->through = seq;
            return 0;
        }
    return 1; /* a local edit: the next round sends it */
}

/* The journal the round began at covers everything before it; the entries
 * after it that are the round's own writes here (pulled files, conflict
 * copies) need no sending either, so they count as acknowledged — else
 * status would show them as lag until the next round. */
static uint64_t acked_through(struct mirror_twoway *m, uint64_t head)
{
    struct ours o = {.m = m, .through = head};
    if (m->napplied)
        index_journal_since(m->ix, head, journal_entry_ours, &o);
    return o.through;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool stopping(struct mirror_twoway *m)
{
    pthread_mutex_lock(&m->lock);
    bool s = m->stop;
    pthread_mutex_unlock(&m->lock);
    return s;
}

static void drain_kicks(struct mirror_twoway *m)
{
    uint64_t v;
    while (read(m->kick_fd, &v, sizeof(v)) == sizeof(v))
        ;
}

static uint64_t journal_head(struct mirror_twoway *m)
{
    uint64_t seq = 0;
    return index_journal_head(m->ix, &seq) == 0 ? seq : 0;
}

static void round_done(struct mirror_twoway *m, uint64_t head, const struct twoway_result *res,
                       uint64_t base_out)
{
    pthread_mutex_lock(&m->lock);
    m->st.acked_seq = head;
    m->st.caught_up = true;
    m->st.connected = true;
    m->st.batches++;
    m->st.bytes_out = base_out + res->bytes_out;
    m->st.last_ack_ns = now_ns();
    m->st.last_error[0] = '\0';
    m->st.retry_ms = 0;
    m->ex.rounds++;
    m->ex.pulled += res->pulled + res->deleted_here;
    m->ex.pushed += res->pushed + res->deleted_there;
    /* The copies this round made are in SRC now, the count was taken before. */
    m->ex.conflicts = res->copies_here + res->conflicts;
    m->ex.held = res->held;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

/* Rounds until the session fails or we stop.  0 or -errno. */
static int serve_rounds(struct mirror_twoway *m, struct twoway_link *l, uint64_t base_out)
{
    int r = 0;
    while (!r && !stopping(m)) {
        drain_kicks(m);
        uint64_t head = journal_head(m);
        struct twoway_result res;
        applied_clear(m);
        if ((r = twoway_link_round(l, &res)))
            break;
        round_done(m, acked_through(m, head), &res, base_out);
        /* Something changed under the round: look again soon (not at
         * once: an index that stays behind must not make us spin). */
        r = twoway_link_wait(l, m->kick_fd, res.again ? AGAIN_MS : FALLBACK_MS);
        if (r > 0)
            r = 0;
    }
    return r;
}

static void *mirror_twoway_main(void *arg)
{
    pthread_setname_np(pthread_self(), "wsync-twoway"); /* for top -H and perf */
    struct mirror_twoway *m = arg;
    int backoff = BACKOFF_MIN_MS;
    char err[1024];
    while (!stopping(m)) {
        pthread_mutex_lock(&m->lock);
        uint64_t base_out = m->st.bytes_out;
        m->st.sessions++;
        pthread_mutex_unlock(&m->lock);
        struct twoway_link *l = NULL;
        int r = twoway_link_open(&m->opt, &l, err, sizeof(err));
        if (!r) {
            pthread_mutex_lock(&m->lock);
            m->st.connected = true;
            pthread_mutex_unlock(&m->lock);
            backoff = BACKOFF_MIN_MS;
            r = serve_rounds(m, l, base_out);
        }
        struct twoway_result fin = {0};
        r = twoway_link_close(l, r, &fin);
        pthread_mutex_lock(&m->lock);
        m->st.bytes_out = base_out + fin.bytes_out;
        m->st.connected = false;
        bool stop = m->stop;
        if (r && !stop) {
            snprintf(m->st.last_error, sizeof(m->st.last_error), "%s", err[0] ? err : "failed");
            m->st.retry_ms = backoff;
        }
        pthread_mutex_unlock(&m->lock);
        if (stop)
            break;
        if (!r)
            continue;
        /* Wait the backoff, or less if asked to stop (ask_stop kicks). */
        struct pollfd pfd = {.fd = m->kick_fd, .events = POLLIN};
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int left = backoff; left > 0 && !stopping(m);) {
            poll(&pfd, 1, left);
            drain_kicks(m);
            clock_gettime(CLOCK_MONOTONIC, &t);
            left =
                backoff - (int)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        }
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    pthread_mutex_lock(&m->lock);
    m->st.connected = false;
    m->exited = true;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

static void free_strings(struct mirror_twoway *m)
{
    free(m->src);
    free(m->dest);
    free(m->rsh);
    free(m->wsync_path);
}

int mirror_twoway_start(const struct mirror_twoway_options *o, struct mirror_twoway **out,
                        char *err, size_t errsize)
{
    struct dest d;
    int r = dest_parse(o->dest, &d, err, errsize); /* refuse a bad DEST now, not in a log */
    if (r)
        return r;
    dest_release(&d);
    struct mirror_twoway *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->src = strdup(o->src);
    m->dest = strdup(o->dest);
    m->rsh = o->rsh ? strdup(o->rsh) : NULL;
    m->wsync_path = o->wsync_path ? strdup(o->wsync_path) : NULL;
    m->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    m->opt = (struct twoway_options){.src = m->src,
                                     .dest = m->dest,
                                     .rsh = m->rsh,
                                     .wsync_path = m->wsync_path,
                                     .live = true,
                                     .safe = o->safe,
                                     .trust_index = true,
                                     .far_stderr_set = o->log_fd >= 0,
                                     .far_stderr_fd = o->log_fd,
                                     .on_child = on_child,
                                     .on_child_arg = m,
                                     .on_applied = on_applied,
                                     .on_applied_arg = m};
    m->on_applied = o->on_applied;
    m->on_applied_arg = o->on_applied_arg;
    m->st.dest = m->dest;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    char state[PATH_MAX];
    snprintf(state, sizeof(state), "%s/.wsync", o->src);
    r = m->kick_fd < 0 ? (snprintf(err, errsize, "eventfd: %s", strerror(errno)), -errno) : 0;
    if (!r)
        r = index_open(-1, state, false, &m->ix, err, errsize);
    if (!r && (r = -pthread_create(&m->thread, NULL, mirror_twoway_main, m)))
        snprintf(err, errsize, "cannot start the mirror thread: %s", strerror(-r));
    if (r) {
        index_close(m->ix);
        if (m->kick_fd >= 0)
            close(m->kick_fd);
        pthread_mutex_destroy(&m->lock);
        pthread_cond_destroy(&m->cond);
        free_strings(m);
        free(m);
        return r;
    }
    *out = m;
    return 0;
}

void mirror_twoway_kick(struct mirror_twoway *m)
{
    uint64_t one = 1;
    ssize_t n = write(m->kick_fd, &one, sizeof(one)); /* EAGAIN: already kicked */
    (void)n;
}

bool mirror_twoway_flush(struct mirror_twoway *m, uint64_t want, int timeout_ms)
{
    mirror_twoway_kick(m);
    return worker_wait_acked(&m->lock, &m->cond, &m->st, &m->stop, want, timeout_ms);
}

void mirror_twoway_get_status(struct mirror_twoway *m, struct mirror_status *st,
                              struct mirror_twoway_stats *ex)
{
    pthread_mutex_lock(&m->lock);
    *st = m->st;
    if (ex)
        *ex = m->ex;
    pthread_mutex_unlock(&m->lock);
}

void mirror_twoway_ask_stop(struct mirror_twoway *m)
{
    pthread_mutex_lock(&m->lock);
    m->stop = true;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    mirror_twoway_kick(m); /* ends a WATCH wait or a backoff */
}

void mirror_twoway_stop(struct mirror_twoway *m)
{
    if (!m)
        return;
    mirror_twoway_ask_stop(m);
    /* Still in a round or a connect after the grace: cut it.  Every step
     * of a round is durable before the next begins; the next session
     * reconciles again. */
    worker_wait_exit(&m->lock, &m->cond, &m->exited, &m->child, STOP_GRACE_MS);
    pthread_join(m->thread, NULL);
    applied_clear(m);
    index_close(m->ix);
    close(m->kick_fd);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->cond);
    free_strings(m);
    free(m);
}
