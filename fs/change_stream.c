/*
 * change_stream.c — dirty set coalesced by path, plus a ring of recent events.
 *
 * The dirty set is a chained hash table of heap entries keyed by path.  It is
 * emptied wholesale by take(), so entries never need individual removal.  The
 * ring keeps copies of paths in fixed-size slots so note() allocates nothing
 * for it.  One mutex guards both; the critical section is a hash lookup and
 * two small memcpy()s: the hash, and the allocation of an entry for a
 * likely new path, are done before taking it, and take() only swaps the
 * table under it.
 */
#include "change_stream.h"
#include "deadline.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#define INITIAL_BUCKETS 256 /* dirty-set hash buckets; doubled as it fills */
#define RING_PATH_MAX 512 /* longer paths are kept truncated in the log only */

struct dirty_node {
    struct change_entry e;
    struct dirty_node *next; /* hash chain */
    uint64_t hash;
};

struct ring_slot {
    struct change_event ev;
    char path[RING_PATH_MAX];
    char other[RING_PATH_MAX];
};

struct change_stream {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    uint64_t seq;
    bool rescan;
    bool woken;

    struct dirty_node **buckets;
    size_t nbuckets; /* power of two */
    size_t ndirty;

    struct ring_slot *ring;
    size_t ring_cap, ring_len, ring_head; /* head: next slot to write */
};

struct change_stream *change_stream_new(size_t ring_capacity)
{
    struct change_stream *cs = calloc(1, sizeof(*cs));
    if (!cs)
        return NULL;
    cs->nbuckets = INITIAL_BUCKETS;
    cs->buckets = calloc(cs->nbuckets, sizeof(*cs->buckets));
    cs->ring_cap = ring_capacity ? ring_capacity : 1;
    cs->ring = calloc(cs->ring_cap, sizeof(*cs->ring));
    if (!cs->buckets || !cs->ring) {
        free(cs->buckets);
        free(cs->ring);
        free(cs);
        return NULL;
    }
    pthread_mutex_init(&cs->lock, NULL);
    pthread_cond_init(&cs->nonempty, NULL);
    return cs;
}

static void free_chains(struct dirty_node **buckets, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct dirty_node *d = buckets[i];
        while (d) {
            struct dirty_node *next = d->next;
            free(d->e.path);
            free(d->e.renamed_from);
            free(d);
            d = next;
        }
        buckets[i] = NULL;
    }
}

void change_stream_free(struct change_stream *cs)
{
    if (!cs)
        return;
    free_chains(cs->buckets, cs->nbuckets);
    free(cs->buckets);
    free(cs->ring);
    pthread_mutex_destroy(&cs->lock);
    pthread_cond_destroy(&cs->nonempty);
    free(cs);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void copy_trunc(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n >= RING_PATH_MAX)
        n = RING_PATH_MAX - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void ring_append(struct change_stream *cs, uint32_t kind, const char *path,
                        const char *other, off_t off, off_t len)
{
    struct ring_slot *s = &cs->ring[cs->ring_head];
    copy_trunc(s->path, path);
    if (other)
        copy_trunc(s->other, other);
    s->ev = (struct change_event){
        .seq = cs->seq,
        .time_ns = now_ns(),
        .kind = kind,
        .off = off,
        .len = len,
        .path = s->path,
        .other = other ? s->other : NULL,
    };
    cs->ring_head = (cs->ring_head + 1) % cs->ring_cap;
    if (cs->ring_len < cs->ring_cap)
        cs->ring_len++;
}

/* Double the bucket array when the load factor passes 1; failure is harmless. */
static void maybe_grow(struct change_stream *cs)
{
    if (cs->ndirty < cs->nbuckets)
        return;
    size_t n = cs->nbuckets * 2;
    struct dirty_node **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < cs->nbuckets; i++) {
        struct dirty_node *d = cs->buckets[i];
        while (d) {
            struct dirty_node *next = d->next;
            d->next = b[d->hash & (n - 1)];
            b[d->hash & (n - 1)] = d;
            d = next;
        }
    }
    free(cs->buckets);
    cs->buckets = b;
    cs->nbuckets = n;
}

