/* cmd_overlay.c — `wsync overlay ls|diff|reset|promote [PATH]`. */
#include "../fs/mounts.h"
#include "../fs/overlay_admin.h"
#include "../fs/wfs.h"
#include "../sync/control.h"
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: wsync overlay ls [PATH]\n"
    "       wsync overlay diff [PATH]\n"
    "       wsync overlay reset [PATH]\n"
    "       wsync overlay promote PATH\n"
    "\n"
    "Paths the [local] rules of .wsyncrules name (by default build/, install/,\n"
    "log/, .venv/, venv/, node_modules/, __pycache__/) live in this machine's\n"
    "overlay, SRC/.wsync/overlay, on top of SRC: they survive unmounts and\n"
    "container runs and are never mirrored.  PATH is a path in the mount or\n"
    "in SRC (default: the whole project of the current directory).\n"
    "\n"
    "  ls       what the overlay holds: each local path, its state (new: only\n"
    "           here; merged: over SRC's own copy; deleted: hides SRC's copy)\n"
    "           and the bytes it takes\n"
    "  diff     what differs from SRC below PATH, one path a line:\n"
    "           A added, M modified, D deleted\n"
    "  reset    drop the overlay's version of PATH (everything without PATH):\n"
    "           SRC's version shows again; a running mount sees it at once\n"
    "  promote  move the overlay's version of PATH into SRC (the synced tree);\n"
    "           if the rules still call PATH local it stays unmirrored until\n"
    "           .wsyncrules changes\n"
    "\n"
    "Examples:\n"
    "  wsync overlay ls                      # what is local on this machine\n"
    "  wsync overlay diff /srv/build         # what this machine's build changed\n"
    "  wsync overlay reset /srv/.venv        # start the venv over from SRC's\n"
    "  wsync overlay promote /srv/vendor     # after removing vendor/ from [local]\n";

static const char *subcmd_help[] = {
    "ls", "usage: wsync overlay ls [PATH]\n\nList the local paths this machine's overlay holds "
          "at or below PATH,\nwith their state and size.\n\nExample:\n  wsync overlay ls /srv\n",
    "diff", "usage: wsync overlay diff [PATH]\n\nShow what the overlay changed against SRC below "
            "PATH: A added,\nM modified, D deleted.\n\nExample:\n  wsync overlay diff /srv/build\n",
    "reset", "usage: wsync overlay reset [PATH]\n\nDrop local changes at PATH (all of them "
             "without PATH); SRC's\nversion shows again, in a running mount too.\n\n"
             "Example:\n  wsync overlay reset /srv/node_modules\n",
    "promote", "usage: wsync overlay promote PATH\n\nMove the overlay's version of PATH into "
               "SRC, where it is synced once\nthe rules no longer call it local.\n\n"
               "Example:\n  wsync overlay promote /srv/third_party\n",
};

/* SRC and the path relative to it for a user-given PATH (NULL: "."). */
static int resolve(const char *arg, char **src, char *rel, size_t size)
{
    int r = cli_find_src(arg ? arg : ".", src);
    if (r)
        return cli_error("%s is not in a wsync project or mount: %s", arg ? arg : ".",
                         strerror(-r));
    rel[0] = '\0';
    if (!arg)
        return 0;
    char *abs = cli_absolute_path(arg);
    if (!abs)
        return cli_error("%s: %s", arg, strerror(errno));
    const char *base = NULL;
    struct mount_info m = {0};
    if (mounts_wsync_containing(abs, &m) == 0 && strcmp(m.source, *src) == 0)
        base = m.mountpoint;
    else
        base = *src;
    size_t n = strlen(base);
    const char *p = NULL;
    if (strcmp(base, "/") == 0)
        p = abs + 1;
    else if (strncmp(abs, base, n) == 0 && (abs[n] == '/' || abs[n] == '\0'))
        p = abs[n] ? abs + n + 1 : abs + n;
    int ret = 0;
    if (!p)
        ret = cli_error("%s is not below %s", arg, base);
    else if (strncmp(p, WFS_STATE_DIR, strlen(WFS_STATE_DIR)) == 0 &&
             (p[strlen(WFS_STATE_DIR)] == '/' || !p[strlen(WFS_STATE_DIR)]))
        ret = cli_error("%s is wsync's own state, not a project path", arg);
    else
        snprintf(rel, size, "%s", p);
    mount_info_release(&m);
    free(abs);
    return ret;
}

static void human(uint64_t b, char *out, size_t size)
{
    const char *units = "BKMGT";
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, size, "%lluB", (unsigned long long)b);
    else
        snprintf(out, size, "%.1f%c", v, units[u]);
}

