/*
 * remote_map.h — the entries the far side listed (MANIFEST), by path, for
 * the sender's diff: each is looked up by the local entry of the same
 * path and marked seen; the unseen ones are the far side's extras.
 *
 * Invariant: order holds every added path once, in the order added (a
 * parent directory's entries after the directory itself).
 */
#ifndef WSYNC_REMOTE_MAP_H
#define WSYNC_REMOTE_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "message.h"

struct remote {
    struct msg_entry e; /* path and target owned here */
    bool seen;
};

struct remote_map {
    struct remote *v;
    size_t cap, n;
    char **order; /* paths in the order added, for deletes */
};

/* Add a copy of e (a path not added before).  0 or -ENOMEM. */
int remote_map_add(struct remote_map *m, const struct msg_entry *e);
/* The entry of path, or NULL. */
struct remote *remote_map_get(struct remote_map *m, const char *path);
/* Free everything; the map is then invalid until zeroed. */
void remote_map_free(struct remote_map *m);

#endif
