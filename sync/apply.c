/*
 * apply.c — see apply.h.
 *
 * State for one session: the staged files of the current batch, and a map
 * from each wanted chunk id to the staged files (and offsets) waiting for
 * it.  Staged files are named by number in ROOT/.wsync/staging and are
 * reopened per write, so a batch of 100k files holds no fds.
 */
#include "apply.h"
#include "index.h"
#include "wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define STATE_DIR ".wsync"
#define STAGING_DIR ".wsync/staging"
#define STAGING_LOCK_TRIES 500 /* x 10 ms */

struct staged {
    char *path;
    uint32_t mode;
    int64_t mtime_ns;
    uint64_t size;
    struct content_id file_id;
    struct chunk *chunks;
    size_t nchunks;
    size_t missing;
    bool existed;
};

/* An operation on names that waits for the commit. */
struct deferred {
    char *path;
    char *existing; /* LINK: the name to link to; NULL: DELETE */
};

struct target {
    size_t staged; /* index into a->staged */
    uint64_t off;
    uint32_t len;
};

struct want_slot {
    bool used;
    struct content_id id;
    struct target *targets;
    size_t ntargets;
};

struct applier {
    int root_fd;
    int staging_fd;
    struct index *ix;
    bool dry_run;
    bool in_txn;
    struct staged *staged;
    size_t nstaged, cap_staged;
    struct want_slot *wants;
    size_t want_cap, nwants;
    struct apply_counts counts;
    unsigned char *chunk_buf; /* CHUNKER_MAX_SIZE bytes for local chunk reads */
    struct deferred *deferred; /* deletes and links, applied at commit: see apply_delete */
    size_t ndeferred, cap_deferred;
    char err[1024];
};

static int fail(struct applier *a, int e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct applier *a, int e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->err, sizeof(a->err), fmt, ap);
    va_end(ap);
    return e;
}

const char *apply_error(struct applier *a)
{
    return a->err;
}

/* Open path beneath the root: no "..", no symlinks, no magic links. */
static int open_beneath(int root, const char *path, int flags, mode_t mode)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .mode = mode,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    return (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
}

/* The parent directory of a checked path, opened beneath the root; *base
 * points at the last component. */
static int open_parent(struct applier *a, const char *path, const char **base)
{
    char err[300];
    int r = wire_path_check(path, err, sizeof(err));
    if (r)
        return fail(a, r, "%s", err);
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    if (!slash) {
        int fd = dup(a->root_fd);
        return fd >= 0 ? fd : fail(a, -errno, "dup: %s", strerror(errno));
    }
    char *dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return fail(a, -ENOMEM, "out of memory");
    int fd = open_beneath(a->root_fd, dir, O_RDONLY | O_DIRECTORY, 0); /* fsync-able */
    int e = errno;
    free(dir);
    if (fd < 0)
        return fail(a, -e, "cannot open the parent of '%s': %s%s", path, strerror(e),
                    e == ELOOP || e == EXDEV ? " (a symlink in the way)" : "");
    return fd;
}

/* Remove name in dirfd and everything below it, never following symlinks. */
static int remove_tree(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    int r = 0;
    struct dirent *de;
    while (!r && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            r = remove_tree(fd, de->d_name);
    closedir(d);
    if (!r && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        r = -errno;
    return r;
}

static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -errno;
            *p = '/';
        }
    return mkdir(buf, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

int apply_prepare_root(const char *root, char *err, size_t errsize)
{
    char dir[PATH_MAX];
    int r = mkdir_p(root);
    const char *subs[] = {STATE_DIR, STAGING_DIR};
    for (int i = 0; !r && i < 2; i++) {
        snprintf(dir, sizeof(dir), "%s/%s", root, subs[i]);
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            r = -errno;
    }
    if (r)
        snprintf(err, errsize, "cannot create %s: %s", r == -ENOENT ? root : dir, strerror(-r));
    return r;
}

int apply_open(const char *root, struct index *ix, bool dry_run, struct applier **out,
               char *err, size_t errsize)
{
    struct applier *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->ix = ix;
    a->dry_run = dry_run;
    a->root_fd = a->staging_fd = -1;
    a->chunk_buf = malloc(CHUNKER_MAX_SIZE);
    if (!a->chunk_buf) {
        free(a);
        return -ENOMEM;
    }
    int r = apply_prepare_root(root, err, errsize);
    if (r) {
        apply_close(a);
        return r;
    }
    a->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    r = a->root_fd < 0 ? -errno : 0;
    if (!r) {
        a->staging_fd = openat(a->root_fd, STAGING_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                                            O_CLOEXEC);
        r = a->staging_fd < 0 ? -errno : 0;
    }
    if (r) {
        snprintf(err, errsize, "cannot prepare %s/%s: %s", root, STAGING_DIR, strerror(-r));
        apply_close(a);
        return r;
    }
    if (dry_run) { /* it writes nothing: staging belongs to whoever writes */
        *out = a;
        return 0;
    }
    /* One writing session per ROOT: staged names are per session, so a
     * second writer (a push into a live mirror's replica) would clobber the
     * first's files.  A writer that just died may still be exiting: wait a
     * little for its lock before refusing. */
    for (int i = 0; flock(a->staging_fd, LOCK_EX | LOCK_NB) < 0; i++) {
        if (errno != EWOULDBLOCK || i == STAGING_LOCK_TRIES) {
            r = errno == EWOULDBLOCK ? -EBUSY : -errno;
            snprintf(err, errsize, "%s is being written by another wsync session (%s)", root,
                     strerror(-r));
            apply_close(a);
            return r;
        }
        usleep(10000);
    }
    /* Leftovers of a session that died: never renamed, so never visible. */
    DIR *d = fdopendir(dup(a->staging_fd));
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)))
            if (de->d_name[0] != '.')
                unlinkat(a->staging_fd, de->d_name, 0);
        closedir(d);
    }
    *out = a;
    return 0;
}

