/* cmd_sync.c — `wsync sync`: one-shot two-way sync with the far side. */
#include "../sync/twoway.h"
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: wsync sync [OPTIONS] SRC DEST\n"
    "\n"
    "Two-way sync, like unison: what changed on one side since the last sync\n"
    "between these two trees goes to the other; what changed on both sides is\n"
    "a conflict, and nothing is lost: the newer version (by mtime; a tie goes\n"
    "to the tree with the smaller id) stays at its path, the other is kept on\n"
    "both sides as NAME.conflict-HOST-YYYYmmdd-HHMMSS.EXT (HOST: where it was\n"
    "made).  A delete against an edit keeps the edit; a rename against an\n"
    "edit keeps both.  See 'wsync conflicts'.  DEST is as for 'wsync push';\n"
    "the far side runs 'wsync serve'.  The first sync has no common history:\n"
    "files that differ become conflicts.\n"
    "\n"
    "Options:\n"
    "  -e, --rsh CMD         run the far side through CMD instead of ssh\n"
    "      --wsync-path PATH the far side's wsync binary (default: wsync)\n"
    "  -n, --dry-run         list what would happen; change nothing\n"
    "  -v, --verbose         list every path that changes, and why\n"
    "      --json            summary as one JSON object\n"
    "  -h, --help            show this help\n"
    "\n"
    "Environment: WSYNC_HOST names this machine in conflict copies (default:\n"
    "the host name).\n"
    "\n"
    "Example:\n"
    "  wsync sync ~/proj robot1:/home/dev/proj\n";

int cmd_sync(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"rsh", required_argument, NULL, 'e'},   {"wsync-path", required_argument, NULL, 'w'},
        {"dry-run", no_argument, NULL, 'n'},     {"verbose", no_argument, NULL, 'v'},
        {"json", no_argument, NULL, 'j'},        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct twoway_options opt = {0};
    bool json = false, verbose = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "e:nvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'e': opt.rsh = optarg; break;
        case 'w': opt.wsync_path = optarg; break;
        case 'n': opt.dry_run = true; break;
        case 'v': verbose = true; break;
        case 'j': json = true; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_usage_error("sync", "unknown option");
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("sync", "expected SRC and DEST");
    opt.src = argv[optind];
    char *dest = cli_dest_arg(argv[optind + 1]);
    if (!dest)
        return cli_error("%s: %s", argv[optind + 1], strerror(errno));
    opt.dest = dest;
    if ((verbose || opt.dry_run) && !json)
        opt.list = stdout;
    struct twoway_result res;
    char err[1024];
    int r = twoway_run(&opt, &res, err, sizeof(err));
    if (r) {
        r = cli_error("sync %s <-> %s: %s", opt.src, opt.dest, err);
        free(dest);
        return r;
    }
    free(dest);
    opt.dest = NULL;
    char root[CONTENT_ID_HEX_LEN + 1];
    content_id_to_hex(&res.src_root, root);
    if (json)
        printf("{\"pushed\":%" PRIu64 ",\"pulled\":%" PRIu64 ",\"deleted_here\":%" PRIu64
               ",\"deleted_there\":%" PRIu64 ",\"conflicts\":%" PRIu64 ",\"chunks_sent\":%" PRIu64
               ",\"bytes_out\":%" PRIu64 ",\"bytes_in\":%" PRIu64 ",\"seconds\":%.3f%s%s%s}\n",
               res.pushed, res.pulled, res.deleted_here, res.deleted_there, res.conflicts,
               res.chunks_sent, res.bytes_out, res.bytes_in, res.seconds,
               opt.dry_run ? "" : ",\"root\":\"", opt.dry_run ? "" : root,
               opt.dry_run ? "" : "\"");
    else if (opt.dry_run)
        printf("dry run: nothing changed (%" PRIu64 " conflicts would be kept as copies)\n",
               res.conflicts);
    else
        printf("%" PRIu64 " sent, %" PRIu64 " received, %" PRIu64 " deleted here, %" PRIu64
               " deleted there, %" PRIu64 " conflicts kept as copies; %.1f KiB out, %.1f KiB "
               "in; %.2f s\n",
               res.pushed, res.pulled, res.deleted_here, res.deleted_there, res.conflicts,
               (double)res.bytes_out / 1024, (double)res.bytes_in / 1024, res.seconds);
    return 0;
}
