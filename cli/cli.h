/*
 * cli.h — shared pieces of the command layer: one entry point per command,
 * error reporting, and finding the daemon that serves a path.
 * Commands parse arguments and call into fs/ and sync/; they decide what is
 * printed and the exit code.  Exit codes: 0 ok, 1 failure, 2 usage error.
 */
#ifndef WSYNC_CLI_H
#define WSYNC_CLI_H

#include <stdbool.h>

#define EXIT_USAGE 2

int cmd_mount(int argc, char **argv);
int cmd_unmount(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_log(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_remote(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_sync(int argc, char **argv);
int cmd_conflicts(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_overlay(int argc, char **argv);

/* "wsync: " + message + newline on stderr; returns 1 (or EXIT_USAGE for usage_error). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Absolute version of path without touching the filesystem (works on a dead
 * mount, where realpath() fails with ENOTCONN).  Caller frees. */
char *cli_absolute_path(const char *path);

/* DEST as the user typed it, with a local relative path made absolute from
 * the current directory (as rsync takes it); host:path and ssh:// forms are
 * returned as they are.  Caller frees; NULL with errno on failure. */
char *cli_dest_arg(const char *dest);

/* Find SRC for `path` (a mount point, anything inside a mount, or SRC or
 * anything inside it).  On success *src is malloc'ed.  0 or -errno. */
int cli_find_src(const char *path, char **src);

/* Ask the daemon of `src` and print its reply; 0, or 1 with a message. */
int cli_daemon_request(const char *src, const char *request, bool print);

#endif
