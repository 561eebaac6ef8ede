/* edits.c — see edits.h. */
#include "edits.h"
#include "harness.h"

#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void texts_add(struct wm_texts *t, char *text)
{
    t->v = realloc(t->v, (t->n + 1) * sizeof(*t->v));
    ck_assert_ptr_nonnull(t->v);
    t->v[t->n++] = text;
}

static void collect(const char *root, const char *rel, struct wm_texts *t)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s%s%s", root, rel[0] ? "/" : "", rel);
    DIR *d = opendir(p);
    ck_assert_msg(d != NULL, "opendir %s failed", p);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            (!rel[0] && !strcmp(e->d_name, ".wsync")))
            continue;
        char sub[PATH_MAX];
        snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        if (e->d_type == DT_DIR) {
            collect(root, sub, t);
        } else {
            char f[PATH_MAX];
            wm_path(f, sizeof(f), root, sub);
            texts_add(t, wm_read(f, NULL));
        }
    }
    closedir(d);
}

void wm_texts_collect(const char *root, struct wm_texts *t)
{
    collect(root, "", t);
}

bool wm_texts_has(const struct wm_texts *t, const char *text)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i] && strcmp(t->v[i], text) == 0)
            return true;
    return false;
}

void wm_texts_free(struct wm_texts *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i]);
    free(t->v);
    memset(t, 0, sizeof(*t));
}

static unsigned long long rng;

void wm_edits_seed(unsigned long long seed)
{
    rng = seed;
}

unsigned wm_edits_rnd(unsigned n)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((rng >> 33) % n);
}

static const char *names[] = {"f0", "f1", "f2", "d1/f3", "d1/f4", "d2/f5", "d2/f6"};
#define NNAMES (sizeof(names) / sizeof(names[0]))

void wm_edits_random_op(const char *root, char side, int round, int k, struct wm_texts *gone)
{
    char p[PATH_MAX], q[PATH_MAX], data[128];
    wm_path(p, sizeof(p), root, names[wm_edits_rnd(NNAMES)]);
    snprintf(data, sizeof(data), "seed %llu round %d side %c op %d\n", rng, round, side, k);
    char *old = wm_read(p, NULL);
    switch (wm_edits_rnd(4)) {
    case 0: /* write (new or overwrite) */
    case 1:
        wm_write(p, data);
        break;
    case 2: /* delete, or write when there is nothing to delete */
        if (old)
            unlink(p);
        else
            wm_write(p, data);
        break;
    default: /* rename to a free name: nothing destroyed */
        wm_path(q, sizeof(q), root, names[wm_edits_rnd(NNAMES)]);
        if (old && access(q, F_OK) != 0) {
            ck_assert_msg(rename(p, q) == 0, "rename %s -> %s failed", p, q);
            free(old);
            return;
        }
        wm_write(p, data);
    }
    if (old)
        texts_add(gone, old);
}

void wm_edits_assert_nothing_lost(const struct wm_texts *before, const struct wm_texts *gone,
                                  const struct wm_texts *after, unsigned long long seed, int round)
{
    for (size_t i = 0; i < before->n; i++)
        ck_assert_msg(!before->v[i] || wm_texts_has(gone, before->v[i]) ||
                          wm_texts_has(after, before->v[i]),
                      "seed %llu round %d: lost '%s'", seed, round, before->v[i]);
}
