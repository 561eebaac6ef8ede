/*
 * edits.h — randomized edit schedules for the two-way tests, and the check
 * that nothing written was lost.
 *
 * A schedule edits a small fixed set of names (f0..f2, d1/f3, d1/f4, d2/f5,
 * d2/f6) on both sides while they cannot talk; afterwards every text that
 * existed before the sync must exist after it, in a file or a conflict copy,
 * unless the schedule itself destroyed it (an overwrite, a delete).  The
 * generator is a seeded LCG, so a printed seed replays the same schedule.
 * The caller makes d1/ and d2/ on every side first.
 */
#ifndef WSYNC_TEST_EDITS_H
#define WSYNC_TEST_EDITS_H

#include <stdbool.h>
#include <stddef.h>

/* The contents of a tree's regular files, each a NUL-terminated copy. */
struct wm_texts {
    char **v;
    size_t n;
};

/* Append the contents of every file under root (ROOT/.wsync excluded). */
void wm_texts_collect(const char *root, struct wm_texts *t);

bool wm_texts_has(const struct wm_texts *t, const char *text);

void wm_texts_free(struct wm_texts *t);

/* Restart the generator: the same seed gives the same schedule. */
void wm_edits_seed(unsigned long long seed);

/* A number in [0, n) from the generator. */
unsigned wm_edits_rnd(unsigned n);

/* One random edit under root (a tree or a mount): write a new text, delete,
 * or rename to a free name.  The text names side, round and k, so every
 * text is unique.  What it destroys on purpose goes to gone. */
void wm_edits_random_op(const char *root, char side, int round, int k, struct wm_texts *gone);

/* Fail, naming seed and round, unless every text of before is in gone or
 * in after. */
void wm_edits_assert_nothing_lost(const struct wm_texts *before, const struct wm_texts *gone,
                                  const struct wm_texts *after, unsigned long long seed, int round);

#endif
