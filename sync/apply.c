/*
 * apply.c — see apply.h.
 *
 * State for one session: the staged files of the current batch, and a map
 * from each wanted chunk id to the staged files (and offsets) waiting for
 * it.  Staged files are named by number in ROOT/.wsync/staging and made
 * on their first write (chunks arrive file after file, so few files are
 * half written at a time).  A staged file keeps that fd until it is
 * complete and sealed (verified, mode and mtime set), which happens as
 * soon as its last chunk is written; at most STAGED_FDS are held, beyond
 * that files are reopened per write.  A small file costs one open.
 */
#include "apply.h"
#include "dir_times.h"
#include "index.h"
#include "patch_log.h"
#include "wire.h"

#include <assert.h>
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
#define STAGED_FDS 256 /* staged files held open at once, at most */
#define STAGING_DIR ".wsync/staging"
#define STAGING_LOCK_TRIES 500 /* x 10 ms */
/* An update is patched in place (under a redo log, patch_log.h) instead of
 * staged whole when the chunks that differ from the file's present ones
 * total at most an eighth of it and at most this much: a small edit to a
 * big file then costs its changed chunks, not a copy of the file. */
#define INPLACE_MAX_BYTES (8u << 20)

struct staged {
    char *path;
    uint32_t mode;
    int64_t mtime_ns;
    uint64_t size;
    struct content_id file_id;
    struct chunk *chunks;
    size_t nchunks;
    size_t missing;
    int fd;       /* open while being filled, within STAGED_FDS; else -1 */
    bool created; /* its staging file exists */
    bool sealed;  /* complete, verified, mode and mtime set */
    bool renamed; /* in place: nothing left in staging */
    /* Patched in place (see try_inplace): no staging file; the changed
     * chunks are gathered in patch_buf, which patch.ext points into. */
    bool inplace;
    bool logged;  /* its redo log is written (named by log_seq) */
    bool touched; /* patch_apply has begun on the file: the log must stay
                   * until the file is durable */
    uint64_t log_seq;
    int64_t seen_mtime_ns, seen_ctime_ns; /* the file's stat when it was chosen */
    struct patch patch; /* patch.path is path: not owned */
    unsigned char *patch_buf;
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
    int patch_fd; /* ROOT/.wsync/patch: redo logs of in-place patches */
    uint64_t log_seq;
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
    struct dir_times *dir_times; /* mtimes to leave on directories this batch changed */
    size_t open_fds;             /* staged files holding an fd */
    /* ROOT's index had no row when this batch began (an initial copy):
     * nothing to reuse, patch or touch in place, so apply_file skips the
     * index lookups (two per file, one per chunk) that would all miss.
     * Known only within a batch: others may write the index between. */
    bool empty_known, index_empty;
    char *place_dir;             /* the parent directory place_one has open, */
    int place_fd;                /* kept for the next file in it (tree order) */
    char err[1024];
};

