/*
 * mirror_set.h — every mirror worker of one mount daemon: the `--mirror`
 * DESTs of the command line plus the remotes of SRC/.wsync/config, kept
 * in step with that file by reload, reported by status, flushed at unmount.
 *
 * Threads: kick may be called from any thread (the indexer's); start,
 * reload, status, flush and stop are serialised by the set itself.  A
 * reload starts and stops only the workers whose settings changed: the
 * others keep their sessions.
 */
#ifndef WSYNC_MIRROR_SET_H
#define WSYNC_MIRROR_SET_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf;
struct mirror_set;

struct mirror_set_options {
    const char *src;          /* absolute */
    const char *const *dests; /* --mirror DESTs */
    size_t ndests;
    const char *rsh;        /* for the --mirror DESTs; NULL: ssh */
    const char *wsync_path; /* for the --mirror DESTs; NULL: default */
    int log_fd;             /* the far sides' stderr; -1: ours */
    /* Two-way and safe remotes: a round changed this path in SRC (the
     * mount drops its kernel cache of it).  May be NULL. */
    void (*on_applied)(const char *path, void *arg);
    void *on_applied_arg;
};

/* Start a worker for every --mirror DEST and every configured remote.  A
 * bad DEST or config file fails it (-errno, err names the file and line).
 * A replica remote (and every --mirror DEST) gets a mirror.h worker, a
 * two-way or safe one a mirror_twoway.h worker, an auto one a
 * mirror_auto.h controller that runs either. */
int mirror_set_start(const struct mirror_set_options *opt, struct mirror_set **out, char *err,
                     size_t errsize);

/* New journal entries exist: wake every worker. */
void mirror_set_kick(struct mirror_set *ms);

/* Re-read the config; start added or changed remotes, stop removed ones.
 * Appends one line per change ("started NAME DEST", "stopped NAME") or
 * "unchanged"; on a bad file appends "error: ..." and changes nothing. */
void mirror_set_reload(struct mirror_set *ms, struct strbuf *reply);

/* Per worker: name, dest, connected, lag, pending, bytes sent, last error;
 * as text lines or as a JSON array. */
void mirror_set_status(struct mirror_set *ms, struct strbuf *out, bool json);

/* Wait, at most timeout_ms in all, until every worker has acknowledged
 * the journal as it is now.  True if all did; else a line per worker that
 * did not ("unflushed NAME DEST: cause") is appended to report. */
bool mirror_set_flush(struct mirror_set *ms, int timeout_ms, struct strbuf *report);

void mirror_set_stop(struct mirror_set *ms);

#endif
