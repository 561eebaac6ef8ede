/*
 * rechunk.h — re-chunk a file of which only a byte range changed, reusing
 * the ids of the chunks the change cannot have touched.
 *
 * Content-defined boundaries depend only on the bytes since the previous
 * boundary, so every chunk that ends at or before the change keeps its id.
 * Chunking restarts at the boundary before the change; after the change, as
 * soon as a new boundary lands on an old one (and the file kept its size, so
 * the bytes after it did not move), the rest of the old list is the new
 * list.  A 4 KiB write into a 1 GiB file reads about one chunk.
 */
#ifndef WSYNC_RECHUNK_H
#define WSYNC_RECHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "chunker.h"

/* old[0..nold): the file's chunks before the change; [lo, hi): the only
 * bytes written since (a truncation or unknown change must use
 * chunker_hash_fd instead).  Outputs as chunker_hash_fd; *bytes_read gets
 * how much was read.  0, or -errno from pread/malloc. */
int rechunk_fd(int fd, const struct chunk *old, size_t nold, uint64_t lo, uint64_t hi,
               struct chunk **out, size_t *nout, struct content_id *file_id,
               uint64_t *bytes_read);

#endif
