/*
 * fuse_loop.h — the mount's request loop: one hot thread answers most
 * requests itself; requests that may block for long go to a small pool.
 *
 * Why not libfuse's multi-threaded loop: its workers all wait in read() on
 * /dev/fuse, and the kernel hands each request to the thread that has
 * waited longest.  A serial client (cp -R, tar, a compiler writing its
 * outputs, git) therefore wakes a different, cache-cold thread for every
 * request, often on the other core.  Measured on this kind of machine, one
 * thread took 2.7 s where the pool took 4.5 s to copy a tree in, and 2.6 s
 * against 3.8 s for 10k creates (docs/benchmarks.md).
 *
 * Which requests leave the hot thread (fuse_loop_pooled): those that can
 * wait long on the disk or on another process — FSYNC, FSYNCDIR,
 * FALLOCATE, COPY_FILE_RANGE, LSEEK, and READ and WRITE of more than
 * 128 KiB.  Smaller READs and WRITEs stay: a page-cache copy costs less
 * than waking a pool thread.  A small READ whose pages are not cached is
 * handed on by its handler (fuse_loop_defer), so a cold disk read never
 * holds up the metadata requests behind it.  Metadata requests (LOOKUP,
 * GETATTR, CREATE, UNLINK, RENAME, OPEN, RELEASE, READDIR...) stay: they
 * are short, and they are what serial clients send.
 *
 * Invariant: no handler waits for another FUSE request to be answered, and
 * the hot thread never waits for the pool, so one hot thread and a fixed
 * pool cannot deadlock.
 */
#ifndef WSYNC_FUSE_LOOP_H
#define WSYNC_FUSE_LOOP_H

#include <stdbool.h>
#include <stddef.h>

struct fuse_session;

/* Serve `se` until it is unmounted or fuse_session_exit() is called.  The
 * pool grows on demand up to `pool_threads` (at least 1).  Returns 0 or
 * -errno, as fuse_session_loop_mt.  Requests already handed to the pool
 * are answered before it returns. */
int fuse_loop_run(struct fuse_session *se, unsigned pool_threads);

/* True if the raw request `req` (`n` bytes) goes to the pool (see above). */
bool fuse_loop_pooled(const void *req, size_t n);

/* Requests handed to the pool, and handlers' work deferred to it, since
 * the start (`wsync status`). */
void fuse_loop_get_stats(unsigned long long *pooled, unsigned long long *deferred);

/* True on the loop's hot thread. */
bool fuse_loop_on_hot_thread(void);

/* From a handler on the hot thread: run fn(arg) on a pool thread, which
 * must answer the handler's request.  0, or -errno (not on the hot
 * thread, no memory, no worker): the caller then does the work itself. */
int fuse_loop_defer(void (*fn)(void *arg), void *arg);

#endif
