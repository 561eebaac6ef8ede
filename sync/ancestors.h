/*
 * ancestors.h — per peer, the last agreed state of every path: what both
 * trees held when a two-way sync last left that path equal on both sides.
 * This is the common ancestor reconciliation compares against (unison's
 * archive), kept in SRC/.wsync/index.db beside the index, on a connection
 * of its own:
 *
 *   peers(peer INTEGER PRIMARY KEY, tree_id BLOB UNIQUE, host, last_sync_ns)
 *   agreed(peer, path, type, mode, file_id, target, mtime_ns)  key (peer, path)
 *
 * Invariant: a row is written only for a path that was equal on both sides
 * when written; a path with no row has no known ancestor (a first sync).
 * Functions return 0 or -errno (-EIO: sqlite, see ancestors_error()).
 */
#ifndef WSYNC_ANCESTORS_H
#define WSYNC_ANCESTORS_H

#include <stdint.h>

#include "content_id.h"
#include "path_state.h"

struct ancestors;

/* Open STATE_DIR/index.db (made if missing) and the two tables. */
int ancestors_open(const char *state_dir, struct ancestors **out, char *err, size_t errsize);
void ancestors_close(struct ancestors *a);
const char *ancestors_error(struct ancestors *a);

/* The local number of the peer whose tree id is tree_id, made if new; its
 * host label is remembered (for status and messages). */
int ancestors_peer(struct ancestors *a, const struct content_id *tree_id, const char *host,
                   int64_t *peer);

/* Every agreed path of a peer, in strcmp() order of path.  The state and
 * path live only during the call.  fn's non-zero return stops and is
 * returned. */
int ancestors_foreach(struct ancestors *a, int64_t peer,
                      int (*fn)(const char *path, const struct path_state *s, void *arg),
                      void *arg);

/* Record path as agreed in state s; an absent s removes the row. */
int ancestors_put(struct ancestors *a, int64_t peer, const char *path,
                  const struct path_state *s);

/* Note the end of a sync with the peer (its last_sync_ns = now). */
int ancestors_synced(struct ancestors *a, int64_t peer);

int ancestors_begin(struct ancestors *a);
int ancestors_commit(struct ancestors *a);
int ancestors_rollback(struct ancestors *a);

#endif
