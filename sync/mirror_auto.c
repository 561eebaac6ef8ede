/*
 * mirror_auto.c — see mirror_auto.h.
 *
 *   loop: probe the far side (mounted=0|1)
 *         answered: the worker of that kind runs (started, or swapped in)
 *         no answer: keep whatever runs; retry with backoff
 *         wait: recheck interval, a reconnect of the worker, or stop
 *
 * Invariant: `m` and `tw` are never both set, and only the controller
 * thread changes them, under the write side of `rw`; every other verb
 * reads them under the read side, so a swap never frees a worker that a
 * status or flush is using.
 */
#include "mirror_auto.h"
#include "../fs/deadline.h"
#include "probe.h"
#include "transport.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RECHECK_MS_DEFAULT 30000
#define PROBE_TIMEOUT_MS   5000
#define BACKOFF_MIN_MS     500
#define SLICE_MS           200 /* how often a wait looks at the worker's sessions */
#define LAST_ROUNDS_MS     10000

struct mirror_auto {
    char *src, *dest, *rsh, *wsync_path;
    struct mirror_twoway_options opt; /* pointing at the copies above */
    struct dest d;
    int recheck_ms;
    pthread_t thread;
    pthread_rwlock_t rw; /* guards m and tw (see the invariant) */
    struct mirror *m;
    struct mirror_twoway *tw;
    pthread_mutex_t lock; /* guards what follows */
    pthread_cond_t cond;  /* stop asked */
    bool stop;
    struct mirror_auto_view view;
    char last_error[1024]; /* the last probe's, "" when it answered */
    int retry_ms;
};

static int recheck_ms(void)
{
    const char *env = getenv("WSYNC_AUTO_RECHECK_MS");
    long v = env ? strtol(env, NULL, 10) : 0;
    return v >= 100 && v <= 3600000 ? (int)v : RECHECK_MS_DEFAULT;
}

static bool stopping(struct mirror_auto *a)
{
    pthread_mutex_lock(&a->lock);
    bool s = a->stop;
    pthread_mutex_unlock(&a->lock);
    return s;
}

/* The worker's sessions and whether it is connected (0, false: none). */
static uint64_t worker_sessions(struct mirror_auto *a, bool *connected)
{
    struct mirror_status st = {0};
    pthread_rwlock_rdlock(&a->rw);
    if (a->m)
        mirror_get_status(a->m, &st);
    if (a->tw)
        mirror_twoway_get_status(a->tw, &st, NULL);
    pthread_rwlock_unlock(&a->rw);
    *connected = st.connected;
    return st.sessions;
}

static void note(struct mirror_auto *a, const char *fmt, const char *what)
{
    char line[1200];
    int n = snprintf(line, sizeof(line), "wsync: auto remote %s: ", a->dest);
    snprintf(line + n, sizeof(line) - (size_t)n, fmt, what);
    int fd = a->opt.log_fd >= 0 ? a->opt.log_fd : STDERR_FILENO;
    ssize_t w = write(fd, line, strlen(line));
    (void)w;
}

/* Before a two-way worker gives way to a replica one: the replica's
 * catch-up deletes what only the far side has, so first let two more
 * rounds end.  The second began after this call, so every far edit made
 * before the switch is here by then (a pulled file is ours: the replica
 * sends it back rather than deleting it).  Bounded: a far side that stops
 * answering is left to the replica's own error handling. */
static void last_rounds(struct mirror_twoway *tw)
{
    struct mirror_status st;
    struct mirror_twoway_stats ex;
    mirror_twoway_get_status(tw, &st, &ex);
    uint64_t want = ex.rounds + 2;
    for (int waited = 0; waited < LAST_ROUNDS_MS && st.connected && ex.rounds < want;
         waited += SLICE_MS) {
        mirror_twoway_kick(tw);
        usleep(SLICE_MS * 1000);
        mirror_twoway_get_status(tw, &st, &ex);
    }
}

