/*
 * rules.c — see rules.h.  Matching follows git's dir.c and wildmatch
 * semantics (checked against `git check-ignore` in tests/unit/test_rules.c):
 *
 * - the last matching pattern of a section decides; `!` makes it re-include;
 * - a pattern without a `/` (besides a trailing one) matches the basename at
 *   any depth; any other `/` anchors it to the root;
 * - a path is excluded by a section if it, or any ancestor directory, is;
 *   so `!` cannot re-include a file below an excluded directory (as git);
 * - as in git, a literal prefix is compared first and `**` is recognised
 *   relative to what follows it: in the pattern "ab**" + "/c" the stars
 *   cross directories, so abz/y/c matches (a quirk kept for fidelity).
 *
 * Each pattern is stored once, stripped of `!` and of leading and trailing
 * `/`, with its flags and the length of its literal prefix, in one copy of
 * the file text.  Classify walks the path's prefixes in place.
 */
#include "rules.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RULES_MAX_SIZE (1u << 20)

const char rules_default_text[] = "# wsync built-in defaults (used when .wsyncrules is absent)\n"
                                  "[local]\n"
                                  "/build/\n"
                                  "/install/\n"
                                  "/log/\n"
                                  ".venv/\n"
                                  "venv/\n"
                                  "node_modules/\n"
                                  "__pycache__/\n"
                                  "[ignore]\n"
                                  "*.swp\n"
                                  "*~\n"
                                  ".#*\n";

enum {
    PAT_NEGATIVE = 1u << 0,  /* "!pat": a match re-includes */
    PAT_MUSTBEDIR = 1u << 1, /* "pat/": directories only */
    PAT_NODIR = 1u << 2,     /* no '/': match the basename at any depth */
    PAT_ENDSWITH = 1u << 3,  /* "*literal": compare the tail */
};

struct pattern {
    const char *pat; /* NUL-terminated, inside rules->text */
    size_t len;
    size_t prefix; /* leading bytes with no * ? [ or backslash */
    unsigned flags;
};

struct section {
    struct pattern *v;
    size_t n, cap;
};

enum { SEC_IGNORE, SEC_LOCAL, SEC_COUNT };
static const char *const section_names[SEC_COUNT] = {"ignore", "local"};

struct rules {
    struct section sec[SEC_COUNT];
    char *text; /* the parsed copy every pattern points into */
    bool is_default;
};

/* ---- wildmatch: the glob matcher, WM_PATHNAME semantics -------------- */

enum {
    WM_MATCH,
    WM_NOMATCH,
    WM_ABORT_ALL,         /* text ran out: no later start can match either */
    WM_ABORT_TO_STARSTAR, /* a single '*' hit a '/': only an outer '**' may go on */
};

static bool is_glob_special(char c)
{
    return c == '*' || c == '?' || c == '[' || c == '\\';
}

/* ASCII classes for [[:name:]], as git's sane_ctype (locale-independent). */
static int posix_class(const char *name, size_t n, unsigned char c)
{
    bool upper = c >= 'A' && c <= 'Z', lower = c >= 'a' && c <= 'z';
    bool digit = c >= '0' && c <= '9';
    bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
    bool print = c >= 0x20 && c < 0x7f;
#define IS(s) (n == sizeof(s) - 1 && memcmp(name, s, n) == 0)
    if (IS("alnum"))
        return upper || lower || digit;
    if (IS("alpha"))
        return upper || lower;
    if (IS("blank"))
        return c == ' ' || c == '\t';
    if (IS("cntrl"))
        return c < 0x20 || c == 0x7f;
    if (IS("digit"))
        return digit;
    if (IS("graph"))
        return print && c != ' ';
    if (IS("lower"))
        return lower;
    if (IS("print"))
        return print;
    if (IS("punct"))
        return print && !upper && !lower && !digit && !space;
    if (IS("space"))
        return space;
    if (IS("upper"))
        return upper;
    if (IS("xdigit"))
        return digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
#undef IS
    return -1;
}

/* *pp points at '['.  Returns 1 if c is in the class, 0 if not, -1 if the
 * class is unterminated or names an unknown [:class:]; on 0/1 *pp is left
 * on the closing ']'.  Where the pattern goes never depends on c, so the
 * parser also validates patterns at load time. */