struct ls_state {
    uint64_t total;
    size_t n;
};

static void print_ls(const char *path, char state, uint64_t bytes, void *arg)
{
    struct ls_state *s = arg;
    char sz[32];
    human(bytes, sz, sizeof(sz));
    printf("%8s  %-7s %s\n", sz,
           state == OVADM_ADDED      ? "new"
           : state == OVADM_DELETED ? "deleted"
                                    : "merged",
           path);
    s->total += bytes;
    s->n++;
}

static void print_diff(const char *path, char state, uint64_t bytes, void *arg)
{
    (*(size_t *)arg)++;
    printf("%c %s\n", state, path);
}

/* reset/promote through the daemon when SRC is mounted; 1 if it is not. */
static int via_daemon(const char *src, const char *op, const char *rel)
{
    char state[PATH_MAX], req[CONTROL_REQUEST_MAX];
    snprintf(state, sizeof(state), "%s/%s", src, WFS_STATE_DIR);
    int n = snprintf(req, sizeof(req), "overlay %s %s", op, rel);
    if (n < 0 || (size_t)n >= sizeof(req) || strchr(rel, '\n'))
        return cli_error("path too long or holds a newline: %s", rel);
    char *reply;
    int r = control_request(state, req, &reply);
    if (r == -ENOENT || r == -ECONNREFUSED)
        return -1; /* not mounted: do it here */
    if (r)
        return cli_error("cannot reach the wsync daemon of %s: %s", src, strerror(-r));
    int ret = 0;
    if (strncmp(reply, "error: ", 7) == 0) {
        reply[strcspn(reply, "\n")] = '\0';
        ret = cli_error("%s", reply + 7);
    } else if (strstr(reply, "still-local")) {
        fprintf(stderr, "wsync: note: the rules still call %s local: it is not mirrored\n", rel);
    }
    free(reply);
    return ret;
}

int cmd_overlay(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("overlay", "missing subcommand (ls, diff, reset or promote)");
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        fputs(help, stdout);
        return 0;
    }
    bool known = false;
    for (size_t i = 0; i < sizeof(subcmd_help) / sizeof(*subcmd_help); i += 2)
        if (strcmp(sub, subcmd_help[i]) == 0) {
            known = true;
            if (argc >= 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
                fputs(subcmd_help[i + 1], stdout);
                return 0;
            }
        }
    if (!known)
        return cli_usage_error("overlay", "unknown subcommand '%s'", sub);
    if (argc > 3)
        return cli_usage_error("overlay", "too many arguments");
    if (argc == 3 && argv[2][0] == '-')
        return cli_usage_error("overlay", "unknown option '%s'", argv[2]);
    const char *arg = argc == 3 ? argv[2] : NULL;
    if (strcmp(sub, "promote") == 0 && !arg)
        return cli_usage_error("overlay", "promote needs a PATH");

    char *src = NULL, rel[PATH_MAX];
    int ret = resolve(arg, &src, rel, sizeof(rel));
    if (ret) {
        free(src);
        return ret;
    }
    if (strcmp(sub, "reset") == 0 || strcmp(sub, "promote") == 0) {
        ret = via_daemon(src, sub, rel);
        if (ret >= 0) {
            free(src);
            return ret;
        }
    }
    char err[1024];
    struct ovadm *a;
    int r = ovadm_open(src, &a, err, sizeof(err));
    if (r) {
        free(src);
        return cli_error("%s", err);
    }
    ret = 0;
    if (strcmp(sub, "ls") == 0) {
        struct ls_state s = {0};
        r = ovadm_ls(a, rel, print_ls, &s);
        if (!r && s.n > 1) {
            char sz[32];
            human(s.total, sz, sizeof(sz));
            printf("%8s  total\n", sz);
        }
    } else if (strcmp(sub, "diff") == 0) {
        size_t n = 0;
        r = ovadm_diff(a, rel, print_diff, &n);
    } else if (strcmp(sub, "reset") == 0) {
        r = ovadm_reset(a, rel, err, sizeof(err));
        if (r)
            ret = cli_error("%s", err);
    } else {
        bool still_local;
        r = ovadm_promote(a, rel, &still_local, err, sizeof(err));
        if (r)
            ret = cli_error("%s", err);
        else if (still_local)
            fprintf(stderr, "wsync: note: the rules still call %s local: it is not mirrored\n",
                    rel);
    }
    if (r && !ret)
        ret = cli_error("overlay %s %s: %s", sub, rel, strerror(-r));
    ovadm_free(a);
    free(src);
    return ret;
}
