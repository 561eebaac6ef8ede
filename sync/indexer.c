/*
 * indexer.c — see indexer.h.
 *
 * A subtree scan loads the index rows under the subtree in path order
 * (scan_rows.h), walks the directory tree fd-relative (any depth), merges
 * each directory's sorted listing (dir_listing.h) with the rows of its
 * children, marks each row it meets, hashes only entries whose stat
 * differs, and finally deletes the rows it never met.  Files are hashed
 * through the chunker; a file whose stat changes while it is being hashed
 * is not stored: the change stream will bring it back, and the offline
 * scan retries it.
 */
#include "indexer.h"
#include "../fs/change_stream.h"
#include "chunker.h"
#include "chunker_split.h"
#include "dir_listing.h"
#include "hold.h"
#include "index.h"
#include "manifest.h"
#include "rechunk.h"
#include "rules.h"
#include "scan_rows.h"
#include "strbuf.h"

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

/* While files are held (hold.h), look at them again this often. */
#define HOLD_POLL_MS 100

struct indexer {
    char *src;
    int src_fd; /* O_RDONLY|O_DIRECTORY on SRC */
    struct index *ix;
    bool owns_ix;
    bool split; /* big files chunked on two threads (indexer_set_split) */
    struct rules *rules;
    /* thread mode */
    struct change_stream *cs;
    struct hold *hold; /* big files still being written (hold.h) */
    pthread_t thread;
    atomic_bool stop;
    void (*on_commit)(void *arg); /* thread mode: after each committed batch */
    void *on_commit_arg;
    pthread_mutex_t counts_lock; /* guards totals and last_error */
    struct indexer_counts totals;
    char last_error[512];
};

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
    c->written += d->written;
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
    return in->split ? chunker_hash_fd_split(fd, chunks, n, id, bytes)
                     : chunker_hash_fd(fd, chunks, n, id, bytes);
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
    /* Same content (a touch): the chunk rows stand, only the stat moves. */
    if (!r)
        r = same_content ? index_touch(in->ix, now) : index_put(in->ix, now, chunks, nchunks);
    c->written += r == 0;
    if (!r && !same_content)
        existed ? c->modified++ : c->added++;
    free(chunks);
    return r;
}

/* Only these are content (indexed and mirrored); fifos, sockets and
 * devices never are, so a row whose path became one is swept. */
static bool indexable(mode_t mode)
{
    return S_ISREG(mode) || S_ISDIR(mode) || S_ISLNK(mode);
}

/* Sync the entry `name` of dirfd, known to the index as `row` (or NULL).
 * Returns 0, or -errno; a vanished entry is not an error. */
