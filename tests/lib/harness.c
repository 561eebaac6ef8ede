/* harness.c — see harness.h. */
#include "harness.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int wm_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

const char *wm_bin(void)
{
    const char *b = getenv("WSYNC_BIN");
    ck_assert_msg(b && *b, "WSYNC_BIN is not set (run the tests through meson)");
    return b;
}

void wm_path(char *out, size_t size, const char *dir, const char *rel)
{
    int n = snprintf(out, size, "%s/%s", dir, rel);
    ck_assert_msg(n > 0 && (size_t)n < size, "path too long: %s/%s", dir, rel);
}

/* check ends a failed test with _exit() in its forked child, skipping the
 * checked teardown, and kills it outright on a timeout.  So each prepared
 * tree gets a guard process that waits for the test process to end (its
 * pipe reaches EOF) and then unmounts and removes whatever is left. */
/* The unique part mkdtemp gave this test's tree (wsync-test-XXXXXX). */
static const char *root_suffix(const struct wmount *m)
{
    const char *dash = strrchr(m->root, '-');
    return dash ? dash + 1 : m->root;
}

bool wm_fork_guard(void)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0); /* no daemon may inherit the write end */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid > 0) {
        close(p[0]); /* the write end stays open, unused, until we end */
        return false;
    }
    /* Guard: detached from the test's output so meson never waits for it. */
    close(p[1]);
    setsid();
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    for (int fd = 3; fd < 1024; fd++)
        if (fd != p[0])
            close(fd);
    char c;
    while (read(p[0], &c, 1) != 0 && errno == EINTR)
        ;
    return true;
}

static void start_guard(const struct wmount *m)
{
    if (!wm_fork_guard())
        return;
    /* Every mount point under the tree, deepest first: a test may have
     * mounted more than MNT (a far host's own `wsync mount`, a tmpfs).
     * Then the network namespaces wm_netns made for this tree (their names
     * carry its unique suffix), with what the test left running in them. */
    char *cmd;
    if (asprintf(&cmd,
                 "awk -v r='%s/' 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo |"
                 " sort -r | while read -r mp; do"
                 " '%s' unmount --lazy \"$mp\" >/dev/null 2>&1 || umount -l \"$mp\"; done;"
                 " for n in $(ip netns list 2>/dev/null | awk '{ print $1 }' | grep -F -- '-%s-');"
                 " do for p in $(ip netns pids \"$n\"); do kill -9 \"$p\"; done;"
                 " ip netns del \"$n\"; done;"
                 " rm -rf --one-file-system '%s'",
                 m->root, getenv("WSYNC_BIN"), root_suffix(m), m->root) < 0)
        _exit(1);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
}

