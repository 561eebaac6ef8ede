/*
 * chunker.h — content-defined chunking (FastCDC-style gear hash with
 * normalized chunking), so that an insert or delete moves one or two chunk
 * boundaries instead of all the ones after it.
 *
 * The cut rule, for each byte of the current chunk (len = bytes so far,
 * including this one), with h = 0 at the chunk's start:
 *   - the first MIN - 64 bytes are skipped; from then on h = (h << 1) + gear[byte],
 *     so at len >= MIN h depends on exactly the last 64 bytes;
 *   - MIN <= len < AVG: cut after this byte if (h & CHUNKER_MASK_S) == 0;
 *   - AVG <= len < MAX: cut if (h & CHUNKER_MASK_L) == 0;
 *   - len == MAX: cut.
 * The end of input ends the last chunk: a file shorter than MIN is one chunk,
 * an empty file has none.  On random data chunks average about 72 KiB.
 *
 * Invariant: this rule, the masks and the gear table are part of the wire
 * format (chunk ids name chunks between machines): never change them.
 * Boundaries do not depend on how the input is split into buffers.
 */
#ifndef WSYNC_CHUNKER_H
#define WSYNC_CHUNKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "content_id.h"

#define CHUNKER_MIN_SIZE (16u * 1024)
#define CHUNKER_AVG_SIZE (64u * 1024) /* where the mask switches from S to L */
#define CHUNKER_MAX_SIZE (256u * 1024)
#define CHUNKER_MASK_S   0xffffc00000000000ull /* top 18 bits: p = 2^-18 */
#define CHUNKER_MASK_L   0xfffc000000000000ull /* top 14 bits: p = 2^-14 */
/* The gear table is 256 outputs of splitmix64 seeded with this value. */
#define CHUNKER_GEAR_SEED 0x7773796e63676561ull /* "wsyncgea" */

/* Streaming state; plain data, copy or reset it freely. */
struct chunker {
    uint64_t hash;  /* gear hash of the current chunk so far */
    uint64_t start; /* stream offset where the current chunk starts */
    uint32_t len;   /* bytes of the current chunk seen so far */
};

/* Where a chunk lies in the stream. */
struct chunk_span {
    uint64_t off;
    uint32_t len; /* 1..CHUNKER_MAX_SIZE */
};

/* A chunk and its id (content_id_of_chunk of its bytes). */
struct chunk {
    uint64_t off;
    uint32_t len;
    struct content_id id;
};

/* A growable array of chunks: v[0..n) (malloc'ed; free() it), room for cap. */
struct chunk_vec {
    struct chunk *v;
    size_t n, cap;
};

/* Append c[0..n) to a, doubling its room as needed (from 16 chunks).  0, or
 * -ENOMEM with a unchanged. */
int chunk_vec_append(struct chunk_vec *a, const struct chunk *c, size_t n);

/* The 256-entry gear table (for tests and tools; it never changes). */
extern const uint64_t chunker_gear[256];

/* Start a stream at offset 0. */
void chunker_init(struct chunker *c);

/* Consume the next bytes of the stream from buf[0..len) until the current
 * chunk ends or buf runs out.  True: a chunk ended after buf[*used - 1] and
 * *span is it (the next call starts a new chunk).  False: all of buf was
 * consumed (*used == len) and the chunk continues.  Never fails. */
bool chunker_next(struct chunker *c, const void *buf, size_t len, size_t *used,
                  struct chunk_span *span);

/* End of input: true and the last chunk in *span if bytes are pending,
 * false if none (empty stream, or it ended on a boundary).  Resets c to
 * offset 0. */
bool chunker_finish(struct chunker *c, struct chunk_span *span);

/* Length of the first chunk of buf[0..len), given that buf holds everything
 * that is left of the input (0 only when len is 0). */
size_t chunker_first_len(const void *buf, size_t len);

/* Chunk and hash a whole buffer.  *chunks (malloc'ed, free() it; NULL when
 * there are none) and *nchunks get the chunks in order, unless chunks is
 * NULL; *file_id (if not NULL) gets the file id.  0 or -ENOMEM. */
int chunker_hash_buffer(const void *buf, size_t len, struct chunk **chunks, size_t *nchunks,
                        struct content_id *file_id);

/* The same for everything read() returns from fd (from its current offset
 * to EOF), through a buffer of at most 1 MiB; *size (if not NULL) gets the
 * bytes read.  0, or -errno from read() or -ENOMEM (outputs untouched). */
int chunker_hash_fd(int fd, struct chunk **chunks, size_t *nchunks, struct content_id *file_id,
                    uint64_t *size);

#endif
