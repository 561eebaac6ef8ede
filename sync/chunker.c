/*
 * chunker.c — the gear-hash cut rule of chunker.h, and whole-input helpers
 * that also hash each chunk and the file.
 *
 * Invariant: chunker_next() applies the rule one byte at a time in effect;
 * the loops below only split that work into runs that need no per-byte
 * region test, so any split of the input gives the same boundaries.
 */
#include "chunker.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes hashed before the first check: one full 64-bit window. */
#define HASH_WINDOW 64
#define HASH_FROM   (CHUNKER_MIN_SIZE - HASH_WINDOW)
#define READ_BUFFER (1u << 20)

_Static_assert(CHUNKER_MIN_SIZE > HASH_WINDOW, "the window fits before the minimum");
_Static_assert(CHUNKER_MIN_SIZE < CHUNKER_AVG_SIZE && CHUNKER_AVG_SIZE < CHUNKER_MAX_SIZE,
               "sizes are ordered");

/* splitmix64 outputs 1..256 from CHUNKER_GEAR_SEED; test_chunker recomputes them. */
const uint64_t chunker_gear[256] = {
    0x6c44c9332d04e292ull, 0xff3a03628edf6359ull, 0x61e83a0aaa20b942ull, 0xe0dc6843b1fcaf2cull,
    0x4f5cececf9438fffull, 0x05054442ffd90e62ull, 0x697e31421c0f3e25ull, 0x47f8568e0414914bull,
    0x77f94b7a46b46180ull, 0x919dbdf1427a97edull, 0x568089a4929acd49ull, 0x0f026e27876d0c5aull,
    0x8a3569af8f80f0f7ull, 0x5c740ee5524de37cull, 0x2a138c710252445full, 0xbec9816c4dc96062ull,
    0xe33647c1414e1a61ull, 0xee6b13ac5aedf577ull, 0xfc94033ae772eb7bull, 0xc95989c43b0d0470ull,
    0x86b7456d377d9b76ull, 0x06dd529746d4d0d4ull, 0x82aac464388f1d45ull, 0xccac2552640976c3ull,
    0xdcdc66bd5cecfd53ull, 0x7010305bd186d0fcull, 0x5a7950cf585cebf2ull, 0x6caccd049548ec3eull,
    0xd71c7a5b3daa45b0ull, 0x607952f8caa6576aull, 0xfab8b9d4a8df86bbull, 0xcf241601e010d265ull,
    0xbcf15ef85e4b8433ull, 0x40b79818f4230867ull, 0xb77a81099e3c9515ull, 0xd77f2dcac2454017ull,
    0x75e26ce7f2d51696ull, 0x37a5066f09ee7252ull, 0x27ea46b62663c11aull, 0x56a55b34e7e09b8eull,
    0x8cc6e6c94d582daaull, 0xcf37926ea480e503ull, 0xb5888c8729a159e1ull, 0xb648f219ed54cfc2ull,
    0x3b6aa617e7bbd4c2ull, 0x8796b9dbd3d6def6ull, 0x5eb7d956ed2f2315ull, 0x38985f169a3b7433ull,
    0x809a3d77e0fe4806ull, 0x4205ac12915800b5ull, 0x76828be21633aa80ull, 0x3f5daef81d582075ull,
    0x7418e911bdf9bd45ull, 0x241c60ead2e215fdull, 0xd52fcbc001eb470eull, 0x3aa39a5befbf2b4bull,
    0x83ffcae31a5e7288ull, 0x81a08b196b83e7f9ull, 0xcaf2f4432ebe242cull, 0xbb9ffc2c9764135aull,
    0x6ccc490d55ac92a7ull, 0x539c1d007e5e84daull, 0xf680b024b0a78679ull, 0x15fb5724a3c901ecull,
    0xad4a72f5d17118deull, 0x55ce64e4d452dc55ull, 0xf6c11a187769c387ull, 0xdec31c380a71afa7ull,
    0x6cbc3f82b1ab3e54ull, 0x61d746e2f7542c36ull, 0x9e8dda511b031c33ull, 0xd5767be1f9d1a879ull,
    0x331eb55bccb98ac2ull, 0x2e10b66338cd61d2ull, 0x02ba5dcb6979750aull, 0xe2f11e9074f38df2ull,
    0xd59939ac8676604full, 0x9f9f9730d4bba323ull, 0x95d772d7ed944f0eull, 0xe0f2559b3aa89d2bull,
    0xbbf84b33a65bf5b3ull, 0x7de84b87151eadf5ull, 0x69a4d64cd752f0c6ull, 0xf5b9352b7afc00f9ull,
    0x9a9708a633b913a0ull, 0xe17d50287a08cbe5ull, 0x11e1df9b72d14249ull, 0x54055d0579fb3dd1ull,
    0xf7fbd2f81130e94eull, 0x0d88abf98b9232a6ull, 0x2eeec574eaebd72bull, 0x301e92982d861007ull,
    0x4d28c4588fccd0bdull, 0x3ecb35ac380016f7ull, 0x7cf4a62936913b67ull, 0xa7a481ee804efc3bull,
    0x7441821dace04f35ull, 0x51084ba8fd52ef15ull, 0xb2419ae87c61e47eull, 0xeeb85edb2676ded6ull,
    0xbb956d462392ac98ull, 0xfe894c5476f5fbd6ull, 0xb6ab8d23d7b17365ull, 0xaff9964f33f71fc9ull,
    0x7dc7ddf72d2a82ceull, 0xad0a14df98312bc6ull, 0x1d7c1bcf9172ed7eull, 0xf27634572bd29e5eull,
    0xb4a56889b21ac8f7ull, 0x1abcbc600e64c581ull, 0x45f0c205f18ed091ull, 0xd56f1dbfa8434865ull,
    0x1c740e080c0c59e4ull, 0xf9081e899e8ceaccull, 0x01c71ea15cc734bbull, 0x5d4ebb6533db0bafull,
    0x7718c1a8f28436d2ull, 0x049d4511ded7f0aaull, 0xe318bd58e30ee390ull, 0x00b0c188a1134559ull,
    0xddd03144c7cdfbdeull, 0x5f56e2314a00d6f7ull, 0x43578984db17d256ull, 0x82e06131c4909d31ull,
    0xcff9ce752db5cf2aull, 0x5759ec0a2d1fec7dull, 0xac707c7abf94e4beull, 0x4356819f65295159ull,
    0xc094323ec54bb973ull, 0x1e82e1a9192f7648ull, 0xa09aa74d9e6d740dull, 0x989c5c85bf5af511ull,
    0x60762a881676e995ull, 0x6821d73ebf739c93ull, 0xc7c053d2d1f6347full, 0x567857ece5cc8f87ull,
    0x182df5b417986ef7ull, 0xb7ccb400dc4b272eull, 0xd9d0d87af4d24c38ull, 0xba9d6822447c6d6aull,
    0xfc220b88be08a522ull, 0x804ff245cb362c8eull, 0x61fe45ce5f40df64ull, 0xf7871596487c7e00ull,
    0x59445ac496b6347eull, 0xce91d7b2c6c2be9eull, 0x04d4a2219686dbd8ull, 0xbc3e0afbc5aaec78ull,
    0x7fd571e90a68860eull, 0xcbb72d2e6b6eadbaull, 0x875da19cf0aed53aull, 0xc5fce69c1ad5ef3cull,
    0x741a7b58302ae5beull, 0xf2cc1a71cfb60b51ull, 0x616d31feb0c49d15ull, 0xe501ad094f00f577ull,
    0x5d65d49cd7d479acull, 0xde2e1a92e7b3b124ull, 0x26943764648b1034ull, 0x6db65483f4735e71ull,
    0x9143c7c07a6ad78eull, 0x8983992dc63dcec4ull, 0x1005ccd08e880df8ull, 0xf89b63bb59577626ull,
    0x888a47a2842b9be0ull, 0xa9cb7f019634b388ull, 0x03e5fc7e4a3a9522ull, 0x3ce19bdf5b014e9full,
    0x867b9a5b81da3179ull, 0xad440a8c216c7212ull, 0xf7da5a696d1e1e87ull, 0x0ec466628838f3a6ull,
    0x6022672df6f5ac63ull, 0xaed82125c8c17fc5ull, 0x9dc2e11246a03f10ull, 0xc6a404aec2392a7aull,
    0x62e511f76ef10077ull, 0xcf4ddee609fdd61cull, 0xb82f6da371d7f623ull, 0x8b75e7749f956555ull,
    0x379eac96a18ed9faull, 0x40dcd490b50fd8f7ull, 0x59f8cc36c03ca295ull, 0x6eceb1a667d219aaull,
    0x29982b4ee5745cfdull, 0xd3f9af6b302e2f4aull, 0x6120fe1e80f881bdull, 0xd08cf6d162e97e24ull,
    0x135e09d120bf1b30ull, 0x722571ab8402eef8ull, 0x14642c5f80549b19ull, 0x32230cdfd3dc8a3full,
    0x4067367822124c6full, 0x552bcc317b7f599cull, 0xc07686e214478ca8ull, 0xd513b7a25bdb7a51ull,
    0x6298918dc3b2bf6eull, 0xcd9eec240253ab7eull, 0xc466d363883a2df2ull, 0xd0c41812fc0e2662ull,
    0xa617f0199231a01aull, 0xf34aed8921ef555bull, 0x300f78fa066cc15bull, 0x0453c8dc3d468b31ull,
    0x526f22bc98dd7002ull, 0x565076bdc36d221full, 0x5be91a6b46e8e9b9ull, 0xff17aa01e910deeaull,
    0xe99c8bf9bd1a0db3ull, 0x9c6a5da9b6483260ull, 0x6e668b8d64272f65ull, 0x8bb75f32fe76cc45ull,
    0xddbfd1ccfce3f24eull, 0x8a7a99aa74795cb0ull, 0xdd6648c0586f9931ull, 0xf60bfec1f4a42ec0ull,
    0x9c5f8d5d190297d2ull, 0x32a57e26f281ca3bull, 0xa81adf863aa3e88full, 0x7bc531d846135a0aull,
    0x67759d151606f8d0ull, 0x6bbffaaacec3d5dcull, 0xcf091553bc4b0a8dull, 0x5595532cd3a2f810ull,
    0x247f062a66f4842aull, 0x61de61d2372c738bull, 0xce31d90523104e63ull, 0xd4b60db173399a5bull,
    0x2512d59e3c384334ull, 0x0c908743c17d0eacull, 0x79ba6b3d89cc3e17ull, 0x0e9e2e13ad57ef1bull,
    0x691b00d6dbdb2a30ull, 0x778e9df929df4b1eull, 0x733a3f76714f8620ull, 0x83fb990bd9f8311bull,
    0xbe49e0e3a91bb515ull, 0x6c4e1ef759e21161ull, 0x62fe5b36b8e3660aull, 0x41a5a019a32f6687ull,
    0x11319fcb9a210e59ull, 0x436d40f49fb9586full, 0xba60c110e2188446ull, 0x30793a17feedee18ull,
    0xa97534a55254c615ull, 0x964dee7d38f8ca53ull, 0xc33d10c6d7af2e8aull, 0xfc63f903880706a7ull,
    0x6b323912ce04a067ull, 0x6a6ae263f7a20b65ull, 0x7464fa53c8b9c0edull, 0x1395ecce4c6d5f22ull,
    0x6928283531c9df55ull, 0x8c4dd6af6d5f62cbull, 0xb365cd865d8df8eeull, 0x22d327ffe7f61d0full,
};

