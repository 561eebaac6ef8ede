/* worker_wait.c — see worker_wait.h. */
#include "worker_wait.h"
#include "../fs/deadline.h"

#include <errno.h>
#include <signal.h>

bool worker_wait_acked(pthread_mutex_t *lock, pthread_cond_t *cond, const struct mirror_status *st,
                       const bool *stop, uint64_t want, int timeout_ms)
{
    struct timespec dl = deadline_in_ms(timeout_ms);
    pthread_mutex_lock(lock);
    /* Caught up, too: an empty journal says nothing about a remote that
     * never finished its first diff. */
    while ((st->acked_seq < want || !st->caught_up) && !*stop)
        if (pthread_cond_timedwait(cond, lock, &dl) == ETIMEDOUT)
            break;
    bool ok = st->acked_seq >= want && st->caught_up;
    pthread_mutex_unlock(lock);
    return ok;
}

void worker_wait_exit(pthread_mutex_t *lock, pthread_cond_t *cond, const bool *exited,
                      const pid_t *child, int grace_ms)
{
    pthread_mutex_lock(lock);
    struct timespec dl = deadline_in_ms(grace_ms);
    while (!*exited)
        if (pthread_cond_timedwait(cond, lock, &dl) == ETIMEDOUT)
            break;
    if (!*exited && *child > 0)
        kill(*child, SIGTERM);
    pthread_mutex_unlock(lock);
}
