/*
 * fuse_ring.h — FUSE over io_uring (Linux >= 6.14, protocol 7.42): the
 * kernel hands requests to ring entries that the daemon registered, one
 * queue per CPU, instead of to read() on /dev/fuse; the daemon answers and
 * asks for the next request in one io_uring_enter (COMMIT_AND_FETCH).
 *
 * Why: on the /dev/fuse path each request costs a read() and a writev(),
 * and the request usually wakes a reader on another CPU.  With the ring,
 * a request goes to the queue of the CPU its caller runs on, served by
 * threads pinned there, and the answer and the next fetch share one
 * system call.  Debian 12's libfuse (3.14) has no ring support, so, as for
 * passthrough (fuse_io.h), we speak the few words of it ourselves and hand
 * each request to libfuse's ordinary dispatcher (fuse_session_process_buf).
 *
 * Shape: for each possible CPU, `per_queue` threads pinned to it (one if
 * the CPU is offline: the kernel wants every possible CPU's queue to have
 * an entry before it uses the ring), each with its own io_uring and one
 * ring entry.  The kernel gives a new
 * request to the entry that became free last, so a serial caller keeps
 * meeting the same, cache-hot thread; a thread stuck in a slow request
 * (fsync, a cold read) holds only its own entry, and the queue's other
 * threads go on.  So no handler ever waits for a pool.
 *
 * What stays on /dev/fuse: INIT (before the ring exists), FORGET,
 * INTERRUPT and our notifications; fuse_loop's readers keep serving it.
 *
 * Invariant: a ring thread answers its request before it fetches the next,
 * on its own thread (every wsync handler replies before it returns), so
 * the reply that fuse_io's writev hook sees on a ring thread, with that
 * thread's request id, belongs to that thread's entry.
 */
#ifndef WSYNC_FUSE_RING_H
#define WSYNC_FUSE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct fuse_session;
struct fuse_ring;

/* The kernel's switch (/sys/module/fuse/parameters/enable_uring): 1 on,
 * 0 off, -ENOENT if this kernel has no FUSE over io_uring. */
int fuse_ring_kernel_enabled(void);

/* Turn the switch on (root only).  It changes nothing for other FUSE
 * daemons: the kernel then offers the ring, and only a daemon that asks
 * for it in its INIT reply gets it.  0 or -errno. */
int fuse_ring_kernel_enable(void);

/* Start the ring threads for `se`, before the session's INIT is answered:
 * each sets up its io_uring and buffers (payload capacity `payload`
 * bytes) and waits.  NULL, with errno, if any of them could not; nothing
 * is then left running. */
struct fuse_ring *fuse_ring_prepare(struct fuse_session *se, unsigned per_queue, size_t payload);

/* The payload capacity of each entry (the INIT reply may ask for the ring
 * only if the kernel's largest request fits). */
size_t fuse_ring_payload(const struct fuse_ring *r);

/* The kernel took an INIT reply asking for the ring: register the entries
 * and serve.  Until every queue has an entry the kernel holds requests
 * back, so this is called at once, from the thread that sent the reply. */
void fuse_ring_go(struct fuse_ring *r);

/* True once fuse_ring_go ran and no thread failed to register since. */
bool fuse_ring_active(const struct fuse_ring *r);

/* Stop the threads (after the session has ended: the kernel fails the
 * entries then) and free everything.  NULL is fine. */
void fuse_ring_stop(struct fuse_ring *r);

/* For fuse_io's device hooks.  If the calling thread is a ring thread
 * answering the request this reply (`iov`, `count`) is for, copy it into
 * the entry and return true with *res the bytes "written".  Else false:
 * the reply goes to /dev/fuse as usual. */
bool fuse_ring_take_reply(const struct iovec *iov, int count, ssize_t *res);

/* The same for a reply that libfuse spliced into the pipe `pipe_fd`
 * (`len` bytes, header first). */
bool fuse_ring_take_spliced(int pipe_fd, size_t len, ssize_t *res);

/* Requests answered through the ring since the start (`wsync status`). */
unsigned long long fuse_ring_served(void);

#endif
