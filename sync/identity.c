/*
 * identity.c — see identity.h.  The id is written to a temp file, fsynced,
 * and published with link(2), which fails if another process got there
 * first: then its id is the one read back.
 */
#include "identity.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static int read_id(const char *path, struct content_id *id, char *err, size_t errsize)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    char buf[CONTENT_ID_HEX_LEN + 2];
    ssize_t n = read(fd, buf, sizeof(buf));
    int e = errno;
    close(fd);
    if (n < 0)
        return snprintf(err, errsize, "reading %s: %s", path, strerror(e)), -e;
    if (n >= CONTENT_ID_HEX_LEN) {
        buf[CONTENT_ID_HEX_LEN] = '\0';
        if (content_id_from_hex(buf, id) == 0)
            return 0;
    }
    snprintf(err, errsize, "%s is corrupt (expected %d hex digits); remove it to make a new "
                           "tree id (peers will then see a new tree)",
             path, CONTENT_ID_HEX_LEN);
    return -EINVAL;
}

int identity_tree_id(const char *root, struct content_id *id, char *err, size_t errsize)
{
    char path[PATH_MAX], tmp[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/.wsync/" IDENTITY_FILE, root);
    int r = read_id(path, id, err, errsize);
    if (r != -ENOENT)
        return r;
    struct content_id fresh;
    if (getrandom(fresh.b, sizeof(fresh.b), 0) != (ssize_t)sizeof(fresh.b))
        return snprintf(err, errsize, "getrandom: %s", strerror(errno)), -errno;
    char hex[CONTENT_ID_HEX_LEN + 2];
    content_id_to_hex(&fresh, hex);
    strcat(hex, "\n");
    snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return snprintf(err, errsize, "creating %s: %s", tmp, strerror(errno)), -errno;
    size_t len = strlen(hex);
    bool ok = write(fd, hex, len) == (ssize_t)len && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (ok && link(tmp, path) < 0 && errno != EEXIST) {
        ok = false;
        e = errno;
    }
    unlink(tmp);
    if (!ok)
        return snprintf(err, errsize, "writing %s: %s", path, strerror(e)), -e;
    return read_id(path, id, err, errsize); /* ours, or the racing winner's */
}

void identity_host_label(char *buf, size_t size)
{
    char raw[256] = "";
    const char *env = getenv("WSYNC_HOST");
    if (env && *env)
        snprintf(raw, sizeof(raw), "%s", env);
    else if (gethostname(raw, sizeof(raw) - 1) < 0 || !raw[0])
        snprintf(raw, sizeof(raw), "host");
    size_t n = 0;
    for (const char *p = raw; *p && n + 1 < size && n < 64; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        buf[n++] = ok ? c : '_';
    }
    buf[n] = '\0';
}
