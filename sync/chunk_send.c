/*
 * chunk_send.c — see chunk_send.h.  Invariant: ids[0..nids) only grows
 * while the reader runs, and it may move (realloc), so the sending thread
 * copies each id out under lock before it sends it.
 */
#include "chunk_send.h"
#include "chunker.h"
#include "index.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int chunk_send_read_small(int root_fd, const char *path, uint8_t *buf, size_t size)
{
    int fd = openat(root_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = pread(fd, buf, size + 1, 0);
    int e = errno;
    close(fd);
    return n == (ssize_t)size ? 0 : n < 0 ? -e : -EAGAIN;
}

int chunk_send_data(struct wire *w, const struct chunk_source *src, const struct content_id *id,
                    uint8_t *buf, uint32_t *len, char *err, size_t errsize)
{
    char *path = NULL;
    uint64_t off;
    int r = index_find_chunk(src->ix, id, &path, &off, len);
    if (r) {
        snprintf(err, errsize, "a chunk the far side wants is no longer %s%s",
                 src->name ? "in " : "here", src->name ? src->name : "");
        return r;
    }
    int fd = openat(src->root_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t n = fd >= 0 ? pread(fd, buf, *len, (off_t)off) : -1;
    if (fd >= 0)
        close(fd);
    /* The encoder hashes the bytes (-ESTALE when they are not the chunk
     * any more): hashing them here too cost a third pass over the tree. */
    struct msg m = {.type = MSG_DATA, .data = {.id = *id, .bytes = buf, .len = *len}};
    r = n == (ssize_t)*len ? wire_send(w, &m, err, errsize) : -ESTALE;
    if (r == -ESTALE) {
        snprintf(err, errsize, "%s%s%s changed during the %s; run it again",
                 src->name ? src->name : "", src->name ? "/" : "", path, src->doing);
        r = -EAGAIN;
    }
    free(path);
    return r;
}

void chunk_wants_init(struct chunk_wants *q)
{
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
}

void chunk_wants_destroy(struct chunk_wants *q)
{
    free(q->ids);
    q->ids = NULL;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
}

/* Append a WANT's ids; lock held. */
static int add_wanted(struct chunk_wants *q, const struct msg_want *want)
{
    if (want->n == 0)
        return 0; /* and no memcpy from a NULL array */
    size_t need = q->nids + want->n;
    if (need > q->cap) {
        size_t cap = q->cap ? q->cap : 1024;
        while (cap < need)
            cap *= 2;
        struct content_id *v = realloc(q->ids, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        q->ids = v;
        q->cap = cap;
    }
    memcpy(q->ids + q->nids, want->ids, want->n * sizeof(*want->ids));
    q->nids = need;
    if (q->wanted)
        q->wanted(q->arg, want->n);
    return 0;
}

/* One message after COMMIT, lock held: 0 to go on, or -errno with q->err. */
static int take_reply(struct chunk_wants *q, const struct msg *m)
{
    if (m->type == MSG_WANT)
        return add_wanted(q, &m->want);
    if (m->type == MSG_ACK && m->ack.seq == q->seq) {
        q->ack = m->ack;
        q->acked = true;
        return 0;
    }
    if (m->type == MSG_ERROR && q->refused && !(m->error.flags & MSG_ERROR_FATAL) &&
        m->error.path[0]) {
        q->refused(q->arg, m->error.path); /* one path; the batch goes on */
        return 0;
    }
    if (m->type == MSG_ERROR) {
        snprintf(q->err, sizeof(q->err), "the far side failed: %s", m->error.message);
        return -(int)m->error.code;
    }
    snprintf(q->err, sizeof(q->err), "unexpected %s after COMMIT %llu", msg_type_name(m->type),
             (unsigned long long)q->seq);
    return -EPROTO;
}

static void *reader_main(void *arg)
{
    struct chunk_wants *q = arg;
    for (;;) {
        struct msg m;
        int r = wire_recv(q->w, &m, q->err, sizeof(q->err));
        bool got = r == 0;
        pthread_mutex_lock(&q->lock);
        if (got)
            r = take_reply(q, &m);
        if (r) {
            q->failed = true;
            q->code = r;
        }
        bool stop = r || q->acked;
        pthread_cond_signal(&q->cond);
        pthread_mutex_unlock(&q->lock);
        if (got)
            msg_release(&m);
        if (stop)
            return NULL;
    }
}

static bool hung_up(int r)
{
    return r == -EPIPE || r == -ECONNRESET;
}

/* A far side that fails usually says why (ERROR) before it hangs up on our
 * DATA: give the reader a moment to read that and take its message. */
static void explain(struct chunk_wants *q, int r, char *err, size_t errsize)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 2;
    pthread_mutex_lock(&q->lock);
    while (hung_up(r) && !q->failed && !q->acked)
        if (pthread_cond_timedwait(&q->cond, &q->lock, &dl) == ETIMEDOUT)
            break;
    if (q->failed && hung_up(r) && strncmp(q->err, "the far side failed", 19) == 0)
        snprintf(err, errsize, "%s", q->err);
    pthread_mutex_unlock(&q->lock);
}

int chunk_wants_serve(struct chunk_wants *q, uint64_t seq, chunk_wants_send_fn send,
                      void (*ran)(void *arg), char *err, size_t errsize)
{
    q->seq = seq;
    q->nids = 0;
    q->acked = q->failed = false;
    q->code = 0;
    pthread_t reader;
    int r = -pthread_create(&reader, NULL, reader_main, q);
    if (r)
        return r;
    uint8_t *buf = malloc(CHUNKER_MAX_SIZE);
    r = buf ? 0 : -ENOMEM;
    size_t done = 0;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (!r && done == q->nids && !q->acked && !q->failed)
            pthread_cond_wait(&q->cond, &q->lock);
        size_t to = q->nids;
        bool finished = q->acked || q->failed;
        pthread_mutex_unlock(&q->lock);
        if (r || (finished && done == to))
            break;
        for (; !r && done < to; done++) {
            pthread_mutex_lock(&q->lock);
            struct content_id id = q->ids[done]; /* the array may move while we send */
            pthread_mutex_unlock(&q->lock);
            r = send(q->arg, &id, buf);
        }
        if (!r)
            r = wire_flush(q->w, err, errsize);
        if (ran)
            ran(q->arg);
    }
    if (r) {
        if (q->explain_hangup)
            explain(q, r, err, errsize);
        pthread_cancel(reader); /* it may wait for an ACK that will not come */
    }
    pthread_join(reader, NULL);
    free(buf);
    if (!r && q->failed) {
        snprintf(err, errsize, "%s", q->err);
        r = q->code;
    }
    return r;
}
