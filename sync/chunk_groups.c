/*
 * chunk_groups.c — see chunk_groups.h.
 */
#include "chunk_groups.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

void chunk_group_id(const struct chunk *c, size_t n, struct content_id *out)
{
    struct content_hasher h;
    content_hasher_init(&h);
    for (size_t i = 0; i < n; i++) {
        uint8_t len[4] = {(uint8_t)c[i].len, (uint8_t)(c[i].len >> 8), (uint8_t)(c[i].len >> 16),
                          (uint8_t)(c[i].len >> 24)};
        content_hasher_update(&h, len, sizeof(len));
        content_hasher_update(&h, c[i].id.b, CONTENT_ID_SIZE);
    }
    content_hasher_final(&h, out);
}

static bool ends_group(const struct chunk *c)
{
    uint32_t v = (uint32_t)c->id.b[0] << 24 | (uint32_t)c->id.b[1] << 16 |
                 (uint32_t)c->id.b[2] << 8 | c->id.b[3];
    return v % CHUNK_GROUP_AVG == 0;
}

int chunk_groups_cut(const struct chunk *c, size_t n, struct chunk_group **out, size_t *ngroups)
{
    *out = NULL;
    *ngroups = 0;
    size_t cap = 0, start = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(ends_group(&c[i]) || i + 1 - start == CHUNK_GROUP_MAX || i + 1 == n))
            continue;
        if (*ngroups == cap) {
            cap = cap ? 2 * cap : n / CHUNK_GROUP_AVG + 4;
            struct chunk_group *g = realloc(*out, cap * sizeof(*g));
            if (!g) {
                free(*out);
                *out = NULL;
                *ngroups = 0;
                return -ENOMEM;
            }
            *out = g;
        }
        struct chunk_group *g = &(*out)[(*ngroups)++];
        g->count = (uint32_t)(i + 1 - start);
        g->bytes = 0;
        for (size_t j = start; j <= i; j++)
            g->bytes += c[j].len;
        chunk_group_id(c + start, g->count, &g->id);
        start = i + 1;
    }
    return 0;
}
