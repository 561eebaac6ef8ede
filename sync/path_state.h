/*
 * path_state.h — what one path is, as far as sync cares: absent, a
 * directory, a regular file (its file id) or a symlink (its target), with
 * permission bits.  Shared by the ancestor store and reconciliation.
 * Invariant: two paths are "the same" iff path_state_same() says so, which
 * is exactly what the tree root (tree_root.h) distinguishes.
 */
#ifndef WSYNC_PATH_STATE_H
#define WSYNC_PATH_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "content_id.h"

struct path_state {
    uint32_t type;        /* 0: absent; S_IFREG, S_IFDIR or S_IFLNK */
    uint32_t mode;        /* permission bits (only & 0777 is compared) */
    struct content_id id; /* S_IFREG: file id */
    const char *target;   /* S_IFLNK: target (not owned) */
    int64_t mtime_ns;     /* informational: the conflict winner rule uses it */
};

static inline bool path_state_present(const struct path_state *s)
{
    return s->type != 0;
}

/* Same type, permission bits and content; both absent counts as same. */
static inline bool path_state_same(const struct path_state *a, const struct path_state *b)
{
    if (a->type != b->type)
        return false;
    if (!a->type)
        return true;
    if ((a->mode & 0777) != (b->mode & 0777))
        return false;
    if (a->type == 0100000 /* S_IFREG */)
        return content_id_eq(&a->id, &b->id);
    if (a->type == 0120000 /* S_IFLNK */)
        return a->target && b->target && strcmp(a->target, b->target) == 0;
    return true;
}

/* Same content, permission bits aside (a mode-only difference loses no bytes). */
static inline bool path_state_same_content(const struct path_state *a, const struct path_state *b)
{
    struct path_state x = *a;
    x.mode = b->mode;
    return path_state_same(&x, b);
}

#endif
