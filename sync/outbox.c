/*
 * outbox.c — see outbox.h.  The same steps as push.c's sender, for an
 * explicit list of paths; push.c keeps its own copy (it diffs whole trees
 * against a manifest and sends hard links) until the two are merged.
 */
#include "outbox.h"
#include "index.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct outbox {
    struct wire *w;
    struct index *ix;
    int root_fd;
    uint64_t seq;
    outbox_sent_fn sent;
    void *arg;
    struct outbox_counts *c;
    char *err;
    size_t errsize;
    /* filled by the reader thread */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct content_id *wanted;
    size_t nwanted, cap;
    bool acked, failed;
    char reader_err[1024];
    int reader_code;
};

static int read_small(int root_fd, const char *path, uint8_t *buf, size_t size)
{
    int fd = openat(root_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = pread(fd, buf, size + 1, 0); /* one more: a grown file is noticed */
    int e = errno;
    close(fd);
    return n == (ssize_t)size ? 0 : n < 0 ? -e : -EAGAIN;
}

/* One item: UPDATE `as` with the row of `from`, or DELETE `as`. */
static int send_item(struct outbox *o, const struct msg_pull_entry *it)
{
    struct index_file f;
    int r = index_get(o->ix, it->from, &f);
    if (r == -ENOENT) {
        struct msg d = {.type = MSG_DELETE, .del = {.path = it->as}};
        o->c->deleted++;
        r = wire_send(o->w, &d, o->err, o->errsize);
        if (!r && o->sent)
            o->sent(o->arg, it->as, &(struct path_state){0}, false);
        return r;
    }
    if (r)
        return snprintf(o->err, o->errsize, "index: %s", index_error(o->ix)), r;
    struct msg m = {.type = MSG_UPDATE,
                    .update = {.path = it->as, .type = f.type, .mode = f.mode & 0777,
                               .mtime_ns = f.mtime_ns, .target = f.target}};
    uint8_t small[WIRE_INLINE_MAX + 1];
    struct chunk *chunks = NULL;
    if (f.type == S_IFREG) {
        m.update.size = (uint64_t)f.size;
        o->c->files++;
        if (f.size <= (int64_t)WIRE_INLINE_MAX) {
            r = read_small(o->root_fd, f.path, small, (size_t)f.size);
            m.update.inline_data = true;
            m.update.data = small;
        } else {
            r = index_get_chunks(o->ix, f.path, &chunks, &m.update.nchunks);
            m.update.chunks = chunks;
        }
        if (r)
            snprintf(o->err, o->errsize, "reading %s: %s%s", f.path, strerror(-r),
                     r == -EAGAIN ? " (it changed during the sync; run it again)" : "");
    } else {
        f.type == S_IFDIR ? o->c->dirs++ : o->c->symlinks++;
    }
    if (!r)
        r = wire_send(o->w, &m, o->err, o->errsize);
    if (!r && o->sent) {
        struct path_state s = {.type = f.type, .mode = f.mode & 0777, .id = f.id,
                               .target = f.target, .mtime_ns = f.mtime_ns};
        o->sent(o->arg, it->as, &s, false);
    }
    free(chunks);
    index_file_release(&f);
    return r;
}

static void *reader_main(void *arg)
{
    struct outbox *o = arg;
    for (;;) {
        struct msg m;
        int r = wire_recv(o->w, &m, o->reader_err, sizeof(o->reader_err));
        pthread_mutex_lock(&o->lock);
        if (!r && m.type == MSG_WANT) {
            if (o->nwanted + m.want.n > o->cap) {
                size_t cap = o->cap ? o->cap : 1024;
                while (cap < o->nwanted + m.want.n)
                    cap *= 2;
                struct content_id *v = realloc(o->wanted, cap * sizeof(*v));
                if (v) {
                    o->wanted = v;
                    o->cap = cap;
                } else {
                    r = -ENOMEM;
                }
            }
            if (!r && m.want.n) {
                memcpy(o->wanted + o->nwanted, m.want.ids, m.want.n * sizeof(*m.want.ids));
                o->nwanted += m.want.n;
            }
        } else if (!r && m.type == MSG_ACK && m.ack.seq == o->seq) {
            o->acked = true;
        } else if (!r && m.type == MSG_ERROR && !(m.error.flags & MSG_ERROR_FATAL) &&
                   m.error.path[0]) {
            if (o->sent) /* one path refused; the batch goes on */
                o->sent(o->arg, m.error.path, &(struct path_state){0}, true);
        } else if (!r && m.type == MSG_ERROR) {
            snprintf(o->reader_err, sizeof(o->reader_err), "the far side failed: %s",
                     m.error.message);
            r = -(int)m.error.code;
        } else if (!r) {
            snprintf(o->reader_err, sizeof(o->reader_err), "unexpected %s after COMMIT %llu",
                     msg_type_name(m.type), (unsigned long long)o->seq);
            r = -EPROTO;
        }
        if (r) {
            o->failed = true;
            o->reader_code = r;
        }
        bool stop = r || o->acked;
        pthread_cond_signal(&o->cond);
        pthread_mutex_unlock(&o->lock);
        if (!r)
            msg_release(&m);
        if (stop)
            return NULL;
    }
}

static int send_chunk(struct outbox *o, const struct content_id *id, uint8_t *buf)
{
    char *path = NULL;
    uint64_t off;
    uint32_t len;
    int r = index_find_chunk(o->ix, id, &path, &off, &len);
    if (r)
        return snprintf(o->err, o->errsize, "a chunk the far side wants is no longer here"), r;
    int fd = openat(o->root_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t n = fd >= 0 ? pread(fd, buf, len, (off_t)off) : -1;
    if (fd >= 0)
        close(fd);
    struct content_id got;
    if (n == (ssize_t)len)
        content_id_of_chunk(buf, len, &got);
    if (n != (ssize_t)len || !content_id_eq(&got, id)) {
        snprintf(o->err, o->errsize, "%s changed during the sync; run it again", path);
        free(path);
        return -EAGAIN;
    }
    free(path);
    struct msg m = {.type = MSG_DATA, .data = {.id = *id, .bytes = buf, .len = len}};
    r = wire_send(o->w, &m, o->err, o->errsize);
    if (!r) {
        o->c->chunks_sent++;
        o->c->data_bytes += len;
    }
    return r;
}

/* After COMMIT: DATA for every WANT until the ACK. */
static int answer_wants(struct outbox *o)
{
    pthread_t reader;
    int r = -pthread_create(&reader, NULL, reader_main, o);
    if (r)
        return r;
    uint8_t *buf = malloc(CHUNKER_MAX_SIZE);
    r = buf ? 0 : -ENOMEM;
    size_t done = 0;
    for (;;) {
        pthread_mutex_lock(&o->lock);
        while (!r && done == o->nwanted && !o->acked && !o->failed)
            pthread_cond_wait(&o->cond, &o->lock);
        size_t to = o->nwanted;
        bool finished = o->acked || o->failed;
        pthread_mutex_unlock(&o->lock);
        if (r || (finished && done == to))
            break;
        for (; !r && done < to; done++) {
            pthread_mutex_lock(&o->lock);
            struct content_id id = o->wanted[done]; /* the array may move */
            pthread_mutex_unlock(&o->lock);
            r = send_chunk(o, &id, buf);
        }
        if (!r)
            r = wire_flush(o->w, o->err, o->errsize);
    }
    if (r)
        pthread_cancel(reader); /* it may wait for an ACK that will not come */
    pthread_join(reader, NULL);
    free(buf);
    if (!r && o->failed) {
        snprintf(o->err, o->errsize, "%s", o->reader_err);
        r = o->reader_code;
    }
    return r;
}

int outbox_send(struct wire *w, struct index *ix, int root_fd, const struct msg_pull_entry *items,
                size_t n, uint64_t seq, outbox_sent_fn sent, void *arg,
                struct outbox_counts *counts, char *err, size_t errsize)
{
    struct outbox o = {.w = w, .ix = ix, .root_fd = root_fd, .seq = seq, .sent = sent,
                       .arg = arg, .c = counts, .err = err, .errsize = errsize};
    pthread_mutex_init(&o.lock, NULL);
    pthread_cond_init(&o.cond, NULL);
    int r = 0;
    for (size_t i = 0; !r && i < n; i++)
        r = send_item(&o, &items[i]);
    struct msg commit = {.type = MSG_COMMIT, .commit = {.seq = seq}};
    if (!r)
        r = wire_send(w, &commit, err, errsize);
    if (!r)
        r = wire_flush(w, err, errsize);
    if (!r)
        r = answer_wants(&o);
    free(o.wanted);
    pthread_mutex_destroy(&o.lock);
    pthread_cond_destroy(&o.cond);
    return r;
}