/* A new entry for path (hash h), not yet in the set; NULL on ENOMEM. */
static struct dirty_node *node_new(const char *path, uint64_t h)
{
    struct dirty_node *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->e.path = strdup(path);
    if (!d->e.path) {
        free(d);
        return NULL;
    }
    d->hash = h;
    return d;
}

static void node_free(struct dirty_node *d)
{
    if (d) {
        free(d->e.path);
        free(d);
    }
}

/* The entry for path, added if absent (from *spare when the caller made
 * one, which is then used up). */
static struct dirty_node *dirty_get(struct change_stream *cs, const char *path, uint64_t h,
                                    struct dirty_node **spare)
{
    struct dirty_node **slot = &cs->buckets[h & (cs->nbuckets - 1)];
    for (struct dirty_node *d = *slot; d; d = d->next)
        if (d->hash == h && strcmp(d->e.path, path) == 0)
            return d;

    struct dirty_node *d = *spare ? *spare : node_new(path, h);
    *spare = NULL;
    if (!d)
        return NULL;
    d->e.first_seq = cs->seq;
    d->next = *slot;
    *slot = d;
    cs->ndirty++;
    maybe_grow(cs);
    return d;
}

/* Events that name a path anew: nearly always one not in the set yet. */
#define NEW_PATH_KINDS                                                                        \
    (CHANGE_CREATE | CHANGE_MKDIR | CHANGE_SYMLINK | CHANGE_LINK | CHANGE_DELETE |            \
     CHANGE_RENAME_FROM | CHANGE_RENAME_TO)

void change_stream_note(struct change_stream *cs, uint32_t kind, const char *path,
                        const char *other, off_t off, off_t len)
{
    /* Hash, and for a likely new path allocate, before taking the lock:
     * every FUSE thread notes under it. */
    uint64_t h = XXH3_64bits(path, strlen(path));
    struct dirty_node *spare = kind & NEW_PATH_KINDS ? node_new(path, h) : NULL;
    pthread_mutex_lock(&cs->lock);
    cs->seq++;
    ring_append(cs, kind, path, other, off, len);

    struct dirty_node *d = dirty_get(cs, path, h, &spare);
    if (!d) {
        cs->rescan = true;
    } else {
        struct change_entry *e = &d->e;
        e->kinds |= kind;
        e->last_seq = cs->seq;
        e->nevents++;
        if ((kind & CHANGE_WRITE) && len > 0) {
            if (e->lo == e->hi) {
                e->lo = off;
                e->hi = off + len;
            } else {
                if (off < e->lo)
                    e->lo = off;
                if (off + len > e->hi)
                    e->hi = off + len;
            }
        }
        if ((kind & CHANGE_RENAME_TO) && other) {
            char *from = strdup(other);
            if (from) {
                free(e->renamed_from);
                e->renamed_from = from;
            } else {
                cs->rescan = true;
            }
        }
    }
    pthread_cond_broadcast(&cs->nonempty);
    pthread_mutex_unlock(&cs->lock);
    node_free(spare); /* the path was in the set already */
}

static int by_first_seq(const void *a, const void *b)
{
    const struct change_entry *x = a, *y = b;
    return (x->first_seq > y->first_seq) - (x->first_seq < y->first_seq);
}

bool change_stream_take(struct change_stream *cs, struct change_entry **out, size_t *count)
{
    /* The FUSE threads note under this lock, and the consumer runs at a
     * low priority (the indexer: nice 10), so it must never be preempted
     * holding it for long: swap in an empty table under the lock, then
     * walk and free the old one outside it. */
    struct dirty_node **fresh = calloc(INITIAL_BUCKETS, sizeof(*fresh));
    *out = NULL;
    *count = 0;
    if (!fresh)
        return false; /* keep the set; the consumer will try again */
    pthread_mutex_lock(&cs->lock);
    struct dirty_node **old = cs->buckets;
    size_t nold = cs->nbuckets, n = cs->ndirty;
    cs->buckets = fresh;
    cs->nbuckets = INITIAL_BUCKETS;
    cs->ndirty = 0;
    bool rescan = cs->rescan;
    cs->rescan = false;
    pthread_mutex_unlock(&cs->lock);

    struct change_entry *arr = n ? malloc(n * sizeof(*arr)) : NULL;
    if (n && !arr) {
        free_chains(old, nold);
        free(old);
        return true; /* the events are lost: only a full rescan is exact */
    }
    size_t i = 0;
    for (size_t b = 0; b < nold; b++) {
        for (struct dirty_node *d = old[b], *next; d; d = next) {
            next = d->next;
            assert(i < n);
            arr[i++] = d->e;
            free(d);
        }
    }
    assert(i == n);
    free(old);
    if (n > 1)
        qsort(arr, n, sizeof(*arr), by_first_seq);
    *out = arr;
    *count = n;
    return rescan;
}

