/*
 * tree_hash.c — the tree root of tree_hash.h, from a builder's entries or
 * from a walk of a directory on disk.
 *
 * Both ways feed the same record writer (put_record) one directory at a
 * time, children in strcmp order, so the two give the same root for the
 * same tree.  Invariant: a directory's id is final only after all of its
 * descendants have been written into it.
 */
#include "tree_hash.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunker.h"
#include "strbuf.h"

#define STATE_DIR_NAME ".wsync"

/* ---- records ---- */

static void put_u32(struct content_hasher *h, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    content_hasher_update(h, b, sizeof(b));
}

static void put_bytes(struct content_hasher *h, const char *s, size_t len)
{
    put_u32(h, (uint32_t)len);
    content_hasher_update(h, s, len);
}

/* One child record; `id` for 'f' and 'd', `target` for 'l'. */
static void put_record(struct content_hasher *h, char type, uint32_t mode, const char *name,
                       size_t namelen, const struct content_id *id, const char *target)
{
    uint8_t t = (uint8_t)type;
    content_hasher_update(h, &t, 1);
    put_u32(h, type == 'l' ? 0 : mode & 0777);
    put_bytes(h, name, namelen);
    if (type == 'l')
        put_bytes(h, target, strlen(target));
    else
        content_hasher_update(h, id->b, CONTENT_ID_SIZE);
}

/* A hasher on the heap: XXH3 state wants 64-byte alignment, which
 * realloc()ed arrays do not give. */
static struct content_hasher *hasher_new(void)
{
    struct content_hasher *h = aligned_alloc(64, sizeof(*h));
    if (h)
        content_hasher_init(h);
    return h;
}

static void set_errpath(struct strbuf *errpath, const char *path, size_t len)
{
    if (!errpath)
        return;
    strbuf_reset(errpath);
    strbuf_add(errpath, path, len);
}

/* ---- builder ---- */

struct tree_entry {
    char *path;
    char type; /* 'f', 'd' or 'l' */
    uint32_t mode;
    struct content_id id;
    char *target;
};

struct tree_builder {
    struct tree_entry *v;
    size_t n, cap;
};

struct tree_builder *tree_builder_new(void)
{
    return calloc(1, sizeof(struct tree_builder));
}

void tree_builder_free(struct tree_builder *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        free(b->v[i].path);
        free(b->v[i].target);
    }
    free(b->v);
    free(b);
}

static bool path_valid(const char *path)
{
    const char *p = path;
    if (!*p)
        return false;
    for (;;) {
        const char *end = strchrnul(p, '/');
        size_t len = (size_t)(end - p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!*end)
            return true;
        p = end + 1;
    }
}

static int builder_add(struct tree_builder *b, const char *path, char type, uint32_t mode,
                       const struct content_id *id, const char *target)
{
    if (!path_valid(path))
        return -EINVAL;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        struct tree_entry *v = realloc(b->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        b->v = v;
        b->cap = cap;
    }
    struct tree_entry e = {.type = type, .mode = type == 'l' ? 0 : mode & 0777};
    e.path = strdup(path);
    e.target = target ? strdup(target) : NULL;
    if (!e.path || (target && !e.target)) {
        free(e.path);
        free(e.target);
        return -ENOMEM;
    }
    if (id)
        e.id = *id;
    b->v[b->n++] = e;
    return 0;
}

int tree_builder_add_file(struct tree_builder *b, const char *path, uint32_t mode,
                          const struct content_id *file_id)
{
    return builder_add(b, path, 'f', mode, file_id, NULL);
}

int tree_builder_add_dir(struct tree_builder *b, const char *path, uint32_t mode)
{
    return builder_add(b, path, 'd', mode, NULL, NULL);
}

int tree_builder_add_symlink(struct tree_builder *b, const char *path, const char *target)
{
    return builder_add(b, path, 'l', 0, NULL, target);
}

/* Depth-first order: a directory, then everything below it, then its next
 * sibling; siblings in strcmp order.  '/' sorts below every other byte and
 * the end of a path below '/'. */
static int path_order(const void *pa, const void *pb)
{
    const unsigned char *a = (const unsigned char *)((const struct tree_entry *)pa)->path;
    const unsigned char *b = (const unsigned char *)((const struct tree_entry *)pb)->path;
    while (*a && *a == *b)
        a++, b++;
    int ka = *a == '/' ? 1 : *a == 0 ? 0 : *a + 1;
    int kb = *b == '/' ? 1 : *b == 0 ? 0 : *b + 1;
    return ka - kb;
}