void wm_prepare(struct wmount *m)
{
    memset(m, 0, sizeof(*m));
    const char *tmp = getenv("TMPDIR");
    snprintf(m->root, sizeof(m->root), "%s/wsync-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_msg(mkdtemp(m->root), "mkdtemp: %s", strerror(errno));
    wm_path(m->src, sizeof(m->src), m->root, "src");
    wm_path(m->mnt, sizeof(m->mnt), m->root, "mnt");
    start_guard(m);
    ck_assert_int_eq(mkdir(m->src, 0755), 0);
    ck_assert_int_eq(mkdir(m->mnt, 0755), 0);
}

void wm_setup(struct wmount *m, const char *mount_opts)
{
    wm_prepare(m);
    /* WSYNC_TEST_MOUNT_OPTS: run a suite again with other defaults
     * (tests/meson.build runs some over /dev/fuse with --no-io-uring). */
    const char *extra = getenv("WSYNC_TEST_MOUNT_OPTS");
    int st = wm_sh("'%s' mount %s %s '%s' '%s'", wm_bin(), extra ? extra : "", mount_opts, m->src,
                   m->mnt);
    ck_assert_msg(st == 0, "wsync mount %s failed with status %d", m->src, st);
    m->mounted = true;
}

void wm_teardown(struct wmount *m)
{
    if (m->mounted) {
        int st = wm_sh("'%s' unmount '%s'", wm_bin(), m->mnt);
        if (st != 0) /* leave nothing behind, even after a failed test */
            umount2(m->mnt, MNT_DETACH);
        m->mounted = false;
    }
    /* A sanitizer report from the daemon lands in its log, not in the test's
     * output: surface it before the tree (and the log) is removed. */
    char log[PATH_MAX + 32];
    char *text = NULL;
    if (m->root[0]) {
        snprintf(log, sizeof(log), "%s/.wsync/daemon.log", m->src);
        text = wm_read(log, NULL);
        wm_rm_rf(m->root);
    }
    m->root[0] = '\0';
    if (text) {
        bool bad = strstr(text, "Sanitizer") || strstr(text, "runtime error");
        if (bad) {
            fprintf(stderr, "the mount daemon reported:\n%.4000s\n", text);
            ck_abort_msg("the mount daemon reported a sanitizer error (see above)");
        }
        free(text);
    }
}

static int vsh(const char *fmt, va_list ap, char **out)
{
    char *cmd;
    ck_assert(vasprintf(&cmd, fmt, ap) >= 0);
    int st;
    if (!out) {
        st = system(cmd);
    } else {
        FILE *p = popen(cmd, "r");
        ck_assert_msg(p, "popen %s: %s", cmd, strerror(errno));
        size_t cap = 4096, len = 0;
        char *buf = malloc(cap);
        size_t n;
        while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
            len += n;
            if (cap - len < 2)
                buf = realloc(buf, cap *= 2);
        }
        buf[len] = '\0';
        *out = buf;
        st = pclose(p);
    }
    free(cmd);
    if (st == -1)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int wm_sh(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int st = vsh(fmt, ap, NULL);
    va_end(ap);
    return st;
}

char *wm_sh_out(int *status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    int st = vsh(fmt, ap, &out);
    va_end(ap);
    if (status)
        *status = st;
    return out;
}

static int vwsync(char **out, const char *fmt, va_list ap, char **args_out)
{
    char *args;
    ck_assert(vasprintf(&args, fmt, ap) >= 0);
    int st;
    *out = wm_sh_out(&st, "'%s' %s 2>&1", wm_bin(), args);
    *args_out = args;
    return st;
}

int wm_wsync(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *args;
    int st = vwsync(out, fmt, ap, &args);
    va_end(ap);
    free(args);
    return st;
}

void wm_wsync_ok(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *args, *out;
    int st = vwsync(&out, fmt, ap, &args);
    va_end(ap);
    ck_assert_msg(st == 0, "wsync %s: exit %d: %s", args, st, out);
    free(out);
    free(args);
}

void wm_put(const char *root, const char *rel, const char *data)
{
    char p[PATH_MAX];
    wm_path(p, sizeof(p), root, rel);
    wm_sh("mkdir -p \"$(dirname '%s')\"", p);
    wm_write(p, data);
}

void wm_appears(const char *root, const char *rel, const char *want, int timeout_ms)
{
    char p[PATH_MAX];
    wm_path(p, sizeof(p), root, rel);
    ck_assert_msg(wm_poll_content(p, want, timeout_ms), "%s never became %s", p, want);
}

int wm_conflict_copies(const char *dir, const char *stem)
{
    char *out = wm_sh_out(NULL, "ls -a '%s' | grep -cF '%s.conflict-'", dir, stem);
    int n = atoi(out);
    free(out);
    return n;
}

void wm_write(const char *path, const char *data)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    size_t len = strlen(data);
    ck_assert_msg(write(fd, data, len) == (ssize_t)len, "write %s: %s", path, strerror(errno));
    ck_assert_int_eq(close(fd), 0);
}

char *wm_read(const char *path, size_t *len_out)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 2)
            buf = realloc(buf, cap *= 2);
    }
    int e = errno;
    close(fd);
    if (n < 0) {
        free(buf);
        errno = e;
        return NULL;
    }
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

bool wm_poll(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (cond(arg))
            return true;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (ms > timeout_ms)
            return cond(arg);
        usleep(1000);
    }
}

struct content_want {
    const char *path, *want;
};

static bool content_is(void *arg)
{
    struct content_want *c = arg;
    char *got = wm_read(c->path, NULL);
    bool ok = c->want ? got && strcmp(got, c->want) == 0 : !got && errno == ENOENT;
    free(got);
    return ok;
}

bool wm_poll_content(const char *path, const char *want, int timeout_ms)
{
    struct content_want c = {path, want};
    return wm_poll(content_is, &c, timeout_ms);
}

static int names_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of dir (without . and .., and without .wsync when top). */
static char **list_dir(const char *dir, bool top, size_t *count)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    size_t n = 0, cap = 16;
    char **names = malloc(cap * sizeof(*names));
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
            (top && !strcmp(de->d_name, ".wsync")))
            continue;
        if (n == cap)
            names = realloc(names, (cap *= 2) * sizeof(*names));
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), names_cmp);
    *count = n;
    return names;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static bool files_equal(const char *a, const char *b)
{
    size_t la, lb;
    char *x = wm_read(a, &la), *y = wm_read(b, &lb);
    bool eq = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return eq;
}

