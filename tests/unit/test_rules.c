/* test_rules.c — .wsyncrules syntax, gitignore matching (against git itself), defaults, errors. */
#include "sync/rules.h"

#include "tests/lib/harness.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define I "[ignore]\n"
#define L "[local]\n"

enum { F = 0, D = 1 }; /* file or directory */

struct row {
    const char *rules;
    const char *path;
    int is_dir;
    enum rule_class want;
};

static const struct row rows[] = {
    /* comments, blank lines, trailing spaces, line endings */
    {"# c\n\n" I "# not a pattern\n\nfoo\n", "foo", F, RULE_IGNORE},
    {"# c\n\n" I "# not a pattern\n\nfoo\n", "# not a pattern", F, RULE_MIRROR},
    {I "foo   \n", "foo", F, RULE_IGNORE},
    {I "foo\\ \n", "foo ", F, RULE_IGNORE},
    {I "foo\\ \n", "foo", F, RULE_MIRROR},
    {I "foo\\  \n", "foo ", F, RULE_IGNORE},
    {I "foo\r\n", "foo", F, RULE_IGNORE},
    {"\xef\xbb\xbf" I "foo\n", "foo", F, RULE_IGNORE},
    {"[ignore]   # trailing comment\nfoo", "foo", F, RULE_IGNORE},
    {"   \n" I "foo\n", "foo", F, RULE_IGNORE},
    {I " foo\n", " foo", F, RULE_IGNORE}, /* leading spaces are kept, as in git */
    {I " foo\n", "foo", F, RULE_MIRROR},
    {I "foo # not a comment\n", "foo", F, RULE_MIRROR},
    {I "foo # not a comment\n", "foo # not a comment", F, RULE_IGNORE},
    /* escapes */
    {I "\\#x\n", "#x", F, RULE_IGNORE},
    {I "\\!x\n", "!x", F, RULE_IGNORE},
    {I "\\!x\n", "x", F, RULE_MIRROR},
    {I "a\\*b\n", "a*b", F, RULE_IGNORE},
    {I "a\\*b\n", "axb", F, RULE_MIRROR},
    {I "a\\\\b\n", "a\\b", F, RULE_IGNORE},
    /* negation: the last matching pattern decides */
    {I "*.log\n!keep.log\n", "a.log", F, RULE_IGNORE},
    {I "*.log\n!keep.log\n", "keep.log", F, RULE_MIRROR},
    {I "*.log\n!keep.log\n", "d/keep.log", F, RULE_MIRROR},
    {I "!keep.log\n*.log\n", "keep.log", F, RULE_IGNORE},
    {I "*\n!*.c\n", "x.c", F, RULE_MIRROR},
    {I "*\n!*.c\n", "d/x.c", F, RULE_IGNORE}, /* d itself is excluded */
    {I "*\n!*/\n!*.c\n", "d/x.c", F, RULE_MIRROR},
    {I "*\n!*/\n!*.c\n", "d/x.h", F, RULE_IGNORE},
    {I "build/\n!build/keep\n", "build/keep", F, RULE_IGNORE}, /* can't re-include */
    {I "build/*\n!build/keep\n", "build/keep", F, RULE_MIRROR},
    {I "build/*\n!build/keep\n", "build/x", F, RULE_IGNORE},
    {I "build/*\n!build/keep\n", "build", D, RULE_MIRROR},
    /* anchoring */
    {I "/foo\n", "foo", F, RULE_IGNORE},
    {I "/foo\n", "a/foo", F, RULE_MIRROR},
    {I "foo\n", "a/b/foo", F, RULE_IGNORE},
    {I "a/b\n", "a/b", F, RULE_IGNORE},
    {I "a/b\n", "x/a/b", F, RULE_MIRROR},
    {I "doc/*.txt\n", "doc/x.txt", F, RULE_IGNORE},
    {I "doc/*.txt\n", "doc/sub/x.txt", F, RULE_MIRROR},
    {I "doc/*.txt\n", "x/doc/y.txt", F, RULE_MIRROR},
    /* directories only */
    {I "foo/\n", "foo", D, RULE_IGNORE},
    {I "foo/\n", "foo", F, RULE_MIRROR},
    {I "foo/\n", "a/foo", D, RULE_IGNORE},
    {I "foo/\n", "foo/x", F, RULE_IGNORE},
    {I "/a/b/\n", "a/b", D, RULE_IGNORE},
    {I "/a/b/\n", "a/b", F, RULE_MIRROR},
    /* '*' and '?' stay inside one component */
    {I "/a*c\n", "abc", F, RULE_IGNORE},
    {I "/a*c\n", "ab/c", F, RULE_MIRROR},
    {I "/a?c\n", "abc", F, RULE_IGNORE},
    {I "/a?c\n", "a/c", F, RULE_MIRROR},
    {I "*.swp\n", "a/.x.swp", F, RULE_IGNORE},
    {I "*.swp\n", "swp", F, RULE_MIRROR},
    /* '**' */
    {I "**/foo\n", "foo", F, RULE_IGNORE},
    {I "**/foo\n", "a/b/foo", F, RULE_IGNORE},
    {I "**/foo\n", "xfoo", F, RULE_MIRROR},
    {I "**/foo/bar\n", "foo/bar", F, RULE_IGNORE},
    {I "**/foo/bar\n", "x/y/foo/bar", F, RULE_IGNORE},
    {I "foo/**\n", "foo/a", F, RULE_IGNORE},
    {I "foo/**\n", "foo/a/b", F, RULE_IGNORE},
    {I "foo/**\n", "foo", D, RULE_MIRROR},
    {I "a/**/b\n", "a/b", F, RULE_IGNORE},
    {I "a/**/b\n", "a/x/b", F, RULE_IGNORE},
    {I "a/**/b\n", "a/x/y/b", F, RULE_IGNORE},
    {I "a/**/b\n", "a/xb", F, RULE_MIRROR},
    {I "/a**b\n", "axb", F, RULE_IGNORE}, /* not a real "**": one component */
    {I "/a**b\n", "ax/yb", F, RULE_MIRROR},
    {I "ab**/c\n", "abz/y/c", F, RULE_IGNORE}, /* git's quirk, see rules.c */
    /* bracket classes */
    {I "[abc].txt\n", "b.txt", F, RULE_IGNORE},
    {I "[abc].txt\n", "d.txt", F, RULE_MIRROR},
    {I "file[0-9]\n", "file5", F, RULE_IGNORE},
    {I "file[0-9]\n", "filex", F, RULE_MIRROR},
    {I "x[!a]\n", "xa", F, RULE_MIRROR},
    {I "x[!a]\n", "xb", F, RULE_IGNORE},
    {I "x[^a]\n", "xb", F, RULE_IGNORE},
    {I "x[]]\n", "x]", F, RULE_IGNORE},
    {I "x[a-]\n", "x-", F, RULE_IGNORE},
    {I "x[[:digit:]]\n", "x1", F, RULE_IGNORE},
    {I "x[[:digit:]]\n", "xa", F, RULE_MIRROR},
    {I "x[\\]]\n", "x]", F, RULE_IGNORE},
    {I "/a[/]b\n", "a/b", F, RULE_MIRROR}, /* a class never matches '/' */
    {I "[ab]c\n", "ac", F, RULE_IGNORE},   /* not a header: text follows ']' */
    {I "**/[ab]\n", "x/a", F, RULE_IGNORE},
    /* a path inherits an excluded ancestor directory */
    {L "/build/\n", "build/x/y.o", F, RULE_LOCAL},
    {L "/build/\n", "src/build/y.o", F, RULE_MIRROR},
    {I "node_modules/\n", "a/node_modules/b/c.js", F, RULE_IGNORE},
    /* [local] beats [ignore], whatever the order */
    {I "*.o\n" L "/build/\n", "build/x.o", F, RULE_LOCAL},
    {I "*.o\n" L "/build/\n", "x.o", F, RULE_IGNORE},
    {L "*.o\n" I "/build/\n", "build/x.o", F, RULE_LOCAL},
    {L "*.o\n" I "/build/\n", "build/y.c", F, RULE_IGNORE},
    {I "foo\n" L "foo\n", "foo", F, RULE_LOCAL},
    {L "foo\n" I "foo\n", "foo", F, RULE_LOCAL},
    {L "foo\n!foo\n" I "foo\n", "foo", F, RULE_IGNORE}, /* negation stays in its section */
    {I "a\n" L "b\n" I "c\n", "c", F, RULE_IGNORE},     /* sections may repeat */
    /* the examples of docs/rules.md */
    {L "node_modules/\n/dist/*\n!/dist/README.md\n", "dist/README.md", F, RULE_MIRROR},
    {L "node_modules/\n/dist/*\n!/dist/README.md\n", "dist/app.js", F, RULE_LOCAL},
    {L "*.egg-info/\n", "src/pkg.egg-info", D, RULE_LOCAL},
    /* fixed classes */
    {I "*\n", RULES_FILE, F, RULE_MIRROR},
    {I "*\n", ".wsync", D, RULE_LOCAL},
    {"", ".wsync/index.db", F, RULE_LOCAL},
    {"", ".wsyncx", F, RULE_MIRROR},
    {I "*\n", "sub/.wsync", D, RULE_IGNORE},
    {I "*\n", "", D, RULE_MIRROR},
    {"", "anything", F, RULE_MIRROR},
};

