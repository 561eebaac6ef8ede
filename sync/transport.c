/* transport.c — see transport.h. */
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void dest_release(struct dest *d)
{
    free(d->user);
    free(d->host);
    free(d->port);
    free(d->path);
    *d = (struct dest){0};
}

static int parse_fail(struct dest *d, char *err, size_t errsize, const char *text,
                      const char *why)
{
    snprintf(err, errsize, "destination '%s': %s", text, why);
    dest_release(d);
    return -EINVAL;
}

int dest_parse(const char *text, struct dest *d, char *err, size_t errsize)
{
    *d = (struct dest){0};
    if (!text || !*text)
        return parse_fail(d, err, errsize, "", "empty");
    if (strncmp(text, "ssh://", 6) == 0) {
        const char *p = text + 6;
        const char *slash = strchr(p, '/');
        if (!slash || slash == p)
            return parse_fail(d, err, errsize, text, "expected ssh://[user@]host[:port]/path");
        char *auth = strndup(p, (size_t)(slash - p));
        char *at = strrchr(auth, '@');
        char *hostpart = auth;
        if (at) {
            *at = '\0';
            d->user = strdup(auth);
            hostpart = at + 1;
        }
        char *colon = strrchr(hostpart, ':');
        if (colon) {
            *colon = '\0';
            d->port = strdup(colon + 1);
            if (!*d->port || strspn(d->port, "0123456789") != strlen(d->port)) {
                free(auth);
                return parse_fail(d, err, errsize, text, "the port is not a number");
            }
        }
        d->host = strdup(hostpart);
        free(auth);
        d->path = strdup(slash);
        if (!*d->host)
            return parse_fail(d, err, errsize, text, "no host");
        return 0;
    }
    const char *colon = strchr(text, ':');
    const char *slash = strchr(text, '/');
    if (colon && (!slash || colon < slash)) {
        /* host:/path (rsync's form); host:relative is relative to $HOME there */
        d->host = strndup(text, (size_t)(colon - text));
        d->path = strdup(colon + 1);
        char *at = strrchr(d->host, '@');
        if (at) {
            *at = '\0';
            d->user = strdup(d->host);
            memmove(d->host, at + 1, strlen(at + 1) + 1);
        }
        if (!*d->host)
            return parse_fail(d, err, errsize, text, "no host before ':'");
        if (!*d->path)
            return parse_fail(d, err, errsize, text, "no path after ':'");
        return 0;
    }
    if (text[0] != '/')
        return parse_fail(d, err, errsize, text,
                          "a local destination must be an absolute path");
    d->path = strdup(text);
    return 0;
}

/* Append the words of cmd (split on blanks) to argv. */
static int add_words(char **argv, int n, int max, char *cmd)
{
    for (char *save = NULL, *w = strtok_r(cmd, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
        if (n < max - 1)
            argv[n++] = w;
    return n;
}

int transport_start(const struct dest *d, const char *rsh, const char *wsync_path,
                    const char *extra_arg, int stderr_fd, struct transport *t, char *err,
                    size_t errsize)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    char *rsh_copy = strdup(rsh ? rsh : "ssh");
    char *argv[64];
    int argc = 0;
    char userhost[512], port_opt[64];
    bool remote = d->host != NULL;
    if (remote || rsh) {
        argc = add_words(argv, argc, 64, rsh_copy);
        /* ssh takes the port from -p; any other rsh gets it only if it is ssh too. */
        const char *first = argc ? argv[0] : "";
        const char *base = strrchr(first, '/') ? strrchr(first, '/') + 1 : first;
        if (remote && d->port && strcmp(base, "ssh") == 0) {
            argv[argc++] = "-p";
            snprintf(port_opt, sizeof(port_opt), "%s", d->port);
            argv[argc++] = port_opt;
        }
        if (remote) {
            snprintf(userhost, sizeof(userhost), "%s%s%s", d->user ? d->user : "",
                     d->user ? "@" : "", d->host);
            argv[argc++] = userhost;
        }
    }
    argv[argc++] = (char *)(wsync_path ? wsync_path : remote ? "wsync" : self);
    argv[argc++] = "serve";
    argv[argc++] = "--stdio";
    if (extra_arg)
        argv[argc++] = (char *)extra_arg;
    argv[argc++] = d->path;
    argv[argc] = NULL;

    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
        snprintf(err, errsize, "pipe: %s", strerror(errno));
        free(rsh_copy);
        return -errno;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        snprintf(err, errsize, "fork: %s", strerror(e));
        free(rsh_copy);
        return -e;
    }
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        if (stderr_fd >= 0)
            dup2(stderr_fd, STDERR_FILENO);
        execvp(argv[0], argv);
        fprintf(stderr, "wsync: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    free(rsh_copy);
    signal(SIGPIPE, SIG_IGN); /* a dead far side is an error return, not a signal */
    t->pid = pid;
    t->to_fd = in[1];
    t->from_fd = out[0];
    return 0;
}

int transport_finish(struct transport *t, int timeout_ms)
{
    if (t->to_fd >= 0)
        close(t->to_fd);
    if (t->from_fd >= 0)
        close(t->from_fd);
    t->to_fd = t->from_fd = -1;
    if (t->pid <= 0)
        return 0;
    int status = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int sig = 0;;) {
        pid_t r = waitpid(t->pid, &status, WNOHANG);
        if (r == t->pid || (r < 0 && errno != EINTR))
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (ms > timeout_ms && sig == 0) {
            kill(t->pid, SIGTERM);
            sig = SIGTERM;
        } else if (ms > timeout_ms + 2000 && sig == SIGTERM) {
            kill(t->pid, SIGKILL);
            sig = SIGKILL;
        }
        usleep(2000);
    }
    t->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