static int fail(struct applier *a, int e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int seal_one(struct applier *a, size_t i);
static int set_meta_in_place(struct applier *a, const char *path, uint32_t mode, int64_t mtime_ns,
                             uint64_t size, const struct content_id *file_id,
                             const struct chunk *chunks, size_t nchunks);
static int64_t ns_of(struct timespec ts);

/* The file id a chunk list makes (content_id.h). */
static void id_of_chunks(const struct chunk *chunks, size_t n, struct content_id *out)
{
    struct content_hasher h;
    content_hasher_init(&h);
    for (size_t i = 0; i < n; i++)
        content_hasher_update(&h, chunks[i].id.b, CONTENT_ID_SIZE);
    content_hasher_final(&h, out);
}

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

/* ---- redo logs of in-place patches (patch_log.h) ---- */

static void log_name(uint64_t seq, char name[32])
{
    snprintf(name, 32, "%llu.log", (unsigned long long)seq);
}

static void unlink_log(struct applier *a, uint64_t seq)
{
    char name[32];
    log_name(seq, name);
    unlinkat(a->patch_fd, name, 0);
}

/* A log is known complete when ROOT's index already records its file id
 * for its path: the index is committed only after the patched file was
 * synced and its log removed, so such a log is one whose removal was not
 * yet durable, and replaying it could undo a later edit. */
static bool patch_recorded(const struct patch *p, void *arg)
{
    struct index_file row;
    if (!arg || index_get(arg, p->path, &row) != 0)
        return false;
    bool done = row.type == S_IFREG && content_id_eq(&row.id, &p->file_id);
    index_file_release(&row);
    return done;
}

static int replay_patches(int root_fd, int patch_fd, struct index *ix, char *err, size_t errsize)
{
    return patch_log_replay(root_fd, patch_fd, patch_recorded, ix, NULL, err, errsize);
}

int apply_recover(const char *root, struct index *ix, char *err, size_t errsize)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/%s", root, PATCH_LOG_DIR);
    int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int patch_fd = root_fd < 0 ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int r = 0;
    if (patch_fd >= 0)
        r = replay_patches(root_fd, patch_fd, ix, err, errsize);
    else if (errno != ENOENT) /* no patch dir: nothing was ever patched */
        snprintf(err, errsize, "cannot open %s: %s", root_fd < 0 ? root : dir,
                 strerror(-(r = -errno)));
    if (patch_fd >= 0)
        close(patch_fd);
    if (root_fd >= 0)
        close(root_fd);
    return r;
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
    const char *subs[] = {STATE_DIR, STAGING_DIR, PATCH_LOG_DIR};
    for (int i = 0; !r && i < 3; i++) {
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
    a->root_fd = a->staging_fd = a->place_fd = a->patch_fd = -1;
    a->chunk_buf = malloc(CHUNKER_MAX_SIZE);
    a->dir_times = dir_times_new();
    if (!a->chunk_buf || !a->dir_times) {
        free(a->chunk_buf);
        dir_times_free(a->dir_times);
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
    if (!r) {
        a->patch_fd = openat(a->root_fd, PATCH_LOG_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                                            O_CLOEXEC);
        r = a->patch_fd < 0 ? -errno : 0;
    }
    if (r) {
        snprintf(err, errsize, "cannot prepare %s/%s: %s", root,
                 a->patch_fd < 0 && a->staging_fd >= 0 ? PATCH_LOG_DIR : STAGING_DIR,
                 strerror(-r));
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
    /* Patches a dead session left half done: finish them before anything
     * reads or writes those files. */
    r = replay_patches(a->root_fd, a->patch_fd, ix, err, errsize);
    if (r) {
        apply_close(a);
        return r;
    }
    *out = a;
    return 0;
}

static void clear_batch(struct applier *a)
{
    for (size_t i = 0; i < a->nstaged; i++) {
        char name[32];
        snprintf(name, sizeof(name), "%zu.part", i);
        if (a->staged[i].fd >= 0)
            close(a->staged[i].fd);
        if (a->staged[i].created && !a->staged[i].renamed)
            unlinkat(a->staging_fd, name, 0);
        if (a->staged[i].logged && !a->staged[i].touched) /* the file was never touched */
            unlink_log(a, a->staged[i].log_seq);
        free(a->staged[i].patch.ext);
        free(a->staged[i].patch_buf);
        free(a->staged[i].path);
        free(a->staged[i].chunks);
    }
    a->nstaged = 0;
    a->open_fds = 0;
    if (a->place_fd >= 0)
        close(a->place_fd);
    a->place_fd = -1;
    free(a->place_dir);
    a->place_dir = NULL;
    for (size_t i = 0; i < a->want_cap; i++)
        free(a->wants[i].targets);
    free(a->wants);
    a->wants = NULL;
    a->want_cap = a->nwants = 0;
    a->empty_known = false;
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
    dir_times_free(a->dir_times);
    if (a->staging_fd >= 0)
        close(a->staging_fd);
    if (a->patch_fd >= 0)
        close(a->patch_fd);
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

/* Staged file i's fd: made at its full size on first use (a hole until
 * written), then reopened when not held.  *temp: not held, close it. */
static int staged_fd(struct applier *a, size_t i, bool *temp)
{
    struct staged *s = &a->staged[i];
    *temp = false;
    if (s->fd >= 0)
        return s->fd;
    char name[32];
    snprintf(name, sizeof(name), "%zu.part", i);
    int flags = O_RDWR | O_CLOEXEC | (s->created ? 0 : O_CREAT | O_TRUNC);
    int fd = openat(a->staging_fd, name, flags, 0600);
    if (fd < 0)
        return fail(a, -errno, "staging %s: %s", s->path, strerror(errno));
    if (!s->created && s->size && ftruncate(fd, (off_t)s->size) < 0) {
        int e = errno;
        close(fd);
        unlinkat(a->staging_fd, name, 0);
        return fail(a, -e, "staging %s: %s", s->path, strerror(e));
    }
    s->created = true;
    if (a->open_fds < STAGED_FDS) {
        s->fd = fd;
        a->open_fds++;
    } else {
        *temp = true;
    }
    return fd;
}

/* A changed chunk of a file patched in place: into its extent's bytes
 * (zeros too: they overwrite what the file has there). */
static int patch_write(struct applier *a, size_t i, uint64_t off, const void *data, size_t len)
{
    struct staged *s = &a->staged[i];
    size_t lo = 0, hi = s->patch.next;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->patch.ext[mid].off < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    assert(lo < s->patch.next && s->patch.ext[lo].off == off && s->patch.ext[lo].len == len);
    memcpy(s->patch_buf + (s->patch.ext[lo].data - s->patch_buf), data, len);
    a->counts.bytes_written += len;
    return 0;
}

/* Write a chunk into a staged file; zeros stay a hole (sparse stays sparse). */
static int stage_write(struct applier *a, size_t staged, uint64_t off, const void *data,
                       size_t len)
{
    if (a->staged[staged].inplace)
        return patch_write(a, staged, off, data, len);
    if (a->dry_run || all_zero(data, len))
        return 0;
    bool temp;
    int fd = staged_fd(a, staged, &temp);
    if (fd < 0)
        return fd;
    ssize_t n = pwrite(fd, data, len, (off_t)off);
    int e = errno;
    if (temp)
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
                         .file_id = *file_id, .fd = -1};
    s->path = strdup(path);
    if (!s->path)
        return fail(a, -ENOMEM, "out of memory");
    *idx = a->nstaged++;
    return 0; /* the staging file is made on its first write */
}

/* Chunk c of staged file idx is not here: ask for it (once per id). */
static int want_chunk(struct applier *a, size_t idx, const struct chunk *c,
                      struct content_id **want, size_t *nwant)
{
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
    return 0;
}

/* Is chunk c one the file already has at the same place (per its index
 * chunk list old, sorted by offset)? */
static bool chunk_unchanged(const struct chunk *old, size_t nold, const struct chunk *c)
{
    size_t lo = 0, hi = nold;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (old[mid].off < c->off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < nold && old[lo].off == c->off && old[lo].len == c->len &&
           content_id_eq(&old[lo].id, &c->id);
}

/* The file at path is stat clean against ROOT's index (so its index chunk
 * list is what it holds), a regular file with no other name, and not
 * already in this batch?  Its inode in *ino. */
static bool inplace_target(struct applier *a, const char *path, uint64_t *ino, int64_t *mtime_ns,
                           int64_t *ctime_ns)
{
    struct index_file row;
    if (index_get(a->ix, path, &row) != 0)
        return false;
    const char *base;
    int dirfd = row.type == S_IFREG ? open_parent(a, path, &base) : -1;
    struct stat st;
    bool ok = dirfd >= 0 && fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
              S_ISREG(st.st_mode) && st.st_nlink == 1 && st.st_size == row.size &&
              ns_of(st.st_mtim) == row.mtime_ns && ns_of(st.st_ctim) == row.ctime_ns &&
              st.st_ino == row.ino;
    if (dirfd >= 0)
        close(dirfd);
    a->err[0] = '\0'; /* not eligible is not an error: staging speaks for itself */
    index_file_release(&row);
    for (size_t i = 0; ok && i < a->nstaged; i++)
        ok = strcmp(a->staged[i].path, path) != 0; /* patches are made against the file as is */
    *ino = ok ? st.st_ino : 0;
    *mtime_ns = ok ? ns_of(st.st_mtim) : 0;
    *ctime_ns = ok ? ns_of(st.st_ctim) : 0;
    return ok;
}

/* Patch path in place when only a small part of it changes (see
 * INPLACE_MAX_BYTES): gather the changed chunks (local or wanted) into a
 * patch, written at commit under a redo log.  1 when taken, 0 when the
 * file must be staged whole, -errno. */
static int try_inplace(struct applier *a, const char *path, uint32_t mode, int64_t mtime_ns,
                       uint64_t size, const struct content_id *file_id,
                       const struct chunk *chunks, size_t nchunks, struct content_id **want,
                       size_t *nwant)
{
    struct content_id id;
    uint64_t ino;
    int64_t seen_mtime, seen_ctime;
    if (a->dry_run || nchunks == 0)
        return 0;
    id_of_chunks(chunks, nchunks, &id);
    if (!content_id_eq(&id, file_id) || !inplace_target(a, path, &ino, &seen_mtime, &seen_ctime))
        return 0; /* a lying file id is refused by the staging path's checks */
    struct chunk *old = NULL;
    size_t nold = 0;
    if (index_get_chunks(a->ix, path, &old, &nold) != 0)
        return 0;
    uint64_t changed = 0, next = 0;
    for (size_t i = 0; i < nchunks; i++)
        if (!chunk_unchanged(old, nold, &chunks[i])) {
            changed += chunks[i].len;
            next++;
        }
    bool small = changed <= INPLACE_MAX_BYTES && changed * 8 <= size;
    size_t idx = 0;
    int r = small ? add_staged(a, path, mode, mtime_ns, size, file_id, &idx) : 0;
    struct staged *s = small && !r ? &a->staged[idx] : NULL;
    if (s) {
        s->inplace = true;
        s->seen_mtime_ns = seen_mtime;
        s->seen_ctime_ns = seen_ctime;
        s->patch = (struct patch){.path = s->path, .ino = ino, .size = size,
                                  .mode = mode & 0777, .mtime_ns = mtime_ns,
                                  .file_id = *file_id};
        s->chunks = malloc(nchunks * sizeof(*chunks));
        s->patch.ext = next ? calloc(next, sizeof(*s->patch.ext)) : NULL;
        s->patch_buf = changed ? malloc(changed) : NULL;
        if (!s->chunks || (next && !s->patch.ext) || (changed && !s->patch_buf))
            r = fail(a, -ENOMEM, "out of memory");
    }
    if (s && !r) {
        memcpy(s->chunks, chunks, nchunks * sizeof(*chunks));
        s->nchunks = nchunks;
        /* Every changed chunk's bytes are read now, before commit writes
         * into any file: a chunk found in this very file is still there. */
        unsigned char *p = s->patch_buf;
        for (size_t i = 0; !r && i < nchunks; i++) {
            const struct chunk *c = &chunks[i];
            if (chunk_unchanged(old, nold, c))
                continue;
            s = &a->staged[idx]; /* want_chunk may not move it, but stay safe */
            s->patch.ext[s->patch.next++] = (struct patch_extent){c->off, c->len, p};
            p += c->len;
            if (read_local_chunk(a, c, a->chunk_buf)) {
                a->counts.chunks_local++;
                r = patch_write(a, idx, c->off, a->chunk_buf, c->len);
            } else {
                r = want_chunk(a, idx, c, want, nwant);
            }
        }
    }
    free(old);
    if (r || !small)
        return r;
    return a->staged[idx].missing ? 1 : (r = seal_one(a, idx)) ? r : 1;
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
    int r = 0;
    if (!a->empty_known) {
        if ((r = index_is_empty(a->ix, &a->index_empty)))
            return fail(a, r, "index: %s", index_error(a->ix));
        a->empty_known = true;
    }
    if (!a->index_empty && (r = set_meta_in_place(a, path, mode, mtime_ns, size, file_id,
                                                  chunks, nchunks)))
        return r < 0 ? r : 0; /* 1: the content was there, only mode and mtime moved */
    if (!a->index_empty && (r = try_inplace(a, path, mode, mtime_ns, size, file_id, chunks,
                                            nchunks, want, nwant)))
        return r < 0 ? r : 0; /* 1: patched in place at commit */
    size_t idx = 0;
    r = add_staged(a, path, mode, mtime_ns, size, file_id, &idx);
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
        if (!a->index_empty && read_local_chunk(a, c, a->chunk_buf)) {
            a->counts.chunks_local++;
            r = stage_write(a, idx, c->off, a->chunk_buf, c->len);
            if (r)
                return r;
            continue;
        }
        if ((r = want_chunk(a, idx, c, want, nwant)))
            return r;
    }
    return a->staged[idx].missing ? 0 : seal_one(a, idx); /* all of it was here */
}

int apply_file_inline(struct applier *a, const char *path, uint32_t mode, int64_t mtime_ns,
                      const void *data, size_t len)
{
    struct chunk c = {.off = 0, .len = (uint32_t)len};
    struct content_id file_id;
    content_id_of_chunk(data, len, &c.id);
    content_id_of_file(len ? &c.id : NULL, len ? 1 : 0, &file_id);
    size_t idx = 0;
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
    r = stage_write(a, idx, 0, data, len);
    return r ? r : seal_one(a, idx);
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
        if (--a->staged[t->staged].missing == 0 && (r = seal_one(a, t->staged)))
            return r;
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

/* The file at path already has this content (the index says so, and its
 * stat data still match the index row: git's "stat clean"): set its mode
 * and mtime in place instead of rebuilding it from its own chunks (a touch
 * on the sender).  1 when done, 0 when the file must be staged, -errno. */
static int set_meta_in_place(struct applier *a, const char *path, uint32_t mode, int64_t mtime_ns,
                             uint64_t size, const struct content_id *file_id,
                             const struct chunk *chunks, size_t nchunks)
{
    if (a->dry_run)
        return 0;
    struct content_id id;
    id_of_chunks(chunks, nchunks, &id);
    struct index_file row;
    if (!content_id_eq(&id, file_id) || index_get(a->ix, path, &row) != 0)
        return 0;
    bool same = row.type == S_IFREG && content_id_eq(&row.id, file_id) &&
                (uint64_t)row.size == size;
    struct stat st;
    const char *base;
    int dirfd = same ? open_parent(a, path, &base) : -1;
    if (dirfd < 0) {
        a->err[0] = '\0'; /* not an error: stage it, and the usual checks speak */
        index_file_release(&row);
        return 0;
    }
    same = fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
           (uint64_t)st.st_size == size && ns_of(st.st_mtim) == row.mtime_ns &&
           ns_of(st.st_ctim) == row.ctime_ns && st.st_ino == row.ino;
    index_file_release(&row);
    int r = 0;
    if (same) {
        struct timespec tv[2];
        mtime_times(mtime_ns, tv);
        /* A chmod to the same mode still dirties the inode: only if it moves. */
        if (((st.st_mode & 07777) != (mode & 0777) && fchmodat(dirfd, base, mode & 0777, 0) < 0) ||
            utimensat(dirfd, base, tv, AT_SYMLINK_NOFOLLOW) < 0)
            r = fail(a, -errno, "setting the mode and mtime of %s: %s", path, strerror(errno));
        if (!r)
            r = index_note(a, path, dirfd, base, file_id, chunks, nchunks, NULL, true);
        if (!r)
            a->counts.files++;
    }
    close(dirfd);
    return r ? r : same;
}

/* The entries of path's parent directory (open as dirfd) are about to
 * change: remember the mtime it has now, to put back at commit unless the
 * sender sends one (dir_times.h). */
static int note_parent(struct applier *a, const char *path, int dirfd)
{
    if (a->dry_run)
        return 0;
    const char *slash = strrchr(path, '/');
    if (!slash)
        return 0; /* ROOT itself: not an entry of the tree */
    struct stat st;
    if (fstat(dirfd, &st) < 0)
        return fail(a, -errno, "stat the directory of %s: %s", path, strerror(errno));
    char parent[WIRE_MAX_PATH + 1];
    size_t n = (size_t)(slash - path);
    memcpy(parent, path, n);
    parent[n] = '\0';
    if (dir_times_before(a->dir_times, parent, ns_of(st.st_mtim)))
        return fail(a, -ENOMEM, "out of memory");
    return 0;
}

int apply_mkdir(struct applier *a, const char *path, uint32_t mode, int64_t mtime_ns)
{
    const char *base;
    int dirfd = open_parent(a, path, &base);
    if (dirfd < 0)
        return dirfd;
    struct stat st;
    bool exists = fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    int r = exists && S_ISDIR(st.st_mode) ? 0 : note_parent(a, path, dirfd);
    if (!r && exists && !S_ISDIR(st.st_mode) && !a->dry_run) {
        r = remove_tree(dirfd, base);
        exists = false;
    }
    if (!r && !a->dry_run) {
        if (!exists && mkdirat(dirfd, base, mode & 0777) < 0)
            r = fail(a, -errno, "mkdir %s: %s", path, strerror(errno));
        else if (fchmodat(dirfd, base, mode & 0777, 0) < 0)
            r = fail(a, -errno, "chmod %s: %s", path, strerror(errno));
        /* Set at commit, once the batch's entries are in it. */
        if (!r && dir_times_sent(a->dir_times, path, mtime_ns))
            r = fail(a, -ENOMEM, "out of memory");
    }
    if (!r)
        r = index_note(a, path, dirfd, base, NULL, NULL, 0, NULL, exists);
    if (!r)
        a->counts.dirs++;
    close(dirfd);
    return r;
}

int apply_symlink(struct applier *a, const char *path, const char *target, int64_t mtime_ns)
{
    const char *base;
    int dirfd = open_parent(a, path, &base);
    if (dirfd < 0)
        return dirfd;
    struct stat st;
    bool existed = fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    int r = note_parent(a, path, dirfd);
    if (!r && !a->dry_run) {
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
        struct timespec tv[2];
        mtime_times(mtime_ns, tv);
        if (!r)
            utimensat(dirfd, base, tv, AT_SYMLINK_NOFOLLOW); /* the link itself */
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
    int r = note_parent(a, path, dirfd);
    if (!r && !a->dry_run && (r = remove_tree(dirfd, base)))
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

/* Do the staged bytes in fd hash to s's file id?  The file id is made of
 * the chunk ids of s's list, so it is checked chunk by chunk: each range
 * read back must hash to its id (XXH3 only; the chunker's boundary search
 * need not run again, the list already says where the chunks are). */
static int verify_staged(struct applier *a, int fd, const struct staged *s)
{
    struct content_hasher h;
    struct content_id id;
    content_hasher_init(&h);
    for (size_t i = 0; i < s->nchunks; i++)
        content_hasher_update(&h, s->chunks[i].id.b, CONTENT_ID_SIZE);
    content_hasher_final(&h, &id);
    if (!content_id_eq(&id, &s->file_id))
        return fail(a, -EBADMSG, "'%s' does not match its file id after assembly", s->path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if ((uint64_t)st.st_size != s->size)
        return fail(a, -EBADMSG, "'%s' has %lld bytes after assembly, not %llu", s->path,
                    (long long)st.st_size, (unsigned long long)s->size);
    for (size_t i = 0; i < s->nchunks; i++) {
        const struct chunk *c = &s->chunks[i];
        struct content_id got;
        if (pread(fd, a->chunk_buf, c->len, (off_t)c->off) != (ssize_t)c->len)
            return fail(a, -EIO, "reading back %s: %s", s->path, strerror(errno));
        content_id_of_chunk(a->chunk_buf, c->len, &got);
        if (!content_id_eq(&got, &c->id))
            return fail(a, -EBADMSG, "'%s' does not match its file id after assembly (chunk %zu)",
                        s->path, i);
    }
    return 0;
}

/* Check one staged file before anything is renamed: complete, and its
 * bytes hash to its file id; then its mode and mtime.  Done as soon as its
 * last chunk is written (while its fd is still open), else at the commit.
 * Not synced here: the commit syncs the whole filesystem once. */
static int seal_one(struct applier *a, size_t i)
{
    struct staged *s = &a->staged[i];
    if (s->missing)
        return fail(a, -EPROTO, "'%s' is incomplete: %zu chunks never arrived", s->path,
                    s->missing);
    if (a->dry_run || s->sealed)
        return 0;
    if (s->inplace) {
        /* Nothing to read back: its chunk list makes its file id (checked
         * in try_inplace), each changed chunk was checked as it came (the
         * decoder, or read_local_chunk's re-hash), and the rest is the
         * file's own, stat clean against the index. */
        s->sealed = true;
        return 0;
    }
    bool temp;
    int fd = staged_fd(a, i, &temp); /* made here if it was all holes */
    if (fd < 0)
        return fd;
    int r = verify_staged(a, fd, s);
    if (!r && fchmod(fd, s->mode) < 0)
        r = fail(a, -errno, "chmod %s: %s", s->path, strerror(errno));
    struct timespec tv[2];
    mtime_times(s->mtime_ns, tv);
    if (!r)
        futimens(fd, tv);
    close(fd);
    if (!temp)
        a->open_fds--;
    s->fd = -1;
    s->sealed = !r;
    return r;
}

/* The parent directory of path, for place_one: still open when the
 * previous file was in the same directory (files come in tree order, so a
 * directory's files come together).  *fresh: just opened. */
static int place_parent(struct applier *a, const char *path, const char **base, bool *fresh)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    *base = slash ? slash + 1 : path;
    *fresh = false;
    if (a->place_dir && strlen(a->place_dir) == n && memcmp(a->place_dir, path, n) == 0)
        return a->place_fd;
    if (a->place_fd >= 0)
        close(a->place_fd);
    free(a->place_dir);
    a->place_fd = -1;
    a->place_dir = NULL;
    int fd = open_parent(a, path, base);
    if (fd < 0)
        return fd;
    if (!(a->place_dir = strndup(path, n))) {
        close(fd);
        return fail(a, -ENOMEM, "out of memory");
    }
    *fresh = true;
    return a->place_fd = fd;
}

/* Write the redo log of in-place file i; durable with the commit's first
 * sync, before the file is touched. */
static int log_patch(struct applier *a, size_t i)
{
    struct staged *s = &a->staged[i];
    char name[32];
    s->log_seq = ++a->log_seq;
    log_name(s->log_seq, name);
    int r = patch_log_write(a->patch_fd, name, &s->patch);
    s->logged = true; /* even half written: clear_batch removes it */
    return r ? fail(a, r, "writing the patch log of %s: %s", s->path, strerror(-r)) : 0;
}

/* Patch in-place file i (its log durable), and index it. */
static int patch_one(struct applier *a, size_t i)
{
    struct staged *s = &a->staged[i];
    /* Its unchanged chunks are trusted because the file was stat clean
     * when it was chosen: a write on this side since then (the far side's
     * own mount) would be mixed into it, so refuse (nothing written);
     * a retry starts from what the file holds then. */
    const char *base;
    int dirfd = open_parent(a, s->path, &base);
    if (dirfd < 0)
        return dirfd;
    struct stat st;
    bool same = fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == s->patch.ino &&
                ns_of(st.st_mtim) == s->seen_mtime_ns && ns_of(st.st_ctim) == s->seen_ctime_ns;
    int r = same ? patch_apply(a->root_fd, &s->patch) : -ESTALE;
    s->touched = r != -ESTALE;
    if (r == -ESTALE)
        r = fail(a, r, "'%s' changed on this side during the batch", s->path);
    else if (r)
        r = fail(a, r, "patching %s: %s", s->path, strerror(-r));
    if (!r)
        r = index_note(a, s->path, dirfd, base, &s->file_id, s->chunks, s->nchunks, NULL, true);
    close(dirfd);
    if (!r)
        a->counts.files++;
    return r;
}

/* Rename one sealed (and synced) staged file into place. */
static int place_one(struct applier *a, size_t i)
{
    struct staged *s = &a->staged[i];
    if (a->dry_run) {
        a->counts.files++;
        return 0;
    }
    if (s->inplace)
        return patch_one(a, i);
    char name[32];
    snprintf(name, sizeof(name), "%zu.part", i);
    const char *base;
    bool fresh;
    int dirfd = place_parent(a, s->path, &base, &fresh);
    if (dirfd < 0)
        return dirfd;
    struct stat st;
    bool existed = fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    int r = fresh ? note_parent(a, s->path, dirfd) : 0;
    if (!r && existed && S_ISDIR(st.st_mode))
        r = remove_tree(dirfd, base);
    if (!r && renameat(a->staging_fd, name, dirfd, base) < 0)
        r = fail(a, -errno, "rename into %s: %s", s->path, strerror(errno));
    s->renamed = !r;
    if (!r)
        r = index_note(a, s->path, dirfd, base, &s->file_id, s->chunks, s->nchunks, NULL,
                       existed);
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
    if (!r)
        r = note_parent(a, path, dirfd);
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

/* Give a directory the mtime the batch must leave on it, and its index row
 * the stat that follows.  A directory deleted meanwhile is skipped. */
static int set_dir_time(const char *path, int64_t mtime_ns, void *arg)
{
    struct applier *a = arg;
    int fd = open_beneath(a->root_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
    if (fd < 0)
        return 0;
    struct timespec tv[2];
    mtime_times(mtime_ns, tv);
    struct stat st;
    int r = futimens(fd, tv) == 0 && fstat(fd, &st) == 0 ? 0 : -errno;
    close(fd);
    if (r)
        return 0; /* best effort, as for files: the content is what counts */
    struct index_file f = {
        .path = (char *)path,
        .type = S_IFDIR,
        .mode = st.st_mode & 07777,
        .mtime_ns = ns_of(st.st_mtim),
        .ctime_ns = ns_of(st.st_ctim),
        .ino = st.st_ino,
    };
    r = txn(a);
    if (!r && (r = index_touch(a->ix, &f)))
        r = fail(a, r, "index: %s", index_error(a->ix));
    return r;
}

/* One sync of ROOT's filesystem: everything written so far is on disk. */
static int sync_root(struct applier *a, const char *what)
{
    if (a->dry_run || syncfs(a->staging_fd) == 0)
        return 0;
    return fail(a, -errno, "syncfs (%s): %s", what, strerror(errno));
}

/* Durable, and fast: instead of an fsync per file and per directory (two
 * journal commits each), every staged file is sealed, then one syncfs makes
 * their bytes durable, then they are renamed into place and the batch's
 * deletes, links and directory times applied, then a second syncfs makes
 * the names durable.  A crash before the second sync leaves each path old
 * or new (a rename is atomic, and never names unsynced bytes); ACK follows
 * the second sync. */
int apply_commit(struct applier *a)
{
    int r = 0;
    for (size_t i = 0; !r && i < a->nstaged; i++)
        r = seal_one(a, i);
    for (size_t i = 0; !r && i < a->nstaged; i++)
        if (a->staged[i].inplace)
            r = log_patch(a, i);
    if (!r && a->nstaged)
        r = sync_root(a, "staged files");
    for (size_t i = 0; !r && i < a->nstaged; i++)
        r = place_one(a, i);
    if (a->place_fd >= 0) /* deletes below may remove the directory it holds */
        close(a->place_fd);
    a->place_fd = -1;
    free(a->place_dir);
    a->place_dir = NULL;
    for (size_t i = 0; !r && i < a->ndeferred; i++)
        r = a->deferred[i].existing ? link_now(a, a->deferred[i].path, a->deferred[i].existing)
                                    : delete_now(a, a->deferred[i].path);
    if (!r)
        r = dir_times_foreach(a->dir_times, set_dir_time, a);
    if (!r)
        r = sync_root(a, "renames");
    /* The patched files are durable: their logs may go.  (The removal is
     * made durable by the next sync; a log that outlives a crash is
     * recognised as done by the index, see patch_recorded.)  On error
     * they stay for the next writer's replay. */
    for (size_t i = 0; !r && i < a->nstaged; i++)
        if (a->staged[i].logged) {
            unlink_log(a, a->staged[i].log_seq);
            a->staged[i].logged = false;
        }
    dir_times_clear(a->dir_times);
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
