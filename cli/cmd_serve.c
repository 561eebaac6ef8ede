/* cmd_serve.c — `wsync serve --stdio ROOT`: the far side of push and verify. */
#include "../sync/probe.h"
#include "../sync/serve.h"
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "usage: wsync serve --stdio [--probe] ROOT\n"
    "\n"
    "Serve one push or verify session for the directory ROOT, speaking the\n"
    "wsync protocol on stdin and stdout.  You do not run this yourself: 'wsync\n"
    "push' starts it on the far side through ssh or --rsh, as rsync does with\n"
    "its server.  ROOT is created if missing.  Every path is written beneath\n"
    "ROOT only; files become visible only once complete and verified.\n"
    "\n"
    "Options:\n"
    "      --stdio   use stdin/stdout (the only transport)\n"
    "      --probe   answer 'wsync doctor': exchange HELLOs, report this\n"
    "                side's version, clock and free space at ROOT on stderr;\n"
    "                change nothing (ROOT is not created)\n"
    "  -h, --help    show this help\n"
    "\n"
    "Example (what push runs):\n"
    "  ssh robot1 wsync serve --stdio /home/dev/proj\n";

int cmd_serve(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"stdio", no_argument, NULL, 's'},
        {"probe", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool stdio = false, probe = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 's': stdio = true; break;
        case 'p': probe = true; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_usage_error("serve", "unknown option");
        }
    }
    if (!stdio)
        return cli_usage_error("serve", "--stdio is required");
    if (argc - optind != 1)
        return cli_usage_error("serve", "expected ROOT");
    const char *root = argv[optind];
    if (root[0] != '/')
        return cli_error("serve: ROOT must be an absolute path, not '%s'", root);
    char err[1024] = "";
    int r = probe ? probe_serve(root, STDIN_FILENO, STDOUT_FILENO, err, sizeof(err))
                  : serve_run(root, STDIN_FILENO, STDOUT_FILENO, err, sizeof(err));
    if (r)
        return cli_error("serve %s: %s", root, err[0] ? err : strerror(-r));
    return 0;
}
