/* cmd_index.c — `wsync index [--check] [--json] [SRC]`: bring SRC's index up to date. */
#include "../fs/wfs.h"
#include "../sync/index.h"
#include "../sync/indexer.h"
#include "../sync/tree_root.h"
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char help[] =
    "usage: wsync index [OPTIONS] [SRC]\n"
    "\n"
    "Compare SRC (default: the current directory) with its index in\n"
    "SRC/.wsync/index.db and hash only what changed, as the mount daemon does\n"
    "at startup.  Works with or without a mount.  Prints what changed and the\n"
    "tree root, the hash two replicas share when their trees are identical.\n"
    "\n"
    "Options:\n"
    "      --check   also hash SRC from scratch, without the index, and fail\n"
    "                (exit 1) unless both roots agree\n"
    "      --json    one JSON object instead of text\n"
    "  -h, --help    show this help\n"
    "\n"
    "Example:\n"
    "  wsync index --check ~/proj\n";

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

int cmd_index(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"check", no_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool check = false, json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': check = true; break;
        case 'j': json = true; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_usage_error("index", "unknown option");
        }
    }
    if (argc - optind > 1)
        return cli_usage_error("index", "expected at most one SRC");
    const char *arg = optind < argc ? argv[optind] : ".";
    char *src = realpath(arg, NULL);
    struct stat st;
    if (!src || stat(src, &st) < 0)
        return cli_error("source %s: %s", arg, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        free(src);
        return cli_error("source %s is not a directory", arg);
    }
    char state[PATH_MAX];
    snprintf(state, sizeof(state), "%s/%s", src, WFS_STATE_DIR);
    if (mkdir(state, 0700) < 0 && errno != EEXIST) {
        int r = cli_error("cannot create %s: %s", state, strerror(errno));
        free(src);
        return r;
    }

    char err[1024];
    struct index *ix = NULL;
    struct indexer *in = NULL;
    int rc = 1;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (index_open(-1, state, false, &ix, err, sizeof(err)) != 0) {
        cli_error("%s", err);
        goto out;
    }
    int r = indexer_new(src, ix, &in, err, sizeof(err));
    if (r) {
        cli_error("%s", err);
        goto out;
    }
    struct indexer_counts counts = {0};
    r = indexer_scan(in, &counts);
    if (r) {
        cli_error("indexing %s failed: %s%s%s", src, strerror(-r), r == -EIO ? ": " : "",
                  r == -EIO ? index_error(ix) : "");
        goto out;
    }
    double secs = seconds_since(&t0);
    struct content_id root, fresh;
    char root_hex[CONTENT_ID_HEX_LEN + 1], fresh_hex[CONTENT_ID_HEX_LEN + 1] = "";
    r = tree_root_from_index(ix, &root);
    if (!r && check)
        r = tree_root_from_disk(src, indexer_excludes, in, &fresh);
    if (r) {
        cli_error("computing the tree root of %s: %s", src, strerror(-r));
        goto out;
    }
    content_id_to_hex(&root, root_hex);
    if (check)
        content_id_to_hex(&fresh, fresh_hex);
    bool agree = !check || strcmp(root_hex, fresh_hex) == 0;
    if (json) {
        printf("{\"scanned\":%" PRIu64 ",\"hashed\":%" PRIu64 ",\"bytes_hashed\":%" PRIu64
               ",\"added\":%" PRIu64 ",\"modified\":%" PRIu64 ",\"deleted\":%" PRIu64
               ",\"seconds\":%.3f,\"root\":\"%s\"",
               counts.scanned, counts.hashed, counts.bytes_hashed, counts.added,
               counts.modified, counts.deleted, secs, root_hex);
        if (check)
            printf(",\"fresh_root\":\"%s\",\"consistent\":%s", fresh_hex, agree ? "true" : "false");
        printf("}\n");
    } else {
        printf("%s: %" PRIu64 " paths looked at, %" PRIu64 " files hashed (%.1f MiB) in %.2f s\n"
               "changes: %" PRIu64 " added, %" PRIu64 " modified, %" PRIu64 " deleted\n"
               "root:    %s\n",
               src, counts.scanned, counts.hashed, (double)counts.bytes_hashed / (1 << 20), secs,
               counts.added, counts.modified, counts.deleted, root_hex);
        if (check)
            printf("fresh:   %s (%s)\n", fresh_hex,
                   agree ? "the index matches SRC" : "MISMATCH: the index is wrong");
    }
    rc = agree ? 0 : 1;
out:
    indexer_free(in);
    index_close(ix);
    free(src);
    return rc;
}