static int bracket_match(const char **pp, unsigned char c)
{
    const char *p = *pp + 1;
    bool negated = false, matched = false;
    if (*p == '!' || *p == '^') {
        negated = true;
        p++;
    }
    unsigned char prev = 0; /* last single char, 0 after a range or [:class:] */
    unsigned char ch = (unsigned char)*p;
    do { /* the first member may be ']' itself */
        if (!ch)
            return -1;
        if (ch == '\\') {
            ch = (unsigned char)*++p;
            if (!ch)
                return -1;
            if (c == ch)
                matched = true;
        } else if (ch == '-' && prev && p[1] && p[1] != ']') {
            unsigned char hi = (unsigned char)*++p;
            if (hi == '\\') {
                hi = (unsigned char)*++p;
                if (!hi)
                    return -1;
            }
            if (c >= prev && c <= hi)
                matched = true;
            ch = 0;
        } else if (ch == '[' && p[1] == ':') {
            const char *name = p + 2, *q = name;
            while (*q && *q != ']')
                q++;
            if (!*q)
                return -1;
            if (q == name || q[-1] != ':') {
                /* no ":]": a plain '[' member; go on after it */
                if (c == '[')
                    matched = true;
            } else {
                int in = posix_class(name, (size_t)(q - name - 1), c);
                if (in < 0)
                    return -1;
                if (in)
                    matched = true;
                p = q;
                ch = 0;
            }
        } else if (c == ch) {
            matched = true;
        }
        prev = ch;
        ch = (unsigned char)*++p;
    } while (ch != ']');
    *pp = p;
    return matched != negated;
}

/* Match NUL-terminated pattern p (which started at pat0) against t[0..te). */
static int wild(const char *pat0, const char *p, const char *t, const char *te)
{
    for (; *p; p++, t++) {
        if (t == te && *p != '*')
            return WM_ABORT_ALL;
        unsigned char tc = t < te ? (unsigned char)*t : 0;
        switch (*p) {
        case '?':
            if (tc == '/')
                return WM_NOMATCH;
            break;
        case '\\':
            /* a trailing backslash compares '\0' with tc != 0: no match */
            if ((unsigned char)*++p != tc)
                return WM_NOMATCH;
            break;
        case '[': {
            int in = bracket_match(&p, tc);
            if (in < 0)
                return WM_ABORT_ALL;
            if (!in || tc == '/')
                return WM_NOMATCH;
            break;
        }
        case '*': {
            const char *first = p;
            bool cross = false; /* may the star match '/'? only a real "**" */
            while (p[1] == '*')
                p++;
            const char *rest = p + 1;
            if (p > first && (first == pat0 || first[-1] == '/') &&
                (*rest == '\0' || *rest == '/' || (rest[0] == '\\' && rest[1] == '/'))) {
                /* "a/" + "**" + "/b": first try zero directories */
                if (*rest == '/' && wild(pat0, rest + 1, t, te) == WM_MATCH)
                    return WM_MATCH;
                cross = true;
            }
            if (*rest == '\0') {
                if (!cross && memchr(t, '/', (size_t)(te - t)))
                    return WM_NOMATCH;
                return WM_MATCH;
            }
            for (; t < te; t++) {
                int m = wild(pat0, rest, t, te);
                if (m != WM_NOMATCH) {
                    if (!cross || m != WM_ABORT_TO_STARSTAR)
                        return m;
                } else if (!cross && *t == '/') {
                    return WM_ABORT_TO_STARSTAR;
                }
            }
            return WM_ABORT_ALL;
        }
        default:
            if ((unsigned char)*p != tc)
                return WM_NOMATCH;
            break;
        }
    }
    return t == te ? WM_MATCH : WM_NOMATCH;
}

/* ---- matching a path against a section ------------------------------- */

