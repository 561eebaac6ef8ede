/*
 * test_tree_hash.c — the tree root: equal for equal trees however they were
 * made, different after any change that is mirrored, and the same from the
 * builder as from a walk of the disk.
 */
#include "sync/chunker.h"
#include "sync/strbuf.h"
#include "sync/tree_hash.h"

#include "tests/lib/harness.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- scratch trees ---- */

static char *scratch_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    char *path;
    ck_assert_int_gt(asprintf(&path, "%s/wsync-tree-XXXXXX", tmp ? tmp : "/tmp"), 0);
    ck_assert_ptr_nonnull(mkdtemp(path));
    return path;
}

/* Remove everything below dirfd, then dirfd's own entry `name` in parent. */
static void remove_below(int dirfd)
{
    int fd = dup(dirfd);
    DIR *d = fdopendir(fd);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (unlinkat(dirfd, de->d_name, 0) == 0)
            continue;
        int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        ck_assert_int_ge(sub, 0);
        remove_below(sub);
        close(sub);
        ck_assert_int_eq(unlinkat(dirfd, de->d_name, AT_REMOVEDIR), 0);
    }
    closedir(d);
}

static void remove_tree(char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(fd, 0);
    remove_below(fd);
    close(fd);
    ck_assert_int_eq(rmdir(path), 0);
    free(path);
}

static void put_file(const char *root, const char *rel, const char *data, mode_t mode)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
    ck_assert_int_eq(write(fd, data, strlen(data)), (ssize_t)strlen(data));
    ck_assert_int_eq(fchmod(fd, mode), 0);
    close(fd);
}

static void put_dir(const char *root, const char *rel, mode_t mode)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    ck_assert_msg(mkdir(path, mode) == 0, "%s: %s", path, strerror(errno));
    ck_assert_int_eq(chmod(path, mode), 0); /* past the umask */
}

static void put_link(const char *root, const char *rel, const char *target)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    ck_assert_int_eq(symlink(target, path), 0);
}

static void at(const char *root, const char *rel, char *out)
{
    snprintf(out, 4096, "%s/%s", root, rel);
}

static struct content_id root_of(const char *dir, tree_skip_fn skip, void *arg)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(fd, 0);
    struct content_id id;
    struct strbuf err = STRBUF_INIT;
    int r = tree_hash_dir(fd, skip, arg, &id, &err);
    ck_assert_msg(r == 0, "%s: %s at '%s'", dir, strerror(-r), err.buf);
    strbuf_release(&err);
    close(fd);
    return id;
}

static bool root_is(const char *dir, tree_skip_fn skip, const struct content_id *want)
{
    struct content_id id = root_of(dir, skip, NULL);
    return content_id_eq(&id, want);
}

/* The sample tree: files, nested and empty dirs, a symlink.  `reverse`
 * makes everything in the opposite order. */
static void make_sample(const char *root, bool reverse)
{
    if (!reverse) {
        put_dir(root, "src", 0755);
        put_file(root, "src/main.c", "int main(void) { return 0; }\n", 0644);
        put_file(root, "src/run.sh", "#!/bin/sh\necho hi\n", 0755);
        put_dir(root, "src/empty", 0755);
        put_file(root, "README", "hello\n", 0644);
        put_link(root, "latest", "src/main.c");
        put_file(root, "copy", "hello\n", 0644);
    } else {
        put_file(root, "copy", "hello\n", 0644);
        put_file(root, "README", "hello\n", 0644);
        put_dir(root, "src", 0755);
        put_dir(root, "src/empty", 0755);
        put_link(root, "latest", "src/main.c");
        put_file(root, "src/run.sh", "#!/bin/sh\necho hi\n", 0755);
        put_file(root, "src/main.c", "int main(void) { return 0; }\n", 0644);
    }
}

/* ---- tests ---- */

