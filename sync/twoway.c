/*
 * twoway.c — see twoway.h.  The session (docs/protocol.md §11):
 *
 *   1. index SRC; start `wsync serve` there; HELLO; read its manifest
 *   2. PEER both ways: the far tree's id selects our ancestor records
 *   3. reconcile every path in (ours ∪ theirs ∪ ancestors)
 *   4. conflicts the far side won: our version is copied to its conflict
 *      name here first, durably, before anything can overwrite it
 *   5. pull: PULL (from, as) → the far side's batch, applied in SRC
 *   6. push: one batch of conflict copies, our changes and deletes
 *   7. record what is now equal on both sides as agreed, in one transaction
 *
 * Nothing is overwritten on either side before the version it replaces
 * exists durably elsewhere: a loser here is copied before the pull, a
 * loser there is pulled (as its copy) before the push.
 */
#include "twoway.h"
#include "ancestors.h"
#include "apply.h"
#include "conflict_name.h"
#include "identity.h"
#include "inbox.h"
#include "index.h"
#include "indexer.h"
#include "message.h"
#include "outbox.h"
#include "reconcile.h"
#include "transport.h"
#include "tree_root.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- sorted lists of (path, state) ---- */

struct entry {
    char *path;
    struct path_state s;       /* s.target owned */
    struct content_id digest;  /* far side's directories: the subtree digest */
    bool complete;             /* its subtree is listed already (taken from the last round) */
};

struct list {
    struct entry *v;
    size_t n, cap;
};

static int list_add(struct list *l, const char *path, const struct path_state *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        struct entry *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    struct entry *e = &l->v[l->n];
    e->path = strdup(path);
    e->s = *s;
    e->s.target = s->target ? strdup(s->target) : NULL;
    memset(&e->digest, 0, sizeof(e->digest));
    e->complete = false;
    if (!e->path || (s->target && !e->s.target)) {
        free(e->path);
        free((char *)e->s.target);
        return -ENOMEM;
    }
    l->n++;
    return 0;
}

static void list_free(struct list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].path);
        free((char *)l->v[i].s.target);
    }
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

static const struct entry *list_find(const struct list *l, const char *path)
{
    struct entry key = {.path = (char *)path};
    return l->n ? bsearch(&key, l->v, l->n, sizeof(*l->v), by_path) : NULL;
}

/* ---- the session ---- */

/* One connection (twoway_link): the per-round parts are reset by
 * round_reset(); the rest lives as long as the far side. */
struct session {
    const struct twoway_options *opt;
    struct twoway_result *res;
    char *err;
    size_t errsize;
    char *src;
    int src_fd;
    struct index *ix;
    struct indexer *in;
    struct ancestors *anc;
    struct applier *ap;
    struct dest dest;
    struct transport t;
    struct wire *w;
    struct content_id my_id, their_id;
    char my_host[MSG_PEER_HOST_MAX + 1], their_host[MSG_PEER_HOST_MAX + 1];
    int64_t peer;
    struct list mine, theirs, agreed;
    struct rc_item *items;
    size_t n;
    char **copy; /* per item: the conflict copy's path, or NULL */
    struct list got, sent, refused; /* states now on both sides; paths the far side refused */
    bool *hold;        /* safe: per item, keep the far side's edit (copy here, record it) */
    struct list origs; /* safe: paths with a conflict copy from the far side here
                        * (s.target: that copy's path) */
    bool listed;       /* theirs holds a fresh listing (the first round's, from HELLO) */
    struct list prev;  /* live: the last round's listing of the far side, with digests */
    struct content_id prev_digest, new_digest; /* its whole-tree digests */
    bool live_ok;      /* the far side speaks §12 */
};

static void round_reset(struct session *S)
{
    for (size_t i = 0; i < S->n; i++)
        free(S->copy[i]);
    free(S->copy);
    free(S->items);
    free(S->hold);
    S->copy = NULL;
    S->items = NULL;
    S->hold = NULL;
    S->n = 0;
    list_free(&S->mine);
    list_free(&S->agreed);
    list_free(&S->got);
    list_free(&S->sent);
    list_free(&S->refused);
    list_free(&S->origs);
    if (!S->listed && S->opt->live && S->theirs.n) {
        /* kept, so the next round lists only the subtrees that changed */
        list_free(&S->prev);
        S->prev = S->theirs;
        S->prev_digest = S->new_digest;
        memset(&S->theirs, 0, sizeof(S->theirs));
    }
    if (!S->listed)
        list_free(&S->theirs);
}

static int local_row(const struct index_file *f, void *arg)
{
    struct path_state s = {.type = f->type, .mode = f->mode & 0777, .id = f->id,
                           .target = f->target, .mtime_ns = f->mtime_ns};
    return list_add(arg, f->path, &s);
}

static int agreed_row(const char *path, const struct path_state *s, void *arg)
{
    return list_add(arg, path, s);
}