static bool compare(const char *a, const char *b, const char *rel, bool top, char *why, size_t ws)
{
    struct stat sa, sb;
    if (lstat(a, &sa) < 0 || lstat(b, &sb) < 0) {
        snprintf(why, ws, "%s: cannot stat one side", rel);
        return false;
    }
    if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT)) {
        snprintf(why, ws, "%s: type %o vs %o", rel, sa.st_mode & S_IFMT, sb.st_mode & S_IFMT);
        return false;
    }
    if ((sa.st_mode & 07777) != (sb.st_mode & 07777) && !S_ISLNK(sa.st_mode)) {
        snprintf(why, ws, "%s: mode %o vs %o", rel, sa.st_mode & 07777, sb.st_mode & 07777);
        return false;
    }
    if (S_ISREG(sa.st_mode)) {
        if (sa.st_size != sb.st_size || !files_equal(a, b)) {
            snprintf(why, ws, "%s: contents differ (sizes %lld vs %lld)", rel,
                     (long long)sa.st_size, (long long)sb.st_size);
            return false;
        }
    } else if (S_ISLNK(sa.st_mode)) {
        char ta[PATH_MAX] = "", tb[PATH_MAX] = "";
        ssize_t na = readlink(a, ta, sizeof(ta) - 1), nb = readlink(b, tb, sizeof(tb) - 1);
        if (na < 0 || nb < 0 || na != nb || memcmp(ta, tb, (size_t)na) != 0) {
            snprintf(why, ws, "%s: symlink targets differ", rel);
            return false;
        }
    } else if (S_ISDIR(sa.st_mode)) {
        size_t na, nb;
        char **la = list_dir(a, top, &na), **lb = list_dir(b, top, &nb);
        bool ok = la && lb;
        if (!ok)
            snprintf(why, ws, "%s: cannot list", rel);
        for (size_t i = 0; ok && (i < na || i < nb); i++) {
            if (i >= na || i >= nb || strcmp(la[i], lb[i]) != 0) {
                snprintf(why, ws, "%s: entry '%s' vs '%s'", rel, i < na ? la[i] : "(none)",
                         i < nb ? lb[i] : "(none)");
                ok = false;
                break;
            }
            char ca[PATH_MAX], cb[PATH_MAX], cr[PATH_MAX];
            snprintf(ca, sizeof(ca), "%s/%s", a, la[i]);
            snprintf(cb, sizeof(cb), "%s/%s", b, lb[i]);
            snprintf(cr, sizeof(cr), "%s%s%s", rel, *rel ? "/" : "", la[i]);
            ok = compare(ca, cb, cr, false, why, ws);
        }
        if (la)
            free_names(la, na);
        if (lb)
            free_names(lb, nb);
        return ok;
    }
    return true;
}

bool wm_trees_equal(const char *a, const char *b, char *why, size_t why_size)
{
    why[0] = '\0';
    return compare(a, b, "", true, why, why_size);
}

long long wm_json_num(const char *s, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = s ? strstr(s, pat) : NULL;
    return p ? atoll(p + strlen(pat)) : -1;
}

char *wm_status_json(const struct wmount *m)
{
    return wm_sh_out(NULL, "'%s' status --json '%s'", wm_bin(), m->mnt);
}

long long wm_status_num(const struct wmount *m, const char *key)
{
    char *s = wm_status_json(m);
    long long v = wm_json_num(s, key);
    free(s);
    return v;
}

bool wm_caught_up(void *arg)
{
    char *s = wm_status_json(arg);
    long long seq = wm_json_num(s, "seq"), done = wm_json_num(s, "indexed_seq");
    long long pending = wm_json_num(s, "pending"), batches = wm_json_num(s, "index_batches");
    free(s);
    return seq >= 0 && done >= seq && pending == 0 && batches >= 1;
}

bool wm_json_str(const char *s, const char *key, char *out, size_t size)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    const char *p = s ? strstr(s, pat) : NULL;
    if (!p)
        return false;
    p += strlen(pat);
    size_t n = strcspn(p, "\"");
    if (n >= size)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void wm_rm_rf(const char *path)
{
    nftw(path, rm_one, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

void wm_netns(const struct wmount *m, const char *tag, char *out, size_t size)
{
    int n = snprintf(out, size, "wsync-%s-%s-", tag, root_suffix(m));
    ck_assert_msg(n > 0 && (size_t)n < size, "netns name too long");
    ck_assert_msg(wm_sh("ip netns add %s", out) == 0, "ip netns add %s failed", out);
}
