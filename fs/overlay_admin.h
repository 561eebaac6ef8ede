/*
 * overlay_admin.h — `wsync overlay`: list, diff, reset and promote what the
 * overlay holds, working on SRC and SRC/.wsync/overlay directly.
 *
 * No libfuse calls here: the CLI uses it when SRC is not mounted, and the mount
 * daemon uses it (then drops the kernel's caches) when it is.  Paths are
 * relative to SRC as the mount shows them ("" = everything).
 */
#ifndef WSYNC_OVERLAY_ADMIN_H
#define WSYNC_OVERLAY_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ovadm;

/* States of a listed or diffed path. */
#define OVADM_ADDED 'A'    /* only in the overlay */
#define OVADM_MODIFIED 'M' /* in both layers; the overlay's differs (ls: merged dir) */
#define OVADM_DELETED 'D'  /* deleted locally: a whiteout hides the lower entry */

typedef void (*ovadm_fn)(const char *path, char state, uint64_t bytes, void *arg);

/* Open SRC's overlay (SRC absolute).  -errno with err filled. */
int ovadm_open(const char *src, struct ovadm **out, char *err, size_t errsize);
void ovadm_free(struct ovadm *a);

/* Every local root (a local path whose parent is mirrored) the overlay has
 * at or below rel, with its state and the bytes the overlay holds for it.
 * If rel is inside a local root, rel itself.  0 or -errno. */
int ovadm_ls(struct ovadm *a, const char *rel, ovadm_fn fn, void *arg);

/* Every path at or below rel whose overlay version differs from SRC's:
 * added, modified (type, mode, size or content) or deleted.  0 or -errno. */
int ovadm_diff(struct ovadm *a, const char *rel, ovadm_fn fn, void *arg);

/* Drop the overlay's version of rel (everything if rel is ""): SRC's
 * version shows again.  -ENOENT if the overlay has nothing there. */
int ovadm_reset(struct ovadm *a, const char *rel, char *err, size_t errsize);

/* Move the overlay's version of rel into SRC (its deletions too), and drop
 * it from the overlay.  -EINVAL if rel is not local.  *still_local tells
 * whether the rules still call rel local (then it is still not mirrored
 * until .wsyncrules changes). */
int ovadm_promote(struct ovadm *a, const char *rel, bool *still_local, char *err,
                  size_t errsize);

/* Is rel a local path under the current rules? */
bool ovadm_is_local(struct ovadm *a, const char *rel, bool is_dir);

#endif
