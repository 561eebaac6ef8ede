/* serve_twoway.c — see serve_twoway.h. */
#include "serve_twoway.h"
#include "identity.h"
#include "indexer.h"
#include "outbox.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct pull_request {
    struct msg_pull_entry *v;
    size_t n, cap;
    uint64_t seq;
};

int serve_peer_reply(struct wire *w, const char *root, char *err, size_t errsize)
{
    struct msg m = {.type = MSG_PEER};
    char host[MSG_PEER_HOST_MAX + 1];
    identity_host_label(host, sizeof(host));
    m.peer.host = host;
    int r = identity_tree_id(root, &m.peer.tree_id, err, errsize);
    if (!r)
        r = wire_send(w, &m, err, errsize);
    return r ? r : wire_flush(w, err, errsize);
}

void serve_pull_free(struct pull_request *pr)
{
    if (!pr)
        return;
    for (size_t i = 0; i < pr->n; i++) {
        free((char *)pr->v[i].from);
        free((char *)pr->v[i].as);
    }
    free(pr->v);
    free(pr);
}

static int add(struct pull_request *pr, const struct msg_pull *p, char *err, size_t errsize)
{
    if (pr->n + p->n > SERVE_PULL_MAX_ENTRIES)
        return snprintf(err, errsize, "a PULL request of over %u paths", SERVE_PULL_MAX_ENTRIES),
               -EMSGSIZE;
    if (pr->n + p->n > pr->cap) {
        size_t cap = pr->cap ? pr->cap : 256;
        while (cap < pr->n + p->n)
            cap *= 2;
        struct msg_pull_entry *v = realloc(pr->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        pr->v = v;
        pr->cap = cap;
    }
    for (size_t i = 0; i < p->n; i++) {
        char *from = strdup(p->entries[i].from), *as = strdup(p->entries[i].as);
        if (!from || !as) {
            free(from);
            free(as);
            return -ENOMEM;
        }
        pr->v[pr->n++] = (struct msg_pull_entry){.from = from, .as = as};
    }
    return 0;
}

int serve_pull(struct pull_request **prp, const struct msg_pull *p, struct wire *w,
               struct index *ix, struct indexer *in, const char *root, char *err,
               size_t errsize)
{
    if (!*prp && !(*prp = calloc(1, sizeof(**prp))))
        return -ENOMEM;
    struct pull_request *pr = *prp;
    int r = add(pr, p, err, errsize);
    if (r || !(p->flags & MSG_PULL_LAST))
        return r;
    /* Send each path as it is now, not as the manifest said; a path our
     * rules leave out is never sent (nor reported deleted). */
    size_t keep = 0;
    for (size_t i = 0; !r && i < pr->n; i++) {
        if (indexer_excludes(pr->v[i].from, false, in)) {
            free((char *)pr->v[i].from);
            free((char *)pr->v[i].as);
            continue;
        }
        r = indexer_sync_path(in, pr->v[i].from, false, NULL);
        if (r)
            snprintf(err, errsize, "indexing %s/%s: %s", root, pr->v[i].from, strerror(-r));
        pr->v[keep++] = pr->v[i];
    }
    pr->n = keep;
    int root_fd = r ? -1 : open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (!r && root_fd < 0)
        r = -errno, snprintf(err, errsize, "%s: %s", root, strerror(errno));
    struct outbox_counts c = {0};
    if (!r)
        r = outbox_send(w, ix, root_fd, pr->v, pr->n, ++pr->seq, NULL, NULL, &c, err, errsize);
    if (root_fd >= 0)
        close(root_fd);
    for (size_t i = 0; i < pr->n; i++) {
        free((char *)pr->v[i].from);
        free((char *)pr->v[i].as);
    }
    pr->n = 0;
    return r;
}
