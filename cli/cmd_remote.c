/* cmd_remote.c — `wsync remote add|rm|ls|reload`: the remotes kept in SRC/.wsync/config. */
#include "../fs/wfs.h"
#include "../sync/control.h"
#include "../sync/remotes.h"
#include "../sync/strbuf.h"
#include "../sync/transport.h"
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char help[] =
    "usage: wsync remote add [OPTIONS] NAME DEST\n"
    "       wsync remote rm [OPTIONS] NAME\n"
    "       wsync remote ls [OPTIONS] [--json]\n"
    "       wsync remote reload [OPTIONS]\n"
    "\n"
    "Manage the remotes of a project: replicas that a running 'wsync mount' keeps\n"
    "equal to SRC, as '--mirror DEST' does, but remembered in SRC/.wsync/config.\n"
    "A running mount starts or stops the worker of a remote as soon as it is\n"
    "added or removed; the other remotes are not disturbed.  The project is the\n"
    "one the current directory (or -C PATH) belongs to: SRC, the mount point,\n"
    "or anything inside either.\n"
    "\n"
    "DEST is a local path (saved absolute), host:/path or\n"
    "ssh://[user@]host[:port]/path.\n"
    "\n"
    "Options:\n"
    "  -C, --dir PATH      the project PATH belongs to; with 'add', a directory\n"
    "                      that is not a project yet becomes one (SRC)\n"
    "  -e, --rsh CMD       (add) reach DEST through CMD instead of ssh\n"
    "      --wsync-path P  (add) the far side's wsync binary\n"
    "      --mode MODE     (add) auto (default): two-way while DEST's tree is\n"
    "                      mounted there by its own 'wsync mount', else replica;\n"
    "                      asked at each connect and every 30 s ('wsync status'\n"
    "                      shows which runs);\n"
    "                      replica: this side wins, DEST is a copy;\n"
    "                      safe: one-way, but an edit made at DEST is never\n"
    "                      overwritten: it is kept here as a conflict copy;\n"
    "                      two-way: edits flow both ways, conflicts keep both\n"
    "                      versions (DEST needs this version of wsync)\n"
    "      --json          (ls) one JSON array\n"
    "  -h, --help          show this help\n"
    "\n"
    "The config file is plain text, one setting per line (see\n"
    "docs/architecture.md); a line it cannot read is reported as FILE:LINE.\n"
    "After editing it by hand, 'remote reload' tells the running mount.\n"
    "\n"
    "Examples:\n"
    "  wsync remote add robot1 robot1:/home/dev/proj\n"
    "  wsync remote add -e 'ssh -p 2222' gpu ssh://dev@gpu1/srv/proj\n"
    "  wsync remote ls\n"
    "  wsync remote rm robot1\n"
    "  wsync remote reload       # after editing SRC/.wsync/config by hand\n";

struct remote_cmd {
    const char *dir;
    struct remote_def def;
    bool json;
    char *src;
    char state[PATH_MAX];
};

/* Find SRC for dir (or the cwd); a plain directory given with -C becomes
 * a project when `create` is set. */
static int find_project(struct remote_cmd *c, bool create)
{
    const char *path = c->dir ? c->dir : ".";
    if (cli_find_src(path, &c->src) != 0) {
        struct stat st;
        if (!c->dir || !create)
            return cli_error("%s is not inside a wsync mount or source directory%s", path,
                             c->dir ? "" : " (name one with -C PATH)");
        if (stat(c->dir, &st) != 0 || !S_ISDIR(st.st_mode))
            return cli_error("%s: %s", c->dir, errno ? strerror(errno) : "not a directory");
        c->src = realpath(c->dir, NULL);
        if (!c->src)
            return cli_error("%s: %s", c->dir, strerror(errno));
        snprintf(c->state, sizeof(c->state), "%s/%s", c->src, WFS_STATE_DIR);
        if (mkdir(c->state, 0700) != 0 && errno != EEXIST)
            return cli_error("cannot create %s: %s", c->state, strerror(errno));
        return 0;
    }
    snprintf(c->state, sizeof(c->state), "%s/%s", c->src, WFS_STATE_DIR);
    return 0;
}

