/*
 * test_chunker.c — chunk boundaries and content ids.  The pinned vectors
 * below are the wire format: if one changes, every id on every machine
 * changes with it, so a failure here means the change is wrong, not the test.
 */
#include "sync/chunker.h"
#include "sync/chunker_split.h"
#include "sync/content_id.h"

#include "tests/lib/harness.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MiB (1024u * 1024u)

/* Seeded test data: xorshift64, each word stored little-endian. */
static uint8_t *random_bytes(size_t n, uint64_t seed)
{
    uint8_t *b = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(b);
    uint64_t x = seed;
    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 0) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        b[i] = (uint8_t)(x >> (8 * (i % 8)));
    }
    return b;
}

#define SEED 0x9e3779b97f4a7c15ull

static char *hex(const struct content_id *id)
{
    static char buf[4][CONTENT_ID_HEX_LEN + 1];
    static int next;
    char *s = buf[next++ % 4];
    content_id_to_hex(id, s);
    return s;
}

static struct chunk *chunk_all(const uint8_t *b, size_t n, size_t *nchunks, struct content_id *fid)
{
    struct chunk *c = NULL;
    ck_assert_int_eq(chunker_hash_buffer(b, n, &c, nchunks, fid), 0);
    return c;
}

/* The cut rule exactly as chunker.h words it, one byte at a time. */
static size_t reference_first_len(const uint8_t *p, size_t n)
{
    uint64_t h = 0;
    for (size_t len = 1; len <= n; len++) {
        if (len > CHUNKER_MIN_SIZE - 64)
            h = (h << 1) + chunker_gear[p[len - 1]];
        if (len >= CHUNKER_MIN_SIZE && len < CHUNKER_AVG_SIZE && !(h & CHUNKER_MASK_S))
            return len;
        if (len >= CHUNKER_AVG_SIZE && len < CHUNKER_MAX_SIZE && !(h & CHUNKER_MASK_L))
            return len;
        if (len == CHUNKER_MAX_SIZE)
            return len;
    }
    return n;
}

START_TEST(gear_table_is_splitmix64_of_the_seed)
{
    uint64_t s = CHUNKER_GEAR_SEED;
    for (int i = 0; i < 256; i++) {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        ck_assert_uint_eq(chunker_gear[i], z ^ (z >> 31));
    }
}
END_TEST

/* First 8 MiB of SEED data: the exact chunk lengths, computed once and pinned. */
static const uint32_t pinned_lens[] = {
    75081, 51238,  67050,  68537,  88912,  66861,  73805,  77698,  87891,  37211,  69451, 93202,
    24405, 135458, 118014, 79709,  87327,  117773, 66647,  66119,  72697,  122785, 26043, 118298,
    73863, 85743,  67380,  72989,  76684,  84798,  70273,  95059,  86408,  107823, 77985, 25426,
    81723, 42490,  69087,  75297,  78486,  69816,  104269, 92632,  66181,  75810,  67215, 94598,
    96181, 43859,  21542,  111856, 87240,  139798, 75171,  99770,  78176,  70762,  91562, 76079,
    66765, 59070,  66609,  47977,  100667, 16600,  22245,  86318,  101903, 22666,  70081, 80675,
    79464, 76736,  67329,  74774,  70818,  72708,  116734, 67132,  84472,  164449, 27926, 16481,
    74533, 48688,  36471,  84752,  81726,  83138,  118714, 123885, 141341, 73858,  93989, 69943,
    66258, 71906,  67853,  66190,  65977,  78130,  65620,  25006,  27641,  68540,  26970, 71614,
    71890, 65739,  81493,  49901,
};

START_TEST(pinned_boundaries_and_ids)
{
    size_t n = 8 * MiB, nchunks;
    uint8_t *b = random_bytes(n, SEED);
    struct content_id fid;
    struct chunk *c = chunk_all(b, n, &nchunks, &fid);
    size_t npinned = sizeof(pinned_lens) / sizeof(pinned_lens[0]);
    ck_assert_uint_eq(nchunks, npinned);
    uint64_t off = 0;
    for (size_t i = 0; i < nchunks; i++) {
        ck_assert_uint_eq(c[i].off, off);
        ck_assert_uint_eq(c[i].len, pinned_lens[i]);
        off += c[i].len;
    }
    ck_assert_uint_eq(off, n);
    ck_assert_str_eq(hex(&c[0].id), "13fb02127688977f2103f0fff920d977");
    ck_assert_str_eq(hex(&c[nchunks - 1].id), "cdfb8029fb0a3cfaeba04ec9bfc27429");
    ck_assert_str_eq(hex(&fid), "3fdd2f3296a0e21d31892f8321ae2fdd");
    free(c);
    free(b);
}
END_TEST