static int open_local(struct session *S)
{
    S->src = realpath(S->opt->src, NULL);
    struct stat st;
    if (!S->src || stat(S->src, &st) < 0)
        return snprintf(S->err, S->errsize, "source %s: %s", S->opt->src, strerror(errno)),
               -errno;
    if (!S->src || !S->src[0] || !S_ISDIR(st.st_mode))
        return snprintf(S->err, S->errsize, "source %s is not a directory", S->src), -ENOTDIR;
    int r = apply_prepare_root(S->src, S->err, S->errsize);
    if (r)
        return r;
    S->src_fd = open(S->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (S->src_fd < 0)
        return snprintf(S->err, S->errsize, "%s: %s", S->src, strerror(errno)), -errno;
    char state[PATH_MAX];
    snprintf(state, sizeof(state), "%s/.wsync", S->src);
    if ((r = identity_tree_id(S->src, &S->my_id, S->err, S->errsize)))
        return r;
    identity_host_label(S->my_host, sizeof(S->my_host));
    r = index_open(-1, state, false, &S->ix, S->err, S->errsize);
    if (!r)
        r = indexer_new(S->src, S->ix, &S->in, S->err, S->errsize);
    if (!r)
        r = ancestors_open(state, &S->anc, S->err, S->errsize);
    if (!r)
        r = apply_open(S->src, S->ix, S->opt->dry_run, &S->ap, S->err, S->errsize);
    return r;
}

/* Our side of a round: the index (scanned first unless a running indexer
 * keeps it fresh), in strcmp order. */
static int read_local(struct session *S)
{
    int r = 0;
    if (!S->opt->trust_index && (r = indexer_scan(S->in, NULL)))
        return snprintf(S->err, S->errsize, "indexing %s: %s", S->src, strerror(-r)), r;
    if ((r = index_foreach(S->ix, "", local_row, &S->mine)))
        snprintf(S->err, S->errsize, "reading the index of %s: %s", S->src, strerror(-r));
    if (!r && S->mine.n > 1) /* an empty list is NULL, which qsort() must not see */
        qsort(S->mine.v, S->mine.n, sizeof(*S->mine.v), by_path);
    /* Conflict copies here: counted for status; in safe mode the ones
     * holding the far side's version hold back their originals. */
    for (size_t i = 0; !r && i < S->mine.n; i++) {
        char orig[WIRE_MAX_PATH + 1], host[MSG_PEER_HOST_MAX + 1];
        if (!conflict_name_parse(S->mine.v[i].path, orig, sizeof(orig), host, sizeof(host), NULL,
                                 0))
            continue;
        S->res->copies_here++;
        if (S->opt->safe && strcmp(host, S->their_host) == 0)
            r = list_add(&S->origs, orig, &(struct path_state){.target = S->mine.v[i].path});
    }
    if (!r && S->origs.n > 1)
        qsort(S->origs.v, S->origs.n, sizeof(*S->origs.v), by_path);
    return r;
}

static int far_error(struct session *S, const struct msg *m)
{
    snprintf(S->err, S->errsize, "the far side failed: %s", m->error.message);
    return -(int)m->error.code;
}

/* MANIFEST frames until MANIFEST_END, into S->theirs. */
static int read_listing(struct session *S)
{
    int r = 0;
    for (bool end = false; !r && !end;) {
        struct msg m;
        if ((r = wire_recv(S->w, &m, S->err, S->errsize)))
            break;
        if (m.type == MSG_ERROR) {
            r = far_error(S, &m);
        } else if (m.type == MSG_MANIFEST) {
            for (size_t i = 0; !r && i < m.manifest.n; i++) {
                const struct msg_entry *e = &m.manifest.entries[i];
                struct path_state st = {.type = e->type, .mode = e->mode & 0777, .id = e->id,
                                        .target = e->target, .mtime_ns = e->mtime_ns};
                if (e->type != S_IFREG)
                    memset(&st.id, 0, sizeof(st.id)); /* a directory's id is its subtree's */
                r = list_add(&S->theirs, e->path, &st);
                if (!r && e->type == S_IFDIR)
                    S->theirs.v[S->theirs.n - 1].digest = e->id;
            }
        } else if (m.type == MSG_CHANGED) {
            /* sent just before our RESCAN reached it: this listing covers it */
        } else if (m.type == MSG_MANIFEST_END) {
            S->new_digest = m.manifest_end.digest;
            if (m.manifest_end.flags & MSG_MANIFEST_ELIDED)
                r = (snprintf(S->err, S->errsize, "the far side left its manifest out"), -EPROTO);
            end = true;
        } else {
            snprintf(S->err, S->errsize, "expected the far side's manifest, got %s",
                     msg_type_name(m.type));
            r = -EPROTO;
        }
        msg_release(&m);
    }
    return r;
}

/* The manifest lists one directory level at a time: LIST every directory
 * until the whole tree is known (one request of <= MSG_LIST_MAX at a time,
 * so neither side writes while the other does). */
/* Live: the far side's directory dir has the subtree digest it had in the
 * last round: take what was below it then instead of listing it again. */
static bool reuse_subtree(struct session *S, const char *dir, const struct content_id *digest,
                          int *r)
{
    const struct entry *old = list_find(&S->prev, dir);
    if (!old || old->s.type != S_IFDIR || !content_id_eq(&old->digest, digest))
        return false;
    size_t len = strlen(dir), i = (size_t)(old - S->prev.v) + 1;
    /* strcmp order: everything under "dir/" follows dir, maybe after
     * siblings like "dir.c"; it is one contiguous run */
    while (i < S->prev.n && strncmp(S->prev.v[i].path, dir, len) == 0 &&
           S->prev.v[i].path[len] < '/')
        i++;
    for (; !*r && i < S->prev.n && strncmp(S->prev.v[i].path, dir, len) == 0 &&
           S->prev.v[i].path[len] == '/';
         i++) {
        const struct entry *p = &S->prev.v[i];
        if (!(*r = list_add(&S->theirs, p->path, &p->s))) {
            S->theirs.v[S->theirs.n - 1].digest = p->digest;
            S->theirs.v[S->theirs.n - 1].complete = true;
        }
    }
    return true;
}

static int read_whole_tree(struct session *S)
{
    int r = read_listing(S);
    if (!r && S->prev.n && S->theirs.n && content_id_eq(&S->new_digest, &S->prev_digest)) {
        /* nothing changed there since the last round */
        list_free(&S->theirs);
        for (size_t i = 0; !r && i < S->prev.n; i++)
            if (!(r = list_add(&S->theirs, S->prev.v[i].path, &S->prev.v[i].s)))
                S->theirs.v[i].digest = S->prev.v[i].digest;
        return r;
    }
    for (size_t done = 0; !r && done < S->theirs.n;) {
        const char *dirs[MSG_LIST_MAX];
        size_t n = 0, upto = S->theirs.n;
        while (!r && done < upto && n < MSG_LIST_MAX) {
            const struct entry *e = &S->theirs.v[done++];
            if (e->s.type != S_IFDIR || e->complete)
                continue;
            /* the path and digest outlive the array, which reuse_subtree may move */
            const char *dir = e->path;
            struct content_id digest = e->digest;
            if (!reuse_subtree(S, dir, &digest, &r))
                dirs[n++] = dir;
        }
        if (!n)
            continue;
        struct msg m = {.type = MSG_LIST, .list = {.dirs = dirs, .n = n}};
        r = wire_send(S->w, &m, S->err, S->errsize);
        if (!r)
            r = wire_flush(S->w, S->err, S->errsize);
        if (!r)
            r = read_listing(S); /* may move S->theirs.v: dirs[] is not used after */
    }
    /* Tree order on the wire; strcmp order for the merge. */
    if (!r && S->theirs.n > 1)
        qsort(S->theirs.v, S->theirs.n, sizeof(*S->theirs.v), by_path);
    return r;
}

/* HELLO, the manifest, PEER both ways. */
static int handshake(struct session *S)
{
    struct msg hello = {.type = MSG_HELLO,
                        .hello = {.role = MSG_ROLE_SENDER,
                                  .flags = (S->opt->dry_run ? MSG_HELLO_DRY_RUN : 0) |
                                           (S->opt->live ? MSG_HELLO_LIVE : 0)}};
    int r = wire_send(S->w, &hello, S->err, S->errsize);
    if (!r)
        r = wire_flush(S->w, S->err, S->errsize);
    struct msg h;
    if (!r && !(r = wire_recv(S->w, &h, S->err, S->errsize))) {
        if (h.type == MSG_ERROR)
            r = far_error(S, &h);
        else if (h.type != MSG_HELLO || h.hello.role != MSG_ROLE_RECEIVER)
            r = (snprintf(S->err, S->errsize, "the far side is not a receiver"), -EPROTO);
        else
            S->live_ok = h.hello.flags & MSG_HELLO_LIVE;
        msg_release(&h);
        if (!r && S->opt->live && !S->live_ok)
            r = (snprintf(S->err, S->errsize,
                          "the far side's wsync cannot do live two-way sync: install this "
                          "version there"),
                 -EPROTONOSUPPORT);
    }
    if (!r)
        r = read_whole_tree(S);
    S->listed = !r;
    struct msg peer = {.type = MSG_PEER, .peer = {.tree_id = S->my_id, .host = S->my_host}};
    if (!r)
        r = wire_send(S->w, &peer, S->err, S->errsize);
    if (!r)
        r = wire_flush(S->w, S->err, S->errsize);
    struct msg m;
    if (!r && !(r = wire_recv(S->w, &m, S->err, S->errsize))) {
        if (m.type == MSG_PEER) {
            S->their_id = m.peer.tree_id;
            snprintf(S->their_host, sizeof(S->their_host), "%s", m.peer.host);
        } else if (m.type == MSG_ERROR) {
            r = far_error(S, &m);
        } else {
            snprintf(S->err, S->errsize, "expected PEER, got %s (is the far side's wsync older?)",
                     msg_type_name(m.type));
            r = -EPROTO;
        }
        msg_release(&m);
    }
    if (!r && content_id_eq(&S->my_id, &S->their_id))
        r = (snprintf(S->err, S->errsize,
                     "both sides have the same tree id: one was copied with its .wsync; remove "
                     "the copy's .wsync/tree_id"),
        -EINVAL);
    if (!r && (r = ancestors_peer(S->anc, &S->their_id, S->their_host, &S->peer)))
        snprintf(S->err, S->errsize, "ancestor store: %s", ancestors_error(S->anc));
    return r;
}

/* The far side afresh, for every round but the first. */
static int rescan(struct session *S)
{
    if (S->listed)
        return 0;
    struct msg m = {.type = MSG_RESCAN};
    int r = wire_send(S->w, &m, S->err, S->errsize);
    if (!r)
        r = wire_flush(S->w, S->err, S->errsize);
    return r ? r : read_whole_tree(S);
}

/* Merge the three sorted lists into items. */
static int merge(struct session *S)
{
    size_t cap = S->mine.n + S->theirs.n + S->agreed.n;
    S->items = calloc(cap ? cap : 1, sizeof(*S->items));
    S->copy = calloc(cap ? cap : 1, sizeof(*S->copy));
    S->hold = calloc(cap ? cap : 1, sizeof(*S->hold));
    if (!S->items || !S->copy || !S->hold)
        return -ENOMEM;
    size_t i = 0, j = 0, k = 0;
    while (i < S->mine.n || j < S->theirs.n || k < S->agreed.n) {
        const char *p = NULL;
        if (i < S->mine.n)
            p = S->mine.v[i].path;
        if (j < S->theirs.n && (!p || strcmp(S->theirs.v[j].path, p) < 0))
            p = S->theirs.v[j].path;
        if (k < S->agreed.n && (!p || strcmp(S->agreed.v[k].path, p) < 0))
            p = S->agreed.v[k].path;
        struct rc_item *it = &S->items[S->n++];
        it->path = p;
        if (i < S->mine.n && strcmp(S->mine.v[i].path, p) == 0)
            it->local = S->mine.v[i++].s;
        if (j < S->theirs.n && strcmp(S->theirs.v[j].path, p) == 0)
            it->remote = S->theirs.v[j++].s;
        if (k < S->agreed.n && strcmp(S->agreed.v[k].path, p) == 0)
            it->anc = S->agreed.v[k++].s;
    }
    return 0;
}

static bool path_taken(struct session *S, const char *path)
{
    size_t lo = 0, hi = S->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(S->items[mid].path, path);
        if (c == 0)
            return true;
        c < 0 ? (lo = mid + 1) : (hi = mid);
    }
    for (size_t i = 0; i < S->n; i++)
        if (S->copy[i] && strcmp(S->copy[i], path) == 0)
            return true;
    return false;
}

