/*
 * twoway.h — a one-shot two-way sync (`wsync sync SRC DEST`), like
 * unison: learn both trees and the last agreed state (ancestors.h), decide
 * per path (reconcile.h), pull what changed there, push what changed here,
 * keep both versions of what changed on both sides (conflict copies), and
 * record every path that is now equal as agreed.  docs/architecture.md,
 * "Two-way sync", has the session and the safety argument.
 */
#ifndef WSYNC_TWOWAY_H
#define WSYNC_TWOWAY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "content_id.h"

struct twoway_options {
    const char *src;        /* local directory */
    const char *dest;       /* see transport.h */
    const char *rsh;        /* NULL: ssh */
    const char *wsync_path; /* far side's binary; NULL: default */
    bool dry_run;           /* decide and list; change nothing, record nothing */
    FILE *list;             /* NULL, or where to print one line per changed path */
    /* For a live session (mirror_twoway.c); all zero for `wsync sync`: */
    bool live;              /* many rounds: RESCAN/WATCH/CHANGED (docs/protocol.md §12) */
    bool safe;              /* one-way, but a far-side edit is kept as a conflict copy
                             * here and never overwritten (docs/architecture.md) */
    bool trust_index;       /* SRC's index is kept fresh by a running indexer: no scan */
    bool far_stderr_set;    /* the far side's stderr goes to far_stderr_fd */
    int far_stderr_fd;
    void (*on_child)(pid_t pid, void *arg); /* as in push_options */
    void *on_child_arg;
    /* Called for each path a round changed in SRC (pulled, deleted, conflict
     * copy made), after it is in place: a mount drops its kernel cache. */
    void (*on_applied)(const char *path, void *arg);
    void *on_applied_arg;
};

struct twoway_result {
    uint64_t pushed, pulled;             /* paths sent each way (copies included) */
    uint64_t deleted_here, deleted_there;
    uint64_t conflicts;                  /* conflict copies made */
    uint64_t chunks_sent, data_bytes_sent;
    uint64_t bytes_out, bytes_in;        /* on the wire */
    double seconds;
    struct content_id src_root;          /* after the sync */
    uint64_t held;       /* safe: paths not sent because a conflict copy of them waits here */
    uint64_t copies_here; /* conflict copies in SRC when the round began */
    bool again;          /* a path changed under the round and was left: run another */
};

/* Run it.  0, or -errno with a sentence in err naming the cause; nothing
 * is recorded as agreed unless every step succeeded. */
int twoway_run(const struct twoway_options *opt, struct twoway_result *res, char *err,
               size_t errsize);

/* The same as a session that lives on (mirror_twoway.c): open starts the
 * far side and learns both trees and the peer (opt->live: asks for §12);
 * each round reconciles, pulls, pushes and records as twoway_run does,
 * listing the far side afresh (RESCAN) except in the first round; wait
 * sends WATCH and returns 1 once the far side says CHANGED, 0 when kick_fd
 * became readable or timeout_ms passed; close ends the session (BYE when r
 * is 0) and returns r or the transport's failure.  err must outlive the
 * link; after a failure only close may be called. */
struct twoway_link;
int twoway_link_open(const struct twoway_options *opt, struct twoway_link **out, char *err,
                     size_t errsize);
/* res->bytes_out/in: the session's traffic so far. */
int twoway_link_round(struct twoway_link *l, struct twoway_result *res);
int twoway_link_wait(struct twoway_link *l, int kick_fd, int timeout_ms);
int twoway_link_close(struct twoway_link *l, int r, struct twoway_result *res);

#endif