START_TEST(same_tree_same_root)
{
    char *a = scratch_dir(), *b = scratch_dir();
    make_sample(a, false);
    make_sample(b, true);

    /* b differs only in what the root must ignore: times, inodes (a hard
     * link instead of a copy), a fifo, setuid, and its own .wsync state. */
    char p[4096], q[4096];
    at(b, "copy", p);
    at(b, "README", q);
    ck_assert_int_eq(unlink(p), 0);
    ck_assert_int_eq(link(q, p), 0);
    struct timespec old[2] = {{.tv_sec = 1000000}, {.tv_sec = 2000000}};
    at(b, "src/main.c", p);
    ck_assert_int_eq(utimensat(AT_FDCWD, p, old, 0), 0);
    at(b, "src", p);
    ck_assert_int_eq(utimensat(AT_FDCWD, p, old, 0), 0);
    at(b, "fifo", p);
    ck_assert_int_eq(mkfifo(p, 0644), 0);
    at(b, "src/run.sh", p);
    ck_assert_int_eq(chmod(p, 04755), 0);
    put_dir(b, ".wsync", 0700);
    put_file(b, ".wsync/index.db", "state", 0600);

    struct content_id ra = root_of(a, NULL, NULL), rb = root_of(b, NULL, NULL);
    ck_assert_str_eq(content_id_eq(&ra, &rb) ? "equal" : "different", "equal");
    ck_assert(root_is(a, NULL, &ra)); /* and stable */
    remove_tree(a);
    remove_tree(b);
}
END_TEST

START_TEST(every_mirrored_change_changes_root)
{
    char *a = scratch_dir();
    make_sample(a, false);
    const struct content_id r0 = root_of(a, NULL, NULL);
    char p[4096], q[4096];

#define CHANGED()   ck_assert(!root_is(a, NULL, &r0))
#define UNCHANGED() ck_assert(root_is(a, NULL, &r0))

    /* Content, same size. */
    put_file(a, "src/main.c", "int main(void) { return 1; }\n", 0644);
    CHANGED();
    put_file(a, "src/main.c", "int main(void) { return 0; }\n", 0644);
    UNCHANGED();

    /* Mode 0644 -> 0755, on a file and on a directory. */
    at(a, "README", p);
    ck_assert_int_eq(chmod(p, 0755), 0);
    CHANGED();
    ck_assert_int_eq(chmod(p, 0644), 0);
    UNCHANGED();
    at(a, "src", p);
    ck_assert_int_eq(chmod(p, 0700), 0);
    CHANGED();
    ck_assert_int_eq(chmod(p, 0755), 0);
    UNCHANGED();

    /* Symlink target. */
    at(a, "latest", p);
    ck_assert_int_eq(unlink(p), 0);
    put_link(a, "latest", "src/run.sh");
    CHANGED();
    ck_assert_int_eq(unlink(p), 0);
    put_link(a, "latest", "src/main.c");
    UNCHANGED();

    /* An added empty directory, at the top and deeper. */
    put_dir(a, "new", 0755);
    CHANGED();
    at(a, "new", p);
    ck_assert_int_eq(rmdir(p), 0);
    put_dir(a, "src/empty/deeper", 0755);
    CHANGED();
    at(a, "src/empty/deeper", p);
    ck_assert_int_eq(rmdir(p), 0);
    UNCHANGED();

    /* Renames: a file, a file into another directory, an empty directory. */
    at(a, "copy", p);
    at(a, "copy2", q);
    ck_assert_int_eq(rename(p, q), 0);
    CHANGED();
    at(a, "src/copy", p);
    ck_assert_int_eq(rename(q, p), 0);
    CHANGED();
    at(a, "copy", q);
    ck_assert_int_eq(rename(p, q), 0);
    UNCHANGED();
    at(a, "src/empty", p);
    at(a, "src/vacant", q);
    ck_assert_int_eq(rename(p, q), 0);
    CHANGED();
    ck_assert_int_eq(rename(q, p), 0);
    UNCHANGED();

    /* A file turned into a symlink to the same bytes' path, and a type swap
     * of an empty file for an empty directory. */
    put_file(a, "x", "", 0755);
    struct content_id with_file = root_of(a, NULL, NULL);
    at(a, "x", p);
    ck_assert_int_eq(unlink(p), 0);
    put_dir(a, "x", 0755);
    ck_assert(!root_is(a, NULL, &with_file));
    ck_assert_int_eq(rmdir(p), 0);
    UNCHANGED();
#undef CHANGED
#undef UNCHANGED
    remove_tree(a);
}
END_TEST

