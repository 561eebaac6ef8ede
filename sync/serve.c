/*
 * serve.c — the receiving side of the protocol (docs/protocol.md).
 *
 * One thread: read HELLO, send our manifest, then take UPDATE/DELETE
 * messages and stage them (apply.h); at COMMIT send every chunk id we lack in
 * WANT frames, read the DATA that answers them, make the batch durable, and
 * only then ACK it.  We write nothing while the sender streams UPDATEs, so the
 * two pipes can never both be full.  Paths our own rules call ignored or
 * local are left alone: a robot's build/ is never overwritten by a laptop's.
 */
#include "serve.h"
#include "apply.h"
#include "index.h"
#include "indexer.h"
#include "message.h"
#include "serve_twoway.h"
#include "tree_root.h"
#include "wire.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MANIFEST_BATCH 1024

struct session {
    struct wire *w;
    struct index *ix;
    struct indexer *in;
    struct applier *ap;
    const char *root;
    uint32_t flags; /* the sender's HELLO flags */
    struct content_id *want;
    size_t nwant;
    char *err;
    size_t errsize;
    bool twoway;                 /* the peer sent PEER: a two-way sync (§11) */
    struct pull_request *pull;   /* PULL frames until the LAST */
    char **refused;              /* two-way: paths our rules skipped in this batch */
    size_t nrefused;
};

/* Two-way: one non-fatal ERROR per path skipped in this batch. */
static int send_refused(struct session *s)
{
    int r = 0;
    for (size_t i = 0; i < s->nrefused; i++) {
        struct msg m = {.type = MSG_ERROR,
                        .error = {.code = EPERM, .path = s->refused[i],
                                  .message = "left out by this side's rules"}};
        if (!r)
            r = wire_send(s->w, &m, s->err, s->errsize);
        free(s->refused[i]);
    }
    s->nrefused = 0;
    return r;
}

static int send_msg(struct session *s, const struct msg *m)
{
    return wire_send(s->w, m, s->err, s->errsize);
}

/* Tell the peer why we stop (best effort: the stream may be what failed). */
static void send_error(struct session *s, int code, const char *path)
{
    char ignored[128];
    struct msg m = {.type = MSG_ERROR,
                    .error = {.code = (uint32_t)(code < 0 ? -code : code),
                              .flags = MSG_ERROR_FATAL,
                              .path = path ? path : "",
                              .message = s->err[0] ? s->err : strerror(code < 0 ? -code : code)}};
    if (wire_send(s->w, &m, ignored, sizeof(ignored)) == 0)
        wire_flush(s->w, ignored, sizeof(ignored));
}

struct manifest_state {
    struct session *s;
    struct msg_entry batch[MANIFEST_BATCH];
    char *paths[MANIFEST_BATCH]; /* copies: rows die after the callback */
    char *targets[MANIFEST_BATCH];
    size_t n;
    uint64_t count;
    struct content_hasher digest;
    int r;
};

static int flush_manifest(struct manifest_state *ms)
{
    int r = 0;
    if (ms->n) {
        struct msg m = {.type = MSG_MANIFEST, .manifest = {.entries = ms->batch, .n = ms->n}};
        r = send_msg(ms->s, &m);
    }
    for (size_t i = 0; i < ms->n; i++) {
        free(ms->paths[i]);
        free(ms->targets[i]);
    }
    ms->n = 0;
    return r;
}

static int add_entry(const struct index_file *f, void *arg)
{
    struct manifest_state *ms = arg;
    size_t i = ms->n;
    ms->paths[i] = strdup(f->path);
    ms->targets[i] = f->target ? strdup(f->target) : NULL;
    if (!ms->paths[i])
        return -ENOMEM;
    ms->batch[i] = (struct msg_entry){.path = ms->paths[i],
                                      .type = f->type,
                                      .mode = f->mode & 07777,
                                      .mtime_ns = f->mtime_ns,
                                      .size = f->type == S_IFREG ? (uint64_t)f->size : 0,
                                      .id = f->id,
                                      .target = ms->targets[i]};
    msg_manifest_digest_add(&ms->digest, &ms->batch[i]);
    ms->n++;
    ms->count++;
    return ms->n == MANIFEST_BATCH ? flush_manifest(ms) : 0;
}

