/* probe.c — see probe.h. */
#include "probe.h"
#include "control.h"
#include "message.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* A live daemon answers "pid" from memory at once; a wedged one must not
 * hold the probe (whose client waits a few seconds in all). */
#define MOUNT_CHECK_MS 1000

#ifndef WSYNC_VERSION
#define WSYNC_VERSION "unknown"
#endif

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the far side ---- */

static void send_error(struct wire *w, int code, const char *text)
{
    char ignored[128];
    struct msg m = {.type = MSG_ERROR,
                    .error = {.code = (uint32_t)(code < 0 ? -code : code),
                              .flags = MSG_ERROR_FATAL,
                              .path = "",
                              .message = text}};
    if (wire_send(w, &m, ignored, sizeof(ignored)) == 0)
        wire_flush(w, ignored, sizeof(ignored));
}

/* What a push would meet at root: its state, and the free space and
 * writability of root or, when it is missing, its nearest existing parent. */
static void root_facts(const char *root, const char **state, int64_t *avail, bool *writable)
{
    struct stat st;
    *state = stat(root, &st) < 0 ? "missing" : S_ISDIR(st.st_mode) ? "dir" : "notdir";
    *avail = -1;
    *writable = false;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s", root);
    for (;;) {
        struct statvfs vfs;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) && statvfs(path, &vfs) == 0) {
            *avail = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
            *writable = access(path, W_OK) == 0;
            return;
        }
        char *slash = strrchr(path, '/');
        if (!slash || slash == path) {
            if (strcmp(path, "/") == 0)
                return;
            snprintf(path, sizeof(path), "/");
            continue;
        }
        *slash = '\0';
    }
}

int probe_serve(const char *root, int in_fd, int out_fd, char *err, size_t errsize)
{
    err[0] = '\0';
    struct wire *w = wire_new(in_fd, out_fd);
    if (!w)
        return -ENOMEM;
    struct msg hello;
    int r = wire_recv(w, &hello, err, errsize);
    if (r) {
        send_error(w, r, err);
        wire_free(w);
        return r;
    }
    bool sender = hello.type == MSG_HELLO && hello.hello.role == MSG_ROLE_SENDER;
    msg_release(&hello);
    if (!sender) {
        snprintf(err, errsize, "the peer is not a sender");
        send_error(w, -EPROTO, err);
        wire_free(w);
        return -EPROTO;
    }
    const char *state;
    int64_t avail;
    bool writable;
    root_facts(root, &state, &avail, &writable);
    char ctl_dir[PATH_MAX];
    snprintf(ctl_dir, sizeof(ctl_dir), "%s/.wsync", root);
    bool mounted = control_daemon_answers(ctl_dir, MOUNT_CHECK_MS);
    fprintf(stderr,
            PROBE_LINE_PREFIX "version=%s protocol=%u time_ns=%" PRId64 " root=%s avail=%" PRId64
                              " writable=%d mounted=%d\n",
            WSYNC_VERSION, (unsigned)WIRE_PROTOCOL_VERSION, realtime_ns(), state, avail, writable,
            mounted);
    fflush(stderr);
    struct msg mine = {.type = MSG_HELLO, .hello = {.role = MSG_ROLE_RECEIVER}};
    r = wire_send(w, &mine, err, errsize);
    if (!r)
        r = wire_flush(w, err, errsize);
    /* Then wait for BYE or the end of the stream; anything else ends it too. */
    struct msg m;
    char ignored[256];
    if (!r && wire_recv(w, &m, ignored, sizeof(ignored)) == 0)
        msg_release(&m);
    wire_free(w);
    return r;
}

/* ---- the client ---- */

/* Parse the wsync-probe line; false if it is not one. */
static bool parse_facts(const char *line, struct probe_result *res)
{
    if (strncmp(line, PROBE_LINE_PREFIX, strlen(PROBE_LINE_PREFIX)) != 0)
        return false;
    char version[65] = "", state[16] = "";
    unsigned proto;
    long long t, avail;
    int writable, mounted = -1;
    int got = sscanf(line + strlen(PROBE_LINE_PREFIX),
                     "version=%64s protocol=%u time_ns=%lld root=%15s avail=%lld writable=%d "
                     "mounted=%d",
                     version, &proto, &t, state, &avail, &writable, &mounted);
    if (got < 6)
        return false;
    res->far_mounted = got == 7 ? mounted != 0 : -1;
    res->have_facts = true;
    res->far_time_ns = t;
    res->avail_bytes = avail;
    res->writable = writable != 0;
    snprintf(res->root_state, sizeof(res->root_state), "%s", state);
    if (!res->tool_version[0])
        snprintf(res->tool_version, sizeof(res->tool_version), "%s", version);
    return true;
}

