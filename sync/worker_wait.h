/*
 * worker_wait.h — the two waits both mirror workers (mirror.c, the
 * replica; mirror_twoway.c, two-way and safe) give the mount: a flush that
 * waits until the far side has acknowledged the journal through a
 * sequence number, and a stop that lets the worker end on its own for a
 * grace period before cutting its far side.
 *
 * Both take the worker's own lock and condition variable (the worker
 * broadcasts on it whenever its status, stop or exited changes), and are
 * called with that lock not held.
 */
#ifndef WSYNC_WORKER_WAIT_H
#define WSYNC_WORKER_WAIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "mirror.h"

/* Wait, at most timeout_ms and not past a stop, until a catch-up has
 * finished and st->acked_seq >= want.  True if so. */
bool worker_wait_acked(pthread_mutex_t *lock, pthread_cond_t *cond, const struct mirror_status *st,
                       const bool *stop, uint64_t want, int timeout_ms);

/* Wait at most grace_ms for *exited; if the worker is still in a transfer
 * or a connect then, SIGTERM its far side (*child, when > 0).  The far
 * side keeps each file old or new, never a mix, and the worker then ends. */
void worker_wait_exit(pthread_mutex_t *lock, pthread_cond_t *cond, const bool *exited,
                      const pid_t *child, int grace_ms);

#endif