/* Tell a running daemon to re-read the config; say what it did. */
static int notify_daemon(struct remote_cmd *c)
{
    char *reply = NULL;
    int r = control_request(c->state, "reload", &reply);
    if (r == -ENOENT || r == -ECONNREFUSED) {
        printf("no mount is running for %s: the next 'wsync mount' uses it\n", c->src);
        return 0;
    }
    if (r)
        return cli_error("saved, but the wsync daemon of %s could not be told: %s", c->src,
                         strerror(-r));
    int code = 0;
    for (char *line = strtok(reply, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "error: ", 7) == 0)
            code = cli_error("saved, but the running mount refused it: %s", line + 7);
        else
            printf("running mount: %s\n", line);
    }
    free(reply);
    return code;
}

static int remote_add(struct remote_cmd *c, int argc, char **argv)
{
    if (argc != 2)
        return cli_usage_error("remote", "add expects NAME and DEST");
    c->def.name = argv[0];
    c->def.dest = cli_dest_arg(argv[1]); /* saved absolute: the daemon runs in / */
    if (!c->def.dest)
        return cli_error("%s: %s", argv[1], strerror(errno));
    char err[PATH_MAX + 1024];
    struct dest d;
    if (dest_parse(c->def.dest, &d, err, sizeof(err)) != 0)
        return cli_error("%s", err);
    dest_release(&d);
    if (find_project(c, true))
        return 1;
    int lock = remotes_lock(c->state, err, sizeof(err));
    if (lock < 0)
        return cli_error("%s", err);
    struct remotes rs;
    int r = remotes_load(c->state, &rs, err, sizeof(err));
    if (!r)
        r = remotes_add(&rs, &c->def, err, sizeof(err));
    if (!r)
        r = remotes_save(c->state, &rs, err, sizeof(err));
    remotes_release(&rs);
    remotes_unlock(lock);
    if (r)
        return cli_error("%s", err);
    printf("added remote %s -> %s (%s%s)\n", c->def.name, c->def.dest,
           remote_mode_name(c->def.mode),
           c->def.mode == REMOTE_MODE_AUTO
               ? ": two-way while its tree is mounted there by wsync, else replica"
               : "");
    return notify_daemon(c);
}

static int remote_rm(struct remote_cmd *c, int argc, char **argv)
{
    if (argc != 1)
        return cli_usage_error("remote", "rm expects NAME");
    if (find_project(c, false))
        return 1;
    char err[PATH_MAX + 1024];
    int lock = remotes_lock(c->state, err, sizeof(err));
    if (lock < 0)
        return cli_error("%s", err);
    struct remotes rs;
    int r = remotes_load(c->state, &rs, err, sizeof(err));
    if (!r && remotes_remove(&rs, argv[0]) != 0) {
        snprintf(err, sizeof(err), "no remote named '%s' in %s/%s", argv[0], c->state,
                 REMOTES_FILE_NAME);
        r = -ENOENT;
    }
    if (!r)
        r = remotes_save(c->state, &rs, err, sizeof(err));
    remotes_release(&rs);
    remotes_unlock(lock);
    if (r)
        return cli_error("%s", err);
    printf("removed remote %s\n", argv[0]);
    return notify_daemon(c);
}

static void json_field(struct strbuf *sb, const char *key, const char *value)
{
    strbuf_addf(sb, ",\"%s\":", key);
    if (value)
        strbuf_add_json_string(sb, value);
    else
        strbuf_adds(sb, "null");
}

