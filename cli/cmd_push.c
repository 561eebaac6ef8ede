/* cmd_push.c — `wsync push` and `wsync verify`: one-shot sync to DEST, and the root check. */
#include "../sync/push.h"
#include "cli.h"
#include "progress.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char push_help[] =
    "usage: wsync push [OPTIONS] SRC DEST\n"
    "\n"
    "Make DEST's mirrored tree identical to SRC's, sending only the chunks DEST\n"
    "lacks (lz4-compressed).  A renamed or copied file costs no data.  DEST is\n"
    "a local path, host:/path or ssh://[user@]host[:port]/path; the far side runs\n"
    "'wsync serve' (through ssh, or --rsh).  Ignored and local paths (see\n"
    "docs/rules.md) are never sent.  SRC needs no mount: its index is made in\n"
    "SRC/.wsync on first use.\n"
    "\n"
    "Options:\n"
    "  -e, --rsh CMD         run the far side through CMD instead of ssh, like\n"
    "                        rsync's -e (e.g. --rsh \"ip netns exec robot1\")\n"
    "      --wsync-path PATH the far side's wsync binary (default: wsync)\n"
    "  -n, --dry-run         show what would change; change nothing\n"
    "      --delete          delete what DEST has and SRC does not (default)\n"
    "      --no-delete       keep extra files on DEST\n"
    "      --json            summary as one JSON object\n"
    "  -q, --quiet           no progress line (there is one only when stderr is\n"
    "                        a terminal: files, bytes, rate, ETA)\n"
    "  -h, --help            show this help\n"
    "\n"
    "Examples:\n"
    "  wsync push ~/proj robot1:/home/dev/proj\n"
    "  wsync push --rsh \"ssh -p 2222\" . ssh://dev@gpu-server/srv/proj\n";

static const char verify_help[] =
    "usage: wsync verify [OPTIONS] SRC DEST\n"
    "\n"
    "Compare the tree roots of SRC and DEST (the Merkle hash of everything\n"
    "mirrored), print both, and exit 0 only if they are equal.\n"
    "\n"
    "Options:\n"
    "  -e, --rsh CMD         as for push\n"
    "      --wsync-path PATH as for push\n"
    "      --json            one JSON object\n"
    "  -h, --help            show this help\n"
    "\n"
    "Example:\n"
    "  wsync verify ~/proj robot1:/home/dev/proj\n";

static int run(int argc, char **argv, bool verify)
{
    const char *name = verify ? "verify" : "push";
    static const struct option longopts[] = {
        {"rsh", required_argument, NULL, 'e'},
        {"wsync-path", required_argument, NULL, 'w'},
        {"dry-run", no_argument, NULL, 'n'},
        {"delete", no_argument, NULL, 'D'},
        {"no-delete", no_argument, NULL, 'K'},
        {"json", no_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct push_options opt = {.delete_extra = true, .verify_only = verify,
                               .progress = progress_wanted(stderr)};
    struct progress_line line;
    progress_line_init(&line, stderr);
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, verify ? "e:h" : "e:nqh", longopts, NULL)) != -1) {
        if (verify && strchr("nDKq", c))
            return cli_usage_error(name, "%s is an option of push, not verify", argv[optind - 1]);
        switch (c) {
        case 'e': opt.rsh = optarg; break;
        case 'w': opt.wsync_path = optarg; break;
        case 'n': opt.dry_run = true; break;
        case 'D': opt.delete_extra = true; break;
        case 'K': opt.delete_extra = false; break;
        case 'j': json = true; break;
        case 'q': opt.progress = false; break;
        case 'h': fputs(verify ? verify_help : push_help, stdout); return 0;
        default: return cli_usage_error(name, "unknown option");
        }
    }
    if (argc - optind != 2)
        return cli_usage_error(name, "expected SRC and DEST");
    opt.src = argv[optind];
    char *dest = cli_dest_arg(argv[optind + 1]);
    if (!dest)
        return cli_error("%s: %s", argv[optind + 1], strerror(errno));
    opt.dest = dest;
    if (json)
        opt.progress = false;
    opt.on_progress = progress_push_hook;
    opt.progress_arg = &line;

    struct push_result res;
    char err[1024] = "";
    int r = push_run(&opt, &res, err, sizeof(err));
    if (r) {
        r = cli_error("%s %s -> %s: %s", name, opt.src, opt.dest, err);
        free(dest);
        return r;
    }
    char sroot[CONTENT_ID_HEX_LEN + 1], droot[CONTENT_ID_HEX_LEN + 1];
    content_id_to_hex(&res.src_root, sroot);
    content_id_to_hex(&res.dest_root, droot);
    bool equal = content_id_eq(&res.src_root, &res.dest_root);
    if (json) {
        printf("{\"files\":%" PRIu64 ",\"dirs\":%" PRIu64 ",\"symlinks\":%" PRIu64
               ",\"deleted\":%" PRIu64 ",\"chunks_sent\":%" PRIu64 ",\"data_bytes\":%" PRIu64
               ",\"bytes_out\":%" PRIu64 ",\"bytes_in\":%" PRIu64
               ",\"seconds\":%.3f,\"src_root\":\"%s\",\"dest_root\":\"%s\",\"equal\":%s"
               ",\"phases\":{\"indexed\":%.3f,\"listed\":%.3f,\"planned\":%.3f,"
               "\"data\":%.3f,\"acked\":%.3f}}\n",
               res.files, res.dirs, res.symlinks, res.deleted, res.chunks_sent, res.data_bytes,
               res.bytes_out, res.bytes_in, res.seconds, sroot, droot, equal ? "true" : "false",
               res.t_indexed, res.t_listed, res.t_planned, res.t_data, res.t_acked);
    } else if (verify) {
        printf("src:  %s  %s\ndest: %s  %s\n%s\n", sroot, opt.src, droot, opt.dest,
               equal ? "identical" : "DIFFERENT");
    } else {
        printf("%s%" PRIu64 " files, %" PRIu64 " dirs, %" PRIu64 " symlinks, %" PRIu64
               " deleted; %" PRIu64 " chunks (%.1f MiB) sent; %.1f MiB out, %.1f KiB in; "
               "%.2f s\n",
               opt.dry_run ? "would send: " : "", res.files, res.dirs, res.symlinks, res.deleted,
               res.chunks_sent, (double)res.data_bytes / (1 << 20),
               (double)res.bytes_out / (1 << 20), (double)res.bytes_in / 1024, res.seconds);
    }
    free(dest); /* cli_dest_arg's */
    return verify && !equal ? 1 : 0;
}

int cmd_push(int argc, char **argv)
{
    return run(argc, argv, false);
}

int cmd_verify(int argc, char **argv)
{
    return run(argc, argv, true);
}
