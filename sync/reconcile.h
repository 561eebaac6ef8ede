/*
 * reconcile.h — two-way sync's decision, per path, from three states: the
 * last agreed one (the ancestor, ancestors.h), ours (local) and the far
 * side's (remote).  Pure logic: no I/O, no allocation.
 *
 * Rules (docs/architecture.md, "Two-way sync"):
 *   equal on both sides              nothing
 *   changed on one side only         propagate (a delete too)
 *   deleted here, edited there       keep the edit (it comes back)
 *   both changed, same content       agree (modes: the winner's)
 *   both changed, different content  conflict: the winner stays at the
 *                                    path, the loser is kept beside it as a
 *                                    conflict copy on both sides
 *   a directory against a file       the directory wins; the file is the
 *                                    conflict copy
 * Winner: the newer mtime; equal mtimes: the side whose tree id is
 * smaller (content_id_cmp).  The rule is symmetric, so either side that
 * runs the sync reaches the same result.  A directory that would vanish or
 * turn into a file on a side where something below it is kept stays a
 * directory (a rename into it, or an edit under it, is never lost).
 *
 * Invariant (tested over random triples): after the actions, both trees
 * are equal, every parent is a directory, and every file content or
 * symlink that differed from the ancestor on either side still exists.
 */
#ifndef WSYNC_RECONCILE_H
#define WSYNC_RECONCILE_H

#include <stddef.h>

#include "path_state.h"

enum rc_action {
    RC_NONE,          /* equal (or absent) on both sides */
    RC_PUSH,          /* our state goes to the far side */
    RC_PULL,          /* the far side's state comes here */
    RC_DELETE_LOCAL,  /* deleted there, unchanged here: delete here */
    RC_DELETE_REMOTE, /* deleted here, unchanged there: delete there */
    RC_CONFLICT,      /* winner stays at path; loser copied beside it on both sides */
};

enum rc_side { RC_LOCAL = 1, RC_REMOTE = 2 };

struct rc_item {
    const char *path;
    struct path_state anc, local, remote; /* in */
    enum rc_action action;                /* out */
    enum rc_side winner;                  /* out, RC_CONFLICT only */
    const char *why;                      /* out: a few words, for --dry-run */
};

/* Decide every item.  items: sorted by strcmp() of path, paths unique, and
 * every path's parent directory present among them if any side has it.
 * local_tree / remote_tree: the two tree ids (the tie-break). */
void reconcile(struct rc_item *items, size_t n, const struct content_id *local_tree,
               const struct content_id *remote_tree);

/* The state both sides hold at item's path once its action is done. */
const struct path_state *reconcile_result(const struct rc_item *it);

/* The losing state of a conflict. */
const struct path_state *reconcile_loser(const struct rc_item *it);

const char *reconcile_action_name(enum rc_action a);

#endif
