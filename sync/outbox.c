/*
 * outbox.c — see outbox.h.  The same steps as push.c's sender, for an
 * explicit list of paths; push.c plans its own UPDATEs (it diffs whole
 * trees against a manifest and sends hard links).  What follows COMMIT,
 * the WANT/DATA exchange, is shared with push.c (chunk_send.h).
 */
#include "outbox.h"
#include "chunk_send.h"
#include "index.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct outbox {
    struct wire *w;
    struct index *ix;
    int root_fd;
    outbox_sent_fn sent;
    void *arg;
    struct outbox_counts *c;
    char *err;
    size_t errsize;
    struct chunk_wants wants; /* filled by the reader thread */
};

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
            r = chunk_send_read_small(o->root_fd, f.path, small, (size_t)f.size);
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

/* The far side refused one path (reader thread, under wants.lock). */
static void refused(void *arg, const char *path)
{
    struct outbox *o = arg;
    if (o->sent)
        o->sent(o->arg, path, &(struct path_state){0}, true);
}

static int send_chunk(void *arg, const struct content_id *id, uint8_t *buf)
{
    struct outbox *o = arg;
    struct chunk_source src = {.ix = o->ix, .root_fd = o->root_fd, .doing = "sync"};
    uint32_t len;
    int r = chunk_send_data(o->w, &src, id, buf, &len, o->err, o->errsize);
    if (!r) {
        o->c->chunks_sent++;
        o->c->data_bytes += len;
    }
    return r;
}

int outbox_send(struct wire *w, struct index *ix, int root_fd, const struct msg_pull_entry *items,
                size_t n, uint64_t seq, outbox_sent_fn sent, void *arg,
                struct outbox_counts *counts, char *err, size_t errsize)
{
    struct outbox o = {.w = w, .ix = ix, .root_fd = root_fd, .sent = sent,
                       .arg = arg, .c = counts, .err = err, .errsize = errsize};
    o.wants = (struct chunk_wants){.w = w, .refused = refused, .arg = &o};
    chunk_wants_init(&o.wants);
    int r = 0;
    for (size_t i = 0; !r && i < n; i++)
        r = send_item(&o, &items[i]);
    struct msg commit = {.type = MSG_COMMIT, .commit = {.seq = seq}};
    if (!r)
        r = wire_send(w, &commit, err, errsize);
    if (!r)
        r = wire_flush(w, err, errsize);
    if (!r) /* DATA for every WANT until the ACK */
        r = chunk_wants_serve(&o.wants, seq, send_chunk, NULL, err, errsize);
    chunk_wants_destroy(&o.wants);
    return r;
}
