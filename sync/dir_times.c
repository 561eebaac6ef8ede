/*
 * dir_times.c — see dir_times.h.  An open-addressing table keyed by path
 * (XXH3-64), grown at half full.  A batch of 20k files touches a few
 * hundred directories, each looked up once per entry changed in it.
 */
#include "dir_times.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct slot {
    char *path; /* NULL: empty */
    int64_t mtime_ns;
};

struct dir_times {
    struct slot *v;
    size_t cap, n; /* cap: 0 or a power of two */
};

struct dir_times *dir_times_new(void)
{
    return calloc(1, sizeof(struct dir_times));
}

void dir_times_clear(struct dir_times *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->v[i].path);
    free(t->v);
    t->v = NULL;
    t->cap = t->n = 0;
}

void dir_times_free(struct dir_times *t)
{
    if (!t)
        return;
    dir_times_clear(t);
    free(t);
}

static size_t find(const struct slot *v, size_t cap, const char *path)
{
    size_t i = XXH3_64bits(path, strlen(path)) & (cap - 1);
    while (v[i].path && strcmp(v[i].path, path) != 0)
        i = (i + 1) & (cap - 1);
    return i;
}

/* The slot for path, made (empty of times) if new; NULL on ENOMEM. */
static struct slot *get(struct dir_times *t, const char *path, bool *fresh)
{
    if ((t->n + 1) * 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        struct slot *v = calloc(cap, sizeof(*v));
        if (!v)
            return NULL;
        for (size_t i = 0; i < t->cap; i++)
            if (t->v[i].path)
                v[find(v, cap, t->v[i].path)] = t->v[i];
        free(t->v);
        t->v = v;
        t->cap = cap;
    }
    struct slot *s = &t->v[find(t->v, t->cap, path)];
    *fresh = s->path == NULL;
    if (*fresh) {
        s->path = strdup(path);
        if (!s->path)
            return NULL;
        t->n++;
    }
    return s;
}

int dir_times_before(struct dir_times *t, const char *path, int64_t mtime_ns)
{
    if (!path[0])
        return 0;
    bool fresh;
    struct slot *s = get(t, path, &fresh);
    if (!s)
        return -ENOMEM;
    if (fresh)
        s->mtime_ns = mtime_ns;
    return 0;
}

int dir_times_sent(struct dir_times *t, const char *path, int64_t mtime_ns)
{
    assert(path[0]);
    bool fresh;
    struct slot *s = get(t, path, &fresh);
    if (!s)
        return -ENOMEM;
    s->mtime_ns = mtime_ns;
    return 0;
}

int dir_times_foreach(struct dir_times *t, int (*fn)(const char *path, int64_t mtime_ns, void *arg),
                      void *arg)
{
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->v[i].path)
            continue;
        int r = fn(t->v[i].path, t->v[i].mtime_ns, arg);
        if (r)
            return r;
    }
    return 0;
}