/* Does pattern pt match path[0..len), whose basename starts at path+base? */
static bool pattern_matches(const struct pattern *pt, const char *path, size_t len, size_t base)
{
    if (pt->flags & PAT_NODIR) {
        const char *b = path + base;
        size_t blen = len - base;
        if (pt->prefix == pt->len)
            return blen == pt->len && memcmp(b, pt->pat, blen) == 0;
        if (pt->flags & PAT_ENDSWITH)
            return blen >= pt->len - 1 &&
                   memcmp(b + blen - (pt->len - 1), pt->pat + 1, pt->len - 1) == 0;
        return wild(pt->pat, pt->pat, b, b + blen) == WM_MATCH;
    }
    if (pt->prefix) {
        if (pt->prefix > len || memcmp(path, pt->pat, pt->prefix) != 0)
            return false;
        if (pt->prefix == pt->len)
            return len == pt->len;
    }
    const char *rest = pt->pat + pt->prefix;
    return wild(rest, rest, path + pt->prefix, path + len) == WM_MATCH;
}

/* Does the last pattern of s matching this one path (no ancestors) exclude it? */
static bool section_excludes(const struct section *s, const char *path, size_t len, size_t base,
                             bool is_dir)
{
    for (size_t i = s->n; i-- > 0;) {
        const struct pattern *pt = &s->v[i];
        if ((pt->flags & PAT_MUSTBEDIR) && !is_dir)
            continue;
        if (pattern_matches(pt, path, len, base))
            return !(pt->flags & PAT_NEGATIVE);
    }
    return false;
}

/* The fixed classes, whatever the rules say; -1 if none applies. */
static int fixed_class(const char *relpath)
{
    static const char state[] = ".wsync";
    if (!*relpath || strcmp(relpath, RULES_FILE) == 0)
        return RULE_MIRROR;
    if (strncmp(relpath, state, sizeof(state) - 1) == 0 &&
        (relpath[sizeof(state) - 1] == '\0' || relpath[sizeof(state) - 1] == '/'))
        return RULE_LOCAL;
    return -1;
}

enum rule_class rules_classify(const struct rules *r, const char *relpath, bool is_dir)
{
    int fixed = fixed_class(relpath);
    if (fixed >= 0)
        return (enum rule_class)fixed;
    /* Each prefix ending at a '/' is an ancestor directory (as git's
     * prep_exclude): once local, nothing below can change that. */
    bool ignored = false;
    size_t base = 0;
    for (size_t i = 0;; i++) {
        char c = relpath[i];
        if (c != '/' && c != '\0')
            continue;
        bool dir = c == '/' || is_dir;
        if (section_excludes(&r->sec[SEC_LOCAL], relpath, i, base, dir))
            return RULE_LOCAL;
        if (!ignored)
            ignored = section_excludes(&r->sec[SEC_IGNORE], relpath, i, base, dir);
        if (c == '\0')
            break;
        base = i + 1;
    }
    return ignored ? RULE_IGNORE : RULE_MIRROR;
}

enum rule_class rules_classify_child(const struct rules *r, enum rule_class parent,
                                     const char *relpath, bool is_dir)
{
    if (parent == RULE_LOCAL)
        return RULE_LOCAL;
    int fixed = fixed_class(relpath);
    if (fixed >= 0)
        return (enum rule_class)fixed;
    size_t len = strlen(relpath);
    const char *slash = strrchr(relpath, '/');
    size_t base = slash ? (size_t)(slash - relpath) + 1 : 0;
    if (section_excludes(&r->sec[SEC_LOCAL], relpath, len, base, is_dir))
        return RULE_LOCAL;
    if (parent == RULE_IGNORE || section_excludes(&r->sec[SEC_IGNORE], relpath, len, base, is_dir))
        return RULE_IGNORE;
    return RULE_MIRROR;
}

bool rules_has_local(const struct rules *r)
{
    return r->sec[SEC_LOCAL].n > 0;
}

/* An anchored pattern with no inner '/' and no "**" can only match a
 * top-level name; any other anchored pattern needs the whole path. */
static bool anchored_deep(const struct pattern *pt)
{
    return !(pt->flags & PAT_NODIR) &&
           (memchr(pt->pat, '/', pt->len) || strstr(pt->pat, "**"));
}

bool rules_local_needs_path(const struct rules *r)
{
    const struct section *s = &r->sec[SEC_LOCAL];
    for (size_t i = 0; i < s->n; i++)
        if (anchored_deep(&s->v[i]))
            return true;
    return false;
}

