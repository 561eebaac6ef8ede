/*
 * sent_groups.c — see sent_groups.h.  Open addressing on the id, grown at
 * half full.
 */
#include "sent_groups.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static size_t slot(const struct sent_groups *m, const struct content_id *id)
{
    size_t i = XXH3_64bits(id->b, CONTENT_ID_SIZE) & (m->cap - 1);
    while (m->v[i].chunks && !content_id_eq(&m->v[i].id, id))
        i = (i + 1) & (m->cap - 1);
    return i;
}

const struct sent_group *sent_groups_get(const struct sent_groups *m, const struct content_id *id)
{
    if (!m->cap)
        return NULL;
    const struct sent_group *g = &m->v[slot(m, id)];
    return g->chunks ? g : NULL;
}

int sent_groups_add(struct sent_groups *m, const struct content_id *id, const struct chunk *c,
                    uint32_t n)
{
    if ((m->n + 1) * 2 > m->cap) {
        struct sent_groups g = {.cap = m->cap ? m->cap * 2 : 256};
        g.v = calloc(g.cap, sizeof(*g.v));
        if (!g.v)
            return -ENOMEM;
        for (size_t i = 0; i < m->cap; i++)
            if (m->v[i].chunks)
                g.v[slot(&g, &m->v[i].id)] = m->v[i];
        free(m->v);
        m->v = g.v;
        m->cap = g.cap;
    }
    struct sent_group *g = &m->v[slot(m, id)];
    if (g->chunks)
        return 0;
    g->chunks = malloc(n * sizeof(*c));
    if (!g->chunks)
        return -ENOMEM;
    memcpy(g->chunks, c, n * sizeof(*c));
    g->id = *id;
    g->n = n;
    m->n++;
    return 0;
}

void sent_groups_clear(struct sent_groups *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->v[i].chunks);
    free(m->v);
    memset(m, 0, sizeof(*m));
}
