/*
 * sent_groups.h — the chunk groups (chunk_groups.h) a sender named in the
 * open batch's grouped UPDATEs, by group id, so that a WANT for one can be
 * answered with its chunks (GROUP).
 */
#ifndef WSYNC_SENT_GROUPS_H
#define WSYNC_SENT_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#include "chunker.h"
#include "content_id.h"

struct sent_group {
    struct content_id id;
    struct chunk *chunks; /* owned; NULL: an empty slot */
    uint32_t n;
};

struct sent_groups {
    struct sent_group *v;
    size_t cap, n; /* cap: 0 or a power of two */
};

/* Remember a copy of c[0..n) as group id (kept once).  0 or -ENOMEM. */
int sent_groups_add(struct sent_groups *m, const struct content_id *id, const struct chunk *c,
                    uint32_t n);
/* The group with this id, or NULL. */
const struct sent_group *sent_groups_get(const struct sent_groups *m, const struct content_id *id);
/* Forget all (the batch was acknowledged); the map stays usable. */
void sent_groups_clear(struct sent_groups *m);

#endif
