/*
 * indexer.c — see indexer.h.
 *
 * A subtree scan loads the index rows under the subtree into a hash map,
 * walks the directory tree fd-relative (any depth), marks each row it meets,
 * hashes only entries whose stat differs, and finally deletes the rows it
 * never met.  Files are hashed through the chunker; a file whose stat changes
 * while it is being hashed is not stored: the change stream will bring it
 * back, and the offline scan retries it.
 */
#include "indexer.h"
#include "../fs/change_stream.h"
#include "chunker.h"
#include "index.h"
#include "rechunk.h"
#include "rules.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define STATE_DIR_NAME ".wsync"
#define JOURNAL_KEEP 100000
/* A batch starts once changes pause (or after MAX_DELAY_MS of continuous
 * change): a file being written is hashed once, not at every write, and a
 * compiler's burst of files is one transaction.  How long a pause counts
 * depends on what came before: the first change after a calm moment (an
 * editor's save) waits only QUIET_IDLE_MS, since its latency to the mirrors
 * is what a user feels; while changes keep arriving within BUSY_GAP_MS of
 * the last batch, the pause must be QUIET_BUSY_MS, so a writer that
 * stalls for a few ms between writes is still coalesced. */
#define QUIET_IDLE_MS 2
#define QUIET_BUSY_MS 8
#define BUSY_GAP_MS 20
#define MAX_DELAY_MS 200

/* The indexer is background work next to the FUSE threads that serve the
 * user.  It runs at a lower CPU priority, and after a batch that read more
 * than REST_MIN_BYTES and kept it busy for more than BUSY_MS it rests
 * REST_FACTOR times as long (at most MAX_REST_MS) before the next one, so a
 * process rewriting a big file all over (a database, fio) cannot make it
 * re-hash that file back to back and take a core away from the writes
 * themselves.  Batches of small files (a compiler's output, a 1000-file
 * burst) never wait: their latency to the mirrors is the point. */
#define INDEXER_NICE 10
#define REST_MIN_BYTES (16u << 20)
#define BUSY_MS 20
#define REST_FACTOR 3
#define MAX_REST_MS 1000

struct indexer {
    char *src;
    int src_fd; /* O_RDONLY|O_DIRECTORY on SRC */
    struct index *ix;
    bool owns_ix;
    struct rules *rules;
    /* thread mode */
    struct change_stream *cs;
    pthread_t thread;
    atomic_bool stop;
    void (*on_commit)(void *arg); /* thread mode: after each committed batch */
    void *on_commit_arg;
    pthread_mutex_t counts_lock; /* guards totals and last_error */
    struct indexer_counts totals;
    char last_error[512];
};

/* ---- row map: path -> (stat of the row, seen?) for one subtree scan ---- */

struct row {
    char *path;
    struct index_file f;
    bool seen;
};

struct row_map {
    struct row *rows;
    size_t cap, count; /* cap: power of two */
};

static size_t row_slot(const struct row_map *m, const char *path)
{
    size_t i = (size_t)XXH3_64bits(path, strlen(path)) & (m->cap - 1);
    while (m->rows[i].path && strcmp(m->rows[i].path, path) != 0)
        i = (i + 1) & (m->cap - 1);
    return i;
}

/* Size the table for n rows up front: a restart over 100k files must not
 * rehash a growing table seven times (it showed in profiles). */
static int row_map_reserve(struct row_map *m, size_t n)
{
    size_t cap = 1024;
    while (cap < 2 * n + 2)
        cap *= 2;
    if (cap <= m->cap)
        return 0;
    struct row *rows = calloc(cap, sizeof(*rows));
    if (!rows)
        return -ENOMEM;
    free(m->rows); /* only called while empty */
    m->rows = rows;
    m->cap = cap;
    return 0;
}

