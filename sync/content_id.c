/*
 * content_id.c — XXH3-128 ids in canonical form, and their hex text.
 *
 * Invariant: every id leaves this file through XXH128_canonicalFromHash, so
 * an id's bytes never depend on the host's byte order.
 */
#include "content_id.h"

#include <errno.h>
#include <stdalign.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t, to keep it off the heap */
#include <xxhash.h>

_Static_assert(sizeof(struct content_id) == CONTENT_ID_SIZE, "content_id has no padding");
_Static_assert(sizeof(XXH128_canonical_t) == CONTENT_ID_SIZE, "XXH3-128 is 16 bytes");
_Static_assert(sizeof(XXH3_state_t) <= sizeof(struct content_hasher),
               "content_hasher must hold an XXH3_state_t");
_Static_assert(alignof(XXH3_state_t) <= alignof(struct content_hasher),
               "content_hasher must be aligned like an XXH3_state_t");

static void id_from_hash(XXH128_hash_t h, struct content_id *out)
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    memcpy(out->b, c.digest, CONTENT_ID_SIZE);
}

void content_id_of_chunk(const void *buf, size_t len, struct content_id *out)
{
    id_from_hash(XXH3_128bits(buf, len), out);
}

void content_id_of_file(const struct content_id *ids, size_t n, struct content_id *out)
{
    /* ids is an array of 16-byte structs without padding: exactly the
     * concatenation the definition asks for. */
    id_from_hash(XXH3_128bits(ids, n * CONTENT_ID_SIZE), out);
}

static XXH3_state_t *hasher_state(struct content_hasher *h)
{
    return (XXH3_state_t *)(void *)h->opaque;
}

void content_hasher_init(struct content_hasher *h)
{
    XXH3_INITSTATE(hasher_state(h));
    XXH3_128bits_reset(hasher_state(h));
}

void content_hasher_update(struct content_hasher *h, const void *buf, size_t len)
{
    XXH3_128bits_update(hasher_state(h), buf, len);
}

void content_hasher_final(struct content_hasher *h, struct content_id *out)
{
    id_from_hash(XXH3_128bits_digest(hasher_state(h)), out);
}

int content_id_cmp(const struct content_id *a, const struct content_id *b)
{
    return memcmp(a->b, b->b, CONTENT_ID_SIZE);
}

bool content_id_eq(const struct content_id *a, const struct content_id *b)
{
    return memcmp(a->b, b->b, CONTENT_ID_SIZE) == 0;
}

void content_id_to_hex(const struct content_id *id, char out[CONTENT_ID_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < CONTENT_ID_SIZE; i++) {
        out[2 * i] = digits[id->b[i] >> 4];
        out[2 * i + 1] = digits[id->b[i] & 0xf];
    }
    out[CONTENT_ID_HEX_LEN] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int content_id_from_hex(const char *hex, struct content_id *out)
{
    struct content_id id;
    for (size_t i = 0; i < CONTENT_ID_SIZE; i++) {
        /* A short string stops at its NUL: hex_value('\0') is -1. */
        int hi = hex_value(hex[2 * i]);
        int lo = hi < 0 ? -1 : hex_value(hex[2 * i + 1]);
        if (lo < 0)
            return -EINVAL;
        id.b[i] = (uint8_t)(hi << 4 | lo);
    }
    if (hex[CONTENT_ID_HEX_LEN] != '\0')
        return -EINVAL;
    *out = id;
    return 0;
}
