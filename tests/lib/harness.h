/*
 * harness.h — helpers for tests that drive the real `wsync` binary: temp
 * trees, mounts made and removed with `wsync mount`/`unmount`, commands,
 * bounded polling, and tree comparison.
 *
 * WSYNC_BIN (set by meson) names the binary under test.  Every helper that
 * can fail asserts with ck_assert_msg, naming what failed.
 */
#ifndef WSYNC_TEST_HARNESS_H
#define WSYNC_TEST_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct wmount {
    char root[PATH_MAX]; /* temp dir holding src/ and mnt/ */
    char src[PATH_MAX];
    char mnt[PATH_MAX];
    bool mounted;
};

struct Suite;

/* Run every test of suite s (check's fork mode) and free it; the process
 * exit status: 0 if all passed, else 1. */
int wm_run_suite(struct Suite *s);

/* Path of the wsync binary under test. */
const char *wm_bin(void);

/* Make root/src and root/mnt under a fresh temp dir; nothing mounted. */
void wm_prepare(struct wmount *m);

/* Prepare and mount src at mnt with extra `wsync mount` options (may be "").
 * Asserts that the mount succeeded and is ready. */
void wm_setup(struct wmount *m, const char *mount_opts);

/* Unmount (if mounted) and remove the temp tree.  Safe to call twice. */
void wm_teardown(struct wmount *m);

/* A network namespace for a far host of this test, named after the test's
 * tree (wsync-TAG-SUFFIX-), so names never collide across tests and the
 * guard deletes it, with anything still running in it, if the test dies
 * before its teardown. */
void wm_netns(const struct wmount *m, const char *tag, char *out, size_t size);

/* Join dir and a relative path into a static-free buffer owned by the caller. */
void wm_path(char *out, size_t size, const char *dir, const char *rel);

/* Run a shell command; returns its exit status (or 128+signal). */
int wm_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Run a shell command and return its stdout (malloc'ed, NUL-terminated);
 * *status gets the exit status if status is not NULL. */
char *wm_sh_out(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Run `wsync ARGS` (the binary under test); *out gets its stdout and
 * stderr together (malloc'ed).  Returns its exit status. */
int wm_wsync(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Run `wsync ARGS`; assert it exits 0, quoting its output if not. */
void wm_wsync_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Fork a guard process.  Returns false at once in the test process.  In
 * the guard (detached: its own session, stdio on /dev/null, no inherited
 * fds) it returns true only once the test process has ended, however it
 * ended: check _exits a failed test, skipping its teardown.  The guard then
 * removes what the test left and exits. */
bool wm_fork_guard(void);

/* Write root/rel, making its parent directories first. */
void wm_put(const char *root, const char *rel, const char *data);

/* Poll (bounded) until root/rel holds exactly want; fail naming it if not. */
void wm_appears(const char *root, const char *rel, const char *want, int timeout_ms);

/* How many conflict copies of stem (STEM.conflict-*) dir holds. */
int wm_conflict_copies(const char *dir, const char *stem);

/* Whole-file helpers; read returns malloc'ed contents or NULL (errno set). */
void wm_write(const char *path, const char *data);
char *wm_read(const char *path, size_t *len);

/* Poll cond(arg) every millisecond or so until true or timeout_ms passes. */
bool wm_poll(bool (*cond)(void *arg), void *arg, int timeout_ms);

/* Poll until the file at path holds exactly `want` (NULL: until it is gone). */
bool wm_poll_content(const char *path, const char *want, int timeout_ms);

/* Compare two trees: types, permission bits, sizes, contents, symlink
 * targets, names.  `.wsync` at the top of either is ignored.  On the first
 * difference returns false and describes it in why. */
bool wm_trees_equal(const char *a, const char *b, char *why, size_t why_size);

/* The number after "key": in JSON text s (first match), or -1. */
long long wm_json_num(const char *s, const char *key);

/* `wsync status --json` of m's mount (malloc'ed), and one number of it
 * (-1 if absent). */
char *wm_status_json(const struct wmount *m);
long long wm_status_num(const struct wmount *m, const char *key);

/* For wm_poll, arg a struct wmount *: the daemon has noted nothing it has
 * not indexed yet, and its startup scan is done (index_batches >= 1). */
bool wm_caught_up(void *arg);

/* The string after "key": in s, copied into out; false if absent/too long. */
bool wm_json_str(const char *s, const char *key, char *out, size_t size);

/* rm -rf, without following symlinks. */
void wm_rm_rf(const char *path);

#endif
