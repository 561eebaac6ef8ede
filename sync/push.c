/*
 * push.c — the sending side of the protocol (docs/protocol.md).
 *
 * Index SRC (stat-only for what did not change), start the far side, read
 * its manifest, and stream an UPDATE for every path whose type, mode or
 * content differs and a DELETE for every extra path, then COMMIT.  The far
 * side answers with WANT frames for the chunks it lacks; a reader thread
 * collects them while this thread sends DATA, so neither side can block the
 * other on a full pipe.  Files up to WIRE_INLINE_MAX travel inside UPDATE.
 */
#include "push.h"
#include "index.h"
#include "indexer.h"
#include "message.h"
#include "transport.h"
#include "tree_root.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* ---- the far side's manifest, by path ---- */

struct remote {
    struct msg_entry e; /* path and target owned here */
    bool seen;
};

struct remote_map {
    struct remote *v;
    size_t cap, n;
    char **order; /* paths in manifest (sorted) order, for deletes */
};

static size_t slot(const struct remote_map *m, const char *path)
{
    size_t i = XXH3_64bits(path, strlen(path)) & (m->cap - 1);
    while (m->v[i].e.path && strcmp(m->v[i].e.path, path) != 0)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int remote_add(struct remote_map *m, const struct msg_entry *e)
{
    if ((m->n + 1) * 2 > m->cap) {
        struct remote_map g = {.cap = m->cap ? m->cap * 2 : 1024};
        g.v = calloc(g.cap, sizeof(*g.v));
        if (!g.v)
            return -ENOMEM;
        for (size_t i = 0; i < m->cap; i++)
            if (m->v[i].e.path)
                g.v[slot(&g, m->v[i].e.path)] = m->v[i];
        free(m->v);
        m->v = g.v;
        m->cap = g.cap;
        char **order = realloc(m->order, g.cap * sizeof(*order));
        if (!order)
            return -ENOMEM;
        m->order = order;
    }
    struct remote *r = &m->v[slot(m, e->path)];
    r->e = *e;
    r->e.path = strdup(e->path);
    r->e.target = e->target ? strdup(e->target) : NULL;
    if (!r->e.path)
        return -ENOMEM;
    m->order[m->n++] = (char *)r->e.path;
    return 0;
}

static struct remote *remote_get(struct remote_map *m, const char *path)
{
    if (!m->cap)
        return NULL;
    struct remote *r = &m->v[slot(m, path)];
    return r->e.path ? r : NULL;
}

static void remote_free(struct remote_map *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free((char *)m->v[i].e.path);
        free((char *)m->v[i].e.target);
    }
    free(m->v);
    free(m->order);
}

/* ---- the session ---- */

struct sender {
    const struct push_options *opt;
    struct push_result *res;
    char *src;
    int src_fd;
    struct index *ix;
    struct indexer *in;
    struct wire *w;
    struct remote_map remote;
    char *err;
    size_t errsize;
    struct timespec t0;
    /* what the reader thread collects after COMMIT */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct content_id *wanted;
    size_t nwanted, wanted_cap, wanted_done;
    bool acked, failed;
    struct msg_ack ack;
    char reader_err[1024];
    uint64_t seq;       /* last COMMIT sent */
    struct dest dest;
    struct transport t;
};

static double elapsed(const struct sender *p)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - p->t0.tv_sec) + (double)(t.tv_nsec - p->t0.tv_nsec) / 1e9;
}

static void progress(struct sender *p, const char *phase, bool done)
{
    if (!p->opt->progress)
        return;
    struct wire_stats ws = {0};
    if (p->w)
        wire_get_stats(p->w, &ws);
    double t = elapsed(p);
    if (p->opt->on_progress) {
        pthread_mutex_lock(&p->lock); /* the reader thread counts wanted chunks */
        struct push_progress pp = {.phase = phase, .done = done, .files = p->res->files,
                                   .chunks_sent = p->res->chunks_sent,
                                   .chunks_wanted = p->res->chunks_wanted,
                                   .data_bytes = p->res->data_bytes, .bytes_out = ws.bytes_out,
                                   .seconds = t};
        pthread_mutex_unlock(&p->lock);
        p->opt->on_progress(&pp, p->opt->progress_arg);
        return;
    }
    fprintf(stderr, "\r%-10s %6llu files %6llu chunks %8.1f MiB out %7.1f MiB/s %6.1f s%s",
            phase, (unsigned long long)p->res->files,
            (unsigned long long)p->res->chunks_sent, (double)ws.bytes_out / (1 << 20),
            t > 0 ? (double)ws.bytes_out / (1 << 20) / t : 0.0, t, done ? "\n" : "");
}

