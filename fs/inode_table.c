/*
 * inode_table.c — chained hash of wfs_inode keyed by (dev, ino).
 *
 * One mutex: lookups and forgets are short, and the FUSE ops that need an
 * inode already hold a kernel reference to it, so they read inode->fd
 * without the lock.
 */
#include "inode_table.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define ALIAS_BUCKETS 1024 /* only merged overlay dirs have an alias: few */

struct inode_table {
    pthread_mutex_t lock;
    struct wfs_inode **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    struct wfs_inode *aliases[ALIAS_BUCKETS]; /* merged dirs by their lower key */
    struct wfs_inode root;
};

static size_t hash_key(dev_t dev, ino_t ino)
{
    uint64_t x = (uint64_t)ino ^ ((uint64_t)dev << 32) ^ ((uint64_t)dev >> 32);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static void insert(struct inode_table *t, struct wfs_inode *in)
{
    size_t b = hash_key(in->dev, in->ino) & (t->nbuckets - 1);
    in->next = t->buckets[b];
    t->buckets[b] = in;
    t->count++;
}

struct inode_table *inode_table_new(int root_fd, const struct stat *st)
{
    struct inode_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->nbuckets = 4096;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    if (!t->buckets) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    t->root = (struct wfs_inode){
        .fd = root_fd, .dev = st->st_dev, .ino = st->st_ino, .type = S_IFDIR, .nlookup = 2,
        .lower_fd = -1, .shown_ino = st->st_ino};
    insert(t, &t->root);
    return t;
}

void inode_table_free(struct inode_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct wfs_inode *in = t->buckets[i];
        while (in) {
            struct wfs_inode *next = in->next;
            close(in->fd);
            if (in->lower_fd >= 0)
                close(in->lower_fd);
            free(in->path);
            if (in != &t->root)
                free(in);
            in = next;
        }
    }
    free(t->buckets);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

struct wfs_inode *inode_table_root(struct inode_table *t)
{
    return &t->root;
}

static void maybe_grow(struct inode_table *t)
{
    if (t->count < t->nbuckets)
        return;
    size_t n = t->nbuckets * 2;
    struct wfs_inode **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct wfs_inode *in = t->buckets[i];
        while (in) {
            struct wfs_inode *next = in->next;
            size_t b = hash_key(in->dev, in->ino) & (n - 1);
            in->next = nb[b];
            nb[b] = in;
            in = next;
        }
    }
    free(t->buckets);
    t->buckets = nb;
    t->nbuckets = n;
}

static struct wfs_inode *find_locked(struct inode_table *t, dev_t dev, ino_t ino)
{
    for (struct wfs_inode *in = t->buckets[hash_key(dev, ino) & (t->nbuckets - 1)]; in;
         in = in->next)
        if (in->ino == ino && in->dev == dev)
            return in;
    return NULL;
}

static void alias_add(struct inode_table *t, struct wfs_inode *in, dev_t dev, ino_t ino)
{
    if (in->aliased)
        return;
    size_t b = hash_key(dev, ino) & (ALIAS_BUCKETS - 1);
    in->alias_dev = dev;
    in->alias_ino = ino;
    in->alias_next = t->aliases[b];
    t->aliases[b] = in;
    in->aliased = true;
}

static void alias_remove(struct inode_table *t, struct wfs_inode *in)
{
    if (!in->aliased)
        return;
    struct wfs_inode **p = &t->aliases[hash_key(in->alias_dev, in->alias_ino) & (ALIAS_BUCKETS - 1)];
    while (*p != in)
        p = &(*p)->alias_next;
    *p = in->alias_next;
    in->aliased = false;
}

static void unlink_locked(struct inode_table *t, struct wfs_inode *in)
{
    struct wfs_inode **p = &t->buckets[hash_key(in->dev, in->ino) & (t->nbuckets - 1)];
    while (*p != in)
        p = &(*p)->next;
    *p = in->next;
    t->count--;
}

struct wfs_inode *inode_table_ref_layer(struct inode_table *t, int fd, const struct stat *st,
                                        unsigned layer, int lower_fd,
                                        const struct stat *lower_st, int *fd_used,
                                        int *lower_used)
{
    *fd_used = 0;
    *lower_used = 0;
    pthread_mutex_lock(&t->lock);
    struct wfs_inode *in = find_locked(t, st->st_dev, st->st_ino);
    if (in) {
        in->nlookup++;
        if (lower_fd >= 0 && in->lower_fd < 0 && S_ISDIR(st->st_mode) &&
            (in->layer & INODE_LOCAL)) {
            /* A lower dir appeared under an upper-only one (outside edit). */
            in->lower_fd = lower_fd;
            *lower_used = 1;
            alias_add(t, in, lower_st->st_dev, lower_st->st_ino);
        }
    } else {
        in = calloc(1, sizeof(*in));
        if (in) {
            in->fd = fd;
            in->lower_fd = -1;
            in->dev = st->st_dev;
            in->ino = st->st_ino;
            in->shown_ino = st->st_ino;
            in->type = st->st_mode & S_IFMT;
            in->layer = layer;
            in->nlookup = 1;
            insert(t, in);
            maybe_grow(t);
            *fd_used = 1;
            if (lower_fd >= 0) {
                in->lower_fd = lower_fd;
                *lower_used = 1;
                if (S_ISDIR(st->st_mode))
                    alias_add(t, in, lower_st->st_dev, lower_st->st_ino);
            }
        }
    }
    pthread_mutex_unlock(&t->lock);
    return in;
}