static int row_map_add(struct row_map *m, const struct index_file *f)
{
    if ((m->count + 1) * 2 > m->cap) {
        struct row_map g = {.cap = m->cap ? m->cap * 2 : 1024};
        g.rows = calloc(g.cap, sizeof(*g.rows));
        if (!g.rows)
            return -ENOMEM;
        for (size_t i = 0; i < m->cap; i++)
            if (m->rows[i].path)
                g.rows[row_slot(&g, m->rows[i].path)] = m->rows[i];
        g.count = m->count;
        free(m->rows);
        *m = g;
    }
    struct row *r = &m->rows[row_slot(m, f->path)];
    r->path = strdup(f->path);
    if (!r->path)
        return -ENOMEM;
    r->f = *f;
    r->f.path = r->path;
    r->f.target = f->target ? strdup(f->target) : NULL;
    r->seen = false;
    m->count++;
    return 0;
}

static struct row *row_map_get(struct row_map *m, const char *path)
{
    if (!m->cap)
        return NULL;
    struct row *r = &m->rows[row_slot(m, path)];
    return r->path ? r : NULL;
}

static void row_map_free(struct row_map *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->rows[i].path);
        free(m->rows[i].f.target);
    }
    free(m->rows);
    *m = (struct row_map){0};
}

static int load_row(const struct index_file *f, void *arg)
{
    return row_map_add(arg, f);
}

/* ---- comparing and storing one path ---- */

static int64_t ns(struct timespec ts)
{
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void file_from_stat(struct index_file *f, const char *path, const struct stat *st)
{
    memset(f, 0, sizeof(*f));
    f->path = (char *)path;
    f->type = st->st_mode & S_IFMT;
    f->mode = st->st_mode & 07777;
    f->size = S_ISDIR(st->st_mode) ? 0 : st->st_size;
    f->mtime_ns = ns(st->st_mtim);
    f->ctime_ns = ns(st->st_ctim);
    f->ino = st->st_ino;
}

/* Does the row still describe what stat says (git's "stat clean")? */
static bool stat_clean(const struct index_file *row, const struct index_file *now)
{
    if (row->type != now->type || row->mode != now->mode)
        return false;
    if (now->type == S_IFDIR) /* mtime kept exact: a push sends it */
        return row->mtime_ns == now->mtime_ns;
    return row->size == now->size && row->mtime_ns == now->mtime_ns &&
           row->ctime_ns == now->ctime_ns && row->ino == now->ino;
}

static void count_add(struct indexer_counts *c, const struct indexer_counts *d)
{
    c->scanned += d->scanned;
    c->hashed += d->hashed;
    c->bytes_hashed += d->bytes_hashed;
    c->added += d->added;
    c->modified += d->modified;
    c->deleted += d->deleted;
    c->renamed += d->renamed;
}

static int journal(struct indexer *in, const char *kind, const char *path, uint64_t *seq)
{
    return index_journal_add(in->ix, kind, path, seq);
}

/* Hash the regular file `name` in dirfd and store it.  -EAGAIN if it changed
 * while being read. */
/* Only bytes in [lo, hi) were written since the row was stored: a partial
 * re-chunk is exact (see rechunk.h).  Truncation, outside edits and new
 * files say nothing about ranges. */
static bool range_only(const struct change_entry *hint)
{
    uint32_t allowed = CHANGE_WRITE | CHANGE_ATTR | CHANGE_XATTR;
    return hint && (hint->kinds & ~allowed) == 0 && (hint->kinds & CHANGE_WRITE) &&
           hint->hi > hint->lo;
}

static int hash_file(struct indexer *in, int fd, const char *path, bool existed,
                     const struct change_entry *hint, struct chunk **chunks, size_t *n,
                     struct content_id *id, uint64_t *bytes)
{
    struct chunk *old = NULL;
    size_t nold = 0;
    if (existed && range_only(hint) && index_get_chunks(in->ix, path, &old, &nold) == 0 &&
        nold > 0) {
        int r = rechunk_fd(fd, old, nold, (uint64_t)hint->lo, (uint64_t)hint->hi, chunks, n,
                           id, bytes);
        free(old);
        return r;
    }
    free(old);
    return chunker_hash_fd(fd, chunks, n, id, bytes);
}

static int store_regular(struct indexer *in, int dirfd, const char *name, struct index_file *now,
                         bool existed, const struct content_id *old_id,
                         const struct change_entry *hint, struct indexer_counts *c)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
    if (fd < 0 && errno == EPERM)
        fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    struct chunk *chunks = NULL;
    size_t nchunks = 0;
    struct content_id file_id;
    uint64_t bytes_read = 0;
    int r = hash_file(in, fd, now->path, existed, hint, &chunks, &nchunks, &file_id, &bytes_read);
    struct stat after;
    if (!r && fstat(fd, &after) < 0)
        r = -errno;
    close(fd);
    if (r)
        return r;
    struct index_file check;
    file_from_stat(&check, now->path, &after);
    if (!stat_clean(now, &check)) {
        free(chunks);
        return -EAGAIN;
    }
    c->hashed++;
    c->bytes_hashed += bytes_read;
    now->id = file_id;
    bool same_content = existed && content_id_eq(old_id, &file_id);
    r = 0;
    if (!same_content || !existed)
        r = journal(in, existed ? "modify" : "add", now->path, &now->seq);
    if (!r)
        r = index_put(in->ix, now, chunks, nchunks);
    if (!r && !same_content)
        existed ? c->modified++ : c->added++;
    free(chunks);
    return r;
}