static int sync_entry(struct indexer *in, int dirfd, const char *name, const char *path,
                      const struct stat *st, const struct index_file *row,
                      const struct change_entry *hint, struct indexer_counts *c)
{
    struct index_file now;
    file_from_stat(&now, path, st);
    c->scanned++;
    bool existed = row != NULL;
    if (existed && stat_clean(row, &now))
        return 0;
    if (existed)
        now.seq = row->seq;

    if (S_ISREG(st->st_mode)) {
        int r;
        int tries = 0;
        do {
            /* A row of another type has no content to match (the touch
             * path of store_regular keeps the row's type). */
            static const struct content_id none;
            bool was_file = existed && row->type == S_IFREG;
            r = store_regular(in, dirfd, name, &now, existed, was_file ? &row->id : &none,
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
        bool same = existed && row->target && strcmp(row->target, target) == 0 &&
                    row->type == S_IFLNK;
        int r = same ? 0 : journal(in, existed ? "modify" : "add", path, &now.seq);
        if (!r && !same)
            existed ? c->modified++ : c->added++;
        c->written += r == 0;
        return r ? r : index_put(in->ix, &now, NULL, 0);
    }
    if (S_ISDIR(st->st_mode)) {
        bool same = existed && row->type == S_IFDIR && row->mode == now.mode;
        int r = same ? 0 : journal(in, existed ? "modify" : "add", path, &now.seq);
        if (!r && !same)
            existed ? c->modified++ : c->added++;
        c->written += r == 0;
        return r ? r : index_put(in->ix, &now, NULL, 0);
    }
    return 0; /* not indexable: the caller leaves its row to the sweep */
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

/* One subtree scan: the rows it compares with, the path being visited. */
struct scan {
    struct indexer *in;
    struct scan_rows rows;
    struct strbuf path; /* of the directory being walked, then of an entry */
    struct stat_helper *helper; /* may be NULL */
    struct indexer_counts *c;
};

static void path_set(struct strbuf *sb, size_t dirlen, const char *name)
{
    sb->len = dirlen;
    if (dirlen)
        strbuf_add(sb, "/", 1);
    strbuf_adds(sb, name);
}

/* Sync directory fd, whose path is sc->path ("" for SRC), and everything
 * below it, with the rows below it, [lo, hi) of sc->rows.  Its listing and
 * its children's rows are both in strcmp order, so one merge pass pairs
 * them: a row with no entry stays unseen (the sweep deletes it), an entry
 * with no row is new. */
static int walk(struct scan *sc, int fd, size_t lo, size_t hi)
{
    size_t dirlen = sc->path.len;
    struct dir_listing l;
    int r = dir_listing_read(fd, dirlen ? NULL : STATE_DIR_NAME, &l);
    if (r)
        return r == -ENOENT ? 0 : r;
    dir_listing_stat(fd, &l, sc->helper);
    size_t prefixlen = dirlen ? dirlen + 1 : 0;
    size_t ri = scan_rows_next_child(&sc->rows, lo, hi, prefixlen);
    for (size_t k = 0; !r && k < l.n; k++) {
        const struct dir_listing_entry *e = &l.v[k];
        struct scan_row *row = NULL;
        while (ri < hi && !row) {
            int cmp = strcmp(sc->rows.v[ri].f.path + prefixlen, e->name);
            if (cmp > 0)
                break;
            if (cmp == 0)
                row = &sc->rows.v[ri];
            ri = scan_rows_next_child(&sc->rows, ri + 1, hi, prefixlen);
        }
        if (e->err)
            continue; /* vanished meanwhile: its row is swept */
        path_set(&sc->path, dirlen, e->name);
        bool is_dir = S_ISDIR(e->st.st_mode);
        /* The walk enters only mirrored directories, so the parent's class
         * is RULE_MIRROR and the child's costs O(patterns). */
        if (rules_classify_child(sc->in->rules, RULE_MIRROR, sc->path.buf, is_dir) !=
            RULE_MIRROR)
            continue;
        r = sync_entry(sc->in, fd, e->name, sc->path.buf, &e->st, row ? &row->f : NULL, NULL,
                       sc->c);
        if (row && indexable(e->st.st_mode))
            row->seen = true;
        if (r || !is_dir)
            continue;
        int sub = openat(fd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            /* Replaced or removed since the stat: the next event or scan
             * sees what is there now. */
            if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP)
                r = -errno;
            continue;
        }
        size_t slo, shi;
        scan_rows_below(&sc->rows, sc->path.buf, sc->path.len, &slo, &shi);
        r = walk(sc, sub, slo, shi);
        close(sub);
    }
    if (sc->path.len > dirlen) { /* back to this directory's path */
        sc->path.len = dirlen;
        sc->path.buf[dirlen] = '\0';
    }
    dir_listing_free(&l);
    return r;
}

/* Delete rows under the scanned subtree that the walk never met.  In path
 * order a directory comes before its subtree, which its delete takes too. */
static int sweep(struct scan *sc)
{
    struct scan_rows *rows = &sc->rows;
    for (size_t i = 0; i < rows->n; i++) {
        struct scan_row *row = &rows->v[i];
        if (row->seen)
            continue;
        int r = journal(sc->in, "delete", row->f.path, NULL);
        if (!r)
            r = index_delete(sc->in->ix, row->f.path);
        if (r)
            return r;
        sc->c->deleted++;
        sc->c->written++;
        size_t lo, hi;
        scan_rows_below(rows, row->f.path, strlen(row->f.path), &lo, &hi);
        for (size_t j = lo; j < hi; j++)
            rows->v[j].seen = true; /* gone with it */
    }
    return 0;
}

/* Scan `path` (a directory, "" for SRC) and everything below it. */
static int scan_subtree(struct indexer *in, const char *path, struct indexer_counts *c,
                        struct scan_rows *keep)
{
    struct scan sc = {.in = in, .path = STRBUF_INIT, .c = c};
    int r = scan_rows_load(&sc.rows, in->ix, path);
    if (!r) {
        int fd = openat(in->src_fd, *path ? path : ".",
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            /* A whole-tree scan shares its lstat calls with a thread. */
            if (!*path)
                sc.helper = stat_helper_start();
            strbuf_adds(&sc.path, path);
            size_t lo, hi;
            scan_rows_below(&sc.rows, path, strlen(path), &lo, &hi);
            r = walk(&sc, fd, lo, hi);
            close(fd);
            stat_helper_stop(sc.helper);
        } else if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP) {
            r = -errno;
        }
    }
    struct scan_row *self = *path ? scan_rows_find(&sc.rows, path) : NULL;
    if (self)
        self->seen = true; /* the caller decides about the root itself */
    if (!r)
        r = sweep(&sc);
    strbuf_release(&sc.path);
    if (!r && keep) {
        *keep = sc.rows; /* the caller frees them */
        return 0;
    }
    scan_rows_free(&sc.rows);
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

void indexer_set_split(struct indexer *in, bool on)
{
    in->split = on;
}

void indexer_free(struct indexer *in)
{
    if (!in)
        return;
    if (in->owns_ix)
        index_close(in->ix);
    rules_free(in->rules);
    hold_free(in->hold);
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

/* arg: NULL, or a struct scan_rows to keep the rows in. */
static int do_scan(struct indexer *in, void *arg, struct indexer_counts *c)
{
    return scan_subtree(in, "", c, arg);
}

int indexer_scan(struct indexer *in, struct indexer_counts *counts)
{
    return in_transaction(in, do_scan, NULL, counts);
}

int indexer_scan_manifest(struct indexer *in, uint32_t mode_mask, struct indexer_counts *counts,
                          struct manifest **out)
{
    struct scan_rows rows = {0};
    struct indexer_counts c = {0};
    int r = in_transaction(in, do_scan, &rows, &c);
    if (!r)
        r = c.written == 0 ? manifest_from_rows(&rows, mode_mask, out)
                           : manifest_build(in->ix, mode_mask, out);
    scan_rows_free(&rows);
    if (!r && counts)
        count_add(counts, &c);
    return r;
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
        return deep ? scan_subtree(in, "", c, NULL) : 0;
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
        if (!r)
            r = sync_entry(in, dirfd, name, path, &st, existed ? &row : NULL, hint, c);
        if (!r && S_ISDIR(st.st_mode) && deep)
            r = scan_subtree(in, path, c, NULL);
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
        return scan_subtree(in, "", c, NULL);
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

static int64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *indexer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "wsync-index"); /* for top -H and perf */
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
        bool holding = hold_count(in->hold) > 0;
        if (!change_stream_wait(in->cs, holding ? HOLD_POLL_MS : 500) && !holding)
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
        /* A full rescan reads everything anyway: it takes the held too. */
        hold_filter(in->hold, &b.e, &b.n, realtime_ms(), b.rescan);
        uint64_t held_from = hold_min_seq(in->hold);
        if (held_from && held_from - 1 < upto)
            upto = held_from - 1; /* not indexed yet: still held */
        if (b.n == 0 && !b.rescan) {
            /* All of it is held: nothing to commit. */
            pthread_mutex_lock(&in->counts_lock);
            if (upto > in->totals.indexed_seq)
                in->totals.indexed_seq = upto;
            pthread_mutex_unlock(&in->counts_lock);
            change_entries_free(b.e, b.n);
            continue;
        }
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
    /* Stopping: what is held is indexed now, not left to the next start. */
    if (hold_count(in->hold) > 0) {
        struct batch b = {NULL, 0, false};
        hold_filter(in->hold, &b.e, &b.n, realtime_ms(), true);
        in_transaction(in, do_batch, &b, NULL);
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
    in->hold = hold_new(in->src_fd);
    if (!in->hold) {
        indexer_free(in);
        snprintf(err, errsize, "cannot start the indexer: %s", strerror(ENOMEM));
        return -ENOMEM;
    }
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
