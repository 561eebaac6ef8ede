/*
 * hosts.h — separate "hosts" for tests: one network namespace per host,
 * joined to host 0 (A, where the mount runs) by a veth pair each, with an
 * sshd of its own, so a mirror reaches it over TCP exactly as it would a
 * real machine (a cut link, a stalled connection, a killed far side).
 *
 * Namespaces are named uniquely (wsync-h<pid>-<i>), reached with
 * `nsenter --net=/run/netns/NAME` (never `ip netns exec`, whose private
 * mount namespace would pin FUSE mounts), and removed by a guard process
 * when the test process ends however it ends; the guard kills only the
 * processes inside those namespaces.
 */
#ifndef WSYNC_TEST_HOSTS_H
#define WSYNC_TEST_HOSTS_H

#include <limits.h>
#include <stddef.h>

#define HOSTS_MAX 4

struct whosts {
    size_t n;
    char ns[HOSTS_MAX][64];   /* ns[0] is A */
    char ip[HOSTS_MAX][32];   /* host i's address on the A<->i link (i >= 1) */
    char dev[HOSTS_MAX][16];  /* A's end of the A<->i link */
    char dir[PATH_MAX];       /* keys and sshd configs */
    char rsh[PATH_MAX + 512]; /* for --rsh: ssh from A with our key */
};

/* Make n hosts (2..HOSTS_MAX) with sshd listening on each host >= 1.
 * Asserts on failure. */
void hosts_setup(struct whosts *h, size_t n);

/* Kill what runs in the namespaces, delete them and the key dir. */
void hosts_teardown(struct whosts *h);

/* DEST for `path` on host i: "IP:path". */
const char *hosts_dest(const struct whosts *h, size_t i, const char *path, char *out, size_t size);

/* Take A's end of the link to host i down or up. */
void hosts_link(const struct whosts *h, size_t i, int up);

/* SIGKILL every process in host i's namespace whose command line contains
 * `needle` (an argument unique to the test, such as a temp path); returns
 * how many. */
int hosts_kill_matching(const struct whosts *h, size_t i, const char *needle);

#endif
