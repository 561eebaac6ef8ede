/*
 * group_resolve.h — the receiver's side of grouped chunk lists: turn an
 * UPDATE that names its chunk list by group ids (chunk_groups.h) back into
 * the list, from the groups ROOT's own file at that path already has, and
 * from GROUP messages for the rest.
 *
 * Invariant: a file leaves here only with every group filled by chunks
 * whose group id was checked (by the decoder for GROUP, by recomputation
 * for local groups) and whose count and byte total match what its UPDATE
 * declared.  The caller still checks the whole list against the chunker's
 * rules (msg_chunk_list_check) and derives the file id from it.
 */
#ifndef WSYNC_GROUP_RESOLVE_H
#define WSYNC_GROUP_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

#include "chunker.h"
#include "content_id.h"
#include "message.h"

struct index;
struct group_resolver;

/* A file whose chunk list is complete.  chunks (with offsets) is owned by
 * the resolver and valid during the callback only. */
struct resolved_file {
    const char *path;
    uint32_t mode;
    int64_t mtime_ns;
    uint64_t size;
    const struct chunk *chunks;
    size_t nchunks;
};
typedef int (*resolved_fn)(const struct resolved_file *f, void *arg);

/* NULL on allocation failure.  ix: ROOT's index (for its chunk lists). */
struct group_resolver *group_resolver_new(struct index *ix);
void group_resolver_free(struct group_resolver *g);

/* A grouped UPDATE (u->ngroups > 0).  Groups found in ROOT's current list
 * of u->path are filled now; the ids of the others are appended to *want
 * (each id once per batch).  done is called at once if nothing is missing.
 * 0, or -errno with err filled (or done's error). */
int group_resolver_add(struct group_resolver *g, const struct msg_update *u,
                       struct content_id **want, size_t *nwant, resolved_fn done, void *arg,
                       char *err, size_t errsize);

/* A GROUP answering a WANT: fill every file waiting for it; done is called
 * for each file that is now complete.  -EPROTO for a group nobody asked
 * for, or whose count or bytes differ from what an UPDATE declared. */
int group_resolver_take(struct group_resolver *g, const struct msg_group *grp, resolved_fn done,
                        void *arg, char *err, size_t errsize);

/* Files still waiting for a group. */
size_t group_resolver_pending(const struct group_resolver *g);

/* Forget the batch (after its commit, or when the session ends). */
void group_resolver_clear(struct group_resolver *g);

#endif
