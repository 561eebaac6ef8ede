/* rechunk.c — see rechunk.h. */
#include "rechunk.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_SIZE (1u << 20)

/* Index of the old chunk starting exactly at off, or nold. */
static size_t old_starting_at(const struct chunk *old, size_t nold, uint64_t off)
{
    size_t lo = 0, hi = nold;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (old[mid].off < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < nold && old[lo].off == off ? lo : nold;
}

int rechunk_fd(int fd, const struct chunk *old, size_t nold, uint64_t lo, uint64_t hi,
               struct chunk **out, size_t *nout, struct content_id *file_id,
               uint64_t *bytes_read)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    uint64_t size = (uint64_t)st.st_size;
    uint64_t old_size = nold ? old[nold - 1].off + old[nold - 1].len : 0;
    bool in_place = size == old_size;

    /* The chunk holding lo restarts; the last old chunk ended at EOF, not at
     * a content boundary, so a change at or past it restarts it too. */
    size_t k = 0;
    while (k < nold && old[k].off + old[k].len <= lo)
        k++;
    if (k == nold && nold > 0)
        k = nold - 1;
    uint64_t start = k < nold ? old[k].off : 0;

    struct chunk_vec l = {0};
    uint8_t *buf = malloc(READ_SIZE);
    int r = buf ? chunk_vec_append(&l, old, k) : -ENOMEM;
    struct chunker c;
    chunker_init(&c);
    c.start = start;
    struct content_hasher piece;
    bool partial = false, synced = false;
    uint64_t pos = start, read_total = 0;
    struct chunk_span span;
    while (!r && !synced && pos < size) {
        ssize_t got = pread(fd, buf, READ_SIZE, (off_t)pos);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            r = got < 0 ? -errno : 0;
            break;
        }
        read_total += (uint64_t)got;
        size_t k2 = 0, used;
        while (!r && !synced && k2 < (size_t)got) {
            bool cut = chunker_next(&c, buf + k2, (size_t)got - k2, &used, &span);
            struct chunk ch;
            if (!cut) {
                if (!partial)
                    content_hasher_init(&piece);
                content_hasher_update(&piece, buf + k2, used);
                partial = true;
            } else {
                if (partial) {
                    content_hasher_update(&piece, buf + k2, used);
                    content_hasher_final(&piece, &ch.id);
                    partial = false;
                } else {
                    content_id_of_chunk(buf + k2, used, &ch.id);
                }
                ch.off = span.off;
                ch.len = span.len;
                r = chunk_vec_append(&l, &ch, 1);
                uint64_t end = span.off + span.len;
                size_t j = in_place && end >= hi ? old_starting_at(old, nold, end) : nold;
                if (!r && j < nold) {
                    r = chunk_vec_append(&l, old + j, nold - j); /* the rest did not move */
                    synced = true;
                }
            }
            k2 += used;
        }
        pos += (uint64_t)got;
    }
    if (!r && !synced && chunker_finish(&c, &span)) {
        struct chunk ch = {.off = span.off, .len = span.len};
        content_hasher_final(&piece, &ch.id);
        r = chunk_vec_append(&l, &ch, 1);
    }
    free(buf);
    if (r) {
        free(l.v);
        return r;
    }
    struct content_id *ids = l.n ? malloc(l.n * sizeof(*ids)) : NULL;
    if (l.n && !ids) {
        free(l.v);
        return -ENOMEM;
    }
    for (size_t i = 0; i < l.n; i++)
        ids[i] = l.v[i].id;
    content_id_of_file(ids, l.n, file_id);
    free(ids);
    *out = l.v;
    *nout = l.n;
    if (bytes_read)
        *bytes_read = read_total;
    return 0;
}
