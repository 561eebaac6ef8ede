/*
 * inbox.c — see inbox.h.  We write nothing while the far side streams the
 * batch and read nothing but DATA after our WANTs, as serve.c does, so the
 * two pipes can never both be full (the far side reads WANTs on a thread of
 * its own while it writes DATA: outbox.c).
 */
#include "inbox.h"
#include "apply.h"
#include "indexer.h"
#include "message.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Applied states, reported only once the batch is durable. */
struct got_list {
    char **paths;
    struct path_state *states;
    size_t n, cap;
};

static int remember(struct got_list *g, const char *path, const struct path_state *s)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 256;
        char **p = realloc(g->paths, cap * sizeof(*p));
        if (p)
            g->paths = p;
        struct path_state *v = p ? realloc(g->states, cap * sizeof(*v)) : NULL;
        if (!v)
            return -ENOMEM;
        g->states = v;
        g->cap = cap;
    }
    g->paths[g->n] = strdup(path);
    g->states[g->n] = *s;
    g->states[g->n].target = s->target ? strdup(s->target) : NULL;
    if (!g->paths[g->n])
        return -ENOMEM;
    g->n++;
    return 0;
}

static void got_free(struct got_list *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->paths[i]);
        free((char *)g->states[i].target);
    }
    free(g->paths);
    free(g->states);
}

static int on_update(struct applier *a, const struct msg_update *u, struct content_id **want,
                     size_t *nwant)
{
    switch (u->type) {
    case S_IFDIR: return apply_mkdir(a, u->path, u->mode, u->mtime_ns);
    case S_IFLNK: return apply_symlink(a, u->path, u->target, u->mtime_ns);
    default:
        if (u->inline_data)
            return apply_file_inline(a, u->path, u->mode, u->mtime_ns, u->data, u->size);
        return apply_file(a, u->path, u->mode, u->mtime_ns, u->size, &u->file_id, u->chunks,
                          u->nchunks, want, nwant);
    }
}

static int commit(struct wire *w, struct applier *a, const struct msg_commit *c,
                  struct content_id *want, size_t nwant, char *err, size_t errsize)
{
    struct msg wm = {.type = MSG_WANT, .want = {.ids = want, .n = nwant}};
    int r = nwant ? wire_send(w, &wm, err, errsize) : 0;
    if (!r)
        r = wire_flush(w, err, errsize);
    for (size_t got = 0; !r && got < nwant; got++) {
        struct msg m;
        if ((r = wire_recv(w, &m, err, errsize)))
            break;
        if (m.type == MSG_DATA) {
            r = apply_chunk(a, &m.data.id, m.data.bytes, m.data.len);
            if (r)
                snprintf(err, errsize, "%s", apply_error(a));
        } else {
            snprintf(err, errsize, "expected DATA after WANT, got %s", msg_type_name(m.type));
            r = -EPROTO;
        }
        msg_release(&m);
    }
    if (!r && (r = apply_commit(a)))
        snprintf(err, errsize, "%s", apply_error(a));
    struct msg ack = {.type = MSG_ACK, .ack = {.seq = c->seq}};
    if (!r)
        r = wire_send(w, &ack, err, errsize);
    return r ? r : wire_flush(w, err, errsize);
}

int inbox_receive(struct wire *w, struct applier *a, struct indexer *rules, inbox_got_fn got,
                  void *arg, char *err, size_t errsize)
{
    struct got_list g = {0};
    struct content_id *want = NULL;
    size_t nwant = 0;
    int r = 0;
    bool done = false;
    while (!r && !done) {
        struct msg m;
        if ((r = wire_recv(w, &m, err, errsize)))
            break;
        switch (m.type) {
        case MSG_UPDATE:
            if (indexer_excludes(m.update.path, m.update.type == S_IFDIR, rules))
                break;
            r = on_update(a, &m.update, &want, &nwant);
            if (r)
                snprintf(err, errsize, "%s", apply_error(a));
            else
                r = remember(&g, m.update.path,
                             &(struct path_state){.type = m.update.type,
                                                  .mode = m.update.mode,
                                                  .id = m.update.file_id,
                                                  .target = m.update.target,
                                                  .mtime_ns = m.update.mtime_ns});
            break;
        case MSG_DELETE:
            if (indexer_excludes(m.del.path, false, rules))
                break;
            r = apply_delete(a, m.del.path);
            if (r)
                snprintf(err, errsize, "%s", apply_error(a));
            else
                r = remember(&g, m.del.path, &(struct path_state){0});
            break;
        case MSG_COMMIT:
            r = commit(w, a, &m.commit, want, nwant, err, errsize);
            done = true;
            break;
        case MSG_ERROR:
            snprintf(err, errsize, "the far side failed: %s", m.error.message);
            r = -(int)m.error.code;
            break;
        default:
            snprintf(err, errsize, "unexpected %s while receiving", msg_type_name(m.type));
            r = -EPROTO;
        }
        msg_release(&m);
    }
    for (size_t i = 0; !r && got && i < g.n; i++)
        got(arg, g.paths[i], &g.states[i]);
    got_free(&g);
    free(want);
    return r;
}
