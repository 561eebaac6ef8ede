/* cmd_conflicts.c — `wsync conflicts`: list conflict copies; resolve them in bulk. */
#include "../sync/conflicts.h"
#include "../sync/identity.h"
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: wsync conflicts [--json] [PATH]\n"
    "       wsync conflicts resolve --keep mine|theirs [PATH...]\n"
    "\n"
    "List the conflict copies a two-way sync ('wsync sync') left under PATH\n"
    "(default: the current directory; a tree, a mount of one, or anything\n"
    "inside): NAME.conflict-HOST-YYYYmmdd-HHMMSS.EXT holds HOST's version of\n"
    "NAME.EXT, which lost to the version now at NAME.EXT.\n"
    "\n"
    "resolve --keep mine:   keep this machine's version of each file (a copy\n"
    "                       made here replaces the file; other copies go)\n"
    "resolve --keep theirs: keep the other machine's version (a copy made\n"
    "                       elsewhere replaces the file; copies made here go)\n"
    "'This machine' is the host label: $WSYNC_HOST, else the host name.  The\n"
    "next 'wsync sync' carries the result to the peer.\n"
    "\n"
    "Examples:\n"
    "  wsync conflicts                            # what the last syncs left\n"
    "  wsync conflicts resolve --keep mine config/  # this machine wins there\n";

struct ctx {
    const char *src;
    bool json, first;
    int keep; /* 0 list, 1 mine, 2 theirs */
    char me[80];
    unsigned long done, failed;
};

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static int each(const struct conflict_copy *c, void *arg)
{
    struct ctx *x = arg;
    if (x->keep) {
        bool mine = strcmp(c->host, x->me) == 0;
        bool keep_copy = x->keep == 1 ? mine : !mine;
        char err[PATH_MAX + 256];
        if (conflicts_resolve(x->src, c, keep_copy, err, sizeof(err)) == 0) {
            printf("%s %s\n", keep_copy ? "kept  " : "removed", c->path);
            x->done++;
        } else {
            cli_error("%s", err);
            x->failed++;
        }
        return 0;
    }
    if (x->json) {
        printf("%s{\"copy\":", x->first ? "" : ",");
        json_str(c->path);
        printf(",\"of\":");
        json_str(c->orig);
        printf(",\"host\":");
        json_str(c->host);
        printf(",\"time\":\"%s\"}", c->when);
    } else {
        printf("%s  (%s's version of %s, %s UTC)\n", c->path, c->host, c->orig, c->when);
    }
    x->first = false;
    return 0;
}

/* SRC for path, and path's place in it ("" for all of it). */
static int locate(const char *path, char **src, char *prefix, size_t size)
{
    int r = cli_find_src(path, src);
    if (r)
        return cli_error("%s is not in a wsync tree (no .wsync above it): %s", path,
                         strerror(-r));
    char *abs = realpath(path, NULL);
    size_t n = strlen(*src);
    prefix[0] = '\0';
    if (abs && strncmp(abs, *src, n) == 0 && abs[n] == '/')
        snprintf(prefix, size, "%s", abs + n + 1);
    free(abs);
    return 0;
}

static int run_one(struct ctx *x, const char *path)
{
    char *src = NULL, prefix[PATH_MAX], err[PATH_MAX + 256];
    if (locate(path, &src, prefix, sizeof(prefix)))
        return 1;
    x->src = src;
    int r = conflicts_list(src, prefix, each, x, err, sizeof(err));
    free(src);
    return r ? cli_error("conflicts in %s: %s", path, err) : 0;
}

int cmd_conflicts(int argc, char **argv)
{
    struct ctx x = {.first = true};
    identity_host_label(x.me, sizeof(x.me));
    bool resolve = argc > 1 && strcmp(argv[1], "resolve") == 0;
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"keep", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int c;
    optind = resolve ? 2 : 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': x.json = true; break;
        case 'k':
            if (strcmp(optarg, "mine") == 0)
                x.keep = 1;
            else if (strcmp(optarg, "theirs") == 0)
                x.keep = 2;
            else
                return cli_usage_error("conflicts", "--keep takes mine or theirs, not '%s'",
                                       optarg);
            break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_usage_error("conflicts", "unknown option");
        }
    }
    if (resolve && !x.keep)
        return cli_usage_error("conflicts", "resolve needs --keep mine|theirs");
    if (!resolve && (x.keep || argc - optind > 1))
        return cli_usage_error("conflicts", "expected at most one PATH (or 'resolve')");
    int status = 0;
    if (x.json)
        putchar('[');
    if (optind == argc)
        status = run_one(&x, ".");
    for (int i = optind; i < argc; i++)
        status |= run_one(&x, argv[i]);
    if (x.json)
        puts("]");
    if (resolve)
        fprintf(stderr, "%lu resolved, %lu failed\n", x.done, x.failed);
    return status || x.failed ? 1 : 0;
}
