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

#include "content_id.h"

struct twoway_options {
    const char *src;        /* local directory */
    const char *dest;       /* see transport.h */
    const char *rsh;        /* NULL: ssh */
    const char *wsync_path; /* far side's binary; NULL: default */
    bool dry_run;           /* decide and list; change nothing, record nothing */
    FILE *list;             /* NULL, or where to print one line per changed path */
};

struct twoway_result {
    uint64_t pushed, pulled;             /* paths sent each way (copies included) */
    uint64_t deleted_here, deleted_there;
    uint64_t conflicts;                  /* conflict copies made */
    uint64_t chunks_sent, data_bytes_sent;
    uint64_t bytes_out, bytes_in;        /* on the wire */
    double seconds;
    struct content_id src_root;          /* after the sync */
};

/* Run it.  0, or -errno with a sentence in err naming the cause; nothing
 * is recorded as agreed unless every step succeeded. */
int twoway_run(const struct twoway_options *opt, struct twoway_result *res, char *err,
               size_t errsize);

#endif