/* Our index brought up to date, then sent: entries (unless only roots are
 * compared) and MANIFEST_END with the root. */
static int send_manifest(struct session *s)
{
    struct indexer_counts c;
    int r = indexer_scan(s->in, &c);
    if (r)
        return snprintf(s->err, s->errsize, "indexing %s: %s", s->root, strerror(-r)), r;
    struct msg end = {.type = MSG_MANIFEST_END};
    r = tree_root_from_index(s->ix, &end.manifest_end.root);
    if (r)
        return snprintf(s->err, s->errsize, "tree root of %s: %s", s->root, strerror(-r)), r;
    struct manifest_state *ms = calloc(1, sizeof(*ms));
    if (!ms)
        return -ENOMEM;
    ms->s = s;
    content_hasher_init(&ms->digest);
    if (!(s->flags & MSG_HELLO_VERIFY)) {
        r = index_foreach(s->ix, "", add_entry, ms);
        if (!r)
            r = flush_manifest(ms);
        else
            flush_manifest(ms);
    }
    end.manifest_end.count = ms->count;
    content_hasher_final(&ms->digest, &end.manifest_end.digest);
    free(ms);
    if (!r)
        r = send_msg(s, &end);
    return r ? r : wire_flush(s->w, s->err, s->errsize);
}

static bool excluded(struct session *s, const char *path, bool is_dir)
{
    if (!indexer_excludes(path, is_dir, s->in))
        return false;
    if (s->twoway) {
        /* A two-way peer must not record as agreed what we never took: it
         * is told at the COMMIT (we write nothing while it streams). */
        char **v = realloc(s->refused, (s->nrefused + 1) * sizeof(*v));
        if (v) {
            s->refused = v;
            if ((v[s->nrefused] = strdup(path)))
                s->nrefused++;
        }
    }
    return true;
}

static int on_update(struct session *s, const struct msg_update *u)
{
    if (excluded(s, u->path, u->type == S_IFDIR))
        return 0;
    switch (u->type) {
    case S_IFDIR: return apply_mkdir(s->ap, u->path, u->mode, u->mtime_ns);
    case S_IFLNK: return apply_symlink(s->ap, u->path, u->target);
    case S_IFREG:
        if (u->inline_data)
            return apply_file_inline(s->ap, u->path, u->mode, u->mtime_ns, u->data, u->size);
        return apply_file(s->ap, u->path, u->mode, u->mtime_ns, u->size, &u->file_id, u->chunks,
                          u->nchunks, &s->want, &s->nwant);
    default: return snprintf(s->err, s->errsize, "UPDATE of %s: bad type", u->path), -EPROTO;
    }
}

/* COMMIT: ask for what we lack, take it, make it durable, ACK. */
static int on_commit(struct session *s, const struct msg_commit *c)
{
    struct msg want = {.type = MSG_WANT, .want = {.ids = s->want, .n = s->nwant}};
    int r = send_refused(s);
    if (!r && s->nwant)
        r = send_msg(s, &want);
    if (!r)
        r = wire_flush(s->w, s->err, s->errsize);
    for (size_t got = 0; !r && got < s->nwant;) {
        struct msg m;
        r = wire_recv(s->w, &m, s->err, s->errsize);
        if (r)
            break;
        if (m.type == MSG_DATA) {
            r = apply_chunk(s->ap, &m.data.id, m.data.bytes, m.data.len);
            got++;
        } else {
            snprintf(s->err, s->errsize, "expected DATA after COMMIT, got %s",
                     msg_type_name(m.type));
            r = -EPROTO;
        }
        msg_release(&m);
    }
    free(s->want);
    s->want = NULL;
    s->nwant = 0;
    if (!r)
        r = apply_commit(s->ap);
    if (r) {
        if (!s->err[0])
            snprintf(s->err, s->errsize, "%s", apply_error(s->ap));
        return r;
    }
    struct msg ack = {.type = MSG_ACK, .ack = {.seq = c->seq}};
    if ((c->flags & MSG_COMMIT_WANT_ROOT) && (r = tree_root_from_index(s->ix, &ack.ack.root)))
        return snprintf(s->err, s->errsize, "tree root: %s", strerror(-r)), r;
    r = send_msg(s, &ack);
    return r ? r : wire_flush(s->w, s->err, s->errsize);
}

