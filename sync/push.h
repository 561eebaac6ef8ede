/*
 * push.h — the sending side of a one-shot sync (`wsync push`, `verify`):
 * index SRC, start the far side's `wsync serve`, learn what it has, send
 * only what differs, and wait until it is durable there.
 */
#ifndef WSYNC_PUSH_H
#define WSYNC_PUSH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "content_id.h"

/* What a progress display gets (push_options.on_progress): counts so far. */
struct push_progress {
    const char *phase;       /* "indexing", "sending", "data", "done", "failed" */
    bool done;               /* the last call of the session */
    uint64_t files;          /* files sent (or that would be) so far */
    uint64_t chunks_sent;    /* DATA frames sent */
    uint64_t chunks_wanted;  /* chunks the far side asked for so far */
    uint64_t data_bytes;     /* chunk bytes sent, before compression */
    uint64_t bytes_out;      /* on the wire */
    double seconds;          /* since the session started */
};

struct push_options {
    const char *src;        /* local directory */
    const char *dest;       /* see transport.h */
    const char *rsh;        /* NULL: ssh */
    const char *wsync_path; /* far side's binary; NULL: default */
    bool dry_run;           /* say what would change; change nothing */
    bool delete_extra;      /* delete what DEST has and SRC does not */
    bool verify_only;       /* compare roots, send nothing */
    bool progress;          /* a progress line on stderr, or on_progress */
    /* When set (and progress is true), called instead of printing the
     * built-in line: often (every sent chunk), from the sending thread. */
    void (*on_progress)(const struct push_progress *pp, void *arg);
    void *progress_arg;
    bool trust_index;       /* SRC's index is kept fresh by a running indexer: no scan */
    bool far_stderr_set;    /* the far side's stderr goes to far_stderr_fd, not ours */
    int far_stderr_fd;
    /* Told the far side's (rsh child's) pid once it runs, and 0 before it
     * is reaped: a mirror that must stop now kills it to end a stuck read. */
    void (*on_child)(pid_t pid, void *arg);
    void *on_child_arg;
};

struct push_result {
    uint64_t files, dirs, symlinks, deleted; /* entries sent (or that would be) */
    uint64_t chunks_sent, chunks_wanted;     /* DATA frames / chunks the far side lacked */
    uint64_t bytes_out, bytes_in;            /* on the wire, both directions */
    uint64_t data_bytes;                     /* chunk bytes before compression */
    double seconds;
    struct content_id src_root, dest_root;   /* dest_root: after the push */
    /* When each phase of the last sync_all ended, in seconds since the
     * session started (0: not reached): SRC indexed, the far side's
     * listing read, every UPDATE sent, the last wanted DATA sent, the ACK. */
    double t_indexed, t_listed, t_planned, t_data, t_acked;
};

/* Run it.  0 on success (for verify_only: also when the roots differ;
 * compare them), or -errno with a sentence in err naming the cause. */
int push_run(const struct push_options *opt, struct push_result *res, char *err,
             size_t errsize);

/* The same in steps, for a session that lives on (mirroring): open indexes
 * SRC, starts the far side and reads its manifest; sync_all sends the whole
 * difference; sync_paths sends the current state of the given paths (a
 * directory with everything below it; a path no longer in SRC's index is
 * deleted) as one more batch; each returns once the far side ACKed it.
 * close ends the session (BYE when r is 0), frees, and returns r or the
 * transport's failure.  err and res must outlive the sender. */
struct sender;
int sender_open(const struct push_options *opt, struct push_result *res, struct sender **out,
                char *err, size_t errsize);
int sender_sync_all(struct sender *s);
int sender_sync_paths(struct sender *s, char *const *paths, size_t n);
int sender_close(struct sender *s, int r);

/* Bytes on the wire so far in this session, both directions. */
void sender_traffic(struct sender *s, uint64_t *out, uint64_t *in);

#endif
