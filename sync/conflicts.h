/*
 * conflicts.h — the conflict copies a two-way sync left in a tree
 * (conflict_name.h), found by name in the tree's index, and their bulk
 * resolution: keep the copy (it replaces the original, atomically, by
 * rename) or drop it.  The next sync carries either choice to the peer.
 */
#ifndef WSYNC_CONFLICTS_H
#define WSYNC_CONFLICTS_H

#include <stdbool.h>
#include <stddef.h>

struct conflict_copy {
    const char *path; /* the copy, relative to SRC */
    const char *orig; /* the path it is a version of */
    const char *host; /* where the copy's version was made */
    const char *when; /* "YYYYmmdd-HHMMSS", UTC */
};

/* Bring SRC's index up to date and call fn for every conflict copy under
 * prefix ("" for all), in path order.  0, fn's non-zero return, or -errno
 * with err naming the cause. */
int conflicts_list(const char *src, const char *prefix,
                   int (*fn)(const struct conflict_copy *c, void *arg), void *arg, char *err,
                   size_t errsize);

/* Resolve one copy: keep_copy renames it over its original (a directory
 * in the way is refused: -EISDIR), else it is removed.  Beneath SRC, no
 * symlinks followed.  0, or -errno with err naming the path. */
int conflicts_resolve(const char *src, const struct conflict_copy *c, bool keep_copy, char *err,
                      size_t errsize);

#endif
