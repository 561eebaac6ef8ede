/*
 * transport.h — where the far side is and how to reach it: parse DEST and
 * start `wsync serve --stdio ROOT` there with our stdin/stdout as its byte
 * stream, exactly as rsync starts its server.
 *
 * DEST forms:   /abs/path                 a serve child on this machine
 *               host:/path                `ssh host wsync serve --stdio /path`
 *               ssh://[user@]host[:port]/path
 * --rsh CMD replaces "ssh" word for word (CMD is split on spaces, no shell):
 * with a host, CMD host wsync ...; with a local path, CMD wsync ... (so
 * `--rsh "ip netns exec hostB" /srv` runs the server inside hostB).
 */
#ifndef WSYNC_TRANSPORT_H
#define WSYNC_TRANSPORT_H

#include <stdbool.h>
#include <sys/types.h>

struct dest {
    char *user; /* NULL: the rsh default */
    char *host; /* NULL: local */
    char *port; /* NULL: the rsh default */
    char *path; /* absolute on the far side */
};

/* Parse DEST; -EINVAL with a sentence in err naming what is wrong. */
int dest_parse(const char *text, struct dest *out, char *err, size_t errsize);
void dest_release(struct dest *d);

/* A running far side: its pid and our ends of its stdin/stdout. */
struct transport {
    pid_t pid;
    int to_fd;   /* write: the far side's stdin */
    int from_fd; /* read: the far side's stdout */
};

/* Start `wsync_path serve --stdio [extra] PATH` at d, through rsh (NULL:
 * "ssh") when d has a host or rsh is given.  wsync_path NULL: "wsync" on a
 * remote host, this very binary locally.  The child's stderr is stderr_fd,
 * or ours when it is -1 (a daemon must not hand its caller's pipe to a
 * long-lived child).  0, or -errno with err filled. */
int transport_start(const struct dest *d, const char *rsh, const char *wsync_path,
                    const char *extra_arg, int stderr_fd, struct transport *t, char *err,
                    size_t errsize);

/* Close our ends and reap the child.  Returns its exit status, or 128+signal;
 * waits at most timeout_ms, then kills it (SIGTERM, then SIGKILL). */
int transport_finish(struct transport *t, int timeout_ms);

#endif
