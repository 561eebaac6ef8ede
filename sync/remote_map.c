/*
 * remote_map.c — see remote_map.h.  Open addressing on XXH3 of the path,
 * grown at half full; entries own copies of their path and target.
 */
#include "remote_map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static size_t slot(const struct remote_map *m, const char *path)
{
    size_t i = XXH3_64bits(path, strlen(path)) & (m->cap - 1);
    while (m->v[i].e.path && strcmp(m->v[i].e.path, path) != 0)
        i = (i + 1) & (m->cap - 1);
    return i;
}

int remote_map_add(struct remote_map *m, const struct msg_entry *e)
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

struct remote *remote_map_get(struct remote_map *m, const char *path)
{
    if (!m->cap)
        return NULL;
    struct remote *r = &m->v[slot(m, path)];
    return r->e.path ? r : NULL;
}

void remote_map_free(struct remote_map *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free((char *)m->v[i].e.path);
        free((char *)m->v[i].e.target);
    }
    free(m->v);
    free(m->order);
}