/* A name for each conflict's loser, unique among every path we know. */
static int name_copies(struct session *S)
{
    time_t now = time(NULL);
    for (size_t i = 0; i < S->n; i++) {
        struct rc_item *it = &S->items[i];
        if (it->action != RC_CONFLICT || S->copy[i]) /* safe mode may reuse one */
            continue;
        const char *host = it->winner == RC_LOCAL ? S->their_host : S->my_host;
        char name[WIRE_MAX_PATH + 1];
        unsigned k = 0;
        do {
            int r = conflict_name(it->path, host, now, ++k, name, sizeof(name));
            if (r)
                return snprintf(S->err, S->errsize, "no conflict copy name fits for %s",
                                it->path),
                       r;
        } while (path_taken(S, name) && k < 1000);
        if (!(S->copy[i] = strdup(name)))
            return -ENOMEM;
        S->res->conflicts++;
    }
    return 0;
}

static struct rc_item *find_item(struct session *S, const char *path);

/* Safe mode: is the conflict copy at path as both sides last agreed (no
 * one edited it), so that a newer version from the far side may replace it? */
static bool copy_untouched(struct session *S, const char *path)
{
    const struct rc_item *c = find_item(S, path);
    return c && c->action == RC_NONE && path_state_present(&c->local) &&
           path_state_same(&c->local, &c->anc) && path_state_same(&c->local, &c->remote);
}

