/*
 * path_cache.h — each inode's path (relative to SRC) for the change stream,
 * kept so that a stream of writes to one file costs no readlink of
 * /proc/self/fd/N each.
 *
 * Validity is a generation number: fs->path_gen moves before and after
 * every op that can change where an existing object lives (unlink, rmdir,
 * rename, overlay reset/promote: any object, any ancestor), and when the
 * watcher reports a name removed or moved in SRC.  A cached path is used
 * only while its generation is current.  Bumping on both sides of the
 * syscall means no path computed while the op was in flight survives it.
 *
 * Directories have a generation of their own (path_cache_dir_gen), which
 * unlink leaves alone: removing a file name moves no directory, so a
 * create or unlink in a directory builds the new path from the
 * directory's cached one (wfs_child_path) instead of a readlink each.
 * Everything else that bumps the file generation bumps this one too.
 *
 * Only mirrored inodes (layer == 0) are cached: an overlay inode's path
 * and layer can change by copy-up.  The one window: a rename made directly
 * in SRC, then a write through the mount before the watcher reads the
 * rename; the write is noted at the old path, and the rename events that
 * follow make the indexer look at the new path anyway.
 */
#ifndef WSYNC_PATH_CACHE_H
#define WSYNC_PATH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wfs;
struct wfs_inode;

/* The current generation (read it before computing a path to store). */
uint64_t path_cache_gen(struct wfs *fs);

/* Paths of existing objects may be about to change, or just changed. */
void path_cache_bump(struct wfs *fs);

/* The generation for directories' paths (read it as path_cache_gen). */
uint64_t path_cache_dir_gen(struct wfs *fs);

/* A non-directory name is about to go, or just went (unlink): only the
 * paths of files may change. */
void path_cache_bump_files(struct wfs *fs);

/* Copy in's path into buf if it was stored in generation `gen`; false if
 * not (no path, an older generation, or buf too small). */
bool path_cache_get(struct wfs_inode *in, uint64_t gen, char *buf, size_t size);

/* Store in's path, computed after `gen` was read.  Best effort (ENOMEM:
 * nothing stored). */
void path_cache_put(struct wfs_inode *in, uint64_t gen, const char *path);

#endif
