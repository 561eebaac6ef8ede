/*
 * group_resolve.c — see group_resolve.h.
 *
 * Per batch: the files waiting for groups, and a map from each wanted group
 * id to the (file, group) slots waiting for it.  A group that arrived stays
 * in the map, so a later file of the same batch that needs it is filled
 * without asking twice.
 */
#include "group_resolve.h"
#include "index.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct pending {
    char *path;
    uint32_t mode;
    int64_t mtime_ns;
    uint64_t size;
    struct chunk_group *groups;
    struct chunk **lists; /* per group: its chunks, once known */
    size_t ngroups, missing;
};

struct waiter {
    size_t file, group;
};

struct wanted {
    bool used;
    struct content_id id;
    struct chunk *chunks; /* once arrived */
    size_t n;
    struct waiter *w;
    size_t nw;
};

struct group_resolver {
    struct index *ix;
    struct pending *files;
    size_t nfiles, cap, npending;
    struct wanted *map;
    size_t map_cap, map_n;
};

struct group_resolver *group_resolver_new(struct index *ix)
{
    struct group_resolver *g = calloc(1, sizeof(*g));
    if (g)
        g->ix = ix;
    return g;
}

static void free_pending(struct pending *p)
{
    for (size_t i = 0; p->lists && i < p->ngroups; i++)
        free(p->lists[i]);
    free(p->lists);
    free(p->groups);
    free(p->path);
    memset(p, 0, sizeof(*p));
}

void group_resolver_clear(struct group_resolver *g)
{
    for (size_t i = 0; i < g->nfiles; i++)
        free_pending(&g->files[i]);
    free(g->files);
    for (size_t i = 0; i < g->map_cap; i++) {
        free(g->map[i].chunks);
        free(g->map[i].w);
    }
    free(g->map);
    struct index *ix = g->ix;
    memset(g, 0, sizeof(*g));
    g->ix = ix;
}

void group_resolver_free(struct group_resolver *g)
{
    if (!g)
        return;
    group_resolver_clear(g);
    free(g);
}

size_t group_resolver_pending(const struct group_resolver *g)
{
    return g->npending;
}

static size_t map_find(const struct wanted *v, size_t cap, const struct content_id *id)
{
    size_t i = XXH3_64bits(id->b, CONTENT_ID_SIZE) & (cap - 1);
    while (v[i].used && !content_id_eq(&v[i].id, id))
        i = (i + 1) & (cap - 1);
    return i;
}

/* The map slot of id; made when add (NULL on ENOMEM), else NULL if absent. */
static struct wanted *map_get(struct group_resolver *g, const struct content_id *id, bool add)
{
    if (add && (g->map_n + 1) * 2 > g->map_cap) {
        size_t cap = g->map_cap ? 2 * g->map_cap : 64;
        struct wanted *v = calloc(cap, sizeof(*v));
        if (!v)
            return NULL;
        for (size_t i = 0; i < g->map_cap; i++)
            if (g->map[i].used)
                v[map_find(v, cap, &g->map[i].id)] = g->map[i];
        free(g->map);
        g->map = v;
        g->map_cap = cap;
    }
    if (!g->map_cap)
        return NULL;
    struct wanted *w = &g->map[map_find(g->map, g->map_cap, id)];
    if (w->used)
        return w;
    if (!add)
        return NULL;
    w->used = true;
    w->id = *id;
    g->map_n++;
    return w;
}

/* Every group of file f is known: hand its whole list to done. */
static int finish(struct group_resolver *g, size_t f, resolved_fn done, void *arg)
{
    struct pending *p = &g->files[f];
    size_t total = 0;
    for (size_t i = 0; i < p->ngroups; i++)
        total += p->groups[i].count;
    struct chunk *all = malloc((total ? total : 1) * sizeof(*all));
    if (!all)
        return -ENOMEM;
    size_t k = 0;
    uint64_t off = 0;
    for (size_t i = 0; i < p->ngroups; i++)
        for (size_t j = 0; j < p->groups[i].count; j++) {
            all[k] = p->lists[i][j];
            all[k].off = off;
            off += all[k++].len;
        }
    struct resolved_file rf = {.path = p->path,
                               .mode = p->mode,
                               .mtime_ns = p->mtime_ns,
                               .size = p->size,
                               .chunks = all,
                               .nchunks = total};
    int r = done(&rf, arg);
    free(all);
    free_pending(p);
    g->npending--;
    return r;
}

/* Fill group gi of file f with chunks c[0..n), checked against what the
 * UPDATE declared for it. */
static int fill(struct group_resolver *g, size_t f, size_t gi, const struct chunk *c, size_t n,
                char *err, size_t errsize)
{
    struct pending *p = &g->files[f];
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += c[i].len;
    if (n != p->groups[gi].count || bytes != p->groups[gi].bytes)
        return snprintf(err, errsize,
                        "group %zu of '%.200s': %zu chunks of %llu bytes where %u of %llu were "
                        "declared",
                        gi, p->path, n, (unsigned long long)bytes, p->groups[gi].count,
                        (unsigned long long)p->groups[gi].bytes),
               -EPROTO;
    p->lists[gi] = malloc(n * sizeof(*c));
    if (!p->lists[gi])
        return -ENOMEM;
    memcpy(p->lists[gi], c, n * sizeof(*c));
    p->missing--;
    return 0;
}

