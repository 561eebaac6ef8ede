/*
 * path_cache.c — see path_cache.h.  The strings hang off the inodes; a
 * small array of striped locks guards them (an inode's path is read and
 * replaced by the FUSE workers writing it, freed with the inode when the
 * kernel forgets it, which no in-flight write can race with).
 */
#include "path_cache.h"
#include "wfs_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES 64

static pthread_mutex_t stripes[STRIPES] = {[0 ... STRIPES - 1] = PTHREAD_MUTEX_INITIALIZER};

static pthread_mutex_t *lock_of(struct wfs_inode *in)
{
    uintptr_t p = (uintptr_t)in;
    return &stripes[(p >> 6 ^ p >> 12) % STRIPES];
}

uint64_t path_cache_gen(struct wfs *fs)
{
    return atomic_load(&fs->path_gen);
}

void path_cache_bump(struct wfs *fs)
{
    atomic_fetch_add(&fs->path_gen, 1);
    atomic_fetch_add(&fs->dir_path_gen, 1);
}

uint64_t path_cache_dir_gen(struct wfs *fs)
{
    return atomic_load(&fs->dir_path_gen);
}

void path_cache_bump_files(struct wfs *fs)
{
    atomic_fetch_add(&fs->path_gen, 1);
}

bool path_cache_get(struct wfs_inode *in, uint64_t gen, char *buf, size_t size)
{
    pthread_mutex_t *l = lock_of(in);
    bool hit = false;
    pthread_mutex_lock(l);
    if (in->path && in->path_gen == gen) {
        size_t n = strlen(in->path);
        if (n < size) {
            memcpy(buf, in->path, n + 1);
            hit = true;
        }
    }
    pthread_mutex_unlock(l);
    return hit;
}

void path_cache_put(struct wfs_inode *in, uint64_t gen, const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    pthread_mutex_t *l = lock_of(in);
    pthread_mutex_lock(l);
    char *old = in->path;
    in->path = copy;
    in->path_gen = gen;
    pthread_mutex_unlock(l);
    free(old);
}
