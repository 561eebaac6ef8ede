/* deadline.h — an absolute CLOCK_REALTIME time some milliseconds from now,
 * the form pthread_cond_timedwait wants (its condvars use the default
 * clock).  Header-only: fs/ and sync/ both wait on condition variables. */
#ifndef WSYNC_DEADLINE_H
#define WSYNC_DEADLINE_H

#include <time.h>

static inline struct timespec deadline_in_ms(int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    return dl;
}

#endif
