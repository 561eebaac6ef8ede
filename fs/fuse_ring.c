/*
 * fuse_ring.c — see fuse_ring.h.
 *
 * One entry's memory: a header block the kernel fills (fuse_in_header,
 * the opcode's fixed argument, the entry's commit id and payload size) and
 * a payload buffer.  libfuse wants a request as one contiguous buffer
 * (header, fixed argument, payload), so we rebuild it: for WRITE in place,
 * in the PREFIX bytes kept free in front of the payload (no copy of the
 * data); for everything else in a scratch buffer, because the reply is
 * written into the same payload buffer and a handler may still read its
 * request's names after it replied.
 */
#include "fuse_ring.h"
#include "fuse_io.h"
#include "uring.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

/* Protocol 7.42 words Debian 12's <linux/fuse.h> lacks; the values and
 * layouts are the kernel's uapi. */
#define RING_CMD_REGISTER         1u
#define RING_CMD_COMMIT_AND_FETCH 2u
#define RING_HEADER_SZ            128 /* in_out: fuse_in_header / fuse_out_header */
#define RING_OP_SZ                128 /* op_in: the opcode's fixed argument */
struct ring_ent_in_out {
    uint64_t flags;
    uint64_t commit_id;  /* the request's id, echoed in the commit */
    uint32_t payload_sz; /* bytes valid in the payload, either way */
    uint32_t padding;
    uint64_t reserved;
};
struct ring_req_header {
    char in_out[RING_HEADER_SZ];
    char op_in[RING_OP_SZ];
    struct ring_ent_in_out ent;
};
struct ring_cmd_req { /* in the SQE's 80-byte command area */
    uint64_t flags;
    uint64_t commit_id;
    uint16_t qid;
    uint8_t padding[6];
};

#define ENABLE_PARAM "/sys/module/fuse/parameters/enable_uring"
#define PREFIX       256 /* room for fuse_in_header + the largest fixed argument */
#define UD_ENTRY     1   /* user_data of the entry's commands */
#define UD_STOP      2   /* user_data of the poll on the stop eventfd */

struct ring_thread {
    struct fuse_ring *r;
    unsigned qid;
    pthread_t tid;
    bool started;
    struct uring u;
    struct ring_req_header *hdr; /* page-aligned: the kernel pins it */
    char *mem;                   /* PREFIX + payload */
    char *scratch;               /* PREFIX + payload, for rebuilt requests */
    struct iovec iov[2];         /* registered: header block, payload */
    uint64_t commit_id;          /* the request being answered */
    unsigned last_cmd;           /* to send again if the kernel says EAGAIN */
    atomic_bool serving;         /* our entry is registered, or being registered */
    bool replied;
};

struct fuse_ring {
    struct fuse_session *se;
    size_t payload;
    unsigned nthreads;
    int stop_fd; /* eventfd: readable once the ring is stopping */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned nready, nfailed;
    int first_err;
    bool go, stopping;
    atomic_bool active;
    struct ring_thread t[];
};

static _Thread_local struct ring_thread *cur; /* this ring thread, while it handles */
static _Atomic unsigned long long n_served;

