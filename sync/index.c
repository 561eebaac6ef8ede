/*
 * index.c — sqlite3 storage behind index.h.
 *
 * Schema (user_version 1):
 *   files(fid INTEGER PRIMARY KEY, path TEXT UNIQUE, type, mode, size,
 *         mtime_ns, ctime_ns, ino, id BLOB, target TEXT, seq)
 *   chunks(fid, idx, off, len, id BLOB, PRIMARY KEY(fid, idx)) WITHOUT ROWID
 *     + index chunks_by_id(id): "where can I read this chunk?"
 *   journal(seq INTEGER PRIMARY KEY, time_ns, kind, path)
 * Chunks hang off an integer fid so a rename rewrites one path per file and
 * the path is stored once.  A subtree is the range [p + "/", p + "0") in
 * byte order ('0' follows '/'), so prefix operations use the path index.
 * WAL mode with synchronous=NORMAL: a crash loses at most the last
 * transactions, never consistency; the startup scan re-finds what was lost.
 */
#include "index.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum stmt_id {
    S_GET,
    S_PUT_FILE,
    S_DEL_CHUNKS_OF,
    S_PUT_CHUNK,
    S_TOUCH,
    S_DEL_TREE_CHUNKS,
    S_DEL_TREE,
    S_RENAME_TREE,
    S_GET_CHUNKS,
    S_FIND_CHUNK,
    S_ANY_FILE,
    S_FOREACH,
    S_FOREACH_ALL,
    S_JOURNAL_ADD,
    S_JOURNAL_RECENT,
    S_JOURNAL_TRIM,
    S_JOURNAL_SINCE,
    S_COUNT
};

/* ?1 is the subtree root; "?1 || '/'" .. "?1 || '0'" is everything below. */
#define IN_TREE(col) "(" col " = ?1 OR (" col " >= ?1 || '/' AND " col " < ?1 || '0'))"

static const char *const stmt_sql[S_COUNT] = {
    [S_GET] = "SELECT fid, type, mode, size, mtime_ns, ctime_ns, ino, id, target, seq "
              "FROM files WHERE path = ?1",
    [S_PUT_FILE] = "INSERT INTO files(path, type, mode, size, mtime_ns, ctime_ns, ino, id, "
                   "target, seq) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10) "
                   "ON CONFLICT(path) DO UPDATE SET type=?2, mode=?3, size=?4, mtime_ns=?5, "
                   "ctime_ns=?6, ino=?7, id=?8, target=?9, seq=?10 RETURNING fid",
    [S_DEL_CHUNKS_OF] = "DELETE FROM chunks WHERE fid = ?1",
    [S_PUT_CHUNK] = "INSERT INTO chunks(fid, idx, off, len, id) VALUES(?1,?2,?3,?4,?5)",
    [S_TOUCH] = "UPDATE files SET mode=?2, size=?3, mtime_ns=?4, ctime_ns=?5, ino=?6 "
                "WHERE path = ?1",
    [S_DEL_TREE_CHUNKS] = "DELETE FROM chunks WHERE fid IN (SELECT fid FROM files WHERE " IN_TREE(
        "path") ")",
    [S_DEL_TREE] = "DELETE FROM files WHERE " IN_TREE("path"),
    [S_RENAME_TREE] = "UPDATE files SET path = ?2 || substr(path, length(?1) + 1) WHERE " IN_TREE(
        "path"),
    [S_GET_CHUNKS] = "SELECT c.off, c.len, c.id FROM chunks c JOIN files f ON f.fid = c.fid "
                     "WHERE f.path = ?1 ORDER BY c.idx",
    [S_FIND_CHUNK] = "SELECT f.path, c.off, c.len FROM chunks c JOIN files f ON f.fid = c.fid "
                     "WHERE c.id = ?1 LIMIT 1",
    [S_ANY_FILE] = "SELECT 1 FROM files LIMIT 1",
    [S_FOREACH] = "SELECT path, type, mode, size, mtime_ns, ctime_ns, ino, id, target, seq "
                  "FROM files WHERE ?1 = '' OR " IN_TREE("path") " ORDER BY path",
    /* A table scan, in fid order: no lookup of each row through the path
     * index (2-3x faster than ORDER BY path over 100k rows). */
    [S_FOREACH_ALL] = "SELECT path, type, mode, size, mtime_ns, ctime_ns, ino, id, target, seq "
                      "FROM files",
    [S_JOURNAL_ADD] = "INSERT INTO journal(time_ns, kind, path) VALUES(?1, ?2, ?3)",
    [S_JOURNAL_RECENT] = "SELECT seq, time_ns, kind, path FROM "
                         "(SELECT * FROM journal ORDER BY seq DESC LIMIT ?1) ORDER BY seq",
    [S_JOURNAL_TRIM] = "DELETE FROM journal WHERE seq <= (SELECT max(seq) FROM journal) - ?1",
    [S_JOURNAL_SINCE] = "SELECT seq, kind, path FROM journal WHERE seq > ?1 ORDER BY seq",
};

