/* scan_rows.c — see scan_rows.h. */
#include "scan_rows.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_SIZE (1 << 20)

/* Copy len bytes + NUL into the current block, or a new one. */
static char *store(struct scan_rows *s, const char *str, size_t len)
{
    if (s->nblocks == 0 || s->block_used + len + 1 > s->block_size) {
        size_t size = len + 1 > BLOCK_SIZE ? len + 1 : BLOCK_SIZE;
        char **blocks = realloc(s->blocks, (s->nblocks + 1) * sizeof(*blocks));
        if (!blocks)
            return NULL;
        s->blocks = blocks;
        if (!(blocks[s->nblocks] = malloc(size)))
            return NULL;
        s->nblocks++;
        s->block_used = 0;
        s->block_size = size;
    }
    char *p = s->blocks[s->nblocks - 1] + s->block_used;
    memcpy(p, str, len);
    p[len] = '\0';
    s->block_used += len + 1;
    return p;
}

int scan_rows_add(struct scan_rows *s, const struct index_file *f)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        struct scan_row *v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    struct scan_row *r = &s->v[s->n];
    r->f = *f;
    r->seen = false;
    r->f.path = store(s, f->path, strlen(f->path));
    r->f.target = f->target ? store(s, f->target, strlen(f->target)) : NULL;
    if (!r->f.path || (f->target && !r->f.target))
        return -ENOMEM;
    s->n++;
    return 0;
}

static int load_row(const struct index_file *f, void *arg)
{
    return scan_rows_add(arg, f);
}

static int row_order(const void *a, const void *b)
{
    return strcmp(((const struct scan_row *)a)->f.path, ((const struct scan_row *)b)->f.path);
}

int scan_rows_sort(struct scan_rows *s)
{
    bool sorted = true;
    for (size_t i = 1; i < s->n && sorted; i++)
        sorted = strcmp(s->v[i - 1].f.path, s->v[i].f.path) < 0;
    if (sorted)
        return 0;
    qsort(s->v, s->n, sizeof(*s->v), row_order);
    for (size_t i = 1; i < s->n; i++)
        if (strcmp(s->v[i - 1].f.path, s->v[i].f.path) == 0)
            return -EEXIST;
    return 0;
}

int scan_rows_load(struct scan_rows *s, struct index *ix, const char *prefix)
{
    /* The whole index: a table scan and one sort here beat sqlite's walk
     * of the path index (a row lookup per path).  A subtree: the range of
     * the path index, already in order (sort only checks that). */
    int r =
        *prefix ? index_foreach(ix, prefix, load_row, s) : index_foreach_unordered(ix, load_row, s);
    return r ? r : scan_rows_sort(s);
}

void scan_rows_free(struct scan_rows *s)
{
    for (size_t i = 0; i < s->nblocks; i++)
        free(s->blocks[i]);
    free(s->blocks);
    free(s->v);
    *s = (struct scan_rows){0};
}

/* strcmp(path, key + last), key being keylen bytes and last one byte
 * (0: none), without building the key. */
static int compare_key(const char *path, const char *key, size_t keylen, char last)
{
    int c = strncmp(path, key, keylen);
    if (c || !last)
        return c ? c : (path[keylen] != '\0');
    /* path starts with key: compare the next byte with `last`. */
    return (int)(unsigned char)path[keylen] - (int)(unsigned char)last;
}

/* First row in [lo, hi) whose path is >= key + last. */
static size_t lower_bound(const struct scan_rows *s, size_t lo, size_t hi, const char *key,
                          size_t keylen, char last)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (compare_key(s->v[mid].f.path, key, keylen, last) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct scan_row *scan_rows_find(struct scan_rows *s, const char *path)
{
    size_t len = strlen(path);
    size_t i = lower_bound(s, 0, s->n, path, len, 0);
    return i < s->n && strcmp(s->v[i].f.path, path) == 0 ? &s->v[i] : NULL;
}

void scan_rows_below(const struct scan_rows *s, const char *dir, size_t dirlen, size_t *lo,
                     size_t *hi)
{
    if (dirlen == 0) {
        *lo = 0;
        *hi = s->n;
        return;
    }
    *lo = lower_bound(s, 0, s->n, dir, dirlen, '/');
    *hi = lower_bound(s, *lo, s->n, dir, dirlen, '0');
}

size_t scan_rows_next_child(const struct scan_rows *s, size_t i, size_t hi, size_t prefixlen)
{
    while (i < hi) {
        const char *path = s->v[i].f.path;
        const char *slash = strchr(path + prefixlen, '/');
        if (!slash)
            return i;
        /* A row deeper down: skip that subdirectory's whole range (the
         * subdirectory's own row, if any, came before it). */
        i = lower_bound(s, i, hi, path, (size_t)(slash - path), '0');
    }
    return hi;
}
