/* cmd_log.c — `wsync log [-n N] [--events|--pending] [--json] [PATH]`. */
#include "../fs/wfs.h"
#include "../sync/index.h"
#include "../sync/strbuf.h"
#include "cli.h"

#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <time.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static const char help[] =
    "usage: wsync log [OPTIONS] [PATH]\n"
    "\n"
    "Show the journal of the project PATH belongs to (default: the current\n"
    "directory), oldest first: sequence number, time, what happened to the\n"
    "content (add, modify, delete, rename) and the path.  The journal lives in\n"
    "SRC/.wsync/index.db and is readable without a mount.\n"
    "\n"
    "Options:\n"
    "  -n, --count N   how many entries (default 20)\n"
    "      --events    the raw change events the mount daemon saw instead:\n"
    "                  every op with its byte range; outside edits (made\n"
    "                  directly in SRC) are marked 'outside'\n"
    "      --pending   the coalesced set of paths the daemon has not indexed yet\n"
    "      --json      one JSON object per line (journal and --events)\n"
    "  -h, --help      show this help\n"
    "\n"
    "Example:\n"
    "  wsync log -n 100 /srv\n";

struct journal_print {
    bool json;
};

static void print_entry(uint64_t seq, int64_t time_ns, const char *kind, const char *path,
                        void *arg)
{
    struct journal_print *p = arg;
    if (p->json) {
        struct strbuf sb = STRBUF_INIT;
        strbuf_addf(&sb, "{\"seq\":%" PRIu64 ",\"time_ns\":%" PRId64 ",\"kind\":", seq, time_ns);
        strbuf_add_json_string(&sb, kind);
        strbuf_adds(&sb, ",\"path\":");
        strbuf_add_json_string(&sb, path);
        strbuf_adds(&sb, "}\n");
        fputs(sb.buf, stdout);
        strbuf_release(&sb);
        return;
    }
    time_t secs = (time_t)(time_ns / 1000000000);
    struct tm tm;
    localtime_r(&secs, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    printf("%" PRIu64 " %s.%03d %s %s\n", seq, when, (int)(time_ns / 1000000 % 1000), kind, path);
}

static int print_journal(const char *src, size_t count, bool json)
{
    char state[PATH_MAX], err[512];
    snprintf(state, sizeof(state), "%s/%s", src, WFS_STATE_DIR);
    struct index *ix;
    if (index_open(-1, state, true, &ix, err, sizeof(err)) != 0)
        return cli_error("%s has no journal yet (made by 'wsync mount' or 'wsync index')", src);
    struct journal_print p = {json};
    int r = index_journal_recent(ix, count, print_entry, &p);
    if (r)
        cli_error("reading the journal of %s: %s", src, index_error(ix));
    index_close(ix);
    return r ? 1 : 0;
}

int cmd_log(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"count", required_argument, NULL, 'n'},
        {"pending", no_argument, NULL, 'p'},
        {"events", no_argument, NULL, 'e'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    long count = 20;
    bool json = false, pending = false, events = false;
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
        case 'e': events = true; break;
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
    int r;
    if (pending || events) {
        char req[64];
        if (pending)
            snprintf(req, sizeof(req), "pending");
        else
            snprintf(req, sizeof(req), "log %ld%s", count, json ? " json" : "");
        r = cli_daemon_request(src, req, true);
    } else {
        r = print_journal(src, (size_t)count, json);
    }
    free(src);
    return r;
}