static bool skip_build(const char *relpath, bool is_dir, void *arg)
{
    ++*(int *)arg;
    return strcmp(relpath, "build") == 0 || strcmp(relpath, "src/out.o") == 0;
}

START_TEST(state_dir_and_skipped_paths_do_not_count)
{
    char *a = scratch_dir();
    make_sample(a, false);
    const struct content_id r0 = root_of(a, NULL, NULL);

    put_dir(a, ".wsync", 0700);
    put_dir(a, ".wsync/staging", 0700);
    put_file(a, ".wsync/staging/tmp", "partial", 0600);
    ck_assert(root_is(a, NULL, &r0));

    /* Only the top-level one is ours: a nested .wsync is user data. */
    put_dir(a, "src/.wsync", 0755);
    ck_assert(!root_is(a, NULL, &r0));
    char p[4096];
    at(a, "src/.wsync", p);
    ck_assert_int_eq(rmdir(p), 0);

    put_dir(a, "build", 0755);
    put_file(a, "build/a.out", "ELF", 0755);
    put_file(a, "src/out.o", "obj", 0644);
    int calls = 0;
    struct content_id skipped = root_of(a, skip_build, &calls);
    ck_assert(content_id_eq(&r0, &skipped));
    ck_assert_int_eq(calls, 9); /* every entry but .wsync; nothing below build/ */
    ck_assert(!root_is(a, NULL, &r0));
    remove_tree(a);
}
END_TEST

static struct content_id file_id_of(const char *data)
{
    struct content_id id;
    ck_assert_int_eq(chunker_hash_buffer(data, strlen(data), NULL, NULL, &id), 0);
    return id;
}

START_TEST(builder_matches_walk)
{
    char *a = scratch_dir();
    make_sample(a, false);
    struct content_id walked = root_of(a, NULL, NULL);

    struct content_id hello = file_id_of("hello\n");
    struct content_id main_c = file_id_of("int main(void) { return 0; }\n");
    struct content_id run = file_id_of("#!/bin/sh\necho hi\n");
    struct tree_builder *b = tree_builder_new();
    ck_assert_ptr_nonnull(b);
    /* Children before parents, siblings shuffled: order must not matter. */
    ck_assert_int_eq(tree_builder_add_file(b, "src/run.sh", 0100755, &run), 0);
    ck_assert_int_eq(tree_builder_add_dir(b, "src/empty", 040755), 0);
    ck_assert_int_eq(tree_builder_add_file(b, "copy", 0644, &hello), 0);
    ck_assert_int_eq(tree_builder_add_symlink(b, "latest", "src/main.c"), 0);
    ck_assert_int_eq(tree_builder_add_file(b, "src/main.c", 0644, &main_c), 0);
    ck_assert_int_eq(tree_builder_add_dir(b, "src", 0755), 0);
    ck_assert_int_eq(tree_builder_add_file(b, "README", 04644, &hello), 0);
    struct content_id built;
    ck_assert_int_eq(tree_builder_finish(b, &built, NULL), 0);
    ck_assert(content_id_eq(&built, &walked));

    /* Names that sort differently as paths and as names: "a", "a.b", "a/x". */
    put_dir(a, "a", 0755);
    put_file(a, "a/x", "", 0644);
    put_file(a, "a.b", "", 0644);
    put_file(a, "a-", "", 0644);
    struct content_id empty = file_id_of("");
    ck_assert_int_eq(tree_builder_add_file(b, "a.b", 0644, &empty), 0);
    ck_assert_int_eq(tree_builder_add_file(b, "a/x", 0644, &empty), 0);
    ck_assert_int_eq(tree_builder_add_file(b, "a-", 0644, &empty), 0);
    ck_assert_int_eq(tree_builder_add_dir(b, "a", 0755), 0);
    ck_assert_int_eq(tree_builder_finish(b, &built, NULL), 0);
    ck_assert(root_is(a, NULL, &built));
    tree_builder_free(b);
    remove_tree(a);
}
END_TEST

