/*
 * patch_log.c — see patch_log.h.
 *
 * Layout of a log: a fixed header (magic, path length, extent count,
 * inode, final size, mode, mtime, file id), the path, then per extent its
 * offset, length and bytes, and last an XXH3-64 of everything before it.
 * The checksum is what tells a log written whole from one cut short.
 */
#include "patch_log.h"
#include "wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xxhash.h>

static const char MAGIC[8] = "WSPATCH1";

struct log_header {
    char magic[8];
    uint32_t path_len;
    uint32_t next;
    uint64_t ino;
    uint64_t size;
    uint32_t mode;
    uint32_t pad;
    int64_t mtime_ns;
    unsigned char id[CONTENT_ID_SIZE];
};

struct log_extent {
    uint64_t off;
    uint32_t len;
    uint32_t pad;
};

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -ENOSPC;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int patch_log_write(int dirfd, const char *name, const struct patch *p)
{
    size_t path_len = strlen(p->path);
    size_t total = sizeof(struct log_header) + path_len + sizeof(uint64_t);
    for (size_t i = 0; i < p->next; i++)
        total += sizeof(struct log_extent) + p->ext[i].len;
    if (total > PATCH_LOG_MAX_BYTES)
        return -EFBIG;
    unsigned char *buf = malloc(total);
    if (!buf)
        return -ENOMEM;
    struct log_header h = {.path_len = (uint32_t)path_len,
                           .next = (uint32_t)p->next,
                           .ino = p->ino,
                           .size = p->size,
                           .mode = p->mode,
                           .mtime_ns = p->mtime_ns};
    memcpy(h.magic, MAGIC, sizeof(MAGIC));
    memcpy(h.id, p->file_id.b, CONTENT_ID_SIZE);
    size_t at = 0;
    memcpy(buf, &h, sizeof(h));
    at += sizeof(h);
    memcpy(buf + at, p->path, path_len);
    at += path_len;
    for (size_t i = 0; i < p->next; i++) {
        struct log_extent e = {.off = p->ext[i].off, .len = p->ext[i].len};
        memcpy(buf + at, &e, sizeof(e));
        at += sizeof(e);
        memcpy(buf + at, p->ext[i].data, e.len);
        at += e.len;
    }
    uint64_t sum = XXH3_64bits(buf, at);
    memcpy(buf + at, &sum, sizeof(sum));
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    int r = fd < 0 ? -errno : write_all(fd, buf, total);
    if (fd >= 0 && close(fd) < 0 && !r)
        r = -errno;
    free(buf);
    return r;
}

void patch_release(struct patch *p)
{
    free(p->path);
    free(p->ext);
    free(p->owned);
    memset(p, 0, sizeof(*p));
}

/* Parse a whole log whose checksum has been checked. */
static int parse(unsigned char *buf, size_t len, struct patch *out)
{
    struct log_header h;
    if (len < sizeof(h))
        return -EBADMSG;
    memcpy(&h, buf, sizeof(h));
    size_t at = sizeof(h);
    if (memcmp(h.magic, MAGIC, sizeof(MAGIC)) || h.path_len == 0 || h.path_len > WIRE_MAX_PATH ||
        h.path_len > len - at)
        return -EBADMSG;
    out->path = strndup((char *)buf + at, h.path_len);
    if (!out->path)
        return -ENOMEM;
    at += h.path_len;
    char err[300];
    if (strlen(out->path) != h.path_len || wire_path_check(out->path, err, sizeof(err)))
        return -EBADMSG;
    out->ino = h.ino;
    out->size = h.size;
    out->mode = h.mode & 0777;
    out->mtime_ns = h.mtime_ns;
    memcpy(out->file_id.b, h.id, CONTENT_ID_SIZE);
    if (h.next > (len - at) / sizeof(struct log_extent))
        return -EBADMSG;
    out->ext = h.next ? calloc(h.next, sizeof(*out->ext)) : NULL;
    if (h.next && !out->ext)
        return -ENOMEM;
    uint64_t end = 0;
    for (uint32_t i = 0; i < h.next; i++) {
        struct log_extent e;
        if (len - at < sizeof(e))
            return -EBADMSG;
        memcpy(&e, buf + at, sizeof(e));
        at += sizeof(e);
        if (e.len == 0 || e.len > len - at || e.off < end || e.off + e.len > h.size)
            return -EBADMSG;
        out->ext[i] = (struct patch_extent){.off = e.off, .len = e.len, .data = buf + at};
        at += e.len;
        end = e.off + e.len;
    }
    out->next = h.next;
    return at == len ? 0 : -EBADMSG;
}

