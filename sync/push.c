/*
 * push.c — the sending side of the protocol (docs/protocol.md).
 *
 * Start the far side, index SRC (stat-only for what did not change) while
 * it indexes ROOT, and find where the trees differ by descending through
 * the directories whose subtree digests differ (manifest.h, LIST).  Then
 * stream an UPDATE for every path whose type, mode, mtime or content
 * differs and a DELETE for every extra path, then COMMIT.  The far side
 * answers with WANT frames for the chunks (and chunk groups) it lacks; a
 * reader thread collects them while this thread sends DATA and GROUP, so
 * neither side can block the other on a full pipe.  Files up to
 * WIRE_INLINE_MAX travel inside UPDATE.
 */
#include "push.h"
#include "chunk_send.h"
#include "index.h"
#include "indexer.h"
#include "manifest.h"
#include "message.h"
#include "remote_map.h"
#include "sent_groups.h"
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

/* A file with at least this many chunks, which the far side has at the
 * same path, sends its chunk list as group ids (chunk_groups.h): ~28 bytes
 * per ~32 chunks, plus the groups the far side lacks, instead of 20 bytes
 * per chunk.  Below it the saving is not worth a round trip. */
#define GROUPED_MIN_CHUNKS 64

/* ---- the session ---- */

struct sender {
    const struct push_options *opt;
    struct push_result *res;
    char *src;
    int src_fd;
    struct index *ix;
    struct indexer *in;
    struct wire *w;
    struct manifest *local; /* SRC's manifest, with subtree digests */
    bool *pruned;           /* per local entry: a directory whose subtree the far side has */
    bool listed;            /* remote holds the answer to HELLO, not yet used */
    bool elided;            /* ... which was: identical, nothing listed */
    uint64_t sent;          /* messages sent in the current batch */
    struct remote_map remote;
    struct sent_groups groups; /* chunk groups sent in the open batch */
    char *err;
    size_t errsize;
    struct timespec t0;
    struct chunk_wants wants; /* what the reader thread collects after COMMIT */
    uint64_t seq;             /* last COMMIT sent */
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
        pthread_mutex_lock(&p->wants.lock); /* the reader thread counts wanted chunks */
        struct push_progress pp = {.phase = phase, .done = done, .files = p->res->files,
                                   .chunks_sent = p->res->chunks_sent,
                                   .chunks_wanted = p->res->chunks_wanted,
                                   .data_bytes = p->res->data_bytes, .bytes_out = ws.bytes_out,
                                   .seconds = t};
        pthread_mutex_unlock(&p->wants.lock);
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
    p->sent++;
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

/* Read MANIFEST frames into the remote map until MANIFEST_END. */
static int read_listing(struct sender *p)
{
    for (;;) {
        struct msg m;
        int r = wire_recv(p->w, &m, p->err, p->errsize);
        if (r)
            return r;
        if (m.type == MSG_MANIFEST) {
            for (size_t i = 0; !r && i < m.manifest.n; i++)
                r = remote_map_add(&p->remote, &m.manifest.entries[i]);
        } else if (m.type == MSG_MANIFEST_END) {
            p->res->dest_root = m.manifest_end.root;
            p->elided = (m.manifest_end.flags & MSG_MANIFEST_ELIDED) != 0;
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

/* Send u's chunk list as group ids; remember each group to answer a WANT. */
static int group_list(struct sender *p, struct msg_update *u, struct chunk_group **groups)
{
    size_t n;
    int r = chunk_groups_cut(u->chunks, u->nchunks, groups, &n);
    size_t start = 0;
    for (size_t i = 0; !r && i < n; i++) {
        r = sent_groups_add(&p->groups, &(*groups)[i].id, u->chunks + start, (*groups)[i].count);
        start += (*groups)[i].count;
    }
    if (!r) {
        u->groups = *groups;
        u->ngroups = n;
    }
    return r;
}

/* One local row: send what the far side lacks. */
static int plan_row(const struct index_file *f, void *arg)
{
    struct plan *pl = arg;
    struct sender *p = pl->p;
    struct remote *rm = remote_map_get(&p->remote, f->path);
    if (rm)
        rm->seen = true;
    uint32_t mode = f->mode & 0777;
    if (rm && rm->e.type == f->type && (rm->e.mode & 0777) == mode) {
        if (f->type == S_IFDIR && rm->e.mtime_ns == f->mtime_ns)
            return 0;
        /* Same content but another mtime (a touch): resent, and the far
         * side rebuilds it from its own chunks, so no data travels. */
        if (f->type == S_IFREG && content_id_eq(&rm->e.id, &f->id) &&
            rm->e.mtime_ns == f->mtime_ns) {
            first_name(pl, f->ino, f->path); /* a later name may link to it */
            return 0;
        }
        if (f->type == S_IFLNK && rm->e.target && f->target &&
            strcmp(rm->e.target, f->target) == 0 && rm->e.mtime_ns == f->mtime_ns)
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
    uint8_t small[WIRE_INLINE_MAX + 1]; /* + 1: chunk_send_read_small */
    struct chunk *chunks = NULL;
    struct chunk_group *groups = NULL;
    int r = 0;
    if (f->type == S_IFREG) {
        m.update.size = (uint64_t)f->size;
        p->res->files++;
        /* A small file travels inline, unless the far side has this very
         * content at this path (a touch or chmod): then its one-chunk list
         * lets the far side set mode and mtime in place, with no copy. */
        bool there = rm && rm->e.type == S_IFREG && content_id_eq(&rm->e.id, &f->id);
        if (f->size <= (int64_t)WIRE_INLINE_MAX && !(there && f->size > 0)) {
            r = chunk_send_read_small(p->src_fd, f->path, small, (size_t)f->size);
            m.update.inline_data = true;
            m.update.data = small;
        } else {
            r = index_get_chunks(p->ix, f->path, &chunks, &m.update.nchunks);
            m.update.chunks = chunks;
            if (!r && rm && rm->e.type == S_IFREG && m.update.nchunks >= GROUPED_MIN_CHUNKS)
                r = group_list(p, &m.update, &groups);
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
    free(groups);
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
        struct remote *rm = remote_map_get(&p->remote, path);
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

/* Called by the reader thread, under wants.lock. */
static void count_wanted(void *arg, size_t n)
{
    struct sender *p = arg;
    p->res->chunks_wanted += n;
}

/* Send one wanted chunk, read from wherever SRC holds it. */
static int send_chunk(void *arg, const struct content_id *id, uint8_t *buf)
{
    struct sender *p = arg;
    const struct sent_group *g = sent_groups_get(&p->groups, id);
    if (g) { /* a group of a grouped chunk list: its chunks' lengths and ids */
        struct msg m = {.type = MSG_GROUP, .group = {.id = *id, .chunks = g->chunks, .n = g->n}};
        return send_msg(p, &m);
    }
    struct chunk_source src = {.ix = p->ix, .root_fd = p->src_fd, .name = p->src,
                               .doing = "push"};
    uint32_t len;
    int r = chunk_send_data(p->w, &src, id, buf, &len, p->err, p->errsize);
    if (!r) {
        p->res->chunks_sent++;
        p->res->data_bytes += len;
        if (p->opt->on_progress)
            progress(p, "data", false);
    }
    return r;
}

/* After each run of DATA, flushed. */
static void data_sent(void *arg)
{
    struct sender *p = arg;
    p->res->t_data = elapsed(p);
    progress(p, "data", false);
}

/* SRC is a directory (checked before the far side is started). */
static int check_source(struct sender *p)
{
    p->src = realpath(p->opt->src, NULL);
    struct stat st;
    if (!p->src || stat(p->src, &st) < 0)
        return snprintf(p->err, p->errsize, "source %s: %s", p->opt->src, strerror(errno)),
               -errno;
    if (!S_ISDIR(st.st_mode))
        return snprintf(p->err, p->errsize, "source %s is not a directory", p->src), -ENOTDIR;
    p->src_fd = open(p->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return p->src_fd < 0 ? -errno : 0;
}

/* Index SRC (while the far side indexes ROOT), its root and manifest. */
static int open_source(struct sender *p)
{
    char state[PATH_MAX];
    snprintf(state, sizeof(state), "%s/.wsync", p->src);
    if (mkdir(state, 0700) < 0 && errno != EEXIST)
        return snprintf(p->err, p->errsize, "cannot create %s: %s", state, strerror(errno)),
               -errno;
    int r = index_open(-1, state, false, &p->ix, p->err, p->errsize);
    if (!r)
        r = indexer_new(p->src, p->ix, &p->in, p->err, p->errsize);
    if (!r) /* the far side is idle until our HELLO: its core is free */
        indexer_set_split(p->in, true);
    if (!r && !p->opt->trust_index) {
        progress(p, "indexing", false);
        /* The manifest comes from the rows the scan loaded, when it
         * changed none: the index is read once, not twice. */
        r = indexer_scan_manifest(p->in, 0777, NULL, &p->local);
        if (r)
            snprintf(p->err, p->errsize, "indexing %s: %s", p->src, strerror(-r));
    }
    if (!r && !p->local && (r = manifest_build(p->ix, 0777, &p->local)))
        snprintf(p->err, p->errsize, "manifest of %s: %s", p->src, strerror(-r));
    if (!r && (r = tree_root_from_manifest(p->local, &p->res->src_root)))
        snprintf(p->err, p->errsize, "tree root of %s: %s", p->src, strerror(-r));
    p->res->t_indexed = elapsed(p);
    return r;
}

static int handshake(struct sender *p)
{
    uint32_t flags = (p->opt->delete_extra ? MSG_HELLO_DELETE : 0) |
                     (p->opt->dry_run ? MSG_HELLO_DRY_RUN : 0) |
                     (p->opt->verify_only ? MSG_HELLO_VERIFY : 0);
    struct msg hello = {.type = MSG_HELLO,
                        .hello = {.role = MSG_ROLE_SENDER,
                                  .flags = flags,
                                  .skip_digest = *manifest_digest(p->local)}};
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
    if (!r && !(r = read_listing(p)))
        p->listed = true;
    p->res->t_listed = elapsed(p);
    return r;
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
    r = chunk_wants_serve(&p->wants, p->seq, send_chunk, data_sent, p->err, p->errsize);
    p->res->t_acked = elapsed(p);
    sent_groups_clear(&p->groups);
    if (!r && want_root)
        p->res->dest_root = p->wants.ack.root;
    return r;
}

/* Ask for the entries of the directories at local positions pos[0..n)
 * (SIZE_MAX: ROOT), MSG_LIST_MAX per round trip. */
static int list_dirs(struct sender *p, const size_t *pos, size_t n)
{
    const char *dirs[MSG_LIST_MAX];
    for (size_t i = 0; i < n; i += MSG_LIST_MAX) {
        size_t k = n - i < MSG_LIST_MAX ? n - i : MSG_LIST_MAX;
        for (size_t j = 0; j < k; j++)
            dirs[j] = pos[i + j] == SIZE_MAX ? "" : manifest_entry(p->local, pos[i + j])->path;
        struct msg m = {.type = MSG_LIST, .list = {.dirs = dirs, .n = k}};
        int r = send_msg(p, &m);
        if (!r)
            r = wire_flush(p->w, p->err, p->errsize);
        if (!r)
            r = read_listing(p);
        if (r)
            return explain_failure(p, r);
    }
    p->sent = 0; /* a LIST is not part of a batch */
    return 0;
}

/* Find where the trees differ, one directory level per round trip: the
 * far side has listed ROOT; a directory both sides have whose subtree
 * digests are equal is pruned (nothing below it is compared or sent), one
 * whose digests differ is listed in the next round. */
static int descend(struct sender *p)
{
    size_t n = manifest_count(p->local);
    free(p->pruned);
    p->pruned = calloc(n ? n : 1, sizeof(*p->pruned));
    size_t *level = malloc(sizeof(*level)), nlevel = 1;
    if (!p->pruned || !level) {
        free(level);
        return -ENOMEM;
    }
    level[0] = SIZE_MAX;
    int r = 0;
    while (!r && nlevel) {
        size_t *next = NULL, nnext = 0, cap = 0;
        for (size_t d = 0; !r && d < nlevel; d++) {
            size_t lo = level[d] == SIZE_MAX ? 0 : level[d] + 1;
            size_t hi = level[d] == SIZE_MAX ? n : manifest_end(p->local, level[d]);
            for (size_t i = lo; !r && i < hi; i = manifest_end(p->local, i)) {
                const struct msg_entry *e = manifest_entry(p->local, i);
                struct remote *rm = e->type == S_IFDIR ? remote_map_get(&p->remote, e->path) : NULL;
                if (!rm || rm->e.type != S_IFDIR)
                    continue;
                if (content_id_eq(&rm->e.id, &e->id)) {
                    p->pruned[i] = true;
                    continue;
                }
                if (manifest_end(p->local, i) == i + 1 && !p->opt->delete_extra)
                    continue; /* empty here, extras kept: nothing to learn below */
                if (nnext == cap) {
                    cap = cap ? 2 * cap : 64;
                    size_t *v = realloc(next, cap * sizeof(*v));
                    if (!v) {
                        r = -ENOMEM;
                        break;
                    }
                    next = v;
                }
                next[nnext++] = i;
            }
        }
        if (!r && nnext)
            r = list_dirs(p, next, nnext);
        free(level);
        level = next;
        nlevel = nnext;
    }
    free(level);
    return r;
}

/* Every local entry in tree order; a pruned directory's subtree is skipped
 * (its regular files are only recorded, so that a new hard link to one of
 * them is still sent as a LINK). */
static int plan_all(struct sender *p)
{
    struct plan pl = {.p = p};
    size_t n = manifest_count(p->local);
    int r = 0;
    for (size_t i = 0; !r && i < n;) {
        const struct msg_entry *e = manifest_entry(p->local, i);
        struct index_file f = {.path = (char *)e->path, .type = e->type, .mode = e->mode,
                               .size = (int64_t)e->size, .mtime_ns = e->mtime_ns,
                               .ino = manifest_ino(p->local, i), .id = e->id,
                               .target = (char *)e->target};
        r = plan_row(&f, &pl);
        size_t end = manifest_end(p->local, i);
        if (!p->pruned[i]) {
            i++;
            continue;
        }
        for (size_t j = i + 1; j < end; j++)
            if (manifest_entry(p->local, j)->type == S_IFREG)
                first_name(&pl, manifest_ino(p->local, j), manifest_entry(p->local, j)->path);
        i = end;
    }
    plan_free(&pl);
    return r;
}

int sender_sync_all(struct sender *p)
{
    int r = 0;
    if (!p->listed) {
        /* A later pass of a session: SRC's index and DEST moved on. */
        manifest_free(p->local);
        p->local = NULL;
        remote_map_free(&p->remote);
        memset(&p->remote, 0, sizeof(p->remote));
        if ((r = manifest_build(p->ix, 0777, &p->local)))
            return snprintf(p->err, p->errsize, "manifest of %s: %s", p->src, strerror(-r)), r;
        size_t root = SIZE_MAX;
        if ((r = list_dirs(p, &root, 1)))
            return r;
    }
    p->listed = false;
    if (p->elided)
        return 0; /* the same manifest on both sides; dest_root came with it */
    p->sent = 0;
    r = descend(p);
    p->res->t_listed = elapsed(p);
    if (!r)
        r = plan_all(p);
    if (!r && p->opt->delete_extra)
        r = send_deletes(p);
    p->res->t_planned = elapsed(p);
    if (r || p->opt->dry_run)
        return r ? explain_failure(p, r) : 0;
    if (p->sent == 0)
        return 0; /* nothing differs: the root the far side listed is current */
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
    remote_map_free(&p->remote);
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
    p->wants = (struct chunk_wants){.wanted = count_wanted, .arg = p, .explain_hangup = true};
    chunk_wants_init(&p->wants);
    *out = p;
    int r = dest_parse(opt->dest, &p->dest, err, errsize);
    if (!r)
        r = check_source(p);
    /* The far side starts first: it brings its own index up to date while
     * we index SRC. */
    if (!r)
        r = transport_start(&p->dest, opt->rsh, opt->wsync_path, NULL,
                            opt->far_stderr_set ? opt->far_stderr_fd : -1, &p->t, err, errsize);
    if (!r && opt->on_child)
        opt->on_child(p->t.pid, opt->on_child_arg);
    if (!r)
        r = open_source(p);
    if (!r && !(p->w = wire_new(p->t.from_fd, p->t.to_fd)))
        r = -ENOMEM;
    p->wants.w = p->w;
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
    manifest_free(p->local);
    free(p->pruned);
    sent_groups_clear(&p->groups);
    remote_map_free(&p->remote);
    if (p->src_fd >= 0)
        close(p->src_fd);
    free(p->src);
    dest_release(&p->dest);
    chunk_wants_destroy(&p->wants);
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