#define SCHEMA_VERSION 1 /* bump when the schema changes */
#define TEXT_OF(x)     #x
#define TEXT(x)        TEXT_OF(x)

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS files("
    " fid INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, type INTEGER NOT NULL,"
    " mode INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
    " ctime_ns INTEGER NOT NULL, ino INTEGER NOT NULL, id BLOB, target TEXT,"
    " seq INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS chunks("
    " fid INTEGER NOT NULL, idx INTEGER NOT NULL, off INTEGER NOT NULL, len INTEGER NOT NULL,"
    " id BLOB NOT NULL, PRIMARY KEY(fid, idx)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS chunks_by_id ON chunks(id);"
    "CREATE TABLE IF NOT EXISTS journal("
    " seq INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL, kind TEXT NOT NULL,"
    " path TEXT NOT NULL);"
    "PRAGMA user_version = " TEXT(SCHEMA_VERSION) ";";

struct index {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmt[S_COUNT];
};

/* An index at SCHEMA_VERSION has every table: the schema script (which
 * writes, since setting user_version is a write transaction) is skipped, so
 * opening an index and reading it writes nothing, creates no WAL and costs
 * no fsync (a no-change push then writes nothing on either side). */
static bool schema_current(sqlite3 *db)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return false;
    bool current = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == SCHEMA_VERSION;
    sqlite3_finalize(s);
    return current;
}

static int fail(struct index *ix)
{
    (void)ix;
    return -EIO;
}

const char *index_error(struct index *ix)
{
    return sqlite3_errmsg(ix->db);
}

static sqlite3_stmt *prep(struct index *ix, enum stmt_id id)
{
    sqlite3_stmt *s = ix->stmt[id];
    if (!s && sqlite3_prepare_v3(ix->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                 &ix->stmt[id], NULL) == SQLITE_OK)
        s = ix->stmt[id];
    if (s) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
    return s;
}

/* Step a statement that returns no rows. */
static int run(struct index *ix, sqlite3_stmt *s)
{
    int rc = s ? sqlite3_step(s) : SQLITE_ERROR;
    if (s)
        sqlite3_reset(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : fail(ix);
}

int index_open(int state_dirfd, const char *state_dir_path, bool readonly, struct index **out,
               char *err, size_t errsize)
{
    (void)state_dirfd;
    struct index *ix = calloc(1, sizeof(*ix));
    if (!ix)
        return -ENOMEM;
    if (asprintf(&ix->path, "%s/%s", state_dir_path, INDEX_FILE_NAME) < 0) {
        free(ix);
        return -ENOMEM;
    }
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(ix->path, &ix->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errsize, "cannot open index %s: %s", ix->path,
                 ix->db ? sqlite3_errmsg(ix->db) : sqlite3_errstr(rc));
        index_close(ix);
        return rc == SQLITE_CANTOPEN ? -ENOENT : -EIO;
    }
    sqlite3_busy_timeout(ix->db, 10000);
    char *msg = NULL;
    const char *setup = readonly ? "PRAGMA query_only = 1;"
                                 : "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;";
    if (sqlite3_exec(ix->db, setup, NULL, NULL, &msg) != SQLITE_OK ||
        (!readonly && !schema_current(ix->db) &&
         sqlite3_exec(ix->db, schema, NULL, NULL, &msg) != SQLITE_OK)) {
        snprintf(err, errsize, "index %s is unusable: %s (move it aside; it is rebuilt "
                 "from SRC on the next run)", ix->path, msg ? msg : "unknown error");
        sqlite3_free(msg);
        index_close(ix);
        return -EIO;
    }
    *out = ix;
    return 0;
}

void index_close(struct index *ix)
{
    if (!ix)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(ix->stmt[i]);
    sqlite3_close(ix->db);
    free(ix->path);
    free(ix);
}