static int send_msg(struct sender *p, const struct msg *m)
{
    return wire_send(p->w, m, p->err, p->errsize);
}

/* When a send fails, the far side usually said why before hanging up. */
static int explain_failure(struct sender *p, int r)
{
    struct msg m;
    char ignored[256];
    if ((r == -EPIPE || r == -ECONNRESET) && wire_recv(p->w, &m, ignored, sizeof(ignored)) == 0) {
        if (m.type == MSG_ERROR)
            snprintf(p->err, p->errsize, "the far side failed: %s", m.error.message);
        msg_release(&m);
    }
    return r;
}

static int read_manifest(struct sender *p)
{
    for (;;) {
        struct msg m;
        int r = wire_recv(p->w, &m, p->err, p->errsize);
        if (r)
            return r;
        if (m.type == MSG_MANIFEST) {
            for (size_t i = 0; !r && i < m.manifest.n; i++)
                r = remote_add(&p->remote, &m.manifest.entries[i]);
        } else if (m.type == MSG_MANIFEST_END) {
            p->res->dest_root = m.manifest_end.root;
            msg_release(&m);
            return 0;
        } else if (m.type == MSG_ERROR) {
            snprintf(p->err, p->errsize, "the far side failed: %s", m.error.message);
            r = -(int)m.error.code;
        } else {
            snprintf(p->err, p->errsize, "expected the manifest, got %s", msg_type_name(m.type));
            r = -EPROTO;
        }
        msg_release(&m);
        if (r)
            return r;
    }
}

