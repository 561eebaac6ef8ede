/*
 * fuse_io.c — see fuse_io.h.  The kernel offers FUSE_HANDLE_KILLPRIV_V2 in
 * its INIT request; libfuse 3.14 builds a reply without it.  We remember the
 * INIT request's id when we read it and set the flag in the reply as it goes
 * out.  Likewise FUSE_PASSTHROUGH in the INIT reply, and FOPEN_PASSTHROUGH
 * with a backing id in the OPEN/CREATE reply a worker has armed.  Everything
 * else passes through untouched.
 */
#include "fuse_io.h"
#include "fuse_ring.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Protocol 7.40 words Debian 12's <linux/fuse.h> (7.38) lacks; the values
 * and layouts are the kernel's uapi. */
#define PT_FUSE_PASSTHROUGH_FLAGS2 (1u << (37 - 32)) /* FUSE_PASSTHROUGH, in flags2 */
#define PT_FOPEN_PASSTHROUGH       (1u << 7)
#define PT_MAX_STACK_DEPTH_OFF     (offsetof(struct fuse_init_out, flags2) + sizeof(uint32_t))
#define RING_FUSE_OVER_IO_URING_FLAGS2 (1u << (41 - 32)) /* FUSE_OVER_IO_URING, 7.42 */
#define RING_MIN_READ_BUFFER           8192u             /* the kernel's FUSE_MIN_READ_BUFFER */
#define RING_DEFAULT_MAX_PAGES         32u               /* without FUSE_MAX_PAGES */
struct pt_backing_map {
    int32_t fd;
    uint32_t flags;
    uint64_t padding;
};
#define PT_DEV_IOC_BACKING_OPEN  _IOW(229, 1, struct pt_backing_map)
#define PT_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

static _Atomic uint64_t init_unique; /* the INIT request's id while it is answered */
static atomic_bool init_offers_killpriv_v2;
static atomic_bool init_offers_passthrough;
static atomic_bool want_passthrough;
static atomic_bool passthrough_asked;      /* our INIT reply carried FUSE_PASSTHROUGH */
static atomic_bool init_offers_ring;
static struct fuse_ring *want_ring;        /* set before the loop starts */
static atomic_bool ring_asked;             /* our INIT reply carried FUSE_OVER_IO_URING */
static _Thread_local int reply_backing_id; /* for the next OPEN/CREATE reply */
static void (*after_init)(void *arg);
static void *after_init_arg;
static atomic_bool killpriv_v2;      /* the kernel offered it and we said yes */
static _Thread_local bool kill_suidgid;

/* The fixed part of a request's body, for the opcodes we look at. */
static const void *body(const char *buf, size_t n, size_t want)
{
    if (n < sizeof(struct fuse_in_header) + want)
        return NULL;
    return buf + sizeof(struct fuse_in_header);
}

static void inspect_request(const char *buf, size_t n)
{
    struct fuse_in_header h;
    kill_suidgid = false;
    if (n < sizeof(h))
        return;
    memcpy(&h, buf, sizeof(h));
    const void *b;
    switch (h.opcode) {
    case FUSE_INIT: {
        struct fuse_init_in in;
        /* flags sits in the oldest, shortest form of the struct */
        if (!(b = body(buf, n, offsetof(struct fuse_init_in, flags) + sizeof(in.flags))))
            return;
        memcpy(&in.flags, (const char *)b + offsetof(struct fuse_init_in, flags),
               sizeof(in.flags));
        atomic_store(&init_offers_killpriv_v2, in.flags & FUSE_HANDLE_KILLPRIV_V2);
        /* flags2 counts only with FUSE_INIT_EXT (and a body that long) */
        uint32_t flags2 = 0;
        if ((in.flags & FUSE_INIT_EXT) &&
            (b = body(buf, n, offsetof(struct fuse_init_in, flags2) + sizeof(flags2))))
            memcpy(&flags2, (const char *)b + offsetof(struct fuse_init_in, flags2),
                   sizeof(flags2));
        atomic_store(&init_offers_passthrough, flags2 & PT_FUSE_PASSTHROUGH_FLAGS2);
        atomic_store(&init_offers_ring, flags2 & RING_FUSE_OVER_IO_URING_FLAGS2);
        atomic_store(&init_unique, h.unique);
        break;
    }
    case FUSE_WRITE: {
        struct fuse_write_in in;
        if ((b = body(buf, n, sizeof(in)))) {
            memcpy(&in, b, sizeof(in));
            kill_suidgid = in.write_flags & FUSE_WRITE_KILL_SUIDGID;
        }
        break;
    }
    case FUSE_OPEN: {
        struct fuse_open_in in;
        if ((b = body(buf, n, sizeof(in)))) {
            memcpy(&in, b, sizeof(in));
            kill_suidgid = in.open_flags & FUSE_OPEN_KILL_SUIDGID;
        }
        break;
    }
    case FUSE_SETATTR: {
        struct fuse_setattr_in in;
        if ((b = body(buf, n, sizeof(in)))) {
            memcpy(&in, b, sizeof(in));
            kill_suidgid = in.valid & FATTR_KILL_SUIDGID;
        }
        break;
    }
    default:
        break;
    }
}