bool rules_local_name(const struct rules *r, const char *name, bool is_dir)
{
    const struct section *s = &r->sec[SEC_LOCAL];
    size_t len = strlen(name);
    for (size_t i = s->n; i-- > 0;) {
        const struct pattern *pt = &s->v[i];
        assert(!anchored_deep(pt));
        if (!(pt->flags & PAT_NODIR) || ((pt->flags & PAT_MUSTBEDIR) && !is_dir))
            continue; /* anchored at the root: cannot match below it */
        if (pattern_matches(pt, name, len, 0))
            return !(pt->flags & PAT_NEGATIVE);
    }
    return false;
}

const char *rule_class_name(enum rule_class c)
{
    switch (c) {
    case RULE_MIRROR:
        return "mirror";
    case RULE_IGNORE:
        return "ignore";
    case RULE_LOCAL:
        return "local";
    }
    return "?";
}

/* ---- parsing ---------------------------------------------------------- */

/* Drop trailing spaces unless escaped with a backslash (git's rule). */
static void trim_trailing_spaces(char *s)
{
    char *last_space = NULL;
    for (char *p = s; *p; p++) {
        if (*p == ' ') {
            if (!last_space)
                last_space = p;
            continue;
        }
        if (*p == '\\' && !*++p)
            return;
        last_space = NULL;
    }
    if (last_space)
        *last_space = '\0';
}

/* A line "[name]" (optionally followed by blanks and a # comment) is a
 * section header: returns its SEC_ index, -2 if the name is unknown, -1 if
 * the line is not a header (so "[ab]c" stays a pattern). */
static int section_header(const char *line, const char **name, size_t *namelen)
{
    if (line[0] != '[')
        return -1;
    const char *p = line + 1;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '_' || *p == '-')
        p++;
    if (p == line + 1 || *p != ']')
        return -1;
    *name = line + 1;
    *namelen = (size_t)(p - line - 1);
    for (p++; *p == ' ' || *p == '\t'; p++)
        ;
    if (*p && *p != '#')
        return -1;
    for (int i = 0; i < SEC_COUNT; i++)
        if (strlen(section_names[i]) == *namelen && !memcmp(section_names[i], *name, *namelen))
            return i;
    return -2;
}

/* Turn one trimmed line into *pt (pointing into line, which it edits).
 * NULL, or the cause of rejection. */
static const char *compile_pattern(char *p, struct pattern *pt)
{
    unsigned flags = 0;
    if (*p == '!') {
        flags |= PAT_NEGATIVE;
        p++;
    }
    size_t n = strlen(p);
    if (n && p[n - 1] == '/') {
        flags |= PAT_MUSTBEDIR;
        p[--n] = '\0';
    }
    if (!memchr(p, '/', n))
        flags |= PAT_NODIR;
    else if (*p == '/') { /* anchored; the match is against the whole path */
        p++;
        n--;
    }
    if (n == 0)
        return "empty pattern";
    for (const char *q = p; *q; q++) {
        if (*q == '\\') {
            if (!*++q)
                return "trailing backslash escapes nothing (git never matches this)";
        } else if (*q == '[' && bracket_match(&q, 'a') < 0) {
            return "unterminated [ class or unknown [:name:] (git never matches this; "
                   "write \\[ for a literal [)";
        }
    }
    size_t prefix = 0;
    while (prefix < n && !is_glob_special(p[prefix]))
        prefix++;
    if (p[0] == '*') {
        size_t i = 1;
        while (i < n && !is_glob_special(p[i]))
            i++;
        if (i == n)
            flags |= PAT_ENDSWITH;
    }
    pt->pat = p;
    pt->len = n;
    pt->prefix = prefix;
    pt->flags = flags;
    return NULL;
}

static int section_push(struct section *s, const struct pattern *pt)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct pattern *v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = *pt;
    return 0;
}