/* An open directory of the builder's walk: its entry (NULL for the root),
 * the length of its path and the hasher taking its children's records. */
struct open_dir {
    const struct tree_entry *dir;
    size_t pathlen;
    struct content_hasher *h;
};

static const char *base_name(const struct tree_entry *e, size_t parentlen)
{
    return e->path + (parentlen ? parentlen + 1 : 0);
}

/* Close the innermost open directory: its id goes into its parent's record. */
static void close_dir(struct open_dir *stack, size_t *depth)
{
    struct open_dir *top = &stack[*depth - 1], *parent = &stack[*depth - 2];
    struct content_id id;
    content_hasher_final(top->h, &id);
    const char *name = base_name(top->dir, parent->pathlen);
    put_record(parent->h, 'd', top->dir->mode, name, strlen(name), &id, NULL);
    (*depth)--;
}

int tree_builder_finish(struct tree_builder *b, struct content_id *root, struct strbuf *errpath)
{
    if (b->n) /* qsort() wants a non-NULL array even for none */
        qsort(b->v, b->n, sizeof(*b->v), path_order);

    /* stack[i].h are kept for reuse; `allocated` of them exist. */
    size_t depth = 0, allocated = 0, cap = 16;
    struct open_dir *stack = calloc(cap, sizeof(*stack));
    int r = -ENOMEM;
    if (!stack || !(stack[0].h = hasher_new()))
        goto out;
    allocated = depth = 1;

    for (size_t i = 0; i < b->n; i++) {
        const struct tree_entry *e = &b->v[i];
        const char *slash = strrchr(e->path, '/');
        size_t parentlen = slash ? (size_t)(slash - e->path) : 0;

        if (i > 0 && strcmp(b->v[i - 1].path, e->path) == 0) {
            set_errpath(errpath, e->path, strlen(e->path));
            r = -EEXIST;
            goto out;
        }
        /* Close directories this entry is not below. */
        while (depth > 1) {
            const struct open_dir *top = &stack[depth - 1];
            if (parentlen >= top->pathlen && e->path[top->pathlen] == '/' &&
                memcmp(e->path, top->dir->path, top->pathlen) == 0)
                break;
            close_dir(stack, &depth);
        }
        if (parentlen != stack[depth - 1].pathlen) {
            set_errpath(errpath, e->path, parentlen); /* the missing parent */
            r = -ENOENT;
            goto out;
        }
        if (e->type != 'd') {
            put_record(stack[depth - 1].h, e->type, e->mode, base_name(e, parentlen),
                       strlen(base_name(e, parentlen)), &e->id, e->target);
            continue;
        }
        if (depth == cap) {
            struct open_dir *s = realloc(stack, 2 * cap * sizeof(*s));
            if (!s)
                goto out;
            memset(s + cap, 0, cap * sizeof(*s));
            stack = s;
            cap *= 2;
        }
        if (depth == allocated) {
            if (!(stack[depth].h = hasher_new()))
                goto out;
            allocated++;
        } else {
            content_hasher_init(stack[depth].h);
        }
        stack[depth].dir = e;
        stack[depth].pathlen = strlen(e->path);
        depth++;
    }
    while (depth > 1)
        close_dir(stack, &depth);
    content_hasher_final(stack[0].h, root);
    r = 0;
out:
    for (size_t i = 0; stack && i < allocated; i++)
        free(stack[i].h);
    free(stack);
    return r;
}

/* ---- walk of a directory on disk ---- */

struct walk {
    tree_skip_fn skip;
    void *arg;
    struct strbuf path; /* relative path of the entry being looked at */
    struct strbuf *errpath;
};

