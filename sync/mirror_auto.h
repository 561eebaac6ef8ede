/*
 * mirror_auto.h — the live mirror of an `auto` remote: two-way when the
 * far tree is the SRC of a running `wsync mount` there, replica otherwise.
 *
 * A controller thread asks the far side (`wsync serve --probe`, whose
 * `mounted=0|1` fact says whether a mount runs on ROOT; see probe.h) and
 * then runs the matching worker, mirror_twoway.h or mirror.h.  It asks
 * again every recheck interval (30 s; WSYNC_AUTO_RECHECK_MS overrides) and
 * as soon as the worker has reconnected (the far side may have been
 * remounted or rebooted meanwhile); when the answer changed, it stops the
 * worker and starts the other kind.  Until the first answer no data
 * session runs at all: an unreachable far side is never guessed to be a
 * replica, whose catch-up would overwrite edits made there.
 *
 * The same verbs as mirror.h, so mirror_set.c treats it like the others.
 */
#ifndef WSYNC_MIRROR_AUTO_H
#define WSYNC_MIRROR_AUTO_H

#include <stdbool.h>
#include <stdint.h>

#include "mirror.h"
#include "mirror_twoway.h"

struct mirror_auto;

/* What the controller decided, for status. */
struct mirror_auto_view {
    bool decided;      /* a probe answered: two_way is meaningful */
    bool two_way;      /* running a two-way worker (else replica) */
    char why[64];      /* "far tree is mounted", "far tree is not mounted",
                          "far side's wsync does not say" (older); "" before */
    uint64_t probes;   /* probes that answered */
    uint64_t switches; /* worker kind changed after the first decision */
};

/* Start the controller; options as for mirror_twoway_start (safe is
 * ignored: auto never runs safe).  0 or -errno (bad DEST: -EINVAL, err). */
int mirror_auto_start(const struct mirror_twoway_options *opt, struct mirror_auto **out, char *err,
                      size_t errsize);
void mirror_auto_kick(struct mirror_auto *a);
/* As mirror_flush; false while undecided. */
bool mirror_auto_flush(struct mirror_auto *a, uint64_t want, int timeout_ms);
/* The running worker's figures (ex zeroed for a replica one); while
 * undecided, disconnected with the probe's error.  view may be NULL. */
void mirror_auto_get_status(struct mirror_auto *a, struct mirror_status *st,
                            struct mirror_twoway_stats *ex, struct mirror_auto_view *view);
void mirror_auto_ask_stop(struct mirror_auto *a);
void mirror_auto_stop(struct mirror_auto *a);

#endif
