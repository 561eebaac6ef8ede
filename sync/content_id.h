/*
 * content_id.h — the 16-byte content ids that name chunks, files and trees.
 *
 * A chunk id is XXH3-128 of the chunk's bytes.  A file id is XXH3-128 over
 * the concatenation of its chunk ids, in file order (an empty file has no
 * chunks, so its id is XXH3-128 of zero bytes).  Ids are stored in xxhash's
 * canonical big-endian form (XXH128_canonicalFromHash), so the bytes, the
 * hex text and memcmp() order are the same on every machine.
 *
 * Invariant: these definitions are part of the wire format and the index;
 * changing any of them changes every id.
 */
#ifndef WSYNC_CONTENT_ID_H
#define WSYNC_CONTENT_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONTENT_ID_SIZE    16
#define CONTENT_ID_HEX_LEN (2 * CONTENT_ID_SIZE)

struct content_id {
    uint8_t b[CONTENT_ID_SIZE]; /* canonical (big-endian) XXH3-128 */
};

/* The id of one chunk: XXH3-128 of buf[0..len). */
void content_id_of_chunk(const void *buf, size_t len, struct content_id *out);

/* The id of a file from its chunk ids ids[0..n), in file order. */
void content_id_of_file(const struct content_id *ids, size_t n, struct content_id *out);

/* Incremental XXH3-128 for input that arrives in pieces: a chunk read
 * through a buffer (update with its bytes), or a file id (update with each
 * chunk id's 16 bytes, in file order).  The result equals the one-shot
 * functions above on the same bytes.  Holds no heap memory. */
struct content_hasher {
    uint8_t opaque[640] __attribute__((aligned(64))); /* an XXH3_state_t */
};
void content_hasher_init(struct content_hasher *h);
void content_hasher_update(struct content_hasher *h, const void *buf, size_t len);
void content_hasher_final(struct content_hasher *h, struct content_id *out);

/* memcmp() order; 0 when equal. */
int content_id_cmp(const struct content_id *a, const struct content_id *b);
bool content_id_eq(const struct content_id *a, const struct content_id *b);

/* Write 32 lowercase hex digits and a NUL into out. */
void content_id_to_hex(const struct content_id *id, char out[CONTENT_ID_HEX_LEN + 1]);

/* Parse exactly 32 hex digits (either case) ending at a NUL.  0, or
 * -EINVAL for any other length or a non-hex character (*out untouched). */
int content_id_from_hex(const char *hex, struct content_id *out);

#endif
