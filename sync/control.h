/*
 * control.h — the running daemon's control socket, SRC/.wsync/control.sock.
 *
 * Commands (`wsync status`, `log`, `unmount`) talk to the daemon over it:
 * one request line in, a text reply out, then the daemon closes.  The socket
 * is reached through /proc/self/fd/N of the state dir, so a deep SRC never
 * hits the 108-byte sun_path limit.
 */
#ifndef WSYNC_CONTROL_H
#define WSYNC_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf;
struct control_server;

#define CONTROL_SOCKET_NAME "control.sock"
#define CONTROL_REQUEST_MAX 4096

/* Handle one request line (no newline) by appending the reply to `reply`. */
typedef void (*control_handler)(const char *request, struct strbuf *reply, void *arg);

/* Listen in the directory `state_fd`, serving on a thread of its own.
 * NULL with errno set on failure (another daemon already listening: EADDRINUSE). */
struct control_server *control_server_start(int state_fd, control_handler fn, void *arg);
void control_server_stop(struct control_server *srv);

/* Send `request` to the daemon whose state dir is `state_dir`; the reply is
 * malloc'ed into *reply.  -errno on failure (ECONNREFUSED/ENOENT: no daemon). */
int control_request(const char *state_dir, const char *request, char **reply);

/* Is a daemon serving state_dir right now?  True only if its socket
 * accepts a connection and answers "pid" with a number within timeout_ms;
 * a stale socket file left by a dead daemon (ECONNREFUSED), a missing one,
 * or a daemon that does not answer in time is false. */
bool control_daemon_answers(const char *state_dir, int timeout_ms);

#endif
