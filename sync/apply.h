/*
 * apply.h — the receiving side's writes into ROOT, safe against a hostile
 * or broken sender and against crashes.
 *
 * Every path is checked again with wire_path_check (no "..", no absolute,
 * no empty components, not under .wsync) and its parent is opened beneath ROOT with openat2
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, so no symlink anywhere in ROOT can
 * redirect a write outside it.  A file is assembled in ROOT/.wsync/staging
 * from chunks ROOT already has (found through its own index, re-hashed
 * before use) and chunks received, verified against its file id, synced
 * (one syncfs per batch), and only then renamed over the old one: a crash
 * leaves the old file or the new one, never a mix.  Permission bits only: setuid/setgid/sticky are
 * dropped; no device nodes, fifos or sockets are ever made.
 *
 * The exception, for speed: an update that changes only a small part of a
 * big file (an eighth at most, 8 MiB at most) whose present copy is stat
 * clean against the index and has no other name is patched in place under
 * a redo log (patch_log.h): the changed chunks are logged and synced, then
 * written into the file.  A crash mid-patch leaves that file torn until the
 * next writer on ROOT (apply_open, or apply_recover) replays the log.
 *
 * Errors return -errno and describe themselves in the applier's error text
 * (apply_error()), naming the path.
 */
#ifndef WSYNC_APPLY_H
#define WSYNC_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunker.h"
#include "content_id.h"

struct applier;
struct index;

struct apply_counts {
    uint64_t files, dirs, symlinks, deleted;
    uint64_t chunks_local;   /* chunks copied from what ROOT already had */
    uint64_t chunks_received;
    uint64_t bytes_written;
};

/* Make ROOT, ROOT/.wsync and its staging dir if missing.  0 or -errno
 * with err naming the directory. */
int apply_prepare_root(const char *root, char *err, size_t errsize);

/* Open ROOT (created if missing) and its index; ix is used for chunk reuse
 * and updated on commit.  dry_run: check and count, write nothing. */
int apply_open(const char *root, struct index *ix, bool dry_run, struct applier **out,
               char *err, size_t errsize);
void apply_close(struct applier *a);
const char *apply_error(struct applier *a);

/* A regular file: stage it from its chunk list.  Chunk ids ROOT lacks are
 * appended to *want (grown with realloc; *nwant updated; a chunk already
 * wanted is not repeated). */
int apply_file(struct applier *a, const char *path, uint32_t mode, int64_t mtime_ns,
               uint64_t size, const struct content_id *file_id, const struct chunk *chunks,
               size_t nchunks, struct content_id **want, size_t *nwant);

/* A small file sent whole. */
int apply_file_inline(struct applier *a, const char *path, uint32_t mode, int64_t mtime_ns,
                      const void *data, size_t len);

/* Bytes of a wanted chunk (already verified against id by the decoder). */
int apply_chunk(struct applier *a, const struct content_id *id, const void *data, size_t len);

int apply_mkdir(struct applier *a, const char *path, uint32_t mode, int64_t mtime_ns);
/* A symlink (the raw target; never followed), with its own mtime. */
int apply_symlink(struct applier *a, const char *path, const char *target, int64_t mtime_ns);
/* Remove path and everything below it at the next commit, after the
 * batch's files are in place (no error if absent then). */
int apply_delete(struct applier *a, const char *path);

/* Make path a hard link to the regular file existing, at the next commit
 * (after the batch's files, so existing may arrive in the same batch). */
int apply_link(struct applier *a, const char *path, const char *existing);

/* Finish every staged file: all chunks present, id verified, synced, renamed
 * into place; then the deferred deletes and links, the directories' mtimes
 * (as sent, or as they were before the batch touched them), a sync of
 * ROOT's filesystem, and the index.  After it returns 0 the batch is
 * durable (this is when ACK may be sent). */
int apply_commit(struct applier *a);

void apply_get_counts(struct applier *a, struct apply_counts *c);

/* Replay the in-place patches a dead writer left half done (see above);
 * the caller holds ROOT's writer lock (an flock on ROOT/.wsync/staging).
 * apply_open does it too.  0 or -errno with err naming the log or file. */
int apply_recover(const char *root, struct index *ix, char *err, size_t errsize);

#endif
