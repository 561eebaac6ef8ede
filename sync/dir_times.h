/*
 * dir_times.h — the directory mtimes a receiver's batch must leave behind.
 *
 * Creating, renaming or removing an entry moves its directory's mtime to
 * "now".  The receiver changes directories in a batch's course (mkdir,
 * renames of staged files at commit, deletes), so a directory's mtime is
 * final only once its contents are.  This table remembers, per directory
 * path, the mtime to set when the batch ends: the one the sender sent in an
 * UPDATE of that directory, or else the one it had before the batch first
 * touched it (so a file replaced in `d/` does not make `d/` look changed).
 *
 * Invariant: a "sent" mtime is never replaced by a "before" one, and the
 * first "before" recorded for a path wins over later ones.
 */
#ifndef WSYNC_DIR_TIMES_H
#define WSYNC_DIR_TIMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dir_times;

/* NULL on allocation failure. */
struct dir_times *dir_times_new(void);
void dir_times_free(struct dir_times *t);

/* The entries of directory `path` ("" is ROOT: ignored) are about to
 * change; its mtime now is mtime_ns.  Kept only if nothing is known for
 * path yet.  0 or -ENOMEM. */
int dir_times_before(struct dir_times *t, const char *path, int64_t mtime_ns);

/* The sender says `path` has mtime mtime_ns.  0 or -ENOMEM. */
int dir_times_sent(struct dir_times *t, const char *path, int64_t mtime_ns);

/* Call fn for every remembered directory (any order); stops at and returns
 * fn's first non-zero value. */
int dir_times_foreach(struct dir_times *t, int (*fn)(const char *path, int64_t mtime_ns, void *arg),
                      void *arg);

/* Forget everything (the batch is over). */
void dir_times_clear(struct dir_times *t);

#endif