/* After this round, is path's directory a directory here?  Parents sort
 * before their children, so a parent's action is already decided. */
static bool parent_is_dir_here(struct session *S, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return true;
    char dir[WIRE_MAX_PATH + 1];
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    const struct rc_item *up = find_item(S, dir);
    return up && (up->local.type == S_IFDIR ||
                  (up->action == RC_PULL && up->remote.type == S_IFDIR));
}

/* Safe mode (one-way, nothing the far side changed is overwritten), from
 * the two-way decision: what only we changed goes there, unless a conflict
 * copy of that path still waits here; what the far side changed (an edit,
 * a new file or symlink) is copied here as a conflict copy of its host,
 * recorded as the ancestor and left alone there, so our version is held
 * back until the copy is resolved; what it deleted is restored; a
 * directory it made is left alone.  Nothing is ever deleted or replaced
 * here except by the pull of a copy under a new name. */
static void safe_adjust(struct session *S)
{
    for (size_t i = 0; i < S->n; i++) {
        struct rc_item *it = &S->items[i];
        const struct entry *copy = list_find(&S->origs, it->path);
        bool held = copy != NULL;
        switch (it->action) {
        case RC_NONE: break;
        case RC_PUSH:
        case RC_DELETE_REMOTE:
            if (held) {
                it->action = RC_NONE;
                it->why = "held: a conflict copy of it waits here";
                S->res->held++;
            }
            break;
        case RC_PULL:
        case RC_DELETE_LOCAL:
        case RC_CONFLICT:
            /* reconcile() pulls only what the far side changed */
            if (!path_state_present(&it->remote)) {
                it->action = path_state_present(&it->local) ? RC_PUSH : RC_NONE;
                it->why = "safe: deleted there, ours is restored";
            } else if (!parent_is_dir_here(S, it->path)) {
                it->action = RC_NONE; /* nowhere to keep a copy: left alone there */
                it->why = "safe: left alone (its directory is not one here)";
            } else if (it->remote.type == S_IFDIR) {
                /* made there: made here too (nothing is replaced), so that
                 * copies of what is inside have a place */
                it->action = path_state_present(&it->local) ? RC_NONE : RC_PULL;
                it->why = "safe: a directory made there";
            } else if (held && !copy_untouched(S, copy->s.target)) {
                it->action = RC_NONE;
                it->why = "held: a conflict copy of it waits here";
                S->res->held++;
            } else if (held) {
                /* changed there again (a save caught half way, a second
                 * edit): the waiting copy, untouched here, is refreshed */
                it->action = RC_CONFLICT;
                it->winner = RC_LOCAL;
                it->why = "safe: changed there again; its conflict copy is refreshed";
                S->hold[i] = true;
                S->copy[i] = strdup(copy->s.target);
                S->res->held++;
            } else {
                it->action = RC_CONFLICT;
                it->winner = RC_LOCAL;
                it->why = "safe: changed there; kept as a conflict copy, not overwritten";
                S->hold[i] = true;
            }
            break;
        }
    }
}

