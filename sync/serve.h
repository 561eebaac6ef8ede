/*
 * serve.h — the receiving side: `wsync serve --stdio ROOT`, started by
 * push through ssh or --rsh, speaking the protocol on stdin/stdout.
 */
#ifndef WSYNC_SERVE_H
#define WSYNC_SERVE_H

#include <stddef.h>

/* Serve one session for ROOT on in_fd/out_fd until the peer says BYE or
 * the stream ends.  0, or -errno with err filled (also sent to the peer as
 * an ERROR when the stream still works). */
int serve_run(const char *root, int in_fd, int out_fd, char *err, size_t errsize);

#endif