void fuse_io_adopt_request(const void *buf, size_t n)
{
    inspect_request(buf, n);
}

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
    (void)userdata;
    ssize_t n = read(fd, buf, len);
    if (n > 0)
        inspect_request(buf, (size_t)n);
    return n;
}

/* INIT reply: FUSE_PASSTHROUGH in flags2 and a stack depth of 1 (SRC must
 * not itself be a stacking fs such as overlayfs; if it is, BACKING_OPEN
 * fails with ELOOP and opens fall back).  Only with FUSE_INIT_EXT, without
 * the writeback cache, and if libfuse's reply is long enough to hold it. */
static void ask_passthrough(struct iovec *arg)
{
    if (!atomic_load(&want_passthrough) || !atomic_load(&init_offers_passthrough) ||
        arg->iov_len < PT_MAX_STACK_DEPTH_OFF + sizeof(uint32_t))
        return;
    char *b = arg->iov_base;
    uint32_t flags, flags2, depth = 1;
    memcpy(&flags, b + offsetof(struct fuse_init_out, flags), sizeof(flags));
    if (!(flags & FUSE_INIT_EXT) || (flags & FUSE_WRITEBACK_CACHE))
        return;
    memcpy(&flags2, b + offsetof(struct fuse_init_out, flags2), sizeof(flags2));
    flags2 |= PT_FUSE_PASSTHROUGH_FLAGS2;
    memcpy(b + offsetof(struct fuse_init_out, flags2), &flags2, sizeof(flags2));
    memcpy(b + PT_MAX_STACK_DEPTH_OFF, &depth, sizeof(depth));
    atomic_store(&passthrough_asked, true);
}

/* INIT reply: FUSE_OVER_IO_URING in flags2, if the kernel offers it and
 * the largest request it will send (by the max_write and max_pages of this
 * very reply) fits an entry's payload.  The kernel sizes the entries'
 * payload the same way and refuses smaller ones. */
static void ask_ring(struct iovec *arg)
{
    if (!want_ring || !atomic_load(&init_offers_ring) ||
        arg->iov_len < offsetof(struct fuse_init_out, flags2) + sizeof(uint32_t))
        return;
    char *b = arg->iov_base;
    uint32_t flags, flags2, max_write;
    uint16_t max_pages = 0;
    memcpy(&flags, b + offsetof(struct fuse_init_out, flags), sizeof(flags));
    if (!(flags & FUSE_INIT_EXT))
        return;
    memcpy(&max_write, b + offsetof(struct fuse_init_out, max_write), sizeof(max_write));
    if (flags & FUSE_MAX_PAGES)
        memcpy(&max_pages, b + offsetof(struct fuse_init_out, max_pages), sizeof(max_pages));
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t need = RING_MIN_READ_BUFFER;
    if (max_write > need)
        need = max_write;
    size_t pages = (flags & FUSE_MAX_PAGES) ? max_pages : RING_DEFAULT_MAX_PAGES;
    if (pages * page > need)
        need = pages * page;
    if (need > fuse_ring_payload(want_ring))
        return;
    memcpy(&flags2, b + offsetof(struct fuse_init_out, flags2), sizeof(flags2));
    flags2 |= RING_FUSE_OVER_IO_URING_FLAGS2;
    memcpy(b + offsetof(struct fuse_init_out, flags2), &flags2, sizeof(flags2));
    atomic_store(&ring_asked, true);
}

/* OPEN/CREATE reply: fuse_open_out ends the reply's one argument (alone for
 * OPEN, after fuse_entry_out for CREATE); its padding is backing_id. */
