/* cli_common.c — error reporting and daemon lookup shared by the commands. */
#include "cli.h"
#include "../fs/mounts.h"
#include "../fs/wfs.h"
#include "../sync/control.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("wsync: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "wsync %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'wsync %s --help'.\n", cmd);
    va_end(ap);
    return EXIT_USAGE;
}

char *cli_absolute_path(const char *path)
{
    char cwd[PATH_MAX];
    char *out;
    if (path[0] == '/') {
        out = strdup(path);
    } else {
        if (!getcwd(cwd, sizeof(cwd)))
            return NULL;
        if (asprintf(&out, "%s/%s", cwd, path) < 0)
            return NULL;
    }
    if (!out)
        return NULL;
    /* Lexically drop "." components, "//" and a trailing slash. */
    char *w = out;
    for (char *r = out; *r;) {
        if (r[0] == '/' && (r[1] == '/' || (r[1] == '.' && (r[2] == '/' || r[2] == '\0')))) {
            r += r[1] == '/' ? 1 : 2;
            continue;
        }
        *w++ = *r++;
    }
    *w = '\0';
    if (w > out + 1 && w[-1] == '/')
        w[-1] = '\0';
    if (!out[0])
        strcpy(out, "/");
    return out;
}

char *cli_dest_arg(const char *dest)
{
    const char *colon = strchr(dest, ':');
    const char *slash = strchr(dest, '/');
    bool remote = strncmp(dest, "ssh://", 6) == 0 || (colon && (!slash || colon < slash));
    if (remote || dest[0] == '/' || !dest[0])
        return strdup(dest);
    return cli_absolute_path(dest);
}

int cli_find_src(const char *path, char **src)
{
    *src = NULL;
    char *abs = realpath(path, NULL);
    if (!abs)
        abs = cli_absolute_path(path); /* a dead mount still names its SRC */
    if (!abs)
        return -errno;
    struct mount_info m;
    if (mounts_wsync_containing(abs, &m) == 0) {
        *src = m.source;
        m.source = NULL;
        mount_info_release(&m);
        free(abs);
        return 0;
    }
    /* Not inside a mount: walk up to a directory holding a state dir. */
    for (char *end = abs + strlen(abs);;) {
        char state[PATH_MAX];
        struct stat st;
        snprintf(state, sizeof(state), "%s/%s", end == abs ? "" : abs, WFS_STATE_DIR);
        if (stat(state, &st) == 0 && S_ISDIR(st.st_mode)) {
            *src = abs[0] ? abs : strdup("/");
            if (*src != abs)
                free(abs);
            return 0;
        }
        if (end == abs)
            break;
        while (end > abs && *end != '/')
            end--;
        *end = '\0';
    }
    free(abs);
    return -ENOENT;
}

int cli_daemon_request(const char *src, const char *request, bool print)
{
    char state[PATH_MAX];
    snprintf(state, sizeof(state), "%s/%s", src, WFS_STATE_DIR);
    char *reply;
    int r = control_request(state, request, &reply);
    if (r == -ENOENT || r == -ECONNREFUSED)
        return cli_error("no wsync daemon is serving %s (not mounted?)", src);
    if (r)
        return cli_error("cannot reach the wsync daemon of %s: %s", src, strerror(-r));
    if (strncmp(reply, "error: ", 7) == 0) {
        cli_error("%s", reply + 7);
        free(reply);
        return 1;
    }
    if (print)
        fputs(reply, stdout);
    free(reply);
    return 0;
}
