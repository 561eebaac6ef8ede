/* mounts.c — parse /proc/self/mountinfo (see proc(5)). */
#include "mounts.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>

/* Undo the kernel's octal escapes (\040 for space and friends) in place. */
static void unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* Split one mountinfo line into mount point, fstype and source. */
static bool parse_line(char *line, char **mnt, char **fstype, char **source)
{
    char *save = NULL;
    char *f[5];
    for (int i = 0; i < 5; i++)
        if (!(f[i] = strtok_r(i ? NULL : line, " \n", &save)))
            return false;
    char *tok;
    while ((tok = strtok_r(NULL, " \n", &save)) && strcmp(tok, "-") != 0)
        ; /* optional fields */
    if (!tok)
        return false;
    *fstype = strtok_r(NULL, " \n", &save);
    *source = strtok_r(NULL, " \n", &save);
    if (!*fstype || !*source)
        return false;
    *mnt = f[4];
    unescape(*mnt);
    unescape(*source);
    unescape(*fstype);
    return true;
}

static bool is_prefix_dir(const char *dir, const char *path)
{
    size_t n = strlen(dir);
    if (strcmp(dir, "/") == 0)
        return true;
    return strncmp(dir, path, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Scan mountinfo; `exact` picks the last mount at path, else the longest
 * wsync mount containing path. */
static int scan(const char *path, bool exact, struct mount_info *out)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -errno;
    char *line = NULL;
    size_t cap = 0;
    size_t best = 0;
    int found = -ENOENT;
    while (getline(&line, &cap, f) > 0) {
        char *mnt, *fstype, *source;
        if (!parse_line(line, &mnt, &fstype, &source))
            continue;
        bool match = exact ? strcmp(mnt, path) == 0
                           : strcmp(fstype, WSYNC_FSTYPE) == 0 && is_prefix_dir(mnt, path) &&
                                 strlen(mnt) >= best;
        if (!match)
            continue;
        mount_info_release(out);
        out->mountpoint = strdup(mnt);
        out->source = strdup(source);
        out->fstype = strdup(fstype);
        if (!out->mountpoint || !out->source || !out->fstype) {
            found = -ENOMEM;
            break;
        }
        best = strlen(mnt);
        found = 0;
    }
    free(line);
    fclose(f);
    if (found)
        mount_info_release(out);
    return found;
}

int mounts_at(const char *path, struct mount_info *out)
{
    *out = (struct mount_info){0};
    return scan(path, true, out);
}

int mounts_wsync_containing(const char *path, struct mount_info *out)
{
    *out = (struct mount_info){0};
    return scan(path, false, out);
}

int mounts_foreach_wsync(void (*fn)(const struct mount_info *m, void *arg), void *arg)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -errno;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        struct mount_info m;
        if (parse_line(line, &m.mountpoint, &m.fstype, &m.source) &&
            strcmp(m.fstype, WSYNC_FSTYPE) == 0)
            fn(&m, arg);
    }
    free(line);
    fclose(f);
    return 0;
}

void mount_info_release(struct mount_info *m)
{
    free(m->mountpoint);
    free(m->source);
    free(m->fstype);
    *m = (struct mount_info){0};
}

int mounts_probe(const char *path)
{
    struct statfs sf;
    return statfs(path, &sf) == 0 ? 0 : -errno;
}