/* Read a regular file of at most WIRE_INLINE_MAX bytes whole. */
static int read_small(struct sender *p, const char *path, uint8_t *buf, size_t size)
{
    int fd = openat(p->src_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = pread(fd, buf, size, 0);
    int e = errno;
    close(fd);
    return n == (ssize_t)size ? 0 : n < 0 ? -e : -EAGAIN;
}

/* Inodes seen in this pass: a second name of one is sent as LINK. */
struct ino_seen {
    uint64_t ino;
    char *path;
};

struct plan {
    struct sender *p;
    struct ino_seen *seen;
    size_t nseen, cap; /* cap: power of two */
};

/* The first path seen with this inode, or NULL (and it is recorded). */
static const char *first_name(struct plan *pl, uint64_t ino, const char *path)
{
    if ((pl->nseen + 1) * 2 > pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 1024;
        struct ino_seen *v = calloc(cap, sizeof(*v));
        if (!v)
            return NULL;
        for (size_t i = 0; i < pl->cap; i++) {
            if (!pl->seen[i].path)
                continue;
            size_t j = XXH3_64bits(&pl->seen[i].ino, sizeof(uint64_t)) & (cap - 1);
            while (v[j].path)
                j = (j + 1) & (cap - 1);
            v[j] = pl->seen[i];
        }
        free(pl->seen);
        pl->seen = v;
        pl->cap = cap;
    }
    size_t j = XXH3_64bits(&ino, sizeof(ino)) & (pl->cap - 1);
    while (pl->seen[j].path) {
        if (pl->seen[j].ino == ino)
            return pl->seen[j].path;
        j = (j + 1) & (pl->cap - 1);
    }
    pl->seen[j] = (struct ino_seen){.ino = ino, .path = strdup(path)};
    pl->nseen += pl->seen[j].path != NULL;
    return NULL;
}

static void plan_free(struct plan *pl)
{
    for (size_t i = 0; i < pl->cap; i++)
        free(pl->seen[i].path);
    free(pl->seen);
}

/* One local row: send what the far side lacks. */
static int plan_row(const struct index_file *f, void *arg)
{
    struct plan *pl = arg;
    struct sender *p = pl->p;
    struct remote *rm = remote_get(&p->remote, f->path);
    if (rm)
        rm->seen = true;
    uint32_t mode = f->mode & 0777;
    if (rm && rm->e.type == f->type && (rm->e.mode & 0777) == mode) {
        if (f->type == S_IFDIR)
            return 0;
        /* Same content but another mtime (a touch): resent, and the far
         * side rebuilds it from its own chunks, so no data travels. */
        if (f->type == S_IFREG && content_id_eq(&rm->e.id, &f->id) &&
            rm->e.mtime_ns == f->mtime_ns) {
            first_name(pl, f->ino, f->path); /* a later name may link to it */
            return 0;
        }
        if (f->type == S_IFLNK && rm->e.target && f->target &&
            strcmp(rm->e.target, f->target) == 0)
            return 0;
    }
    const char *first = f->type == S_IFREG ? first_name(pl, f->ino, f->path) : NULL;
    if (first) {
        /* Another name of a file already sent: a hard link there too. */
        p->res->files++;
        struct msg l = {.type = MSG_LINK, .link = {.path = f->path, .existing = first}};
        return p->opt->dry_run ? 0 : send_msg(p, &l);
    }
    struct msg m = {.type = MSG_UPDATE,
                    .update = {.path = f->path, .type = f->type, .mode = mode,
                               .mtime_ns = f->mtime_ns, .target = f->target}};
    uint8_t small[WIRE_INLINE_MAX];
    struct chunk *chunks = NULL;
    int r = 0;
    if (f->type == S_IFREG) {
        m.update.size = (uint64_t)f->size;
        p->res->files++;
        if (f->size <= (int64_t)WIRE_INLINE_MAX) {
            r = read_small(p, f->path, small, (size_t)f->size);
            m.update.inline_data = true;
            m.update.data = small;
        } else {
            r = index_get_chunks(p->ix, f->path, &chunks, &m.update.nchunks);
            m.update.chunks = chunks;
        }
        if (r) {
            snprintf(p->err, p->errsize, "reading %s/%s: %s (did it change during the push?)",
                     p->src, f->path, strerror(-r));
            free(chunks);
            return r;
        }
    } else {
        f->type == S_IFDIR ? p->res->dirs++ : p->res->symlinks++;
    }
    if (!p->opt->dry_run)
        r = send_msg(p, &m);
    free(chunks);
    if ((p->res->files & 255) == 0)
        progress(p, "sending", false);
    return r;
}

/* Extra paths on the far side, topmost only (a DELETE takes the subtree). */
static int send_deletes(struct sender *p)
{
    const char *last = NULL;
    size_t last_len = 0;
    for (size_t i = 0; i < p->remote.n; i++) {
        const char *path = p->remote.order[i];
        struct remote *rm = remote_get(&p->remote, path);
        if (rm->seen)
            continue;
        if (last && strncmp(path, last, last_len) == 0 && path[last_len] == '/')
            continue;
        last = path;
        last_len = strlen(path);
        p->res->deleted++;
        if (p->opt->dry_run)
            continue;
        struct msg m = {.type = MSG_DELETE, .del = {.path = path}};
        int r = send_msg(p, &m);
        if (r)
            return r;
    }
    return 0;
}

static void *reader_main(void *arg)
{
    struct sender *p = arg;
    for (;;) {
        struct msg m;
        int r = wire_recv(p->w, &m, p->reader_err, sizeof(p->reader_err));
        pthread_mutex_lock(&p->lock);
        if (!r && m.type == MSG_WANT) {
            size_t need = p->nwanted + m.want.n;
            if (need > p->wanted_cap) {
                size_t cap = p->wanted_cap ? p->wanted_cap : 1024;
                while (cap < need)
                    cap *= 2;
                struct content_id *v = realloc(p->wanted, cap * sizeof(*v));
                if (!v)
                    r = -ENOMEM;
                else {
                    p->wanted = v;
                    p->wanted_cap = cap;
                }
            }
            if (!r) {
                memcpy(p->wanted + p->nwanted, m.want.ids, m.want.n * sizeof(*m.want.ids));
                p->nwanted = need;
                p->res->chunks_wanted += m.want.n;
            }
        } else if (!r && m.type == MSG_ACK) {
            p->ack = m.ack;
            p->acked = true;
        } else if (!r && m.type == MSG_ERROR) {
            snprintf(p->reader_err, sizeof(p->reader_err), "the far side failed: %s",
                     m.error.message);
            r = -(int)m.error.code;
        } else if (!r) {
            snprintf(p->reader_err, sizeof(p->reader_err), "unexpected %s after COMMIT",
                     msg_type_name(m.type));
            r = -EPROTO;
        }
        if (r)
            p->failed = true;
        bool stop = r || p->acked;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
        if (!r)
            msg_release(&m);
        if (stop)
            return NULL;
    }
}

/* Send one wanted chunk, read from wherever SRC holds it. */
static int send_chunk(struct sender *p, const struct content_id *id, uint8_t *buf)
{
    char *path = NULL;
    uint64_t off;
    uint32_t len;
    int r = index_find_chunk(p->ix, id, &path, &off, &len);
    if (r) {
        snprintf(p->err, p->errsize, "a chunk the far side wants is no longer in %s", p->src);
        return r;
    }
    int fd = openat(p->src_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t n = fd >= 0 ? pread(fd, buf, len, (off_t)off) : -1;
    if (fd >= 0)
        close(fd);
    struct content_id got;
    if (n == (ssize_t)len)
        content_id_of_chunk(buf, len, &got);
    if (n != (ssize_t)len || !content_id_eq(&got, id)) {
        snprintf(p->err, p->errsize, "%s/%s changed during the push; run it again", p->src,
                 path);
        free(path);
        return -EAGAIN;
    }
    free(path);
    struct msg m = {.type = MSG_DATA, .data = {.id = *id, .bytes = buf, .len = len}};
    r = send_msg(p, &m);
    if (!r) {
        p->res->chunks_sent++;
        p->res->data_bytes += len;
        if (p->opt->on_progress)
            progress(p, "data", false);
    }
    return r;
}

/* After COMMIT: answer WANTs with DATA until the far side ACKs. */
static int serve_wants(struct sender *p)
{
    pthread_t reader;
    int r = pthread_create(&reader, NULL, reader_main, p);
    if (r)
        return -r;
    uint8_t *buf = malloc(CHUNKER_MAX_SIZE);
    r = buf ? 0 : -ENOMEM;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (!r && p->wanted_done == p->nwanted && !p->acked && !p->failed)
            pthread_cond_wait(&p->cond, &p->lock);
        size_t from = p->wanted_done, to = p->nwanted;
        bool finished = p->acked || p->failed;
        pthread_mutex_unlock(&p->lock);
        if (r || (finished && from == to))
            break;
        for (size_t i = from; !r && i < to; i++) {
            pthread_mutex_lock(&p->lock);
            struct content_id id = p->wanted[i]; /* the array may move while we send */
            pthread_mutex_unlock(&p->lock);
            r = send_chunk(p, &id, buf);
        }
        if (!r)
            r = wire_flush(p->w, p->err, p->errsize);
        pthread_mutex_lock(&p->lock);
        p->wanted_done = to;
        pthread_mutex_unlock(&p->lock);
        progress(p, "data", false);
    }
    if (r) {
        /* A far side that fails usually says why (ERROR) before it hangs
         * up on our DATA: give the reader a moment to read that, then stop
         * it, since it may wait for an ACK that will not come. */
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 2;
        pthread_mutex_lock(&p->lock);
        while ((r == -EPIPE || r == -ECONNRESET) && !p->failed && !p->acked)
            if (pthread_cond_timedwait(&p->cond, &p->lock, &dl) == ETIMEDOUT)
                break;
        if (p->failed && (r == -EPIPE || r == -ECONNRESET) &&
            strncmp(p->reader_err, "the far side failed", 19) == 0)
            snprintf(p->err, p->errsize, "%s", p->reader_err);
        pthread_mutex_unlock(&p->lock);
        pthread_cancel(reader);
    }
    pthread_join(reader, NULL);
    free(buf);
    if (!r && p->failed) {
        snprintf(p->err, p->errsize, "%s", p->reader_err);
        r = -EPROTO;
    }
    return r;
}

static int open_source(struct sender *p)
{
    p->src = realpath(p->opt->src, NULL);
    struct stat st;
    if (!p->src || stat(p->src, &st) < 0)
        return snprintf(p->err, p->errsize, "source %s: %s", p->opt->src, strerror(errno)),
               -errno;
    if (!S_ISDIR(st.st_mode))
        return snprintf(p->err, p->errsize, "source %s is not a directory", p->src), -ENOTDIR;
    p->src_fd = open(p->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char state[PATH_MAX];
    snprintf(state, sizeof(state), "%s/.wsync", p->src);
    if (mkdir(state, 0700) < 0 && errno != EEXIST)
        return snprintf(p->err, p->errsize, "cannot create %s: %s", state, strerror(errno)),
               -errno;
    int r = index_open(-1, state, false, &p->ix, p->err, p->errsize);
    if (!r)
        r = indexer_new(p->src, p->ix, &p->in, p->err, p->errsize);
    if (!r && !p->opt->trust_index) {
        progress(p, "indexing", false);
        r = indexer_scan(p->in, NULL);
        if (r)
            snprintf(p->err, p->errsize, "indexing %s: %s", p->src, strerror(-r));
    }
    if (!r && (r = tree_root_from_index(p->ix, &p->res->src_root)))
        snprintf(p->err, p->errsize, "tree root of %s: %s", p->src, strerror(-r));
    return r;
}

static int handshake(struct sender *p)
{
    uint32_t flags = (p->opt->delete_extra ? MSG_HELLO_DELETE : 0) |
                     (p->opt->dry_run ? MSG_HELLO_DRY_RUN : 0) |
                     (p->opt->verify_only ? MSG_HELLO_VERIFY : 0);
    struct msg hello = {.type = MSG_HELLO, .hello = {.role = MSG_ROLE_SENDER, .flags = flags}};
    int r = send_msg(p, &hello);
    if (!r)
        r = wire_flush(p->w, p->err, p->errsize);
    struct msg theirs;
    if (!r && !(r = wire_recv(p->w, &theirs, p->err, p->errsize))) {
        if (theirs.type == MSG_ERROR) {
            snprintf(p->err, p->errsize, "the far side failed: %s", theirs.error.message);
            r = -EPROTO;
        } else if (theirs.hello.role != MSG_ROLE_RECEIVER) {
            snprintf(p->err, p->errsize, "the far side is not a receiver");
            r = -EPROTO;
        }
        msg_release(&theirs);
    }
    return r ? r : read_manifest(p);
}

/* COMMIT what was sent since the last one and wait until it is durable. */
static int commit_batch(struct sender *p, bool want_root)
{
    /* The root costs the far side a pass over its index: only when asked. */
    struct msg commit = {.type = MSG_COMMIT,
                         .commit = {.seq = ++p->seq,
                                    .flags = want_root ? MSG_COMMIT_WANT_ROOT : 0}};
    int r = send_msg(p, &commit);
    if (!r)
        r = wire_flush(p->w, p->err, p->errsize);
    if (r)
        return explain_failure(p, r);
    p->nwanted = p->wanted_done = 0;
    p->acked = p->failed = false;
    r = serve_wants(p);
    if (!r && want_root)
        p->res->dest_root = p->ack.root;
    return r;
}

int sender_sync_all(struct sender *p)
{
    struct plan pl = {.p = p};
    int r = index_foreach(p->ix, "", plan_row, &pl);
    plan_free(&pl);
    if (!r && p->opt->delete_extra)
        r = send_deletes(p);
    if (r || p->opt->dry_run)
        return r ? explain_failure(p, r) : 0;
    return commit_batch(p, true);
}

/* Send the current state of one path: its row and everything below it, or
 * DELETE when the index no longer has it. */
static int send_path(struct sender *p, const char *path, bool *deleted)
{
    struct index_file f;
    *deleted = index_get(p->ix, path, &f) != 0;
    if (*deleted)
        return 0;
    index_file_release(&f);
    struct plan pl = {.p = p};
    int r = index_foreach(p->ix, path, plan_row, &pl);
    plan_free(&pl);
    return r;
}

int sender_sync_paths(struct sender *p, char *const *paths, size_t n)
{
    /* The far side's manifest is stale after the first batch: every listed
     * path is sent as it is now; chunks it already has are not. */
    remote_free(&p->remote);
    memset(&p->remote, 0, sizeof(p->remote));
    bool *gone = calloc(n ? n : 1, sizeof(*gone));
    if (!gone)
        return -ENOMEM;
    int r = 0;
    for (size_t i = 0; !r && i < n; i++)
        r = send_path(p, paths[i], &gone[i]);
    /* Deletes after updates: a moved file's chunks are still there to copy. */
    for (size_t i = 0; !r && i < n; i++) {
        if (!gone[i])
            continue;
        struct msg m = {.type = MSG_DELETE, .del = {.path = paths[i]}};
        p->res->deleted++;
        r = send_msg(p, &m);
    }
    free(gone);
    return r ? explain_failure(p, r) : commit_batch(p, false);
}

int sender_open(const struct push_options *opt, struct push_result *res, struct sender **out,
                char *err, size_t errsize)
{
    memset(res, 0, sizeof(*res));
    err[0] = '\0';
    struct sender *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    *p = (struct sender){.opt = opt, .res = res, .err = err, .errsize = errsize, .src_fd = -1,
                         .t = {.to_fd = -1, .from_fd = -1}};
    clock_gettime(CLOCK_MONOTONIC, &p->t0);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    *out = p;
    int r = dest_parse(opt->dest, &p->dest, err, errsize);
    if (!r)
        r = open_source(p);
    if (!r)
        r = transport_start(&p->dest, opt->rsh, opt->wsync_path, NULL,
                            opt->far_stderr_set ? opt->far_stderr_fd : -1, &p->t, err, errsize);
    if (!r && opt->on_child)
        opt->on_child(p->t.pid, opt->on_child_arg);
    if (!r && !(p->w = wire_new(p->t.from_fd, p->t.to_fd)))
        r = -ENOMEM;
    if (!r)
        r = handshake(p);
    if (r && !err[0])
        snprintf(err, errsize, "%s", strerror(-r));
    return r;
}

int sender_close(struct sender *p, int r)
{
    if (!p)
        return r;
    if (p->w) {
        struct msg bye = {.type = MSG_BYE};
        char ignored[128];
        if (!r && wire_send(p->w, &bye, ignored, sizeof(ignored)) == 0)
            wire_flush(p->w, ignored, sizeof(ignored));
        struct wire_stats ws;
        wire_get_stats(p->w, &ws);
        p->res->bytes_out = ws.bytes_out;
        p->res->bytes_in = ws.bytes_in;
    }
    if (p->t.pid && p->opt->on_child)
        p->opt->on_child(0, p->opt->on_child_arg);
    int status = p->t.pid ? transport_finish(&p->t, r ? 2000 : 30000) : 0;
    if (!r && status != 0) {
        snprintf(p->err, p->errsize, "the far side exited with status %d", status);
        r = -EPROTO;
    }
    if (r && !p->err[0])
        snprintf(p->err, p->errsize, "%s", strerror(-r));
    p->res->seconds = elapsed(p);
    progress(p, r ? "failed" : "done", true);
    wire_free(p->w);
    indexer_free(p->in);
    index_close(p->ix);
    remote_free(&p->remote);
    if (p->src_fd >= 0)
        close(p->src_fd);
    free(p->src);
    free(p->wanted);
    dest_release(&p->dest);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
    return r;
}

void sender_traffic(struct sender *p, uint64_t *out, uint64_t *in)
{
    struct wire_stats ws = {0};
    if (p->w)
        wire_get_stats(p->w, &ws);
    *out = ws.bytes_out;
    *in = ws.bytes_in;
}

int push_run(const struct push_options *opt, struct push_result *res, char *err,
             size_t errsize)
{
    struct sender *p = NULL;
    int r = sender_open(opt, res, &p, err, errsize);
    if (!r && !opt->verify_only)
        r = sender_sync_all(p);
    return sender_close(p, r);
}