/* Live: the index can lag the tree (an edit the indexer has not taken
 * yet).  Before a round replaces or deletes a local path, check that it is
 * still what the index said; if not, leave it to the next round, which
 * sees the edit.  This narrows the window to the apply itself. */
static bool local_as_indexed(struct session *S, const struct rc_item *it)
{
    struct stat st;
    int e = fstatat(S->src_fd, it->path, &st, AT_SYMLINK_NOFOLLOW);
    if (!path_state_present(&it->local))
        return e < 0 && errno == ENOENT;
    struct index_file f;
    if (e < 0 || index_get(S->ix, it->path, &f) != 0)
        return false;
    int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    bool same = (st.st_mode & S_IFMT) == f.type && mtime == f.mtime_ns &&
                (f.type == S_IFDIR || ((uint64_t)st.st_ino == f.ino && st.st_size == f.size));
    index_file_release(&f);
    return same;
}

static struct rc_item *find_item(struct session *S, const char *path)
{
    struct rc_item key = {.path = path};
    for (size_t lo = 0, hi = S->n; lo < hi;) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(S->items[mid].path, key.path);
        if (c == 0)
            return &S->items[mid];
        c < 0 ? (lo = mid + 1) : (hi = mid);
    }
    return NULL;
}

static void leave_stale(struct session *S)
{
    for (size_t i = 0; i < S->n; i++) {
        struct rc_item *it = &S->items[i];
        bool here = it->action == RC_PULL || it->action == RC_DELETE_LOCAL ||
                    (it->action == RC_CONFLICT && it->winner == RC_REMOTE);
        if (!here || local_as_indexed(S, it))
            continue;
        it->action = RC_NONE;
        it->why = "changed here during the round: next round";
        S->res->again = true;
        /* A directory delete above it would take it too. */
        char dir[WIRE_MAX_PATH + 1];
        snprintf(dir, sizeof(dir), "%s", it->path);
        for (char *slash; (slash = strrchr(dir, '/'));) {
            *slash = '\0';
            struct rc_item *up = find_item(S, dir);
            if (up && up->action == RC_DELETE_LOCAL)
                up->action = RC_NONE;
        }
    }
}

static void applied(struct session *S, const char *path)
{
    if (S->opt->on_applied)
        S->opt->on_applied(path, S->opt->on_applied_arg);
}

