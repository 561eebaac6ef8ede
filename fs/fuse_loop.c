/*
 * fuse_loop.c — see fuse_loop.h.  The caller of fuse_loop_run is the
 * first reader.  A pooled request travels with the buffer it was read into
 * (no copy, even for a 1 MiB WRITE); its reader reads the next request into
 * a spare buffer that a worker gave back.
 */
#include "fuse_loop.h"
#include "fuse_io.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define POOL_MAX 64
#define READERS_MAX 8
/* READ and WRITE up to this size stay on the reader: a page-cache copy
 * costs less than waking a pool thread (fio 4k random writes: 4.9k IOPS
 * through the pool, 6.5-7.3k inline, libfuse's pool 12k in its run). */
#define INLINE_IO_MAX (128 * 1024)

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

static _Atomic unsigned long long n_pooled; /* for `wsync status` */

/* READ and WRITE carry their size at `at` in their body (`left` bytes):
 * true if it is more than the readers take.  A body too short to say goes
 * to the pool, where libfuse answers it. */
static bool io_over_inline(const char *body, size_t left, size_t at)
{
    uint32_t size;
    if (left < at + sizeof(size))
        return true;
    memcpy(&size, body + at, sizeof(size));
    return size > INLINE_IO_MAX;
}

bool fuse_loop_pooled(const void *req, size_t n)
{
    struct fuse_in_header h;
    if (n < sizeof(h))
        return false;
    memcpy(&h, req, sizeof(h));
    const char *body = (const char *)req + sizeof(h);
    size_t left = n - sizeof(h);
    switch (h.opcode) {
    case FUSE_READ:
        return io_over_inline(body, left, offsetof(struct fuse_read_in, size));
    case FUSE_WRITE:
        return io_over_inline(body, left, offsetof(struct fuse_write_in, size));
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

        /* fuse_io's per-request flags were read on the reader */
        fuse_io_adopt_request(j->buf.mem, j->buf.size);
        fuse_session_process_buf(p->se, &j->buf);
        give_back(p, j->buf.mem);
        free(j);

        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Under p->lock: make sure a worker will take what is queued next.
 * False if there is no worker at all. */
static bool have_worker_locked(struct pool *p)
{
    if (p->idle == 0 && p->nthreads < p->max_threads &&
        pthread_create(&p->threads[p->nthreads], NULL, worker_main, p) == 0)
        p->nthreads++;
    return p->nthreads > 0;
}

static void push_locked(struct pool *p, struct job *j)
{
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    if (p->idle)
        pthread_cond_signal(&p->work);
}

/* Queue the request in *buf and hand the reader a spare buffer (or
 * NULL: libfuse then allocates one).  On failure the request is answered
 * here, on the reader, rather than dropped. */
static void hand_off(struct pool *p, struct fuse_buf *buf)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j) {
        fuse_session_process_buf(p->se, buf);
        return;
    }
    j->buf = *buf;
    n_pooled++;
    pthread_mutex_lock(&p->lock);
    if (!have_worker_locked(p)) {
        pthread_mutex_unlock(&p->lock);
        free(j);
        fuse_session_process_buf(p->se, buf);
        return;
    }
    push_locked(p, j);
    buf->mem = p->nspare ? p->spare[--p->nspare] : NULL;
    pthread_mutex_unlock(&p->lock);
}

void fuse_loop_get_stats(unsigned long long *pooled)
{
    *pooled = n_pooled;
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

/* One reader: read a request, answer it here or hand it to the pool. */
static int serve(struct pool *p)
{
    struct fuse_session *se = p->se;
    struct fuse_buf buf = {.mem = NULL};
    int res = 0;
    while (!fuse_session_exited(se)) {
        res = fuse_session_receive_buf(se, &buf);
        if (res == -EINTR)
            continue;
        if (res <= 0)
            break; /* 0: unmounted or told to exit */
        if (fuse_loop_pooled(buf.mem, buf.size))
            hand_off(p, &buf);
        else
            fuse_session_process_buf(se, &buf);
    }
    free(buf.mem);
    return res < 0 ? res : 0;
}

static void *extra_reader_main(void *arg)
{
    pthread_setname_np(pthread_self(), "wsync-fuse"); /* for top -H and perf */
    serve(arg);
    return NULL;
}

int fuse_loop_run(struct fuse_session *se, unsigned pool_threads, unsigned readers)
{
    struct pool p = {.se = se};
    p.max_threads = pool_threads < 1 ? 1 : pool_threads > POOL_MAX ? POOL_MAX : pool_threads;
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.work, NULL);
    pthread_t extra[READERS_MAX];
    unsigned nextra = 0;
    for (unsigned i = 1; i < readers && nextra < READERS_MAX; i++)
        if (pthread_create(&extra[nextra], NULL, extra_reader_main, &p) == 0)
            nextra++;
    int res = serve(&p);
    for (unsigned i = 0; i < nextra; i++)
        pthread_join(extra[i], NULL); /* the unmount ended their reads too */
    pool_stop(&p);
    fuse_session_reset(se);
    return res;
}
