/*
 * uring.h — the little of io_uring that fuse_ring.c needs, on the raw
 * system calls: a ring of 128-byte SQEs (IORING_SETUP_SQE128, the size
 * FUSE's URING_CMD asks for), one submitter thread, and a blocking wait
 * for completions.  wsync's stack has no liburing; the kernel interface is
 * small and stable enough to speak directly.
 *
 * Memory ordering follows the kernel's contract: the SQ tail is published
 * with a release store after the SQE is written, and the CQ tail is read
 * with an acquire load before its CQEs are.
 */
#ifndef WSYNC_URING_H
#define WSYNC_URING_H

#include <linux/io_uring.h>
#include <stdbool.h>
#include <stddef.h>

struct uring {
    int fd;
    unsigned sq_entries;
    /* SQ ring */
    void *sq_map;
    size_t sq_map_len;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    struct io_uring_sqe *sqes; /* 128 bytes each: index with uring_sqe() */
    size_t sqes_len;
    unsigned sq_pending; /* SQEs queued since the last enter */
    /* CQ ring */
    void *cq_map;
    size_t cq_map_len;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_cqe *cqes;
};

/* Set up a ring of `entries` 128-byte SQEs.  0 or -errno (-ENOSYS: no
 * io_uring; -EPERM: io_uring_disabled by sysctl). */
int uring_init(struct uring *u, unsigned entries);
void uring_exit(struct uring *u);

/* A zeroed SQE to fill, queued for the next uring_enter; NULL if the SQ
 * ring is full. */
struct io_uring_sqe *uring_get_sqe(struct uring *u);

/* Submit what is queued and wait until at least `wait` completions are
 * there.  0 or -errno (-EINTR: interrupted by a signal, call again). */
int uring_enter(struct uring *u, unsigned wait);

/* The oldest unconsumed completion, or NULL; uring_cqe_seen consumes it. */
struct io_uring_cqe *uring_peek_cqe(struct uring *u);
void uring_cqe_seen(struct uring *u);

#endif