int index_begin(struct index *ix)
{
    return sqlite3_exec(ix->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? 0 : fail(ix);
}

int index_commit(struct index *ix)
{
    return sqlite3_exec(ix->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : fail(ix);
}

int index_rollback(struct index *ix)
{
    return sqlite3_exec(ix->db, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK ? 0 : fail(ix);
}

static char *column_strdup(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return t ? strdup((const char *)t) : NULL;
}

static void column_id(sqlite3_stmt *s, int col, struct content_id *id)
{
    const void *b = sqlite3_column_blob(s, col);
    if (b && sqlite3_column_bytes(s, col) == CONTENT_ID_SIZE)
        memcpy(id->b, b, CONTENT_ID_SIZE);
    else
        memset(id->b, 0, CONTENT_ID_SIZE);
}

/* Fill f from a row whose columns start at `c`: type, mode, size, mtime,
 * ctime, ino, id, target, seq. */
static void read_row(sqlite3_stmt *s, int c, struct index_file *f)
{
    f->type = (uint32_t)sqlite3_column_int64(s, c);
    f->mode = (uint32_t)sqlite3_column_int64(s, c + 1);
    f->size = sqlite3_column_int64(s, c + 2);
    f->mtime_ns = sqlite3_column_int64(s, c + 3);
    f->ctime_ns = sqlite3_column_int64(s, c + 4);
    f->ino = (uint64_t)sqlite3_column_int64(s, c + 5);
    column_id(s, c + 6, &f->id);
    f->target = column_strdup(s, c + 7);
    f->seq = (uint64_t)sqlite3_column_int64(s, c + 8);
}

int index_get(struct index *ix, const char *path, struct index_file *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *s = prep(ix, S_GET);
    if (!s)
        return fail(ix);
    sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        read_row(s, 1, out);
        out->path = strdup(path);
        sqlite3_reset(s);
        return out->path ? 0 : -ENOMEM;
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? -ENOENT : fail(ix);
}

void index_file_release(struct index_file *f)
{
    free(f->path);
    free(f->target);
    f->path = f->target = NULL;
}

int index_put(struct index *ix, const struct index_file *f, const struct chunk *chunks,
              size_t n)
{
    sqlite3_stmt *s = prep(ix, S_PUT_FILE);
    if (!s)
        return fail(ix);
    sqlite3_bind_text(s, 1, f->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, f->type);
    sqlite3_bind_int64(s, 3, f->mode);
    sqlite3_bind_int64(s, 4, f->size);
    sqlite3_bind_int64(s, 5, f->mtime_ns);
    sqlite3_bind_int64(s, 6, f->ctime_ns);
    sqlite3_bind_int64(s, 7, (int64_t)f->ino);
    if (f->type == S_IFREG)
        sqlite3_bind_blob(s, 8, f->id.b, CONTENT_ID_SIZE, SQLITE_STATIC);
    if (f->target)
        sqlite3_bind_text(s, 9, f->target, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 10, (int64_t)f->seq);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_reset(s);
        return fail(ix);
    }
    int64_t fid = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);

    s = prep(ix, S_DEL_CHUNKS_OF);
    if (!s)
        return fail(ix);
    sqlite3_bind_int64(s, 1, fid);
    if (run(ix, s))
        return fail(ix);
    for (size_t i = 0; i < n; i++) {
        s = prep(ix, S_PUT_CHUNK);
        if (!s)
            return fail(ix);
        sqlite3_bind_int64(s, 1, fid);
        sqlite3_bind_int64(s, 2, (int64_t)i);
        sqlite3_bind_int64(s, 3, (int64_t)chunks[i].off);
        sqlite3_bind_int64(s, 4, chunks[i].len);
        sqlite3_bind_blob(s, 5, chunks[i].id.b, CONTENT_ID_SIZE, SQLITE_STATIC);
        if (run(ix, s))
            return fail(ix);
    }
    return 0;
}

int index_touch(struct index *ix, const struct index_file *f)
{
    sqlite3_stmt *s = prep(ix, S_TOUCH);
    if (!s)
        return fail(ix);
    sqlite3_bind_text(s, 1, f->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, f->mode);
    sqlite3_bind_int64(s, 3, f->size);
    sqlite3_bind_int64(s, 4, f->mtime_ns);
    sqlite3_bind_int64(s, 5, f->ctime_ns);
    sqlite3_bind_int64(s, 6, (int64_t)f->ino);
    return run(ix, s);
}

static int run_on_tree(struct index *ix, enum stmt_id id, const char *path, const char *to)
{
    sqlite3_stmt *s = prep(ix, id);
    if (!s)
        return fail(ix);
    sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
    if (to)
        sqlite3_bind_text(s, 2, to, -1, SQLITE_STATIC);
    return run(ix, s);
}

int index_delete(struct index *ix, const char *path)
{
    int r = run_on_tree(ix, S_DEL_TREE_CHUNKS, path, NULL);
    return r ? r : run_on_tree(ix, S_DEL_TREE, path, NULL);
}

int index_rename(struct index *ix, const char *from, const char *to)
{
    if (strcmp(from, to) == 0)
        return 0;
    /* A rename replaces whatever was at the target. */
    int r = index_delete(ix, to);
    return r ? r : run_on_tree(ix, S_RENAME_TREE, from, to);
}

int index_get_chunks(struct index *ix, const char *path, struct chunk **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = prep(ix, S_GET_CHUNKS);
    if (!s)
        return fail(ix);
    sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            struct chunk *grown = realloc(*out, cap * sizeof(**out));
            if (!grown) {
                sqlite3_reset(s);
                return -ENOMEM;
            }
            *out = grown;
        }
        struct chunk *c = &(*out)[(*n)++];
        c->off = (uint64_t)sqlite3_column_int64(s, 0);
        c->len = (uint32_t)sqlite3_column_int64(s, 1);
        column_id(s, 2, &c->id);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : fail(ix);
}

