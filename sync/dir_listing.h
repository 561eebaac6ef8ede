/*
 * dir_listing.h — one directory's entries, sorted by name (strcmp, i.e.
 * unsigned bytes, never the locale) and lstat'ed, for scans that merge the
 * listing with index rows in the same order.
 *
 * The lstat calls can be shared with a helper thread (git's
 * core.preloadIndex does the same for its index): both threads claim runs
 * of entries from one counter, so if the helper is not scheduled the caller
 * simply does them all.  Nothing here reads file content.
 */
#ifndef WSYNC_DIR_LISTING_H
#define WSYNC_DIR_LISTING_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

struct dir_listing_entry {
    const char *name;
    int err;        /* 0, or the errno of lstat (the entry vanished...) */
    struct stat st; /* valid if err == 0 */
};

struct dir_listing {
    struct dir_listing_entry *v;
    size_t n;
    char *names; /* storage for v[].name */
};

/* A helper thread for dir_listing_stat; NULL (and no thread) on failure,
 * which only makes listings slower. */
struct stat_helper *stat_helper_start(void);
void stat_helper_stop(struct stat_helper *h);

/* Read every entry of the directory open as fd (O_RDONLY|O_DIRECTORY; fd
 * stays open, its offset is consumed), leaving out "." and "..", and `skip`
 * if not NULL; sort by name.  0 or -errno. */
int dir_listing_read(int fd, const char *skip, struct dir_listing *out);

/* lstat every entry relative to fd, on this thread and h's (h may be
 * NULL).  Per-entry failures land in err. */
void dir_listing_stat(int fd, struct dir_listing *l, struct stat_helper *h);

void dir_listing_free(struct dir_listing *l);

#endif