static struct rules *parse_ok(const char *text)
{
    struct rules *r;
    char err[256] = "";
    int rc = rules_parse(text, strlen(text), "t.wsyncrules", &r, err, sizeof(err));
    ck_assert_msg(rc == 0, "parse of %s failed: %s", text, err);
    return r;
}

START_TEST(table)
{
    const struct row *t = &rows[_i];
    struct rules *r = parse_ok(t->rules);
    enum rule_class got = rules_classify(r, t->path, t->is_dir);
    ck_assert_msg(got == t->want, "row %d: \"%s\" %s under rules:\n%s\ngot %s, want %s", _i,
                  t->path, t->is_dir ? "(dir)" : "(file)", t->rules, rule_class_name(got),
                  rule_class_name(t->want));
    rules_free(r);
}
END_TEST

struct bad {
    const char *text;
    size_t len; /* 0: strlen */
    const char *where;
    const char *cause;
};

static const struct bad bads[] = {
    {"foo\n" I, 0, "proj/.wsyncrules:1:", "before any section"},
    {"# c\n\n" I "x\n[bogus]\n", 0, "proj/.wsyncrules:5:", "unknown section [bogus]"},
    {"[ab]\n", 0, "proj/.wsyncrules:1:", "unknown section [ab]"},
    {"[Ignore]\n", 0, "proj/.wsyncrules:1:", "unknown section"},
    {I "ok\nfoo[bar\n", 0, "proj/.wsyncrules:3:", "unterminated ["},
    {I "q[]\n", 0, "proj/.wsyncrules:2:", "unterminated ["},
    {I "x[[:alpha:]\n", 0, "proj/.wsyncrules:2:", "unterminated ["},
    {I "x[[:nope:]]\n", 0, "proj/.wsyncrules:2:", "[:name:]"},
    {I "foo\\\n", 0, "proj/.wsyncrules:2:", "trailing backslash"},
    {I "foo\\/\n", 0, "proj/.wsyncrules:2:", "trailing backslash"},
    {I "!\n", 0, "proj/.wsyncrules:2:", "empty pattern"},
    {I "/\n", 0, "proj/.wsyncrules:2:", "empty pattern"},
    {I "a\0b\n", 13, "proj/.wsyncrules:2:", "NUL"},
};

