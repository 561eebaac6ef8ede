/*
 * serve_twoway.h — what `wsync serve` adds for a two-way sync
 * (docs/protocol.md §11): answer PEER with this tree's id and host label,
 * and answer a PULL request by sending the paths asked for (outbox.h),
 * each brought up to date in the index first.  A PULL only ever reads.
 */
#ifndef WSYNC_SERVE_TWOWAY_H
#define WSYNC_SERVE_TWOWAY_H

#include <stddef.h>

#include "message.h"

struct index;
struct indexer;
struct wire;
struct pull_request;

/* Send our PEER.  0, or -errno with err naming the cause. */
int serve_peer_reply(struct wire *w, const char *root, char *err, size_t errsize);

/* Take one PULL frame into *pr (made on first use); on the LAST frame, send
 * the batch and wait for its ACK, then reset.  At most
 * SERVE_PULL_MAX_ENTRIES entries per request (-EMSGSIZE). */
#define SERVE_PULL_MAX_ENTRIES (16u << 20)
int serve_pull(struct pull_request **pr, const struct msg_pull *p, struct wire *w,
               struct index *ix, struct indexer *in, const char *root, char *err,
               size_t errsize);
void serve_pull_free(struct pull_request *pr);

#endif