START_TEST(optimized_loop_follows_the_documented_rule)
{
    size_t n = 4 * MiB;
    uint8_t *b = random_bytes(n, SEED ^ 1);
    for (size_t k = 0; k < n;) {
        size_t want = reference_first_len(b + k, n - k);
        ck_assert_uint_eq(chunker_first_len(b + k, n - k), want);
        k += want;
    }
    /* Zeros never match a mask: every chunk is cut at the maximum. */
    memset(b, 0, n);
    ck_assert_uint_eq(reference_first_len(b, n), CHUNKER_MAX_SIZE);
    ck_assert_uint_eq(chunker_first_len(b, n), CHUNKER_MAX_SIZE);
    free(b);
}
END_TEST

START_TEST(sizes_within_limits)
{
    size_t n = 32 * MiB + 12345, nchunks;
    uint8_t *b = random_bytes(n, SEED ^ 2);
    /* Low-entropy stretches, where a gear hash cuts rarely or never. */
    memset(b + MiB, 0, 3 * MiB);
    memset(b + 8 * MiB, 'a', MiB);
    for (size_t i = 12 * MiB; i < 14 * MiB; i++)
        b[i] = (uint8_t)(i % 7);
    struct chunk *c = chunk_all(b, n, &nchunks, NULL);
    uint64_t off = 0;
    for (size_t i = 0; i < nchunks; i++) {
        ck_assert_uint_eq(c[i].off, off);
        if (i + 1 < nchunks)
            ck_assert_uint_ge(c[i].len, CHUNKER_MIN_SIZE);
        ck_assert_uint_le(c[i].len, CHUNKER_MAX_SIZE);
        off += c[i].len;
    }
    ck_assert_uint_eq(off, n);
    free(c);

    /* Random data alone: the mean stays near the documented ~73 KiB. */
    c = chunk_all(b + 16 * MiB, 16 * MiB, &nchunks, NULL);
    double mean = 16.0 * MiB / (double)nchunks;
    ck_assert_msg(mean > 64 * 1024 && mean < 80 * 1024, "mean chunk %.0f", mean);
    free(c);
    free(b);
}
END_TEST

START_TEST(small_and_empty_inputs)
{
    uint8_t *b = random_bytes(CHUNKER_MIN_SIZE + 1, SEED ^ 3);
    size_t sizes[] = {1, 100, CHUNKER_MIN_SIZE - 1, CHUNKER_MIN_SIZE};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t nchunks;
        struct content_id fid, one;
        struct chunk *c = chunk_all(b, sizes[i], &nchunks, &fid);
        ck_assert_uint_eq(nchunks, 1);
        ck_assert_uint_eq(c[0].len, sizes[i]);
        content_id_of_chunk(b, sizes[i], &one);
        ck_assert(content_id_eq(&c[0].id, &one));
        content_id_of_file(&one, 1, &one);
        ck_assert(content_id_eq(&fid, &one));
        free(c);
    }

    size_t nchunks = 99;
    struct chunk *c = (struct chunk *)b;
    struct content_id fid;
    ck_assert_int_eq(chunker_hash_buffer(b, 0, &c, &nchunks, &fid), 0);
    ck_assert_uint_eq(nchunks, 0);
    ck_assert_ptr_null(c);
    /* XXH3-128 of nothing (`xxhsum -H2 /dev/null`). */
    ck_assert_str_eq(hex(&fid), "99aa06d3014798d86001c324468d497f");

    struct chunker ch;
    struct chunk_span span;
    chunker_init(&ch);
    ck_assert(!chunker_finish(&ch, &span));
    free(b);
}
END_TEST

/* Boundaries from feeding buffers of `step` bytes at a time. */
static size_t stream_spans(const uint8_t *b, size_t n, size_t step, struct chunk_span *out)
{
    struct chunker c;
    size_t count = 0, used;
    chunker_init(&c);
    for (size_t k = 0; k < n; k += step) {
        size_t len = n - k < step ? n - k : step, done = 0;
        while (done < len && chunker_next(&c, b + k + done, len - done, &used, &out[count])) {
            count++;
            done += used;
        }
    }
    if (chunker_finish(&c, &out[count]))
        count++;
    return count;
}

START_TEST(any_buffer_size_gives_the_same_boundaries)
{
    size_t n = 8 * MiB + 77, nchunks;
    uint8_t *b = random_bytes(n, SEED ^ 4);
    struct chunk *whole = chunk_all(b, n, &nchunks, NULL);
    struct chunk_span *spans = malloc((nchunks + 1) * sizeof(*spans));
    size_t steps[] = {1, 4097, MiB, CHUNKER_MIN_SIZE - 64, n};
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        size_t count = stream_spans(b, n, steps[s], spans);
        ck_assert_uint_eq(count, nchunks);
        for (size_t i = 0; i < count; i++) {
            ck_assert_uint_eq(spans[i].off, whole[i].off);
            ck_assert_uint_eq(spans[i].len, whole[i].len);
        }
    }
    free(spans);
    free(whole);
    free(b);
}
END_TEST