static void print_plan(struct session *S)
{
    if (!S->opt->list)
        return;
    for (size_t i = 0; i < S->n; i++) {
        const struct rc_item *it = &S->items[i];
        if (it->action == RC_NONE)
            continue;
        if (it->action == RC_CONFLICT)
            fprintf(S->opt->list, "conflict      %s: %s (the %s version wins; the other is "
                                  "kept as %s)\n",
                    it->path, it->why, it->winner == RC_LOCAL ? "local" : "remote", S->copy[i]);
        else
            fprintf(S->opt->list, "%-13s %s: %s\n", reconcile_action_name(it->action), it->path,
                    it->why);
    }
    fflush(S->opt->list);
}

/* Conflicts the far side won: our loser goes to its copy name here, as
 * one durable batch, before the pull can replace it. */
static int copy_local_losers(struct session *S)
{
    bool any = false;
    struct content_id *want = NULL;
    size_t nwant = 0;
    int r = 0;
    for (size_t i = 0; !r && i < S->n; i++) {
        const struct rc_item *it = &S->items[i];
        if (it->action != RC_CONFLICT || it->winner != RC_REMOTE)
            continue;
        const struct path_state *l = &it->local;
        any = true;
        if (l->type == S_IFLNK) {
            r = apply_symlink(S->ap, S->copy[i], l->target, l->mtime_ns);
        } else {
            struct chunk *chunks = NULL;
            size_t nchunks = 0;
            struct index_file f;
            r = index_get(S->ix, it->path, &f);
            if (!r) {
                r = index_get_chunks(S->ix, it->path, &chunks, &nchunks);
                if (!r)
                    r = apply_file(S->ap, S->copy[i], f.mode & 0777, f.mtime_ns,
                                   (uint64_t)f.size, &f.id, chunks, nchunks, &want, &nwant);
                index_file_release(&f);
            }
            free(chunks);
            if (!r && nwant)
                r = (snprintf(S->err, S->errsize, "%s/%s changed during the sync; run it again",
                             S->src, it->path),
                -EAGAIN);
        }
        if (r && !S->err[0])
            snprintf(S->err, S->errsize, "conflict copy of %s: %s", it->path, apply_error(S->ap));
    }
    free(want);
    if (!r && any && (r = apply_commit(S->ap)))
        snprintf(S->err, S->errsize, "conflict copies: %s", apply_error(S->ap));
    for (size_t i = 0; !r && i < S->n; i++)
        if (S->items[i].action == RC_CONFLICT && S->items[i].winner == RC_REMOTE)
            applied(S, S->copy[i]);
    return r;
}

static void on_got(void *arg, const char *path, const struct path_state *s)
{
    struct session *S = arg;
    if (list_add(&S->got, path, s) == 0)
        path_state_present(s) ? S->res->pulled++ : S->res->deleted_here++;
    applied(S, path);
}

static void on_sent(void *arg, const char *path, const struct path_state *s, bool refused)
{
    struct session *S = arg;
    if (refused) {
        list_add(&S->refused, path, s);
        return;
    }
    if (list_add(&S->sent, path, s) == 0)
        path_state_present(s) ? S->res->pushed++ : S->res->deleted_there++;
}

/* Topmost deletes only: a delete takes the subtree. */
static bool under(const char *path, const char *dir)
{
    size_t n = dir ? strlen(dir) : 0;
    return n && strncmp(path, dir, n) == 0 && path[n] == '/';
}

static int add_entry(struct msg_pull_entry **v, size_t *n, const char *from, const char *as)
{
    struct msg_pull_entry *g = realloc(*v, (*n + 1) * sizeof(**v));
    if (!g)
        return -ENOMEM;
    *v = g;
    g[(*n)++] = (struct msg_pull_entry){.from = from, .as = as};
    return 0;
}

static int pull(struct session *S)
{
    struct msg_pull_entry *v = NULL;
    size_t n = 0;
    const char *last_del = NULL;
    int r = 0;
    for (size_t i = 0; !r && i < S->n; i++) {
        const struct rc_item *it = &S->items[i];
        switch (it->action) {
        case RC_PULL: r = add_entry(&v, &n, it->path, it->path); break;
        case RC_DELETE_LOCAL:
            if (!under(it->path, last_del))
                r = add_entry(&v, &n, it->path, it->path);
            last_del = it->path;
            break;
        case RC_CONFLICT:
            r = add_entry(&v, &n, it->path, it->winner == RC_LOCAL ? S->copy[i] : it->path);
            break;
        default: break;
        }
    }
    if (!r && n) {
        struct msg m = {.type = MSG_PULL, .pull = {.flags = MSG_PULL_LAST, .entries = v, .n = n}};
        r = wire_send(S->w, &m, S->err, S->errsize);
        if (!r)
            r = wire_flush(S->w, S->err, S->errsize);
        if (!r)
            r = inbox_receive(S->w, S->ap, S->in, on_got, S, S->err, S->errsize);
    }
    free(v);
    return r;
}