START_TEST(builder_pinned_root_and_errors)
{
    char hex[CONTENT_ID_HEX_LEN + 1];
    struct content_id root;
    struct tree_builder *b = tree_builder_new();

    /* No entries: the empty directory, XXH3-128 of nothing. */
    ck_assert_int_eq(tree_builder_finish(b, &root, NULL), 0);
    content_id_to_hex(&root, hex);
    ck_assert_str_eq(hex, "99aa06d3014798d86001c324468d497f");

    /* A pinned small tree: the definition in tree_hash.h must not drift.  The
     * value was checked against a separate encoder of that definition
     * (Python building the record bytes, hashed with `xxhsum -H2`). */
    struct content_id hello = file_id_of("hello\n");
    ck_assert_int_eq(tree_builder_add_dir(b, "d", 0755), 0);
    ck_assert_int_eq(tree_builder_add_file(b, "d/f", 0644, &hello), 0);
    ck_assert_int_eq(tree_builder_add_symlink(b, "l", "d/f"), 0);
    ck_assert_int_eq(tree_builder_add_dir(b, "e", 0700), 0);
    ck_assert_int_eq(tree_builder_finish(b, &root, NULL), 0);
    content_id_to_hex(&root, hex);
    ck_assert_str_eq(hex, "50c3c8e75b5e35931cf7b7bcbb63ddcb");

    const char *bad[] = {"", "/abs", "trailing/", "a//b", ".", "..", "a/./b", "a/.."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_int_eq(tree_builder_add_dir(b, bad[i], 0755), -EINVAL);

    struct strbuf err = STRBUF_INIT;
    ck_assert_int_eq(tree_builder_add_file(b, "d/f", 0600, &hello), 0);
    ck_assert_int_eq(tree_builder_finish(b, &root, &err), -EEXIST);
    ck_assert_str_eq(err.buf, "d/f");
    tree_builder_free(b);

    b = tree_builder_new();
    ck_assert_int_eq(tree_builder_add_dir(b, "d", 0755), 0);
    ck_assert_int_eq(tree_builder_add_file(b, "d/sub/f", 0644, &hello), 0);
    ck_assert_int_eq(tree_builder_finish(b, &root, &err), -ENOENT);
    ck_assert_str_eq(err.buf, "d/sub");
    tree_builder_free(b);

    b = tree_builder_new(); /* a file is no parent */
    ck_assert_int_eq(tree_builder_add_file(b, "f", 0644, &hello), 0);
    ck_assert_int_eq(tree_builder_add_file(b, "f/g", 0644, &hello), 0);
    ck_assert_int_eq(tree_builder_finish(b, &root, &err), -ENOENT);
    ck_assert_str_eq(err.buf, "f");
    tree_builder_free(b);
    strbuf_release(&err);
}
END_TEST

START_TEST(deeper_than_path_max)
{
    /* 500 levels of 10-byte names: 5.5 KB paths, beyond PATH_MAX. */
    char *a = scratch_dir();
    const char *name = "dddddddddd";
    struct tree_builder *b = tree_builder_new();
    struct strbuf path = STRBUF_INIT;
    int fd = open(a, O_RDONLY | O_DIRECTORY);
    for (int i = 0; i < 500; i++) {
        ck_assert_int_eq(mkdirat(fd, name, 0755), 0);
        int sub = openat(fd, name, O_RDONLY | O_DIRECTORY);
        ck_assert_int_ge(sub, 0);
        ck_assert_int_eq(fchmod(sub, 0755), 0);
        close(fd);
        fd = sub;
        if (i)
            strbuf_adds(&path, "/");
        strbuf_adds(&path, name);
        ck_assert_int_eq(tree_builder_add_dir(b, path.buf, 0755), 0);
    }
    close(fd);
    struct content_id built;
    ck_assert_int_eq(tree_builder_finish(b, &built, NULL), 0);
    struct content_id walked = root_of(a, NULL, NULL);
    ck_assert(content_id_eq(&built, &walked));
    strbuf_release(&path);
    tree_builder_free(b);
    remove_tree(a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tree_hash");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, same_tree_same_root);
    tcase_add_test(tc, every_mirrored_change_changes_root);
    tcase_add_test(tc, state_dir_and_skipped_paths_do_not_count);
    tcase_add_test(tc, builder_matches_walk);
    tcase_add_test(tc, builder_pinned_root_and_errors);
    tcase_add_test(tc, deeper_than_path_max);
    suite_add_tcase(s, tc);
    return wm_run_suite(s);
}