/* Read what the far side wrote on stderr (it has exited: take what is
 * there, never wait for a straggler holding the pipe open). */
static void read_far_stderr(int fd, struct probe_result *res)
{
    char buf[8192];
    size_t len = 0;
    ssize_t n;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    size_t out = 0;
    for (char *save = NULL, *line = strtok_r(buf, "\r\n", &save); line;
         line = strtok_r(NULL, "\r\n", &save)) {
        if (parse_facts(line, res) || !*line)
            continue;
        int w = snprintf(res->far_stderr + out, sizeof(res->far_stderr) - out, "%s%s",
                         out ? "; " : "", line);
        if (w < 0 || (size_t)w >= sizeof(res->far_stderr) - out)
            break;
        out += (size_t)w;
    }
}

int probe_far_side(const struct dest *d, const char *rsh, const char *wsync_path, int timeout_ms,
                   struct probe_result *res, char *err, size_t errsize)
{
    *res = (struct probe_result){.avail_bytes = -1, .exit_status = -1, .far_mounted = -1};
    err[0] = '\0';
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) < 0) {
        int e = errno;
        snprintf(err, errsize, "pipe: %s", strerror(e));
        return -e;
    }
    struct transport t = {.to_fd = -1, .from_fd = -1};
    int r = transport_start(d, rsh, wsync_path, "--probe", errpipe[1], &t, err, errsize);
    close(errpipe[1]);
    if (r) {
        close(errpipe[0]);
        return r;
    }
    struct wire *w = wire_new(t.from_fd, t.to_fd);
    r = w ? 0 : -ENOMEM;
    struct msg hello = {.type = MSG_HELLO,
                        .hello = {.role = MSG_ROLE_SENDER, .flags = MSG_HELLO_VERIFY}};
    int64_t t0 = realtime_ns();
    if (!r)
        r = wire_send(w, &hello, err, errsize);
    if (!r)
        r = wire_flush(w, err, errsize);
    if (!r) {
        struct pollfd p = {.fd = t.from_fd, .events = POLLIN};
        int n;
        while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
        }
        if (n == 0) {
            snprintf(err, errsize, "no answer within %d s", timeout_ms / 1000);
            r = -ETIMEDOUT;
        }
    }
    struct msg theirs;
    if (!r && !(r = wire_recv(w, &theirs, err, errsize))) {
        int64_t t1 = realtime_ns();
        if (theirs.type == MSG_ERROR) {
            snprintf(err, errsize, "the far side refused: %s", theirs.error.message);
            r = -(int)(theirs.error.code ? theirs.error.code : EPROTO);
        } else if (theirs.hello.role != MSG_ROLE_RECEIVER) {
            snprintf(err, errsize, "the far side is not a receiver");
            r = -EPROTO;
        } else {
            res->answered = true;
            res->protocol = theirs.hello.version;
            snprintf(res->tool_version, sizeof(res->tool_version), "%s",
                     theirs.hello.tool_version ? theirs.hello.tool_version : "");
            res->rtt_ns = t1 - t0;
            res->local_time_ns = t0 + (t1 - t0) / 2;
        }
        msg_release(&theirs);
    }
    if (!r) {
        struct msg bye = {.type = MSG_BYE};
        char ignored[128];
        if (wire_send(w, &bye, ignored, sizeof(ignored)) == 0)
            wire_flush(w, ignored, sizeof(ignored));
    }
    wire_free(w);
    res->exit_status = transport_finish(&t, r ? 1000 : timeout_ms);
    read_far_stderr(errpipe[0], res);
    close(errpipe[0]);
    if (r && res->far_stderr[0]) {
        size_t n = strlen(err);
        snprintf(err + n, errsize - n, "%sthe far side said: %s", n ? "; " : "", res->far_stderr);
    }
    return r;
}
