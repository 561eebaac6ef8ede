/*
 * hold.c — see hold.h.  The hold is a small array: only files of 16 MiB
 * or more being written right now are in it, so linear merges are fine.
 */
#include "hold.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct held {
    struct change_entry e;
    int64_t since_ms; /* when it was first held */
};

struct hold {
    int src_fd;
    struct held *v;
    size_t n, cap;
};

struct hold *hold_new(int src_fd)
{
    struct hold *h = calloc(1, sizeof(*h));
    if (h)
        h->src_fd = src_fd;
    return h;
}

void hold_free(struct hold *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++) {
        free(h->v[i].e.path);
        free(h->v[i].e.renamed_from);
    }
    free(h->v);
    free(h);
}

size_t hold_count(const struct hold *h)
{
    return h->n;
}

uint64_t hold_min_seq(const struct hold *h)
{
    uint64_t min = 0;
    for (size_t i = 0; i < h->n; i++)
        if (!min || h->v[i].e.first_seq < min)
            min = h->v[i].e.first_seq;
    return min;
}

/* Fold the older entry `old` into `e` (same path); old's strings are freed. */
static void merge_into(struct change_entry *e, struct change_entry *old)
{
    e->kinds |= old->kinds;
    if (old->first_seq < e->first_seq)
        e->first_seq = old->first_seq;
    e->nevents += old->nevents;
    if (old->lo < old->hi) {
        if (e->lo == e->hi) {
            e->lo = old->lo;
            e->hi = old->hi;
        } else {
            e->lo = old->lo < e->lo ? old->lo : e->lo;
            e->hi = old->hi > e->hi ? old->hi : e->hi;
        }
    }
    if (!e->renamed_from) {
        e->renamed_from = old->renamed_from;
        old->renamed_from = NULL;
    }
    free(old->path);
    free(old->renamed_from);
}

static int64_t mtime_ms(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

/* Must e wait?  since_ms: when it was first held (now for a new one). */
static bool must_wait(struct hold *h, const struct change_entry *e, int64_t since_ms,
                      int64_t now_ms)
{
    const uint32_t data =
        CHANGE_WRITE | CHANGE_TRUNCATE | CHANGE_CREATE | CHANGE_ATTR | CHANGE_XATTR;
    if ((e->kinds & ~data) || !(e->kinds & CHANGE_WRITE) || e->renamed_from || !*e->path)
        return false;
    if (now_ms - since_ms >= HOLD_MAX_MS)
        return false;
    struct stat st;
    if (fstatat(h->src_fd, e->path, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
        return false;
    return st.st_size >= HOLD_MIN_BYTES && now_ms - mtime_ms(&st) < HOLD_RECENT_MS;
}

int hold_filter(struct hold *h, struct change_entry **e, size_t *n, int64_t now_ms,
                bool release_all)
{
    if (h->n == 0 && (release_all || *n == 0))
        return 0;
    /* 1. Every held entry joins the batch: merged into its path's entry,
     *    or appended (keeping when it was first held). */
    int64_t *since = calloc(*n + h->n, sizeof(*since));
    struct change_entry *all = realloc(*e, (*n + h->n) * sizeof(**e));
    if (all)
        *e = all;
    if (!since || !all) {
        free(since); /* the batch as it was, the hold as it was: nothing lost */
        return -ENOMEM;
    }
    *e = all;
    size_t total = *n;
    for (size_t i = 0; i < total; i++)
        since[i] = now_ms;
    for (size_t k = 0; k < h->n; k++) {
        size_t i = 0;
        while (i < total && strcmp(all[i].path, h->v[k].e.path) != 0)
            i++;
        if (i < total) {
            merge_into(&all[i], &h->v[k].e);
            since[i] = h->v[k].since_ms;
        } else {
            all[total] = h->v[k].e;
            since[total++] = h->v[k].since_ms;
        }
    }
    h->n = 0;
    /* 2. What must wait goes back into the hold, the rest stays in order. */
    size_t kept = 0;
    int r = 0;
    for (size_t i = 0; i < total; i++) {
        if (!release_all && !r && must_wait(h, &all[i], since[i], now_ms)) {
            if (h->n == h->cap) {
                size_t cap = h->cap ? 2 * h->cap : 8;
                struct held *v = realloc(h->v, cap * sizeof(*v));
                if (!v) {
                    r = -ENOMEM; /* keep it in the batch: hashed early, not lost */
                    all[kept++] = all[i];
                    continue;
                }
                h->v = v;
                h->cap = cap;
            }
            h->v[h->n++] = (struct held){.e = all[i], .since_ms = since[i]};
            continue;
        }
        all[kept++] = all[i];
    }
    *n = kept;
    free(since);
    return r;
}