/* Sync the entry `name` of dirfd, known to the index as `row` (or NULL).
 * Returns 0, or -errno; a vanished entry is not an error. */
static int sync_entry(struct indexer *in, int dirfd, const char *name, const char *path,
                      const struct stat *st, struct row *row, const struct change_entry *hint,
                      struct indexer_counts *c)
{
    struct index_file now;
    file_from_stat(&now, path, st);
    c->scanned++;
    bool existed = row != NULL;
    if (row)
        row->seen = true;
    if (existed && stat_clean(&row->f, &now))
        return 0;
    if (existed)
        now.seq = row->f.seq;

    if (S_ISREG(st->st_mode)) {
        int r;
        int tries = 0;
        do {
            r = store_regular(in, dirfd, name, &now, existed, existed ? &row->f.id : &now.id,
                              tries == 0 ? hint : NULL, c);
            if (r == -EAGAIN) {
                struct stat again;
                if (fstatat(dirfd, name, &again, AT_SYMLINK_NOFOLLOW) < 0 ||
                    !S_ISREG(again.st_mode))
                    return 0;
                file_from_stat(&now, path, &again);
            }
        } while (r == -EAGAIN && ++tries < 3);
        return r == -EAGAIN ? 0 : r;
    }
    if (S_ISLNK(st->st_mode)) {
        char target[4097];
        ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
        if (n < 0)
            return errno == ENOENT ? 0 : -errno;
        target[n] = '\0';
        now.target = target;
        bool same = existed && row->f.target && strcmp(row->f.target, target) == 0 &&
                    row->f.type == S_IFLNK;
        int r = same ? 0 : journal(in, existed ? "modify" : "add", path, &now.seq);
        if (!r && !same)
            existed ? c->modified++ : c->added++;
        return r ? r : index_put(in->ix, &now, NULL, 0);
    }
    if (S_ISDIR(st->st_mode)) {
        bool same = existed && row->f.type == S_IFDIR && row->f.mode == now.mode;
        int r = same ? 0 : journal(in, existed ? "modify" : "add", path, &now.seq);
        if (!r && !same)
            existed ? c->modified++ : c->added++;
        return r ? r : index_put(in->ix, &now, NULL, 0);
    }
    /* fifos, sockets, devices are not content: never indexed or mirrored. */
    if (existed) {
        row->seen = false; /* let the final sweep delete it */
    }
    return 0;
}

