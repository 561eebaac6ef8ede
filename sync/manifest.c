/*
 * manifest.c — see manifest.h.
 *
 * Rows come from the index in strcmp order and are sorted into tree order.
 * Digests are made in one pass: a stack holds a hasher for each directory
 * the current entry is below (and one for the whole tree); each entry is
 * added to every hasher on the stack, so the cost is entries × depth small
 * updates.  A directory's hasher is finished, and its range closed, when
 * the first entry outside it arrives.
 */
#include "manifest.h"
#include "index.h"
#include "scan_rows.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct manifest {
    struct msg_entry *e; /* paths and targets are owned here */
    uint64_t *ino;
    size_t *end;
    size_t n, cap;
    struct content_id digest;
    uint32_t mode_mask;
};

size_t manifest_count(const struct manifest *m)
{
    return m->n;
}

const struct msg_entry *manifest_entry(const struct manifest *m, size_t i)
{
    assert(i < m->n);
    return &m->e[i];
}

uint64_t manifest_ino(const struct manifest *m, size_t i)
{
    assert(i < m->n);
    return m->ino[i];
}

size_t manifest_end(const struct manifest *m, size_t i)
{
    assert(i < m->n);
    return m->end[i];
}

const struct content_id *manifest_digest(const struct manifest *m)
{
    return &m->digest;
}

void manifest_free(struct manifest *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free((char *)m->e[i].path);
        free((char *)m->e[i].target);
    }
    free(m->e);
    free(m->ino);
    free(m->end);
    free(m);
}

static int add_row(const struct index_file *f, void *arg)
{
    struct manifest *m = arg;
    if (f->type != S_IFREG && f->type != S_IFDIR && f->type != S_IFLNK)
        return 0;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        struct msg_entry *e = realloc(m->e, cap * sizeof(*e));
        if (!e)
            return -ENOMEM;
        m->e = e;
        uint64_t *ino = realloc(m->ino, cap * sizeof(*ino));
        if (!ino)
            return -ENOMEM;
        m->ino = ino;
        m->cap = cap;
    }
    struct msg_entry *e = &m->e[m->n];
    *e = (struct msg_entry){
        .path = strdup(f->path),
        .type = f->type,
        .mode = f->mode & m->mode_mask,
        .mtime_ns = f->mtime_ns,
        .size = f->type == S_IFREG ? (uint64_t)f->size : 0,
        .id = f->type == S_IFREG ? f->id : (struct content_id){{0}},
        .target = f->type == S_IFLNK && f->target ? strdup(f->target) : NULL,
    };
    m->ino[m->n] = f->ino;
    if (!e->path || (f->type == S_IFLNK && !e->target)) {
        free((char *)e->path);
        free((char *)e->target);
        return -ENOMEM;
    }
    m->n++;
    return 0;
}

/* Sort entries (with their inodes) into tree order. */
struct sort_item {
    struct msg_entry e;
    uint64_t ino;
};

static int cmp_items(const void *a, const void *b)
{
    return msg_path_cmp(((const struct sort_item *)a)->e.path,
                        ((const struct sort_item *)b)->e.path);
}

static int sort_tree_order(struct manifest *m)
{
    struct sort_item *v = malloc((m->n ? m->n : 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < m->n; i++)
        v[i] = (struct sort_item){m->e[i], m->ino[i]};
    qsort(v, m->n, sizeof(*v), cmp_items);
    for (size_t i = 0; i < m->n; i++) {
        m->e[i] = v[i].e;
        m->ino[i] = v[i].ino;
    }
    free(v);
    return 0;
}

/* Is path below the directory dir (dir non-empty)? */
static bool below(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* The digests, in one pass (see the file comment).  stack[0] is the whole
 * tree; stack[k > 0] is the directory at entry pos[k]. */
static int make_digests(struct manifest *m)
{
    size_t cap = 16, depth = 1;
    struct content_hasher *stack = aligned_alloc(64, cap * sizeof(*stack));
    size_t *pos = malloc(cap * sizeof(*pos));
    m->end = malloc((m->n ? m->n : 1) * sizeof(*m->end));
    if (!stack || !pos || !m->end) {
        free(stack);
        free(pos);
        return -ENOMEM;
    }
    content_hasher_init(&stack[0]);
    for (size_t i = 0; i <= m->n; i++) {
        /* Close every directory entry i is not below. */
        while (depth > 1 && (i == m->n || !below(m->e[i].path, m->e[pos[depth - 1]].path))) {
            depth--;
            content_hasher_final(&stack[depth], &m->e[pos[depth]].id);
            m->end[pos[depth]] = i;
        }
        if (i == m->n)
            break;
        for (size_t k = 0; k < depth; k++)
            msg_manifest_digest_add(&stack[k], &m->e[i]);
        m->end[i] = i + 1;
        if (m->e[i].type != S_IFDIR)
            continue;
        if (depth == cap) {
            struct content_hasher *s = aligned_alloc(64, 2 * cap * sizeof(*s));
            size_t *p = realloc(pos, 2 * cap * sizeof(*p));
            if (!s || !p) {
                free(s);
                free(p ? p : pos);
                free(stack);
                return -ENOMEM;
            }
            memcpy(s, stack, cap * sizeof(*s));
            free(stack);
            stack = s;
            pos = p;
            cap *= 2;
        }
        content_hasher_init(&stack[depth]);
        pos[depth++] = i;
    }
    content_hasher_final(&stack[0], &m->digest);
    free(stack);
    free(pos);
    return 0;
}

/* rows: NULL to read the index ix. */
static int build(struct index *ix, const struct scan_rows *rows, uint32_t mode_mask,
                 struct manifest **out)
{
    struct manifest *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->mode_mask = mode_mask;
    int r = 0;
    if (rows)
        for (size_t i = 0; !r && i < rows->n; i++)
            r = add_row(&rows->v[i].f, m);
    else
        r = index_foreach(ix, "", add_row, m);
    if (!r)
        r = sort_tree_order(m);
    if (!r)
        r = make_digests(m);
    if (r) {
        manifest_free(m);
        return r;
    }
    *out = m;
    return 0;
}

int manifest_build(struct index *ix, uint32_t mode_mask, struct manifest **out)
{
    return build(ix, NULL, mode_mask, out);
}

int manifest_from_rows(const struct scan_rows *rows, uint32_t mode_mask, struct manifest **out)
{
    return build(NULL, rows, mode_mask, out);
}

bool manifest_subtree(const struct manifest *m, const char *dir, size_t *lo, size_t *hi)
{
    if (!dir[0]) {
        *lo = 0;
        *hi = m->n;
        return true;
    }
    size_t a = 0, b = m->n;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        int c = msg_path_cmp(m->e[mid].path, dir);
        if (c == 0) {
            if (m->e[mid].type != S_IFDIR)
                return false;
            *lo = mid + 1;
            *hi = m->end[mid];
            return true;
        }
        if (c < 0)
            a = mid + 1;
        else
            b = mid;
    }
    return false;
}