/* Run the worker of the kind decided, replacing the other.  0 or -errno. */
static int run_kind(struct mirror_auto *a, bool two_way, char *err, size_t errsize)
{
    bool have = two_way ? a->tw != NULL : a->m != NULL;
    if (have)
        return 0;
    if (a->tw) /* only this thread changes it: no lock needed to read it */
        last_rounds(a->tw);
    pthread_rwlock_wrlock(&a->rw);
    /* Stopped first: two workers on one far tree would only fight. */
    mirror_stop(a->m);
    mirror_twoway_stop(a->tw);
    a->m = NULL;
    a->tw = NULL;
    int r = two_way ? mirror_twoway_start(&a->opt, &a->tw, err, errsize)
                    : mirror_start(a->src, a->dest, a->rsh, a->wsync_path, a->opt.log_fd, &a->m,
                                   err, errsize);
    pthread_rwlock_unlock(&a->rw);
    return r;
}

enum answer { NOT_MOUNTED, MOUNTED, DOES_NOT_SAY };

/* Ask the far side: an enum answer, or -errno when it did not answer. */
static int ask(struct mirror_auto *a, char *err, size_t errsize)
{
    struct probe_result pr;
    int r = probe_far_side(&a->d, a->rsh, a->wsync_path, PROBE_TIMEOUT_MS, &pr, err, errsize);
    if (r == 0)
        return pr.far_mounted == 1 ? MOUNTED : pr.far_mounted == 0 ? NOT_MOUNTED : DOES_NOT_SAY;
    /* A far side that runs but lacks --probe altogether (exit 2, usage)
     * is older than mounts that say so: not mounted. */
    if (!pr.answered && pr.exit_status == 2 && strstr(pr.far_stderr, "--probe"))
        return DOES_NOT_SAY;
    return r;
}

/* Wait ms, or less: stop, or the worker reconnected since `seen`. */
static void wait_next(struct mirror_auto *a, int ms, uint64_t seen)
{
    for (int left = ms; left > 0 && !stopping(a); left -= SLICE_MS) {
        bool connected;
        if (worker_sessions(a, &connected) > seen && connected)
            return;
        struct timespec dl = deadline_in_ms(left < SLICE_MS ? left : SLICE_MS);
        pthread_mutex_lock(&a->lock);
        if (!a->stop)
            pthread_cond_timedwait(&a->cond, &a->lock, &dl);
        pthread_mutex_unlock(&a->lock);
    }
}

static void *mirror_auto_main(void *arg)
{
    pthread_setname_np(pthread_self(), "wsync-auto"); /* for top -H and perf */
    struct mirror_auto *a = arg;
    int backoff = BACKOFF_MIN_MS;
    char err[1024];
    while (!stopping(a)) {
        err[0] = '\0';
        int r = ask(a, err, sizeof(err));
        bool connected;
        uint64_t seen = worker_sessions(a, &connected);
        if (r >= 0) {
            bool two_way = r == MOUNTED;
            pthread_mutex_lock(&a->lock);
            bool changed = a->view.decided && a->view.two_way != two_way;
            bool first = !a->view.decided;
            a->view.decided = true;
            a->view.two_way = two_way;
            a->view.probes++;
            a->view.switches += changed;
            snprintf(a->view.why, sizeof(a->view.why), "%s",
                     r == MOUNTED       ? "far tree is mounted"
                     : r == NOT_MOUNTED ? "far tree is not mounted"
                                        : "far side's wsync does not say");
            a->last_error[0] = '\0';
            a->retry_ms = 0;
            pthread_mutex_unlock(&a->lock);
            if (first || changed)
                note(a, "%s\n",
                     two_way ? "far tree is mounted: two-way" : "far tree is not mounted: replica");
            if (!stopping(a) && run_kind(a, two_way, err, sizeof(err)) != 0) {
                pthread_mutex_lock(&a->lock);
                snprintf(a->last_error, sizeof(a->last_error), "%s", err);
                pthread_mutex_unlock(&a->lock);
            }
            if (first || changed)
                seen = 1; /* the new worker's first session is the one just decided for */
            backoff = BACKOFF_MIN_MS;
            wait_next(a, a->recheck_ms, seen);
            continue;
        }
        pthread_mutex_lock(&a->lock);
        snprintf(a->last_error, sizeof(a->last_error),
                 "cannot ask the far side whether it is mounted: %s", err[0] ? err : strerror(-r));
        a->retry_ms = backoff;
        pthread_mutex_unlock(&a->lock);
        wait_next(a, backoff, seen);
        backoff = backoff * 2 > a->recheck_ms ? a->recheck_ms : backoff * 2;
    }
    return NULL;
}

static void free_all(struct mirror_auto *a)
{
    dest_release(&a->d);
    free(a->src);
    free(a->dest);
    free(a->rsh);
    free(a->wsync_path);
    free(a);
}