bool indexer_excludes(const char *path, bool is_dir, void *indexer)
{
    struct indexer *in = indexer;
    return rules_classify(in->rules, path, is_dir) != RULE_MIRROR;
}

static bool skipped(struct indexer *in, const char *path, bool is_dir)
{
    return indexer_excludes(path, is_dir, in);
}

/* Walk directory `dirfd` (path `dir`, "" for SRC) recursively. */
static int walk(struct indexer *in, int dirfd, const char *dir, struct row_map *rows,
                struct indexer_counts *c)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    int r = 0;
    struct dirent *de;
    size_t dlen = strlen(dir);
    while (!r && (de = readdir(d))) {
        const char *name = de->d_name;
        if (!strcmp(name, ".") || !strcmp(name, ".."))
            continue;
        if (dlen == 0 && !strcmp(name, STATE_DIR_NAME))
            continue;
        size_t plen = dlen + 1 + strlen(name) + 1;
        char *path = malloc(plen);
        if (!path) {
            r = -ENOMEM;
            break;
        }
        snprintf(path, plen, "%s%s%s", dir, dlen ? "/" : "", name);
        struct stat st;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            free(path);
            continue; /* vanished meanwhile: its row is swept */
        }
        if (!skipped(in, path, S_ISDIR(st.st_mode))) {
            r = sync_entry(in, dirfd, name, path, &st, row_map_get(rows, path), NULL, c);
            if (!r && S_ISDIR(st.st_mode)) {
                int sub = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub >= 0) {
                    r = walk(in, sub, path, rows, c);
                    close(sub);
                }
            }
        }
        free(path);
    }
    closedir(d);
    return r;
}

/* Delete rows under the scanned subtree that the walk never met. */
static int sweep(struct indexer *in, struct row_map *rows, struct indexer_counts *c)
{
    for (size_t i = 0; i < rows->cap; i++) {
        struct row *row = &rows->rows[i];
        if (!row->path || row->seen)
            continue;
        struct index_file probe;
        /* A parent's delete may have taken it already. */
        if (index_get(in->ix, row->path, &probe) != 0)
            continue;
        index_file_release(&probe);
        int r = journal(in, "delete", row->path, NULL);
        if (!r)
            r = index_delete(in->ix, row->path);
        if (r)
            return r;
        c->deleted++;
    }
    return 0;
}

