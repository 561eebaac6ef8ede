/*
 * fuse_io.h — wsync's own read/writev on /dev/fuse, to speak the words of
 * the FUSE protocol that Debian 12's libfuse (3.14) cannot: the
 * FUSE_HANDLE_KILLPRIV_V2 capability, and kernel passthrough (at the end).
 *
 * Without it the kernel asks the daemon for `security.capability` (a
 * GETXATTR round trip) before *every* write(2), to decide whether the write
 * must clear suid/sgid bits and file capabilities.  With it the kernel asks
 * once per inode and leaves the clearing to us: each request that must clear
 * privileges carries a flag (FUSE_WRITE_KILL_SUIDGID, FUSE_OPEN_KILL_SUIDGID,
 * FATTR_KILL_SUIDGID), which this layer reads off the raw request for the
 * worker thread that is about to handle it.
 *
 * Invariant: a thread reads one request and handles it before reading the
 * next, so a thread-local flag set here at read time belongs to the request
 * that thread is handling.  A request handed to another thread (fuse_loop.h)
 * is adopted there first (fuse_io_adopt_request).
 */
#ifndef WSYNC_FUSE_IO_H
#define WSYNC_FUSE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct fuse_session;

/* Route the session's device I/O through this layer (after
 * fuse_session_mount, before the loop).  after_init (may be NULL) runs
 * once the kernel has taken the INIT reply, on the worker that sent it.
 * 0 or -errno. */
int fuse_io_install(struct fuse_session *se, void (*after_init)(void *arg), void *arg);

/* Set this thread's per-request flags from the raw request in `buf` (`n`
 * bytes), read on another thread, before handling it here. */
void fuse_io_adopt_request(const void *buf, size_t n);
/* True if the kernel agreed to FUSE_HANDLE_KILLPRIV_V2 (after INIT). */
bool fuse_io_killpriv_v2(void);

/* True if the request this thread is handling must clear suid/sgid (the
 * kernel decided: the caller lacks CAP_FSETID). */
bool fuse_io_kill_suidgid(void);

/* Clear what a write, truncate or O_TRUNC open by `fd` must clear: file
 * capabilities always; when `suidgid`, suid, and sgid if the group may
 * execute or the caller (`caller_gid`) is not in the file's group.
 * Best effort, as the kernel's own clearing: errors are ignored.  True if
 * the mode changed: the kernel's cached attributes are then stale (it does
 * not know we cleared the bits) and the caller must invalidate them. */
bool fuse_io_kill_privs(int fd, bool suidgid, gid_t caller_gid);

/* The two halves of fuse_io_kill_privs.  drop_caps: true if the file has
 * no capabilities now (removed, or none there).  drop_suidgid: true if the
 * mode changed. */
bool fuse_io_drop_caps(int fd);
bool fuse_io_drop_suidgid(int fd, gid_t caller_gid);

/* ---- kernel passthrough (Linux >= 6.9, FUSE protocol 7.40) ----
 * Debian 12's headers and libfuse 3.14 predate it, so the few words of it
 * we speak are spelled out in fuse_io.c: the FUSE_PASSTHROUGH flag and
 * max_stack_depth in the INIT reply, FOPEN_PASSTHROUGH and backing_id in
 * an OPEN or CREATE reply, and the BACKING_OPEN/CLOSE ioctls. */

/* Ask for passthrough in the INIT reply (before the loop starts).  It is
 * asked only if the kernel offers it and the reply has no writeback cache
 * (the kernel refuses the two together). */
void fuse_io_want_passthrough(bool want);

/* True if the kernel offered passthrough and our INIT reply asked for it.
 * The kernel may still refuse (CAP_SYS_ADMIN): fuse_io_backing_open says. */
bool fuse_io_passthrough(void);

/* Register `fd` (an open regular file) with the kernel as a backing file.
 * Returns its backing id (> 0) or -errno (-EPERM: not allowed or not
 * negotiated, -ELOOP: the file's fs is stacked too deep, ...). */
int fuse_io_backing_open(struct fuse_session *se, int fd);

/* Drop a backing id; open files that use it keep working. */
void fuse_io_backing_close(struct fuse_session *se, int backing_id);

/* The next OPEN or CREATE reply this thread sends (through fuse_reply_open
 * or fuse_reply_create, right after this call) tells the kernel to pass
 * the file's I/O through to `backing_id`.  0 cancels. */
void fuse_io_reply_passthrough(int backing_id);

/* ---- FUSE over io_uring (Linux >= 6.14, protocol 7.42; fuse_ring.h) ----
 * Ask for the ring in the INIT reply if the kernel offers it, and start
 * `ring` once the kernel took the reply (before the loop starts; NULL: do
 * not ask).  Replies to requests that came through the ring go back to it
 * from this layer's hooks. */
struct fuse_ring;
void fuse_io_want_ring(struct fuse_ring *ring);

/* True if requests are coming through the ring. */
bool fuse_io_ring(void);

#endif
