/*
 * chunk_groups.h — a file's chunk list cut into content-defined groups, so
 * that a big file's list can travel as a few group ids when the far side
 * already holds most of it (docs/protocol.md, "Grouped chunk lists").
 *
 * A group ends after a chunk whose id's first four bytes, read big-endian,
 * are a multiple of CHUNK_GROUP_AVG, after CHUNK_GROUP_MAX chunks, or at the
 * end of the list.  Like the chunker's boundaries, these depend only on the
 * chunk ids, so an edit that changes one chunk changes one group id (two
 * when it removes a boundary), and every other group id stays.  A group id
 * is XXH3-128 over the group's (u32 length LE, 16-byte chunk id) pairs: it
 * names the lengths as well as the ids.
 *
 * Invariant: part of the wire format (version 2); a change is a new version.
 */
#ifndef WSYNC_CHUNK_GROUPS_H
#define WSYNC_CHUNK_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#include "chunker.h"
#include "content_id.h"

#define CHUNK_GROUP_AVG 32u  /* mean chunks per group on random ids */
#define CHUNK_GROUP_MAX 256u /* chunks per group, at most */

struct chunk_group {
    uint32_t count;       /* chunks, 1..CHUNK_GROUP_MAX */
    uint64_t bytes;       /* sum of their lengths */
    struct content_id id; /* chunk_group_id of them */
};

/* The id of the group made of chunks c[0..n). */
void chunk_group_id(const struct chunk *c, size_t n, struct content_id *out);

/* Cut c[0..n) into groups: *out (malloc'ed; NULL when n is 0) and *ngroups.
 * 0 or -ENOMEM. */
int chunk_groups_cut(const struct chunk *c, size_t n, struct chunk_group **out, size_t *ngroups);

#endif
