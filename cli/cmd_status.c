/* cmd_status.c — `wsync status [--json] [PATH]`. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: wsync status [--json] [PATH]\n"
    "\n"
    "Show what the daemon serving PATH (a mount point, SRC, or anything inside\n"
    "either; default: the current directory) is doing: changes noted, paths\n"
    "pending, kernel inodes, whether outside edits are watched.\n"
    "\n"
    "Options:\n"
    "      --json   one JSON object instead of text\n"
    "  -h, --help   show this help\n"
    "\n"
    "Example:\n"
    "  wsync status /srv\n";

int cmd_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_usage_error("status", "unknown option");
        }
    }
    if (argc - optind > 1)
        return cli_usage_error("status", "expected at most one PATH");
    const char *path = optind < argc ? argv[optind] : ".";
    char *src;
    if (cli_find_src(path, &src) != 0)
        return cli_error("%s is not inside a wsync mount or source directory", path);
    int r = cli_daemon_request(src, json ? "status json" : "status", true);
    free(src);
    return r;
}