static int remote_ls(struct remote_cmd *c, int argc)
{
    if (argc != 0)
        return cli_usage_error("remote", "ls takes no arguments");
    if (find_project(c, false))
        return 1;
    char err[1024];
    struct remotes rs;
    if (remotes_load(c->state, &rs, err, sizeof(err)) != 0)
        return cli_error("%s", err);
    struct strbuf sb = STRBUF_INIT;
    if (c->json) {
        strbuf_adds(&sb, "[");
        for (size_t i = 0; i < rs.n; i++) {
            strbuf_adds(&sb, i ? ",{\"name\":" : "{\"name\":");
            strbuf_add_json_string(&sb, rs.v[i].name);
            json_field(&sb, "dest", rs.v[i].dest);
            json_field(&sb, "rsh", rs.v[i].rsh);
            json_field(&sb, "wsync_path", rs.v[i].wsync_path);
            json_field(&sb, "mode", remote_mode_name(rs.v[i].mode));
            strbuf_adds(&sb, "}");
        }
        strbuf_adds(&sb, "]\n");
    } else {
        for (size_t i = 0; i < rs.n; i++) {
            strbuf_addf(&sb, "%-12s %s  (%s", rs.v[i].name, rs.v[i].dest,
                        remote_mode_name(rs.v[i].mode));
            if (rs.v[i].rsh)
                strbuf_addf(&sb, ", rsh: %s", rs.v[i].rsh);
            if (rs.v[i].wsync_path)
                strbuf_addf(&sb, ", wsync-path: %s", rs.v[i].wsync_path);
            strbuf_adds(&sb, ")\n");
        }
    }
    fputs(sb.buf, stdout);
    strbuf_release(&sb);
    remotes_release(&rs);
    return 0;
}

static int remote_reload(struct remote_cmd *c, int argc)
{
    if (argc != 0)
        return cli_usage_error("remote", "reload takes no arguments");
    if (find_project(c, false))
        return 1;
    char *reply = NULL;
    int r = control_request(c->state, "reload", &reply);
    if (r == -ENOENT || r == -ECONNREFUSED)
        return cli_error("no wsync daemon is serving %s (not mounted?)", c->src);
    if (r)
        return cli_error("cannot reach the wsync daemon of %s: %s", c->src, strerror(-r));
    int code = 0;
    for (char *line = strtok(reply, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "error: ", 7) == 0)
            code = cli_error("%s", line + 7);
        else
            printf("%s\n", line);
    }
    free(reply);
    return code;
}

int cmd_remote(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'C'},
        {"rsh", required_argument, NULL, 'e'},
        {"wsync-path", required_argument, NULL, 'W'},
        {"mode", required_argument, NULL, 'M'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct remote_cmd c = {.def.mode = REMOTE_MODE_DEFAULT};
    bool mode_given = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "C:e:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'C':
            c.dir = optarg;
            break;
        case 'e':
            c.def.rsh = optarg;
            break;
        case 'W':
            c.def.wsync_path = optarg;
            break;
        case 'M':
            if (remote_mode_parse(optarg, &c.def.mode) != 0)
                return cli_usage_error(
                    "remote", "unknown mode '%s' (auto, replica, safe or two-way)", optarg);
            mode_given = true;
            break;
        case 'j':
            c.json = true;
            break;
        case 'h':
            fputs(help, stdout);
            return 0;
        default:
            return cli_usage_error("remote", "unknown option");
        }
    }
    if (optind >= argc)
        return cli_usage_error("remote", "expected add, rm, ls or reload");
    const char *verb = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    int r;
    bool add = strcmp(verb, "add") == 0;
    if (!add && (c.def.rsh || c.def.wsync_path || mode_given))
        return cli_usage_error("remote", "--rsh, --wsync-path and --mode go with add");
    if (c.json && strcmp(verb, "ls") != 0)
        return cli_usage_error("remote", "--json goes with ls");
    if (add) {
        r = remote_add(&c, nargs, args);
        free(c.def.dest); /* cli_dest_arg's */
    } else if (strcmp(verb, "rm") == 0 || strcmp(verb, "remove") == 0)
        r = remote_rm(&c, nargs, args);
    else if (strcmp(verb, "ls") == 0 || strcmp(verb, "list") == 0)
        r = remote_ls(&c, nargs);
    else if (strcmp(verb, "reload") == 0)
        r = remote_reload(&c, nargs);
    else
        r = cli_usage_error("remote", "unknown subcommand '%s' (add, rm, ls or reload)", verb);
    free(c.src);
    return r;
}
