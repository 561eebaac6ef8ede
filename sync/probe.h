/*
 * probe.h — a cheap look at a far side, for `wsync doctor`.
 *
 * The client starts `wsync serve --stdio --probe ROOT` through the same
 * transport push uses and exchanges HELLOs with it, so a protocol mismatch
 * is found (and named, with both versions) exactly as push would find it.
 * The far side changes nothing: it does not create ROOT, open an index or
 * scan.  Besides its HELLO it writes one text line to its stderr,
 *
 *     wsync-probe: version=V protocol=N time_ns=T root=STATE avail=BYTES writable=0|1 mounted=0|1
 *
 * (STATE: dir, missing, notdir), sampled just before its HELLO is sent.
 * mounted=1: ROOT is the SRC of a `wsync mount` running there (its
 * control socket answered); an `auto` remote runs two-way then.  Far sides
 * older than that fact leave it out, which reads as "not mounted".  The
 * line goes to stderr, not into the protocol stream, so that adding facts
 * never changes the protocol; a far side too old to know --probe says so on
 * stderr and exits 2, which the client reports as such.
 */
#ifndef WSYNC_PROBE_H
#define WSYNC_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport.h"

#define PROBE_LINE_PREFIX "wsync-probe: "

struct probe_result {
    bool answered;         /* a HELLO came back: the fields below are set */
    unsigned protocol;     /* the far side's protocol version */
    char tool_version[65]; /* the far side's wsync version */
    bool have_facts;       /* the wsync-probe line was read */
    int64_t far_time_ns;   /* the far side's CLOCK_REALTIME at its HELLO */
    int64_t local_time_ns; /* ours at the middle of the round trip */
    int64_t rtt_ns;        /* HELLO sent to HELLO received */
    char root_state[16];   /* "dir", "missing" or "notdir" */
    int64_t avail_bytes;   /* free to an unprivileged user at ROOT (or its
                              nearest existing parent); -1 unknown */
    bool writable;         /* ROOT (or that parent) is writable there */
    int far_mounted;       /* 1: a wsync mount runs on ROOT there; 0: none;
                              -1: not said (a far side older than the fact) */
    int exit_status;       /* of the rsh/serve child; 127: could not be run */
    char far_stderr[1024]; /* what else the far side printed, trimmed */
};

/* Probe the far side d (see transport.h for rsh and wsync_path).  0 when a
 * HELLO came back (res->answered), else -errno with err naming the cause
 * (a protocol mismatch names both versions; res->far_stderr may say more).
 * Never waits more than about timeout_ms for the far side. */
int probe_far_side(const struct dest *d, const char *rsh, const char *wsync_path, int timeout_ms,
                   struct probe_result *res, char *err, size_t errsize);

/* The far side: read the peer's HELLO on in_fd, write the wsync-probe line
 * for root to stderr, answer with our HELLO on out_fd, and wait for BYE or
 * the end of the stream.  Touches nothing under root.  0 or -errno (err
 * filled, and sent to the peer as an ERROR when the stream works). */
int probe_serve(const char *root, int in_fd, int out_fd, char *err, size_t errsize);

#endif
