/*
 * serve.c — the receiving side of the protocol (docs/protocol.md).
 *
 * One thread: refresh our index (before HELLO, when ROOT has one), read
 * HELLO, answer with ROOT's entries (or nothing, when the sender's digest is
 * ours) and any LIST with the entries of the directories it names; then
 * take UPDATE/DELETE messages and stage them (apply.h); at COMMIT send every
 * chunk and group id we lack in WANT frames, read the DATA and GROUP that
 * answer them, make the batch durable, and only then ACK it.  We write nothing while the sender streams UPDATEs, so the
 * two pipes can never both be full.  Paths our own rules call ignored or
 * local are left alone: a robot's build/ is never overwritten by a laptop's.
 */
#include "serve.h"
#include "apply.h"
#include "group_resolve.h"
#include "index.h"
#include "indexer.h"
#include "manifest.h"
#include "message.h"
#include "serve_live.h"
#include "serve_twoway.h"
#include "tree_root.h"
#include "wire.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_BATCH 4096 /* entries per MANIFEST message (the encoder splits frames) */

struct session {
    struct wire *w;
    struct index *ix;
    struct indexer *in;
    struct applier *ap;
    const char *root;
    uint32_t flags; /* the sender's HELLO flags */
    struct group_resolver *gr; /* grouped chunk lists of this batch */
    struct manifest *mf;       /* NULL: not made yet, or stale after a commit */
    struct content_id root_id; /* tree root, made with mf */
    uint64_t early_head;       /* journal head when mf was made before HELLO */
    struct content_id *want;
    size_t nwant;
    char *err;
    size_t errsize;
    bool twoway;                 /* the peer sent PEER: a two-way sync (§11) */
    struct pull_request *pull;   /* PULL frames until the LAST */
    char **refused;              /* two-way: paths our rules skipped in this batch */
    size_t nrefused;
    bool live;                   /* the peer's HELLO asked for RESCAN/WATCH (§12) */
    int in_fd;
    struct serve_live *watch;    /* made by the first WATCH */
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

/* Our manifest, made on first use after each commit (which makes it stale):
 * the index brought up to date by a stat pass, then loaded with digests. */
static int load_manifest(struct session *s)
{
    if (s->mf)
        return 0;
    int r = indexer_scan_manifest(s->in, 07777, NULL, &s->mf);
    if (r)
        return snprintf(s->err, s->errsize, "indexing %s: %s", s->root, strerror(-r)), r;
    if ((r = tree_root_from_manifest(s->mf, &s->root_id)))
        return snprintf(s->err, s->errsize, "tree root of %s: %s", s->root, strerror(-r)), r;
    return 0;
}

static int send_end(struct session *s, uint32_t flags, uint64_t count)
{
    struct msg end = {.type = MSG_MANIFEST_END,
                      .manifest_end = {.flags = flags,
                                       .count = count,
                                       .root = s->root_id,
                                       .digest = *manifest_digest(s->mf)}};
    int r = send_msg(s, &end);
    return r ? r : wire_flush(s->w, s->err, s->errsize);
}

/* The entries directly inside each of dirs (a directory's entry carries its
 * subtree digest), then MANIFEST_END.  Entries go out in MANIFEST batches
 * of up to MANIFEST_BATCH; a sender names the directories of one level in
 * tree order, and then their entries are in tree order too, so many
 * directories share a batch (and its lz4); an entry out of order starts a
 * new one.  A name that is not a directory here lists nothing. */
static int send_batch(struct session *s, const struct msg_entry *batch, size_t *k,
                      uint64_t *count)
{
    struct msg m = {.type = MSG_MANIFEST, .manifest = {.entries = batch, .n = *k}};
    int r = *k ? send_msg(s, &m) : 0;
    *count += *k;
    *k = 0;
    return r;
}

static int send_listing(struct session *s, const char *const *dirs, size_t n)
{
    int r = load_manifest(s);
    if (r)
        return r;
    struct msg_entry *batch = malloc(MANIFEST_BATCH * sizeof(*batch));
    if (!batch)
        return -ENOMEM;
    uint64_t count = 0;
    size_t k = 0;
    for (size_t d = 0; !r && d < n; d++) {
        size_t lo, hi;
        if (!manifest_subtree(s->mf, dirs[d], &lo, &hi))
            continue;
        for (size_t i = lo; !r && i < hi; i = manifest_end(s->mf, i)) {
            const struct msg_entry *e = manifest_entry(s->mf, i);
            if (k && (k == MANIFEST_BATCH || msg_path_cmp(batch[k - 1].path, e->path) >= 0))
                r = send_batch(s, batch, &k, &count);
            batch[k++] = *e;
        }
    }
    if (!r)
        r = send_batch(s, batch, &k, &count);
    free(batch);
    return r ? r : send_end(s, 0, count);
}

/* The answer to HELLO: the root and digest only (VERIFY, or ELIDED when
 * the sender's skip_digest is our digest), else ROOT's entries. */
static int send_manifest(struct session *s, const struct content_id *skip)
{
    int r = load_manifest(s);
    if (r)
        return r;
    if (s->flags & MSG_HELLO_VERIFY)
        return send_end(s, 0, 0);
    if (content_id_eq(skip, manifest_digest(s->mf)))
        return send_end(s, MSG_MANIFEST_ELIDED, 0);
    const char *root = "";
    return send_listing(s, &root, 1);
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

/* A grouped chunk list is complete: check it as the decoder checks a sent
 * list, derive the file id from it, and stage the file. */
static int on_resolved(const struct resolved_file *f, void *arg)
{
    struct session *s = arg;
    int r = msg_chunk_list_check(f->path, f->size, f->chunks, f->nchunks, s->err, s->errsize);
    if (r)
        return r;
    struct content_hasher h;
    struct content_id file_id;
    content_hasher_init(&h);
    for (size_t i = 0; i < f->nchunks; i++)
        content_hasher_update(&h, f->chunks[i].id.b, CONTENT_ID_SIZE);
    content_hasher_final(&h, &file_id);
    return apply_file(s->ap, f->path, f->mode, f->mtime_ns, f->size, &file_id, f->chunks,
                      f->nchunks, &s->want, &s->nwant);
}

static int on_update(struct session *s, const struct msg_update *u)
{
    if (excluded(s, u->path, u->type == S_IFDIR))
        return 0;
    switch (u->type) {
    case S_IFDIR: return apply_mkdir(s->ap, u->path, u->mode, u->mtime_ns);
    case S_IFLNK: return apply_symlink(s->ap, u->path, u->target, u->mtime_ns);
    case S_IFREG:
        if (u->inline_data)
            return apply_file_inline(s->ap, u->path, u->mode, u->mtime_ns, u->data, u->size);
        if (u->ngroups)
            return group_resolver_add(s->gr, u, &s->want, &s->nwant, on_resolved, s, s->err,
                                      s->errsize);
        return apply_file(s->ap, u->path, u->mode, u->mtime_ns, u->size, &u->file_id, u->chunks,
                          u->nchunks, &s->want, &s->nwant);
    default: return snprintf(s->err, s->errsize, "UPDATE of %s: bad type", u->path), -EPROTO;
    }
}

/* Send a WANT for what s->want has collected; returns how many ids. */
static int flush_wants(struct session *s, size_t *asked)
{
    struct msg want = {.type = MSG_WANT, .want = {.ids = s->want, .n = s->nwant}};
    int r = send_refused(s);
    if (!r && s->nwant)
        r = send_msg(s, &want);
    if (!r)
        r = wire_flush(s->w, s->err, s->errsize);
    *asked += s->nwant;
    s->nwant = 0;
    return r;
}

/* COMMIT: ask for what we lack (chunks, and groups of grouped chunk lists,
 * whose chunks may in turn be wanted), take it, make it durable, ACK. */
static int on_commit(struct session *s, const struct msg_commit *c)
{
    size_t asked = 0, got = 0;
    int r = flush_wants(s, &asked);
    while (!r && got < asked) {
        struct msg m;
        r = wire_recv(s->w, &m, s->err, s->errsize);
        if (r)
            break;
        if (m.type == MSG_DATA) {
            r = apply_chunk(s->ap, &m.data.id, m.data.bytes, m.data.len);
        } else if (m.type == MSG_GROUP) {
            r = group_resolver_take(s->gr, &m.group, on_resolved, s, s->err, s->errsize);
            if (!r)
                r = flush_wants(s, &asked);
        } else {
            snprintf(s->err, s->errsize, "expected DATA or GROUP after COMMIT, got %s",
                     msg_type_name(m.type));
            r = -EPROTO;
        }
        got++;
        msg_release(&m);
    }
    if (!r && group_resolver_pending(s->gr)) {
        snprintf(s->err, s->errsize, "%zu files still wait for chunk groups at COMMIT",
                 group_resolver_pending(s->gr));
        r = -EPROTO;
    }
    group_resolver_clear(s->gr);
    free(s->want);
    s->want = NULL;
    s->nwant = 0;
    if (!r)
        r = apply_commit(s->ap);
    manifest_free(s->mf); /* a later LIST sees the tree as it is now */
    s->mf = NULL;
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

/* Live two-way (§12): RESCAN starts a round with a fresh listing of ROOT;
 * WATCH waits, idle, for ROOT to change or the peer to speak. */
static int on_live(struct session *s, enum msg_type type)
{
    if (!s->live || !s->twoway)
        return snprintf(s->err, s->errsize, "%s outside a live two-way session",
                        msg_type_name(type)),
               -EPROTO;
    if (type == MSG_WATCH)
        return serve_live_watch(&s->watch, s->w, s->in_fd, s->root, s->err, s->errsize);
    serve_live_rescan(s->watch); /* before the scan: later edits stay pending */
    manifest_free(s->mf);
    s->mf = NULL;
    struct content_id none = {0};
    return send_manifest(s, &none);
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
        case MSG_LIST: r = send_listing(s, m.list.dirs, m.list.n); break;
        case MSG_RESCAN:
        case MSG_WATCH: r = on_live(s, m.type); break;
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

static int open_index(struct session *s)
{
    if (s->ix)
        return 0;
    char state[PATH_MAX];
    snprintf(state, sizeof(state), "%s/.wsync", s->root);
    int r = index_open(-1, state, false, &s->ix, s->err, s->errsize);
    if (!r)
        r = indexer_new(s->root, s->ix, &s->in, s->err, s->errsize);
    return r;
}

/* Before the sender's HELLO arrives: bring an index ROOT already has up to
 * date and make the manifest, while the sender indexes SRC (the two stat
 * passes overlap).  Nothing is created here: a ROOT without an index
 * waits for the HELLO.  It runs under the writers' lock on staging (see
 * apply_open), taken only if free: then no other session writes while we
 * scan, and the journal head we note tells whether one wrote between the
 * scan and our own lock (serve_run then scans again). */
static int prepare_early(struct session *s)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/.wsync/" INDEX_FILE_NAME, s->root);
    if (access(path, F_OK) != 0)
        return 0;
    snprintf(path, sizeof(path), "%s/.wsync/staging", s->root);
    int lock = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (lock < 0)
        return 0;
    int r = 0;
    if (flock(lock, LOCK_EX | LOCK_NB) == 0) { /* else a writer is at work: scan later */
        r = open_index(s);
        if (!r) /* before the scan: a file a dead writer left half patched */
            r = apply_recover(s->root, s->ix, s->err, s->errsize);
        if (!r)
            r = load_manifest(s);
        if (!r && (r = index_journal_head(s->ix, &s->early_head)))
            snprintf(s->err, s->errsize, "index: %s", index_error(s->ix));
    }
    close(lock); /* releases the lock */
    return r;
}

int serve_run(const char *root, int in_fd, int out_fd, char *err, size_t errsize)
{
    struct session s = {.root = root, .err = err, .errsize = errsize, .in_fd = in_fd};
    err[0] = '\0';
    s.w = wire_new(in_fd, out_fd);
    if (!s.w)
        return -ENOMEM;
    int early = prepare_early(&s);
    struct msg hello;
    int r = wire_recv(s.w, &hello, err, errsize);
    if (r) {
        send_error(&s, r, NULL);
        wire_free(s.w);
        return r;
    }
    s.flags = hello.hello.flags;
    struct content_id skip = hello.hello.skip_digest;
    bool sender = hello.hello.role == MSG_ROLE_SENDER;
    s.live = hello.hello.flags & MSG_HELLO_LIVE;
    msg_release(&hello);
    if (!sender) {
        snprintf(err, errsize, "the peer is not a sender");
        r = -EPROTO;
        goto out;
    }
    struct msg mine = {.type = MSG_HELLO,
                       .hello = {.role = MSG_ROLE_RECEIVER, .flags = s.flags & MSG_HELLO_LIVE}};
    r = send_msg(&s, &mine);
    if (!r)
        r = early;
    if (r)
        goto out;

    struct stat st;
    if (stat(root, &st) == 0 && !S_ISDIR(st.st_mode)) {
        snprintf(err, errsize, "%s is not a directory", root);
        r = -ENOTDIR;
        goto out;
    }
    r = apply_prepare_root(root, err, errsize);
    if (!r)
        r = open_index(&s);
    if (!r)
        r = apply_open(root, s.ix, (s.flags & (MSG_HELLO_DRY_RUN | MSG_HELLO_VERIFY)) != 0,
                       &s.ap, err, errsize);
    if (!r && !(s.gr = group_resolver_new(s.ix)))
        r = -ENOMEM;
    uint64_t head;
    if (!r && s.mf && (index_journal_head(s.ix, &head) != 0 || head != s.early_head)) {
        /* Another writer got in between the early scan and our lock. */
        manifest_free(s.mf);
        s.mf = NULL;
    }
    if (!r)
        r = send_manifest(&s, &skip);
    if (!r)
        r = session_loop(&s);
out:
    if (r)
        send_error(&s, r, NULL);
    else
        wire_flush(s.w, err, errsize);
    apply_close(s.ap);
    manifest_free(s.mf);
    group_resolver_free(s.gr);
    indexer_free(s.in);
    index_close(s.ix);
    free(s.want);
    serve_pull_free(s.pull);
    serve_live_free(s.watch);
    for (size_t i = 0; i < s.nrefused; i++)
        free(s.refused[i]);
    free(s.refused);
    wire_free(s.w);
    return r;
}
