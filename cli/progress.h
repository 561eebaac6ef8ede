/*
 * progress.h — the one-line progress display of long commands on a TTY:
 * files, bytes, rate and ETA, redrawn in place at most ten times a second,
 * and nothing at all when stderr is not a terminal (scripts, CI, --json).
 */
#ifndef WSYNC_PROGRESS_H
#define WSYNC_PROGRESS_H

#include "../sync/push.h"

#include <stdbool.h>
#include <stdio.h>

struct progress_line {
    FILE *out;
    double last_draw;  /* push_progress.seconds of the last redraw; < 0: never */
    double data_start; /* when the data phase began; < 0: not yet */
    size_t last_len;   /* of the last line drawn, to blank what it leaves */
};

/* A display on out (stderr); enabled only when out is a terminal. */
void progress_line_init(struct progress_line *pl, FILE *out);

/* Should this command draw at all: a terminal, and not --json or --quiet. */
bool progress_wanted(FILE *out);

/* Format one line for pp into buf (no \r, no newline).  Pure: for tests.
 * data_start: as in struct progress_line. */
void progress_format(const struct push_progress *pp, double data_start, char *buf, size_t size);

/* push_options.on_progress: arg is a struct progress_line. */
void progress_push_hook(const struct push_progress *pp, void *arg);

#endif
