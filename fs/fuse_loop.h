/*
 * fuse_loop.h — the mount's request loop: a few hot readers (two, in wsync)
 * answer most requests themselves; requests that may block for long go to
 * a small pool.
 *
 * Why not libfuse's multi-threaded loop: its workers (up to 16) all wait in
 * read() on /dev/fuse, and the kernel hands each request to the thread that
 * has waited longest.  A serial client (cp -R, tar, a compiler writing its
 * outputs, git) therefore wakes a different, cache-cold thread for every
 * request.  Measured on this kind of machine: copy-in of a source tree
 * 2.5 s against 4.3 s, git add 5.2 s against 10.5 s (docs/benchmarks.md).
 *
 * Why two readers and not one: with a single reader, a serial writer and
 * the reader take turns on one core; 4k random writes through the daemon
 * fell to 0.3-0.7x of libfuse's pool, and with two readers came back to
 * 0.85-1x, with the other workloads unchanged.
 *
 * Which requests leave the readers (fuse_loop_pooled): those that can
 * wait long on the disk or on another process — FSYNC, FSYNCDIR,
 * FALLOCATE, COPY_FILE_RANGE, LSEEK, and READ and WRITE of more than
 * 128 KiB.  Smaller READs and WRITEs stay: a page-cache copy costs less
 * than waking a pool thread, and so did a small cold read (the other
 * reader goes on meanwhile; handing cold reads on made `cat` of every file
 * of a tree 1.5x slower).  Metadata requests (LOOKUP,
 * GETATTR, CREATE, UNLINK, RENAME, OPEN, RELEASE, READDIR...) stay: they
 * are short, and they are what serial clients send.
 *
 * Invariant: no handler waits for another FUSE request to be answered, and
 * the readers never wait for the pool, so the readers and a fixed pool
 * cannot deadlock.
 */
#ifndef WSYNC_FUSE_LOOP_H
#define WSYNC_FUSE_LOOP_H

#include <stdbool.h>
#include <stddef.h>

struct fuse_session;

/* Serve `se` with `readers` threads (this one and readers - 1 more)
 * until it is unmounted or fuse_session_exit() is called.  The pool grows
 * on demand up to `pool_threads` (at least 1).  Returns 0 or
 * -errno, as fuse_session_loop_mt.  Requests already handed to the pool
 * are answered before it returns. */
int fuse_loop_run(struct fuse_session *se, unsigned pool_threads, unsigned readers);

/* True if the raw request `req` (`n` bytes) goes to the pool (see above). */
bool fuse_loop_pooled(const void *req, size_t n);

/* Requests handed to the pool since the start (`wsync status`). */
void fuse_loop_get_stats(unsigned long long *pooled);

#endif
