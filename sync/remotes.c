/*
 * remotes.c — SRC/.wsync/config: parse, check, save (see remotes.h).
 *
 * Invariant: every struct remotes that leaves this file passed the same
 * checks, whether it came from the file or from remotes_add, so what is
 * saved always parses again.
 */
#include "remotes.h"
#include "strbuf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_BYTES (1 << 20)

static const char *const mode_names[] = {
    [REMOTE_MODE_REPLICA] = "replica",
    [REMOTE_MODE_SAFE] = "safe",
    [REMOTE_MODE_TWO_WAY] = "two-way",
    [REMOTE_MODE_AUTO] = "auto",
};

const char *remote_mode_name(enum remote_mode mode)
{
    return mode <= REMOTE_MODE_AUTO ? mode_names[mode] : "?";
}

int remote_mode_parse(const char *text, enum remote_mode *out)
{
    for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
        if (strcmp(text, mode_names[i]) == 0) {
            *out = (enum remote_mode)i;
            return 0;
        }
    return -EINVAL;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > REMOTE_NAME_MAX || !isalnum((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
            return false;
    return true;
}

/* A value survives a save and a parse: no control characters, no space at
 * either end (the parser trims it), not empty. */
static bool value_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (iscntrl((unsigned char)s[i]))
            return false;
    return true;
}

void remote_def_release(struct remote_def *d)
{
    free(d->name);
    free(d->dest);
    free(d->rsh);
    free(d->wsync_path);
    memset(d, 0, sizeof(*d));
}

void remotes_release(struct remotes *r)
{
    for (size_t i = 0; i < r->n; i++)
        remote_def_release(&r->v[i]);
    r->n = 0;
}

const struct remote_def *remotes_find(const struct remotes *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].name, name) == 0)
            return &r->v[i];
    return NULL;
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

bool remote_def_equal(const struct remote_def *a, const struct remote_def *b)
{
    return str_eq(a->name, b->name) && str_eq(a->dest, b->dest) && str_eq(a->rsh, b->rsh) &&
           str_eq(a->wsync_path, b->wsync_path) && a->mode == b->mode;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int remote_def_copy(struct remote_def *dst, const struct remote_def *src)
{
    *dst = (struct remote_def){.name = dup_or_null(src->name),
                               .dest = dup_or_null(src->dest),
                               .rsh = dup_or_null(src->rsh),
                               .wsync_path = dup_or_null(src->wsync_path),
                               .mode = src->mode};
    if ((src->name && !dst->name) || (src->dest && !dst->dest) || (src->rsh && !dst->rsh) ||
        (src->wsync_path && !dst->wsync_path)) {
        remote_def_release(dst);
        return -ENOMEM;
    }
    return 0;
}

int remotes_add(struct remotes *r, const struct remote_def *def, char *err, size_t errsize)
{
    if (!def->name || !name_ok(def->name))
        return snprintf(err, errsize,
                        "bad remote name '%s': use letters, digits, '.', '_' or '-' "
                        "(at most %d, starting with a letter or digit)",
                        def->name ? def->name : "", REMOTE_NAME_MAX),
               -EINVAL;
    if (remotes_find(r, def->name))
        return snprintf(err, errsize, "a remote named '%s' already exists", def->name), -EEXIST;
    const char *fields[] = {def->dest, def->rsh, def->wsync_path};
    const char *names[] = {"dest", "rsh", "wsync-path"};
    for (int i = 0; i < 3; i++)
        if ((i == 0 || fields[i]) && (!fields[i] || !value_ok(fields[i])))
            return snprintf(err, errsize,
                            "bad %s '%s' for remote '%s': empty, or control characters or "
                            "spaces at either end",
                            names[i], fields[i] ? fields[i] : "", def->name),
                   -EINVAL;
    if (def->mode > REMOTE_MODE_AUTO)
        return snprintf(err, errsize, "bad mode for remote '%s'", def->name), -EINVAL;
    if (r->n == REMOTES_MAX)
        return snprintf(err, errsize, "at most %d remotes", REMOTES_MAX), -ENOSPC;
    if (remote_def_copy(&r->v[r->n], def) != 0)
        return snprintf(err, errsize, "out of memory"), -ENOMEM;
    r->n++;
    return 0;
}

int remotes_remove(struct remotes *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].name, name) == 0) {
            remote_def_release(&r->v[i]);
            memmove(&r->v[i], &r->v[i + 1], (r->n - i - 1) * sizeof(r->v[0]));
            r->n--;
            return 0;
        }
    return -ENOENT;
}