int index_find_chunk(struct index *ix, const struct content_id *id, char **path,
                     uint64_t *off, uint32_t *len)
{
    *path = NULL;
    sqlite3_stmt *s = prep(ix, S_FIND_CHUNK);
    if (!s)
        return fail(ix);
    sqlite3_bind_blob(s, 1, id->b, CONTENT_ID_SIZE, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *path = column_strdup(s, 0);
        *off = (uint64_t)sqlite3_column_int64(s, 1);
        *len = (uint32_t)sqlite3_column_int64(s, 2);
    }
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return *path ? 0 : -ENOMEM;
    return rc == SQLITE_DONE ? -ENOENT : fail(ix);
}

int index_is_empty(struct index *ix, bool *empty)
{
    sqlite3_stmt *s = prep(ix, S_ANY_FILE);
    if (!s)
        return fail(ix);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return fail(ix);
    *empty = rc == SQLITE_DONE;
    return 0;
}

static int foreach_row(struct index *ix, enum stmt_id id, const char *prefix,
                       int (*fn)(const struct index_file *f, void *arg), void *arg)
{
    /* Not the cached statement: fn may call back into the index. */
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(ix->db, stmt_sql[id], -1, &s, NULL) != SQLITE_OK)
        return fail(ix);
    if (prefix)
        sqlite3_bind_text(s, 1, prefix, -1, SQLITE_STATIC);
    int rc, r = 0;
    while (!r && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct index_file f = {.path = (char *)sqlite3_column_text(s, 0)};
        read_row(s, 1, &f);
        r = fn(&f, arg);
        free(f.target);
    }
    if (!r && rc != SQLITE_DONE)
        r = fail(ix);
    sqlite3_finalize(s);
    return r;
}

int index_foreach(struct index *ix, const char *prefix,
                  int (*fn)(const struct index_file *f, void *arg), void *arg)
{
    return foreach_row(ix, S_FOREACH, prefix ? prefix : "", fn, arg);
}

int index_foreach_unordered(struct index *ix, int (*fn)(const struct index_file *f, void *arg),
                            void *arg)
{
    return foreach_row(ix, S_FOREACH_ALL, NULL, fn, arg);
}

int index_journal_add(struct index *ix, const char *kind, const char *path, uint64_t *seq)
{
    sqlite3_stmt *s = prep(ix, S_JOURNAL_ADD);
    if (!s)
        return fail(ix);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sqlite3_bind_int64(s, 1, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, path, -1, SQLITE_STATIC);
    int r = run(ix, s);
    if (!r && seq)
        *seq = (uint64_t)sqlite3_last_insert_rowid(ix->db);
    return r;
}

int index_journal_recent(struct index *ix, size_t n,
                         void (*fn)(uint64_t seq, int64_t time_ns, const char *kind,
                                    const char *path, void *arg),
                         void *arg)
{
    sqlite3_stmt *s = prep(ix, S_JOURNAL_RECENT);
    if (!s)
        return fail(ix);
    sqlite3_bind_int64(s, 1, (int64_t)n);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        fn((uint64_t)sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
           (const char *)sqlite3_column_text(s, 2), (const char *)sqlite3_column_text(s, 3), arg);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : fail(ix);
}