/* Scan `path` (a directory, "" for SRC) and everything below it. */
static int scan_subtree(struct indexer *in, const char *path, struct indexer_counts *c)
{
    struct row_map rows = {0};
    int r = *path ? 0 : row_map_reserve(&rows, index_rows_upper_bound(in->ix));
    if (!r)
        r = index_foreach(in->ix, path, load_row, &rows);
    int dirfd = -1;
    if (!r) {
        dirfd = *path ? openat(in->src_fd, path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                      : dup(in->src_fd);
        if (dirfd >= 0)
            r = walk(in, dirfd, path, &rows, c);
        else if (errno != ENOENT && errno != ENOTDIR)
            r = -errno;
    }
    struct row *self = *path ? row_map_get(&rows, path) : NULL;
    if (self)
        self->seen = true; /* the caller decides about the root itself */
    if (!r)
        r = sweep(in, &rows, c);
    if (dirfd >= 0)
        close(dirfd);
    row_map_free(&rows);
    return r;
}

int indexer_new(const char *src, struct index *ix, struct indexer **out, char *err,
                size_t errsize)
{
    struct indexer *in = calloc(1, sizeof(*in));
    if (!in)
        return -ENOMEM;
    in->src = strdup(src);
    in->src_fd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (!in->src || in->src_fd < 0) {
        int e = in->src ? -errno : -ENOMEM;
        snprintf(err, errsize, "cannot open %s: %s", src, strerror(-e));
        if (in->src_fd >= 0)
            close(in->src_fd);
        free(in->src);
        free(in);
        return e;
    }
    int r = rules_load(in->src_fd, src, &in->rules, err, errsize);
    if (r) {
        close(in->src_fd);
        free(in->src);
        free(in);
        return r;
    }
    in->ix = ix;
    pthread_mutex_init(&in->counts_lock, NULL);
    *out = in;
    return 0;
}

void indexer_free(struct indexer *in)
{
    if (!in)
        return;
    if (in->owns_ix)
        index_close(in->ix);
    rules_free(in->rules);
    close(in->src_fd);
    pthread_mutex_destroy(&in->counts_lock);
    free(in->src);
    free(in);
}

/* Run fn in one transaction and add its counts to the totals. */
static int in_transaction(struct indexer *in, int (*fn)(struct indexer *, void *,
                                                        struct indexer_counts *),
                          void *arg, struct indexer_counts *counts)
{
    struct indexer_counts c = {0};
    int r = index_begin(in->ix);
    if (r)
        return r;
    r = fn(in, arg, &c);
    if (!r)
        r = index_journal_trim(in->ix, JOURNAL_KEEP);
    if (r) {
        index_rollback(in->ix);
        return r;
    }
    r = index_commit(in->ix);
    if (r)
        return r;
    pthread_mutex_lock(&in->counts_lock);
    count_add(&in->totals, &c);
    pthread_mutex_unlock(&in->counts_lock);
    if (counts)
        count_add(counts, &c);
    return 0;
}

static int do_scan(struct indexer *in, void *arg, struct indexer_counts *c)
{
    return scan_subtree(in, "", c);
}

int indexer_scan(struct indexer *in, struct indexer_counts *counts)
{
    return in_transaction(in, do_scan, NULL, counts);
}

/* Split "a/b/c" into the parent's fd (opened beneath SRC) and "c". */
static int open_parent(struct indexer *in, const char *path, const char **name)
{
    const char *slash = strrchr(path, '/');
    *name = slash ? slash + 1 : path;
    if (!slash)
        return dup(in->src_fd);
    char *dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return -1;
    int fd = openat(in->src_fd, dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    return fd;
}

static int sync_one(struct indexer *in, const char *path, bool deep,
                    const struct change_entry *hint, struct indexer_counts *c)
{
    if (!*path)
        return deep ? scan_subtree(in, "", c) : 0;
    const char *name;
    int dirfd = open_parent(in, path, &name);
    struct stat st;
    bool present = dirfd >= 0 && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    struct index_file row;
    bool existed = index_get(in->ix, path, &row) == 0;
    int r = 0;
    bool gone = !present || skipped(in, path, S_ISDIR(st.st_mode)) ||
                !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode));
    if (gone) {
        if (existed) {
            r = journal(in, "delete", path, NULL);
            if (!r)
                r = index_delete(in->ix, path);
            if (!r)
                c->deleted++;
        }
    } else {
        if (existed && row.type == S_IFDIR && !S_ISDIR(st.st_mode)) {
            /* A directory replaced by a file: what was below it is gone. */
            r = journal(in, "delete", path, NULL);
            if (!r)
                r = index_delete(in->ix, path);
            index_file_release(&row);
            existed = false;
        }
        struct row rrow = {.path = row.path, .f = row};
        if (!r)
            r = sync_entry(in, dirfd, name, path, &st, existed ? &rrow : NULL, hint, c);
        if (!r && S_ISDIR(st.st_mode) && deep)
            r = scan_subtree(in, path, c);
    }
    if (existed)
        index_file_release(&row);
    if (dirfd >= 0)
        close(dirfd);
    return r;
}

struct sync_args {
    const char *path;
    bool deep;
};

static int do_sync_path(struct indexer *in, void *arg, struct indexer_counts *c)
{
    struct sync_args *a = arg;
    return sync_one(in, a->path, a->deep, NULL, c);
}

int indexer_sync_path(struct indexer *in, const char *path, bool deep,
                      struct indexer_counts *counts)
{
    struct sync_args a = {path, deep};
    return in_transaction(in, do_sync_path, &a, counts);
}