struct wfs_inode *inode_table_ref(struct inode_table *t, int fd, const struct stat *st,
                                  int *fd_used)
{
    int lower_used;
    return inode_table_ref_layer(t, fd, st, 0, -1, NULL, fd_used, &lower_used);
}

static void copied_up_locked(struct inode_table *t, struct wfs_inode *in, int new_fd,
                             const struct stat *st, unsigned layer)
{
    dev_t odev = in->dev;
    ino_t oino = in->ino;
    if (in != &t->root) {
        unlink_locked(t, in);
        in->dev = st->st_dev;
        in->ino = st->st_ino;
        insert(t, in);
    }
    int old = in->fd;
    __atomic_store_n(&in->fd, new_fd, __ATOMIC_RELEASE);
    if (in->lower_fd >= 0)
        close(in->lower_fd); /* nobody reads lower_fd of a not-yet-upper inode */
    in->lower_fd = old;
    if (S_ISDIR(st->st_mode))
        alias_add(t, in, odev, oino);
    inode_forget_privs(in); /* a new backing file */
    __atomic_or_fetch(&in->layer, layer, __ATOMIC_RELEASE);
}

void inode_table_copied_up(struct inode_table *t, struct wfs_inode *in, int new_fd,
                           const struct stat *st, unsigned layer)
{
    pthread_mutex_lock(&t->lock);
    copied_up_locked(t, in, new_fd, st, layer);
    pthread_mutex_unlock(&t->lock);
}

bool inode_table_adopt(struct inode_table *t, dev_t dev, ino_t ino, int new_fd,
                       const struct stat *st, unsigned layer)
{
    pthread_mutex_lock(&t->lock);
    struct wfs_inode *in = find_locked(t, dev, ino);
    int fd = in ? fcntl(new_fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (in && fd >= 0)
        copied_up_locked(t, in, fd, st, layer);
    pthread_mutex_unlock(&t->lock);
    return fd >= 0;
}

void inode_table_set_layer(struct inode_table *t, dev_t dev, ino_t ino, unsigned set,
                           unsigned clear)
{
    pthread_mutex_lock(&t->lock);
    struct wfs_inode *in = find_locked(t, dev, ino);
    if (in) {
        __atomic_or_fetch(&in->layer, set, __ATOMIC_RELEASE);
        __atomic_and_fetch(&in->layer, ~clear, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&t->lock);
}

void inode_table_forget_privs(struct inode_table *t, dev_t dev, ino_t ino)
{
    pthread_mutex_lock(&t->lock);
    struct wfs_inode *in = find_locked(t, dev, ino);
    if (in)
        inode_forget_privs(in);
    pthread_mutex_unlock(&t->lock);
}

void inode_table_unref(struct inode_table *t, struct wfs_inode *in, uint64_t n)
{
    if (!in || in == &t->root)
        return;
    pthread_mutex_lock(&t->lock);
    if (n > in->nlookup)
        n = in->nlookup; /* a confused kernel must not underflow us */
    in->nlookup -= n;
    if (in->nlookup == 0) {
        unlink_locked(t, in);
        alias_remove(t, in);
        pthread_mutex_unlock(&t->lock);
        close(in->fd);
        if (in->lower_fd >= 0)
            close(in->lower_fd);
        free(in->path);
        free(in);
        return;
    }
    pthread_mutex_unlock(&t->lock);
}

/* Under t->lock: the inode known by (dev, ino) as its key or as an alias
 * (a copied-up overlay file is still reported under its lower identity). */
static struct wfs_inode *find_any_locked(struct inode_table *t, dev_t dev, ino_t ino)
{
    struct wfs_inode *in = find_locked(t, dev, ino);
    if (!in)
        for (in = t->aliases[hash_key(dev, ino) & (ALIAS_BUCKETS - 1)]; in; in = in->alias_next)
            if (in->alias_ino == ino && in->alias_dev == dev)
                break;
    return in;
}

static uint64_t nodeid_of(struct inode_table *t, struct wfs_inode *in)
{
    return !in ? 0 : in == &t->root ? FUSE_ROOT_ID : (uint64_t)(uintptr_t)in;
}

struct wfs_inode *inode_table_hold(struct inode_table *t, dev_t dev, ino_t ino, uint64_t *id)
{
    pthread_mutex_lock(&t->lock);
    struct wfs_inode *in = find_any_locked(t, dev, ino);
    if (in && in != &t->root)
        in->nlookup++;
    *id = nodeid_of(t, in);
    pthread_mutex_unlock(&t->lock);
    return in;
}

uint64_t inode_table_nodeid(struct inode_table *t, dev_t dev, ino_t ino)
{
    pthread_mutex_lock(&t->lock);
    uint64_t id = nodeid_of(t, find_any_locked(t, dev, ino));
    pthread_mutex_unlock(&t->lock);
    return id;
}

size_t inode_table_size(struct inode_table *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->count;
    pthread_mutex_unlock(&t->lock);
    return n;
}
