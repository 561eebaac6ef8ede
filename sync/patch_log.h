/*
 * patch_log.h — redo logs for files patched in place on the receiving side.
 *
 * A small edit to a big file (a 4 KiB write into 10 MiB) is written into
 * the file itself instead of assembling a whole new copy in staging.  To
 * keep a crash from leaving the file torn for good, the new bytes are first
 * written to ROOT/.wsync/patch/<n>.log together with the target (path and
 * inode) and the final size, mode, mtime and file id; only once the log is
 * durable is the file touched.  Replaying a log writes the same bytes at
 * the same offsets again, so it is idempotent: a log is replayed (or
 * discarded, when its target is no longer the recorded inode) at the next
 * start of a writer on ROOT, and removed only after the file is durable.
 *
 * Invariant: a log that exists and passes its checksum was durable before
 * its file was touched; a torn or corrupt log means its file was never
 * touched, and it is discarded.  Logs are this machine's own state, in its
 * native byte order.
 */
#ifndef WSYNC_PATCH_LOG_H
#define WSYNC_PATCH_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "content_id.h"

#define PATCH_LOG_DIR       ".wsync/patch"
#define PATCH_LOG_MAX_BYTES (64u << 20) /* a longer log is refused as corrupt */

struct patch_extent {
    uint64_t off;
    uint32_t len;
    const unsigned char *data;
};

/* One file's patch: the extents to write, then truncate to size and set
 * mode and mtime.  Extents are sorted by offset and do not overlap. */
struct patch {
    char *path; /* relative to ROOT, checked by wire_path_check */
    uint64_t ino;
    uint64_t size;
    uint32_t mode;
    int64_t mtime_ns;
    struct content_id file_id;
    struct patch_extent *ext;
    size_t next;
    void *owned; /* patch_log_read's buffer, which ext[].data point into */
};

/* Write p as the log `name` in the directory dirfd (created, or replaced).
 * Not synced: the caller makes it durable (fdatasync or syncfs) before
 * patch_apply.  0 or -errno. */
int patch_log_write(int dirfd, const char *name, const struct patch *p);

/* Read the log `name` in dirfd into *out (release with patch_release).
 * -EBADMSG when it is torn, corrupt or names a bad path; -errno else. */
int patch_log_read(int dirfd, const char *name, struct patch *out);

void patch_release(struct patch *p);

/* Write p into its file beneath root_fd (no symlinks followed): each
 * extent, then the size, mode and mtime.  Not synced.  -ESTALE when the
 * path is no longer a regular file with inode p->ino (then nothing is
 * written); -errno on other errors. */
int patch_apply(int root_fd, const struct patch *p);

/* Finish what a dead writer left: every log in patch_fd (ROOT's patch
 * dir) is replayed into its file beneath root_fd, unless it is torn (the
 * file was never touched), its target is not the recorded inode any more,
 * or applied(p, arg) says the patch is known complete; then the replayed
 * files are synced (one syncfs) and the logs removed.  The caller holds
 * ROOT's writer lock.  *replayed (may be NULL) counts the files written.
 * 0, or -errno with err naming the log or file. */
int patch_log_replay(int root_fd, int patch_fd, bool (*applied)(const struct patch *p, void *arg),
                     void *arg, size_t *replayed, char *err, size_t errsize);

#endif