struct local_group {
    struct content_id id;
    size_t start, count;
};

static int cmp_local(const void *a, const void *b)
{
    return content_id_cmp(&((const struct local_group *)a)->id,
                          &((const struct local_group *)b)->id);
}

/* The groups of ROOT's current list of path, sorted by id (may be none). */
static int local_groups(struct group_resolver *g, const char *path, struct chunk **base,
                        struct local_group **out, size_t *n)
{
    size_t nbase = 0, ng = 0;
    *base = NULL;
    *out = NULL;
    *n = 0;
    if (index_get_chunks(g->ix, path, base, &nbase) != 0 || nbase == 0)
        return 0; /* nothing there: every group is wanted */
    struct chunk_group *cg;
    if (chunk_groups_cut(*base, nbase, &cg, &ng))
        return -ENOMEM;
    struct local_group *lg = malloc(ng * sizeof(*lg));
    if (!lg) {
        free(cg);
        return -ENOMEM;
    }
    size_t start = 0;
    for (size_t i = 0; i < ng; i++) {
        lg[i] = (struct local_group){cg[i].id, start, cg[i].count};
        start += cg[i].count;
    }
    free(cg);
    qsort(lg, ng, sizeof(*lg), cmp_local);
    *out = lg;
    *n = ng;
    return 0;
}

int group_resolver_add(struct group_resolver *g, const struct msg_update *u,
                       struct content_id **want, size_t *nwant, resolved_fn done, void *arg,
                       char *err, size_t errsize)
{
    if (g->nfiles == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 16;
        struct pending *v = realloc(g->files, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        g->files = v;
        g->cap = cap;
    }
    size_t f = g->nfiles;
    struct pending *p = &g->files[f];
    *p = (struct pending){.path = strdup(u->path),
                          .mode = u->mode,
                          .mtime_ns = u->mtime_ns,
                          .size = u->size,
                          .ngroups = u->ngroups,
                          .missing = u->ngroups};
    p->groups = malloc(u->ngroups * sizeof(*p->groups));
    p->lists = calloc(u->ngroups, sizeof(*p->lists));
    if (!p->path || !p->groups || !p->lists) {
        free_pending(p);
        return -ENOMEM;
    }
    memcpy(p->groups, u->groups, u->ngroups * sizeof(*p->groups));
    g->nfiles++;
    g->npending++;

    struct chunk *base;
    struct local_group *lg;
    size_t nlg;
    int r = local_groups(g, u->path, &base, &lg, &nlg);
    for (size_t i = 0; !r && i < p->ngroups; i++) {
        struct local_group key = {.id = p->groups[i].id};
        struct local_group *hit = nlg ? bsearch(&key, lg, nlg, sizeof(*lg), cmp_local) : NULL;
        if (hit && hit->count == p->groups[i].count) {
            r = fill(g, f, i, base + hit->start, hit->count, err, errsize);
            if (r == -EPROTO) /* same id, other lengths: cannot be; ask instead */
                r = 0;
            else
                continue;
        }
        struct wanted *w = map_get(g, &p->groups[i].id, true);
        if (!w) {
            r = -ENOMEM;
            break;
        }
        if (w->chunks) { /* arrived already for another file */
            r = fill(g, f, i, w->chunks, w->n, err, errsize);
            continue;
        }
        if (w->nw == 0) {
            struct content_id *v = realloc(*want, (*nwant + 1) * sizeof(*v));
            if (!v) {
                r = -ENOMEM;
                break;
            }
            *want = v;
            (*want)[(*nwant)++] = w->id;
        }
        struct waiter *wv = realloc(w->w, (w->nw + 1) * sizeof(*wv));
        if (!wv) {
            r = -ENOMEM;
            break;
        }
        w->w = wv;
        w->w[w->nw++] = (struct waiter){f, i};
    }
    free(base);
    free(lg);
    if (!r && g->files[f].missing == 0)
        r = finish(g, f, done, arg);
    return r;
}

int group_resolver_take(struct group_resolver *g, const struct msg_group *grp, resolved_fn done,
                        void *arg, char *err, size_t errsize)
{
    struct wanted *w = map_get(g, &grp->id, false);
    if (!w || w->chunks) {
        char hex[CONTENT_ID_HEX_LEN + 1];
        content_id_to_hex(&grp->id, hex);
        return snprintf(err, errsize, "received group %s that was not asked for", hex), -EPROTO;
    }
    w->chunks = malloc(grp->n * sizeof(*w->chunks));
    if (!w->chunks)
        return -ENOMEM;
    memcpy(w->chunks, grp->chunks, grp->n * sizeof(*w->chunks));
    w->n = grp->n;
    int r = 0;
    for (size_t i = 0; !r && i < w->nw; i++) {
        struct waiter wt = w->w[i];
        r = fill(g, wt.file, wt.group, grp->chunks, grp->n, err, errsize);
        if (!r && g->files[wt.file].missing == 0)
            r = finish(g, wt.file, done, arg);
    }
    return r;
}