/* A file holding b[0..n), read back through chunker_hash_fd. */
static struct chunk *chunk_fd(const uint8_t *b, size_t n, size_t *nchunks, struct content_id *fid)
{
    int fd = memfd_create("test_chunker", MFD_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    for (size_t k = 0; k < n;) {
        ssize_t w = write(fd, b + k, n - k);
        ck_assert_int_gt(w, 0);
        k += (size_t)w;
    }
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    struct chunk *c = NULL;
    uint64_t size = 0;
    ck_assert_int_eq(chunker_hash_fd(fd, &c, nchunks, fid, &size), 0);
    ck_assert_uint_eq(size, n);
    close(fd);
    return c;
}

START_TEST(fd_matches_buffer)
{
    size_t lens[] = {0, 1, CHUNKER_MIN_SIZE + 3, MiB, 3 * MiB + 4097};
    uint8_t *b = random_bytes(3 * MiB + 4097, SEED ^ 5);
    for (size_t t = 0; t < sizeof(lens) / sizeof(lens[0]); t++) {
        size_t na, nb;
        struct content_id fa, fb;
        struct chunk *a = chunk_all(b, lens[t], &na, &fa);
        struct chunk *c = chunk_fd(b, lens[t], &nb, &fb);
        ck_assert_uint_eq(na, nb);
        ck_assert(content_id_eq(&fa, &fb));
        for (size_t i = 0; i < na; i++) {
            ck_assert_uint_eq(a[i].off, c[i].off);
            ck_assert_uint_eq(a[i].len, c[i].len);
            ck_assert(content_id_eq(&a[i].id, &c[i].id));
        }
        free(a);
        free(c);
    }
    /* Only the file id asked for. */
    int fd = memfd_create("test_chunker", MFD_CLOEXEC);
    ck_assert_int_eq(write(fd, "abc", 3), 3);
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    struct content_id fid, want;
    ck_assert_int_eq(chunker_hash_fd(fd, NULL, NULL, &fid, NULL), 0);
    content_id_of_chunk("abc", 3, &want);
    content_id_of_file(&want, 1, &want);
    ck_assert(content_id_eq(&fid, &want));
    close(fd);
    ck_assert_int_eq(chunker_hash_fd(-1, NULL, NULL, &fid, NULL), -EBADF);
    free(b);
}
END_TEST

/* chunker_hash_fd_split of b[0..n) in a memfd; also checks *size. */
static struct chunk *chunk_split(const uint8_t *b, size_t n, size_t *nchunks,
                                 struct content_id *fid)
{
    int fd = memfd_create("test_chunker_split", MFD_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    for (size_t k = 0; k < n;) {
        ssize_t w = write(fd, b + k, n - k);
        ck_assert_int_gt(w, 0);
        k += (size_t)w;
    }
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    struct chunk *c = NULL;
    uint64_t size = 0;
    ck_assert_int_eq(chunker_hash_fd_split(fd, &c, nchunks, fid, &size), 0);
    ck_assert_uint_eq(size, n);
    close(fd);
    return c;
}

/* Two threads give exactly the one-thread chunks: on random bytes (the
 * halves meet a chunk or two after the middle), on zeros whose periodic
 * cuts never meet the helper's (the middle is 4 KiB off their period: the
 * first thread goes on alone), and below the size where it splits. */
START_TEST(split_matches_sequential)
{
    size_t big = CHUNKER_SPLIT_MIN + 8 * MiB + 8192; /* middle: 4 KiB past 256 KiB steps */
    uint8_t *rnd = random_bytes(big, SEED ^ 9);
    uint8_t *zero = calloc(big, 1);
    ck_assert_ptr_nonnull(zero);
    const uint8_t *inputs[] = {rnd, zero, rnd};
    size_t lens[] = {big, big, CHUNKER_SPLIT_MIN - 1};
    for (size_t t = 0; t < 3; t++) {
        size_t na, nb;
        struct content_id fa, fb;
        struct chunk *a = chunk_all(inputs[t], lens[t], &na, &fa);
        struct chunk *c = chunk_split(inputs[t], lens[t], &nb, &fb);
        ck_assert_uint_eq(na, nb);
        ck_assert(content_id_eq(&fa, &fb));
        for (size_t i = 0; i < na; i++) {
            ck_assert_uint_eq(a[i].off, c[i].off);
            ck_assert_uint_eq(a[i].len, c[i].len);
            ck_assert(content_id_eq(&a[i].id, &c[i].id));
        }
        free(a);
        free(c);
    }
    free(zero);
    free(rnd);
}
END_TEST

static int id_order(const void *a, const void *b)
{
    return content_id_cmp(a, b);
}

/* How many ids of `after` are not among the ids of `before`. */
static size_t new_ids(const struct chunk *before, size_t nb, const struct chunk *after, size_t na)
{
    struct content_id *old = malloc((nb + 1) * sizeof(*old));
    for (size_t i = 0; i < nb; i++)
        old[i] = before[i].id;
    qsort(old, nb, sizeof(*old), id_order);
    size_t fresh = 0;
    for (size_t i = 0; i < na; i++)
        if (!bsearch(&after[i].id, old, nb, sizeof(*old), id_order))
            fresh++;
    free(old);
    return fresh;
}

START_TEST(insert_at_start_changes_at_most_two_chunks)
{
    size_t n = 100 * MiB, na, nb;
    uint8_t *b = random_bytes(n + 100, SEED ^ 6);
    /* b + 100 is the original file; b is it with 100 bytes inserted in front. */
    struct chunk *before = chunk_all(b + 100, n, &nb, NULL);
    struct chunk *after = chunk_all(b, n + 100, &na, NULL);
    size_t fresh = new_ids(before, nb, after, na);
    ck_assert_msg(fresh >= 1 && fresh <= 2, "%zu of %zu chunk ids changed", fresh, na);
    ck_assert_uint_le(na > nb ? na - nb : nb - na, 1);
    free(before);
    free(after);
    free(b);
}
END_TEST

START_TEST(append_changes_only_the_tail)
{
    size_t n = 20 * MiB, extra = 300 * 1024, na, nb;
    uint8_t *b = random_bytes(n + extra, SEED ^ 7);
    struct chunk *before = chunk_all(b, n, &nb, NULL);
    struct chunk *after = chunk_all(b, n + extra, &na, NULL);
    ck_assert_uint_ge(na, nb);
    /* Every chunk but the old last one is unchanged, in place. */
    for (size_t i = 0; i + 1 < nb; i++) {
        ck_assert_uint_eq(after[i].off, before[i].off);
        ck_assert(content_id_eq(&after[i].id, &before[i].id));
    }
    ck_assert_uint_le(new_ids(before, nb, after, na), na - (nb - 1));
    free(before);
    free(after);
    free(b);
}
END_TEST

START_TEST(content_id_hex_and_hasher)
{
    struct content_id id, back;
    content_id_of_chunk("abc", 3, &id);
    /* Same digits as `printf abc | xxhsum -H2` (canonical big-endian). */
    ck_assert_str_eq(hex(&id), "06b05ab6733a618578af5f94892f3950");
    ck_assert_int_eq(content_id_from_hex("06B05AB6733A618578af5f94892f3950", &back), 0);
    ck_assert(content_id_eq(&id, &back));
    ck_assert_int_eq(content_id_cmp(&id, &back), 0);

    const char *bad[] = {"", "06b05ab6733a618578af5f94892f395", "06b05ab6733a618578af5f94892f39500",
                         "06b05ab6733a618578af5f94892f395g", "x6b05ab6733a618578af5f94892f3950"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_int_eq(content_id_from_hex(bad[i], &back), -EINVAL);
    ck_assert(content_id_eq(&id, &back)); /* untouched on error */

    /* Pieces through a hasher give the one-shot id. */
    uint8_t *b = random_bytes(100000, SEED ^ 8);
    struct content_hasher h;
    struct content_id whole, pieces;
    content_id_of_chunk(b, 100000, &whole);
    content_hasher_init(&h);
    for (size_t k = 0; k < 100000; k += 333)
        content_hasher_update(&h, b + k, 100000 - k < 333 ? 100000 - k : 333);
    content_hasher_final(&h, &pieces);
    ck_assert(content_id_eq(&whole, &pieces));
    free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("chunker");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, gear_table_is_splitmix64_of_the_seed);
    tcase_add_test(tc, pinned_boundaries_and_ids);
    tcase_add_test(tc, optimized_loop_follows_the_documented_rule);
    tcase_add_test(tc, sizes_within_limits);
    tcase_add_test(tc, small_and_empty_inputs);
    tcase_add_test(tc, any_buffer_size_gives_the_same_boundaries);
    tcase_add_test(tc, fd_matches_buffer);
    tcase_add_test(tc, split_matches_sequential);
    tcase_add_test(tc, insert_at_start_changes_at_most_two_chunks);
    tcase_add_test(tc, append_changes_only_the_tail);
    tcase_add_test(tc, content_id_hex_and_hasher);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
