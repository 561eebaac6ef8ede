/*
 * remotes.h — the persistent remotes of a source directory, kept in
 * SRC/.wsync/config (written by `wsync remote`, read by the mount daemon).
 *
 * The file is line-based text, one setting per line:
 *
 *     # comment
 *     [remote robot1]
 *     dest = robot1:/home/dev/proj
 *     rsh = ssh -p 2222
 *     wsync-path = /opt/wsync/bin/wsync
 *     mode = replica
 *
 * `dest` is required; the others are optional (mode defaults to auto; a
 * file written before auto existed says `mode = replica` and keeps it).
 * Anything else (an unknown key or section, a duplicate, a bad name or
 * mode) is refused with "FILE:LINE: cause".  Saving writes a temporary file,
 * fsyncs it and renames it over the old one, so a reader sees the old
 * version or the new one, never a mix.
 */
#ifndef WSYNC_REMOTES_H
#define WSYNC_REMOTES_H

#include <stdbool.h>
#include <stddef.h>

#define REMOTES_FILE_NAME "config"
#define REMOTES_MAX       16
#define REMOTE_NAME_MAX   64

/* How a remote is kept: replica (this side wins, the far side is a copy),
 * safe (one-way, a far edit is kept as a conflict copy, never
 * overwritten), two-way (edits flow both ways), or auto: two-way when the
 * far tree is the SRC of a running `wsync mount` there, else replica,
 * decided per session (mirror_auto.h).  Auto is what `remote add` and a
 * section without a `mode =` line mean. */
enum remote_mode { REMOTE_MODE_REPLICA, REMOTE_MODE_SAFE, REMOTE_MODE_TWO_WAY, REMOTE_MODE_AUTO };
#define REMOTE_MODE_DEFAULT REMOTE_MODE_AUTO

struct remote_def {
    char *name;       /* [A-Za-z0-9][A-Za-z0-9._-]*, at most REMOTE_NAME_MAX */
    char *dest;       /* as transport.h parses it */
    char *rsh;        /* NULL: ssh */
    char *wsync_path; /* NULL: the default */
    enum remote_mode mode;
};

struct remotes {
    struct remote_def v[REMOTES_MAX];
    size_t n;
};

/* Parse text (the contents of file_name, which only names it in errors).
 * 0, or -EINVAL with "file_name:LINE: cause" in err. */
int remotes_parse(const char *text, size_t len, const char *file_name, struct remotes *out,
                  char *err, size_t errsize);

/* Load STATE_DIR/config; a missing file is an empty list.  0 or -errno. */
int remotes_load(const char *state_dir, struct remotes *out, char *err, size_t errsize);

/* Replace STATE_DIR/config atomically (temp file, fsync, rename, fsync dir). */
int remotes_save(const char *state_dir, const struct remotes *r, char *err, size_t errsize);

/* Take an exclusive lock for a read-modify-write of the config (a
 * lock file beside it); returns the fd to pass to remotes_unlock, or -errno. */
int remotes_lock(const char *state_dir, char *err, size_t errsize);
void remotes_unlock(int fd);

/* Add a copy of def (checked as the parser checks it); -EEXIST for a name
 * already there, -ENOSPC past REMOTES_MAX, -EINVAL with err filled. */
int remotes_add(struct remotes *r, const struct remote_def *def, char *err, size_t errsize);

/* Remove by name; -ENOENT if absent. */
int remotes_remove(struct remotes *r, const char *name);

const struct remote_def *remotes_find(const struct remotes *r, const char *name);

/* Deep copy / free of one definition.  0 or -ENOMEM. */
int remote_def_copy(struct remote_def *dst, const struct remote_def *src);
void remote_def_release(struct remote_def *d);

/* Equal settings (name, dest, rsh, wsync-path, mode). */
bool remote_def_equal(const struct remote_def *a, const struct remote_def *b);

void remotes_release(struct remotes *r);

const char *remote_mode_name(enum remote_mode mode);
/* -EINVAL for anything but replica, safe, two-way, auto. */
int remote_mode_parse(const char *text, enum remote_mode *out);

#endif