static void clear_batch(struct applier *a)
{
    for (size_t i = 0; i < a->nstaged; i++) {
        char name[32];
        snprintf(name, sizeof(name), "%zu.part", i);
        unlinkat(a->staging_fd, name, 0); /* no-op once renamed */
        free(a->staged[i].path);
        free(a->staged[i].chunks);
    }
    a->nstaged = 0;
    for (size_t i = 0; i < a->want_cap; i++)
        free(a->wants[i].targets);
    free(a->wants);
    a->wants = NULL;
    a->want_cap = a->nwants = 0;
}

static void free_deferred(struct applier *a)
{
    for (size_t i = 0; i < a->ndeferred; i++) {
        free(a->deferred[i].path);
        free(a->deferred[i].existing);
    }
    a->ndeferred = 0;
}

void apply_close(struct applier *a)
{
    if (!a)
        return;
    clear_batch(a);
    if (a->in_txn)
        index_rollback(a->ix);
    free(a->staged);
    free_deferred(a);
    free(a->deferred);
    free(a->chunk_buf);
    if (a->staging_fd >= 0)
        close(a->staging_fd);
    if (a->root_fd >= 0)
        close(a->root_fd);
    free(a);
}

void apply_get_counts(struct applier *a, struct apply_counts *c)
{
    *c = a->counts;
}

static int txn(struct applier *a)
{
    if (a->in_txn || a->dry_run)
        return 0;
    int r = index_begin(a->ix);
    if (r)
        return fail(a, r, "index: %s", index_error(a->ix));
    a->in_txn = true;
    return 0;
}

/* ---- the wanted-chunk map (open addressing on the id's first 8 bytes) ---- */

static struct want_slot *want_slot(struct applier *a, const struct content_id *id, bool add)
{
    if (add && (a->nwants + 1) * 2 > a->want_cap) {
        size_t cap = a->want_cap ? a->want_cap * 2 : 256;
        struct want_slot *w = calloc(cap, sizeof(*w));
        if (!w)
            return NULL;
        for (size_t i = 0; i < a->want_cap; i++) {
            if (!a->wants[i].used)
                continue;
            size_t j = XXH3_64bits(a->wants[i].id.b, CONTENT_ID_SIZE) & (cap - 1);
            while (w[j].used)
                j = (j + 1) & (cap - 1);
            w[j] = a->wants[i];
        }
        free(a->wants);
        a->wants = w;
        a->want_cap = cap;
    }
    if (!a->want_cap)
        return NULL;
    size_t j = XXH3_64bits(id->b, CONTENT_ID_SIZE) & (a->want_cap - 1);
    while (a->wants[j].used) {
        if (content_id_eq(&a->wants[j].id, id))
            return &a->wants[j];
        j = (j + 1) & (a->want_cap - 1);
    }
    if (!add)
        return NULL;
    a->wants[j].used = true;
    a->wants[j].id = *id;
    a->nwants++;
    return &a->wants[j];
}

