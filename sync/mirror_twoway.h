/*
 * mirror_twoway.h — the live mirror of a `two-way` or `safe` remote: a
 * worker thread that holds one two-way session (twoway.h, link form) to
 * the far side's `wsync serve` and runs a round whenever this side's
 * indexer commits (kick), the far side reports a change (CHANGED, see
 * docs/protocol.md §12), or, as a slow fallback, every few seconds.
 * Failures reconnect with backoff, as mirror.h does; each new session
 * starts with a full round, so nothing made meanwhile is missed.
 *
 * The same verbs as mirror.h, so mirror_set.c treats both alike.
 */
#ifndef WSYNC_MIRROR_TWOWAY_H
#define WSYNC_MIRROR_TWOWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mirror.h"

struct mirror_twoway;

struct mirror_twoway_stats {
    uint64_t rounds;    /* rounds completed, over all sessions */
    uint64_t pulled;    /* paths brought here (deletes and copies included) */
    uint64_t pushed;    /* paths sent there (deletes and copies included) */
    uint64_t conflicts; /* conflict copies in SRC after the last round */
    uint64_t held;      /* safe: paths held back by a waiting conflict copy */
};

struct mirror_twoway_options {
    const char *src; /* absolute */
    const char *dest, *rsh, *wsync_path;
    bool safe;  /* mode safe (else two-way) */
    int log_fd; /* the far side's stderr; -1: ours */
    /* A round changed this path in SRC (see twoway_options.on_applied). */
    void (*on_applied)(const char *path, void *arg);
    void *on_applied_arg;
};

/* Start the worker.  0 or -errno (bad DEST: -EINVAL with err filled). */
int mirror_twoway_start(const struct mirror_twoway_options *opt, struct mirror_twoway **out,
                        char *err, size_t errsize);
void mirror_twoway_kick(struct mirror_twoway *m);
/* As mirror_flush: a round that began after the journal reached want. */
bool mirror_twoway_flush(struct mirror_twoway *m, uint64_t want, int timeout_ms);
void mirror_twoway_get_status(struct mirror_twoway *m, struct mirror_status *st,
                              struct mirror_twoway_stats *ex);
void mirror_twoway_ask_stop(struct mirror_twoway *m);
void mirror_twoway_stop(struct mirror_twoway *m);

#endif
