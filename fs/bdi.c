/*
 * bdi.c — see bdi.h.  mountinfo escapes space, tab, newline and backslash
 * in paths as \ooo octal; we compare against the unescaped form.
 */
#include "bdi.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Undo mountinfo's octal escapes in place. */
static void unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* From one mountinfo line: its "MAJ:MIN" if it is a FUSE mount on mnt. */
static bool fuse_mount_on(char *line, const char *mnt, char *dev, size_t size)
{
    /* id parent MAJ:MIN root mountpoint options [optional...] - fstype ... */
    char *save = NULL;
    char *f[5];
    char *tok = strtok_r(line, " ", &save);
    for (int i = 0; i < 5; i++, tok = strtok_r(NULL, " ", &save)) {
        if (!tok)
            return false;
        f[i] = tok;
    }
    while (tok && strcmp(tok, "-") != 0)
        tok = strtok_r(NULL, " ", &save);
    char *fstype = tok ? strtok_r(NULL, " ", &save) : NULL;
    if (!fstype || strncmp(fstype, "fuse", 4) != 0)
        return false;
    unescape(f[4]);
    if (strcmp(f[4], mnt) != 0 || strlen(f[2]) >= size)
        return false;
    strcpy(dev, f[2]);
    return true;
}

int bdi_set_read_ahead(const char *mountpoint, unsigned kb)
{
    FILE *mi = fopen("/proc/self/mountinfo", "re");
    if (!mi)
        return -errno;
    char dev[32] = "";
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, mi) > 0) {
        line[strcspn(line, "\n")] = '\0';
        char found[32];
        if (fuse_mount_on(line, mountpoint, found, sizeof(found)))
            strcpy(dev, found); /* the last one is on top */
    }
    free(line);
    fclose(mi);
    if (!dev[0])
        return -ENOENT;
    char path[96], val[16];
    snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int n = snprintf(val, sizeof(val), "%u", kb);
    int r = write(fd, val, (size_t)n) == n ? 0 : -errno;
    close(fd);
    return r;
}
