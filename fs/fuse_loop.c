/*
 * fuse_loop.c — see fuse_loop.h.  The hot thread is the caller of
 * fuse_loop_run.  A pooled request travels with the buffer it was read
 * into (no copy, even for a 1 MiB WRITE); the hot thread reads the next
 * request into a spare buffer that a worker gave back.
 */
#include "fuse_loop.h"
#include "fuse_io.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define POOL_MAX 64

struct job {
    struct job *next;
    struct fuse_buf buf;
};

struct pool {
    struct fuse_session *se;
    pthread_mutex_t lock;
    pthread_cond_t work;
    struct job *head, *tail;
    unsigned idle, nthreads, max_threads;
    bool stopping;
    pthread_t threads[POOL_MAX];
    void *spare[POOL_MAX + 2]; /* request buffers given back by workers */
    unsigned nspare;
};

bool fuse_loop_pooled(uint32_t opcode)
{
    switch (opcode) {
    case FUSE_READ:
    case FUSE_WRITE:
    case FUSE_FSYNC:
    case FUSE_FSYNCDIR:
    case FUSE_FALLOCATE:
    case FUSE_COPY_FILE_RANGE:
    case FUSE_LSEEK:
        return true;
    /* Not here: IOCTL (Python's open() asks isatty() of every file), POLL
     * and the lock requests.  wsync implements none of them, so libfuse
     * answers ENOSYS at once; a trip to the pool would only cost a wakeup. */
    default:
        return false;
    }
}

static void give_back(struct pool *p, void *mem)
{
    pthread_mutex_lock(&p->lock);
    if (p->nspare < sizeof(p->spare) / sizeof(p->spare[0])) {
        p->spare[p->nspare++] = mem;
        mem = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    free(mem);
}

static void *worker_main(void *arg)
{
    pthread_setname_np(pthread_self(), "wsync-fusepool"); /* for top -H and perf */
    struct pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stopping) {
            p->idle++;
            pthread_cond_wait(&p->work, &p->lock);
            p->idle--;
        }
        struct job *j = p->head;
        if (!j)
            break; /* stopping, and every queued request is answered */
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->lock);

        /* fuse_io's per-request flags were read on the hot thread */
        fuse_io_adopt_request(j->buf.mem, j->buf.size);
        fuse_session_process_buf(p->se, &j->buf);
        give_back(p, j->buf.mem);
        free(j);

        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Queue the request in *buf and hand the hot thread a spare buffer (or
 * NULL: libfuse then allocates one).  On failure the request is answered
 * here, on the hot thread, rather than dropped. */
static void hand_off(struct pool *p, struct fuse_buf *buf)
{
    struct job *j = malloc(sizeof(*j));
    if (!j) {
        fuse_session_process_buf(p->se, buf);
        return;
    }
    j->next = NULL;
    j->buf = *buf;
    pthread_mutex_lock(&p->lock);
    if (p->idle == 0 && p->nthreads < p->max_threads &&
        pthread_create(&p->threads[p->nthreads], NULL, worker_main, p) == 0)
        p->nthreads++;
    if (p->nthreads == 0) { /* not even one worker: answer it here */
        pthread_mutex_unlock(&p->lock);
        free(j);
        fuse_session_process_buf(p->se, buf);
        return;
    }
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    if (p->idle)
        pthread_cond_signal(&p->work);
    buf->mem = p->nspare ? p->spare[--p->nspare] : NULL;
    pthread_mutex_unlock(&p->lock);
}

static void pool_stop(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    for (unsigned i = 0; i < p->nspare; i++)
        free(p->spare[i]);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
}

int fuse_loop_run(struct fuse_session *se, unsigned pool_threads)
{
    struct pool p = {.se = se};
    p.max_threads = pool_threads < 1 ? 1 : pool_threads > POOL_MAX ? POOL_MAX : pool_threads;
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.work, NULL);

    struct fuse_buf buf = {.mem = NULL};
    int res = 0;
    while (!fuse_session_exited(se)) {
        res = fuse_session_receive_buf(se, &buf);
        if (res == -EINTR)
            continue;
        if (res <= 0)
            break; /* 0: unmounted or told to exit */
        struct fuse_in_header h;
        memcpy(&h, buf.mem, sizeof(h)); /* libfuse checked the length */
        if (fuse_loop_pooled(h.opcode))
            hand_off(&p, &buf);
        else
            fuse_session_process_buf(se, &buf);
    }
    free(buf.mem);
    pool_stop(&p);
    fuse_session_reset(se);
    return res < 0 ? res : 0;
}