int patch_log_read(int dirfd, const char *name, struct patch *out)
{
    memset(out, 0, sizeof(*out));
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int r = fstat(fd, &st) < 0 ? -errno : 0;
    if (!r && (!S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(uint64_t) ||
               st.st_size > PATCH_LOG_MAX_BYTES))
        r = -EBADMSG;
    size_t len = r ? 0 : (size_t)st.st_size;
    unsigned char *buf = r ? NULL : malloc(len);
    if (!r && !buf)
        r = -ENOMEM;
    for (size_t got = 0; !r && got < len;) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            r = n < 0 ? -errno : -EBADMSG;
        else
            got += (size_t)n;
    }
    close(fd);
    if (!r) {
        uint64_t sum;
        len -= sizeof(sum);
        memcpy(&sum, buf + len, sizeof(sum));
        r = sum == XXH3_64bits(buf, len) ? parse(buf, len, out) : -EBADMSG;
    }
    out->owned = buf;
    if (r)
        patch_release(out);
    return r;
}

/* Open path beneath root: no "..", no symlinks, no magic links. */
static int open_beneath(int root, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    return (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
}

int patch_apply(int root_fd, const struct patch *p)
{
    int fd = open_beneath(root_fd, p->path, O_WRONLY | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT || errno == ELOOP || errno == EISDIR || errno == ENXIO ||
                       errno == ENOTDIR
                   ? -ESTALE
                   : -errno;
    struct stat st;
    int r = fstat(fd, &st) < 0 ? -errno : 0;
    if (!r && (!S_ISREG(st.st_mode) || st.st_ino != p->ino))
        r = -ESTALE;
    for (size_t i = 0; !r && i < p->next; i++) {
        const struct patch_extent *e = &p->ext[i];
        for (size_t done = 0; !r && done < e->len;) {
            ssize_t n = pwrite(fd, e->data + done, e->len - done, (off_t)(e->off + done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                r = n < 0 ? -errno : -ENOSPC;
            else
                done += (size_t)n;
        }
    }
    if (!r && (uint64_t)st.st_size != p->size && ftruncate(fd, (off_t)p->size) < 0)
        r = -errno;
    if (!r && fchmod(fd, p->mode & 0777) < 0)
        r = -errno;
    struct timespec tv[2] = {
        {.tv_nsec = UTIME_OMIT},
        {.tv_sec = p->mtime_ns / 1000000000, .tv_nsec = p->mtime_ns % 1000000000},
    };
    if (!r)
        futimens(fd, tv); /* best effort, as for staged files */
    close(fd);
    return r;
}

static bool is_log_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 4 && strcmp(name + n - 4, ".log") == 0;
}

int patch_log_replay(int root_fd, int patch_fd, bool (*applied)(const struct patch *p, void *arg),
                     void *arg, size_t *replayed, char *err, size_t errsize)
{
    size_t count = 0;
    int dfd = dup(patch_fd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        int e = errno;
        if (dfd >= 0)
            close(dfd);
        snprintf(err, errsize, "cannot list %s: %s", PATCH_LOG_DIR, strerror(e));
        return -e;
    }
    rewinddir(d);
    char **done = NULL; /* logs to remove once their files are durable */
    size_t ndone = 0;
    int r = 0;
    struct dirent *de;
    while (!r && (de = readdir(d))) {
        if (!is_log_name(de->d_name))
            continue;
        struct patch p;
        r = patch_log_read(patch_fd, de->d_name, &p);
        if (r == -EBADMSG) { /* cut short while written: its file was never touched */
            unlinkat(patch_fd, de->d_name, 0);
            r = 0;
            continue;
        }
        if (r) {
            snprintf(err, errsize, "cannot read %s/%s: %s", PATCH_LOG_DIR, de->d_name,
                     strerror(-r));
            break;
        }
        r = applied && applied(&p, arg) ? -ESTALE : patch_apply(root_fd, &p);
        if (r == -ESTALE) { /* complete, or the file is another one now */
            unlinkat(patch_fd, de->d_name, 0);
            r = 0;
        } else if (r) {
            snprintf(err, errsize, "replaying %s/%s into %s: %s", PATCH_LOG_DIR, de->d_name, p.path,
                     strerror(-r));
        } else {
            char **grown = realloc(done, (ndone + 1) * sizeof(*done));
            if (grown && (grown[ndone] = strdup(de->d_name))) {
                done = grown;
                ndone++;
                count++;
            } else {
                done = grown ? grown : done;
                r = -ENOMEM;
                snprintf(err, errsize, "out of memory");
            }
        }
        patch_release(&p);
    }
    closedir(d);
    if (!r && ndone && syncfs(root_fd) < 0) {
        r = -errno;
        snprintf(err, errsize, "syncfs after replaying patches: %s", strerror(errno));
    }
    for (size_t i = 0; i < ndone; i++) {
        if (!r)
            unlinkat(patch_fd, done[i], 0);
        free(done[i]);
    }
    free(done);
    if (replayed)
        *replayed = count;
    return r;
}
