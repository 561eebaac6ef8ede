/* cmd_unmount.c — `wsync unmount [--lazy] MNT`: flush, unmount, wait for the daemon. */
#include "../fs/mounts.h"
#include "../sync/control.h"
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char help[] =
    "usage: wsync unmount [OPTIONS] MNT\n"
    "\n"
    "Flush pending changes to every reachable remote (waiting at most\n"
    "--flush-timeout), unmount MNT and wait for its daemon to exit.  Remotes\n"
    "that could not be flushed are named with the cause; they catch up when\n"
    "the project is next mounted.  A mount whose daemon died (\"Transport\n"
    "endpoint is not connected\") is cleaned up too.\n"
    "\n"
    "Options:\n"
    "  -l, --lazy          detach now even if files under MNT are open; the\n"
    "                      daemon exits once they are closed\n"
    "  -t, --timeout SECS  how long to wait for the daemon (default 30)\n"
    "      --flush-timeout SECS  how long to wait for remotes (default 10)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Examples:\n"
    "  wsync unmount /srv\n"
    "  wsync unmount --flush-timeout 60 /srv   # a slow link: wait longer\n";

/* Wait for pid to exit; true if it did within timeout_ms. */
static bool wait_exit(pid_t pid, int timeout_ms)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0)
        return errno == ESRCH;
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    close(pfd);
    return r > 0;
}

int cmd_unmount(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"lazy", no_argument, NULL, 'l'},
        {"timeout", required_argument, NULL, 't'},
        {"flush-timeout", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool lazy = false;
    double timeout = 30, flush_timeout = 10;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "lt:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'l': lazy = true; break;
        case 't': {
            char *end;
            timeout = strtod(optarg, &end);
            if (*end || !(timeout >= 0))
                return cli_usage_error("unmount", "--timeout wants seconds >= 0, not '%s'",
                                       optarg);
            break;
        }
        case 'F': {
            char *end;
            flush_timeout = strtod(optarg, &end);
            if (*end || !(flush_timeout >= 0))
                return cli_usage_error("unmount", "--flush-timeout wants seconds >= 0, not '%s'",
                                       optarg);
            break;
        }
        case 'h': fputs(help, stdout); return 0;
        default: return cli_usage_error("unmount", "unknown option");
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("unmount", "expected MNT");

    char *mnt = realpath(argv[optind], NULL);
    if (!mnt)
        mnt = cli_absolute_path(argv[optind]); /* dead mounts fail realpath */
    if (!mnt)
        return cli_error("%s: %s", argv[optind], strerror(errno));
    struct mount_info m;
    int r = mounts_at(mnt, &m);
    if (r) {
        r = cli_error("%s is not mounted", mnt);
        free(mnt);
        return r;
    }
    if (strcmp(m.fstype, WSYNC_FSTYPE) != 0) {
        r = cli_error("%s is not a wsync mount (it is %s)", mnt, m.fstype);
        goto out;
    }

    /* Ask the daemon to flush and tell us its pid; a dead one cannot. */
    char state[4096];
    snprintf(state, sizeof(state), "%s/.wsync", m.source);
    pid_t pid = 0;
    char *reply = NULL;
    char flush[64];
    snprintf(flush, sizeof(flush), "flush %d", flush_timeout > 0 ? (int)(flush_timeout * 1000) : 1);
    if (control_request(state, flush, &reply) == 0) {
        /* "ok", or one line per remote that did not acknowledge in time. */
        for (char *line = strtok(reply, "\n"); line; line = strtok(NULL, "\n"))
            if (strncmp(line, "unflushed ", 10) == 0)
                fprintf(stderr, "wsync: not flushed to remote %s\n", line + 10);
            else if (strncmp(line, "unflushed:", 10) == 0)
                fprintf(stderr, "wsync: not flushed:%s\n", line + 10);
        free(reply);
        reply = NULL;
        if (control_request(state, "pid", &reply) == 0)
            pid = (pid_t)atoi(reply);
        free(reply);
    } else {
        fprintf(stderr, "wsync: removing the stale mount at %s\n", mnt);
        lazy = true;
    }

    if (umount2(mnt, lazy ? MNT_DETACH : 0) < 0) {
        if (errno == EBUSY)
            r = cli_error("%s is busy: a process has a file open or its working directory "
                          "under it (find it with 'fuser -vm %s', or use --lazy)",
                          mnt, mnt);
        else
            r = cli_error("cannot unmount %s: %s", mnt, strerror(errno));
        goto out;
    }
    if (pid > 0 && !lazy && !wait_exit(pid, (int)(timeout * 1000)))
        r = cli_error("unmounted %s, but its daemon (pid %d) did not exit within %.0f s", mnt,
                      (int)pid, timeout);
out:
    mount_info_release(&m);
    free(mnt);
    return r;
}
