/* cmd_log.c — `wsync log [-n N] [--json] [--pending] [PATH]`. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static const char help[] =
    "usage: wsync log [OPTIONS] [PATH]\n"
    "\n"
    "Show the most recent changes noted by the daemon serving PATH (default:\n"
    "the current directory), oldest first: sequence number, time, kind, path,\n"
    "and the byte range of writes.  Outside edits (made directly in SRC) are\n"
    "marked 'outside'.\n"
    "\n"
    "Options:\n"
    "  -n, --count N   how many entries (default 20)\n"
    "      --pending   show the coalesced set of paths not yet processed instead\n"
    "      --json      one JSON object per line\n"
    "  -h, --help      show this help\n"
    "\n"
    "Example:\n"
    "  wsync log -n 100 /srv\n";

int cmd_log(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"count", required_argument, NULL, 'n'},
        {"pending", no_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    long count = 20;
    bool json = false, pending = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': {
            char *end;
            count = strtol(optarg, &end, 10);
            if (*end || count < 0)
                return cli_usage_error("log", "-n wants a count >= 0, not '%s'", optarg);
            break;
        }
        case 'p': pending = true; break;
        case 'j': json = true; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_usage_error("log", "unknown option");
        }
    }
    if (argc - optind > 1)
        return cli_usage_error("log", "expected at most one PATH");
    const char *path = optind < argc ? argv[optind] : ".";
    char *src;
    if (cli_find_src(path, &src) != 0)
        return cli_error("%s is not inside a wsync mount or source directory", path);
    char req[64];
    if (pending)
        snprintf(req, sizeof(req), "pending");
    else
        snprintf(req, sizeof(req), "log %ld%s", count, json ? " json" : "");
    int r = cli_daemon_request(src, req, true);
    free(src);
    return r;
}
