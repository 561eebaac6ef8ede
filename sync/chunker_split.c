/*
 * chunker_split.c — chunk one big file on two threads (chunker_split.h).
 *
 * Content-defined cuts depend only on the bytes since the last cut, so a
 * helper can chunk the second half of a file from its middle as if a chunk
 * started there, while this thread chunks from the start.  The helper's
 * first cuts may differ from the sequential ones (it started where no
 * chunk did), but as soon as one cut of this thread past the middle falls
 * where one of the helper's chunks starts, both continue from the same
 * state on the same bytes: every later chunk is the helper's.  Usually that
 * happens within a chunk or two of the middle; if it never does, this
 * thread simply goes on to the end and the helper's work is dropped.  The
 * result is exactly the sequential one (tests/unit/test_chunker.c checks).
 */
#include "chunker_split.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_BUFFER (1u << 20)

struct run {
    int fd;
    uint64_t from;     /* a chunk starts here */
    uint64_t mid;      /* 0, or: stop at the first cut >= mid that is in `other` */
    struct run *other; /* the helper, joined the first time a cut passes mid */
    pthread_t thread;
    bool joined;
    struct chunk_vec chunks;
    bool synced; /* stopped at other->chunks.v[sync_at].off */
    size_t sync_at;
    int r;
};

/* Where the other run has a chunk starting at off, or SIZE_MAX. */
static size_t find_start(const struct run *o, uint64_t off)
{
    const struct chunk_vec *a = &o->chunks;
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t m = lo + (hi - lo) / 2;
        if (a->v[m].off < off)
            lo = m + 1;
        else
            hi = m;
    }
    return lo < a->n && a->v[lo].off == off ? lo : SIZE_MAX;
}

/* After a cut ending at end: true if this run may stop (synced). */
static bool synced_at(struct run *x, uint64_t end)
{
    if (!x->other || end < x->mid)
        return false;
    if (!x->joined) {
        pthread_join(x->other->thread, NULL);
        x->joined = true;
    }
    if (x->other->r)
        return false; /* its list is no good: go on alone */
    size_t k = find_start(x->other, end);
    if (k == SIZE_MAX)
        return false;
    x->synced = true;
    x->sync_at = k;
    return true;
}

/* Chunk [from, EOF) of fd with pread, as chunker_hash_fd does from 0. */
static int chunk_from(struct run *x)
{
    uint8_t *buf = malloc(READ_BUFFER);
    if (!buf)
        return -ENOMEM;
    struct chunker c;
    struct chunk_span span;
    struct content_hasher piece; /* the chunk that spans reads, if `partial` */
    struct content_id id;
    bool partial = false;
    uint64_t pos = x->from;
    int r = 0;
    chunker_init(&c);
    content_hasher_init(&piece);
    for (;;) {
        ssize_t got = pread(x->fd, buf, READ_BUFFER, (off_t)pos);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            r = -errno;
            break;
        }
        if (got == 0) {
            if (chunker_finish(&c, &span)) {
                content_hasher_final(&piece, &id);
                struct chunk last = {.off = x->from + span.off, .len = span.len, .id = id};
                r = chunk_vec_append(&x->chunks, &last, 1);
            }
            break;
        }
        size_t k = 0, used;
        bool stop = false;
        while (!r && !stop && k < (size_t)got) {
            bool cut = chunker_next(&c, buf + k, (size_t)got - k, &used, &span);
            if (!cut) {
                if (!partial)
                    content_hasher_init(&piece);
                content_hasher_update(&piece, buf + k, used);
                partial = true;
            } else {
                if (partial) {
                    content_hasher_update(&piece, buf + k, used);
                    content_hasher_final(&piece, &id);
                    partial = false;
                } else {
                    content_id_of_chunk(buf + k, used, &id);
                }
                struct chunk made = {.off = x->from + span.off, .len = span.len, .id = id};
                r = chunk_vec_append(&x->chunks, &made, 1);
                stop = !r && synced_at(x, made.off + made.len);
            }
            k += used;
        }
        pos += (uint64_t)got;
        if (r || stop)
            break;
    }
    free(buf);
    return r;
}

static void *helper_main(void *arg)
{
    struct run *x = arg;
    x->r = chunk_from(x);
    return NULL;
}

int chunker_hash_fd_split(int fd, struct chunk **chunks, size_t *nchunks,
                          struct content_id *file_id, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < CHUNKER_SPLIT_MIN)
        return chunker_hash_fd(fd, chunks, nchunks, file_id, size);
    uint64_t mid = (uint64_t)st.st_size / 2 / 4096 * 4096;
    struct run helper = {.fd = fd, .from = mid};
    struct run self = {.fd = fd, .from = 0, .mid = mid, .other = &helper};
    if (pthread_create(&helper.thread, NULL, helper_main, &helper) != 0)
        return chunker_hash_fd(fd, chunks, nchunks, file_id, size);
    int r = chunk_from(&self);
    if (!self.joined)
        pthread_join(helper.thread, NULL);
    /* This run's chunks, then the helper's from where they met. */
    struct chunk_vec *all = &self.chunks, *theirs = &helper.chunks;
    size_t from = self.synced ? self.sync_at : theirs->n;
    if (!r)
        r = chunk_vec_append(all, theirs->v + from, theirs->n - from);
    free(theirs->v);
    if (r) {
        free(all->v);
        return r;
    }
    struct content_hasher h;
    content_hasher_init(&h);
    for (size_t i = 0; i < all->n; i++)
        content_hasher_update(&h, all->v[i].id.b, CONTENT_ID_SIZE);
    if (file_id)
        content_hasher_final(&h, file_id);
    if (size)
        *size = all->n ? all->v[all->n - 1].off + all->v[all->n - 1].len : 0;
    if (chunks) {
        *chunks = all->v;
        *nchunks = all->n;
    } else {
        free(all->v);
    }
    return 0;
}
