/* cmd_status.c — `wsync status [--json] [PATH]`: the daemon's figures and the index's. */
#include "../fs/wfs.h"
#include "../sync/control.h"
#include "../sync/index.h"
#include "../sync/tree_root.h"
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: wsync status [--json] [PATH]\n"
    "\n"
    "Show the state of the project PATH belongs to (a mount point, SRC, or\n"
    "anything inside either; default: the current directory): the mount\n"
    "daemon's figures if one runs (changes noted, paths pending, kernel inodes,\n"
    "outside edits watched, files hashed), one entry per remote (mode,\n"
    "connected?, lag in journal entries and ms, pending paths and bytes, bytes\n"
    "sent, the current retry interval and the last error; for two-way and safe\n"
    "remotes also rounds, paths pulled and pushed, and the conflicts count)\n"
    "and the index's (files,\n"
    "bytes, chunks, journal sequence, tree root).\n"
    "\n"
    "Options:\n"
    "      --json   one JSON object: {\"daemon\": {...} or null, \"index\": {...} or null}\n"
    "  -h, --help   show this help\n"
    "\n"
    "Examples:\n"
    "  wsync status /srv\n"
    "  wsync status --json /srv    # .daemon.mirrors[]: one object per remote\n";

/* Index figures as text or a JSON object; false if there is no index yet. */
static bool index_figures(const char *src, bool json)
{
    char state[PATH_MAX], err[512];
    snprintf(state, sizeof(state), "%s/%s", src, WFS_STATE_DIR);
    struct index *ix;
    if (index_open(-1, state, true, &ix, err, sizeof(err)) != 0)
        return false;
    struct index_stats st;
    struct content_id root;
    char hex[CONTENT_ID_HEX_LEN + 1] = "";
    bool ok = index_stats(ix, &st) == 0 && tree_root_from_index(ix, &root) == 0;
    index_close(ix);
    if (!ok)
        return false;
    content_id_to_hex(&root, hex);
    if (json)
        printf("{\"files\":%" PRIu64 ",\"dirs\":%" PRIu64 ",\"symlinks\":%" PRIu64
               ",\"bytes\":%" PRIu64 ",\"chunks\":%" PRIu64 ",\"seq\":%" PRIu64
               ",\"db_bytes\":%" PRId64 ",\"root\":\"%s\"}",
               st.files, st.dirs, st.symlinks, st.bytes, st.chunks, st.seq, st.db_bytes, hex);
    else
        printf("index:    %" PRIu64 " files, %" PRIu64 " dirs, %" PRIu64
               " symlinks, %.1f MiB in %" PRIu64 " chunks (index.db %.1f MiB)\n"
               "journal:  at sequence %" PRIu64 "\nroot:     %s\n",
               st.files, st.dirs, st.symlinks, (double)st.bytes / (1 << 20), st.chunks,
               (double)st.db_bytes / (1 << 20), st.seq, hex);
    return true;
}

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

    char state[PATH_MAX];
    snprintf(state, sizeof(state), "%s/%s", src, WFS_STATE_DIR);
    char *reply = NULL;
    bool daemon = control_request(state, json ? "status json" : "status", &reply) == 0;
    if (json) {
        printf("{\"daemon\":");
        if (daemon) {
            reply[strcspn(reply, "\n")] = '\0';
            fputs(reply, stdout);
        } else {
            fputs("null", stdout);
        }
        printf(",\"index\":");
        if (!index_figures(src, true))
            fputs("null", stdout);
        printf("}\n");
    } else {
        if (daemon)
            fputs(reply, stdout);
        else
            printf("source:   %s\ndaemon:   not running (not mounted)\n", src);
        if (!index_figures(src, false))
            printf("index:    none yet (made by 'wsync mount' or 'wsync index')\n");
    }
    free(reply);
    free(src);
    return 0;
}