/* ---- the thread draining the change stream ---- */

/* A rename seen by the mount: move the rows instead of re-hashing, when the
 * object at the new name is the one the old rows describe (same inode). */
static int apply_rename(struct indexer *in, const struct change_entry *e,
                        struct indexer_counts *c)
{
    struct index_file old;
    if (index_get(in->ix, e->renamed_from, &old) != 0)
        return 0;
    const char *name;
    int dirfd = open_parent(in, e->path, &name);
    struct stat st;
    int r = 0;
    if (dirfd >= 0 && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        st.st_ino == old.ino && (st.st_mode & S_IFMT) == old.type) {
        /* Both names are journaled: a mirror deletes the old one. */
        r = journal(in, "delete", e->renamed_from, NULL);
        if (!r)
            r = journal(in, "rename", e->path, NULL);
        if (!r)
            r = index_rename(in->ix, e->renamed_from, e->path);
        if (!r && S_ISREG(st.st_mode) && st.st_size == old.size &&
            ns(st.st_mtim) == old.mtime_ns) {
            /* rename(2) moves ctime; the content is the row's. */
            struct index_file now;
            file_from_stat(&now, e->path, &st);
            r = index_touch(in->ix, &now);
        }
        if (!r)
            c->renamed++;
    }
    if (dirfd >= 0)
        close(dirfd);
    index_file_release(&old);
    return r;
}

struct batch {
    struct change_entry *e;
    size_t n;
    bool rescan;
};

static void set_error(struct indexer *in, const char *msg)
{
    pthread_mutex_lock(&in->counts_lock);
    snprintf(in->last_error, sizeof(in->last_error), "%s", msg);
    pthread_mutex_unlock(&in->counts_lock);
}

/* The rules file changed: take the new rules, or keep the old ones if the
 * new file is bad.  True if the rules changed (everything must be rescanned). */
static bool reload_rules(struct indexer *in)
{
    char err[512];
    struct rules *fresh;
    if (rules_load(in->src_fd, in->src, &fresh, err, sizeof(err)) != 0) {
        fprintf(stderr, "wsync: %s (keeping the previous rules)\n", err);
        set_error(in, err);
        return false;
    }
    rules_free(in->rules);
    in->rules = fresh;
    set_error(in, "");
    return true;
}

