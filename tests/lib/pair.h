/*
 * pair.h — the two machines of the live tests: A, this test's tree
 * (src/, mounted at mnt/ by the test), and B, a network-namespace host
 * (hosts.h) whose tree b/ the test may mount at bmnt/.  A reaches B's tree
 * as `dest` through `h.rsh`; B's wsync runs as `bwsync`, labelled hostb,
 * and A's daemon inherits WSYNC_HOST=hosta.
 */
#ifndef WSYNC_TEST_PAIR_H
#define WSYNC_TEST_PAIR_H

#include "harness.h"
#include "hosts.h"

#include <limits.h>
#include <stdbool.h>

struct wpair {
    struct wmount a; /* A: a.src, mounted at a.mnt */
    struct whosts h; /* h.ns[1] is B */
    char btree[PATH_MAX + 16], bmnt[PATH_MAX + 16];
    char dest[PATH_MAX + 64];   /* B's tree, as A names it */
    char bwsync[PATH_MAX + 64]; /* for --wsync-path: B's wsync, labelled hostb */
    bool bmounted;
};

/* Make both trees and B's host; wpair_teardown undoes everything (B's
 * mount included), and the guards do it if the test dies first. */
void wpair_setup(struct wpair *p);
void wpair_teardown(struct wpair *p);

/* `wsync mount` B's tree at bmnt. */
void wpair_mount_b(struct wpair *p);

/* Remote b's object of `wsync status --json` on A's mount (malloc'ed), or
 * NULL when status does not list it. */
char *wpair_status_b(const struct wpair *p);

#endif
