/* dir_listing.c — see dir_listing.h. */
#include "dir_listing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Entries per claim; a directory below 2 runs is not worth a handoff. */
#define RUN 16

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct dir_listing_entry *)a)->name,
                  ((const struct dir_listing_entry *)b)->name);
}

int dir_listing_read(int fd, const char *skip, struct dir_listing *out)
{
    *out = (struct dir_listing){0};
    size_t cap = 0, names_len = 0, names_cap = 0;
    /* Offsets into names while it may still move; pointers at the end. */
    size_t *offs = NULL;
    char buf[32768];
    int r = 0;
    for (;;) {
        long got = syscall(SYS_getdents64, fd, buf, sizeof(buf));
        if (got < 0) {
            r = -errno;
            break;
        }
        if (got == 0)
            break;
        for (long pos = 0; pos < got;) {
            struct dirent64 *de = (struct dirent64 *)(buf + pos);
            pos += de->d_reclen;
            const char *name = de->d_name;
            if ((name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]))) ||
                (skip && strcmp(name, skip) == 0))
                continue;
            size_t len = strlen(name) + 1;
            if (out->n == cap) {
                cap = cap ? 2 * cap : 64;
                size_t *o = realloc(offs, cap * sizeof(*o));
                if (!o) {
                    r = -ENOMEM;
                    goto done;
                }
                offs = o;
            }
            if (names_len + len > names_cap) {
                names_cap = names_cap ? 2 * names_cap : 4096;
                while (names_len + len > names_cap)
                    names_cap *= 2;
                char *nb = realloc(out->names, names_cap);
                if (!nb) {
                    r = -ENOMEM;
                    goto done;
                }
                out->names = nb;
            }
            memcpy(out->names + names_len, name, len);
            offs[out->n++] = names_len;
            names_len += len;
        }
    }
done:
    if (!r && out->n) {
        out->v = calloc(out->n, sizeof(*out->v));
        if (!out->v)
            r = -ENOMEM;
    }
    if (r) {
        free(offs);
        dir_listing_free(out);
        return r;
    }
    for (size_t i = 0; i < out->n; i++)
        out->v[i].name = out->names + offs[i];
    free(offs);
    if (out->n > 1)
        qsort(out->v, out->n, sizeof(*out->v), by_name);
    return 0;
}

void dir_listing_free(struct dir_listing *l)
{
    free(l->v);
    free(l->names);
    *l = (struct dir_listing){0};
}

/* ---- lstat, shared with a helper ---- */

struct stat_job {
    int fd;
    struct dir_listing_entry *v;
    size_t n;
    atomic_size_t next;
};

struct stat_helper {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct stat_job job;
    bool posted; /* job is open for the helper to join */
    bool active; /* the helper is working on job */
    bool stop;
    unsigned long gen; /* bumped per posted job */
};

static void run_job(struct stat_job *j)
{
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, RUN);
        if (i >= j->n)
            return;
        size_t end = i + RUN < j->n ? i + RUN : j->n;
        for (; i < end; i++) {
            struct dir_listing_entry *e = &j->v[i];
            e->err = fstatat(j->fd, e->name, &e->st, AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
        }
    }
}

static void *helper_main(void *arg)
{
    struct stat_helper *h = arg;
    unsigned long done_gen = 0;
    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (!h->stop && !(h->posted && h->gen != done_gen))
            pthread_cond_wait(&h->cond, &h->lock);
        if (h->stop)
            break;
        done_gen = h->gen;
        h->active = true;
        pthread_mutex_unlock(&h->lock);
        run_job(&h->job);
        pthread_mutex_lock(&h->lock);
        h->active = false;
        pthread_cond_broadcast(&h->cond);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

struct stat_helper *stat_helper_start(void)
{
    struct stat_helper *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    if (pthread_create(&h->thread, NULL, helper_main, h) != 0) {
        pthread_cond_destroy(&h->cond);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
    }
    return h;
}

void stat_helper_stop(struct stat_helper *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stop = true;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void dir_listing_stat(int fd, struct dir_listing *l, struct stat_helper *h)
{
    struct stat_job local = {.fd = fd, .v = l->v, .n = l->n};
    if (!h || l->n < 2 * RUN) {
        run_job(&local);
        return;
    }
    pthread_mutex_lock(&h->lock);
    h->job.fd = fd;
    h->job.v = l->v;
    h->job.n = l->n;
    atomic_store(&h->job.next, 0);
    h->posted = true;
    h->gen++;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    run_job(&h->job);
    /* Every run is claimed; wait for the helper's last one, then close the
     * job so a late wake-up cannot join it after this returns. */
    pthread_mutex_lock(&h->lock);
    while (h->active)
        pthread_cond_wait(&h->cond, &h->lock);
    h->posted = false;
    pthread_mutex_unlock(&h->lock);
}
