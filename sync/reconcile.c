/*
 * reconcile.c — see reconcile.h.  Two passes: each path on its own, then
 * from the deepest path up, a directory that something below it still
 * needs is kept (or wins its clash).  Children sort after their parent
 * ("d" < "d/x"), so walking the array backwards visits children first.
 */
#include "reconcile.h"

#include <assert.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

static const struct path_state absent;

const char *reconcile_action_name(enum rc_action a)
{
    switch (a) {
    case RC_NONE: return "equal";
    case RC_PUSH: return "push";
    case RC_PULL: return "pull";
    case RC_DELETE_LOCAL: return "delete here";
    case RC_DELETE_REMOTE: return "delete there";
    case RC_CONFLICT: return "conflict";
    }
    return "?";
}

const struct path_state *reconcile_result(const struct rc_item *it)
{
    switch (it->action) {
    case RC_NONE:
    case RC_PUSH: return &it->local;
    case RC_PULL: return &it->remote;
    case RC_CONFLICT: return it->winner == RC_LOCAL ? &it->local : &it->remote;
    default: return &absent;
    }
}

const struct path_state *reconcile_loser(const struct rc_item *it)
{
    assert(it->action == RC_CONFLICT);
    return it->winner == RC_LOCAL ? &it->remote : &it->local;
}

/* Newer mtime wins; a tie goes to the smaller tree id. */
static enum rc_side winner_of(const struct rc_item *it, const struct content_id *lt,
                              const struct content_id *rt)
{
    if (it->local.mtime_ns != it->remote.mtime_ns)
        return it->local.mtime_ns > it->remote.mtime_ns ? RC_LOCAL : RC_REMOTE;
    return content_id_cmp(lt, rt) <= 0 ? RC_LOCAL : RC_REMOTE;
}

static void set(struct rc_item *it, enum rc_action a, enum rc_side w, const char *why)
{
    it->action = a;
    it->winner = a == RC_CONFLICT ? w : 0;
    it->why = why;
}

static void decide(struct rc_item *it, const struct content_id *lt, const struct content_id *rt)
{
    const struct path_state *A = &it->anc, *L = &it->local, *R = &it->remote;
    bool lp = path_state_present(L), rp = path_state_present(R);
    if (path_state_same(L, R))
        return set(it, RC_NONE, 0, lp ? "same on both sides" : "gone on both sides");
    if (path_state_same(L, A))
        return rp ? set(it, RC_PULL, 0, "changed there only")
                  : set(it, RC_DELETE_LOCAL, 0, "deleted there, unchanged here");
    if (path_state_same(R, A))
        return lp ? set(it, RC_PUSH, 0, "changed here only")
                  : set(it, RC_DELETE_REMOTE, 0, "deleted here, unchanged there");
    /* Both sides changed it. */
    if (!lp)
        return set(it, RC_PULL, 0, "deleted here, edited there: the edit is kept");
    if (!rp)
        return set(it, RC_PUSH, 0, "edited here, deleted there: the edit is kept");
    bool ld = L->type == S_IFDIR, rd = R->type == S_IFDIR;
    enum rc_side w = winner_of(it, lt, rt);
    if (ld && rd)
        return set(it, w == RC_LOCAL ? RC_PUSH : RC_PULL, 0, "both changed the mode");
    if (ld || rd)
        return set(it, RC_CONFLICT, ld ? RC_LOCAL : RC_REMOTE,
                   "a directory on one side, not on the other");
    if (path_state_same_content(L, R))
        return set(it, w == RC_LOCAL ? RC_PUSH : RC_PULL, 0, "same content, both changed the mode");
    set(it, RC_CONFLICT, w, "changed on both sides");
}

/* The item of path's parent directory, or NULL (a top-level path). */
static struct rc_item *parent_of(struct rc_item *items, size_t n, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return NULL;
    size_t len = (size_t)(slash - path);
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strncmp(items[mid].path, path, len);
        if (c == 0 && items[mid].path[len] != '\0')
            c = 1; /* longer than the parent: sorts after it */
        if (c == 0)
            return &items[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Something below it survives: it must end up a directory on both sides. */
static void keep_as_dir(struct rc_item *it)
{
    if (reconcile_result(it)->type == S_IFDIR)
        return;
    bool ld = it->local.type == S_IFDIR, rd = it->remote.type == S_IFDIR;
    assert(ld || rd); /* a kept child means one side has the directory */
    if (ld && rd)
        set(it, RC_NONE, 0, "kept: something below it is kept");
    else if (ld && path_state_present(&it->remote))
        set(it, RC_CONFLICT, RC_LOCAL, "kept as a directory: something below it is kept");
    else if (rd && path_state_present(&it->local))
        set(it, RC_CONFLICT, RC_REMOTE, "kept as a directory: something below it is kept");
    else if (ld)
        set(it, RC_PUSH, 0, "deleted there, but something below it is kept");
    else
        set(it, RC_PULL, 0, "deleted here, but something below it is kept");
}

void reconcile(struct rc_item *items, size_t n, const struct content_id *local_tree,
               const struct content_id *remote_tree)
{
    for (size_t i = 0; i < n; i++) {
        assert(i == 0 || strcmp(items[i - 1].path, items[i].path) < 0);
        decide(&items[i], local_tree, remote_tree);
    }
    for (size_t i = n; i-- > 0;) {
        if (!path_state_present(reconcile_result(&items[i])))
            continue;
        struct rc_item *parent = parent_of(items, n, items[i].path);
        if (parent)
            keep_as_dir(parent);
    }
}