static int name_order(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dirfd other than "." and "..", sorted; *names and its strings
 * in one allocation each: *names (free()) and *arena (free()). */
static int read_names(int dirfd, char ***names, size_t *n, char **arena)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int r = -errno;
        close(fd);
        return r;
    }
    struct strbuf all = STRBUF_INIT;
    size_t count = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        strbuf_add(&all, de->d_name, strlen(de->d_name) + 1);
        count++;
    }
    int r = errno ? -errno : 0;
    closedir(d);
    char **v = r ? NULL : malloc((count ? count : 1) * sizeof(*v));
    if (!v) {
        strbuf_release(&all);
        return r ? r : -ENOMEM;
    }
    char *p = strbuf_detach(&all);
    for (size_t i = 0, off = 0; i < count; i++) {
        v[i] = p + off;
        off += strlen(v[i]) + 1;
    }
    qsort(v, count, sizeof(*v), name_order);
    *names = v;
    *n = count;
    *arena = p;
    return 0;
}

static int walk_fail(struct walk *w, int r)
{
    set_errpath(w->errpath, w->path.buf, w->path.len);
    return r;
}

static void path_truncate(struct strbuf *sb, size_t len)
{
    sb->len = len;
    if (sb->cap)
        sb->buf[len] = '\0';
}

static int hash_file(int dirfd, const char *name, struct stat *st, struct content_id *id)
{
    /* O_NONBLOCK: if a fifo took the file's place, do not hang on it. */
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return errno == ELOOP ? -EAGAIN : -errno; /* a symlink took its place */
    int r = fstat(fd, st) < 0 ? -errno : 0;
    if (!r && !S_ISREG(st->st_mode))
        r = -EAGAIN;
    if (!r)
        r = chunker_hash_fd(fd, NULL, NULL, id, NULL);
    close(fd);
    return r;
}

/* The id of the directory dirfd (relative path w->path) into *id. */
static int walk_dir(struct walk *w, int dirfd, struct content_id *id)
{
    char **names = NULL, *arena = NULL;
    size_t n = 0, base = w->path.len;
    struct content_hasher *h = hasher_new();
    int r = h ? read_names(dirfd, &names, &n, &arena) : -ENOMEM;
    if (r < 0) {
        r = walk_fail(w, r);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = names[i];
        if (base == 0 && strcmp(name, STATE_DIR_NAME) == 0)
            continue;
        path_truncate(&w->path, base);
        if (base)
            strbuf_add(&w->path, "/", 1);
        strbuf_adds(&w->path, name);

        struct stat st;
        struct content_id child;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue; /* gone since readdir */
            r = walk_fail(w, -errno);
            goto out;
        }
        if (w->skip && w->skip(w->path.buf, S_ISDIR(st.st_mode), w->arg))
            continue;
        if (S_ISREG(st.st_mode)) {
            r = hash_file(dirfd, name, &st, &child);
            if (r == -ENOENT)
                continue;
            if (r < 0) {
                r = walk_fail(w, r);
                goto out;
            }
            put_record(h, 'f', st.st_mode, name, strlen(name), &child, NULL);
        } else if (S_ISLNK(st.st_mode)) {
            /* st_size is the target's length; one more byte shows truncation. */
            size_t size = (size_t)st.st_size + 1;
            char *target = malloc(size);
            ssize_t len = target ? readlinkat(dirfd, name, target, size) : -1;
            if (len < 0 || (size_t)len == size) {
                r = !target ? -ENOMEM : len < 0 ? -errno : -EAGAIN;
                free(target);
                if (r == -ENOENT)
                    continue;
                r = walk_fail(w, r);
                goto out;
            }
            target[len] = '\0';
            put_record(h, 'l', 0, name, strlen(name), NULL, target);
            free(target);
        } else if (S_ISDIR(st.st_mode)) {
            int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0) {
                if (errno == ENOENT)
                    continue;
                r = walk_fail(w, errno == ENOTDIR || errno == ELOOP ? -EAGAIN : -errno);
                goto out;
            }
            r = walk_dir(w, fd, &child);
            close(fd);
            if (r < 0)
                goto out;
            put_record(h, 'd', st.st_mode, name, strlen(name), &child, NULL);
        }
        /* fifos, sockets and devices are not part of the tree */
    }
    content_hasher_final(h, id);
    r = 0;
out:
    path_truncate(&w->path, base);
    free(names);
    free(arena);
    free(h);
    return r;
}

int tree_hash_dir(int dirfd, tree_skip_fn skip, void *arg, struct content_id *root,
                  struct strbuf *errpath)
{
    struct walk w = {.skip = skip, .arg = arg, .path = STRBUF_INIT, .errpath = errpath};
    int r = walk_dir(&w, dirfd, root);
    strbuf_release(&w.path);
    return r;
}