int mirror_auto_start(const struct mirror_twoway_options *o, struct mirror_auto **out, char *err,
                      size_t errsize)
{
    struct mirror_auto *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    int r = dest_parse(o->dest, &a->d, err, errsize); /* refuse a bad DEST now */
    if (r) {
        free(a);
        return r;
    }
    a->src = strdup(o->src);
    a->dest = strdup(o->dest);
    a->rsh = o->rsh ? strdup(o->rsh) : NULL;
    a->wsync_path = o->wsync_path ? strdup(o->wsync_path) : NULL;
    if (!a->src || !a->dest || (o->rsh && !a->rsh) || (o->wsync_path && !a->wsync_path)) {
        free_all(a);
        return snprintf(err, errsize, "out of memory"), -ENOMEM;
    }
    a->opt = *o;
    a->opt.src = a->src;
    a->opt.dest = a->dest;
    a->opt.rsh = a->rsh;
    a->opt.wsync_path = a->wsync_path;
    a->opt.safe = false;
    a->recheck_ms = recheck_ms();
    pthread_rwlock_init(&a->rw, NULL);
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    if ((r = -pthread_create(&a->thread, NULL, mirror_auto_main, a))) {
        snprintf(err, errsize, "cannot start the mirror thread: %s", strerror(-r));
        pthread_rwlock_destroy(&a->rw);
        pthread_mutex_destroy(&a->lock);
        pthread_cond_destroy(&a->cond);
        free_all(a);
        return r;
    }
    *out = a;
    return 0;
}

void mirror_auto_kick(struct mirror_auto *a)
{
    pthread_rwlock_rdlock(&a->rw);
    if (a->m)
        mirror_kick(a->m);
    if (a->tw)
        mirror_twoway_kick(a->tw);
    pthread_rwlock_unlock(&a->rw);
}

bool mirror_auto_flush(struct mirror_auto *a, uint64_t want, int timeout_ms)
{
    pthread_rwlock_rdlock(&a->rw);
    bool ok = a->m    ? mirror_flush(a->m, want, timeout_ms)
              : a->tw ? mirror_twoway_flush(a->tw, want, timeout_ms)
                      : false;
    pthread_rwlock_unlock(&a->rw);
    return ok;
}

void mirror_auto_get_status(struct mirror_auto *a, struct mirror_status *st,
                            struct mirror_twoway_stats *ex, struct mirror_auto_view *view)
{
    struct mirror_twoway_stats ignored;
    if (!ex)
        ex = &ignored;
    memset(st, 0, sizeof(*st));
    memset(ex, 0, sizeof(*ex));
    pthread_rwlock_rdlock(&a->rw);
    if (a->m)
        mirror_get_status(a->m, st);
    if (a->tw)
        mirror_twoway_get_status(a->tw, st, ex);
    bool running = a->m || a->tw;
    pthread_rwlock_unlock(&a->rw);
    st->dest = a->dest; /* ours: the worker's copy may go with a swap */
    pthread_mutex_lock(&a->lock);
    if (!running) {
        st->retry_ms = a->retry_ms;
        snprintf(st->last_error, sizeof(st->last_error), "%s",
                 a->last_error[0] ? a->last_error : "asking the far side whether it is mounted");
    } else if (!st->last_error[0] && a->last_error[0]) {
        snprintf(st->last_error, sizeof(st->last_error), "%s", a->last_error);
    }
    if (view)
        *view = a->view;
    pthread_mutex_unlock(&a->lock);
}

void mirror_auto_ask_stop(struct mirror_auto *a)
{
    pthread_mutex_lock(&a->lock);
    a->stop = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    pthread_rwlock_rdlock(&a->rw);
    if (a->m)
        mirror_ask_stop(a->m);
    if (a->tw)
        mirror_twoway_ask_stop(a->tw);
    pthread_rwlock_unlock(&a->rw);
}

void mirror_auto_stop(struct mirror_auto *a)
{
    if (!a)
        return;
    mirror_auto_ask_stop(a);
    /* A probe in flight ends within its own timeout. */
    pthread_join(a->thread, NULL);
    mirror_stop(a->m);
    mirror_twoway_stop(a->tw);
    pthread_rwlock_destroy(&a->rw);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
    free_all(a);
}