int fuse_ring_kernel_enabled(void)
{
    char c = 0;
    int fd = open(ENABLE_PARAM, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -ENOENT;
    ssize_t n = read(fd, &c, 1);
    close(fd);
    return n == 1 && (c == 'Y' || c == '1');
}

int fuse_ring_kernel_enable(void)
{
    int fd = open(ENABLE_PARAM, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ENOENT : -errno;
    ssize_t n = write(fd, "Y", 1);
    int err = n == 1 ? 0 : -errno;
    close(fd);
    return err;
}

size_t fuse_ring_payload(const struct fuse_ring *r)
{
    return r->payload;
}

bool fuse_ring_active(const struct fuse_ring *r)
{
    return r && atomic_load(&r->active);
}

unsigned long long fuse_ring_served(void)
{
    return n_served;
}

static void *map(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static int thread_setup(struct ring_thread *t)
{
    /* one entry and the stop poll; CQ twice that by default */
    int err = uring_init(&t->u, 2);
    if (err)
        return err;
    size_t len = PREFIX + t->r->payload;
    t->hdr = map(sizeof(*t->hdr));
    t->mem = map(len);
    t->scratch = map(len);
    if (!t->hdr || !t->mem || !t->scratch)
        return -ENOMEM;
    t->iov[0] = (struct iovec){t->hdr, sizeof(*t->hdr)};
    t->iov[1] = (struct iovec){t->mem + PREFIX, t->r->payload};
    return 0;
}

static void thread_free(struct ring_thread *t)
{
    uring_exit(&t->u);
    if (t->hdr)
        munmap(t->hdr, sizeof(*t->hdr));
    size_t len = PREFIX + t->r->payload;
    if (t->mem)
        munmap(t->mem, len);
    if (t->scratch)
        munmap(t->scratch, len);
}

static bool queue_cmd(struct ring_thread *t, unsigned cmd)
{
    struct io_uring_sqe *sqe = uring_get_sqe(&t->u);
    if (!sqe)
        return false;
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = fuse_session_fd(t->r->se);
    sqe->cmd_op = cmd;
    sqe->user_data = UD_ENTRY;
    t->last_cmd = cmd;
    if (cmd == RING_CMD_REGISTER) {
        sqe->addr = (uint64_t)(uintptr_t)t->iov;
        sqe->len = 2;
    }
    struct ring_cmd_req req = {.qid = (uint16_t)t->qid,
                               .commit_id = cmd == RING_CMD_REGISTER ? 0 : t->commit_id};
    memcpy(sqe->cmd, &req, sizeof(req));
    return true;
}

static bool queue_stop_poll(struct ring_thread *t)
{
    struct io_uring_sqe *sqe = uring_get_sqe(&t->u);
    if (!sqe)
        return false;
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->fd = t->r->stop_fd;
    sqe->poll32_events = POLLIN;
    sqe->user_data = UD_STOP;
    return true;
}

/* Rebuild the request the kernel put in the entry as libfuse's one
 * buffer; NULL if the entry does not hold a well-formed request. */
static char *rebuild(struct ring_thread *t, size_t *len)
{
    struct fuse_in_header h;
    struct ring_ent_in_out e;
    memcpy(&h, t->hdr->in_out, sizeof(h));
    memcpy(&e, &t->hdr->ent, sizeof(e));
    t->commit_id = e.commit_id;
    size_t payload = e.payload_sz;
    if (payload > t->r->payload || h.len < sizeof(h) + payload ||
        h.len - sizeof(h) - payload > RING_OP_SZ)
        return NULL;
    size_t op = h.len - sizeof(h) - payload;
    char *start;
    if (h.opcode == FUSE_WRITE) {
        start = t->mem + PREFIX - op - sizeof(h);
    } else {
        start = t->scratch;
        memcpy(start + sizeof(h) + op, t->mem + PREFIX, payload);
    }
    memcpy(start, &h, sizeof(h));
    memcpy(start + sizeof(h), t->hdr->op_in, op);
    *len = h.len;
    return start;
}

static void set_reply(struct ring_thread *t, const struct fuse_out_header *h, uint32_t payload)
{
    memcpy(t->hdr->in_out, h, sizeof(*h));
    t->hdr->ent.payload_sz = payload;
    t->replied = true;
}

static void handle(struct ring_thread *t)
{
    size_t len = 0;
    char *req = rebuild(t, &len);
    t->replied = false;
    if (req) {
        struct fuse_buf buf = {.mem = req, .size = len};
        fuse_io_adopt_request(req, len);
        cur = t;
        fuse_session_process_buf(t->r->se, &buf);
        cur = NULL;
        n_served++;
    }
    if (!t->replied) {
        /* Malformed, or a handler that did not answer: the entry must be
         * committed all the same, or it is lost to the queue. */
        struct fuse_out_header h = {.len = sizeof(h), .error = -EIO, .unique = t->commit_id};
        set_reply(t, &h, 0);
    }
}

bool fuse_ring_take_reply(const struct iovec *iov, int count, ssize_t *res)
{
    struct ring_thread *t = cur;
    struct fuse_out_header h;
    if (!t || t->replied || count < 1 || iov[0].iov_len != sizeof(h))
        return false;
    memcpy(&h, iov[0].iov_base, sizeof(h));
    if (h.unique != t->commit_id)
        return false; /* a notification, or not this entry's reply */
    size_t n = 0;
    for (int i = 1; i < count; i++)
        n += iov[i].iov_len;
    if (n > t->r->payload) {
        h.error = -EIO;
        n = 0;
    } else {
        char *p = t->mem + PREFIX;
        for (int i = 1; i < count; i++) {
            memmove(p, iov[i].iov_base, iov[i].iov_len);
            p += iov[i].iov_len;
        }
    }
    set_reply(t, &h, (uint32_t)n);
    *res = (ssize_t)(sizeof(h) + n);
    return true;
}

static bool read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

bool fuse_ring_take_spliced(int pipe_fd, size_t len, ssize_t *res)
{
    struct ring_thread *t = cur;
    struct fuse_out_header h;
    if (!t || t->replied || len < sizeof(h) || len - sizeof(h) > t->r->payload)
        return false;
    if (!read_full(pipe_fd, &h, sizeof(h)) || !read_full(pipe_fd, t->mem + PREFIX, len - sizeof(h))) {
        *res = -EIO;
        return true;
    }
    set_reply(t, &h, (uint32_t)(len - sizeof(h)));
    *res = (ssize_t)len;
    return true;
}

static void pin_to_cpu(unsigned cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    /* Best effort: in a cpuset that lacks this CPU the thread still
     * serves its queue, from wherever it runs. */
    sched_setaffinity(0, sizeof(set), &set);
}

/* This thread's entry is gone while the mount lives.  If it was the last
 * of its queue, requests made on that CPU would wait forever: end the
 * daemon the ordinary way (SIGTERM: flush, then unmount) rather than leave
 * a mount that hangs. */
static void entry_lost(struct ring_thread *t, int err)
{
    struct fuse_ring *r = t->r;
    pthread_mutex_lock(&r->lock);
    bool last = true;
    for (unsigned i = 0; i < r->nthreads; i++)
        if (&r->t[i] != t && r->t[i].qid == t->qid && atomic_load(&r->t[i].serving))
            last = false;
    atomic_store(&t->serving, false);
    bool stopping = r->stopping;
    pthread_mutex_unlock(&r->lock);
    if (stopping)
        return;
    fprintf(stderr, "wsync: FUSE ring queue %u lost an entry: %s%s\n", t->qid, strerror(-err),
            last ? "; it was the queue's last, so the mount is ending" : "");
    if (last)
        kill(getpid(), SIGTERM);
}

/* Serve the entry until the kernel ends it (unmount) or we stop. */
static void serve(struct ring_thread *t)
{
    if (!queue_cmd(t, RING_CMD_REGISTER) || !queue_stop_poll(t))
        return;
    atomic_store(&t->serving, true);
    for (;;) {
        int err = uring_enter(&t->u, 1);
        if (err == -EINTR)
            continue;
        if (err) {
            entry_lost(t, err);
            return;
        }
        struct io_uring_cqe *cqe;
        while ((cqe = uring_peek_cqe(&t->u))) {
            uint64_t ud = cqe->user_data;
            int res = cqe->res;
            uring_cqe_seen(&t->u);
            if (ud == UD_STOP)
                return;
            if (res == -EAGAIN || res == -EINTR) {
                /* e.g. REGISTER before the kernel finished INIT: again */
                queue_cmd(t, t->last_cmd);
                continue;
            }
            if (res == -ENOTCONN || res == -ECONNABORTED)
                return; /* the mount is gone */
            if (res < 0 && t->last_cmd == RING_CMD_REGISTER) {
                /* The kernel refused the entry and went back to /dev/fuse
                 * for this connection (it does so on any REGISTER error). */
                fprintf(stderr, "wsync: FUSE ring queue %u: %s; serving through /dev/fuse\n",
                        t->qid, strerror(-res));
                atomic_store(&t->serving, false);
                atomic_store(&t->r->active, false);
                return;
            }
            if (res < 0) {
                entry_lost(t, res);
                return;
            }
            handle(t);
            queue_cmd(t, RING_CMD_COMMIT_AND_FETCH);
        }
    }
}

static void *thread_main(void *arg)
{
    struct ring_thread *t = arg;
    struct fuse_ring *r = t->r;
    char name[16];
    snprintf(name, sizeof(name), "wsync-ring%u", t->qid);
    pthread_setname_np(pthread_self(), name); /* for top -H and perf */
    pin_to_cpu(t->qid);
    int err = thread_setup(t);

    pthread_mutex_lock(&r->lock);
    r->nready++;
    if (err) {
        r->nfailed++;
        if (!r->first_err)
            r->first_err = err;
    }
    pthread_cond_broadcast(&r->cond);
    while (!err && !r->go && !r->stopping)
        pthread_cond_wait(&r->cond, &r->lock);
    bool go = !err && r->go && !r->stopping;
    pthread_mutex_unlock(&r->lock);

    if (go)
        serve(t);
    return NULL;
}

static void join_and_free(struct fuse_ring *r)
{
    for (unsigned i = 0; i < r->nthreads; i++) {
        if (r->t[i].started)
            pthread_join(r->t[i].tid, NULL);
        thread_free(&r->t[i]);
    }
    if (r->stop_fd >= 0)
        close(r->stop_fd);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Read a kernel CPU list ("0-3,8,10-11") into `set`; the count, or -1. */
static int read_cpu_list(const char *path, cpu_set_t *set)
{
    CPU_ZERO(set);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[4096];
    bool ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    for (char *p = line; *p && *p != '\n';) {
        char *end;
        unsigned long a = strtoul(p, &end, 10), b = a;
        if (end == p)
            return -1;
        if (*end == '-')
            b = strtoul(end + 1, &end, 10);
        for (unsigned long c = a; c <= b && c < CPU_SETSIZE; c++)
            CPU_SET((int)c, set);
        p = *end == ',' ? end + 1 : end;
    }
    return CPU_COUNT(set);
}

struct fuse_ring *fuse_ring_prepare(struct fuse_session *se, unsigned per_queue, size_t payload)
{
    /* The kernel makes one queue per *possible* CPU (a VM may list
     * hot-plug slots it does not have) and holds every request back until
     * each queue has an entry.  CPUs that are not online get one thread,
     * just to make the ring ready. */
    cpu_set_t possible, online;
    int nq = read_cpu_list("/sys/devices/system/cpu/possible", &possible);
    if (nq < 1) {
        nq = get_nprocs_conf();
        CPU_ZERO(&possible);
        for (int c = 0; c < nq && c < CPU_SETSIZE; c++)
            CPU_SET(c, &possible);
    }
    if (read_cpu_list("/sys/devices/system/cpu/online", &online) < 1)
        online = possible;
    if (nq < 1 || per_queue < 1 || nq > CPU_SETSIZE) {
        errno = EINVAL;
        return NULL;
    }
    unsigned n = 0;
    for (int q = 0; q < nq; q++)
        n += CPU_ISSET(q, &online) ? per_queue : 1;
    struct fuse_ring *r = calloc(1, sizeof(*r) + n * sizeof(r->t[0]));
    if (!r)
        return NULL;
    r->se = se;
    r->payload = payload;
    r->nthreads = n;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->stop_fd = eventfd(0, EFD_CLOEXEC);
    int err = r->stop_fd < 0 ? -errno : 0;
    for (unsigned q = 0, i = 0; q < (unsigned)nq; q++) {
        unsigned k = CPU_ISSET((int)q, &online) ? per_queue : 1;
        for (unsigned j = 0; j < k; j++, i++) {
            struct ring_thread *t = &r->t[i];
            t->r = r;
            t->qid = q;
            t->u.fd = -1;
        }
    }
    unsigned started = 0;
    for (unsigned i = 0; i < n && !err; i++) {
        int e = pthread_create(&r->t[i].tid, NULL, thread_main, &r->t[i]);
        if (e) {
            err = -e;
            break;
        }
        r->t[i].started = true;
        started++;
    }
    pthread_mutex_lock(&r->lock);
    while (r->nready < started)
        pthread_cond_wait(&r->cond, &r->lock);
    if (!err && r->nfailed)
        err = r->first_err;
    if (err) {
        r->stopping = true;
        pthread_cond_broadcast(&r->cond);
    }
    pthread_mutex_unlock(&r->lock);
    if (err) {
        join_and_free(r);
        errno = -err;
        return NULL;
    }
    return r;
}

void fuse_ring_go(struct fuse_ring *r)
{
    pthread_mutex_lock(&r->lock);
    r->go = true;
    atomic_store(&r->active, true);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

void fuse_ring_stop(struct fuse_ring *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stopping = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    uint64_t one = 1;
    if (r->stop_fd >= 0 && write(r->stop_fd, &one, sizeof(one)) != sizeof(one))
        perror("wsync: FUSE ring stop");
    join_and_free(r);
}
