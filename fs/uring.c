/*
 * uring.c — see uring.h.
 */
#include "uring.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SQE_SIZE 128 /* IORING_SETUP_SQE128 */

static int sys_setup(unsigned entries, struct io_uring_params *p)
{
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned submit, unsigned wait, unsigned flags)
{
    return (int)syscall(__NR_io_uring_enter, fd, submit, wait, flags, NULL, 0);
}

int uring_init(struct uring *u, unsigned entries)
{
    memset(u, 0, sizeof(*u));
    struct io_uring_params p = {.flags = IORING_SETUP_SQE128};
    u->fd = sys_setup(entries, &p);
    if (u->fd < 0)
        return -errno;
    u->sq_entries = p.sq_entries;
    u->sq_map_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    u->cq_map_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    u->sqes_len = p.sq_entries * SQE_SIZE;
    int err;
    u->sq_map = mmap(NULL, u->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
                     IORING_OFF_SQ_RING);
    if (u->sq_map == MAP_FAILED)
        goto fail;
    u->cq_map = mmap(NULL, u->cq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
                     IORING_OFF_CQ_RING);
    if (u->cq_map == MAP_FAILED)
        goto fail;
    u->sqes = mmap(NULL, u->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
                   IORING_OFF_SQES);
    if (u->sqes == MAP_FAILED)
        goto fail;
    char *sq = u->sq_map, *cq = u->cq_map;
    u->sq_head = (unsigned *)(sq + p.sq_off.head);
    u->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    u->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    u->sq_array = (unsigned *)(sq + p.sq_off.array);
    u->cq_head = (unsigned *)(cq + p.cq_off.head);
    u->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    u->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    u->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    return 0;
fail:
    err = -errno;
    uring_exit(u);
    return err;
}

void uring_exit(struct uring *u)
{
    if (u->sqes && u->sqes != MAP_FAILED)
        munmap(u->sqes, u->sqes_len);
    if (u->cq_map && u->cq_map != MAP_FAILED)
        munmap(u->cq_map, u->cq_map_len);
    if (u->sq_map && u->sq_map != MAP_FAILED)
        munmap(u->sq_map, u->sq_map_len);
    if (u->fd >= 0)
        close(u->fd);
    memset(u, 0, sizeof(*u));
    u->fd = -1;
}

struct io_uring_sqe *uring_get_sqe(struct uring *u)
{
    unsigned head = __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
    unsigned tail = *u->sq_tail + u->sq_pending;
    if (tail - head >= u->sq_entries)
        return NULL;
    unsigned idx = tail & *u->sq_mask;
    struct io_uring_sqe *sqe = (struct io_uring_sqe *)((char *)u->sqes + (size_t)idx * SQE_SIZE);
    memset(sqe, 0, SQE_SIZE);
    u->sq_array[idx] = idx;
    u->sq_pending++; /* published by uring_enter, once the caller filled it */
    return sqe;
}

int uring_enter(struct uring *u, unsigned wait)
{
    if (u->sq_pending) {
        /* the kernel reads the SQEs as soon as it sees the new tail */
        __atomic_store_n(u->sq_tail, *u->sq_tail + u->sq_pending, __ATOMIC_RELEASE);
        u->sq_pending = 0;
    }
    /* Everything published and not yet consumed, including SQEs an
     * interrupted call left behind. */
    unsigned submit = *u->sq_tail - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
    int r = sys_enter(u->fd, submit, wait, wait ? IORING_ENTER_GETEVENTS : 0);
    return r < 0 ? -errno : 0;
}

struct io_uring_cqe *uring_peek_cqe(struct uring *u)
{
    unsigned head = *u->cq_head;
    if (head == __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE))
        return NULL;
    return &u->cqes[head & *u->cq_mask];
}

void uring_cqe_seen(struct uring *u)
{
    __atomic_store_n(u->cq_head, *u->cq_head + 1, __ATOMIC_RELEASE);
}