/* ---- parsing ---- */

struct parser {
    const char *file;
    unsigned line;
    char *err;
    size_t errsize;
};

static int perr(struct parser *p, const char *fmt, const char *a, const char *b)
{
    char msg[512];
    snprintf(msg, sizeof(msg), fmt, a, b);
    snprintf(p->err, p->errsize, "%s:%u: %s", p->file, p->line, msg);
    return -EINVAL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* The section being read: its header line, for "no dest" errors. */
struct section {
    struct remote_def d;
    unsigned line;
    bool open, has_mode;
};

static int close_section(struct parser *p, struct section *s, struct remotes *out)
{
    if (!s->open)
        return 0;
    s->open = false;
    int r = 0;
    unsigned line = p->line;
    p->line = s->line;
    if (!s->d.dest)
        r = perr(p, "remote '%s' has no 'dest = ...' line%s", s->d.name, "");
    else if ((r = remotes_add(out, &s->d, p->err, p->errsize)) != 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", p->err);
        r = perr(p, "%s%s", why, "");
    }
    p->line = line;
    remote_def_release(&s->d);
    return r;
}

static int set_key(struct parser *p, struct section *s, const char *key, const char *value)
{
    char **slot = strcmp(key, "dest") == 0         ? &s->d.dest
                  : strcmp(key, "rsh") == 0        ? &s->d.rsh
                  : strcmp(key, "wsync-path") == 0 ? &s->d.wsync_path
                                                   : NULL;
    if (!s->open)
        return perr(p, "'%s' outside a [remote NAME] section%s", key, "");
    if (!*value)
        return perr(p, "empty value for '%s'%s", key, "");
    if (strcmp(key, "mode") == 0) {
        if (s->has_mode)
            return perr(p, "'mode' given twice for remote '%s'%s", s->d.name, "");
        s->has_mode = true;
        if (remote_mode_parse(value, &s->d.mode) != 0)
            return perr(p, "unknown mode '%s' (auto, replica, safe or two-way)%s", value, "");
        return 0;
    }
    if (!slot)
        return perr(p, "unknown key '%s' (dest, rsh, wsync-path or mode)%s", key, "");
    if (*slot)
        return perr(p, "'%s' given twice for remote '%s'", key, s->d.name);
    *slot = strdup(value);
    return *slot ? 0 : -ENOMEM;
}

static int parse_line(struct parser *p, char *line, struct section *s, struct remotes *out)
{
    char *t = trim(line);
    if (!*t || *t == '#')
        return 0;
    if (*t == '[') {
        int r = close_section(p, s, out);
        if (r)
            return r;
        size_t n = strlen(t);
        if (t[n - 1] != ']')
            return perr(p, "section header '%s' lacks its ']'%s", t, "");
        t[n - 1] = '\0';
        char *in = trim(t + 1);
        if (strncmp(in, "remote", 6) != 0 || !isspace((unsigned char)in[6]))
            return perr(p, "unknown section '[%s]' (only [remote NAME])%s", in, "");
        char *name = trim(in + 6);
        if (!name_ok(name))
            return perr(p, "bad remote name '%s'%s", name, "");
        for (size_t i = 0; i < out->n; i++)
            if (strcmp(out->v[i].name, name) == 0)
                return perr(p, "remote '%s' defined twice%s", name, "");
        *s = (struct section){.d = {.name = strdup(name), .mode = REMOTE_MODE_DEFAULT},
                              .line = p->line,
                              .open = true};
        return s->d.name ? 0 : -ENOMEM;
    }
    char *eq = strchr(t, '=');
    if (!eq)
        return perr(p, "expected 'key = value' or '[remote NAME]', not '%s'%s", t, "");
    *eq = '\0';
    return set_key(p, s, trim(t), trim(eq + 1));
}

int remotes_parse(const char *text, size_t len, const char *file_name, struct remotes *out,
                  char *err, size_t errsize)
{
    memset(out, 0, sizeof(*out));
    struct parser p = {.file = file_name, .err = err, .errsize = errsize};
    if (memchr(text, '\0', len)) {
        p.line = 1;
        for (const char *c = text; *c; c++)
            p.line += *c == '\n';
        return perr(&p, "a NUL byte: this is not a text file%s%s", "", "");
    }
    char *copy = strndup(text, len);
    if (!copy)
        return -ENOMEM;
    struct section s = {0};
    int r = 0;
    char *save = NULL;
    /* strtok_r would skip empty lines and miscount: walk by hand. */
    for (char *line = copy; !r && line; line = save) {
        char *nl = strchr(line, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        p.line++;
        if (!nl && !*line)
            break;
        r = parse_line(&p, line, &s, out);
    }
    if (!r)
        r = close_section(&p, &s, out);
    remote_def_release(&s.d);
    free(copy);
    if (r)
        remotes_release(out);
    return r;
}

static void config_path(char *out, size_t size, const char *state_dir, const char *name)
{
    snprintf(out, size, "%s/%s", state_dir, name);
}

int remotes_load(const char *state_dir, struct remotes *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof(*out));
    char path[4200];
    config_path(path, sizeof(path), state_dir, REMOTES_FILE_NAME);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        int e = errno;
        snprintf(err, errsize, "cannot open %s: %s", path, strerror(e));
        return -e;
    }
    struct strbuf sb = STRBUF_INIT;
    char buf[8192];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0 && sb.len <= CONFIG_MAX_BYTES)
        strbuf_add(&sb, buf, (size_t)n);
    int e = n < 0 ? errno : 0;
    close(fd);
    int r;
    if (e)
        r = -e, snprintf(err, errsize, "cannot read %s: %s", path, strerror(e));
    else if (sb.len > CONFIG_MAX_BYTES)
        r = -EFBIG, snprintf(err, errsize, "%s is larger than %d bytes", path, CONFIG_MAX_BYTES);
    else
        r = remotes_parse(sb.buf, sb.len, path, out, err, errsize);
    strbuf_release(&sb);
    return r;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int remotes_save(const char *state_dir, const struct remotes *r, char *err, size_t errsize)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_adds(&sb, "# wsync remotes of this source directory (see 'wsync remote --help').\n"
                     "# One setting per line; '[remote NAME]' starts a remote.\n");
    for (size_t i = 0; i < r->n; i++) {
        const struct remote_def *d = &r->v[i];
        strbuf_addf(&sb, "\n[remote %s]\ndest = %s\n", d->name, d->dest);
        if (d->rsh)
            strbuf_addf(&sb, "rsh = %s\n", d->rsh);
        if (d->wsync_path)
            strbuf_addf(&sb, "wsync-path = %s\n", d->wsync_path);
        strbuf_addf(&sb, "mode = %s\n", remote_mode_name(d->mode));
    }
    char path[4200], tmp[4200];
    config_path(path, sizeof(path), state_dir, REMOTES_FILE_NAME);
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp.%d", state_dir, REMOTES_FILE_NAME, (int)getpid());
    int e = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        e = -errno;
    else {
        e = write_all(fd, sb.buf, sb.len);
        if (!e && fsync(fd) < 0)
            e = -errno;
        if (close(fd) < 0 && !e)
            e = -errno;
        if (!e && rename(tmp, path) < 0)
            e = -errno;
        if (e)
            unlink(tmp);
    }
    strbuf_release(&sb);
    if (e)
        return snprintf(err, errsize, "cannot write %s: %s", path, strerror(-e)), e;
    int dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) < 0)
            e = -errno;
        close(dfd);
    }
    if (e)
        snprintf(err, errsize, "cannot fsync %s: %s", state_dir, strerror(-e));
    return e;
}

int remotes_lock(const char *state_dir, char *err, size_t errsize)
{
    char path[4200];
    config_path(path, sizeof(path), state_dir, REMOTES_FILE_NAME ".lock");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        snprintf(err, errsize, "cannot lock %s: %s", path, strerror(e));
        return -e;
    }
    return fd;
}

void remotes_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}
