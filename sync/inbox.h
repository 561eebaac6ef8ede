/*
 * inbox.h — receive one batch from the far side into a local tree, the
 * receiving half of serve.c turned around (for a two-way sync's pull):
 * UPDATE and DELETE are staged in the applier (apply.h: paths opened
 * beneath the root, ids verified, fsync, atomic rename), then at COMMIT we
 * WANT the chunks we lack, take the DATA, make the batch durable, and only
 * then ACK it.  Paths our own rules leave out (ignored, local) are skipped.
 */
#ifndef WSYNC_INBOX_H
#define WSYNC_INBOX_H

#include <stdint.h>

#include "path_state.h"

struct applier;
struct indexer;
struct wire;

/* Called for every path applied, with its new state (absent: deleted). */
typedef void (*inbox_got_fn)(void *arg, const char *path, const struct path_state *s);

/* Read messages until a COMMIT; apply; ACK it.  0, or -errno with err
 * naming the path or the far side's error. */
int inbox_receive(struct wire *w, struct applier *a, struct indexer *rules, inbox_got_fn got,
                  void *arg, char *err, size_t errsize);

#endif