static void mark_open_reply(struct iovec *iov, int count, int backing_id)
{
    struct fuse_out_header h;
    struct fuse_open_out out;
    if (count != 2 || iov[0].iov_len < sizeof(h) || iov[1].iov_len < sizeof(out))
        return;
    memcpy(&h, iov[0].iov_base, sizeof(h));
    if (h.error != 0)
        return;
    char *p = (char *)iov[1].iov_base + iov[1].iov_len - sizeof(out);
    memcpy(&out, p, sizeof(out));
    out.open_flags |= PT_FOPEN_PASSTHROUGH;
    memcpy(p + offsetof(struct fuse_open_out, padding), &backing_id, sizeof(backing_id));
    memcpy(p + offsetof(struct fuse_open_out, open_flags), &out.open_flags, sizeof(out.open_flags));
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
    (void)userdata;
    if (reply_backing_id) {
        mark_open_reply(iov, count, reply_backing_id);
        reply_backing_id = 0;
    }
    ssize_t taken;
    if (fuse_ring_take_reply(iov, count, &taken))
        return taken;
    uint64_t want = atomic_load(&init_unique);
    bool init_reply = false;
    if (want && count >= 1 && iov[0].iov_len >= sizeof(struct fuse_out_header)) {
        struct fuse_out_header h;
        memcpy(&h, iov[0].iov_base, sizeof(h));
        size_t flags_end = offsetof(struct fuse_init_out, flags) + sizeof(uint32_t);
        init_reply = h.unique == want;
        if (init_reply && h.error == 0 && count >= 2 && iov[1].iov_len >= flags_end &&
            atomic_load(&init_offers_killpriv_v2)) {
            char *flags = (char *)iov[1].iov_base + offsetof(struct fuse_init_out, flags);
            uint32_t f;
            memcpy(&f, flags, sizeof(f));
            f |= FUSE_HANDLE_KILLPRIV_V2;
            memcpy(flags, &f, sizeof(f));
            atomic_store(&killpriv_v2, true);
        }
        if (init_reply && h.error == 0 && count >= 2) {
            ask_passthrough(&iov[1]);
            ask_ring(&iov[1]);
        }
        if (init_reply)
            atomic_store(&init_unique, 0);
    }
    ssize_t n = writev(fd, iov, count);
    /* The kernel applies the INIT reply inside this writev: what must come
     * after it (bdi.h) can run now. */
    if (init_reply && n > 0 && atomic_load(&ring_asked))
        fuse_ring_go(want_ring); /* the kernel holds requests back until it has entries */
    if (init_reply && n > 0 && after_init)
        after_init(after_init_arg);
    return n;
}

static ssize_t io_splice_send(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
                              unsigned int flags, void *userdata)
{
    (void)userdata;
    ssize_t taken;
    if (fuse_ring_take_spliced(fdin, len, &taken))
        return taken;
    return splice(fdin, offin, fdout, offout, len, flags);
}

int fuse_io_install(struct fuse_session *se, void (*after_init_fn)(void *arg), void *arg)
{
    after_init = after_init_fn;
    after_init_arg = arg;
    /* No splice_receive: requests must pass through io_read to be seen.
     * splice_send keeps replies with file data zero-copy. */
    static const struct fuse_custom_io io = {
        .read = io_read,
        .writev = io_writev,
        .splice_send = io_splice_send,
    };
    return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

void fuse_io_want_passthrough(bool want)
{
    atomic_store(&want_passthrough, want);
}

void fuse_io_want_ring(struct fuse_ring *ring)
{
    want_ring = ring;
}

bool fuse_io_ring(void)
{
    return atomic_load(&ring_asked) && fuse_ring_active(want_ring);
}

bool fuse_io_passthrough(void)
{
    return atomic_load(&passthrough_asked);
}

int fuse_io_backing_open(struct fuse_session *se, int fd)
{
    struct pt_backing_map map = {.fd = fd};
    int id = ioctl(fuse_session_fd(se), PT_DEV_IOC_BACKING_OPEN, &map);
    return id > 0 ? id : id == 0 ? -EIO : -errno;
}

void fuse_io_backing_close(struct fuse_session *se, int backing_id)
{
    uint32_t id = (uint32_t)backing_id;
    ioctl(fuse_session_fd(se), PT_DEV_IOC_BACKING_CLOSE, &id);
}

void fuse_io_reply_passthrough(int backing_id)
{
    reply_backing_id = backing_id;
}

bool fuse_io_killpriv_v2(void)
{
    return atomic_load(&killpriv_v2);
}

bool fuse_io_kill_suidgid(void)
{
    return kill_suidgid;
}

bool fuse_io_drop_caps(int fd)
{
    if (fremovexattr(fd, "security.capability") == 0)
        return true;
    bool none = errno == ENODATA || errno == EOPNOTSUPP;
    errno = 0;
    return none;
}

bool fuse_io_drop_suidgid(int fd, gid_t caller_gid)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    mode_t mode = st.st_mode & 07777;
    mode_t keep = mode & ~(mode_t)S_ISUID;
    /* As the VFS (setattr_should_drop_sgid): sgid goes if the group may
     * execute, or if the writer is not in the file's group.  We know only
     * the writer's primary group, so a writer in the group through a
     * supplementary one loses the bit too: the safe direction. */
    if ((mode & S_ISGID) && ((mode & S_IXGRP) || caller_gid != st.st_gid))
        keep &= ~(mode_t)S_ISGID;
    if (keep == mode)
        return false;
    if (fchmod(fd, keep) != 0) {
        errno = 0;
        return false;
    }
    return true;
}

bool fuse_io_kill_privs(int fd, bool suidgid, gid_t caller_gid)
{
    fuse_io_drop_caps(fd);
    return suidgid && fuse_io_drop_suidgid(fd, caller_gid);
}