static int do_batch(struct indexer *in, void *arg, struct indexer_counts *c)
{
    struct batch *b = arg;
    for (size_t i = 0; i < b->n && !b->rescan; i++)
        if (strcmp(b->e[i].path, RULES_FILE) == 0 && reload_rules(in))
            b->rescan = true;
    if (b->rescan)
        return scan_subtree(in, "", c);
    int r = 0;
    /* Local paths (the overlay) never enter the index: their events are
     * for the log only.  A rename out of the mirrored tree into a local
     * path arrives as a plain delete of the source. */
    for (size_t i = 0; !r && i < b->n; i++)
        if ((b->e[i].kinds & CHANGE_RENAME_TO) && b->e[i].renamed_from &&
            !(b->e[i].kinds & CHANGE_LOCAL))
            r = apply_rename(in, &b->e[i], c);
    for (size_t i = 0; !r && i < b->n; i++) {
        if (b->e[i].kinds & CHANGE_LOCAL)
            continue;
        /* Outside edits and new directories may hide a whole new subtree. */
        bool deep = b->e[i].kinds & (CHANGE_MKDIR | CHANGE_RENAME_TO | CHANGE_OUTSIDE);
        r = sync_one(in, b->e[i].path, deep, &b->e[i], c);
    }
    return r;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *indexer_main(void *arg)
{
    struct indexer *in = arg;
    /* Linux: a thread's nice value is its own (ignored if not permitted). */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), INDEXER_NICE) != 0)
        errno = 0;
    long rest_ms = 0;
    int64_t last_batch_end = 0;
    while (!atomic_load(&in->stop)) {
        for (long slept = 0; slept < rest_ms && !atomic_load(&in->stop); slept += QUIET_BUSY_MS)
            usleep(QUIET_BUSY_MS * 1000);
        rest_ms = 0;
        if (!change_stream_wait(in->cs, 500))
            continue;
        int quiet = monotonic_ms() - last_batch_end < BUSY_GAP_MS ? QUIET_BUSY_MS : QUIET_IDLE_MS;
        uint64_t seen = change_stream_seq(in->cs);
        for (int waited = 0; waited < MAX_DELAY_MS && !atomic_load(&in->stop); waited += quiet) {
            usleep((useconds_t)quiet * 1000);
            uint64_t now = change_stream_seq(in->cs);
            if (now == seen)
                break;
            seen = now;
        }
        struct batch b;
        /* Every event up to `upto` is in this batch or an earlier one. */
        uint64_t upto = change_stream_seq(in->cs);
        b.rescan = change_stream_take(in->cs, &b.e, &b.n);
        int64_t started = monotonic_ms();
        struct indexer_counts done = {0};
        int r = in_transaction(in, do_batch, &b, &done);
        last_batch_end = monotonic_ms();
        int64_t busy = last_batch_end - started;
        if (busy > BUSY_MS && done.bytes_hashed > REST_MIN_BYTES)
            rest_ms = busy * REST_FACTOR < MAX_REST_MS ? (long)busy * REST_FACTOR : MAX_REST_MS;
        if (!r) {
            pthread_mutex_lock(&in->counts_lock);
            in->totals.indexed_seq = upto;
            in->totals.batches++;
            pthread_mutex_unlock(&in->counts_lock);
            if (in->on_commit)
                in->on_commit(in->on_commit_arg);
        }
        if (r) {
            char msg[512];
            snprintf(msg, sizeof(msg), "indexing failed: %s (%s); rescanning", strerror(-r),
                     index_error(in->ix));
            fprintf(stderr, "wsync: %s\n", msg);
            set_error(in, msg);
            change_stream_request_rescan(in->cs);
            usleep(100 * 1000); /* do not spin on a persistent failure */
        }
        change_entries_free(b.e, b.n);
    }
    return NULL;
}

int indexer_start(const char *src, const char *state_dir, struct change_stream *cs,
                  void (*on_commit)(void *arg), void *arg, struct indexer **out, char *err,
                  size_t errsize)
{
    struct index *ix;
    int r = index_open(-1, state_dir, false, &ix, err, errsize);
    if (r)
        return r;
    struct indexer *in;
    r = indexer_new(src, ix, &in, err, errsize);
    if (r) {
        index_close(ix);
        return r;
    }
    in->owns_ix = true;
    in->cs = cs;
    in->on_commit = on_commit;
    in->on_commit_arg = arg;
    /* The startup scan runs on the thread too: mounting does not wait. */
    change_stream_request_rescan(cs);
    r = pthread_create(&in->thread, NULL, indexer_main, in);
    if (r) {
        indexer_free(in);
        snprintf(err, errsize, "cannot start the indexer: %s", strerror(r));
        return -r;
    }
    *out = in;
    return 0;
}

void indexer_stop(struct indexer *in)
{
    if (!in)
        return;
    atomic_store(&in->stop, true);
    change_stream_wake(in->cs);
    pthread_join(in->thread, NULL);
    indexer_free(in);
}

void indexer_last_error(struct indexer *in, char *buf, size_t size)
{
    pthread_mutex_lock(&in->counts_lock);
    snprintf(buf, size, "%s", in->last_error);
    pthread_mutex_unlock(&in->counts_lock);
}

void indexer_get_counts(struct indexer *in, struct indexer_counts *out)
{
    pthread_mutex_lock(&in->counts_lock);
    *out = in->totals;
    pthread_mutex_unlock(&in->counts_lock);
}
