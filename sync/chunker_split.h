/*
 * chunker_split.h — chunk and hash one big file on two threads, with the
 * same result as chunker_hash_fd (the cuts of content-defined chunking
 * resynchronise a chunk or two after any start; chunker_split.c says how).
 *
 * For a one-shot scan that has a core to spare (wsync push indexing SRC
 * while the far side waits): a 1 GiB file is chunked in about half the
 * time.  The background indexer of a mount does not use it: it is meant to
 * stay on one core.
 */
#ifndef WSYNC_CHUNKER_SPLIT_H
#define WSYNC_CHUNKER_SPLIT_H

#include "chunker.h"

#include <stdint.h>

/* Files smaller than this are chunked on the calling thread alone: below
 * it a thread costs more than it saves. */
#define CHUNKER_SPLIT_MIN (32u << 20)

/* Like chunker_hash_fd for an fd at offset 0 (just opened), but a regular
 * file of CHUNKER_SPLIT_MIN bytes or more is read with pread (the file
 * offset stays) and chunked from its middle by a second thread at once.
 * *size gets the bytes chunked.  0, or -errno from read or -ENOMEM. */
int chunker_hash_fd_split(int fd, struct chunk **chunks, size_t *nchunks,
                          struct content_id *file_id, uint64_t *size);

#endif
