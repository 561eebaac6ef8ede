/*
 * serve_live.h — what `wsync serve` adds for a live two-way peer
 * (docs/protocol.md §12): it watches ROOT (inotify on every directory but
 * .wsync) and, while the peer is idle (after WATCH), sends one CHANGED as
 * soon as ROOT changed and then stayed quiet for SERVE_LIVE_QUIET_MS, so
 * the peer starts a round at once instead of polling.
 *
 * Invariant: an event is only forgotten by serve_live_rescan(), which the
 * RESCAN handler calls *before* it lists ROOT afresh; so every change made
 * after a listing either is in that listing or leads to a CHANGED.
 */
#ifndef WSYNC_SERVE_LIVE_H
#define WSYNC_SERVE_LIVE_H

#include <stddef.h>

#define SERVE_LIVE_QUIET_MS 2

struct serve_live;
struct wire;

/* A new round is about to list ROOT: forget the events seen so far (the
 * listing covers them).  A NULL sl (no WATCH yet) is fine. */
void serve_live_rescan(struct serve_live *sl);

/* Answer WATCH: start watching ROOT on first use (the first WATCH always
 * answers CHANGED: what happened before the watch began is unknown), then
 * wait until the peer sends something (return 0 without reading it) or
 * ROOT changed and stayed quiet (send CHANGED, flush, return 0).  A watch
 * that cannot be set up (inotify limits) is not an error: the peer's slow
 * fallback poll covers it.  -errno on a stream failure, err filled. */
int serve_live_watch(struct serve_live **sl, struct wire *w, int in_fd, const char *root, char *err,
                     size_t errsize);

void serve_live_free(struct serve_live *sl);

#endif