START_TEST(errors)
{
    const struct bad *b = &bads[_i];
    struct rules *r = (struct rules *)1;
    char err[256] = "";
    size_t len = b->len ? b->len : strlen(b->text);
    ck_assert_int_eq(rules_parse(b->text, len, "proj/.wsyncrules", &r, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_null(r);
    ck_assert_msg(strncmp(err, b->where, strlen(b->where)) == 0, "want %s in: %s", b->where, err);
    ck_assert_msg(strstr(err, b->cause), "want \"%s\" in: %s", b->cause, err);
}
END_TEST

/* ---- loading from a directory ------------------------------------------ */

static char tmp[64];

static int make_tmp(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/wsync-rules-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    int fd = open(tmp, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(fd, 0);
    return fd;
}

static void write_file(int dirfd, const char *name, const char *text, size_t len)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static void rm_tmp(int fd)
{
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(defaults_when_absent)
{
    int dfd = make_tmp();
    struct rules *r;
    char err[256] = "";
    ck_assert_int_eq(rules_load(dfd, tmp, &r, err, sizeof(err)), 0);
    ck_assert(rules_are_default(r));
    static const struct {
        const char *path;
        int dir;
        enum rule_class want;
    } want[] = {
        {"build", D, RULE_LOCAL},
        {"build/pkg/x.o", F, RULE_LOCAL},
        {"build", F, RULE_MIRROR}, /* directories only */
        {"src/build", D, RULE_MIRROR},
        {"install/setup.bash", F, RULE_LOCAL},
        {"log/latest", F, RULE_LOCAL},
        {".venv", D, RULE_LOCAL},
        {"tools/.venv/bin/python", F, RULE_LOCAL},
        {"venv/bin/python", F, RULE_LOCAL},
        {"web/node_modules/left-pad/index.js", F, RULE_LOCAL},
        {"pkg/__pycache__/m.cpython-311.pyc", F, RULE_LOCAL},
        {"src/.main.c.swp", F, RULE_IGNORE},
        {"notes~", F, RULE_IGNORE},
        {"src/.#main.c", F, RULE_IGNORE},
        {"build/.x.swp", F, RULE_LOCAL},
        {"src/main.c", F, RULE_MIRROR},
        {RULES_FILE, F, RULE_MIRROR},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(rules_classify(r, want[i].path, want[i].dir) == want[i].want, "%s: got %s",
                      want[i].path, rule_class_name(rules_classify(r, want[i].path, want[i].dir)));
    rules_free(r);
    rm_tmp(dfd);
}
END_TEST

START_TEST(file_replaces_defaults)
{
    int dfd = make_tmp();
    const char text[] = "[ignore]\n*.log\n";
    write_file(dfd, RULES_FILE, text, sizeof(text) - 1);
    struct rules *r;
    char err[256] = "";
    ck_assert_int_eq(rules_load(dfd, tmp, &r, err, sizeof(err)), 0);
    ck_assert(!rules_are_default(r));
    ck_assert_int_eq(rules_classify(r, "a.log", false), RULE_IGNORE);
    ck_assert_int_eq(rules_classify(r, "build", true), RULE_MIRROR);
    ck_assert_int_eq(rules_classify(r, "x.swp", false), RULE_MIRROR);
    rules_free(r);
    rm_tmp(dfd);
}
END_TEST

START_TEST(load_errors_name_the_file)
{
    int dfd = make_tmp();
    const char text[] = "[ignore]\n*.log\n[locals]\n";
    write_file(dfd, RULES_FILE, text, sizeof(text) - 1);
    struct rules *r;
    char err[256] = "", want[128];
    ck_assert_int_eq(rules_load(dfd, tmp, &r, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_null(r);
    snprintf(want, sizeof(want), "%s/.wsyncrules:3: unknown section [locals]", tmp);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got: %s", err);
    ck_assert_int_eq(rules_load(dfd, NULL, &r, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strncmp(err, ".wsyncrules:3:", 14) == 0, "got: %s", err);

    /* too large */
    size_t big = (1u << 20) + 1;
    char *huge = malloc(big);
    memset(huge, '\n', big);
    write_file(dfd, RULES_FILE, huge, big);
    free(huge);
    ck_assert_int_eq(rules_load(dfd, tmp, &r, err, sizeof(err)), -EFBIG);
    ck_assert_msg(strstr(err, ".wsyncrules: larger than"), "got: %s", err);

    /* not a regular file */
    ck_assert_int_eq(unlinkat(dfd, RULES_FILE, 0), 0);
    ck_assert_int_eq(mkdirat(dfd, RULES_FILE, 0755), 0);
    ck_assert_int_eq(rules_load(dfd, "proj/", &r, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "proj/.wsyncrules: not a regular file");
    rm_tmp(dfd);
}
END_TEST

/* classify_child() from the parent's class agrees with classify() everywhere. */
START_TEST(child_agrees_with_full_walk)
{
    static const char *texts[] = {
        rules_default_text,
        I "*.o\n!keep.o\nout/*\n!out/keep/\n" L "/build/\n*.cache\n!x.cache\n",
        I "*\n!*/\n!*.c\n" L "**/tmp/\n",
    };
    /* parents before children */
    static const struct {
        const char *path;
        int dir;
    } tree[] = {
        {".wsync", D},
        {".wsync/db", F},
        {RULES_FILE, F},
        {"build", D},
        {"build/a", D},
        {"build/a/x.o", F},
        {"src", D},
        {"src/a.c", F},
        {"src/a.o", F},
        {"src/keep.o", F},
        {"src/tmp", D},
        {"src/tmp/z.c", F},
        {"src/x.cache", F},
        {"src/y.cache", F},
        {"out", D},
        {"out/keep", D},
        {"out/keep/k.c", F},
        {"out/other", D},
        {"out/other/o.c", F},
        {"web", D},
        {"web/node_modules", D},
        {"web/node_modules/m", D},
        {"web/node_modules/m/i.js", F},
        {"py", D},
        {"py/__pycache__", D},
        {"py/__pycache__/m.pyc", F},
        {"a.swp", F},
        {"venv", D},
        {"venv/bin", D},
        {"venv/bin/python", F},
    };
    size_t n = sizeof(tree) / sizeof(tree[0]);
    for (size_t k = 0; k < sizeof(texts) / sizeof(texts[0]); k++) {
        struct rules *r = parse_ok(texts[k]);
        enum rule_class cls[64];
        for (size_t i = 0; i < n; i++) {
            const char *p = tree[i].path, *slash = strrchr(p, '/');
            enum rule_class parent = RULE_MIRROR;
            if (slash)
                for (size_t j = 0; j < i; j++)
                    if (strlen(tree[j].path) == (size_t)(slash - p) &&
                        !strncmp(tree[j].path, p, (size_t)(slash - p)))
                        parent = cls[j];
            cls[i] = rules_classify_child(r, parent, p, tree[i].dir);
            enum rule_class full = rules_classify(r, p, tree[i].dir);
            ck_assert_msg(cls[i] == full, "rules %zu, %s: child %s, full %s", k, p,
                          rule_class_name(cls[i]), rule_class_name(full));
        }
        rules_free(r);
    }
}
END_TEST

/* A pathological pattern must not take exponential time. */
START_TEST(many_stars_stay_fast)
{
    struct rules *r = parse_ok(I "/*a*a*a*a*a*a*a*a*a*a*b\n**/x/**/x/**/x/**/y\n");
    char path[256];
    memset(path, 'a', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    ck_assert_int_eq(rules_classify(r, path, false), RULE_MIRROR);
    char deep[256] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "x/");
    strcat(deep, "z");
    ck_assert_int_eq(rules_classify(r, deep, false), RULE_MIRROR);
    rules_free(r);
}
END_TEST

/* ---- cross-check against git check-ignore -------------------------------- */

struct probe {
    const char *path;
    int dir;
};

struct git_case {
    const char *gitignore;
    struct probe probes[64];
};

static const struct git_case git_cases[] = {
    {"*.log\n!keep.log\n/root-only\ndoc/*.txt\nbuild/\n!build/keep\nout/*\n!out/keep\n"
     "foo/**\n**/deep\na/**/b\nab**/c\n/x*y\nq?z\n[abc].txt\nfile[0-9]\nn[!a]\nm[^a]\n"
     "r[]]\ns[[:digit:]]\nt[a-]\n\\#hash\n\\!bang\nsp\\ \ntrail   \n*~\n.#*\n"
     "w[[:a]\ng[a-c-e]\n",
     {{"a.log", F},     {"d/b.log", F},     {"keep.log", F},    {"d/keep.log", F},
      {"root-only", F}, {"d/root-only", F}, {"doc/x.txt", F},   {"doc/sub/x.txt", F},
      {"build", D},     {"build/keep", F},  {"build/x/y.o", F}, {"out", D},
      {"out/keep", F},  {"out/x", F},       {"foo", D},         {"foo/a", F},
      {"foo/b/c", F},   {"deep", F},        {"p/q/deep", F},    {"a/b", F},
      {"a/x/y/b", F},   {"a/xb", F},        {"abz/y/c", F},     {"x1y", F},
      {"xq/zy", F},     {"qaz", F},         {"qz", F},          {"b.txt", F},
      {"e.txt", F},     {"file5", F},       {"filex", F},       {"nb", F},
      {"na", F},        {"mb", F},          {"ma", F},          {"r]", F},
      {"s1", F},        {"sa", F},          {"t-", F},          {"#hash", F},
      {"!bang", F},     {"sp ", F},         {"sp", F},          {"trail", F},
      {"notes~", F},    {".#lock", F},      {"w:", F},          {"g-", F}}},
    {"*\n!*/\n!*.c\n",
     {{"src", D},
      {"src/x.c", F},
      {"src/x.h", F},
      {"x.c", F},
      {"README", F},
      {"src/sub", D},
      {"src/sub/y.c", F}}},
    {"/node_modules/\n**/__pycache__/\n.venv/\n!lib/\nlib/*.o\nz/**/\n**/k/**\n",
     {{"node_modules/x", F},
      {"pkg/node_modules/x", F},
      {"pkg/__pycache__/m.pyc", F},
      {"__pycache__/a", F},
      {".venv/bin/python", F},
      {"x/.venv/y", F},
      {"lib/a.o", F},
      {"x/lib/a.o", F},
      {"z/q", F},
      {"z/r/s", F},
      {"k", F},
      {"m/k/n", F},
      {"m/k2/n", F}}},
    {"*.o\n!/a/**/b.o\n/c/*/d\ne/**/f/\n**/g?/h\n*[0-9][0-9]\n",
     {{"x.o", F},
      {"a/b.o", F},
      {"a/x/b.o", F},
      {"y/a/b.o", F},
      {"c/1/d", F},
      {"c/1/2/d", F},
      {"e/f", D},
      {"e/1/2/f", D},
      {"e/1/f", F},
      {"q/g1/h", F},
      {"g1/h", F},
      {"g12/h", F},
      {"v12", F},
      {"v1", F}}},
};

static bool have_git(void)
{
    return system("git --version >/dev/null 2>&1") == 0;
}

static void make_path(const char *root, const char *rel, bool dir)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        ck_assert_msg(mkdir(p, 0755) == 0 || errno == EEXIST, "mkdir %s", p);
        *s = '/';
    }
    if (dir) {
        ck_assert_msg(mkdir(p, 0755) == 0 || errno == EEXIST, "mkdir %s", p);
    } else {
        int fd = open(p, O_WRONLY | O_CREAT, 0644);
        ck_assert_msg(fd >= 0, "create %s", p);
        close(fd);
    }
}

START_TEST(agrees_with_git_check_ignore)
{
    if (!have_git()) {
        fprintf(stderr, "test_rules: git not installed, skipping the cross-check\n");
        return;
    }
    const struct git_case *gc = &git_cases[_i];
    int dfd = make_tmp();
    close(dfd);
    char repo[128], list[128], out[128], cmd[1024];
    snprintf(repo, sizeof(repo), "%s/repo", tmp);
    snprintf(list, sizeof(list), "%s/list", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    ck_assert_int_eq(mkdir(repo, 0755), 0);
    snprintf(cmd, sizeof(cmd), "git init -q --template= '%s' >/dev/null 2>&1", repo);
    ck_assert_int_eq(system(cmd), 0);

    char gi[512];
    snprintf(gi, sizeof(gi), "%s/.gitignore", repo);
    FILE *f = fopen(gi, "w");
    fputs(gc->gitignore, f);
    fclose(f);
    f = fopen(list, "w");
    size_t n = 0;
    for (; n < 64 && gc->probes[n].path; n++) {
        make_path(repo, gc->probes[n].path, gc->probes[n].dir);
        fwrite(gc->probes[n].path, 1, strlen(gc->probes[n].path) + 1, f);
    }
    fclose(f);

    snprintf(cmd, sizeof(cmd),
             "cd '%s' && GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null "
             "git -c core.excludesFile=/dev/null check-ignore --no-index -z --stdin "
             "<'%s' >'%s' 2>&1",
             repo, list, out);
    int st = system(cmd);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) <= 1, "git check-ignore failed: %d", st);

    /* git prints the ignored paths, NUL-terminated */
    static char ignored[8192];
    f = fopen(out, "r");
    size_t got = fread(ignored, 1, sizeof(ignored) - 1, f);
    fclose(f);
    ignored[got] = '\0';

    size_t tlen = strlen(gc->gitignore) + sizeof(I);
    char *text = malloc(tlen);
    snprintf(text, tlen, I "%s", gc->gitignore);
    struct rules *r = parse_ok(text);
    free(text);
    size_t n_ignored = 0;
    for (size_t i = 0; i < n; i++) {
        bool git_says = false;
        for (size_t off = 0; off < got; off += strlen(ignored + off) + 1)
            if (strcmp(ignored + off, gc->probes[i].path) == 0)
                git_says = true;
        enum rule_class c = rules_classify(r, gc->probes[i].path, gc->probes[i].dir);
        ck_assert_msg((c == RULE_IGNORE) == git_says, "case %d, %s: git %s, wsync %s", _i,
                      gc->probes[i].path, git_says ? "ignores" : "keeps", rule_class_name(c));
        n_ignored += git_says;
    }
    /* the oracle really ran: it ignored some probes and kept others */
    ck_assert_msg(n_ignored > 0 && n_ignored < n, "case %d: git ignored %zu of %zu: %s", _i,
                  n_ignored, n, ignored);
    rules_free(r);
    rm_tmp(open(tmp, O_RDONLY | O_DIRECTORY));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rules");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, table, 0, sizeof(rows) / sizeof(rows[0]));
    tcase_add_loop_test(tc, errors, 0, sizeof(bads) / sizeof(bads[0]));
    tcase_add_test(tc, defaults_when_absent);
    tcase_add_test(tc, file_replaces_defaults);
    tcase_add_test(tc, load_errors_name_the_file);
    tcase_add_test(tc, child_agrees_with_full_walk);
    tcase_add_test(tc, many_stars_stay_fast);
    tcase_add_loop_test(tc, agrees_with_git_check_ignore, 0,
                        sizeof(git_cases) / sizeof(git_cases[0]));
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