static int session_loop(struct session *s)
{
    for (;;) {
        struct msg m;
        int r = wire_recv(s->w, &m, s->err, s->errsize);
        if (r == -ENODATA)
            return 0; /* the sender hung up between messages: fine */
        if (r)
            return r;
        s->err[0] = '\0';
        switch (m.type) {
        case MSG_UPDATE: r = on_update(s, &m.update); break;
        case MSG_DELETE:
            r = excluded(s, m.del.path, false) ? 0 : apply_delete(s->ap, m.del.path);
            break;
        case MSG_LINK:
            r = excluded(s, m.link.path, false) ? 0
                                                : apply_link(s->ap, m.link.path, m.link.existing);
            break;
        case MSG_COMMIT: r = on_commit(s, &m.commit); break;
        case MSG_PEER:
            s->twoway = true;
            r = serve_peer_reply(s->w, s->root, s->err, s->errsize);
            break;
        case MSG_PULL:
            r = s->twoway ? serve_pull(&s->pull, &m.pull, s->w, s->ix, s->in, s->root, s->err,
                                       s->errsize)
                          : (snprintf(s->err, s->errsize, "PULL before PEER"), -EPROTO);
            break;
        case MSG_BYE: msg_release(&m); return 0;
        case MSG_ERROR:
            snprintf(s->err, s->errsize, "the sender gave up: %s", m.error.message);
            r = -ECANCELED;
            break;
        default:
            snprintf(s->err, s->errsize, "unexpected %s from the sender", msg_type_name(m.type));
            r = -EPROTO;
        }
        if (r && !s->err[0])
            snprintf(s->err, s->errsize, "%s", apply_error(s->ap));
        msg_release(&m);
        if (r)
            return r;
    }
}

int serve_run(const char *root, int in_fd, int out_fd, char *err, size_t errsize)
{
    struct session s = {.root = root, .err = err, .errsize = errsize};
    err[0] = '\0';
    s.w = wire_new(in_fd, out_fd);
    if (!s.w)
        return -ENOMEM;
    struct msg hello;
    int r = wire_recv(s.w, &hello, err, errsize);
    if (r) {
        send_error(&s, r, NULL);
        wire_free(s.w);
        return r;
    }
    s.flags = hello.hello.flags;
    bool sender = hello.hello.role == MSG_ROLE_SENDER;
    msg_release(&hello);
    if (!sender) {
        snprintf(err, errsize, "the peer is not a sender");
        r = -EPROTO;
        goto out;
    }
    struct msg mine = {.type = MSG_HELLO, .hello = {.role = MSG_ROLE_RECEIVER}};
    r = send_msg(&s, &mine);
    if (r)
        goto out;

    char state[PATH_MAX];
    struct stat st;
    if (stat(root, &st) == 0 && !S_ISDIR(st.st_mode)) {
        snprintf(err, errsize, "%s is not a directory", root);
        r = -ENOTDIR;
        goto out;
    }
    r = apply_prepare_root(root, err, errsize);
    if (r)
        goto out;
    snprintf(state, sizeof(state), "%s/.wsync", root);
    r = index_open(-1, state, false, &s.ix, err, errsize);
    if (!r)
        r = indexer_new(root, s.ix, &s.in, err, errsize);
    if (!r)
        r = apply_open(root, s.ix, (s.flags & MSG_HELLO_DRY_RUN) != 0, &s.ap, err, errsize);
    if (!r)
        r = send_manifest(&s);
    if (!r)
        r = session_loop(&s);
out:
    if (r)
        send_error(&s, r, NULL);
    else
        wire_flush(s.w, err, errsize);
    apply_close(s.ap);
    indexer_free(s.in);
    index_close(s.ix);
    free(s.want);
    serve_pull_free(s.pull);
    for (size_t i = 0; i < s.nrefused; i++)
        free(s.refused[i]);
    free(s.refused);
    wire_free(s.w);
    return r;
}
