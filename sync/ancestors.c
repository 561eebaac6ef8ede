/*
 * ancestors.c — see ancestors.h.  A second sqlite connection to index.db:
 * the index's own module stays unaware of peers, and WAL lets both
 * connections work on one file.
 */
#include "ancestors.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct ancestors {
    sqlite3 *db;
    sqlite3_stmt *put, *del, *each;
};

static const char schema[] =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
    "CREATE TABLE IF NOT EXISTS peers("
    "  peer INTEGER PRIMARY KEY, tree_id BLOB NOT NULL UNIQUE, host TEXT NOT NULL,"
    "  last_sync_ns INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS agreed("
    "  peer INTEGER NOT NULL, path TEXT NOT NULL, type INTEGER NOT NULL,"
    "  mode INTEGER NOT NULL, file_id BLOB, target TEXT, mtime_ns INTEGER NOT NULL,"
    "  PRIMARY KEY(peer, path)) WITHOUT ROWID;";

const char *ancestors_error(struct ancestors *a)
{
    return a && a->db ? sqlite3_errmsg(a->db) : "not open";
}

static int prepare(struct ancestors *a, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v2(a->db, sql, -1, st, NULL) == SQLITE_OK ? 0 : -EIO;
}

int ancestors_open(const char *state_dir, struct ancestors **out, char *err, size_t errsize)
{
    *out = NULL;
    struct ancestors *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/index.db", state_dir);
    int r = sqlite3_open_v2(path, &a->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                            NULL) == SQLITE_OK
                ? 0
                : -EIO;
    if (!r) {
        sqlite3_busy_timeout(a->db, 10000);
        r = sqlite3_exec(a->db, schema, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
    }
    if (!r)
        r = prepare(a,
                    "INSERT OR REPLACE INTO agreed(peer, path, type, mode, file_id, target,"
                    " mtime_ns) VALUES(?,?,?,?,?,?,?)",
                    &a->put);
    if (!r)
        r = prepare(a, "DELETE FROM agreed WHERE peer = ? AND path = ?", &a->del);
    if (!r)
        r = prepare(a,
                    "SELECT path, type, mode, file_id, target, mtime_ns FROM agreed"
                    " WHERE peer = ? ORDER BY path",
                    &a->each);
    if (r) {
        snprintf(err, errsize, "ancestor store in %s: %s", path, ancestors_error(a));
        ancestors_close(a);
        return r;
    }
    *out = a;
    return 0;
}

void ancestors_close(struct ancestors *a)
{
    if (!a)
        return;
    sqlite3_finalize(a->put);
    sqlite3_finalize(a->del);
    sqlite3_finalize(a->each);
    sqlite3_close(a->db);
    free(a);
}

static int exec(struct ancestors *a, const char *sql)
{
    return sqlite3_exec(a->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

int ancestors_begin(struct ancestors *a)
{
    return exec(a, "BEGIN IMMEDIATE");
}
int ancestors_commit(struct ancestors *a)
{
    return exec(a, "COMMIT");
}
int ancestors_rollback(struct ancestors *a)
{
    return exec(a, "ROLLBACK");
}

int ancestors_peer(struct ancestors *a, const struct content_id *tree_id, const char *host,
                   int64_t *peer)
{
    sqlite3_stmt *st = NULL;
    int r = prepare(a,
                    "INSERT INTO peers(tree_id, host) VALUES(?1, ?2)"
                    " ON CONFLICT(tree_id) DO UPDATE SET host = ?2 RETURNING peer",
                    &st);
    if (r)
        return r;
    sqlite3_bind_blob(st, 1, tree_id->b, CONTENT_ID_SIZE, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
    r = sqlite3_step(st) == SQLITE_ROW ? 0 : -EIO;
    if (!r)
        *peer = sqlite3_column_int64(st, 0);
    if (!r && sqlite3_step(st) != SQLITE_DONE)
        r = -EIO;
    sqlite3_finalize(st);
    return r;
}

int ancestors_synced(struct ancestors *a, int64_t peer)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sqlite3_stmt *st = NULL;
    int r = prepare(a, "UPDATE peers SET last_sync_ns = ? WHERE peer = ?", &st);
    if (r)
        return r;
    sqlite3_bind_int64(st, 1, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
    sqlite3_bind_int64(st, 2, peer);
    r = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
    sqlite3_finalize(st);
    return r;
}

int ancestors_put(struct ancestors *a, int64_t peer, const char *path,
                  const struct path_state *s)
{
    sqlite3_stmt *st = path_state_present(s) ? a->put : a->del;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    sqlite3_bind_int64(st, 1, peer);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    if (path_state_present(s)) {
        sqlite3_bind_int64(st, 3, s->type);
        sqlite3_bind_int64(st, 4, s->mode & 0777);
        if (s->type == S_IFREG)
            sqlite3_bind_blob(st, 5, s->id.b, CONTENT_ID_SIZE, SQLITE_STATIC);
        if (s->type == S_IFLNK && s->target)
            sqlite3_bind_text(st, 6, s->target, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, s->mtime_ns);
    }
    int r = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
    sqlite3_reset(st);
    return r;
}

int ancestors_foreach(struct ancestors *a, int64_t peer,
                      int (*fn)(const char *path, const struct path_state *s, void *arg),
                      void *arg)
{
    sqlite3_stmt *st = a->each;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, peer);
    int r = 0, rc = SQLITE_DONE;
    while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct path_state s = {.type = (uint32_t)sqlite3_column_int64(st, 1),
                               .mode = (uint32_t)sqlite3_column_int64(st, 2),
                               .target = (const char *)sqlite3_column_text(st, 4),
                               .mtime_ns = sqlite3_column_int64(st, 5)};
        const void *id = sqlite3_column_blob(st, 3);
        if (id && sqlite3_column_bytes(st, 3) == CONTENT_ID_SIZE)
            memcpy(s.id.b, id, CONTENT_ID_SIZE);
        if (s.type != S_IFREG && s.type != S_IFDIR && s.type != S_IFLNK)
            r = -EIO; /* not something we wrote */
        else
            r = fn((const char *)sqlite3_column_text(st, 0), &s, arg);
    }
    if (!r && rc != SQLITE_DONE)
        r = -EIO;
    sqlite3_reset(st);
    return r;
}
