/*
 * control.c — unix-socket request/reply server and client for the daemon.
 *
 * The server thread handles one connection at a time: requests are tiny
 * and answered from memory, so a queue never forms.
 */
#include "control.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

struct control_server {
    int listen_fd;
    int stop_pipe[2];
    int state_fd;
    control_handler fn;
    void *arg;
    pthread_t thread;
};

static int socket_addr(int dir_fd, struct sockaddr_un *addr)
{
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    int n = snprintf(addr->sun_path, sizeof(addr->sun_path), "/proc/self/fd/%d/%s", dir_fd,
                     CONTROL_SOCKET_NAME);
    return n > 0 && (size_t)n < sizeof(addr->sun_path) ? 0 : -ENAMETOOLONG;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void serve_one(struct control_server *srv, int c)
{
    char req[CONTROL_REQUEST_MAX];
    size_t len = 0;
    /* A client gets 2 s to send its line; a stuck one must not wedge us. */
    struct pollfd p = {.fd = c, .events = POLLIN};
    while (len < sizeof(req) - 1 && poll(&p, 1, 2000) > 0) {
        ssize_t n = read(c, req + len, sizeof(req) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (memchr(req, '\n', len))
            break;
    }
    req[len] = '\0';
    char *nl = strchr(req, '\n');
    if (nl)
        *nl = '\0';
    struct strbuf reply = STRBUF_INIT;
    srv->fn(req, &reply, srv->arg);
    write_all(c, reply.buf, reply.len);
    strbuf_release(&reply);
}

static void *server_main(void *arg)
{
    pthread_setname_np(pthread_self(), "wsync-control"); /* for top -H and perf */
    struct control_server *srv = arg;
    struct pollfd p[2] = {{.fd = srv->listen_fd, .events = POLLIN},
                          {.fd = srv->stop_pipe[0], .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        int c = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        serve_one(srv, c);
        close(c);
    }
    return NULL;
}

/* A socket file left by a dead daemon answers ECONNREFUSED: reuse its name. */
static int remove_stale_socket(const struct sockaddr_un *addr)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    int r = connect(s, (const struct sockaddr *)addr, sizeof(*addr));
    int e = errno;
    close(s);
    if (r == 0)
        return -EADDRINUSE;
    if (e == ECONNREFUSED)
        unlink(addr->sun_path);
    return 0;
}

struct control_server *control_server_start(int state_fd, control_handler fn, void *arg)
{
    struct control_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    srv->fn = fn;
    srv->arg = arg;
    srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
    srv->state_fd = state_fd;
    struct sockaddr_un addr;
    int e = socket_addr(state_fd, &addr);
    if (!e)
        e = remove_stale_socket(&addr);
    if (e) {
        free(srv);
        errno = -e;
        return NULL;
    }
    srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv->listen_fd < 0 || bind(srv->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(srv->listen_fd, 16) < 0 || pipe2(srv->stop_pipe, O_CLOEXEC) < 0 ||
        (errno = pthread_create(&srv->thread, NULL, server_main, srv)) != 0) {
        int saved = errno;
        if (srv->listen_fd >= 0)
            close(srv->listen_fd);
        if (srv->stop_pipe[0] >= 0) {
            close(srv->stop_pipe[0]);
            close(srv->stop_pipe[1]);
        }
        free(srv);
        errno = saved;
        return NULL;
    }
    return srv;
}

void control_server_stop(struct control_server *srv)
{
    if (!srv)
        return;
    ssize_t r = write(srv->stop_pipe[1], "x", 1);
    (void)r;
    pthread_join(srv->thread, NULL);
    close(srv->listen_fd);
    close(srv->stop_pipe[0]);
    close(srv->stop_pipe[1]);
    unlinkat(srv->state_fd, CONTROL_SOCKET_NAME, 0);
    free(srv);
}

int control_request(const char *state_dir, const char *request, char **reply)
{
    *reply = NULL;
    int dir = open(state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -errno;
    struct sockaddr_un addr;
    int e = socket_addr(dir, &addr);
    int s = e ? -1 : socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (!e && (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof(addr)) < 0))
        e = -errno;
    close(dir);
    if (e) {
        if (s >= 0)
            close(s);
        return e;
    }
    struct strbuf out = STRBUF_INIT;
    if (write_all(s, request, strlen(request)) < 0 || write_all(s, "\n", 1) < 0) {
        e = -errno;
        close(s);
        return e;
    }
    char buf[4096];
    ssize_t n;
    while ((n = read(s, buf, sizeof(buf))) > 0)
        strbuf_add(&out, buf, (size_t)n);
    e = n < 0 ? -errno : 0;
    close(s);
    if (e) {
        strbuf_release(&out);
        return e;
    }
    *reply = strbuf_detach(&out);
    return 0;
}

bool control_daemon_answers(const char *state_dir, int timeout_ms)
{
    int dir = open(state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return false;
    struct sockaddr_un addr;
    int s = socket_addr(dir, &addr) ? -1 : socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* Bounded in every step: connect (a full backlog blocks it) and the
     * reply (a wedged daemon) both honour these timeouts on AF_UNIX. */
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    bool ok = s >= 0 && setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0 &&
              setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
              connect(s, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
              write_all(s, "pid\n", 4) == 0;
    close(dir);
    char buf[32];
    size_t len = 0;
    ssize_t n;
    while (ok && len < sizeof(buf) - 1 && (n = read(s, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)n;
    if (s >= 0)
        close(s);
    buf[len] = '\0';
    char *end = buf;
    long pid = ok && len ? strtol(buf, &end, 10) : 0;
    return pid > 0 && (*end == '\n' || *end == '\0');
}