static int push(struct session *S)
{
    struct msg_pull_entry *v = NULL;
    size_t n = 0;
    int r = 0;
    /* Conflict copies first: the far side copies their chunks from its
     * loser before a later UPDATE in the batch can replace it. */
    for (size_t i = 0; !r && i < S->n; i++)
        if (S->copy[i])
            r = add_entry(&v, &n, S->copy[i], S->copy[i]);
    const char *last_del = NULL;
    for (size_t i = 0; !r && i < S->n; i++) {
        const struct rc_item *it = &S->items[i];
        if (it->action == RC_PUSH ||
            (it->action == RC_CONFLICT && it->winner == RC_LOCAL && !S->hold[i]))
            r = add_entry(&v, &n, it->path, it->path);
        else if (it->action == RC_DELETE_REMOTE) {
            if (!under(it->path, last_del))
                r = add_entry(&v, &n, it->path, it->path);
            last_del = it->path;
        }
    }
    struct outbox_counts c = {0};
    if (!r && n)
        r = outbox_send(S->w, S->ix, S->src_fd, v, n, 1, on_sent, S, &c, S->err, S->errsize);
    S->res->chunks_sent += c.chunks_sent;
    S->res->data_bytes_sent += c.data_bytes;
    free(v);
    return r;
}

/* Every path now equal on both sides becomes agreed. */
static int record(struct session *S)
{
    if (S->refused.n > 1)
        qsort(S->refused.v, S->refused.n, sizeof(*S->refused.v), by_path);
    int r = ancestors_begin(S->anc);
    for (size_t i = 0; !r && i < S->n; i++) {
        const struct rc_item *it = &S->items[i];
        if (it->action == RC_NONE && path_state_same(&it->local, &it->remote) &&
            !path_state_same(&it->local, &it->anc))
            r = ancestors_put(S->anc, S->peer, it->path, &it->local);
        else if (S->hold[i]) /* safe: the far side's edit, now copied here */
            r = ancestors_put(S->anc, S->peer, it->path, &it->remote);
        else if ((it->action == RC_DELETE_LOCAL || it->action == RC_DELETE_REMOTE) &&
                 path_state_present(&it->anc))
            r = ancestors_put(S->anc, S->peer, it->path, &(struct path_state){0});
    }
    const struct list *done[2] = {&S->got, &S->sent};
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; !r && i < done[l]->n; i++)
            if (!list_find(&S->refused, done[l]->v[i].path))
                r = ancestors_put(S->anc, S->peer, done[l]->v[i].path, &done[l]->v[i].s);
    if (!r)
        r = ancestors_synced(S->anc, S->peer);
    if (!r)
        r = ancestors_commit(S->anc);
    if (r) {
        snprintf(S->err, S->errsize, "recording the agreed state: %s", ancestors_error(S->anc));
        ancestors_rollback(S->anc);
    }
    return r;
}

/* Start the far side, learn both trees and the peer. */
static int link_start(struct session *S)
{
    int r = dest_parse(S->opt->dest, &S->dest, S->err, S->errsize);
    if (!r)
        r = open_local(S);
    if (!r)
        r = transport_start(&S->dest, S->opt->rsh, S->opt->wsync_path, NULL,
                            S->opt->far_stderr_set ? S->opt->far_stderr_fd : -1, &S->t, S->err,
                            S->errsize);
    if (!r && S->opt->on_child)
        S->opt->on_child(S->t.pid, S->opt->on_child_arg);
    if (!r && !(S->w = wire_new(S->t.from_fd, S->t.to_fd)))
        r = -ENOMEM;
    if (!r)
        r = handshake(S);
    return r;
}

/* One round: both listings, the decision, copies, pull, push, record. */
static int round_run(struct session *S)
{
    round_reset(S);
    int r = rescan(S);
    S->listed = false; /* the next round lists afresh */
    if (!r && (r = ancestors_foreach(S->anc, S->peer, agreed_row, &S->agreed)))
        snprintf(S->err, S->errsize, "ancestor store: %s", ancestors_error(S->anc));
    if (!r)
        r = read_local(S);
    if (!r)
        r = merge(S);
    if (!r) {
        reconcile(S->items, S->n, &S->my_id, &S->their_id);
        if (S->opt->safe)
            safe_adjust(S);
        if (S->opt->trust_index)
            leave_stale(S);
        r = name_copies(S);
    }
    if (!r)
        print_plan(S);
    if (r || S->opt->dry_run)
        return r;
    r = copy_local_losers(S);
    if (!r)
        r = pull(S);
    if (!r)
        r = push(S);
    if (!r)
        r = record(S);
    if (!r && (r = tree_root_from_index(S->ix, &S->res->src_root)))
        snprintf(S->err, S->errsize, "tree root of %s: %s", S->src, strerror(-r));
    return r;
}

