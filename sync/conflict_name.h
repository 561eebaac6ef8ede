/*
 * conflict_name.h — the name of a conflict copy, and recognising one:
 *
 *     dir/NAME.conflict-HOST-YYYYmmdd-HHMMSS[-N].EXT
 *
 * HOST is the host label (identity.h) of the side whose version lost,
 * the time is when the conflict was found (UTC), N (2, 3, ...) makes the
 * name unique, EXT is the original's last extension (none for "Makefile"
 * or ".bashrc"), so editors still know the file type.
 */
#ifndef WSYNC_CONFLICT_NAME_H
#define WSYNC_CONFLICT_NAME_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define CONFLICT_MARK ".conflict-"

/* Write the copy's path for path into out.  n: 0 or 1 for none, else the
 * -N suffix.  The last component is cut (the stem, never the mark) to stay
 * within 255 bytes.  0, or -ENAMETOOLONG if out is too small. */
int conflict_name(const char *path, const char *host, time_t when, unsigned n, char *out,
                  size_t size);

/* Is path a conflict copy?  If so, and orig is not NULL, the original's
 * path goes to orig, the host label to host, the time text
 * ("YYYYmmdd-HHMMSS") to when (each may be NULL). */
bool conflict_name_parse(const char *path, char *orig, size_t orig_size, char *host,
                         size_t host_size, char *when, size_t when_size);

#endif