void change_entries_free(struct change_entry *entries, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(entries[i].path);
        free(entries[i].renamed_from);
    }
    free(entries);
}

void change_stream_request_rescan(struct change_stream *cs)
{
    pthread_mutex_lock(&cs->lock);
    cs->rescan = true;
    pthread_cond_broadcast(&cs->nonempty);
    pthread_mutex_unlock(&cs->lock);
}

bool change_stream_wait(struct change_stream *cs, int timeout_ms)
{
    struct timespec deadline = deadline_in_ms(timeout_ms);
    pthread_mutex_lock(&cs->lock);
    while (cs->ndirty == 0 && !cs->rescan && !cs->woken) {
        if (pthread_cond_timedwait(&cs->nonempty, &cs->lock, &deadline) == ETIMEDOUT)
            break;
    }
    bool ready = cs->ndirty > 0 || cs->rescan;
    cs->woken = false;
    pthread_mutex_unlock(&cs->lock);
    return ready;
}

void change_stream_wake(struct change_stream *cs)
{
    pthread_mutex_lock(&cs->lock);
    cs->woken = true;
    pthread_cond_broadcast(&cs->nonempty);
    pthread_mutex_unlock(&cs->lock);
}

void change_stream_recent(struct change_stream *cs, size_t n,
                          void (*fn)(const struct change_event *ev, void *arg), void *arg)
{
    pthread_mutex_lock(&cs->lock);
    if (n > cs->ring_len)
        n = cs->ring_len;
    size_t start = (cs->ring_head + cs->ring_cap - n) % cs->ring_cap;
    for (size_t i = 0; i < n; i++)
        fn(&cs->ring[(start + i) % cs->ring_cap].ev, arg);
    pthread_mutex_unlock(&cs->lock);
}

void change_stream_peek(struct change_stream *cs,
                        void (*fn)(const struct change_entry *e, void *arg), void *arg)
{
    pthread_mutex_lock(&cs->lock);
    for (size_t i = 0; i < cs->nbuckets; i++)
        for (struct dirty_node *d = cs->buckets[i]; d; d = d->next)
            fn(&d->e, arg);
    pthread_mutex_unlock(&cs->lock);
}

uint64_t change_stream_seq(struct change_stream *cs)
{
    pthread_mutex_lock(&cs->lock);
    uint64_t s = cs->seq;
    pthread_mutex_unlock(&cs->lock);
    return s;
}

static const char *const kind_names[] = {
    "create", "mkdir",       "symlink",   "link",   "write", "truncate", "attr", "xattr",
    "delete", "rename-from", "rename-to", NULL,     NULL,    NULL,       "local", "outside",
};

const char *change_kind_name(uint32_t kind_bit)
{
    for (unsigned i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
        if (kind_bit == (1u << i) && kind_names[i])
            return kind_names[i];
    return "?";
}

void change_kinds_format(uint32_t kinds, char *buf, size_t size)
{
    size_t used = 0;
    if (size == 0)
        return;
    buf[0] = '\0';
    for (unsigned i = 0; i < 32; i++) {
        if (!(kinds & (1u << i)))
            continue;
        int n = snprintf(buf + used, size - used, "%s%s", used ? "+" : "",
                         change_kind_name(1u << i));
        if (n < 0 || (size_t)n >= size - used)
            return;
        used += (size_t)n;
    }
}