int rules_parse(const char *text, size_t len, const char *filename, struct rules **out, char *err,
                size_t errsize)
{
    *out = NULL;
    struct rules *r = calloc(1, sizeof(*r));
    if (!r || !(r->text = malloc(len + 1))) {
        free(r);
        snprintf(err, errsize, "%s: out of memory", filename);
        return -ENOMEM;
    }
    memcpy(r->text, text, len);
    r->text[len] = '\0';

    char *s = r->text, *end = r->text + len;
    if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
        s += 3; /* UTF-8 byte order mark, as git skips it */
    struct section *cur = NULL;
    unsigned lineno = 0;
    int rc = 0;
    const char *cause = NULL;
    while (s < end) {
        char *line = s;
        char *eol = memchr(s, '\n', (size_t)(end - s));
        if (!eol)
            eol = end;
        s = eol < end ? eol + 1 : end;
        lineno++;
        if (memchr(line, '\0', (size_t)(eol - line))) {
            cause = "NUL byte in line";
            break;
        }
        if (eol > line && eol[-1] == '\r')
            eol--;
        *eol = '\0';
        if (!*line || *line == '#')
            continue;

        const char *name;
        size_t namelen;
        int sec = section_header(line, &name, &namelen);
        if (sec == -2) {
            snprintf(err, errsize,
                     "%s:%u: unknown section [%.*s] (the sections are [ignore] and [local]; "
                     "to match one bracket class write **/[...])",
                     filename, lineno, (int)namelen, name);
            rc = -EINVAL;
            break;
        }
        if (sec >= 0) {
            cur = &r->sec[sec];
            continue;
        }
        trim_trailing_spaces(line);
        if (!*line)
            continue;
        if (!cur) {
            cause = "pattern before any section header (start with [ignore] or [local])";
            break;
        }
        struct pattern pt;
        if ((cause = compile_pattern(line, &pt)))
            break;
        if (section_push(cur, &pt) < 0) {
            snprintf(err, errsize, "%s: out of memory", filename);
            rc = -ENOMEM;
            break;
        }
    }
    if (cause) {
        snprintf(err, errsize, "%s:%u: %s", filename, lineno, cause);
        rc = -EINVAL;
    }
    if (rc < 0) {
        rules_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void rules_free(struct rules *r)
{
    if (!r)
        return;
    for (int i = 0; i < SEC_COUNT; i++)
        free(r->sec[i].v);
    free(r->text);
    free(r);
}

bool rules_are_default(const struct rules *r)
{
    return r->is_default;
}

/* ---- loading ---------------------------------------------------------- */

static int read_all(int fd, char **buf, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    if (!b)
        return -ENOMEM;
    for (;;) {
        if (n == cap) {
            if (cap > RULES_MAX_SIZE) {
                free(b);
                return -EFBIG;
            }
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                return -ENOMEM;
            }
            b = nb;
            cap *= 2;
        }
        ssize_t got = read(fd, b + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = -errno;
            free(b);
            return e;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if (n > RULES_MAX_SIZE) {
        free(b);
        return -EFBIG;
    }
    *buf = b;
    *len = n;
    return 0;
}

int rules_load(int root_dirfd, const char *root_name, struct rules **out, char *err, size_t errsize)
{
    *out = NULL;
    char name[4096];
    if (root_name && *root_name) {
        size_t rl = strlen(root_name);
        bool slash = root_name[rl - 1] == '/';
        snprintf(name, sizeof(name), "%s%s%s", root_name, slash ? "" : "/", RULES_FILE);
    } else {
        snprintf(name, sizeof(name), "%s", RULES_FILE);
    }

    int fd = openat(root_dirfd, RULES_FILE, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 && errno == ENOENT) {
        int rc = rules_parse(rules_default_text, sizeof(rules_default_text) - 1,
                             "(built-in defaults)", out, err, errsize);
        if (rc == 0)
            (*out)->is_default = true;
        return rc;
    }
    if (fd < 0) {
        int e = errno;
        snprintf(err, errsize, "%s: %s", name, strerror(e));
        return -e;
    }
    struct stat st;
    int rc = 0;
    char *buf = NULL;
    size_t len = 0;
    if (fstat(fd, &st) < 0)
        rc = -errno;
    else if (!S_ISREG(st.st_mode))
        rc = -EINVAL;
    else
        rc = read_all(fd, &buf, &len);
    close(fd);
    if (rc == -EINVAL)
        snprintf(err, errsize, "%s: not a regular file", name);
    else if (rc == -EFBIG)
        snprintf(err, errsize, "%s: larger than %u KiB", name, RULES_MAX_SIZE / 1024);
    else if (rc < 0)
        snprintf(err, errsize, "%s: %s", name, strerror(-rc));
    if (rc < 0)
        return rc;
    rc = rules_parse(buf, len, name, out, err, errsize);
    free(buf);
    return rc;
}