/* Hash n bytes into *hp without looking for a cut (the warm-up window). */
static void gear_roll(uint64_t *hp, const uint8_t *p, size_t n)
{
    uint64_t h = *hp;
    for (size_t i = 0; i < n; i++)
        h = (h << 1) + chunker_gear[p[i]];
    *hp = h;
}

/* Hash up to n bytes into *hp; the number of bytes up to and including the
 * first one after which (h & mask) == 0, or 0 if there is none. */
static size_t gear_scan(uint64_t *hp, const uint8_t *p, size_t n, uint64_t mask)
{
    uint64_t h = *hp;
    for (size_t i = 0; i < n; i++) {
        h = (h << 1) + chunker_gear[p[i]];
        if (!(h & mask)) {
            *hp = h;
            return i + 1;
        }
    }
    *hp = h;
    return 0;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

void chunker_init(struct chunker *c)
{
    c->hash = 0;
    c->start = 0;
    c->len = 0;
}

static void end_chunk(struct chunker *c, struct chunk_span *span)
{
    span->off = c->start;
    span->len = c->len;
    c->start += c->len;
    c->len = 0;
    c->hash = 0;
}

bool chunker_next(struct chunker *c, const void *buf, size_t len, size_t *used,
                  struct chunk_span *span)
{
    const uint8_t *p = buf;
    size_t k = 0;

    while (k < len) {
        size_t avail = len - k, step, cut;
        uint32_t have = c->len;

        if (have < HASH_FROM) { /* skipped: no chunk ends before MIN */
            step = min_size(avail, HASH_FROM - have);
        } else if (have < CHUNKER_MIN_SIZE - 1) { /* warm-up: hash, no check */
            step = min_size(avail, CHUNKER_MIN_SIZE - 1 - have);
            gear_roll(&c->hash, p + k, step);
        } else {
            /* Lengths after this run: up to AVG - 1 with mask S, else up to MAX with L. */
            bool small = have < CHUNKER_AVG_SIZE - 1;
            uint32_t limit = small ? CHUNKER_AVG_SIZE - 1 : CHUNKER_MAX_SIZE;
            step = min_size(avail, limit - have);
            cut = gear_scan(&c->hash, p + k, step, small ? CHUNKER_MASK_S : CHUNKER_MASK_L);
            if (cut || c->len + step == CHUNKER_MAX_SIZE) {
                if (cut)
                    step = cut;
                c->len += (uint32_t)step;
                *used = k + step;
                end_chunk(c, span);
                return true;
            }
        }
        c->len += (uint32_t)step;
        k += step;
    }
    *used = len;
    return false;
}

bool chunker_finish(struct chunker *c, struct chunk_span *span)
{
    bool pending = c->len > 0;
    if (pending)
        end_chunk(c, span);
    chunker_init(c);
    return pending;
}

size_t chunker_first_len(const void *buf, size_t len)
{
    struct chunker c;
    struct chunk_span span;
    size_t used;
    chunker_init(&c);
    return chunker_next(&c, buf, len, &used, &span) ? span.len : len;
}

int chunk_vec_append(struct chunk_vec *a, const struct chunk *c, size_t n)
{
    if (n == 0)
        return 0; /* and no memcpy from a NULL array */
    if (a->n + n > a->cap) {
        size_t cap = a->cap ? a->cap : 16;
        while (cap < a->n + n)
            cap *= 2;
        struct chunk *v = realloc(a->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        a->v = v;
        a->cap = cap;
    }
    memcpy(a->v + a->n, c, n * sizeof(*c));
    a->n += n;
    return 0;
}

/* The chunks of one input and its file id; with `want` false only the
 * file id is kept (chunks.v stays NULL). */
struct chunk_list {
    struct chunk_vec chunks;
    bool want;
    struct content_hasher file;
};

static int chunk_list_add(struct chunk_list *l, const struct chunk_span *span,
                          const struct content_id *id)
{
    content_hasher_update(&l->file, id->b, CONTENT_ID_SIZE);
    if (!l->want)
        return 0;
    struct chunk c = {.off = span->off, .len = span->len, .id = *id};
    return chunk_vec_append(&l->chunks, &c, 1);
}

static void chunk_list_init(struct chunk_list *l, bool want)
{
    *l = (struct chunk_list){.want = want};
    content_hasher_init(&l->file);
}

static void chunk_list_done(struct chunk_list *l, struct chunk **chunks, size_t *nchunks,
                            struct content_id *file_id)
{
    if (file_id)
        content_hasher_final(&l->file, file_id);
    if (chunks) {
        *chunks = l->chunks.v;
        *nchunks = l->chunks.n;
    }
}

int chunker_hash_buffer(const void *buf, size_t len, struct chunk **chunks, size_t *nchunks,
                        struct content_id *file_id)
{
    const uint8_t *p = buf;
    struct chunk_list l;
    struct chunker c;
    struct chunk_span span;
    struct content_id id;
    size_t k = 0, used;

    chunk_list_init(&l, chunks != NULL);
    chunker_init(&c);
    while (k < len) {
        if (!chunker_next(&c, p + k, len - k, &used, &span))
            chunker_finish(&c, &span);
        assert(span.off == k && span.len == used);
        content_id_of_chunk(p + k, span.len, &id);
        if (chunk_list_add(&l, &span, &id) < 0) {
            free(l.chunks.v);
            return -ENOMEM;
        }
        k += span.len;
    }
    chunk_list_done(&l, chunks, nchunks, file_id);
    return 0;
}

static ssize_t read_some(int fd, void *buf, size_t len)
{
    ssize_t r;
    do
        r = read(fd, buf, len);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

int chunker_hash_fd(int fd, struct chunk **chunks, size_t *nchunks, struct content_id *file_id,
                    uint64_t *size)
{
    /* Small regular files get a buffer just big enough to see their EOF. */
    struct stat st;
    size_t bufsize = READ_BUFFER;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < READ_BUFFER)
        bufsize = (size_t)st.st_size < 4096 ? 4096 : (size_t)st.st_size + 1;
    uint8_t *buf = malloc(bufsize);
    if (!buf)
        return -ENOMEM;

    struct chunk_list l;
    struct chunker c;
    struct chunk_span span;
    struct content_hasher piece; /* the chunk that spans reads, if `partial` */
    struct content_id id;
    bool partial = false;
    uint64_t total = 0;
    ssize_t got;
    int r = 0;

    chunk_list_init(&l, chunks != NULL);
    chunker_init(&c);
    while ((got = read_some(fd, buf, bufsize)) > 0) {
        size_t k = 0, used;
        total += (uint64_t)got;
        while (k < (size_t)got) {
            bool cut = chunker_next(&c, buf + k, (size_t)got - k, &used, &span);
            if (!cut) {
                if (!partial)
                    content_hasher_init(&piece);
                content_hasher_update(&piece, buf + k, used);
                partial = true;
            } else if (partial) {
                content_hasher_update(&piece, buf + k, used);
                content_hasher_final(&piece, &id);
                partial = false;
            } else {
                content_id_of_chunk(buf + k, used, &id); /* the whole chunk is here */
            }
            if (cut && (r = chunk_list_add(&l, &span, &id)) < 0)
                goto out;
            k += used;
        }
    }
    if (got < 0) {
        r = (int)got;
        goto out;
    }
    if (chunker_finish(&c, &span)) {
        assert(partial);
        content_hasher_final(&piece, &id);
        if ((r = chunk_list_add(&l, &span, &id)) < 0)
            goto out;
    }
    chunk_list_done(&l, chunks, nchunks, file_id);
    if (size)
        *size = total;
out:
    if (r < 0)
        free(l.chunks.v);
    free(buf);
    return r;
}