struct twoway_link {
    struct session S;
    struct twoway_result scratch; /* for rounds run without a result */
    struct timespec t0;
};

int twoway_link_open(const struct twoway_options *opt, struct twoway_link **out, char *err,
                     size_t errsize)
{
    err[0] = '\0';
    struct twoway_link *l = calloc(1, sizeof(*l));
    if (!l)
        return snprintf(err, errsize, "out of memory"), -ENOMEM;
    clock_gettime(CLOCK_MONOTONIC, &l->t0);
    l->S = (struct session){.opt = opt, .res = &l->scratch, .err = err, .errsize = errsize,
                            .src_fd = -1, .t = {.to_fd = -1, .from_fd = -1}};
    *out = l;
    int r = link_start(&l->S);
    if (r && !err[0])
        snprintf(err, errsize, "%s", strerror(-r));
    return r;
}

int twoway_link_round(struct twoway_link *l, struct twoway_result *res)
{
    struct session *S = &l->S;
    memset(res, 0, sizeof(*res));
    S->res = res;
    S->err[0] = '\0';
    int r = round_run(S);
    if (r && !S->err[0])
        snprintf(S->err, S->errsize, "%s", strerror(-r));
    if (S->w) { /* the session's traffic so far */
        struct wire_stats ws;
        wire_get_stats(S->w, &ws);
        res->bytes_out = ws.bytes_out;
        res->bytes_in = ws.bytes_in;
    }
    S->res = &l->scratch;
    return r;
}

int twoway_link_wait(struct twoway_link *l, int kick_fd, int timeout_ms)
{
    struct session *S = &l->S;
    struct msg m = {.type = MSG_WATCH};
    int r = wire_send(S->w, &m, S->err, S->errsize);
    if (!r)
        r = wire_flush(S->w, S->err, S->errsize);
    if (r)
        return r;
    struct pollfd pfd[2] = {{.fd = S->t.from_fd, .events = POLLIN},
                            {.fd = kick_fd, .events = POLLIN}};
    if (!wire_pending_in(S->w)) {
        int n = poll(pfd, kick_fd >= 0 ? 2 : 1, timeout_ms);
        if (n < 0 && errno != EINTR)
            return snprintf(S->err, S->errsize, "poll: %s", strerror(errno)), -errno;
        if (n <= 0 || !pfd[0].revents)
            return 0; /* kicked or timed out: the RESCAN that follows ends the WATCH */
    }
    if ((r = wire_recv(S->w, &m, S->err, S->errsize)))
        return r;
    if (m.type == MSG_CHANGED)
        r = 1;
    else if (m.type == MSG_ERROR)
        r = far_error(S, &m);
    else
        r = (snprintf(S->err, S->errsize, "expected CHANGED, got %s", msg_type_name(m.type)),
             -EPROTO);
    msg_release(&m);
    return r;
}

int twoway_link_close(struct twoway_link *l, int r, struct twoway_result *res)
{
    if (!l)
        return r;
    struct session *S = &l->S;
    char *err = S->err;
    size_t errsize = S->errsize;
    if (S->w) {
        char ignored[128];
        struct msg bye = {.type = MSG_BYE};
        if (!r && wire_send(S->w, &bye, ignored, sizeof(ignored)) == 0)
            wire_flush(S->w, ignored, sizeof(ignored));
        struct wire_stats ws;
        wire_get_stats(S->w, &ws);
        if (res) {
            res->bytes_out = ws.bytes_out;
            res->bytes_in = ws.bytes_in;
        }
    }
    if (S->t.pid && S->opt->on_child)
        S->opt->on_child(0, S->opt->on_child_arg);
    int status = S->t.pid ? transport_finish(&S->t, r ? 2000 : 30000) : 0;
    if (!r && status != 0)
        r = (snprintf(err, errsize, "the far side exited with status %d", status), -EPROTO);
    if (r && !err[0])
        snprintf(err, errsize, "%s", strerror(-r));
    S->listed = false;
    round_reset(S);
    list_free(&S->prev);
    list_free(&S->theirs);
    wire_free(S->w);
    apply_close(S->ap);
    ancestors_close(S->anc);
    indexer_free(S->in);
    index_close(S->ix);
    if (S->src_fd >= 0)
        close(S->src_fd);
    free(S->src);
    dest_release(&S->dest);
    if (res) {
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        res->seconds = (double)(t1.tv_sec - l->t0.tv_sec) +
                       (double)(t1.tv_nsec - l->t0.tv_nsec) / 1e9;
    }
    free(l);
    return r;
}

int twoway_run(const struct twoway_options *opt, struct twoway_result *res, char *err,
               size_t errsize)
{
    memset(res, 0, sizeof(*res));
    struct twoway_link *l = NULL;
    int r = twoway_link_open(opt, &l, err, errsize);
    if (!r)
        r = twoway_link_round(l, res);
    return twoway_link_close(l, r, res);
}