static bool all_zero(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* Write a chunk into a staged file; zeros stay a hole (sparse stays sparse). */
static int stage_write(struct applier *a, size_t staged, uint64_t off, const void *data,
                       size_t len)
{
    if (a->dry_run || all_zero(data, len))
        return 0;
    char name[32];
    snprintf(name, sizeof(name), "%zu.part", staged);
    int fd = openat(a->staging_fd, name, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(a, -errno, "staging %s: %s", a->staged[staged].path, strerror(errno));
    ssize_t n = pwrite(fd, data, len, (off_t)off);
    int e = errno;
    close(fd);
    if (n != (ssize_t)len)
        return fail(a, n < 0 ? -e : -ENOSPC, "writing %s: %s", a->staged[staged].path,
                    n < 0 ? strerror(e) : "short write: No space left on device");
    a->counts.bytes_written += len;
    return 0;
}

/* Read a chunk ROOT already has (per the index) and check it still is that chunk. */
static bool read_local_chunk(struct applier *a, const struct chunk *c, void *buf)
{
    char *path = NULL;
    uint64_t off;
    uint32_t len;
    if (index_find_chunk(a->ix, &c->id, &path, &off, &len) != 0)
        return false;
    bool ok = false;
    int fd = len == c->len ? open_beneath(a->root_fd, path, O_RDONLY | O_NOFOLLOW, 0) : -1;
    if (fd >= 0) {
        struct content_id got;
        if (pread(fd, buf, len, (off_t)off) == (ssize_t)len) {
            content_id_of_chunk(buf, len, &got);
            ok = content_id_eq(&got, &c->id); /* the file may have changed since */
        }
        close(fd);
    }
    free(path);
    return ok;
}

static int add_staged(struct applier *a, const char *path, uint32_t mode, int64_t mtime_ns,
                      uint64_t size, const struct content_id *file_id, size_t *idx)
{
    char err[300];
    int r = wire_path_check(path, err, sizeof(err));
    if (r)
        return fail(a, r, "%s", err);
    if (a->nstaged == a->cap_staged) {
        size_t cap = a->cap_staged ? a->cap_staged * 2 : 64;
        struct staged *s = realloc(a->staged, cap * sizeof(*s));
        if (!s)
            return fail(a, -ENOMEM, "out of memory");
        a->staged = s;
        a->cap_staged = cap;
    }
    struct staged *s = &a->staged[a->nstaged];
    *s = (struct staged){.mode = mode & 0777, .mtime_ns = mtime_ns, .size = size,
                         .file_id = *file_id};
    s->path = strdup(path);
    if (!s->path)
        return fail(a, -ENOMEM, "out of memory");
    *idx = a->nstaged++;
    if (a->dry_run)
        return 0;
    char name[32];
    snprintf(name, sizeof(name), "%zu.part", *idx);
    int fd = openat(a->staging_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail(a, -errno, "staging %s: %s", path, strerror(errno));
    r = ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
    close(fd);
    return r ? fail(a, r, "staging %s: %s", path, strerror(-r)) : 0;
}

int apply_file(struct applier *a, const char *path, uint32_t mode, int64_t mtime_ns,
               uint64_t size, const struct content_id *file_id, const struct chunk *chunks,
               size_t nchunks, struct content_id **want, size_t *nwant)
{
    uint64_t end = 0;
    for (size_t i = 0; i < nchunks; i++) {
        if (chunks[i].off != end || chunks[i].len == 0 || chunks[i].len > CHUNKER_MAX_SIZE)
            return fail(a, -EPROTO, "chunk list of '%s' has a gap or a bad length", path);
        end += chunks[i].len;
    }
    if (end != size)
        return fail(a, -EPROTO, "chunks of '%s' add up to %llu bytes, not %llu", path,
                    (unsigned long long)end, (unsigned long long)size);
    size_t idx;
    int r = add_staged(a, path, mode, mtime_ns, size, file_id, &idx);
    if (r)
        return r;
    struct staged *s = &a->staged[idx];
    s->chunks = nchunks ? malloc(nchunks * sizeof(*chunks)) : NULL;
    if (nchunks && !s->chunks)
        return fail(a, -ENOMEM, "out of memory");
    if (nchunks)
        memcpy(s->chunks, chunks, nchunks * sizeof(*chunks));
    s->nchunks = nchunks;
    for (size_t i = 0; i < nchunks; i++) {
        const struct chunk *c = &chunks[i];
        if (read_local_chunk(a, c, a->chunk_buf)) {
            a->counts.chunks_local++;
            r = stage_write(a, idx, c->off, a->chunk_buf, c->len);
            if (r)
                return r;
            continue;
        }
        struct want_slot *w = want_slot(a, &c->id, true);
        if (!w)
            return fail(a, -ENOMEM, "out of memory");
        if (w->ntargets == 0) {
            struct content_id *grown = realloc(*want, (*nwant + 1) * sizeof(**want));
            if (!grown)
                return fail(a, -ENOMEM, "out of memory");
            *want = grown;
            (*want)[(*nwant)++] = c->id;
        }
        struct target *t = realloc(w->targets, (w->ntargets + 1) * sizeof(*t));
        if (!t)
            return fail(a, -ENOMEM, "out of memory");
        w->targets = t;
        w->targets[w->ntargets++] = (struct target){idx, c->off, c->len};
        a->staged[idx].missing++;
    }
    return 0;
}

int apply_file_inline(struct applier *a, const char *path, uint32_t mode, int64_t mtime_ns,
                      const void *data, size_t len)
{
    struct chunk c = {.off = 0, .len = (uint32_t)len};
    struct content_id file_id;
    content_id_of_chunk(data, len, &c.id);
    content_id_of_file(len ? &c.id : NULL, len ? 1 : 0, &file_id);
    size_t idx;
    int r = add_staged(a, path, mode, mtime_ns, len, &file_id, &idx);
    if (r)
        return r;
    if (len) {
        a->staged[idx].chunks = malloc(sizeof(c));
        if (!a->staged[idx].chunks)
            return fail(a, -ENOMEM, "out of memory");
        a->staged[idx].chunks[0] = c;
        a->staged[idx].nchunks = 1;
    }
    a->counts.chunks_received += len ? 1 : 0;
    return stage_write(a, idx, 0, data, len);
}

int apply_chunk(struct applier *a, const struct content_id *id, const void *data, size_t len)
{
    struct want_slot *w = want_slot(a, id, false);
    char hex[CONTENT_ID_HEX_LEN + 1];
    if (!w || w->ntargets == 0) {
        content_id_to_hex(id, hex);
        return fail(a, -EPROTO, "received chunk %s that was not asked for", hex);
    }
    a->counts.chunks_received++;
    for (size_t i = 0; i < w->ntargets; i++) {
        struct target *t = &w->targets[i];
        if (t->len != len) {
            content_id_to_hex(id, hex);
            return fail(a, -EPROTO, "chunk %s has %zu bytes, expected %u", hex, len, t->len);
        }
        int r = stage_write(a, t->staged, t->off, data, len);
        if (r)
            return r;
        a->staged[t->staged].missing--;
    }
    free(w->targets);
    w->targets = NULL;
    w->ntargets = 0;
    return 0;
}

static int64_t ns_of(struct timespec ts)
{
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Record what is now at path in ROOT's own index (and journal). */
static int index_note(struct applier *a, const char *path, int dirfd, const char *base,
                      const struct content_id *id, const struct chunk *chunks, size_t n,
                      const char *target, bool existed)
{
    if (a->dry_run)
        return 0;
    struct stat st;
    if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return fail(a, -errno, "stat %s: %s", path, strerror(errno));
    struct index_file f = {
        .path = (char *)path,
        .type = st.st_mode & S_IFMT,
        .mode = st.st_mode & 07777,
        .size = S_ISDIR(st.st_mode) ? 0 : st.st_size,
        .mtime_ns = ns_of(st.st_mtim),
        .ctime_ns = ns_of(st.st_ctim),
        .ino = st.st_ino,
        .target = (char *)target,
    };
    if (id)
        f.id = *id;
    int r = txn(a);
    if (!r)
        r = index_journal_add(a->ix, existed ? "modify" : "add", path, &f.seq);
    if (!r)
        r = index_put(a->ix, &f, chunks, n);
    return r ? fail(a, r, "index: %s", index_error(a->ix)) : 0;
}

/* atime untouched, mtime as sent; best effort (the content is what counts). */
static void mtime_times(int64_t mtime_ns, struct timespec tv[2])
{
    tv[0] = (struct timespec){.tv_nsec = UTIME_OMIT};
    tv[1] = (struct timespec){.tv_sec = mtime_ns / 1000000000, .tv_nsec = mtime_ns % 1000000000};
}

int apply_mkdir(struct applier *a, const char *path, uint32_t mode, int64_t mtime_ns)
{
    const char *base;
    int dirfd = open_parent(a, path, &base);
    if (dirfd < 0)
        return dirfd;
    int r = 0;
    struct stat st;
    bool exists = fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (exists && !S_ISDIR(st.st_mode) && !a->dry_run) {
        r = remove_tree(dirfd, base);
        exists = false;
    }
    if (!r && !a->dry_run) {
        if (!exists && mkdirat(dirfd, base, mode & 0777) < 0)
            r = fail(a, -errno, "mkdir %s: %s", path, strerror(errno));
        else if (fchmodat(dirfd, base, mode & 0777, 0) < 0)
            r = fail(a, -errno, "chmod %s: %s", path, strerror(errno));
        struct timespec tv[2];
        mtime_times(mtime_ns, tv);
        if (!r)
            utimensat(dirfd, base, tv, AT_SYMLINK_NOFOLLOW);
    }
    if (!r)
        r = index_note(a, path, dirfd, base, NULL, NULL, 0, NULL, exists);
    if (!r)
        a->counts.dirs++;
    close(dirfd);
    return r;
}

int apply_symlink(struct applier *a, const char *path, const char *target)
{
    const char *base;
    int dirfd = open_parent(a, path, &base);
    if (dirfd < 0)
        return dirfd;
    int r = 0;
    struct stat st;
    bool existed = fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (!a->dry_run) {
        /* Made aside and renamed over: the old entry or the new, never none. */
        char tmp[64];
        snprintf(tmp, sizeof(tmp), ".wsync-link-%d-%ld", (int)getpid(), (long)random());
        if (symlinkat(target, dirfd, tmp) < 0) {
            r = fail(a, -errno, "symlink %s: %s", path, strerror(errno));
        } else {
            if (existed && S_ISDIR(st.st_mode))
                r = remove_tree(dirfd, base);
            if (!r && renameat(dirfd, tmp, dirfd, base) < 0)
                r = fail(a, -errno, "rename into %s: %s", path, strerror(errno));
            if (r)
                unlinkat(dirfd, tmp, 0);
        }
    }
    if (!r)
        r = index_note(a, path, dirfd, base, NULL, NULL, 0, target, existed);
    if (!r)
        a->counts.symlinks++;
    close(dirfd);
    return r;
}

/* Queue a delete: it runs at commit, after the batch's files are in place,
 * so a cut stream leaves a moved file at its old name or its new one, never
 * at neither (docs/protocol.md, "Deletes and renames"). */
static int defer(struct applier *a, const char *path, const char *existing)
{
    char err[300];
    int r = wire_path_check(path, err, sizeof(err));
    if (!r && existing)
        r = wire_path_check(existing, err, sizeof(err));
    if (r)
        return fail(a, r, "%s", err);
    if (a->ndeferred == a->cap_deferred) {
        size_t cap = a->cap_deferred ? a->cap_deferred * 2 : 64;
        struct deferred *v = realloc(a->deferred, cap * sizeof(*v));
        if (!v)
            return fail(a, -ENOMEM, "out of memory");
        a->deferred = v;
        a->cap_deferred = cap;
    }
    struct deferred *d = &a->deferred[a->ndeferred];
    d->path = strdup(path);
    d->existing = existing ? strdup(existing) : NULL;
    if (!d->path || (existing && !d->existing)) {
        free(d->path);
        free(d->existing);
        return fail(a, -ENOMEM, "out of memory");
    }
    a->ndeferred++;
    return 0;
}

int apply_delete(struct applier *a, const char *path)
{
    return defer(a, path, NULL);
}

int apply_link(struct applier *a, const char *path, const char *existing)
{
    return defer(a, path, existing);
}


static int delete_now(struct applier *a, const char *path)
{
    const char *base;
    int dirfd = open_parent(a, path, &base);
    if (dirfd == -ENOENT || dirfd == -ENOTDIR) {
        a->err[0] = '\0';
        return 0; /* the parent is gone or a file now: so is path */
    }
    if (dirfd < 0)
        return dirfd;
    int r = a->dry_run ? 0 : remove_tree(dirfd, base);
    if (r)
        r = fail(a, r, "delete %s: %s", path, strerror(-r));
    if (!r && !a->dry_run) {
        r = txn(a);
        if (!r)
            r = index_journal_add(a->ix, "delete", path, NULL);
        if (!r)
            r = index_delete(a->ix, path);
        if (r)
            r = fail(a, r, "index: %s", index_error(a->ix));
    }
    if (!r)
        a->counts.deleted++;
    close(dirfd);
    return r;
}

/* Verify, fsync and rename one staged file into place. */
static int finish_one(struct applier *a, size_t i)
{
    struct staged *s = &a->staged[i];
    if (s->missing)
        return fail(a, -EPROTO, "'%s' is incomplete: %zu chunks never arrived", s->path,
                    s->missing);
    if (a->dry_run) {
        a->counts.files++;
        return 0;
    }
    char name[32];
    snprintf(name, sizeof(name), "%zu.part", i);
    int fd = openat(a->staging_fd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return fail(a, -errno, "staging %s: %s", s->path, strerror(errno));
    struct content_id got;
    int r = chunker_hash_fd(fd, NULL, NULL, &got, NULL);
    if (!r && !content_id_eq(&got, &s->file_id))
        r = fail(a, -EBADMSG, "'%s' does not match its file id after assembly", s->path);
    else if (r)
        r = fail(a, r, "hashing %s: %s", s->path, strerror(-r));
    if (!r && fchmod(fd, s->mode) < 0)
        r = fail(a, -errno, "chmod %s: %s", s->path, strerror(errno));
    struct timespec tv[2];
    mtime_times(s->mtime_ns, tv);
    if (!r)
        futimens(fd, tv);
    if (!r && fsync(fd) < 0)
        r = fail(a, -errno, "fsync %s: %s", s->path, strerror(errno));
    close(fd);
    if (r)
        return r;
    const char *base;
    int dirfd = open_parent(a, s->path, &base);
    if (dirfd < 0)
        return dirfd;
    struct stat st;
    bool existed = fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (existed && S_ISDIR(st.st_mode))
        r = remove_tree(dirfd, base);
    if (!r && renameat(a->staging_fd, name, dirfd, base) < 0)
        r = fail(a, -errno, "rename into %s: %s", s->path, strerror(errno));
    if (!r && fsync(dirfd) < 0)
        r = fail(a, -errno, "fsync the directory of %s: %s", s->path, strerror(errno));
    if (!r)
        r = index_note(a, s->path, dirfd, base, &s->file_id, s->chunks, s->nchunks, NULL,
                       existed);
    close(dirfd);
    if (!r)
        a->counts.files++;
    return r;
}

/* Make path another name of the regular file existing: linked aside and
 * renamed over, so path shows its old content or the link, never nothing. */
static int link_now(struct applier *a, const char *path, const char *existing)
{
    if (a->dry_run) {
        a->counts.files++;
        return 0;
    }
    const char *ebase, *base;
    int efd = open_parent(a, existing, &ebase);
    if (efd < 0)
        return efd;
    int dirfd = open_parent(a, path, &base);
    if (dirfd < 0) {
        close(efd);
        return dirfd;
    }
    struct stat st;
    int r = 0;
    if (fstatat(efd, ebase, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
        r = fail(a, -EPROTO, "LINK %s: '%s' is not a regular file here", path, existing);
    char tmp[64];
    snprintf(tmp, sizeof(tmp), ".wsync-link-%d-%ld", (int)getpid(), (long)random());
    bool existed = fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (!r && existed && S_ISDIR(st.st_mode))
        r = remove_tree(dirfd, base);
    if (!r && linkat(efd, ebase, dirfd, tmp, 0) < 0)
        r = fail(a, -errno, "link %s: %s", path, strerror(errno));
    if (!r && renameat(dirfd, tmp, dirfd, base) < 0) {
        r = fail(a, -errno, "rename into %s: %s", path, strerror(errno));
        unlinkat(dirfd, tmp, 0);
    }
    if (!r) {
        struct index_file f;
        struct chunk *chunks = NULL;
        size_t n = 0;
        if (index_get(a->ix, existing, &f) == 0) {
            index_get_chunks(a->ix, existing, &chunks, &n);
            r = index_note(a, path, dirfd, base, &f.id, chunks, n, NULL, existed);
            index_file_release(&f);
            free(chunks);
        }
    }
    if (!r)
        a->counts.files++;
    close(efd);
    close(dirfd);
    return r;
}

int apply_commit(struct applier *a)
{
    int r = 0;
    for (size_t i = 0; !r && i < a->nstaged; i++)
        r = finish_one(a, i);
    for (size_t i = 0; !r && i < a->ndeferred; i++)
        r = a->deferred[i].existing ? link_now(a, a->deferred[i].path, a->deferred[i].existing)
                                    : delete_now(a, a->deferred[i].path);
    free_deferred(a);
    clear_batch(a);
    if (!r && a->in_txn) {
        r = index_commit(a->ix);
        if (r)
            r = fail(a, r, "index: %s", index_error(a->ix));
        a->in_txn = false;
    }
    return r;
}
