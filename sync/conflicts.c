/* conflicts.c — see conflicts.h. */
#include "conflicts.h"
#include "conflict_name.h"
#include "index.h"
#include "indexer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct walk {
    int (*fn)(const struct conflict_copy *c, void *arg);
    void *arg;
};

static int row(const struct index_file *f, void *arg)
{
    struct walk *w = arg;
    char orig[PATH_MAX], host[80], when[32];
    if (f->type == S_IFDIR || !conflict_name_parse(f->path, orig, sizeof(orig), host,
                                                   sizeof(host), when, sizeof(when)))
        return 0;
    struct conflict_copy c = {.path = f->path, .orig = orig, .host = host, .when = when};
    return w->fn(&c, w->arg);
}

int conflicts_list(const char *src, const char *prefix,
                   int (*fn)(const struct conflict_copy *c, void *arg), void *arg, char *err,
                   size_t errsize)
{
    char state[PATH_MAX];
    snprintf(state, sizeof(state), "%s/.wsync", src);
    struct index *ix = NULL;
    struct indexer *in = NULL;
    int r = index_open(-1, state, false, &ix, err, errsize);
    if (!r)
        r = indexer_new(src, ix, &in, err, errsize);
    if (!r && (r = indexer_scan(in, NULL)))
        snprintf(err, errsize, "indexing %s: %s", src, strerror(-r));
    struct walk w = {fn, arg};
    if (!r && (r = index_foreach(ix, prefix, row, &w)) < 0)
        snprintf(err, errsize, "reading the index of %s: %s", src, strerror(-r));
    indexer_free(in);
    index_close(ix);
    return r;
}

static int open_dir_beneath(int root, const char *path)
{
    struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS};
    return (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
}

int conflicts_resolve(const char *src, const struct conflict_copy *c, bool keep_copy, char *err,
                      size_t errsize)
{
    int root = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return snprintf(err, errsize, "%s: %s", src, strerror(errno)), -errno;
    const char *slash = strrchr(c->path, '/');
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - c->path) : 1,
             slash ? c->path : ".");
    int dfd = open_dir_beneath(root, dir);
    int r = dfd < 0 ? -errno : 0;
    const char *base = slash ? slash + 1 : c->path;
    const char *obase = strrchr(c->orig, '/') ? strrchr(c->orig, '/') + 1 : c->orig;
    struct stat st;
    if (r)
        snprintf(err, errsize, "%s/%s: %s", src, dir, strerror(-r));
    else if (keep_copy) {
        if (fstatat(dfd, obase, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
            r = -EISDIR, snprintf(err, errsize, "%s/%s is a directory now; move the copy by hand",
                                  src, c->orig);
        else if (renameat(dfd, base, dfd, obase) < 0)
            r = -errno, snprintf(err, errsize, "rename %s over %s: %s", c->path, c->orig,
                                 strerror(errno));
    } else if (unlinkat(dfd, base, 0) < 0) {
        r = -errno;
        snprintf(err, errsize, "remove %s/%s: %s", src, c->path, strerror(errno));
    }
    if (!r && fsync(dfd) < 0)
        r = -errno, snprintf(err, errsize, "fsync %s/%s: %s", src, dir, strerror(errno));
    if (dfd >= 0)
        close(dfd);
    close(root);
    return r;
}