int index_journal_since(struct index *ix, uint64_t seq,
                        int (*fn)(uint64_t seq, const char *kind, const char *path, void *arg),
                        void *arg)
{
    /* Not the cached statement: fn may call back into the index. */
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(ix->db, stmt_sql[S_JOURNAL_SINCE], -1, &s, NULL) != SQLITE_OK)
        return fail(ix);
    sqlite3_bind_int64(s, 1, (int64_t)seq);
    int rc, r = 0;
    while (!r && (rc = sqlite3_step(s)) == SQLITE_ROW)
        r = fn((uint64_t)sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
               (const char *)sqlite3_column_text(s, 2), arg);
    if (!r && rc != SQLITE_DONE)
        r = fail(ix);
    sqlite3_finalize(s);
    return r;
}

int index_journal_trim(struct index *ix, uint64_t keep)
{
    sqlite3_stmt *s = prep(ix, S_JOURNAL_TRIM);
    if (!s)
        return fail(ix);
    sqlite3_bind_int64(s, 1, (int64_t)keep);
    return run(ix, s);
}

static int64_t scalar(struct index *ix, const char *sql);

int index_journal_head(struct index *ix, uint64_t *seq)
{
    int64_t v = scalar(ix, "SELECT coalesce(max(seq), 0) FROM journal");
    if (v < 0)
        return fail(ix);
    *seq = (uint64_t)v;
    return 0;
}

int index_journal_pending(struct index *ix, uint64_t seq, struct index_pending *out)
{
    static const char sql[] =
        "SELECT (SELECT count(DISTINCT path) FROM journal WHERE seq > ?1),"
        " (SELECT coalesce(min(time_ns), 0) FROM journal WHERE seq > ?1),"
        " (SELECT coalesce(sum(size), 0) FROM files WHERE type = ?2 AND path IN"
        "  (SELECT path FROM journal WHERE seq > ?1))";
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(ix->db, sql, -1, &s, NULL) != SQLITE_OK)
        return fail(ix);
    sqlite3_bind_int64(s, 1, (int64_t)seq);
    sqlite3_bind_int64(s, 2, S_IFREG);
    int r = 0;
    if (sqlite3_step(s) == SQLITE_ROW) {
        out->paths = (uint64_t)sqlite3_column_int64(s, 0);
        out->oldest_ns = sqlite3_column_int64(s, 1);
        out->bytes = (uint64_t)sqlite3_column_int64(s, 2);
    } else {
        r = fail(ix);
    }
    sqlite3_finalize(s);
    return r;
}

static int64_t scalar(struct index *ix, const char *sql)
{
    sqlite3_stmt *s;
    int64_t v = -1;
    if (sqlite3_prepare_v2(ix->db, sql, -1, &s, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

uint64_t index_rows_upper_bound(struct index *ix)
{
    int64_t v = scalar(ix, "SELECT coalesce(max(fid), 0) FROM files");
    return v > 0 ? (uint64_t)v : 0;
}

int index_stats(struct index *ix, struct index_stats *st)
{
    memset(st, 0, sizeof(*st));
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(ix->db,
                           "SELECT type, count(*), coalesce(sum(size), 0) FROM files GROUP BY type",
                           -1, &s, NULL) != SQLITE_OK)
        return fail(ix);
    while (sqlite3_step(s) == SQLITE_ROW) {
        int64_t type = sqlite3_column_int64(s, 0), count = sqlite3_column_int64(s, 1);
        if (type == S_IFREG) {
            st->files = (uint64_t)count;
            st->bytes = (uint64_t)sqlite3_column_int64(s, 2);
        } else if (type == S_IFDIR) {
            st->dirs = (uint64_t)count;
        } else if (type == S_IFLNK) {
            st->symlinks = (uint64_t)count;
        }
    }
    sqlite3_finalize(s);
    st->chunks = (uint64_t)scalar(ix, "SELECT count(*) FROM chunks");
    int64_t seq = scalar(ix, "SELECT coalesce(max(seq), 0) FROM journal");
    st->seq = seq > 0 ? (uint64_t)seq : 0;
    struct stat sb;
    char wal[4200];
    if (stat(ix->path, &sb) == 0)
        st->db_bytes = sb.st_size;
    snprintf(wal, sizeof(wal), "%s-wal", ix->path);
    if (stat(wal, &sb) == 0)
        st->db_bytes += sb.st_size;
    return 0;
}
